#!/bin/sh
# SPDX-License-Identifier: MIT
# lint.sh DIR - run `mandoc -T lint -W warning` on every manual page
# (*.[1-8]) in DIR, found when the test runs, so pages added later are
# linted without touching meson.build. Fails on any output: mandoc's
# exit status alone would let some messages through. Exits 77 (meson's
# "skipped") when mandoc is not installed.
set -u
dir=${1:-$(dirname "$0")}
if ! command -v mandoc >/dev/null 2>&1; then
	echo "mandoc not installed (apt-get install mandoc); skipping"
	exit 77
fi
n=0
fail=0
for page in "$dir"/*.[1-8]; do
	[ -e "$page" ] || continue
	n=$((n + 1))
	out=$(mandoc -T lint -W warning "$page" 2>&1)
	rc=$?
	if [ -n "$out" ] || [ "$rc" -ne 0 ]; then
		printf '%s (exit %d):\n%s\n' "$page" "$rc" "$out"
		fail=1
	else
		echo "ok: $page"
	fi
done
if [ "$n" -eq 0 ]; then
	echo "no manual pages in $dir"
	exit 1
fi
exit "$fail"
