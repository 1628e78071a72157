#!/bin/bash
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
#
# A fresh minimal Debian root for t/096-deb.t when the shared
# fresh-machine.sh is not next to the checkout (CI's clean clone), as root:
#
#   bash t/deb/fresh-root.sh 'COMMAND'
#
# The root is debootstrap --variant=minbase of the running suite
# (VERSION_CODENAME of /etc/os-release, or QQ_FRESH_SUITE) from the mirror
# that apt's Debian sources name for that suite, else for the host's own
# (QQ_FRESH_SUITE=trixie on Debian 12), or QQ_FRESH_MIRROR.  The
# first run keeps it as a tarball, /var/cache/qqfail-fresh-root/
# SUITE-ARCH.tar (directory: QQ_FRESH_CACHE); later runs unpack that.
# The host's resolv.conf, hosts, Debian sources and Acquire settings are
# copied in.
#
# COMMAND runs with bash -c in the root (chroot, a clean environment), in
# a mount and a PID namespace of its own: /proc, /sys and /dev (with
# /dev/shm, through which t/096 hands the package in) are mounted in that
# namespace only and vanish with it, and every process left in the root
# dies when COMMAND ends or this script is killed.  The root is removed
# afterwards.  Prints "fresh root: ..." last; exits with COMMAND's status.

set -u

cmd=$*
root=
log=
ns=

say() {
    echo "fresh root: $*"
}

# no process may keep the root, no mount may stay under it: the mounts
# live in the namespace, so this finds something only if that failed
cleanup() {
    local pid left

    # unshare --kill-child: its death kills the namespace's pid 1, and
    # with it every process of the namespace
    if [ -n "$ns" ]; then
        kill -KILL "$ns" 2>/dev/null
        wait "$ns" 2>/dev/null
    fi

    [ -n "$root" ] && [ -d "$root" ] || return 0

    for pid in /proc/[0-9]*; do
        if [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ]; then
            kill -KILL "${pid#/proc/}" 2>/dev/null
        fi
    done

    left=$(awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' \
               /proc/self/mountinfo)
    if [ -n "$left" ]; then
        umount -R -l "$root/proc" "$root/sys" "$root/dev" 2>/dev/null
        left=$(awk -v r="$root" \
                   '$5 == r || index($5, r "/") == 1 { print $5 }' \
                   /proc/self/mountinfo)
    fi

    if [ -n "$left" ]; then
        say "mounts left under $root, not removed:" $left
    else
        rm -rf --one-file-system "$root"
    fi
    rm -f "$log"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

[ -n "$cmd" ] || { say "usage: fresh-root.sh 'COMMAND'"; exit 2; }
[ "$(id -u)" = 0 ] || { say "needs root (debootstrap, chroot)"; exit 2; }

suite=${QQ_FRESH_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
host_suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
arch=$(dpkg --print-architecture)

[ -n "$suite" ] || { say "no suite (set QQ_FRESH_SUITE)"; exit 2; }

# the URI of the first "deb" source that carries SUITE: a deb822 stanza of
# debian.sources, else a one-line entry of sources.list
mirror_of() {
    local s=$1 uri=
    local deb822=/etc/apt/sources.list.d/debian.sources

    if [ -r "$deb822" ]; then
        uri=$(awk -v s="$s" '
            function stanza() {
                if (!uri && index(" " types " ", " deb ") &&
                    index(" " suites " ", " " s " ")) {
                    uri = first
                }
                types = suites = first = ""
            }
            /^[ \t]*$/ { stanza(); next }
            /^#/ { next }
            tolower($1) == "types:" { $1 = ""; types = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "uris:" { first = $2 }
            END { stanza(); print uri }' "$deb822")
    fi

    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk -v s="$s" '
            $1 != "deb" { next }
            {
                i = 2
                if ($i ~ /^\[/) {
                    while (i < NF && $i !~ /\]$/) i++
                    i++
                }
                if ($(i + 1) == s) { print $i; exit }
            }' /etc/apt/sources.list)
    fi

    echo "$uri"
}

# another suite than the host's (QQ_FRESH_SUITE=trixie): the host's
# mirror serves it too
mirror=${QQ_FRESH_MIRROR:-$(mirror_of "$suite")}
[ -n "$mirror" ] || mirror=$(mirror_of "$host_suite")
if [ -z "$mirror" ]; then
    say "no apt source for $suite (set QQ_FRESH_MIRROR)"
    exit 2
fi

command -v debootstrap >/dev/null \
    || { say "needs debootstrap (./build.sh test --deb installs it)"; exit 2; }
command -v unshare >/dev/null || { say "needs unshare (util-linux)"; exit 2; }

cachedir=${QQ_FRESH_CACHE:-/var/cache/qqfail-fresh-root}
cache=$cachedir/$suite-$arch.tar
mkdir -p "$cachedir" || exit 2

root=$(mktemp -d /var/tmp/qqfail-root.XXXXXXXX) || exit 2
chmod 755 "$root"
log=$root.log

SECONDS=0

# one debootstrap at a time per suite; the cache appears whole (rename)
exec 9> "$cache.lock"
flock 9

if [ -s "$cache" ]; then
    tar -C "$root" -xf "$cache" || { say "cannot unpack $cache"; exit 1; }
    made="from $cache"
else
    if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" \
            > "$log" 2>&1; then
        tail -n 20 "$log"
        say "debootstrap $suite $mirror failed"
        exit 1
    fi
    if ! tar -C "$root" -cf "$cache.new.$$" . \
            || ! mv "$cache.new.$$" "$cache"; then
        rm -f "$cache.new.$$"
        say "cannot write $cache"
        exit 1
    fi
    made="by debootstrap $suite $mirror (kept in $cache)"
fi

exec 9>&-
made="$made in ${SECONDS}s"

# what the root needs from the host: name resolution and apt's view of
# the mirror (its Debian sources, when the suite is the host's, and any
# Acquire:: settings: proxies, snapshot dates)
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
cp -L /etc/hosts "$root/etc/hosts" 2>/dev/null

if [ "$suite" = "$host_suite" ]; then
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        cp /etc/apt/sources.list.d/debian.sources \
           "$root/etc/apt/sources.list.d/" && rm -f "$root/etc/apt/sources.list"
    elif [ -r /etc/apt/sources.list ]; then
        cp /etc/apt/sources.list "$root/etc/apt/sources.list"
    fi
fi

# (the administrator's files only: a package's own, e.g. appstream's
# 50appstream, would make dpkg ask about its conffile when the root
# installs that package, and fail without a terminal)
for f in /etc/apt/apt.conf.d/*; do
    if [ -f "$f" ] && grep -q '^[[:space:]]*Acquire' "$f" \
       && ! dpkg-query -S "$f" >/dev/null 2>&1; then
        cp "$f" "$root/etc/apt/apt.conf.d/"
    fi
done

# a clean environment but for the proxy variables apt and wget honour
envs=(HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && envs+=("$v=${!v}")
done

# in the namespaces: pid 1 is this bash -c, which mounts, runs COMMAND
# and returns its status; when it exits, the kernel kills what is left
# in the PID namespace and drops the mount namespace with its mounts
# (--kill-child: also when unshare itself is killed); in the background,
# so that a signal to this script is handled at once
SECONDS=0
unshare --mount --propagation private --pid --fork --kill-child \
    bash -c '
        r=$1
        shift
        mount -t proc proc "$r/proc" || exit 125
        mount --rbind /sys "$r/sys" || exit 125
        mount --rbind /dev "$r/dev" || exit 125
        "$@"
    ' fresh-root "$root" \
    chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/bash -c "$cmd" &
ns=$!
wait "$ns"
rc=$?
ns=

say "root $made; '$cmd' rc=$rc in ${SECONDS}s"
exit "$rc"
