#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Every balancing method over qqfail_server lines through the 2012 outage:
# registrar A down (every server on its example.net alias), then every DNS
# provider down (the last good addresses).  One nginx with one upstream per
# method; the load sends its requests to each in turn (hash keys and
# ip_hash clients vary) and counts sent and failed per method and phase.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 3, providers => 3);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;

my @METHODS = (
    [ hash       => 'hash $arg_k;' ],
    [ chash      => 'hash $arg_k consistent;' ],
    [ ip_hash    => 'ip_hash;' ],
    [ least_conn => 'least_conn;' ],
    [ random     => 'random;' ],
    [ random2    => 'random two;' ],
);

my @up;
my $i = 0;
for my $m (@METHODS) {
    my $servers = join '', map {
        "        qqfail_server server$_.example.com:$P "
      . "server$_.example.net:$P" . ($_ == 1 ? ' weight=2' : '') . ";\n"
    } 1 .. 3;
    my $method = "        $m->[1]\n";
    # the method line before the servers, or after them
    push @up, $m->[0] => ($i++ % 2 ? $servers . $method : $method . $servers)
                         . "        qqfail_refresh 2s;\n"
                         . "        qqfail_timeout 1s;\n"
                         . "        keepalive 4;\n";
}
my @names = map { $_->[0] } @METHODS;

$s->nginx(workers => 2,
    upstreams => \@up,
    server => "        set_real_ip_from 127.0.0.0/8;\n"
            . "        real_ip_header X-Real-IP;\n",
    locations => $s->proxy_locations(@names),
    location => 'return 404;');
$t->start;

for my $m (@names) {
    my %c;
    for my $k (1 .. 40) {
        my $r = $s->get("/$m?k=$k", headers => { 'X-Real-IP' => "10.0.$k.1" });
        $c{ $r->{status} == 200 ? $r->{content} : "status $r->{status}" }++;
    }
    is_deeply([ sort keys %c ], [ qw(b1 b2 b3) ], "$m: all three answer");
}

# every server of every upstream: "active_name source" matches
sub all_active {
    my ($re) = @_;
    for my $m (@names) {
        for my $n (1 .. 3) {
            my $st = $s->server_status("server$n.example.com", $m)
                or return 0;
            my $got = ($st->{active_name} // '') . " $st->{source}";
            return 0 unless $got =~ $re;
        }
    }
    return 1;
}

ok(all_active(qr/^server\d\.example\.com:\d+ live$/),
   'every server of every upstream on its primary name');

sub load {
    return $s->load(concurrency => 2,
        paths => [ map { "/$_?k=%N" } @names ],
        headers => { 'X-Real-IP' => '10.0.%B.1' });
}

my @figures;

sub finish {
    my ($load, $phase) = @_;
    my $r = $load->stop;
    for my $m (@names) {
        my $p = $r->{by_path}{"/$m?k=%N"} // { sent => 0, failed => 0 };
        my $line = sprintf '%-22s %-10s %5d sent, %d failed (%s)', $phase,
            $m, $p->{sent}, $p->{failed},
            join ' ', map { "$_ $p->{by_body}{$_}" }
                      sort keys %{ $p->{by_body} // {} };
        push @figures, $line;
        diag $line;
        is($p->{failed}, 0, "$phase, $m: $p->{failed} of $p->{sent} failed");
        ok($p->{sent} > 50, "$phase, $m: steady load ($p->{sent} sent)");
    }
    note explain $r->{errors} if $r->{failed};
    return $r;
}

sub steady {
    my ($secs) = @_;
    my $start = time;
    $t->wait_for(sub { time - $start >= $secs }, $secs + 1, 'load');
}

# registrar A down: every server moves to its example.net alias

my $load = load();
$dns->stop_auth('a');
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.net:\d+ live$/) },
                20, 'failover to example.net'),
   'registrar A down: every server of every upstream on its alias');
steady(5);
finish($load, 'registrar A down');

# registrar A back

$load = load();
$dns->start_auth_server('a', flush => 1);
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                20, 'back to example.com'),
   'registrar A back: every server on its primary name');
steady(3);
finish($load, 'registrar A back');

# every provider down: the last good addresses

$load = load();
$dns->blackhole_provider($_) for 1 .. 3;
ok($t->wait_for(sub { all_active(qr/ stale$/) }, 20, 'stale'),
   'every provider down: every server on its last good addresses');
steady(15);
ok(all_active(qr/ stale$/), 'still stale');
finish($load, 'every provider down');

$dns->restore_provider($_) for 1 .. 3;
$dns->flush_provider;

$load = load();
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                30, 'live again'),
   'DNS back: every server live on its primary name');
steady(3);
finish($load, 'DNS back');

note $_ for @figures;

done_testing();
