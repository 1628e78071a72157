#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Every directive of the contract in its good and bad forms: `nginx -t`
# with the module loaded accepts the good ones and rejects each bad one
# with an [emerg] that names the directive and value, in FILE:LINE.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;
use QQ::MMDB;

my $t = QQ::Nginx->new;

my $asn_db = QQ::MMDB::write_asn($t->dir . '/asn.mmdb',
    { '127.0.0.0/8' => [64500, 'Test AS'] });
my $country_db = QQ::MMDB::write_country($t->dir . '/country.mmdb',
    { '127.0.0.0/8' => ['DE', 'EU'] });

open(my $fh, '>', $t->dir . '/garbage.mmdb') or die $!;
print $fh "this is not a MaxMind database\n" x 10;
close $fh;

my $P = '127.0.0.53';

# Each case: http-level lines, upstream-level lines, location-level lines.
# A line containing "#BAD" is the one the [emerg] must point at.

my @cases = (
    # module load and the full good form
    [ 'minimal qqfail upstream', ok => {
        up => "qqfail_server server1.example.com;" } ],
    [ 'every directive, good values', ok => {
        http => "qqfail_provider p1 $P 127.0.0.54:5353;\n"
              . "qqfail_provider p-2.x [::1]:53 ::1;\n"
              . "qqfail_zone 2m;\n"
              . "qqfail_state_file state/qq.state;\n"
              . "qqfail_geoip2 $asn_db $country_db;",
        up => "qqfail_server server1.example.com server1.example.net:8080 "
            . "192.0.2.1 [2001:db8::1]:81 weight=2 max_fails=3 "
            . "fail_timeout=5s;\n"
            . "qqfail_server Server2.Example.COM. backup;\n"
            . "qqfail_server server3.example.com down max_fails=0;\n"
            . "qqfail_refresh 10s;\nqqfail_timeout 500ms;\n"
            . "qqfail_max_stale off;\nqqfail_quorum 2;\n"
            . "qqfail_allow 127.0.0.0/8 ::1/128 asn=64500;\n"
            . "qqfail_allow country=de 2001:db8::/32 192.0.2.1;\n"
            . "qqfail_ipv6 off;\nkeepalive 8;",
        loc => "qqfail_status;" } ],
    [ 'status formats', ok => {
        http => "qqfail_provider p1 $P;",
        loc => "qqfail_status prometheus;",
        extra_loc => "qqfail_status html;" } ],
    [ 'state file off, max_stale time', ok => {
        http => "qqfail_provider p1 $P;\nqqfail_state_file off;",
        up => "qqfail_server a.example.com;\nqqfail_max_stale 2h;\n"
            . "qqfail_ipv6 on;" } ],
    [ 'dnssec on, before qqfail_server', ok => {
        up => "qqfail_dnssec on;\nqqfail_server a.example.com;" } ],
    [ 'dnssec off', ok => {
        up => "qqfail_server a.example.com;\nqqfail_dnssec off;" } ],
    [ 'balancing methods after qqfail_server', ok => {
        up => "qqfail_server a.example.com max_conns=10;\nhash \$uri;" } ],
    [ 'hash consistent before qqfail_server, then keepalive', ok => {
        up => "hash \$arg_k consistent;\n"
            . "qqfail_server a.example.com weight=3;\n"
            . "qqfail_server b.example.com;\nkeepalive 4;" } ],
    [ 'ip_hash', ok => { up => "ip_hash;\nqqfail_server a.example.com;" } ],
    [ 'least_conn with backup', ok => {
        up => "qqfail_server a.example.com;\n"
            . "qqfail_server b.example.com backup;\nleast_conn;" } ],
    [ 'random', ok => { up => "qqfail_server a.example.com;\nrandom;" } ],
    [ 'random two least_conn', ok => {
        up => "random two least_conn;\nqqfail_server a.example.com "
            . "max_conns=0;" } ],
    [ 'ASN database alone', ok => {
        http => "qqfail_provider p1 $P;\nqqfail_geoip2 $asn_db;",
        up => "qqfail_server a.example.com;\nqqfail_allow asn=64500;" } ],

    # qqfail_provider
    [ 'provider with a hostname', err => {
        http => "qqfail_provider p1 ns1.example.com; #BAD" },
      qr/invalid address "ns1\.example\.com" in "qqfail_provider" "p1"/ ],
    [ 'provider with a bad port', err => {
        http => "qqfail_provider p1 127.0.0.1:70000; #BAD" },
      qr/invalid address "127\.0\.0\.1:70000" in "qqfail_provider"/ ],
    [ 'provider address forms', ok => {
        http => "qqfail_provider p1 [::1] [127.0.0.1]:53 127.0.0.2 ::2;",
        up => "qqfail_server a.example.com;" } ],
    [ 'provider with a port range', err => {
        http => "qqfail_provider p1 127.0.0.1:53-54; #BAD" },
      qr/invalid address "127\.0\.0\.1:53-54" in "qqfail_provider"/ ],
    [ 'provider with port 0', err => {
        http => "qqfail_provider p1 [::1]:0; #BAD" },
      qr/invalid address "\[::1\]:0" in "qqfail_provider"/ ],
    [ 'provider with text after the brackets', err => {
        http => "qqfail_provider p1 [::1]53; #BAD" },
      qr/invalid address "\[::1\]53" in "qqfail_provider"/ ],
    [ 'provider with empty brackets', err => {
        http => "qqfail_provider p1 []:53; #BAD" },
      qr/invalid address "\[\]:53" in "qqfail_provider"/ ],
    [ 'provider with a bad name', err => {
        http => "qqfail_provider p/1 $P; #BAD" },
      qr/invalid "qqfail_provider" name "p\/1"/ ],
    [ 'duplicate provider name', err => {
        http => "qqfail_provider p1 $P;\nqqfail_provider p1 127.0.0.54; #BAD" },
      qr/"qqfail_provider" name "p1" is duplicate/ ],
    [ 'provider without address', err => {
        http => "qqfail_provider p1; #BAD" },
      qr/invalid number of arguments in "qqfail_provider" directive/ ],
    [ 'provider pacing parameters', ok => {
        http => "qqfail_provider p1 $P 127.0.0.54 max_inflight=64 rate=200;\n"
              . "qqfail_provider p2 127.0.0.55 rate=2;",
        up => "qqfail_server a.example.com;" } ],
    [ 'provider max_inflight too small', err => {
        http => "qqfail_provider p1 $P max_inflight=1; #BAD" },
      qr/invalid "max_inflight" value "max_inflight=1" in "qqfail_provider" "p1", 2 or more is expected/ ],
    [ 'provider rate not a number', err => {
        http => "qqfail_provider p1 $P rate=fast; #BAD" },
      qr/invalid "rate" value "rate=fast" in "qqfail_provider" "p1"/ ],
    [ 'provider unknown parameter', err => {
        http => "qqfail_provider p1 $P weight=2; #BAD" },
      qr/invalid parameter "weight=2" in "qqfail_provider" "p1"/ ],
    [ 'provider with parameters only', err => {
        http => "qqfail_provider p1 rate=10; #BAD" },
      qr/no address in "qqfail_provider" "p1"/ ],
    [ 'provider in upstream context', err => {
        up => "qqfail_server a.example.com;\nqqfail_provider p1 $P; #BAD" },
      qr/"qqfail_provider" directive is not allowed here/ ],

    # qqfail_zone
    [ 'zone too small', err => { http => "qqfail_zone 4k; #BAD" },
      qr/"qqfail_zone" size "4k" is too small, the minimum is 128k/ ],
    [ 'zone too small for the servers', err => {
        http => "qqfail_provider p1 $P;\nqqfail_zone 128k; #BAD",
        up => join('', map {
            "qqfail_server s$_.example.com s$_.example.net;\n" } 1 .. 1000) },
      qr/"qqfail_zone" 128k is too small for the 1000 configured server\(s\): /
      . qr/their records alone take \d+k; set it to at least \d+k/ ],
    # the records of 1000 servers take about 280k, their independence
    # reports 250k more: the reports alone would be missing
    [ 'zone that holds the records but not the independence reports',
      warn => {
        http => "qqfail_provider p1 $P;\nqqfail_zone 384k; #BAD",
        up => join('', map {
            "qqfail_server s$_.example.com s$_.example.net;\n" } 1 .. 1000) },
      qr/"qqfail_zone" 384k holds the records of the 1000 configured /
      . qr/server\(s\) but not the independence check's reports of the /
      . qr/1000 with aliases, \d+k in all: the reports that do not fit are /
      . qr/missing from the status page; set it to at least \d+k/ ],
    [ 'zone that holds the records, no report for a name and a literal',
      ok => {
        http => "qqfail_provider p1 $P;\nqqfail_zone 384k;",
        up => join('', map {
            "qqfail_server s$_.example.com 192.0.2.1:80;\n" } 1 .. 1000) } ],
    [ 'zone that holds the servers and their reports', ok => {
        http => "qqfail_provider p1 $P;\nqqfail_zone 640k;",
        up => join('', map {
            "qqfail_server s$_.example.com s$_.example.net;\n" } 1 .. 1000) } ],
    [ 'zone size not a size', err => { http => "qqfail_zone lots; #BAD" },
      qr/invalid "qqfail_zone" size "lots"/ ],
    [ 'zone duplicate', err => {
        http => "qqfail_zone 1m;\nqqfail_zone 2m; #BAD" },
      qr/"qqfail_zone" directive is duplicate/ ],

    # qqfail_state_file
    [ 'state file is a directory', err => {
        http => "qqfail_state_file /var/lib/; #BAD" },
      qr/invalid "qqfail_state_file" path "\/var\/lib\/"/ ],
    [ 'state file path too long', err => {
        http => "qqfail_state_file /" . ('a' x 4090) . "; #BAD" },
      qr/invalid "qqfail_state_file" path of 4091 bytes, at most 4064 bytes/ ],
    [ 'state file off, then a path', err => {
        http => "qqfail_state_file off;\nqqfail_state_file b; #BAD" },
      qr/"qqfail_state_file" directive is duplicate/ ],
    [ 'state file duplicate', err => {
        http => "qqfail_state_file a;\nqqfail_state_file b; #BAD" },
      qr/"qqfail_state_file" directive is duplicate/ ],

    # qqfail_geoip2
    [ 'geoip2 missing file', err => {
        http => "qqfail_geoip2 %%DIR%%/none.mmdb; #BAD" },
      qr/"qqfail_geoip2" cannot open database ".*none\.mmdb"/ ],
    [ 'geoip2 corrupt file', err => {
        http => "qqfail_geoip2 %%DIR%%/garbage.mmdb; #BAD" },
      qr/"qqfail_geoip2" cannot open database ".*garbage\.mmdb": .*(invalid|metadata)/i ],
    [ 'geoip2 two ASN databases', err => {
        http => "qqfail_geoip2 $asn_db $asn_db; #BAD" },
      qr/"qqfail_geoip2" database ".*asn\.mmdb" provides the same data/ ],

    # qqfail_server
    [ 'server weight=0', err => {
        up => "qqfail_server a.example.com weight=0; #BAD" },
      qr/invalid "weight" value "0" in "qqfail_server"/ ],
    [ 'server max_fails=x', err => {
        up => "qqfail_server a.example.com max_fails=x; #BAD" },
      qr/invalid "max_fails" value "x" in "qqfail_server"/ ],
    [ 'server fail_timeout=soon', err => {
        up => "qqfail_server a.example.com fail_timeout=soon; #BAD" },
      qr/invalid "fail_timeout" value "soon"/ ],
    [ 'server unknown parameter', err => {
        up => "qqfail_server a.example.com maxfails=3; #BAD" },
      qr/invalid parameter "maxfails=3" in "qqfail_server"/ ],
    [ 'server bad name', err => {
        up => "qqfail_server bad_name!.example.com; #BAD" },
      qr/invalid name "bad_name!\.example\.com" in "qqfail_server"/ ],
    [ 'server bad port', err => {
        up => "qqfail_server a.example.com:0; #BAD" },
      qr/invalid name "a\.example\.com:0" in "qqfail_server"/ ],
    [ 'server IP literal forms', ok => {
        up => "qqfail_server [::1] [2001:db8::2]:8080 192.0.2.2:81 "
            . "2001:db8::3;" } ],
    [ 'server IP literal with a port range', err => {
        up => "qqfail_server 192.0.2.1:80-81; #BAD" },
      qr/invalid name "192\.0\.2\.1:80-81" in "qqfail_server"/ ],
    [ 'server IPv6 literal with port 0', err => {
        up => "qqfail_server [2001:db8::1]:0; #BAD" },
      qr/invalid name "\[2001:db8::1\]:0" in "qqfail_server"/ ],
    [ 'server IPv4 literal with a port too large', err => {
        up => "qqfail_server 192.0.2.1:65536; #BAD" },
      qr/invalid name "192\.0\.2\.1:65536" in "qqfail_server"/ ],
    [ 'server label too long', err => {
        up => "qqfail_server " . ('x' x 64) . ".example.com; #BAD" },
      qr/invalid name "x{64}\.example\.com" in "qqfail_server"/ ],
    [ 'server all-digit name', err => {
        up => "qqfail_server 10.0.0; #BAD" },
      qr/invalid name "10\.0\.0" in "qqfail_server"/ ],
    [ 'server duplicate alias', err => {
        up => "qqfail_server a.example.com A.example.com; #BAD" },
      qr/name "A\.example\.com" is duplicate in "qqfail_server"/ ],
    [ 'server with only parameters', err => {
        up => "qqfail_server weight=2; #BAD" },
      qr/no name in "qqfail_server"/ ],
    [ 'server after keepalive', err => {
        up => "keepalive 4;\nqqfail_server a.example.com; #BAD" },
      qr/"qqfail_server" must precede "keepalive"/ ],
    [ 'backup with hash before it', err => {
        up => "hash \$uri;\nqqfail_server a.example.com backup; #BAD" },
      qr/balancing method does not support parameter "backup"/ ],
    [ 'backup with ip_hash after it', err => {
        up => "qqfail_server a.example.com;\n"
            . "qqfail_server b.example.com backup;\nip_hash; #BAD" },
      qr/qqfail: balancing method "ip_hash" does not support parameter "backup" of "qqfail_server" in upstream "app"/ ],
    [ 'backup with random after it', err => {
        up => "qqfail_server b.example.com backup;\nrandom two; #BAD" },
      qr/qqfail: balancing method "random" does not support parameter "backup"/ ],
    [ 'method after keepalive', err => {
        up => "qqfail_server a.example.com; #BAD\nkeepalive 4;\nleast_conn;" },
      qr/qqfail: a balancing method .* must come before "keepalive" in upstream "app"/ ],
    [ 'server after a method and keepalive', err => {
        up => "ip_hash;\nkeepalive 4;\nqqfail_server a.example.com; #BAD" },
      qr/"qqfail_server" must precede "keepalive"/ ],
    [ 'hash without a key', err => {
        up => "qqfail_server a.example.com;\nhash; #BAD" },
      qr/invalid number of arguments in "hash" directive/ ],
    [ 'hash with a bad flag', err => {
        up => "qqfail_server a.example.com;\nhash \$uri sticky; #BAD" },
      qr/invalid parameter "sticky"/ ],
    [ 'service=: SRV names, IP literals with ports', ok => {
        up => "qqfail_server app.example.com app.example.net 192.0.2.1:80 "
            . "service=http;\n"
            . "qqfail_server example.com service=server1.backend backup;" } ],
    [ 'service= with a port on a name', err => {
        up => "qqfail_server app.example.com:80 service=http; #BAD" },
      qr/name "app\.example\.com:80" has a port, but with "service" the ports come from the SRV records/ ],
    [ 'service= with an IP literal without a port', err => {
        up => "qqfail_server app.example.com 192.0.2.1 service=http; #BAD" },
      qr/IP address "192\.0\.2\.1" needs a port with "service" in "qqfail_server"/ ],
    [ 'service= with weight=', err => {
        up => "qqfail_server app.example.com service=http weight=2; #BAD" },
      qr/"weight" cannot be used with "service" in "qqfail_server", the weights come from the SRV records/ ],
    [ 'service= with an empty label', err => {
        up => "qqfail_server app.example.com service=a..b; #BAD" },
      qr/invalid "service" value "a\.\.b" in "qqfail_server"/ ],
    [ 'service= empty or odd', err => {
        up => "qqfail_server app.example.com service=ht/tp; #BAD" },
      qr/invalid "service" value "ht\/tp" in "qqfail_server"/ ],
    [ 'max_conns not a number', err => {
        up => "qqfail_server a.example.com max_conns=x; #BAD" },
      qr/invalid "max_conns" value "x" in "qqfail_server"/ ],
    [ 'plain server mixed in', err => {
        up => "qqfail_server a.example.com; #BAD\nserver 127.0.0.1:1;" },
      qr/qqfail: "server" cannot be combined with "qqfail_server" in upstream "app"/ ],
    [ 'zone in a qqfail upstream', err => {
        up => "zone z 64k;\nqqfail_server a.example.com; #BAD" },
      qr/"qqfail_server" cannot be combined with "zone" in upstream "app"/ ],
    [ 'qqfail_server in http context', err => {
        http => "qqfail_server a.example.com; #BAD" },
      qr/"qqfail_server" directive is not allowed here/ ],

    # upstream-level settings
    [ 'refresh below 1s', err => {
        up => "qqfail_server a.example.com;\nqqfail_refresh 500ms; #BAD" },
      qr/invalid "qqfail_refresh" value "500ms"/ ],
    [ 'refresh duplicate', err => {
        up => "qqfail_server a.example.com;\nqqfail_refresh 5s;\n"
            . "qqfail_refresh 6s; #BAD" },
      qr/"qqfail_refresh" directive is duplicate/ ],
    [ 'refresh not a time', err => {
        up => "qqfail_server a.example.com;\nqqfail_refresh soon; #BAD" },
      qr/invalid "qqfail_refresh" value "soon", a time from 1000ms to 604800000ms is expected/ ],
    [ 'refresh above a week', err => {
        up => "qqfail_server a.example.com;\nqqfail_refresh 8d; #BAD" },
      qr/invalid "qqfail_refresh" value "8d", a time from 1000ms to 604800000ms is expected/ ],
    [ 'timeout duplicate', err => {
        up => "qqfail_server a.example.com;\nqqfail_timeout 1s;\n"
            . "qqfail_timeout 1s; #BAD" },
      qr/"qqfail_timeout" directive is duplicate/ ],
    [ 'timeout not a time', err => {
        up => "qqfail_server a.example.com;\nqqfail_timeout fast; #BAD" },
      qr/invalid "qqfail_timeout" value "fast"/ ],
    [ 'timeout too long', err => {
        up => "qqfail_server a.example.com;\nqqfail_timeout 2m; #BAD" },
      qr/invalid "qqfail_timeout" value "2m", a time from 10ms to 60000ms is expected/ ],
    [ 'max_stale bad', err => {
        up => "qqfail_server a.example.com;\nqqfail_max_stale never; #BAD" },
      qr/invalid "qqfail_max_stale" value "never"/ ],
    [ 'quorum zero', err => {
        up => "qqfail_server a.example.com;\nqqfail_quorum 0; #BAD" },
      qr/invalid "qqfail_quorum" value "0"/ ],
    [ 'quorum not a number', err => {
        up => "qqfail_server a.example.com;\nqqfail_quorum two; #BAD" },
      qr/invalid "qqfail_quorum" value "two", a number from 1 to \d+ is expected/ ],
    [ 'quorum above the maximum', err => {
        up => "qqfail_server a.example.com;\nqqfail_quorum 99; #BAD" },
      qr/invalid "qqfail_quorum" value "99", a number from 1 to \d+ is expected/ ],
    [ 'quorum duplicate', err => {
        up => "qqfail_server a.example.com;\nqqfail_quorum 1;\n"
            . "qqfail_quorum 1; #BAD" },
      qr/"qqfail_quorum" directive is duplicate/ ],
    [ 'quorum above the provider count', err => {
        http => "qqfail_provider p1 $P;\nqqfail_provider p2 127.0.0.54;",
        up => "qqfail_server a.example.com;\nqqfail_quorum 3; #BAD" },
      qr/qqfail: "qqfail_quorum" 3 exceeds the 2 configured provider\(s\) in upstream "app"/ ],
    [ 'allow bad CIDR', err => {
        up => "qqfail_server a.example.com;\nqqfail_allow 10.0.0.0/33; #BAD" },
      qr/invalid "qqfail_allow" rule "10\.0\.0\.0\/33"/ ],
    [ 'allow bad country', err => {
        up => "qqfail_server a.example.com;\nqqfail_allow country=DEU; #BAD" },
      qr/invalid "qqfail_allow" rule "country=DEU"/ ],
    [ 'allow bad asn', err => {
        up => "qqfail_server a.example.com;\nqqfail_allow asn=-5; #BAD" },
      qr/invalid "qqfail_allow" rule "asn=-5"/ ],
    [ 'allow asn without database', err => {
        up => "qqfail_server a.example.com;\nqqfail_allow asn=64500; #BAD" },
      qr/qqfail: "qqfail_allow" rule "asn=64500" needs an ASN database/ ],
    [ 'allow country with only an ASN database', err => {
        http => "qqfail_geoip2 $asn_db;",
        up => "qqfail_server a.example.com;\nqqfail_allow country=de; #BAD" },
      qr/qqfail: "qqfail_allow" rule "country=DE" needs a Country or City database/ ],
    [ 'ipv6 bad', err => {
        up => "qqfail_server a.example.com;\nqqfail_ipv6 maybe; #BAD" },
      qr/invalid value "maybe" in "qqfail_ipv6" directive, it must be "on" or "off"/ ],
    [ 'dnssec bad', err => {
        up => "qqfail_server a.example.com;\nqqfail_dnssec yes; #BAD" },
      qr/invalid value "yes" in "qqfail_dnssec" directive, it must be "on" or "off"/ ],
    [ 'dnssec duplicate', err => {
        up => "qqfail_server a.example.com;\nqqfail_dnssec on;\n"
            . "qqfail_dnssec off; #BAD" },
      qr/"qqfail_dnssec" directive is duplicate/ ],
    [ 'dnssec in http context', err => {
        http => "qqfail_provider p1 $P;\nqqfail_dnssec on; #BAD" },
      qr/"qqfail_dnssec" directive is not allowed here/ ],
    [ 'ipv6 duplicate', err => {
        up => "qqfail_server a.example.com;\nqqfail_ipv6 on;\n"
            . "qqfail_ipv6 on; #BAD" },
      qr/"qqfail_ipv6" directive is duplicate/ ],
    [ 'settings without qqfail_server', err => {
        up => "server 127.0.0.1:1;\nqqfail_refresh 5s; #BAD" },
      qr/qqfail: upstream "app" has qqfail directives but no "qqfail_server"/ ],

    # qqfail_status
    [ 'status bad format', err => { loc => "qqfail_status xml; #BAD" },
      qr/invalid "qqfail_status" format "xml"/ ],
    [ 'status duplicate', err => {
        loc => "qqfail_status;\nqqfail_status html; #BAD" },
      qr/"qqfail_status" directive is duplicate/ ],
);

# nginx 1.29.7 and later: "keepalive" no longer takes the balancing
# method's place (it wraps every upstream's at the end of the configuration,
# and is on by default), so it may come anywhere in the upstream, as in a
# stock one: the order cases before it are accepted there
if ($t->nginx_at_least('1.29.7')) {
    for my $case (@cases) {
        next unless $case->[0] =~ /after (?:a method and )?keepalive$/;
        $case = [ "$case->[0] (any order since nginx 1.29.7)", ok => $case->[2] ];
    }
}

# nginx 1.29.6 and later: "sticky" picks a peer of nginx's round robin,
# refused in a qqfail upstream on either side of qqfail_server
if ($t->nginx_at_least('1.29.6')) {
    push @cases, (
        [ 'sticky in a stock upstream', ok => {
            up => "server 127.0.0.1:1;\nsticky cookie srv;" } ],
        [ 'sticky after qqfail_server', err => {
            up => "qqfail_server a.example.com;\nsticky cookie srv; #BAD" },
          qr/qqfail: "sticky" cannot be combined with "qqfail_server" in upstream "app"/ ],
        [ 'sticky before qqfail_server', err => {
            up => "sticky cookie srv;\nqqfail_server a.example.com; #BAD" },
          qr/"qqfail_server" must precede "keepalive" and cannot be combined with another load balancing method/ ],
    );
}

# nginx 1.27.3 and later resolve a "server" name at run time ("resolve",
# with a zone and a resolver): still a "server" line, which a qqfail
# upstream refuses on either side of qqfail_server
if ($t->nginx_at_least('1.27.3')) {
    push @cases, (
        [ 'server resolve after qqfail_server', err => {
            http => "resolver 127.0.0.1:1;",
            up => "qqfail_server a.example.com; #BAD\n"
                . "server b.example.com resolve;" },
          qr/qqfail: "server" cannot be combined with "qqfail_server" in upstream "app"/ ],
        [ 'server resolve before qqfail_server', err => {
            http => "resolver 127.0.0.1:1;",
            up => "server b.example.com resolve;\n"
                . "qqfail_server a.example.com; #BAD" },
          qr/qqfail: "server" cannot be combined with "qqfail_server" in upstream "app"/ ],
        [ 'server resolve with a zone', err => {
            http => "resolver 127.0.0.1:1;",
            up => "zone z 64k;\nserver b.example.com resolve;\n"
                . "qqfail_server a.example.com; #BAD" },
          qr/"qqfail_server" cannot be combined with "zone" in upstream "app"/ ],
    );
}

sub config {
    my ($c) = @_;
    my $up = $c->{up} // "server 127.0.0.1:1;";
    my $text = <<"EOF";
%%LOAD_MODULE%%
%%GLOBALS%%
events {
}
http {
    %%HTTP_GLOBALS%%
@{[ $c->{http} // '' ]}
    upstream app {
@{[ $up ]}
    }
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        location / {
            proxy_pass http://app;
        }
        location /status {
@{[ $c->{loc} // '' ]}
        }
        location /status2 {
@{[ $c->{extra_loc} // '' ]}
        }
    }
}
EOF
    return $text;
}

for my $case (@cases) {
    my ($name, $kind, $c, $re) = @$case;
    my $text = config($c);
    $t->write_config($text);

    my ($ok, $out) = $t->test_config;

    if ($kind eq 'ok') {
        ok($ok, "accepted: $name") or diag($out);
        next;
    }

    open(my $cf, '<', $t->dir . '/nginx.conf') or die $!;
    my $line = 0;
    while (<$cf>) {
        if (/#BAD/) {
            $line = $.;
            last;
        }
    }
    close $cf;

    if ($kind eq 'warn') {
        ok($ok && $out =~ /\[warn\].*$re.* in \S*nginx\.conf:$line\b/,
           "accepted with a warning: $name (line $line)")
            or diag("nginx -t said:\n$out");
        next;
    }

    ok(!$ok && $out =~ /\[emerg\].*$re.* in \S*nginx\.conf:$line\b/,
       "rejected: $name (line $line)")
        or diag("nginx -t said:\n$out");
}

done_testing();
