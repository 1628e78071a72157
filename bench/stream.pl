#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Benchmark (not a test): a stream{} TCP upstream of qqfail_server lines
# against the same upstream written as static "server IP:PORT" lines, in
# one nginx, in the same run, alternating.
#
#   bench/stream.pl [--rounds 3] [--seconds 4] [--connections 16]
#                   [--blob 1048576] [--no-pin] [--no-save] [--results DIR]
#
# Two figures per side, through nginx's stream proxy to HTTP backends (wrk
# speaks HTTP; the proxy sees TCP only):
#   - connections per second: every request on a new connection
#     ("Connection: close"), so each is a TCP session through the
#     balancer;
#   - throughput: a --blob byte body over kept-alive connections, in MB/s.
# And the nginx worker's CPU time per connection (or per MB).  Prints the
# medians and their ratios (qqfail / static); writes
# bench/results/DATE-COMMIT-stream.{json,txt}.  Pinning as in bench.pl.
# Needs the stream front end (objs/ngx_stream_qqfail_module.so) and
# nginx's stream module (Debian: libnginx-mod-stream).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib", "$FindBin::Bin/lib";

use Getopt::Long;

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;
use QQ::Bench qw(can_pin pin need_wrk worker_ticks tick_us run_wrk median
                 commit save_results out out_text loadavg);

my %o = (rounds => 3, seconds => 4, connections => 16, blob => 1 << 20,
         pin => 1, save => 1);
GetOptions(\%o, 'rounds=i', 'seconds=i', 'connections=i', 'blob=i',
           'pin!', 'save!', 'results=s')
    or die "usage: see the head of $0\n";

$o{pin} = 0 unless can_pin();
need_wrk();

my $t = QQ::Nginx->new;
die "no stream front end or nginx stream module\n" unless $t->has_stream;

my $port = $t->port('backend');
my @b = map { QQ::Backend->new(t => $t, id => "b$_", addr => $t->addr(19 + $_),
                               port => $port, blob => $o{blob}) } 1 .. 2;
$_->start for @b;

my $dns = QQ::DNS->new(t => $t);
my $pf = $dns->start_fault_server;
$dns->fault_set('a.test', { addrs => [ $b[0]->addr ], ttl => 30 });
$dns->fault_set('b.test', { addrs => [ $b[1]->addr ], ttl => 30 });

# /status in http; TCP proxies in stream: qq on port 1, static on port 2

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
worker_processes 1;
error_log %%DIR%%/error.log notice;
events {
    worker_connections 8192;
}
stream {
    qqfail_provider pf $pf;
    qqfail_zone 16m;

    upstream qq {
        qqfail_server a.test:$port;
        qqfail_server b.test:$port;
    }

    upstream st {
        server @{[ $b[0]->addr ]}:$port;
        server @{[ $b[1]->addr ]}:$port;
    }

    server { listen %%ADDR_1%%:%%PORT_1%%; proxy_pass qq; }
    server { listen %%ADDR_1%%:%%PORT_st%%; proxy_pass st; }
}
http {
    %%HTTP_GLOBALS%%
    access_log off;
    server {
        listen %%ADDR_1%%:%%PORT_status%%;
        location = /status { qqfail_status; }
    }
}
EOF

$t->start;
pin($o{pin}, 1, map { $_->pid } @b);
pin($o{pin}, 0, $t->worker_pids);

my $live = $t->wait_for(sub {
    my $st = $t->get_json('/status', port => $t->port('status')) or return 0;
    my ($u) = grep { $_->{name} eq 'qq' } @{ $st->{upstreams} };
    return 0 unless $u;
    my $n = 0;
    $n += @{ $_->{addresses} || [] } for @{ $u->{servers} };
    return $n == 2;
}, 30, 'the qqfail stream upstream resolved');
die "the qqfail upstream did not resolve:\n" . $t->error_log unless $live;

my %PORT = (qq => $t->port(1), st => $t->port('st'));

sub run {
    my ($side, $kind, $seconds) = @_;
    my $url = 'http://' . $t->addr(1) . ":$PORT{$side}"
            . ($kind eq 'conn' ? '/' : '/blob');
    my $w0 = worker_ticks($t);
    my $r = run_wrk(url => $url, seconds => $seconds, pin => $o{pin},
                    connections => $kind eq 'conn' ? $o{connections} : 4,
                    $kind eq 'conn'
                    ? (script => $t->dir . '/close.lua') : ());
    my $ticks = worker_ticks($t) - $w0;
    my ($mbs, $unit) = $r->{out} =~ /Transfer\/sec:\s+([\d.]+)(\w+)/;
    $mbs *= { B => 1 / 1048576, KB => 1 / 1024, MB => 1, GB => 1024 }
                ->{$unit} // 1 if defined $mbs;
    my $mb = ($mbs // 0) * $seconds;
    return {
        rps    => $r->{rps},
        mbs    => $mbs // 0,
        total  => $r->{total},
        errors => $r->{errors},
        cpu_us => $kind eq 'conn'
                  ? ($r->{total} ? $ticks * tick_us() / $r->{total} : 0)
                  : ($mb ? $ticks * tick_us() / $mb : 0),
    };
}

# every request on a connection of its own
$t->write_file('close.lua', <<'EOF');
wrk.headers["Connection"] = "close"
EOF

my $load0 = loadavg();

out("%s on %s; %d rounds of %d s; connections/s with %d clients, "
    . "throughput of a %d-byte body with 4\n", 'bench/stream.pl', commit(),
    @o{qw(rounds seconds connections blob)});
out("%s\n", $o{pin} ? 'nginx worker on CPU 0; wrk and backends on CPU 1'
                    : 'no CPU pinning');
out("load average before: %s\n", $load0);

run($_, 'conn', 1), run($_, 'blob', 1) for qw(qq st);    # warm up

my %R;
out("\n%-6s %-5s %12s %9s %12s %9s\n", 'round', 'what', 'qqfail', 'cpu us',
    'static', 'cpu us');
for my $i (1 .. $o{rounds}) {
    for my $kind (qw(conn blob)) {
        my %r;
        for my $side ($i % 2 ? qw(qq st) : qw(st qq)) {
            $r{$side} = run($side, $kind, $o{seconds});
            die "$r{$side}{errors} non-2xx responses ($side, $kind)\n"
                if $r{$side}{errors};
            push @{ $R{$kind}{$side} }, $r{$side};
        }
        my $f = $kind eq 'conn' ? 'rps' : 'mbs';
        out("%-6d %-5s %12.1f %9.2f %12.1f %9.2f\n", $i, $kind,
            $r{qq}{$f}, $r{qq}{cpu_us}, $r{st}{$f}, $r{st}{cpu_us});
    }
}

my %SUM;
out("\nmedians over %d rounds (ratio: qqfail / static, per round, then the "
    . "median)\n", $o{rounds});
for my $kind (qw(conn blob)) {
    my $f = $kind eq 'conn' ? 'rps' : 'mbs';
    my ($q, $s) = @{ $R{$kind} }{qw(qq st)};
    my @ratio = map { $q->[$_]{$f} / $s->[$_]{$f} } 0 .. $#$q;
    my @cpu = map { $s->[$_]{cpu_us} ? $q->[$_]{cpu_us} / $s->[$_]{cpu_us}
                                     : () } 0 .. $#$q;
    $SUM{$kind} = {
        qq => median(map { $_->{$f} } @$q), st => median(map { $_->{$f} } @$s),
        ratio => median(@ratio), ratios => \@ratio,
        qq_cpu_us => median(map { $_->{cpu_us} } @$q),
        st_cpu_us => median(map { $_->{cpu_us} } @$s),
        cpu_ratio => median(@cpu), runs => $R{$kind},
    };
    out("%-24s qqfail %10.1f  static %10.1f  ratio %.3f;  worker CPU "
        . "%s qqfail %.2f us, static %.2f us, ratio %.3f\n",
        $kind eq 'conn' ? 'connections/s' : 'throughput MB/s',
        @{ $SUM{$kind} }{qw(qq st ratio)},
        $kind eq 'conn' ? 'per connection' : 'per MB',
        @{ $SUM{$kind} }{qw(qq_cpu_us st_cpu_us)}, $SUM{$kind}{cpu_ratio} // 0);
}

my $load1 = loadavg();
out("load average after: %s\n", $load1);

$t->stop;

if ($o{save}) {
    my @files = save_results(name => 'stream', dir => $o{results},
                             text => out_text(),
                             data => { options => \%o, summary => \%SUM,
                                       load => [ $load0, $load1 ] });
    print "results: @files\n";
}

# the harness checks the logs at exit, as tests do
Test::More::done_testing() if defined &Test::More::done_testing;
