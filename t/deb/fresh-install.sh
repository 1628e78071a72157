#!/bin/bash
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
#
# Run by t/096-deb.t inside a fresh Debian root (t/deb/fresh-root.sh or
# the shared fresh-machine.sh), as root:
#
#   bash fresh-install.sh DIR
#
# DIR holds libnginx-mod-http-qqfail_*.deb and libnginx-mod-stream-qqfail_*.deb
# (the stream front end); the results go to DIR/results, one "ok - ..." or
# "not ok - ..." line per check, "# ..." for notes, and "done" last.  Both
# packages are installed with apt-get as an operator does, nginx runs with
# Debian's own nginx.conf (user www-data), a site in conf.d and a stream{}
# block added to nginx.conf, proxies HTTP and TCP through qqfail upstreams,
# is restarted with its only DNS provider down and proxies from the state
# file; then apt-get purge must leave no file behind.
#
# Everything listens on 127.96.0.x (this root shares the host's network):
# a DNS server, an HTTP backend and a TCP line-echo backend of our own
# (perl-base only) on 127.96.0.53:5396, 127.96.0.2:8096 and 127.96.0.2:8097,
# the proxy on 127.96.0.1:8096 (http) and 127.96.0.1:8097 (stream)
# (outside the test harness's blocks 127.A.B.0/24, A and B 2..250).  nginx is
# given no other resolver.

set -u

dir=$1
results=$dir/results
pkg=libnginx-mod-http-qqfail
spkg=libnginx-mod-stream-qqfail
dns_pid=
backend_pid=
echo_pid=
nginx_started=
failed=0

: > "$results"

ok() {          # ok DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >> "$dir/log" 2>&1; then
        echo "ok - $what" >> "$results"
        return 0
    fi
    echo "not ok - $what" >> "$results"
    failed=1
    return 1
}

note() {
    echo "# $*" >> "$results"
}

finish() {
    [ -n "$dns_pid" ] && kill "$dns_pid" 2>/dev/null
    [ -n "$backend_pid" ] && kill "$backend_pid" 2>/dev/null
    [ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null
    [ -n "$nginx_started" ] && nginx -s stop 2>/dev/null
    [ -f /etc/nginx/nginx.conf.qqtest ] \
        && mv /etc/nginx/nginx.conf.qqtest /etc/nginx/nginx.conf
    rm -f /usr/sbin/policy-rc.d
    echo done >> "$results"
}
trap finish EXIT

# GET http://ADDR:PORT/PATH through bash's /dev/tcp (no curl in minbase)
http_get() {
    local addr=$1 port=$2 path=$3
    exec 3<> "/dev/tcp/$addr/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: qqfail.test\r\n\r\n' "$path" >&3
    timeout 5 cat <&3
    exec 3<&-
}

# wait up to SECONDS for COMMAND to succeed
wait_for() {
    local seconds=$1 end
    shift
    end=$((SECONDS + seconds))
    while [ "$SECONDS" -lt "$end" ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

proxied() {
    http_get 127.96.0.1 8096 / | grep -q '^backend qqfail$'
}

# COUNT runs of CHECK in a row, each must pass; the figures are noted
in_a_row() {
    local count=$1 what=$2 check=$3 i fails=0
    for i in $(seq "$count"); do
        "$check" || fails=$((fails + 1))
    done
    note "$what: $count sent, $fails failed"
    [ "$fails" = 0 ]
}

# one TCP connection through the stream upstream: a line out, the same
# line back from the echo backend
tcp_proxied() {
    local line
    exec 4<> /dev/tcp/127.96.0.1/8097 || return 1
    printf 'qqfail stream %s\n' "$$" >&4
    line=$(timeout 5 head -n 1 <&4)
    exec 4<&-
    [ "$line" = "qqfail stream $$" ]
}

status_source() {
    http_get 127.96.0.1 8096 /qqfail | grep -q "\"source\": *\"$1\""
}

# the master of the stock nginx.conf (pid /run/nginx.pid) has exited; the
# processes of this root are not told from the host's by name
master=
nginx_gone() {
    local state
    [ -n "$master" ] || return 1
    # exited, or a zombie not yet reaped (by a subreaper above the root
    # or the PID namespace's first process)
    state=$(sed 's/.*) //' "/proc/$master/stat" 2>/dev/null | cut -d' ' -f1)
    [ -z "$state" ] || [ "$state" = Z ]
}

stop_nginx() {
    master=$(cat /run/nginx.pid 2>/dev/null)
    nginx -s stop
}

state_has_backend() {
    grep -q '127\.96\.0\.2' /var/lib/nginx/qqfail/state
}

start_dns() {
    perl "$dir/dns.pl" 2>> "$dir/log" &
    dns_pid=$!
}

# the backend: not in this nginx, whose own listen addresses the module
# refuses as answers (a request loop)
start_backend() {
    perl "$dir/backend.pl" 2>> "$dir/log" &
    backend_pid=$!
}

start_echo() {
    perl "$dir/echo.pl" 2>> "$dir/log" &
    echo_pid=$!
}

# the TCP backend of the stream upstream: each line back as it came
cat > "$dir/echo.pl" <<'EOF'
use strict;
use warnings;
use IO::Socket::INET;

my $s = IO::Socket::INET->new(LocalAddr => '127.96.0.2', LocalPort => 8097,
                              Listen => 16, ReuseAddr => 1)
    or die "echo.pl: $!";

while (my $c = $s->accept) {
    while (defined(my $line = <$c>)) {
        print {$c} $line;
    }
    close $c;
}
EOF

cat > "$dir/backend.pl" <<'EOF'
use strict;
use warnings;
use IO::Socket::INET;

my $s = IO::Socket::INET->new(LocalAddr => '127.96.0.2', LocalPort => 8096,
                              Listen => 16, ReuseAddr => 1)
    or die "backend.pl: $!";

while (my $c = $s->accept) {
    while (defined(my $line = <$c>)) {
        last if $line =~ /^\r?\n$/;
    }
    print {$c} "HTTP/1.0 200 OK\r\nContent-Length: 15\r\n",
               "Connection: close\r\n\r\nbackend qqfail\n";
    close $c;
}
EOF

# an authoritative server for qqfail.test: app.qqfail.test A 127.96.0.2,
# TTL 5; any other name NXDOMAIN, any other type no data
cat > "$dir/dns.pl" <<'EOF'
use strict;
use warnings;
use IO::Socket::INET;

my $s = IO::Socket::INET->new(LocalAddr => '127.96.0.53', LocalPort => 5396,
                              Proto => 'udp', ReuseAddr => 1)
    or die "dns.pl: $!";

while (1) {
    my $from = $s->recv(my $q, 512) // next;
    next if length $q < 17;
    my ($id, $flags) = unpack 'n n', $q;
    my ($off, @labels) = (12);
    while ((my $len = ord substr $q, $off, 1) != 0) {
        push @labels, lc substr $q, $off + 1, $len;
        $off += $len + 1;
        last if $off >= length $q;
    }
    my $question = substr $q, 12, $off + 5 - 12;
    my ($type) = unpack 'n', substr $q, $off + 1, 2;
    my $name = join '.', @labels;
    print STDERR "dns.pl: $name type $type\n";
    my ($rcode, $answer) = (0, '');

    if ($name ne 'app.qqfail.test') {
        $rcode = 3;
    } elsif ($type == 1) {
        $answer = pack('n n n N n', 0xc00c, 1, 1, 5, 4)
                  . pack('C4', 127, 96, 0, 2);
    }

    $s->send(pack('n n n n n n', $id, 0x8400 | ($flags & 0x0100) | $rcode,
                  1, $answer ? 1 : 0, 0, 0) . $question . $answer);
}
EOF

SECONDS=0

# a package's postinst must not start nginx here: the stock site listens
# on port 80 of every address of the host
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d

export DEBIAN_FRONTEND=noninteractive

apt-get update -q >> "$dir/log" 2>&1

cd "$dir" || exit 1
ok "apt-get install ./${pkg}_*.deb ./${spkg}_*.deb" \
    apt-get install -y -q --no-install-recommends \
        ./"${pkg}"_*.deb ./"${spkg}"_*.deb \
    || exit 1
note "installed in ${SECONDS}s:" \
     "$(dpkg-query -W -f '${Package} ${Version}; ' "$pkg" "$spkg")"
note "on $(. /etc/os-release && echo "$PRETTY_NAME"), $(nginx -v 2>&1)"

ok 'apt installed nginx for the package'"'"'s nginx-abi dependency' \
    dpkg-query -W nginx
ok 'the module is in /usr/lib/nginx/modules' \
    test -f /usr/lib/nginx/modules/ngx_http_qqfail_module.so
ok 'dh_nginx enabled it: modules-enabled/50-mod-http-qqfail.conf' \
    test "$(readlink /etc/nginx/modules-enabled/50-mod-http-qqfail.conf)" \
         = /usr/share/nginx/modules-available/mod-http-qqfail.conf
ok 'apt installed nginx'"'"'s stream module for the stream package' \
    dpkg-query -W libnginx-mod-stream
ok 'the stream front end is in /usr/lib/nginx/modules' \
    test -f /usr/lib/nginx/modules/ngx_stream_qqfail_module.so
ok 'dh_nginx enabled it: modules-enabled/70-mod-stream-qqfail.conf' \
    test "$(readlink /etc/nginx/modules-enabled/70-mod-stream-qqfail.conf)" \
         = /usr/share/nginx/modules-available/mod-stream-qqfail.conf
ok 'the state directory /var/lib/nginx/qqfail is www-data'"'"'s, 0700' \
    test "$(stat -c '%U:%G %a' /var/lib/nginx/qqfail)" = 'www-data:www-data 700'
ok 'the docs are in /usr/share/doc' \
    test -f /usr/share/doc/$pkg/copyright -a -f /usr/share/doc/$pkg/docs/directives.md.gz
ok 'nginx -t with the stock nginx.conf and the module' nginx -t
ok 'nginx -T shows the load_module line' \
    bash -c "nginx -T 2>/dev/null | grep -q '^load_module modules/ngx_http_qqfail_module.so;'"

# the stream front end after nginx's stream module and ours (http), which
# come in either order (50-mod-http-qqfail.conf, 50-mod-stream.conf)
load_order() {
    nginx -T 2>/dev/null \
        | sed -n 's|^load_module modules/\(ngx_[a-z_]*\)\.so;$|\1|p' \
        | grep -x -e ngx_stream_module -e ngx_http_qqfail_module \
                  -e ngx_stream_qqfail_module | tr '\n' ' '
}
stream_last() {
    local order
    order=$(load_order)
    note "load order: $order"
    case $order in
        'ngx_stream_module ngx_http_qqfail_module ngx_stream_qqfail_module ' \
        | 'ngx_http_qqfail_module ngx_stream_module ngx_stream_qqfail_module ')
            return 0 ;;
    esac
    return 1
}
ok 'the stream front end loads after nginx'"'"'s stream module and ours' \
    stream_last

# a site of our own on 127.96.0.x instead of the stock one on port 80
# (an administrator's change, undone below)
rm -f /etc/nginx/sites-enabled/default
cat > /etc/nginx/conf.d/qqfail-test.conf <<'EOF'
error_log /var/log/nginx/error.log info;

qqfail_provider local 127.96.0.53:5396;
qqfail_state_file /var/lib/nginx/qqfail/state;

upstream app {
    qqfail_server app.qqfail.test:8096;
    qqfail_ipv6 off;
}

server {
    listen 127.96.0.1:8096;

    location / {
        proxy_pass http://app;
    }

    location = /qqfail {
        qqfail_status;
    }
}

EOF

# and a stream{} block at the end of nginx.conf (stream{} is a main
# block: conf.d is included in http{}); the providers and the state file
# of http{} serve it
cp -p /etc/nginx/nginx.conf /etc/nginx/nginx.conf.qqtest
cat >> /etc/nginx/nginx.conf <<'EOF'

stream {
    upstream tcp {
        qqfail_server app.qqfail.test:8097;
        qqfail_ipv6 off;
    }

    server {
        listen 127.96.0.1:8097;
        proxy_pass tcp;
    }
}
EOF

start_dns
start_backend
start_echo
ok 'nginx -t with a qqfail upstream in http{} and in stream{}' nginx -t
ok 'nginx starts' nginx && nginx_started=1
ok 'a request is proxied through the qqfail upstream' wait_for 20 proxied
ok 'its address comes from a lookup (status: source live)' \
    wait_for 10 status_source live
ok '50 requests in a row, none fails' \
    in_a_row 50 'DNS up, HTTP requests' proxied
ok 'a TCP connection is proxied through the qqfail stream upstream' \
    wait_for 20 tcp_proxied
ok '20 TCP connections in a row, none fails' \
    in_a_row 20 'DNS up, TCP connections' tcp_proxied
ok 'the workers (www-data) wrote the state file' \
    wait_for 20 state_has_backend
note "state file: $(stat -c '%U %a %s bytes' /var/lib/nginx/qqfail/state 2>&1)"

# the DNS provider goes down, nginx is restarted
kill "$dns_pid"
wait "$dns_pid" 2>/dev/null
dns_pid=
ok 'nginx stops' stop_nginx
ok 'its processes are gone' wait_for 10 nginx_gone
ok 'nginx starts again with its DNS provider down' nginx
ok 'a request is proxied (DNS down, addresses from the state file)' \
    wait_for 20 proxied
ok 'the status page says so (source state_file)' \
    wait_for 10 status_source state_file
ok '50 requests in a row with DNS down, none fails' \
    in_a_row 50 'DNS down, HTTP requests' proxied
ok 'a TCP connection is proxied with DNS down (state file)' \
    wait_for 20 tcp_proxied
ok '20 TCP connections in a row with DNS down, none fails' \
    in_a_row 20 'DNS down, TCP connections' tcp_proxied
ok 'nginx stops again' stop_nginx
ok 'its processes are gone' wait_for 10 nginx_gone
nginx_started=

{ echo '--- /var/log/nginx/error.log'; cat /var/log/nginx/error.log; } \
    >> "$dir/log" 2>&1

# undo the site and the stream{} block, then purge both
rm -f /etc/nginx/conf.d/qqfail-test.conf
ln -s /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default
mv /etc/nginx/nginx.conf.qqtest /etc/nginx/nginx.conf

dpkg-query -L "$pkg" "$spkg" > "$dir/files"
ok "apt-get purge $spkg $pkg" apt-get purge -y -q "$spkg" "$pkg"

left=
while read -r f; do
    if [ -e "$f" ] && [ ! -d "$f" ]; then
        left="$left $f"
    fi
done < "$dir/files"
ok 'no file of the packages is left' test -z "$left" || note "left:$left"
note "after the purge: $(echo $left | wc -w) of" \
     "$(wc -l < "$dir/files") paths of the packages left"
ok 'the enabling links are gone' \
    test ! -e /etc/nginx/modules-enabled/50-mod-http-qqfail.conf \
         -a ! -L /etc/nginx/modules-enabled/50-mod-http-qqfail.conf \
         -a ! -e /etc/nginx/modules-enabled/70-mod-stream-qqfail.conf \
         -a ! -L /etc/nginx/modules-enabled/70-mod-stream-qqfail.conf
ok 'the state directory is gone' test ! -e /var/lib/nginx/qqfail
ok 'the docs directories are gone' \
    test ! -e /usr/share/doc/$pkg -a ! -e /usr/share/doc/$spkg
left=$(find / -xdev -path /src -prune -o -path /tmp -prune \
            -o -name '*qqfail*' -print 2>/dev/null)
ok 'no path named *qqfail* anywhere in the root' test -z "$left" \
    || note "left: $left"
ok 'nginx -t after the purge' nginx -t
note "install, run and purge took ${SECONDS}s"

exit "$failed"
