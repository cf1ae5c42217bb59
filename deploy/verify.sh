#!/bin/sh
# SPDX-License-Identifier: MIT
# verify.sh DEPLOY_DIR MAN_DIR [BINARY...]
#
# Runs `systemd-analyze verify` on every *.service and *.target in
# DEPLOY_DIR and fails if it prints anything or exits non-zero: unknown
# keys and bad values are only warnings on stderr with exit 0.
#
# DEPLOY_DIR is the build's deploy directory: the units as meson generated
# them from deploy/*.service.in. They name their programs as installed,
# SBINDIR/NAME (the configured sbindir, /usr/local/sbin by default), and
# verify insists that every Exec*= binary exists. So that the check runs
# in CI on a machine where nothing is installed, the units are copied to a
# temporary directory and each absolute /.../NAME whose NAME is the file
# name of one of the BINARY arguments (the programs just built) is
# replaced by that binary's path. Nothing else is changed, and a unit naming a program the
# build did not produce still fails. (`--root=` is no help here: it would
# look for /bin/kill and for sysinit.target, basic.target... inside the
# root too.) Units referenced by Wants= that are not written yet are not
# an error for verify, so the target needs no special case.
#
# Documentation=man: entries are checked for real, against the pages of
# MAN_DIR: verify runs man(1), and MANPATH points it at a temporary
# man/manN tree holding them.
#
# Exit: 0 clean, 1 findings (printed), 77 (skipped) without
# systemd-analyze.
set -u
deploy=$1
mandir=$2
shift 2

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "systemd-analyze not installed; skipping"
	exit 77
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp/units" "$tmp/man"

n=0
for unit in "$deploy"/*.service "$deploy"/*.target; do
	[ -e "$unit" ] || continue
	n=$((n + 1))
	cp "$unit" "$tmp/units/" || exit 1
done
if [ "$n" -eq 0 ]; then
	echo "no units in $deploy"
	exit 1
fi

for bin in "$@"; do
	# meson passes built targets relative to the build directory
	case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
	if [ ! -x "$bin" ]; then
		echo "not an executable: $bin"
		exit 1
	fi
	name=$(basename "$bin")
	for unit in "$tmp"/units/*; do
		# whole words only: /DIR/NAME after "=" or a blank and
		# followed by a blank or EOL
		sed -i -E "s#([=[:space:]])/[^[:space:]]*/${name}([[:space:]]|\$)#\\1${bin}\\2#g" \
		    "$unit" || exit 1
	done
done

for page in "$mandir"/*.[1-8]; do
	[ -e "$page" ] || continue
	sec=${page##*.}
	mkdir -p "$tmp/man/man$sec"
	cp "$page" "$tmp/man/man$sec/" || exit 1
done
MANPATH="$tmp/man"
export MANPATH
if command -v man >/dev/null 2>&1; then
	man_check=--man=yes
else
	echo "man(1) not installed: Documentation= not checked"
	man_check=--man=no
fi

systemd-analyze verify "$man_check" --generators=no \
    "$tmp"/units/*.service "$tmp"/units/*.target >"$tmp/out" 2>&1
rc=$?
for unit in "$tmp"/units/*; do
	echo "verified: $(basename "$unit")"
done
if [ "$rc" -ne 0 ] || [ -s "$tmp/out" ]; then
	echo "systemd-analyze verify (exit $rc) says:"
	cat "$tmp/out"
	exit 1
fi
exit 0
