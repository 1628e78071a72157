#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The stream balancing methods over qqfail_server lines through the 2012
# outage (t/042-methods-outage.t's phases, for stream{}): registrar A
# down (every server on its example.net alias), registrar A back, every
# DNS provider down (the last good addresses), DNS back.  One nginx with
# one stream upstream per method: round robin, "hash $remote_addr",
# "hash $remote_addr consistent", least_conn, random and "random two"
# over TCP (line-echo backends), round robin and "hash $remote_addr" over
# UDP (DNS backends, nsd).  The aliases point at other backends (b4..b6
# where the primary names point at b1..b3), so that who answers tells
# which name is in use.  Under load from 40 client addresses in turn,
# per method and phase: no connection or query fails while the names
# change, and once they have changed only the right backends answer; a
# hash keeps each client on its server through every phase, as a stock
# "hash $remote_addr" of the same addresses puts it.  During the total
# outage also a reload, and a stop and a cold start from the state file.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;
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

my $s = QQ::Topo->new(backends => 6, providers => 3);
my ($t, $dns) = ($s->t, $s->dns);
my $st = QQ::Stream->new(topo => $s);
my ($EP, $DP) = ($st->eport, $st->dport);
my @b = map { $s->backend($_)->addr } 1 .. 6;

# server1..3.example.com at b1..b3, server1..3.example.net at b4..b6
$dns->set_records({ map { ("server$_.example.net" => [ $b[$_ + 2] ]) }
                        1 .. 3 });
is($dns->records->{'server1.example.net'}[0], $b[3],
   'server1.example.net is b4\'s address');

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';

my $ip = $t->addr(1);
my @clients = map { $t->addr(200 + $_) } 1 .. 40;

# [ upstream, kind, method line ]
my @UP = (
    [ rr        => tcp => '' ],
    [ hash      => tcp => 'hash $remote_addr;' ],
    [ chash     => tcp => 'hash $remote_addr consistent;' ],
    [ lc        => tcp => 'least_conn;' ],
    [ random    => tcp => 'random;' ],
    [ random2   => tcp => 'random two least_conn;' ],
    [ udp_rr    => udp => '' ],
    [ udp_hash  => udp => 'hash $remote_addr;' ],
);
my @names = map { $_->[0] } @UP;
my %kind = map { $_->[0] => $_->[1] } @UP;
my %port = map { $_ => $t->port($_) } @names, qw(st_hash st_hash_net);

my ($upstreams, $servers) = ('', '');
my $i = 0;
for my $u (@UP) {
    my ($name, $kind, $method) = @$u;
    my $p = $kind eq 'udp' ? $DP : $EP;
    my $lines = join '', map {
        "        qqfail_server server$_.example.com:$p "
      . "server$_.example.net:$p" . ($_ == 1 ? ' weight=2' : '') . ";\n"
    } 1 .. 3;
    $method = $method ? "        $method\n" : '';
    # the method line before the servers, or after them
    $upstreams .= "    upstream $name {\n"
                . ($i++ % 2 ? $lines . $method : $method . $lines)
                . "        qqfail_refresh 2s;\n"
                . "        qqfail_timeout 1s;\n    }\n\n";
    $servers .= $kind eq 'udp'
        ? "    server {\n        listen $ip:$port{$name} udp;\n"
          . "        proxy_pass $name;\n        proxy_responses 1;\n"
          . "        proxy_timeout 1s;\n    }\n\n"
        : "    server { listen $ip:$port{$name}; proxy_pass $name; }\n\n";
}

# the control: stock "hash $remote_addr" of b1..b3, and of b4..b6
for my $c ([ st_hash => 0 ], [ st_hash_net => 3 ]) {
    $upstreams .= "    upstream $c->[0] {\n        hash \$remote_addr;\n"
                . join('', map {
                      "        server $b[$c->[1] + $_ - 1]:$EP"
                      . ($_ == 1 ? ' weight=2' : '') . ";\n" } 1 .. 3)
                . "    }\n\n";
    $servers .= "    server { listen $ip:$port{$c->[0]}; "
              . "proxy_pass $c->[0]; }\n\n";
}

my $prov = $s->providers_conf;

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
worker_processes 2;

events {
}

http {
    %%HTTP_GLOBALS%%

$prov
    qqfail_state_file %%DIR%%/state/state;

    server {
        listen $ip:%%PORT_1%%;
        location = /status { qqfail_status; }
    }
}

stream {
$upstreams
$servers}
EOF

$t->start;

# every server of every qqfail upstream: "active_name source" matches
sub all_active {
    my ($re) = @_;
    my $x = $s->status or return 0;
    my $n = 0;
    for my $u (@{ $x->{upstreams} }) {
        next unless $kind{ $u->{name} };
        for my $sv (@{ $u->{servers} }) {
            my $got = ($sv->{active_name} // '') . " $sv->{source}";
            return 0 unless $got =~ $re;
            $n++;
        }
    }
    return $n == 3 * @names;
}

ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                15, 'resolved'),
   'every server of every stream upstream on its primary name');

my $x = $s->status;
is(join(' ', map { "$_->{name}=$_->{method}" }
             grep { $_->{context} eq 'stream' } @{ $x->{upstreams} }),
   'rr=round_robin hash=hash chash=hash consistent lc=least_conn '
   . 'random=random random2=random two udp_rr=round_robin '
   . 'udp_hash=hash',
   'status: the method of each stream upstream');

# one connection (or query) to upstream $u from each client: client => id
sub map_of {
    my ($u) = @_;
    my %m;
    for my $c (@clients) {
        my $id = ($kind{$u} // 'tcp') eq 'udp'
            ? $st->udp_once($ip, $port{$u}, local => $c)
            : $st->tcp_once($ip, $port{$u}, local => $c);
        $m{$c} = $id ne '' ? $id : 'failed: ' . $st->last_error;
    }
    return \%m;
}

sub counts {
    my ($m) = @_;
    my %n;
    $n{$_}++ for values %$m;
    return join ' ', map { "$_=$n{$_}" } sort keys %n;
}

# every client's backend, on the alias: b1 -> b4 etc.
sub shifted {
    my ($m) = @_;
    return { map { my $id = $m->{$_}; $id =~ s/^b(\d)$/'b' . ($1 + 3)/e;
                   ($_ => $id) } keys %$m };
}

# the hash methods' maps while every server is on its primary name
my %before = map { $_ => map_of($_) } qw(hash chash udp_hash);
my $stock = map_of('st_hash');
is_deeply($before{hash}, $stock, 'hash: each of 40 clients on the backend '
          . 'stock puts it on (' . counts($stock) . ')');
is_deeply($before{udp_hash}, $before{hash},
          'hash over UDP: each client on its backend of TCP');
like(counts($before{chash}), qr/^b1=\d+ b2=\d+ b3=\d+$/,
     'hash consistent: on b1..b3, all three (' . counts($before{chash})
     . ')');

# after a phase: who answers each upstream; the hash methods keep each
# client on its server ($expect: primary or alias)
sub check_maps {
    my ($phase, $expect) = @_;
    my $set = $expect eq 'alias' ? 'b4 b5 b6' : 'b1 b2 b3';
    for my $u (@names) {
        my $m = map_of($u);
        my $c = counts($m);
        my $got = join ' ', sort { $a cmp $b } keys %{ { map { $_ => 1 }
                                                          values %$m } };
        if ($u =~ /hash/) {
            my $want = $expect eq 'alias' ? shifted($before{$u})
                                          : $before{$u};
            is_deeply($m, $want, "$phase, $u: each of 40 clients on its "
                      . "server's $expect ($c)");
        } else {
            is($got, $set, "$phase, $u: 40 from the clients over $set "
               . "($c)");
        }
    }
    if ($expect eq 'alias') {
        my $net = map_of('st_hash_net');
        is_deeply(map_of('hash'), $net, "$phase: hash puts each client "
                  . 'where stock puts it on the aliases\' addresses ('
                  . counts($net) . ')');
    }
}

# a load on every upstream, each connection from the next client
sub loads {
    return { map {
        my $f = $kind{$_} eq 'udp' ? 'udp_load' : 'tcp_load';
        ($_ => $st->$f(port => $port{$_}, concurrency => 1,
                       interval_ms => 10, clients => \@clients))
    } @names };
}

my @figures;

# the connections the status page counts on the addresses of upstream $u
sub active_conns {
    my ($x, $u) = @_;
    my ($up) = grep { $_->{name} eq $u } @{ $x->{upstreams} };
    my $n = 0;
    $n += $_->{active} // 0 for map { @{ $_->{addresses} } }
                                @{ $up->{servers} };
    return $n;
}

# stop the loads: none failed; with $set, only those backends answered;
# once the last sessions end, no connection is counted (a count taken
# and never given back would skew least_conn and max_conns)
sub finish {
    my ($l, $phase, $set) = @_;
    for my $u (@names) {
        my $r = $l->{$u}->stop;
        my $by = join ' ', map { "$_ $r->{by_backend}{$_}" }
                           sort keys %{ $r->{by_backend} };
        my $line = sprintf '%-34s %-8s %s %5d sent, %d failed (%s)',
            $phase, $u, $kind{$u}, $r->{sent}, $r->{failed}, $by;
        push @figures, $line;
        is($r->{failed}, 0, "$phase, $u: $r->{failed} of $r->{sent} failed")
            or diag explain $r->{errors};
        ok($r->{sent} > 30, "$phase, $u: steady load ($r->{sent} sent)");
        if ($set) {
            my %ok = map { $_ => 1 } split ' ', $set;
            my @wrong = grep { !$ok{$_} } keys %{ $r->{by_backend} };
            ok(!@wrong, "$phase, $u: only $set answered ($by)");
        }
    }
    my $left = '';
    ok($t->wait_for(sub {
            my $x = $s->status or return 0;
            $left = join ' ', map { "$_=" . active_conns($x, $_) }
                              grep { active_conns($x, $_) } @names;
            return $left eq '';
        }, 5, 'no active connection'),
       "$phase: the status page counts no connection once the load ends")
        or diag "still counted: $left";
    return;
}

# a TCP connection kept open: a line sent, the backend's id read
sub line {
    my ($c, $text) = @_;
    print {$c} "$text\n" or return "send: $!";
    return 'timeout' unless IO::Select->new($c)->can_read(3);
    my $got = <$c> // '';
    return $got =~ /^(b\d) \Q$text\E$/ ? $1 : "answer '$got'";
}

sub hold {
    my %h;
    for my $u (grep { $kind{$_} eq 'tcp' } @names) {
        my $c = IO::Socket::INET->new(LocalAddr => $clients[0],
                                      PeerAddr => $ip,
                                      PeerPort => $port{$u}, Timeout => 2)
            or return "connect: $!";
        $h{$u} = [ $c, line($c, 'first') ];
    }
    return \%h;
}

sub steady {
    my ($secs) = @_;
    my $start = time;
    $t->wait_for(sub { time - $start >= $secs }, $secs + 1, 'load');
}

check_maps('before', 'primary');

# registrar A down: every server moves to its example.net alias (b4..b6)

# a connection to every TCP upstream kept open through the failover

my $held = hold();
is(join(' ', map { $held->{$_}[1] =~ /^b[123]$/ ? () : "$_: $held->{$_}[1]" }
             sort keys %$held), '', 'a connection held to each TCP '
   . 'upstream, on b1..b3');

my $l = loads();
$dns->stop_auth('a');
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.net:\d+ live$/) },
                20, 'failover to example.net'),
   'registrar A down: every server of every upstream on its alias');
finish($l, 'registrar A down, failing over');
$l = loads();
steady(4);
my %again = map { $_ => line($held->{$_}[0], 'again') } keys %$held;
is(join(' ', map { $again{$_} eq $held->{$_}[1] ? ()
                   : "$_: $held->{$_}[1] then $again{$_}" } sort keys %$held),
   '', 'the held connections are still proxied, each to its backend');
close $_->[0] for values %$held;
finish($l, 'registrar A down, on the aliases', 'b4 b5 b6');
check_maps('registrar A down', 'alias');

# registrar A back

$l = loads();
$dns->start_auth_server('a', flush => 1);
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                20, 'back to example.com'),
   'registrar A back: every server on its primary name');
finish($l, 'registrar A back, going back');
$l = loads();
steady(3);
finish($l, 'registrar A back, on the primaries', 'b1 b2 b3');
check_maps('registrar A back', 'primary');

# every provider down: the last good addresses

$l = loads();
$dns->blackhole_provider($_) for 1 .. 3;
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ stale$/) },
                20, 'stale'),
   'every provider down: every server on its last good addresses');
steady(10);
ok(all_active(qr/^server\d\.example\.com:\d+ stale$/), 'still stale');
finish($l, 'every provider down, stale', 'b1 b2 b3');
check_maps('every provider down', 'primary');

# a reload, then a stop and a cold start from the state file, during the
# total outage: the same addresses, each client on the same backend

ok($t->reload, 'every provider down: reload');
$l = loads();
steady(4);
ok(all_active(qr/^server\d\.example\.com:\d+ stale$/),
   'after the reload: every server still on its last good addresses');
finish($l, 'every provider down, reloaded', 'b1 b2 b3');
check_maps('every provider down, reloaded', 'primary');

$t->stop;
ok($t->try_start, 'every provider down: nginx starts from the state file')
    or diag($t->last_start_error);
ok(all_active(qr/^server\d\.example\.com:\d+ state_file$/),
   'cold start: every server on the state file\'s addresses');
$l = loads();
steady(4);
finish($l, 'every provider down, cold start', 'b1 b2 b3');
check_maps('every provider down, cold start', 'primary');

# DNS back

$dns->restore_provider($_) for 1 .. 3;
$dns->flush_provider;

# while DNS comes back a server may use its alias for a round: one whose
# primary name's queries timed out during the outage asks the alias,
# which the providers back answer (docs/failover.md); no connection fails
$l = loads();
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                30, 'live again'),
   'DNS back: every server live on its primary name');
finish($l, 'DNS coming back');

$l = loads();
steady(3);
finish($l, 'DNS back', 'b1 b2 b3');
check_maps('DNS back', 'primary');

diag $_ for @figures;

done_testing();
