#!/usr/bin/env bash
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
#
# Build, test and demo ngx_qqfail_module against the installed nginx.
#
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$TOP"

# Debian's nginx and its nginx-dev source tree, the defaults
DEB_NGINX_BIN=/usr/sbin/nginx
DEB_NGINX_SRC=/usr/share/nginx/src
NGINX_BIN=${NGINX_BIN:-$DEB_NGINX_BIN}
MODULE=ngx_http_qqfail_module
# the stream front end, a file of its own (built when nginx has stream)
STREAM_MODULE=ngx_stream_qqfail_module

BUILD_PKGS=(gcc make libc6-dev nginx nginx-dev libc-ares-dev libmaxminddb-dev)
# ldnsutils: ldns-keygen and ldns-signzone sign the zones of t/120-dnssec.t
TEST_PKGS=(perl libnet-dns-perl unbound nsd openssl libmaxmind-db-writer-perl
           mmdb-bin iproute2 procps prometheus chromium libnginx-mod-stream
           ldnsutils)
# the subset of TEST_PKGS that demo/demo.pl needs
DEMO_PKGS=(perl libnet-dns-perl unbound nsd)
# ./build.sh deb: dpkg-buildpackage with debian/ (dh-sequence-nginx comes
# with nginx-dev), then lintian
# (libnginx-mod-stream: the build's nginx -t loads the stream front end)
DEB_PKGS=(build-essential debhelper dpkg-dev nginx-dev libc-ares-dev
          libmaxminddb-dev libnginx-mod-stream lintian)
# the binary packages of debian/control: the http module, the stream
# front end
DEB_PACKAGE=libnginx-mod-http-qqfail
DEB_PACKAGES=("$DEB_PACKAGE" libnginx-mod-stream-qqfail)
# test --deb: the fresh Debian root of t/deb/fresh-root.sh
DEB_TEST_PKGS=(debootstrap debian-archive-keyring util-linux)
# libFuzzer: clang, and its runtime (-fsanitize=fuzzer)
FUZZ_PKGS=(clang libclang-rt-dev)

# the fuzz harnesses: fuzz/NAME.c, its seeds in fuzz/corpus/NAME/, then
# the module sources it is built with (nginx's headers, no nginx object)
FUZZ_HARNESSES=(
    "dns_answer ngx_qqfail_module/ngx_qqfail_dns.c"
    "state_file ngx_qqfail_module/ngx_qqfail_text.c"
    "status_escape ngx_qqfail_module/ngx_qqfail_text.c"
)

# Debian's layout for dynamic modules (as libnginx-mod-* packages do it)
DEB_MODULES_AVAILABLE=/usr/share/nginx/modules-available
DEB_MODULES_ENABLED=/etc/nginx/modules-enabled
DEB_MODULE_CONF=mod-http-qqfail.conf
DEB_MODULE_LINK=50-mod-http-qqfail.conf
# after nginx's stream module (50-mod-stream.conf) and ours (http): 70,
# the priority dh_nginx gives a stream module (libnginx-mod-stream-qqfail)
DEB_STREAM_CONF=mod-stream-qqfail.conf
DEB_STREAM_LINK=70-mod-stream-qqfail.conf
# the link of an install before the package (removed by uninstall)
DEB_STREAM_LINK_OLD=60-mod-stream-qqfail.conf

usage() {
    cat <<'EOF'
Usage: ./build.sh [COMMAND] [OPTIONS]

Commands:
  build            install missing build packages (as root, apt-get), then
                   build objs/ngx_http_qqfail_module.so (the default command)
  test [--asan] [--soak] [--deb]
                   build, then run every test (prove -r t/); with --asan the
                   module is built with AddressSanitizer + UBSan and the
                   suite runs with the sanitizer runtime preloaded into nginx;
                   --soak adds the ten-minute soak test (t/900-soak.t:
                   reloads every second, providers down and up, moves);
                   --deb adds the package test (t/096-deb.t: ./build.sh
                   deb, then apt-get install of the .deb in a fresh Debian
                   root: debootstrap minbase by t/deb/fresh-root.sh, or
                   by ../shared/tools/fresh-machine.sh if it is there)
  demo [--keep] [--fast]
                   install missing packages, build, then replay the 2012
                   outage (registrar down, every DNS provider down, nginx
                   restarted during the outage, recovery) under steady
                   traffic in a sandbox on 127.x: nsd, unbound and nginx in
                   a temporary directory, nothing in /etc touched; exits 0
                   only if no request failed and every phase reached its
                   state. --keep leaves the sandbox running until Ctrl-C,
                   --fast shortens the holds (demo/demo.pl --help: more)
  fuzz [SECONDS]   build the libFuzzer harnesses of fuzz/ with clang
                   (AddressSanitizer + UBSan) against the nginx tree the
                   module builds with, then run each for SECONDS (default
                   60) from its seeds in fuzz/corpus/; fails on a crash,
                   which is kept in build/fuzz/artifacts/
  deb              install missing packaging tools, then build the Debian
                   packages libnginx-mod-http-qqfail_VERSION_ARCH.deb and
                   libnginx-mod-stream-qqfail_VERSION_ARCH.deb (the stream
                   front end) into ./dist/ with dpkg-buildpackage (debian/;
                   VERSION from debian/changelog) from a copy of the tree
                   in build/deb, and check them with lintian (fails on an
                   error)
  install          build, then copy the module into nginx's modules path
                   (nginx -V --modules-path) and enable it: on Debian
                   /usr/share/nginx/modules-available/mod-http-qqfail.conf
                   and a link in /etc/nginx/modules-enabled; runs nginx -t;
                   refuses to overwrite files a package owns (dpkg -S)
  uninstall        remove what install added, then run nginx -t (never a
                   file that a package owns)
  -h, --help       this text

Environment:
  NGINX_SRC=DIR    nginx source tree to build against (default: Debian's
                   nginx-dev tree /usr/share/nginx/src); its version must
                   match the nginx binary that will load the module
  NGINX_BIN=PATH   the nginx binary that will load the module
                   (default /usr/sbin/nginx); without Debian's
                   conf_flags in NGINX_SRC, nginx is configured with the
                   arguments of NGINX_BIN -V; test runs the suite with
                   this binary and the ngx_stream_module.so of its modules
                   path (QQ_NGINX_STREAM_MODULE=PATH: another file); with
                   both set, Debian's nginx packages are not needed
  QQ_JOBS=N        run N test files in parallel (default 1)
  QQ_TESTS="t/x.t ..."  run only these test files
  QQ_SOAK_SECONDS=N     length of the soak test (default 600)
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

# Debian's nginx packages only when the module is built for Debian's nginx:
# a site's own nginx (NGINX_SRC, NGINX_BIN) needs none of them
nginx_pkgs_filter() {
    local p
    for p in "$@"; do
        case $p in
            nginx|libnginx-mod-stream)
                [ "$NGINX_BIN" = "$DEB_NGINX_BIN" ] || continue ;;
            nginx-dev)
                [ "${NGINX_SRC:-$DEB_NGINX_SRC}" = "$DEB_NGINX_SRC" ] \
                    || continue ;;
        esac
        echo "$p"
    done
}

install_pkgs() {
    local missing
    # shellcheck disable=SC2046
    missing=$(missing_pkgs $(nginx_pkgs_filter "$@"))
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
    local src=${NGINX_SRC:-$DEB_NGINX_SRC}
    local bdir="$TOP/build/nginx${variant:+-$variant}"
    local out="$TOP/objs${variant:+/$variant}"
    local srcver binver stamp args cc_opt ld_opt targets

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

    # Debian's nginx-dev flags leave stream out; its nginx has it (a
    # module of its own): the stream front end needs nginx's stream headers
    if [ -d "$src/src/stream" ] \
       && ! printf '%s\n' "${args[@]}" | grep -q '^--with-stream'; then
        args+=("--with-stream=dynamic")
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

    # our files only: nginx-dev's tree has no source for nginx's own
    # dynamic modules (stream)
    targets=("objs/$MODULE.so")
    if grep -q "^objs/$STREAM_MODULE.so:" "$bdir/objs/Makefile"; then
        targets+=("objs/$STREAM_MODULE.so")
    fi

    make -s -C "$bdir" -f objs/Makefile "${targets[@]}" \
        -j"$(nproc 2>/dev/null || echo 2)" >&2

    mkdir -p "$out"
    cp "$bdir/objs/$MODULE.so" "$out/$MODULE.so.tmp"
    mv "$out/$MODULE.so.tmp" "$out/$MODULE.so"
    if [ -f "$bdir/objs/$STREAM_MODULE.so" ]; then
        cp "$bdir/objs/$STREAM_MODULE.so" "$out/$STREAM_MODULE.so.tmp"
        mv "$out/$STREAM_MODULE.so.tmp" "$out/$STREAM_MODULE.so"
    fi
    log "built $out/$MODULE.so (nginx $srcver${variant:+, $variant})"

    build_units "$bdir" "$out" "$cc_opt"
}

# the include flags for code built on nginx core headers alone (the unit
# drivers, the fuzz harnesses), from the configured tree BDIR
core_includes() {
    local bdir=$1 d

    for d in src/core src/event src/event/modules src/os/unix objs; do
        echo "-I$bdir/$d"
    done

    # nginx 1.25 and later: ngx_core.h includes the QUIC headers
    if [ -d "$bdir/src/event/quic" ]; then
        echo "-I$bdir/src/event/quic"
    fi

    echo "-I$TOP/ngx_qqfail_module"
}

# the unit drivers of t/unit/: the module's pure parts (nginx core headers
# only) driven from tables by the tests, with the module's compiler flags
build_units() {
    local bdir=$1 out=$2 cc_opt=$3 u name srcs
    local -a units=("policy ngx_qqfail_module/ngx_qqfail_policy.c"
                    "dns ngx_qqfail_module/ngx_qqfail_dns.c")
    local -a incs

    mapfile -t incs < <(core_includes "$bdir")

    mkdir -p "$out/unit"

    for u in "${units[@]}"; do
        read -r name srcs <<< "$u"
        # shellcheck disable=SC2086
        cc $cc_opt -Wall -Wextra -Wno-unused-parameter -Werror "${incs[@]}" \
            "t/unit/$name.c" $srcs -o "$out/unit/$name" \
            || die "cannot build the unit driver t/unit/$name.c"
    done
}


# commands

cmd_build() {
    install_pkgs "${BUILD_PKGS[@]}"
    build_module ""
}

cmd_test() {
    local asan= jobs=${QQ_JOBS:-1}
    local -a pkgs=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}")
    local tests

    while [ $# -gt 0 ]; do
        case $1 in
            --asan) asan=1 ;;
            --soak) export QQ_SOAK=1 ;;
            --deb) export QQ_DEB=1 ;;
            *) die "unknown option \"$1\" for test" ;;
        esac
        shift
    done

    [ -n "${QQ_DEB:-}" ] && pkgs+=("${DEB_TEST_PKGS[@]}")
    install_pkgs "${pkgs[@]}"

    if [ -n "$asan" ]; then
        build_module asan
        export QQ_ASAN=1
        export QQ_MODULE="$TOP/objs/asan/$MODULE.so"
        export QQ_UNIT="$TOP/objs/asan/unit"
    else
        build_module ""
        unset QQ_ASAN
        export QQ_MODULE="$TOP/objs/$MODULE.so"
        export QQ_UNIT="$TOP/objs/unit"
    fi

    # the suite runs the binary the module was built for, with the stream
    # module of the same build (Debian: libnginx-mod-stream's file)
    export QQ_NGINX="$NGINX_BIN"
    : "${QQ_NGINX_STREAM_MODULE:=$(modules_path)/ngx_stream_module.so}"
    export QQ_NGINX_STREAM_MODULE

    # shellcheck disable=SC2206
    tests=(${QQ_TESTS:-t/})
    prove -j"$jobs" -r "${tests[@]}"
}

cmd_fuzz() {
    local seconds=${1:-60}
    local bdir="$TOP/build/nginx" fdir="$TOP/build/fuzz"
    local h name srcs log work line failed=0
    local -a cflags

    [ $# -le 1 ] || die "fuzz takes one argument, the seconds per harness"
    [[ $seconds =~ ^[0-9]+$ ]] && [ "$seconds" -gt 0 ] \
        || die "fuzz: \"$seconds\" is not a number of seconds"

    install_pkgs "${BUILD_PKGS[@]}" "${FUZZ_PKGS[@]}"

    # the configured nginx tree: its headers and ngx_auto_config.h
    build_module ""

    cflags=(-g -O1 -fno-omit-frame-pointer
            -fsanitize=fuzzer,address,undefined
            -fno-sanitize-recover=undefined
            -Wall -Wextra -Wno-unused-parameter -Werror)

    mapfile -t -O "${#cflags[@]}" cflags < <(core_includes "$bdir")

    mkdir -p "$fdir/artifacts"

    for h in "${FUZZ_HARNESSES[@]}"; do
        read -r name srcs <<< "$h"

        # shellcheck disable=SC2086
        clang "${cflags[@]}" "fuzz/$name.c" $srcs -o "$fdir/$name" \
            || die "fuzz: cannot build fuzz/$name.c"

        # new inputs go to build/fuzz/corpus-NAME, the seeds stay as they are
        work="$fdir/corpus-$name"
        log="$fdir/$name.log"
        mkdir -p "$work"

        log "fuzzing $name for ${seconds}s (log: $log)"

        if ! "$fdir/$name" -max_total_time="$seconds" -max_len=4096 \
                 -timeout=10 -print_final_stats=1 \
                 -artifact_prefix="$fdir/artifacts/$name-" \
                 "$work" "fuzz/corpus/$name" > "$log" 2>&1
        then
            tail -n 40 "$log" >&2
            log "fuzz: $name FAILED; the input is in $fdir/artifacts/:" \
                "add it to fuzz/corpus/$name/ as a regression input"
            failed=1
            continue
        fi

        line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
        log "fuzz: $name: no crash; ${line#*DONE }"
        log "fuzz: $name: $(grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' "$log" | tr '\n' ' ')"
    done

    [ "$failed" = 0 ] || die "fuzz: a harness found a crash"
}

# the package: dpkg-buildpackage in a copy of the tree (debian/'s build
# files stay out of the checkout), the .deb files in ./dist/
cmd_deb() {
    local bdir="$TOP/build/deb" dist="$TOP/dist"
    local version upver arch deb src opts p had_makefile=
    local -a debs
    local nginx_makefile=/usr/share/nginx/src/Makefile

    [ $# -eq 0 ] || die "deb takes no options"

    # the package is built for Debian's nginx, whatever NGINX_* say
    NGINX_SRC= NGINX_BIN=$DEB_NGINX_BIN install_pkgs "${DEB_PKGS[@]}"

    version=$(dpkg-parsechangelog -l debian/changelog -S Version)
    upver=${version%-*}
    arch=$(dpkg-architecture -q DEB_HOST_ARCH)
    deb="${DEB_PACKAGE}_${version}_${arch}.deb"
    src="$bdir/$DEB_PACKAGE-$upver"

    rm -rf "$bdir"
    mkdir -p "$src" "$dist"
    tar -C "$TOP" --exclude=./.git --exclude=./build --exclude=./objs \
        --exclude=./dist -cf - . | tar -C "$src" -xf -

    # nginx_mod runs nginx's configure in /usr/share/nginx/src, which
    # leaves a Makefile there: removed again unless it was there before
    [ -e "$nginx_makefile" ] && had_makefile=1

    log "building ${DEB_PACKAGES[*]} $version in $bdir (log: $bdir/build.log)"
    opts="parallel=$(nproc 2>/dev/null || echo 2) ${DEB_BUILD_OPTIONS:-}"
    if ! (cd "$src" && DEB_BUILD_OPTIONS="$opts" \
            dpkg-buildpackage -us -uc -b) > "$bdir/build.log" 2>&1; then
        [ -n "$had_makefile" ] || rm -f "$nginx_makefile"
        tail -n 40 "$bdir/build.log" >&2
        die "dpkg-buildpackage failed (full log: $bdir/build.log)"
    fi
    [ -n "$had_makefile" ] || rm -f "$nginx_makefile"

    for p in "${DEB_PACKAGES[@]}"; do
        deb="${p}_${version}_${arch}.deb"
        rm -f "$dist/${p}"_*.deb "$dist/${p}"-dbgsym_*.deb
        [ -f "$bdir/$deb" ] || die "dpkg-buildpackage made no $deb"
        cp "$bdir/$deb" "$dist/"
        cp "$bdir/${p}-dbgsym_${version}_${arch}.deb" "$dist/" \
            2>/dev/null || true
        debs+=("$dist/$deb")
        log "built $dist/$deb"
        dpkg-deb -f "$dist/$deb" Depends | sed 's/^/    Depends: /' >&2
    done

    log "lintian ${debs[*]}"
    lintian --fail-on error --display-info "${debs[@]}" >&2 \
        || die "lintian found an error in ${debs[*]}"
    log "lintian: no error"
    log "install them with: apt-get install ${debs[*]}" \
        "(the second one for stream{} upstreams)"
}

need_root() {
    [ "$(id -u)" = 0 ] || die "$1: run as root"
}

cmd_demo() {
    [ "$(id -u)" = 0 ] \
        || die "demo: run as root (its DNS servers listen on port 53 of" \
               "127.x addresses)"

    install_pkgs "${BUILD_PKGS[@]}" "${DEMO_PKGS[@]}"
    build_module ""

    unset QQ_ASAN
    export QQ_MODULE="$TOP/objs/$MODULE.so"
    export QQ_NGINX="$NGINX_BIN"

    # demo.pl checks its own options (--keep, --fast, --outage, --help)
    exec perl "$TOP/demo/demo.pl" "$@"
}


# install

nginx_configure_arg() {
    "$NGINX_BIN" -V 2>&1 | tr ' ' '\n' | sed -n "s|^--$1=||p" | tail -n 1
}

# where the installed nginx looks for modules
modules_path() {
    local path prefix
    path=$(nginx_configure_arg modules-path)
    if [ -z "$path" ]; then
        prefix=$(nginx_configure_arg prefix)
        path=${prefix:-/usr/local/nginx}/modules
    fi
    echo "$path"
}

# the load_module line: relative to the prefix when PREFIX/modules is the
# modules path (Debian: /usr/share/nginx/modules -> /usr/lib/nginx/modules)
load_module_line() {
    local mdir=$1 name=${2:-$MODULE} prefix
    prefix=$(nginx_configure_arg prefix)
    prefix=${prefix:-/usr/local/nginx}
    if [ "$(readlink -m "$prefix/modules")" = "$(readlink -m "$mdir")" ]; then
        echo "load_module modules/$name.so;"
    else
        echo "load_module $mdir/$name.so;"
    fi
}

# copy, then rename: a running nginx keeps its mapping of the old file
install_module_file() {
    local name=$1 mdir=$2
    cp "objs/$name.so" "$mdir/.$name.so.tmp.$$"
    chmod 644 "$mdir/.$name.so.tmp.$$"
    mv -f "$mdir/.$name.so.tmp.$$" "$mdir/$name.so"
    log "installed $mdir/$name.so"
}

# the stream front end: installed with the http one; enabled (Debian's
# modules-enabled) when nginx's stream module is, after it
install_stream() {
    local mdir=$1 line conf
    [ -f "objs/$STREAM_MODULE.so" ] || return 0
    install_module_file "$STREAM_MODULE" "$mdir"
    line=$(load_module_line "$mdir" "$STREAM_MODULE")

    if [ ! -d "$DEB_MODULES_ENABLED" ]; then
        log "for stream{} upstreams, add after the line above, and after"
        log "nginx's own stream module: $line"
        return 0
    fi

    conf="$DEB_MODULES_AVAILABLE/$DEB_STREAM_CONF"
    printf '%s\n' "$line" > "$conf.tmp.$$"
    chmod 644 "$conf.tmp.$$"
    mv -f "$conf.tmp.$$" "$conf"
    log "added $conf ($line)"

    # an earlier install's link would load the file twice
    if [ "$(readlink "$DEB_MODULES_ENABLED/$DEB_STREAM_LINK_OLD")" = "$conf" ]
    then
        rm -f "$DEB_MODULES_ENABLED/$DEB_STREAM_LINK_OLD"
    fi

    if ls "$DEB_MODULES_ENABLED"/*-mod-stream.conf >/dev/null 2>&1; then
        ln -sfn "$conf" "$DEB_MODULES_ENABLED/$DEB_STREAM_LINK"
        log "enabled it: $DEB_MODULES_ENABLED/$DEB_STREAM_LINK -> $conf"
    else
        log "not enabled: nginx's stream module is not (apt-get install" \
            "libnginx-mod-stream); then: ln -s $conf" \
            "$DEB_MODULES_ENABLED/$DEB_STREAM_LINK"
    fi
}

nginx_test() {
    local out status=0
    log "running $NGINX_BIN -t"
    out=$("$NGINX_BIN" -t 2>&1) || status=$?
    printf '%s\n' "$out" | sed 's/^/    /' >&2
    return "$status"
}

# rmdir DIR if it is empty and no package owns it (install created it)
remove_dir_if_ours() {
    local dir=$1
    [ -d "$dir" ] && [ ! -L "$dir" ] || return 0
    [ -z "$(ls -A "$dir")" ] || return 0
    command -v dpkg-query >/dev/null 2>&1 || return 0
    dpkg-query -S "$dir" >/dev/null 2>&1 && return 0
    rmdir "$dir" && log "removed empty directory $dir"
}

# the package that owns PATH, or the file PATH resolves to (Debian's
# /usr/share/nginx/modules is a link to /usr/lib/nginx/modules, and dpkg
# knows a file only by the path it unpacked)
path_owner() {
    local path=$1 p
    command -v dpkg-query >/dev/null 2>&1 || return 0
    for p in "$path" "$(readlink -m "$path")"; do
        dpkg-query -S "$p" 2>/dev/null \
            | sed -n '/^diversion by /d; s/: .*//p' | head -n 1 \
            | grep . && return 0
    done
    return 0
}

# refuse when a package owns a file that install writes or uninstall
# removes: the package's own files are dpkg's, upgraded and removed by apt
refuse_package_files() {
    local what=$1 f pkg
    [ -x "$NGINX_BIN" ] || return 0

    for f in "$(modules_path)/$MODULE.so" \
             "$DEB_MODULES_AVAILABLE/$DEB_MODULE_CONF" \
             "$(modules_path)/$STREAM_MODULE.so" \
             "$DEB_MODULES_AVAILABLE/$DEB_STREAM_CONF"
    do
        pkg=$(path_owner "$f")
        [ -z "$pkg" ] && continue
        die "$what: $f belongs to the package $pkg; a packaged module is" \
            "upgraded with apt (apt-get install ./dist/${DEB_PACKAGE}_*.deb)" \
            "and removed with apt-get remove $pkg"
    done
}

cmd_install() {
    local mdir line conf conf_path
    [ $# -eq 0 ] || die "install takes no options"
    need_root install

    refuse_package_files install
    cmd_build

    mdir=$(modules_path)
    line=$(load_module_line "$mdir")

    install -d -m 755 "$mdir"
    install_module_file "$MODULE" "$mdir"

    if [ -d "$DEB_MODULES_ENABLED" ]; then
        conf="$DEB_MODULES_AVAILABLE/$DEB_MODULE_CONF"
        install -d -m 755 "$DEB_MODULES_AVAILABLE"
        printf '%s\n' "$line" > "$conf.tmp.$$"
        chmod 644 "$conf.tmp.$$"
        mv -f "$conf.tmp.$$" "$conf"
        ln -sfn "$conf" "$DEB_MODULES_ENABLED/$DEB_MODULE_LINK"
        log "added $conf ($line)"
        log "enabled it: $DEB_MODULES_ENABLED/$DEB_MODULE_LINK -> $conf"

        conf_path=$(nginx_configure_arg conf-path)
        conf_path=${conf_path:-/etc/nginx/nginx.conf}
        if [ -f "$conf_path" ] \
           && ! grep -q "^[^#]*include[[:space:]]*$DEB_MODULES_ENABLED/" \
                "$conf_path"; then
            log "note: $conf_path does not include $DEB_MODULES_ENABLED/*.conf;"
            log "      add this line at its top: $line"
        fi
    else
        log "no $DEB_MODULES_ENABLED here: add this line at the top of" \
            "nginx.conf, outside any block:"
        log "    $line"
    fi

    install_stream "$mdir"

    if nginx_test; then
        log "nginx -t passed with the module loaded; reload nginx to use it" \
            "(nginx -s reload)"
    else
        die "nginx -t failed (see above); ./build.sh uninstall removes the module"
    fi
}

cmd_uninstall() {
    local mdir f removed=
    [ $# -eq 0 ] || die "uninstall takes no options"
    need_root uninstall

    refuse_package_files uninstall
    mdir=$(modules_path)

    # the links first, the modules last: nginx.conf never names a missing
    # file; the stream front end before the http one, whose core it uses
    for f in "$DEB_MODULES_ENABLED/$DEB_STREAM_LINK" \
             "$DEB_MODULES_ENABLED/$DEB_STREAM_LINK_OLD" \
             "$DEB_MODULES_AVAILABLE/$DEB_STREAM_CONF" \
             "$mdir/$STREAM_MODULE.so"
    do
        if [ -L "$f" ] || [ -e "$f" ]; then
            rm -f "$f"
            log "removed $f"
            removed=1
        fi
    done

    if [ -L "$DEB_MODULES_ENABLED/$DEB_MODULE_LINK" ] \
       || [ -e "$DEB_MODULES_ENABLED/$DEB_MODULE_LINK" ]; then
        rm -f "$DEB_MODULES_ENABLED/$DEB_MODULE_LINK"
        log "removed $DEB_MODULES_ENABLED/$DEB_MODULE_LINK"
        removed=1
    fi
    if [ -e "$DEB_MODULES_AVAILABLE/$DEB_MODULE_CONF" ]; then
        rm -f "$DEB_MODULES_AVAILABLE/$DEB_MODULE_CONF"
        log "removed $DEB_MODULES_AVAILABLE/$DEB_MODULE_CONF"
        removed=1
    fi
    if [ -e "$mdir/$MODULE.so" ]; then
        rm -f "$mdir/$MODULE.so"
        log "removed $mdir/$MODULE.so"
        removed=1
    fi
    [ -n "$removed" ] || log "the module was not installed"

    remove_dir_if_ours "$DEB_MODULES_AVAILABLE"
    remove_dir_if_ours "$mdir"
    remove_dir_if_ours "$(dirname "$mdir")"

    if nginx_test; then
        log "nginx -t passed without the module; reload nginx to unload it" \
            "(nginx -s reload)"
    else
        die "nginx -t failed (see above): does the configuration still use" \
            "qqfail directives or a load_module line of its own?"
    fi
}


main() {
    local cmd=${1:-build}
    [ $# -gt 0 ] && shift

    case $cmd in
        -h|--help|help) usage ;;
        build) cmd_build "$@" ;;
        test) cmd_test "$@" ;;
        demo) cmd_demo "$@" ;;
        fuzz) cmd_fuzz "$@" ;;
        deb) cmd_deb "$@" ;;
        install) cmd_install "$@" ;;
        uninstall) cmd_uninstall "$@" ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
