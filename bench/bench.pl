#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Benchmark (not a test): a qqfail upstream against the same upstream with
# static "server IP:PORT" lines, in one nginx, in the same run, alternating;
# then the shared memory used per name.
#
#   bench/bench.pl [--rounds 5] [--seconds 5] [--connections 16] [--no-pin]
#
# Prints requests/s and p99 latency of each run, the median ratios
# (qqfail / static; aim: req/s ratio >= 0.97), and bytes of qqfail_zone per
# name.  Everything runs on 127.x; wrk (Debian package) is installed if
# missing.  On a machine with 2 or more CPUs the proxying nginx worker is
# pinned to CPU 0 and wrk and the backends to CPU 1 (taskset), so that the
# proxy is what is measured and the scheduler adds less noise.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";

use Getopt::Long;

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;
use QQ::Bench qw(can_pin pin need_wrk worker_ticks tick_us run_wrk median
                 proxy_config);

my %o = (rounds => 5, seconds => 5, connections => 16, names => 1000,
         pin => 1);
GetOptions(\%o, 'rounds=i', 'seconds=i', 'connections=i', 'names=i', 'pin!')
    or die "usage: $0 [--rounds N] [--seconds N] [--connections N] "
         . "[--no-pin]\n";

$o{pin} = 0 unless can_pin();

need_wrk();

my $t = QQ::Nginx->new;
my $port = $t->port('backend');
my @b = map { QQ::Backend->new(t => $t, id => "b$_", addr => $t->addr(19 + $_),
                               port => $port) } 1 .. 2;
$_->start for @b;

my $dns = QQ::DNS->new(t => $t);
my $pf = $dns->start_fault_server;
$dns->fault_set('*', { addrs => [ map { $_->addr } @b ], ttl => 30 });

sub config {
    my ($extra) = @_;
    my $static = join '', map { "        server " . $_->addr . ":$port;\n" } @b;
    $t->write_config(proxy_config(pf => $pf, upstreams => <<"EOF" . $extra,
    upstream qq {
        qqfail_server app.test:$port;
        keepalive 32;
    }

    upstream st {
$static        keepalive 32;
    }
EOF
        locations => "        location /qq { proxy_pass http://qq; }\n"
                   . "        location /st { proxy_pass http://st; }\n"));
}

sub wrk {
    my ($path) = @_;
    my $url = 'http://' . $t->addr(1) . ':' . $t->port(1) . $path;
    my $ticks = worker_ticks($t);
    my $r = run_wrk(url => $url, connections => $o{connections},
                    seconds => $o{seconds}, pin => $o{pin}, latency => 1);
    $ticks = worker_ticks($t) - $ticks;
    # worker CPU microseconds per request
    my $cpu = $r->{total} ? $ticks * tick_us() / $r->{total} : 0;
    return ($r->{rps}, $r->{p99}, $r->{errors}, $cpu);
}

config('');
$t->start;
pin($o{pin}, 1, map { $_->pid } @b);
pin($o{pin}, 0, $t->worker_pids);
printf "%s\n", $o{pin} ? 'nginx worker on CPU 0; wrk and backends on CPU 1'
                       : 'no CPU pinning';

wrk('/qq');    # warm up both
wrk('/st');

my (@rq, @rs, @pq, @ps, @ratio, @pratio, @cq, @cs, @cratio);
printf "%-6s %12s %8s %8s %12s %8s %8s\n", 'round', 'qqfail r/s', 'p99 ms',
       'cpu us', 'static r/s', 'p99 ms', 'cpu us';

for my $i (1 .. $o{rounds}) {
    my @first = $i % 2 ? ('/qq', '/st') : ('/st', '/qq');
    my %r;
    for my $path (@first) {
        my ($rps, $p99, $err, $cpu) = wrk($path);
        die "$err non-2xx responses on $path\n" if $err;
        $r{$path} = [ $rps, $p99, $cpu ];
    }
    push @rq, $r{'/qq'}[0]; push @pq, $r{'/qq'}[1];
    push @rs, $r{'/st'}[0]; push @ps, $r{'/st'}[1];
    push @ratio, $r{'/qq'}[0] / $r{'/st'}[0];
    push @pratio, $r{'/qq'}[1] / $r{'/st'}[1];
    push @cq, $r{'/qq'}[2]; push @cs, $r{'/st'}[2];
    push @cratio, $r{'/qq'}[2] / $r{'/st'}[2] if $r{'/st'}[2];
    printf "%-6d %12.0f %8.3f %8.2f %12.0f %8.3f %8.2f\n", $i,
           @{ $r{'/qq'} }, @{ $r{'/st'} };
}

printf "\nmedian req/s: qqfail %.0f, static %.0f; ratio %.3f (per-round "
     . "ratios: %s)\n", median(@rq), median(@rs), median(@ratio),
       join(' ', map { sprintf '%.3f', $_ } @ratio);
printf "median p99:   qqfail %.3f ms, static %.3f ms; ratio %.3f\n",
       median(@pq), median(@ps), median(@pratio);
printf "median worker CPU per request: qqfail %.2f us, static %.2f us; "
     . "ratio %.3f (less noisy than req/s on a shared machine)\n",
       median(@cq), median(@cs), @cratio ? median(@cratio) : 0;

# shared memory per name: the same zone with 1 name, then 1 + N names

sub zone_used {
    my $st = $t->get_json('/status');
    return $st->{zone}{used};
}

my $one = zone_used();

my $many = "    upstream many {\n"
         . join('', map { "        qqfail_server n$_.test:$port;\n" }
                        1 .. $o{names})
         . "    }\n";
$t->stop;
config($many);
$t->start;
my $n = zone_used();

printf "qqfail_zone: %d bytes in use with 1 name, %d with %d more; "
     . "%.0f bytes per name (2 addresses each, slab pages)\n",
       $one, $n, $o{names}, ($n - $one) / $o{names};

$t->stop;

# the harness adds its own checks (no alerts, no crashes) at teardown
Test::More::done_testing() if defined &Test::More::done_testing;
