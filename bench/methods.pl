#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Benchmark (not a test): nginx's load balancing methods in a qqfail
# upstream against the same method in an upstream of static
# "server IP:PORT" lines with the same backends and weights, all in one
# nginx, alternating qqfail and static runs.
#
#   bench/methods.pl [--rounds 3] [--seconds 4] [--connections 16]
#                    [--methods rr,hash,...] [--keys 1000] [--warmup 1]
#                    [--no-pin] [--no-save] [--results DIR]
#
# Methods: rr (no method line), hash ("hash $arg_k"), consistent
# ("hash $arg_k consistent"), ip_hash, least_conn, random, random_two
# ("random two").  A method nginx refuses in a qqfail upstream is skipped
# with its [emerg].  wrk sends /qq_METHOD/?k=K and /st_METHOD/?k=K with K
# going round 0 .. --keys - 1 (a Lua script), so that the hash methods see
# many keys, the same on both sides.  Three backends: a.test answers two of them (weight=2), b.test the
# third (weight 1); static: the same three addresses with the same weights.
#
# Prints, per method, the median req/s of each side and their ratio
# (qqfail / static), the worker CPU time per request of each side (utime +
# stime of the nginx worker from /proc/PID/stat before and after each run,
# divided by the requests completed) and their ratio, and how the requests
# were split over the backends (from the backends' access logs).  Writes
# bench/results/DATE-COMMIT-methods.{json,txt}.  Pinning as in bench.pl:
# the nginx worker on CPU 0, wrk and the backends on CPU 1.  The CPU that
# other processes used during each run ("others", in % of one CPU) is
# printed too: on a shared machine it says how noisy the figures are.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";

use Getopt::Long;
use POSIX ();
use Time::HiRes qw(time);

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;
use QQ::Bench qw(can_pin pin need_wrk worker_ticks tick_us run_wrk median
                 commit save_results proxy_config out out_text
                 loadavg);

my @ALL = (
    [ rr         => '' ],
    [ hash       => 'hash $arg_k;' ],
    [ consistent => 'hash $arg_k consistent;' ],
    [ ip_hash    => 'ip_hash;' ],
    [ least_conn => 'least_conn;' ],
    [ random     => 'random;' ],
    [ random_two => 'random two;' ],
);
my %DIRECTIVE = map { @$_ } @ALL;

my %o = (rounds => 3, seconds => 4, connections => 16, keys => 1000,
         warmup => 1, pin => 1, save => 1,
         methods => join(',', map { $_->[0] } @ALL));
GetOptions(\%o, 'rounds=i', 'seconds=i', 'connections=i', 'keys=i',
           'warmup=i', 'methods=s', 'pin!', 'save!', 'results=s')
    or die "usage: see the head of $0\n";

my @want = split /,/, $o{methods};
for (@want) {
    die "unknown method '$_' (known: @{[ map { $_->[0] } @ALL ]})\n"
        unless exists $DIRECTIVE{$_};
}

$o{pin} = 0 unless can_pin();
need_wrk();

my $t = QQ::Nginx->new;
my $port = $t->port('backend');
my @b = map { QQ::Backend->new(t => $t, id => "b$_", addr => $t->addr(19 + $_),
                               port => $port) } 1 .. 3;
$_->start for @b;

# a.test: b1 and b2 with weight=2; b.test: b3 with weight 1
my @WEIGHT = (2, 2, 1);
my $dns = QQ::DNS->new(t => $t);
my $pf = $dns->start_fault_server;
$dns->fault_set('a.test', { addrs => [ map { $_->addr } @b[0, 1] ], ttl => 30 });
$dns->fault_set('b.test', { addrs => [ $b[2]->addr ], ttl => 30 });

$t->write_file('keys.lua', <<'EOF');
-- wrk: GET PREFIX?k=0 .. PREFIX?k=(KEYS-1) round and round
local prefix, keys, n = "/", 1000, 0
function init(args)
    prefix = args[1] or prefix
    keys = tonumber(args[2]) or keys
end
function request()
    n = n + 1
    return wrk.format(nil, prefix .. "?k=" .. (n % keys))
end
EOF

sub config {
    my @m = @_;
    my ($ups, $locs) = ('', '');
    for my $m (@m) {
        my $d = $DIRECTIVE{$m} ? "        $DIRECTIVE{$m}\n" : '';
        my $w = sub { $WEIGHT[$_[0]] > 1 ? " weight=$WEIGHT[$_[0]]" : '' };
        $ups .= "    upstream qq_$m {\n$d"
              . "        qqfail_server a.test:$port" . $w->(0) . ";\n"
              . "        qqfail_server b.test:$port" . $w->(2) . ";\n"
              . "        keepalive 32;\n    }\n"
              . "    upstream st_$m {\n$d"
              . join('', map { "        server " . $b[$_]->addr . ":$port"
                                 . $w->($_) . ";\n" } 0 .. $#b)
              . "        keepalive 32;\n    }\n";
        $locs .= "        location /qq_$m/ { proxy_pass http://qq_$m; }\n"
               . "        location /st_$m/ { proxy_pass http://st_$m; }\n";
    }
    $t->write_config(proxy_config(pf => $pf, upstreams => $ups,
                                  locations => $locs));
}

# the methods nginx takes in a qqfail upstream (the others, with why not)

my (@methods, %skipped);
for my $m (@want) {
    config($m);
    my ($ok, $msg) = $t->test_config;
    if ($ok) {
        push @methods, $m;
        next;
    }
    ($skipped{$m}) = $msg =~ /(\[emerg\].*)/;
    $skipped{$m} //= $msg;
}
$t->write_file('error.log', '');
die "no method to measure\n" unless @methods;

config(@methods);
$t->start;
pin($o{pin}, 1, map { $_->pid } @b);
pin($o{pin}, 0, $t->worker_pids);

# every qqfail upstream has its 3 addresses
my $live = $t->wait_for(sub {
    my $st = $t->get_json('/status') or return 0;
    my @qq = grep { $_->{name} =~ /^qq_/ } @{ $st->{upstreams} };
    return 0 unless @qq == @methods;
    for my $u (@qq) {
        my $n = 0;
        $n += @{ $_->{addresses} || [] } for @{ $u->{servers} };
        return 0 unless $n == @b;
    }
    return 1;
}, 30, 'every qqfail upstream resolved');
die "the qqfail upstreams did not resolve:\n" . $t->error_log unless $live;

# CPU accounting: the machine's busy ticks, the backends' ticks

# the machine's busy ticks (interrupts too: a process is charged with
# those that come in its context), and the ticks the hypervisor stole
sub busy_ticks {
    open my $fh, '<', '/proc/stat' or return (0, 0);
    my ($cpu) = grep { /^cpu\s/ } <$fh>;
    my (undef, $user, $nice, $sys, $idle, $iowait, $irq, $soft, $steal)
        = split ' ', $cpu;
    return ($user + $nice + $sys + $irq + $soft, $steal // 0);
}

sub pid_ticks {
    my $ticks = 0;
    for my $pid (@_) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        $stat =~ s/^.*\)\s+//;
        my @f = split ' ', $stat;
        $ticks += $f[11] + $f[12];
    }
    return $ticks;
}

# bytes of each backend's access log already counted
my %logpos;

sub backend_split {
    my @n;
    for my $b (@b) {
        my $log = $b->dir . '/access.log';
        my $n = 0;
        if (open my $fh, '<', $log) {
            seek $fh, $logpos{$log} // 0, 0;
            while (read $fh, my $buf, 1 << 20) {
                $n += $buf =~ tr/\n//;
            }
            $logpos{$log} = tell $fh;
        }
        push @n, $n;
    }
    return @n;
}

sub run {
    my ($path, $seconds) = @_;
    my $url = 'http://' . $t->addr(1) . ':' . $t->port(1) . "/$path/";
    backend_split();
    my @c0 = (worker_ticks($t), pid_ticks(map { $_->pid } @b), busy_ticks(),
              (POSIX::times())[3, 4]);
    my $t0 = time;
    my $r = run_wrk(url => $url, connections => $o{connections},
                    seconds => $seconds, pin => $o{pin},
                    script => $t->dir . '/keys.lua',
                    args => [ "/$path/", $o{keys} ]);
    my $dt = time - $t0;
    my @c1 = (worker_ticks($t), pid_ticks(map { $_->pid } @b), busy_ticks(),
              (POSIX::times())[3, 4]);
    my @d = map { $c1[$_] - $c0[$_] } 0 .. $#c0;
    my $tick_s = tick_us() / 1e6;
    my $ours = $d[0] + $d[1] + $d[4] + $d[5];    # worker, backends, wrk
    my @split = backend_split();
    return {
        rps         => $r->{rps},
        requests    => $r->{total},
        errors      => $r->{errors},
        cpu_us      => $r->{total} ? $d[0] * tick_us() / $r->{total} : 0,
        worker_cpu  => $d[0] * $tick_s,
        worker_pct  => $dt ? 100 * $d[0] * $tick_s / $dt : 0,
        others_pct  => $dt ? 100 * ($d[2] - $ours) * $tick_s / $dt : 0,
        steal_pct   => $dt ? 100 * $d[3] * $tick_s / $dt : 0,
        backends    => \@split,
    };
}

sub split_text {
    my ($n) = @_;
    my $all = 0;
    $all += $_ for @$n;
    return '-' unless $all;
    return join '/', map { sprintf '%.0f', 100 * $_ / $all } @$n;
}

my $load0 = loadavg();

out("%s on %s; %d rounds of %d s, %d connections, %d keys\n",
    'bench/methods.pl', commit(), @o{qw(rounds seconds connections keys)});
out("%s\n", $o{pin} ? 'nginx worker on CPU 0; wrk and backends on CPU 1'
                    : 'no CPU pinning');
out("load average before: %s\n", $load0);
out("skipped %s: %s\n", $_, $skipped{$_}) for sort keys %skipped;

for my $m (@methods) {    # warm up every location
    run("qq_$m", $o{warmup});
    run("st_$m", $o{warmup});
}

my %R = map { $_ => { qq => [], st => [] } } @methods;

out("\n%-6s %-11s %10s %8s %10s %8s %7s %7s %7s %7s\n", 'round', 'method',
    'qqfail r/s', 'cpu us', 'static r/s', 'cpu us', 'wk qq', 'wk st',
    'oth qq', 'oth st');
for my $i (1 .. $o{rounds}) {
    for my $m (@methods) {
        my @sides = $i % 2 ? ('qq', 'st') : ('st', 'qq');
        my %r;
        for my $side (@sides) {
            $r{$side} = run("${side}_$m", $o{seconds});
            die "$r{$side}{errors} non-2xx responses on /${side}_$m/\n"
                if $r{$side}{errors};
            push @{ $R{$m}{$side} }, $r{$side};
        }
        out("%-6d %-11s %10.0f %8.2f %10.0f %8.2f"
            . " %6.0f%% %6.0f%% %6.0f%% %6.0f%%\n", $i, $m,
            $r{qq}{rps}, $r{qq}{cpu_us}, $r{st}{rps}, $r{st}{cpu_us},
            $r{qq}{worker_pct}, $r{st}{worker_pct},
            $r{qq}{others_pct}, $r{st}{others_pct});
    }
}

my %SUM;
out("\nmedians over %d rounds (ratio: qqfail / static, per round, then the "
    . "median)\n", $o{rounds});
out("%-11s %9s %9s %6s | %8s %8s %6s | %-9s %-9s\n", 'method',
    'qq r/s', 'st r/s', 'ratio', 'qq us/r', 'st us/r', 'ratio',
    'split qq', 'split st');
for my $m (@methods) {
    my ($q, $s) = @{ $R{$m} }{qw(qq st)};
    my @rr = map { $q->[$_]{rps} / $s->[$_]{rps} } 0 .. $#$q;
    my @cr = map { $s->[$_]{cpu_us} ? $q->[$_]{cpu_us} / $s->[$_]{cpu_us} : () }
             0 .. $#$q;
    my %split;
    for my $side (qw(qq st)) {
        my @n = (0) x @b;
        for my $run (@{ $R{$m}{$side} }) {
            $n[$_] += $run->{backends}[$_] for 0 .. $#b;
        }
        $split{$side} = \@n;
    }
    $SUM{$m} = {
        directive        => $DIRECTIVE{$m},
        qq_rps           => median(map { $_->{rps} } @$q),
        st_rps           => median(map { $_->{rps} } @$s),
        rps_ratio        => median(@rr),
        rps_ratios       => \@rr,
        qq_cpu_us        => median(map { $_->{cpu_us} } @$q),
        st_cpu_us        => median(map { $_->{cpu_us} } @$s),
        cpu_ratio        => median(@cr),
        cpu_ratios       => \@cr,
        qq_backends      => $split{qq},
        st_backends      => $split{st},
        runs             => $R{$m},
    };
    out("%-11s %9.0f %9.0f %6.3f | %8.2f %8.2f %6.3f | %-9s %-9s\n", $m,
        @{ $SUM{$m} }{qw(qq_rps st_rps rps_ratio qq_cpu_us st_cpu_us)},
        $SUM{$m}{cpu_ratio} // 0, split_text($split{qq}),
        split_text($split{st}));
}

my @runs = map { @{ $R{$_}{qq} }, @{ $R{$_}{st} } } @methods;
my @others = map { $_->{others_pct} } @runs;
my @steal = map { $_->{steal_pct} } @runs;
my $load1 = loadavg();
out("\nwk: the nginx worker's CPU time in %% of the run's (near 100%%: "
    . "the worker is what limits req/s)\n");
out("split: %% of the requests each backend (b1/b2/b3, weights "
    . "%s) answered over all rounds\n", join('/', @WEIGHT));
out("others: CPU used by processes other than the nginx worker, the "
    . "backends and wrk, in %% of one CPU; median %.0f%%, max %.0f%% "
    . "(above ~10%% the figures are noisy)\n", median(@others),
    (sort { $b <=> $a } @others)[0]);
out("steal: CPU the hypervisor gave to other guests, in %% of one CPU; "
    . "median %.0f%%, max %.0f%%\n", median(@steal),
    (sort { $b <=> $a } @steal)[0]);
out("load average after: %s\n", $load1);

$t->stop;
$_->stop for @b;
$dns->stop_all;

if ($o{save}) {
    my ($json, $txt) = save_results(
        name => 'methods', dir => $o{results}, text => out_text(),
        data => { options => \%o, commit => commit(), time => time,
                  pinned => $o{pin}, weights => \@WEIGHT,
                  load_before => $load0, load_after => $load1,
                  skipped => \%skipped, methods => \%SUM,
                  order => \@methods });
    print "wrote $json and $txt\n";
}

# the harness adds its own checks (no alerts, no crashes) at teardown
Test::More::done_testing() if defined &Test::More::done_testing;
