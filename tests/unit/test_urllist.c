/* SPDX-License-Identifier: MIT */
/*
 * test_urllist.c - unit tests of libcommon/urllist.c and hostport.c,
 * the settings eventfold-mirrord parses: a comma-separated NATS server
 * list (libnats 3.4 takes one URL per string) and HOST:PORT.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "hostport.h"
#include "urllist.h"

Test(urllist, one)
{
	char **v = NULL;

	cr_assert_eq(urllist_split("nats://127.0.0.1:4222", &v), 1);
	cr_assert_str_eq(v[0], "nats://127.0.0.1:4222");
	cr_assert_null(v[1]);
	urllist_free(v);
}

Test(urllist, several_blanks_and_empty_items)
{
	char **v = NULL;

	cr_assert_eq(urllist_split(" nats://a:1 ,nats://b:2,, \tnats://c:3 ,",
	                 &v),
	    3);
	cr_assert_str_eq(v[0], "nats://a:1");
	cr_assert_str_eq(v[1], "nats://b:2");
	cr_assert_str_eq(v[2], "nats://c:3");
	cr_assert_null(v[3]);
	urllist_free(v);
}

Test(urllist, none)
{
	char **v = NULL;

	cr_assert_eq(urllist_split("", &v), 0);
	cr_assert_null(v[0]);
	urllist_free(v);
	cr_assert_eq(urllist_split(" , ,", &v), 0);
	urllist_free(v);
	urllist_free(NULL);
}

Test(hostport, forms)
{
	char h[64], p[16];

	cr_assert_eq(hostport_split("127.0.0.1:9091", h, sizeof(h), p,
	                 sizeof(p)),
	    0);
	cr_assert_str_eq(h, "127.0.0.1");
	cr_assert_str_eq(p, "9091");
	cr_assert_eq(hostport_split("[::1]:9091", h, sizeof(h), p, sizeof(p)),
	    0);
	cr_assert_str_eq(h, "::1");
	cr_assert_str_eq(p, "9091");
	cr_assert_eq(hostport_split(":9091", h, sizeof(h), p, sizeof(p)), 0);
	cr_assert_str_eq(h, "");
	cr_assert_eq(hostport_split("localhost", h, sizeof(h), p, sizeof(p)),
	    -1);
	cr_assert_eq(hostport_split("[::1]9091", h, sizeof(h), p, sizeof(p)),
	    -1);
}
