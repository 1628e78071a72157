#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# SRV records ("service=") in stream{} upstreams, on the real topology
# (nsd at both registrars, unbound providers): a TCP upstream
# (service=echo, _echo._tcp.NAME) of line-echo backends and a UDP
# upstream (service=_dns._udp) of nsd backends, every backend on a port of
# its own that is written only in the SRV records.  Under steady TCP and
# UDP load, with 0 failed connections or queries in each phase: the share
# by SRV weight, the priority-20 record taking over when the primaries'
# echo servers stop, the SRV name NXDOMAIN at registrar A failing over to
# the alias at registrar B, every provider down (stale), and a cold start
# from the state file during that outage.  The status page (http, same
# nginx) shows the stream upstreams with "service" and per-address
# "weight" and "backup".

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;

BEGIN {
    plan skip_all => 'no stream module (ngx_stream_qqfail_module.so or '
                   . 'nginx\'s ngx_stream_module.so)'
        unless QQ::Nginx->has_stream;
}

use QQ::Topo;
use QQ::Stream;
use QQ::Proc;

my $s = QQ::Topo->new(backends => 3, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);

# each backend's echo server and nsd on a port of its own

my $st = QQ::Stream->new(topo => $s,
                         eports => [ map { $t->port("echo$_") } 1 .. 3 ],
                         dports => [ map { $t->port("dnsb$_") } 1 .. 3 ]);
my @b = map { $s->backend($_)->addr } 1 .. 3;
my $ip = $t->addr(1);
my %port = map { $_ => $t->port($_) } qw(tcp udp);

# no two ports alike: a port can only have come from its own record
my %seen;
$seen{$_}++ for (map { $st->eport($_), $st->dport($_) } 1 .. 3),
                $s->bport, values %port;
ok(!grep({ $_ > 1 } values %seen), 'every port distinct');

# SRV records at both registrars: serverI.ZONE (bI) on bI's own port;
# weights 60 and 20 at priority 10, server3 at priority 20 (backup)

my %svc = (echo => '_echo._tcp', dns => '_dns._udp');

sub srv_set {
    my ($zone, $kind) = @_;
    my $port = $kind eq 'echo' ? sub { $st->eport($_[0]) }
                               : sub { $st->dport($_[0]) };
    return { srv => [
        [10, 60, $port->(1), "server1.$zone"],
        [10, 20, $port->(2), "server2.$zone"],
        [20, 10, $port->(3), "server3.$zone"],
    ] };
}

my %records;
for my $zone ('example.com', 'example.net') {
    for my $kind (keys %svc) {
        $records{"$svc{$kind}.app.$zone"} = srv_set($zone, $kind);
    }
}
$dns->set_records(\%records);
$dns->start_providers(3);

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';

my $TUNE = "        qqfail_refresh 1s;\n        qqfail_timeout 1s;\n";

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
worker_processes 2;

events {
}

http {
    %%HTTP_GLOBALS%%

@{[ $s->providers_conf ]}
    qqfail_state_file %%DIR%%/state/state;

    server {
        listen $ip:%%PORT_1%%;

        location = /status {
            qqfail_status;
        }
    }
}

stream {
    upstream echo {
        qqfail_server app.example.com app.example.net service=echo;
$TUNE    }

    upstream dns {
        qqfail_server app.example.com app.example.net service=_dns._udp;
$TUNE    }

    # a backup server keeps the lowest priority value alone, as backup
    upstream bk {
        qqfail_server app.example.com service=echo;
        qqfail_server app.example.net service=echo backup;
$TUNE    }

    log_format qq '\$upstream_addr \$qqfail_name \$qqfail_source';

    server {
        listen $ip:$port{tcp};
        proxy_pass echo;
        access_log %%DIR%%/stream.log qq;
    }

    server {
        listen $ip:$port{udp} udp;
        proxy_pass dns;
        proxy_responses 1;
        proxy_timeout 1s;
    }
}
EOF

my @figures;

sub server {
    my ($u, $name) = @_;
    return $s->server_status($name // 'app.example.com', $u);
}

sub addrs { return $s->addresses('app.example.com', $_[0]) }

# "active_name source" of upstream $u's server
sub active {
    my $x = server($_[0]) or return '';
    return ($x->{active_name} // '') . ' ' . $x->{source};
}

sub both_active {
    my ($re) = @_;
    return active('echo') =~ $re && active('dns') =~ $re;
}

# the addresses a stream upstream should have: bI:PORT of each backend
sub expect {
    my ($kind, @i) = @_;
    return join ' ', sort map {
        "$b[$_ - 1]:" . ($kind eq 'echo' ? $st->eport($_) : $st->dport($_))
    } @i;
}

sub all_addrs {
    return addrs('echo') eq expect(echo => 1, 2, 3)
        && addrs('dns') eq expect(dns => 1, 2, 3);
}

# weight/primary|backup of each address of upstream $u's server
sub weights {
    my $x = server($_[0]) or return {};
    return { map { $_->{address} => "$_->{weight}/"
                                    . ($_->{backup} ? 'backup' : 'primary') }
             @{ $x->{addresses} } };
}

sub expect_weights {
    my ($kind) = @_;
    my %w;
    for my $i (1 .. 3) {
        my $p = $kind eq 'echo' ? $st->eport($i) : $st->dport($i);
        $w{"$b[$i - 1]:$p"} = (60, 20, 10)[$i - 1] . '/'
                              . ($i == 3 ? 'backup' : 'primary');
    }
    return \%w;
}

# the backends answering $n TCP connections or UDP queries, in percent
sub share {
    my ($kind, $n) = @_;
    my %c;
    for (1 .. $n) {
        my $id = $kind eq 'tcp' ? $st->tcp_once($ip, $port{tcp})
                                : $st->udp_once($ip, $port{udp});
        $c{ $id ne '' ? $id : 'failed: ' . $st->last_error }++;
    }
    return { map { $_ => 100 * $c{$_} / $n } keys %c };
}

# the same from a load's result
sub pct {
    my ($r) = @_;
    my %sh = map { $_ => 100 * $r->{by_backend}{$_} / $r->{sent} }
             keys %{ $r->{by_backend} };
    $sh{failed} = 100 * $r->{failed} / $r->{sent} if $r->{failed};
    return \%sh;
}

sub by_weight {
    my ($sh, $what) = @_;
    push @figures, "$what: " . share_text($sh) if $what;
    return abs(($sh->{b1} // 0) - 75) <= 5 && abs(($sh->{b2} // 0) - 25) <= 5
           && !$sh->{b3} && !grep { /^failed/ } keys %$sh;
}

sub share_text {
    my ($sh) = @_;
    return join ', ', map { sprintf '%s %.1f%%', $_, $sh->{$_} } sort keys %$sh;
}

# steady TCP and UDP load
sub loads {
    return { tcp => $st->tcp_load(port => $port{tcp}),
             udp => $st->udp_load(port => $port{udp}) };
}

# let a load run $sec seconds more (a length of load, not a condition)
sub run_for {
    my ($sec) = @_;
    my $since = time;
    $t->wait_for(sub { time - $since >= $sec }, $sec + 2, "$sec s of load");
}

sub finish {
    my ($l, $what) = @_;
    my %r = map { $_ => $l->{$_}->stop } keys %$l;
    push @figures, sprintf '%-36s TCP %5d sent %d failed, UDP %5d sent '
                         . '%d failed', "$what:",
                           map { $r{$_}{sent}, $r{$_}{failed} } qw(tcp udp);
    for my $k (qw(tcp udp)) {
        ok($r{$k}{sent} > 100, "$what: steady $k load ($r{$k}{sent} sent)");
        is($r{$k}{failed}, 0, "$what: $k: $r{$k}{failed} of $r{$k}{sent} "
                              . 'failed')
            or diag explain $r{$k};
    }
    return \%r;
}

$t->start;

ok($t->wait_for(\&all_addrs, 15, 'SRV sets'),
   'ports from the SRV records: echo ' . addrs('echo') . ', dns '
   . addrs('dns'));
ok(both_active(qr/^app\.example\.com live$/),
   'both on the SRV names at registrar A');

# the status page

my $status = $s->status;
my %ctx = map { $_->{name} => $_->{context} } @{ $status->{upstreams} };
is_deeply(\%ctx, { echo => 'stream', dns => 'stream', bk => 'stream' },
          'status: both upstreams with "context": "stream"');
is(server('echo')->{service}, 'echo', 'status: echo\'s service "echo"');
is(server('dns')->{service}, '_dns._udp',
   'status: dns\'s service "_dns._udp"');
is_deeply(weights('echo'), expect_weights('echo'),
          'status: echo\'s weights from the records, priority 20 backup');
is_deeply(weights('dns'), expect_weights('dns'),
          'status: dns\'s weights from the records, priority 20 backup');
{
    my %w = %{ expect_weights('echo') };
    delete $w{"$b[2]:" . $st->eport(3)};
    s{/primary$}{/backup} for values %w;
    my $x = server('bk', 'app.example.net') // {};
    is_deeply({ map { $_->{address} => "$_->{weight}/"
                      . ($_->{backup} ? 'backup' : 'primary') }
                @{ $x->{addresses} // [] } }, \%w,
              'status: a backup server keeps priority 10 alone, as backup');
}

# the stream variables: the SRV name used, its source
sub logged {
    my ($mark) = @_;
    my @l = split /\n/, QQ::Proc::slurp($t->dir . '/stream.log', $mark);
    return $l[-1] // '';
}

my $smark = -s $t->dir . '/stream.log' || 0;
$st->tcp_once($ip, $port{tcp});
$t->wait_for(sub { logged($smark) ne '' }, 5, 'stream access log');
like(logged($smark), qr/^\S+ app\.example\.com live$/,
     'stream log: $qqfail_name app.example.com, $qqfail_source live');

# weights 60/20: 75% and 25%, the backup unused

my $sh = share(tcp => 400);
ok(by_weight($sh, 'shares, tcp 400'),
   'tcp: shares by SRV weight: ' . share_text($sh));
$sh = share(udp => 200);
ok(by_weight($sh, 'shares, udp 200'),
   'udp: shares by SRV weight: ' . share_text($sh));

# priority fallback: the primaries' echo servers stop, the priority-20
# record serves every connection

my $l = loads();
run_for(1);
$st->stop_echo($_, drain => 1) for 1, 2;
ok($t->wait_for(sub { $st->tcp_once($ip, $port{tcp}) eq 'b3' }, 10,
                'the backup answers'),
   'primaries down: the priority-20 record answers');
$sh = share(tcp => 50);
is_deeply([ keys %$sh ], [ 'b3' ], 'primaries down: only b3 answers')
    or diag explain $sh;
run_for(3);
my $r = finish($l, 'priority fallback');
ok(($r->{tcp}{by_backend}{b3} // 0) > 100,
   "the backup took the load ($r->{tcp}{by_backend}{b3} connections)");

$st->start_echo($_) for 1, 2;
ok($t->wait_for(sub { my $x = share(tcp => 8); ($x->{b1} // 0) > 0
                      && !grep { /^failed/ } keys %$x }, 20,
                'primaries back'),
   'primaries back: b1 answers again');

# NXDOMAIN for both SRV names at registrar A: registrar B's take over,
# with the same targets, ports and weights

$l = loads();
my $mark = $t->log_mark;
$dns->del_record("$svc{$_}.app.example.com") for keys %svc;
ok($t->wait_for(sub { both_active(qr/^app\.example\.net live$/) }, 20,
                'failover'),
   'SRV names NXDOMAIN at registrar A: failover to app.example.net');
ok($t->wait_for_log(qr/qqfail: every provider failed for "app\.example\.com" \(nxdomain\), failing over to "app\.example\.net", upstream "echo"/,
                    5, $mark), 'echo\'s failover logged');
ok($t->wait_for_log(qr/failing over to "app\.example\.net", upstream "dns"/,
                    5, $mark), 'dns\'s failover logged');
ok(all_addrs(), 'the aliases give the same targets and ports');
is_deeply(weights('echo'), expect_weights('echo'),
          'the alias\'s weights and backup');
$smark = -s $t->dir . '/stream.log' || 0;
$st->tcp_once($ip, $port{tcp});
$t->wait_for(sub { logged($smark) ne '' }, 5, 'stream access log');
like(logged($smark), qr/^\S+ app\.example\.net live$/,
     'stream log: $qqfail_name app.example.net');
run_for(2);
$r = finish($l, 'SRV NXDOMAIN at registrar A');
for my $k (qw(tcp udp)) {
    $sh = pct($r->{$k});
    ok(by_weight($sh, "alias, the load's $k"),
       "the load's $k shares by SRV weight: " . share_text($sh));
}

# every provider down: the last good addresses, with their ports

$l = loads();
$dns->blackhole_provider($_) for 1 .. 3;
ok($t->wait_for(sub { both_active(qr/ stale$/) }, 20, 'stale'),
   'every provider down: stale');
ok(all_addrs(), 'stale: the SRV addresses and ports kept');
run_for(3);
finish($l, 'every provider down');

# a cold start during the outage: the state file keeps ports and weights

$t->stop;
my $state = $t->read_file('state/state');
for my $kind (sort keys %svc) {
    my ($s1, $s3) = map {
        "$b[$_ - 1]:" . ($kind eq 'echo' ? $st->eport($_) : $st->dport($_))
    } 1, 3;
    (my $q = $svc{$kind}) =~ s/\./\\./g;
    my ($line) = $state =~ /^(s stream:$kind ${q}\.app\.example\.com:srv,${q}\.app\.example\.net:srv 1 \d+ .*)$/m;
    ok(defined $line && $line =~ / \Q$s1\E\/60( |$)/
       && $line =~ / \Q$s3\E\/10b( |$)/,
       "state file: $kind\'s SRV addresses, ports and weights, backup "
       . 'marked')
        or diag $state;
}

ok($t->try_start, 'nginx starts with every provider down')
    or diag $t->last_start_error;
ok(both_active(qr/^app\.example\.net state_file$/),
   'cold start: both from the state file');
ok(all_addrs(), 'cold start: the ports from the file');
is_deeply(weights('echo'), expect_weights('echo'),
          'cold start: echo\'s weights, the backup still backup');
is_deeply(weights('dns'), expect_weights('dns'),
          'cold start: dns\'s weights, the backup still backup');

$sh = share(tcp => 400);
ok(by_weight($sh, 'cold start, tcp 400'),
   'cold start: tcp shares by SRV weight: ' . share_text($sh));
$sh = share(udp => 200);
ok(by_weight($sh, 'cold start, udp 200'),
   'cold start: udp shares by SRV weight: ' . share_text($sh));

$l = loads();
run_for(3);
finish($l, 'cold start during the total outage');

# DNS back, the SRV names back at registrar A

$l = loads();
$dns->restore_provider($_) for 1 .. 3;
$dns->set_records({ map { ("$svc{$_}.app.example.com"
                           => srv_set('example.com', $_)) } keys %svc });
$dns->flush_provider;
ok($t->wait_for(sub { both_active(qr/^app\.example\.com live$/) }, 30,
                'back'),
   'DNS back: the SRV names at registrar A again');
ok(all_addrs(), 'DNS back: the same addresses');
run_for(1);
finish($l, 'DNS back');

diag $_ for @figures;

$t->stop;
ok(!$t->sanitizer_reports, 'no sanitizer reports');

done_testing;
