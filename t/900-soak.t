#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Soak: the operator's ordinary life, all at once, for ten minutes.  Steady
# load; providers black-holed and restored at random; addresses moving
# between backends; a reload every second with a randomly edited upstream
# (servers renamed, aliases added and removed, the allow rule switched); a
# provider forging an address no rule allows.  No request may fail or reach
# the forged address; the zone and the processes' memory stay bounded.
#
# Left out of the default run: ./build.sh test --soak (QQ_SOAK=1) runs it;
# QQ_SOAK_SECONDS sets the length (default 600).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

plan skip_all => 'the soak test runs with ./build.sh test --soak (QQ_SOAK=1)'
    unless $ENV{QQ_SOAK};

require QQ::Topo;
require QQ::Backend;

my $seconds = $ENV{QQ_SOAK_SECONDS} // 600;
my $seed = $ENV{QQ_SOAK_SEED} // time;
srand $seed;
diag("soak: $seconds s, seed $seed (QQ_SOAK_SEED to replay)");

my $s = QQ::Topo->new(backends => 3, providers => 3, ttl => 1);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $base = $t->base;

# the forged address: outside every allow rule below
my $evil = QQ::Backend->new(t => $t, id => 'evil', addr => $t->addr(40),
                            port => $P);
$evil->start;

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { addrs => [ $evil->addr ], ttl => 1 });

my @b = map { $s->backend($_)->addr } 1 .. 3;

# names the renamed servers use, each on a random backend
my @svc = (1 .. 8);
for my $k (@svc) {
    my $a = $b[ rand @b ];
    $dns->set_record("svc$k.example.com", [ $a ]);
    $dns->set_record("svc$k.example.net", [ $a ]);
}

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';

my @allow = ("qqfail_allow $base.16/29;",
             "qqfail_allow $base.0/28 $base.16/28;");

sub config {
    my ($edit) = @_;
    my $u = "        qqfail_server server1.example.com:$P "
          . "server1.example.net:$P;\n";

    for my $k (@svc) {
        next unless $edit && rand() < 0.5;
        my @names = ("svc$k.example.com:$P");
        push @names, "svc$k.example.net:$P" if rand() < 0.7;
        push @names, "svc$k.example.org:$P" if rand() < 0.3;
        @names = reverse @names if rand() < 0.2;
        $u .= "        qqfail_server @names;\n";
    }

    $u .= "        " . $allow[ $edit ? int rand 2 : 0 ] . "\n"
        . "        qqfail_refresh 1s;\n"
        . "        qqfail_timeout 300ms;\n";

    $s->nginx(workers => 2,
        providers => $s->providers_conf . "    qqfail_provider pf $pf;\n",
        http => "    qqfail_state_file " . $t->dir . "/state/state;\n"
              . "    qqfail_zone 256k;",
        upstream => $u);
}

sub rss {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (my $line = <$fh>) {
        return $1 if $line =~ /^VmRSS:\s+(\d+) kB/;
    }
    return 0;
}

sub sample {
    my $st = $s->status or return;
    my @w = $t->worker_pids;
    return {
        zone   => $st->{zone}{used},
        master => rss($t->master_pid),
        worker => (sort { $b <=> $a } map { rss($_) } @w)[0] // 0,
    };
}

config(0);
$t->start;
ok($s->wait_backend('b1', 10) // $s->wait_backend('b2', 10)
   // $s->wait_backend('b3', 10), 'server1 answers');

my $load = $s->load(keepalive => 0, concurrency => 2);
my $first = sample();
my %max = %$first;
my ($reloads, $failed_reloads, $moves, $toggles) = (0, 0, 0, 0);
my %down;

my $end = time + $seconds;
my $tick = 0;

while (time < $end) {
    my $next = time + 1;
    $tick++;

    config(1);
    $reloads++;
    $t->reload(timeout => 20, wait_old => 0) or $failed_reloads++;

    if ($tick % 5 == 0) {
        my $p = 1 + int rand 3;
        if ($down{$p}) {
            $dns->restore_provider($p);
            delete $down{$p};
        } else {
            $dns->blackhole_provider($p);
            $down{$p} = 1;
        }
        $toggles++;
    }

    if ($tick % 7 == 0) {
        my $a = $b[ rand @b ];
        my $name = rand() < 0.3 ? 'server1' : 'svc' . $svc[ rand @svc ];
        $dns->set_record("$name.example.com", [ $a ]);
        $dns->set_record("$name.example.net", [ $a ]);
        $moves++;
    }

    if ($tick % 10 == 0) {
        my $x = sample();
        if ($x) {
            for my $k (keys %max) {
                $max{$k} = $x->{$k} if $x->{$k} > $max{$k};
            }
        }
    }

    my $wait = $next - time;
    select(undef, undef, undef, $wait) if $wait > 0;
}

$dns->restore_provider($_) for keys %down;

my $r = $load->stop;
my $last = sample() // {};

is($failed_reloads, 0, "$reloads reloads with edited upstreams, all applied");
is($r->{failed}, 0, "0 of $r->{sent} requests failed") or diag explain $r;
is($evil->requests, 0, '0 requests reached the forged address');
ok($r->{sent} > $seconds * 10, "steady load: $r->{sent} requests");
ok($max{zone} <= $first->{zone} + 64 * 1024,
   "zone used bounded: $first->{zone} at start, at most $max{zone}");
# under AddressSanitizer freed memory waits in its quarantine (256 MB by
# default) before it is reused: the growth there is bounded by it, the
# plain run measures the module's own
my $slack = $ENV{QQ_ASAN} ? 400 * 1024 : 20 * 1024;

ok(($last->{master} // 0) <= $first->{master} + $slack,
   "master RSS bounded: $first->{master} kB at start, "
   . ($last->{master} // '?') . ' kB at the end');
ok($max{worker} <= $first->{worker} + $slack + 10 * 1024,
   "worker RSS bounded: $first->{worker} kB at start, at most $max{worker} kB");

diag(sprintf 'soak: %d s, %d reloads, %d provider toggles, %d address '
     . 'moves; %d requests, %d failed, %d to the forged address; zone used '
     . '%d -> max %d bytes; RSS master %d -> %d kB, worker %d -> max %d kB',
     $seconds, $reloads, $toggles, $moves, $r->{sent}, $r->{failed},
     $evil->requests, $first->{zone}, $max{zone}, $first->{master},
     $last->{master} // 0, $first->{worker}, $max{worker});

done_testing();
