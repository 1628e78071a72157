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
use lib "$FindBin::Bin/../t/lib";

use Getopt::Long;

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;

my %o = (rounds => 5, seconds => 5, connections => 16, names => 1000,
         pin => 1);
GetOptions(\%o, 'rounds=i', 'seconds=i', 'connections=i', 'names=i', 'pin!')
    or die "usage: $0 [--rounds N] [--seconds N] [--connections N] "
         . "[--no-pin]\n";

my $cpus = () = grep { /^processor\s*:/ } do {
    open my $fh, '<', '/proc/cpuinfo' or die "/proc/cpuinfo: $!\n";
    <$fh>;
};
$o{pin} = 0 if $cpus < 2 || !-x '/usr/bin/taskset';

# a process and its children (nginx master and workers) onto one CPU
sub pin {
    my ($cpu, @pids) = @_;
    return unless $o{pin};
    for my $pid (@pids) {
        my @all = ($pid, split ' ', qx{pgrep -P $pid});
        system("taskset -pc $cpu $_ >/dev/null") for @all;
    }
}

unless (-x '/usr/bin/wrk') {
    die "wrk is missing: apt-get install wrk\n" if $>;
    system('apt-get', 'install', '-y', '-q', 'wrk') == 0
        or die "apt-get install wrk failed\n";
}

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
    $t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%GLOBALS%%
worker_processes 1;
error_log %%DIR%%/error.log notice;
events {
    worker_connections 4096;
}
http {
    %%HTTP_GLOBALS%%
    access_log off;
    qqfail_provider pf $pf;
    qqfail_zone 16m;

    upstream qq {
        qqfail_server app.test:$port;
        keepalive 32;
    }

    upstream st {
$static        keepalive 32;
    }
$extra
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /qq { proxy_pass http://qq; }
        location /st { proxy_pass http://st; }
        location = /status { qqfail_status; }
    }
}
EOF
}

# CPU time (clock ticks) used so far by the nginx workers
sub worker_ticks {
    my $ticks = 0;
    for my $pid ($t->worker_pids) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        $stat =~ s/^.*\)\s+//;            # past "pid (comm)"
        my @f = split ' ', $stat;
        $ticks += $f[11] + $f[12];       # utime + stime
    }
    return $ticks;
}

sub wrk {
    my ($path) = @_;
    my $url = 'http://' . $t->addr(1) . ':' . $t->port(1) . $path;
    my $pin = $o{pin} ? 'taskset -c 1 ' : '';
    my $ticks = worker_ticks();
    my $out = qx{${pin}wrk -t1 -c$o{connections} -d$o{seconds}s --latency $url 2>&1};
    $ticks = worker_ticks() - $ticks;
    my ($total) = $out =~ /(\d+) requests in/;
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    my ($p99, $unit) = $out =~ /^\s+99%\s+([\d.]+)(us|ms|s)\b/m;
    my ($errors) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    die "wrk failed:\n$out" unless $rps && defined $p99;
    $p99 *= { us => 0.001, ms => 1, s => 1000 }->{$unit};
    # worker CPU microseconds per request (clock ticks are 10 ms)
    my $cpu = $total ? $ticks * 10_000 / $total : 0;
    return ($rps, $p99, $errors // 0, $cpu);
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

config('');
$t->start;
pin(1, map { $_->pid } @b);
pin(0, $t->worker_pids);
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
