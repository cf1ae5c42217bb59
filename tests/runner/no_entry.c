/* SPDX-License-Identifier: MIT */
/*
 * no_entry.c - a shared object without the plugin entry point: refused.
 */
__attribute__((visibility("default"))) int
not_a_plugin(void)
{
	return 42;
}
