#!/bin/bash
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
#
# Run by t/096-deb.t inside a fresh Debian root of another suite than the
# host's (QQ_DEB_SUITE=trixie), as root:
#
#   bash fresh-build.sh DIR
#
# DIR holds src.tar, the working tree; it is unpacked in /var/tmp/qqsrc
# and built there with ./build.sh deb, which installs what it needs from
# that suite (nginx-dev, debhelper, lintian, ...).  Its output goes to
# DIR/build.out, the packages (*.deb in dist/, debug symbols left out) to
# DIR/.  The install test then runs in another fresh root of the same
# suite: a package built for Debian 13's nginx-abi installs only there.

set -u

dir=$1
src=/var/tmp/qqsrc

rm -rf "$src"
mkdir -p "$src" || exit 1
tar -C "$src" -xf "$dir/src.tar" || exit 1
cd "$src" || exit 1

./build.sh deb > "$dir/build.out" 2>&1
rc=$?

for f in dist/*.deb; do
    case $f in
        *-dbgsym_*) ;;
        *) [ -f "$f" ] && cp "$f" "$dir/" ;;
    esac
done

exit "$rc"
