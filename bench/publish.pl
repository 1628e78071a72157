#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Publication benchmark (not a test): what the workers that do not lead
# pay when the lookup leader changes addresses, against stock nginx with
# the same servers as static "server" lines.
#
#   bench/publish.pl [--names 10000] [--workers 4] [--upstreams 10]
#                    [--refresh 30] [--flip 30] [--rate 400] [--window 60]
#                    [--module NAME=PATH ...] [--json FILE]
#
# N "qqfail_server nI.test:P" lines over U upstreams, every name answered
# by one scriptable DNS server (t/lib/QQ/FaultServer.pm, all on 127.x) with
# the same address, which moves between two backends every --flip seconds:
# with --flip equal to --refresh, every lookup of every name changes its
# server's address (N / refresh changes a second); --flip 0 never changes
# it.  Requests come at --rate a second, each on a new connection to a
# "reuseport" listener (so spread over the workers), over every upstream.
# For each module (default: objs/ngx_http_qqfail_module.so; give the old
# and the new one to compare) and for stock nginx with static lines, it
# reports the CPU seconds per minute of the workers that do not lead (and
# of the leader), over --window seconds once every name is live.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use File::Spec;
use Getopt::Long;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);

use QQ::Nginx;
use QQ::Proc;
use QQ::Topo;

my %o = (names => 10000, workers => 4, upstreams => 10, refresh => 30,
         rate => 400, window => 60, clients => 4,
         json => "$FindBin::Bin/publish-results.json");
my @modules;
GetOptions(\%o, 'names=i', 'workers=i', 'upstreams=i', 'refresh=i',
           'flip=i', 'rate=i', 'window=i', 'clients=i', 'json=s',
           'module=s' => \@modules)
    or die "usage: see the head of $0\n";
$o{flip} //= $o{refresh};
@modules = ('new=' . QQ::Nginx->module_path) unless @modules;

my $TICK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

sub cpu_seconds {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    $stat =~ s/^.*\)\s+//;
    my @f = split ' ', $stat;
    return ($f[11] + $f[12]) / $TICK;
}

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my @baddr = map { $s->backend($_)->addr } 1 .. 2;
my $P = $s->bport;
my $U = $o{upstreams};
my $N = $o{names};

my $pf = $dns->start_fault_server;
my $ttl = 2 * $o{refresh};
$dns->fault_set('*', { addrs => [ $baddr[0] ], ttl => $ttl });

sub config {
    my ($kind, $module) = @_;
    my (%qq, %st);
    for my $i (1 .. $N) {
        my $k = $i % $U;
        $qq{$k} .= "        qqfail_server n$i.test:$P;\n";
        $st{$k} .= "        server $baddr[$i % 2]:$P;\n";
    }
    my $ups = join '', map {
        "    upstream u$_ {\n"
        . ($kind eq 'static' ? $st{$_}
           : $qq{$_} . "        qqfail_refresh $o{refresh}s;\n"
                     . "        qqfail_ipv6 off;\n")
        . "        keepalive 32;\n    }\n"
    } 0 .. $U - 1;
    my $locs = join '', map {
        "        location /u$_/ { proxy_pass http://u$_; }\n"
    } 0 .. $U - 1;
    my $load = $kind eq 'static' ? '' : "load_module $module;";
    my $http = $kind eq 'static' ? ''
        : "    qqfail_provider pf $pf;\n    qqfail_zone 64m;\n";
    $t->write_config(<<"EOF");
$load
%%GLOBALS%%
worker_processes $o{workers};
worker_rlimit_nofile 8192;
events {
    worker_connections 4096;
}
http {
    %%HTTP_GLOBALS%%
    access_log off;
$http
$ups
    server {
        listen %%ADDR_1%%:%%PORT_1%% reuseport;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
$locs    }
}
EOF
}

# --clients children, --rate requests a second between them, each on a
# new connection, over the upstreams in turn
sub load_start {
    my $stop = $t->dir . '/load.stop';
    unlink $stop;
    my ($ip, $port) = ($t->addr(1), $t->port(1));
    my $gap = $o{clients} / $o{rate};
    my @pids = map {
        my $c = $_;
        QQ::Proc::fork_code(name => "load $c", code => sub {
            my ($n, $fail, $next) = (0, 0, time);
            until (-e $stop) {
                my $path = '/u' . (($n * $o{clients} + $c) % $U) . '/';
                my $sock = IO::Socket::INET->new(PeerAddr => $ip,
                                                 PeerPort => $port,
                                                 Timeout => 5);
                my $ok = 0;
                if ($sock) {
                    print {$sock} "GET $path HTTP/1.0\r\nHost: x\r\n\r\n";
                    my $line = <$sock> // '';
                    $ok = $line =~ m{^HTTP/1\.\d 200};
                    1 while <$sock>;
                }
                $n++;
                $fail++ unless $ok;
                $next += $gap;
                my $d = $next - time;
                sleep $d if $d > 0;
            }
            open my $fh, '>', $t->dir . "/load-$c" or die "load-$c: $!\n";
            print {$fh} "$n $fail\n";
            close $fh;
        });
    } 1 .. $o{clients};
    return sub {
        open my $fh, '>', $stop or die "$stop: $!\n";
        close $fh;
        my ($sent, $failed) = (0, 0);
        for my $c (1 .. $o{clients}) {
            $t->wait_for(sub { -e $t->dir . "/load-$c" }, 15, "load $c");
            my ($n, $f) = split ' ', $t->read_file("load-$c") // '0 0';
            ($sent, $failed) = ($sent + $n, $failed + $f);
            unlink $t->dir . "/load-$c";
        }
        waitpid($_, 0) for @pids;
        return ($sent, $failed);
    };
}

# the address every name has: flipped between the two backends
my ($flipped, $side) = (time, 0);
sub flip {
    return if !$o{flip} || time - $flipped < $o{flip};
    $flipped = time;
    $side = 1 - $side;
    $dns->fault_set('*', { addrs => [ $baddr[$side] ], ttl => $ttl });
}

sub leader {
    my $pid;
    for (split /\n/, $t->error_log) {
        $pid = $1 if /worker (\d+) leads DNS lookups/;
    }
    return $pid // 0;
}

my @RESULTS;

for my $run (['static'], map { [ split /=/, $_, 2 ] } @modules) {
    my ($kind, $module) = @$run;
    $module = File::Spec->rel2abs($module) if defined $module;
    printf STDERR "== %s: %d names, %d upstreams, %d workers\n", $kind,
        $N, $U, $o{workers};

    config($kind eq 'static' ? 'static' : 'qqfail', $module);
    $t->start(timeout => 120);

    # every name has an address: each upstream answers
    for my $k (0 .. $U - 1) {
        $t->wait_for(sub { $t->http_get("/u$k/")->{status} == 200 }, 120,
                     "u$k answers") or die "u$k never answered\n";
    }

    # the leader's start-up pass is over: its log line says it leads
    sleep 3;
    my $stop = load_start();
    if ($kind ne 'static' && $o{flip}) {
        $side = 1 - $side;
        $dns->fault_set('*', { addrs => [ $baddr[$side] ], ttl => $ttl });
    }
    sleep 2;

    my @pids = $t->worker_pids;
    my $mark = $t->log_mark;
    my %cpu0 = map { $_ => cpu_seconds($_) } @pids;
    my $t0 = time;
    $flipped = $t0 - 2;
    while (time - $t0 < $o{window}) {
        flip() if $kind ne 'static';
        sleep 0.5;
    }
    my $dt = time - $t0;
    my %cpu = map { $_ => cpu_seconds($_) - $cpu0{$_} } @pids;
    my ($sent, $failed) = $stop->();

    my $leader = $kind eq 'static' ? 0 : leader();
    my ($lcpu, $ocpu) = (0, 0);
    for (@pids) {
        if ($_ == $leader) { $lcpu += $cpu{$_} } else { $ocpu += $cpu{$_} }
    }

    # stock nginx has no leader: its workers' mean, times the others'
    $ocpu = $ocpu / @pids * (@pids - 1) if $kind eq 'static' && @pids;
    my $changes = () = $t->error_log_since($mark)
                       =~ /address set of "[^"]+" changed/g;
    $t->stop;

    my %R = (kind => $kind, module => $module, names => $N, upstreams => $U,
             workers => $o{workers}, refresh_s => $o{refresh},
             flip_s => $o{flip}, rate => $o{rate}, window_s => $dt,
             requests => $sent, failed => $failed,
             changes_logged => $changes,
             others_cpu_s_per_min => $ocpu * 60 / $dt,
             others_cpu_ms_per_request =>
                 $sent ? $ocpu * 1000 / $sent : undef,
             leader_cpu_s_per_min => $lcpu * 60 / $dt);
    push @RESULTS, \%R;
    printf "%-8s others %6.2f CPU s/min (%.3f ms a request), leader "
         . "%6.2f; %d requests, %d failed, %d address changes in the "
         . "window\n", $kind, $R{others_cpu_s_per_min},
         $R{others_cpu_ms_per_request} // 0, $R{leader_cpu_s_per_min},
         $sent, $failed, $changes;
    $t->write_file('error.log', '');
}

$dns->stop_all;

if (open my $jf, '>', $o{json}) {
    require JSON::PP;
    print {$jf} JSON::PP->new->canonical->pretty->encode(
        { options => \%o, time => time, results => \@RESULTS });
    close $jf;
    print "JSON summary: $o{json}\n";
}

Test::More::done_testing() if defined &Test::More::done_testing;
