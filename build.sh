#!/usr/bin/env bash
#
# Build, test and demo ngx_qqfail_module against the installed nginx.
#
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$TOP"

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
MODULE=ngx_http_qqfail_module

BUILD_PKGS=(gcc make libc6-dev nginx nginx-dev libc-ares-dev libmaxminddb-dev)
TEST_PKGS=(perl libnet-dns-perl unbound nsd libmaxmind-db-writer-perl
           mmdb-bin iproute2 procps)

usage() {
    cat <<'EOF'
Usage: ./build.sh [COMMAND] [OPTIONS]

Commands:
  build            install missing build packages (as root, apt-get), then
                   build objs/ngx_http_qqfail_module.so (the default command)
  test [--asan]    build, then run every test (prove -r t/); with --asan the
                   module is built with AddressSanitizer + UBSan and the
                   suite runs with the sanitizer runtime preloaded into nginx
  demo [--keep]    build, then play the registrar-outage story on 127.x
  -h, --help       this text

Environment:
  NGINX_SRC=DIR    nginx source tree to build against (default: Debian's
                   nginx-dev tree /usr/share/nginx/src); its version must
                   match the nginx binary that will load the module
  NGINX_BIN=PATH   the nginx binary that will load the module
                   (default /usr/sbin/nginx)
  QQ_JOBS=N        run N test files in parallel (default 1)
  QQ_TESTS="t/x.t ..."  run only these test files
EOF
}

die() {
    echo "build.sh: $*" >&2
    exit 1
}

log() {
    echo "build.sh: $*" >&2
}


# packages

missing_pkgs() {
    local p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
                | grep -q 'install ok installed'; then
            echo "$p"
        fi
    done
}

POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=

restore_policy_rc() {
    if [ -n "$POLICY_RC_OURS" ]; then
        rm -f "$POLICY_RC"
        POLICY_RC_OURS=
    fi
}

install_pkgs() {
    local missing
    missing=$(missing_pkgs "$@")
    [ -z "$missing" ] && return 0

    if ! command -v apt-get >/dev/null 2>&1; then
        die "missing packages: $(echo $missing); install them by hand"
    fi

    if [ "$(id -u)" != 0 ]; then
        die "missing packages: $(echo $missing); run as root or install them"
    fi

    log "installing: $(echo $missing)"

    # packaged daemons (nginx, unbound, nsd) must not start: unbound
    # would recurse to the internet, nginx would take port 80

    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$POLICY_RC"
        chmod 755 "$POLICY_RC"
        POLICY_RC_OURS=1
        trap restore_policy_rc EXIT
    fi

    export DEBIAN_FRONTEND=noninteractive

    if ! apt-get install -y -q --no-install-recommends $missing; then
        apt-get update -q
        apt-get install -y -q --no-install-recommends $missing
    fi

    restore_policy_rc
}


# build

nginx_version_of_bin() {
    "$NGINX_BIN" -v 2>&1 | sed -n 's|^nginx version: [^/]*/\([0-9.]*\).*|\1|p'
}

nginx_version_of_src() {
    sed -n 's/^#define NGINX_VERSION *"\([0-9.]*\)".*/\1/p' \
        "$1/src/core/nginx.h"
}

# configure arguments: Debian's conf_flags, or the target binary's nginx -V
configure_args() {
    local src=$1
    if [ -f "$src/conf_flags" ]; then
        # shellcheck disable=SC1091
        (source "$src/conf_flags"; printf '%s\n' "${NGX_CONF_FLAGS[@]}")
    else
        "$NGINX_BIN" -V 2>&1 | sed -n 's/^configure arguments: //p' \
            | xargs -n1 printf '%s\n' \
            | grep -v -e '^--add-dynamic-module=' -e '^--add-module=' \
                      -e '^--with-cc-opt=' -e '^--with-ld-opt='
    fi
}

build_module() {
    local variant=$1        # "" or asan
    local src=${NGINX_SRC:-/usr/share/nginx/src}
    local bdir="$TOP/build/nginx${variant:+-$variant}"
    local out="$TOP/objs${variant:+/$variant}"
    local srcver binver stamp args cc_opt ld_opt

    [ -x "$NGINX_BIN" ] || die "nginx binary \"$NGINX_BIN\" not found"
    [ -f "$src/src/core/nginx.h" ] \
        || die "\"$src\" is not an nginx source tree (set NGINX_SRC)"

    srcver=$(nginx_version_of_src "$src")
    binver=$(nginx_version_of_bin)

    if [ "$srcver" != "$binver" ]; then
        die "source tree \"$src\" is nginx $srcver but $NGINX_BIN is" \
            "nginx $binver; a module must be built from the same version"
    fi

    mapfile -t args < <(configure_args "$src")

    cc_opt="-g -O2 -fPIC"
    ld_opt="-fPIC"
    if [ "$variant" = asan ]; then
        cc_opt="-g -O1 -fPIC -fno-omit-frame-pointer"
        cc_opt="$cc_opt -fsanitize=address,undefined"
        cc_opt="$cc_opt -fno-sanitize-recover=undefined"
        ld_opt="-fPIC -fsanitize=address,undefined"
    fi

    args+=("--with-cc-opt=$cc_opt" "--with-ld-opt=$ld_opt"
           "--add-dynamic-module=$TOP")

    # reconfigure only when the source, the arguments or config changed
    stamp=$( (printf '%s\n' "$src" "$srcver" "${args[@]}"; cat "$TOP/config") \
             | md5sum | cut -d' ' -f1)

    if [ ! -f "$bdir/objs/Makefile" ] \
       || [ "$(cat "$bdir/.qqfail-stamp" 2>/dev/null)" != "$stamp" ]; then
        log "configuring nginx $srcver in $bdir"
        rm -rf "$bdir"
        mkdir -p "$bdir"
        cp -a "$src/." "$bdir/"
        # a release tarball has ./configure, a git checkout auto/configure
        local configure=./configure
        [ -f "$bdir/configure" ] || configure=auto/configure

        (cd "$bdir" && $configure "${args[@]}" > configure.log 2>&1) || {
            tail -n 30 "$bdir/configure.log" >&2
            die "configure failed (full log: $bdir/configure.log)"
        }
        echo "$stamp" > "$bdir/.qqfail-stamp"
    fi

    make -s -C "$bdir" -f objs/Makefile modules \
        -j"$(nproc 2>/dev/null || echo 2)" >&2

    mkdir -p "$out"
    cp "$bdir/objs/$MODULE.so" "$out/$MODULE.so.tmp"
    mv "$out/$MODULE.so.tmp" "$out/$MODULE.so"
    log "built $out/$MODULE.so (nginx $srcver${variant:+, $variant})"
}


# commands

cmd_build() {
    install_pkgs "${BUILD_PKGS[@]}"
    build_module ""
}

cmd_test() {
    local asan= jobs=${QQ_JOBS:-1}
    local tests

    while [ $# -gt 0 ]; do
        case $1 in
            --asan) asan=1 ;;
            *) die "unknown option \"$1\" for test" ;;
        esac
        shift
    done

    install_pkgs "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"

    if [ -n "$asan" ]; then
        build_module asan
        export QQ_ASAN=1
        export QQ_MODULE="$TOP/objs/asan/$MODULE.so"
    else
        build_module ""
        unset QQ_ASAN
        export QQ_MODULE="$TOP/objs/$MODULE.so"
    fi

    # shellcheck disable=SC2206
    tests=(${QQ_TESTS:-t/})
    prove -j"$jobs" -r "${tests[@]}"
}

cmd_demo() {
    cmd_build
    echo "./build.sh demo: not yet (arrives with the demo milestone)"
}


main() {
    local cmd=${1:-build}
    [ $# -gt 0 ] && shift

    case $cmd in
        -h|--help|help) usage ;;
        build) cmd_build "$@" ;;
        test) cmd_test "$@" ;;
        demo) cmd_demo "$@" ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
