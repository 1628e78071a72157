#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The status page at scale: N qqfail_server lines (IP literals, no DNS)
# in one worker beside a proxied upstream.  Per format and view: the page
# size, the time to fetch it, the worker CPU per render, and the latency of
# proxied requests sent one after the other on a keep-alive connection
# while the page is fetched (against the same requests with no page).
#
#   bench/status.pl                      # 10,000 servers
#   bench/status.pl --names 1000 --rounds 5
#   QQ_MODULE=/path/to/other.so bench/status.pl   # another build
#
# Not a test: it prints a table and exits 0.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time);

use QQ::Topo;

my %o = (names => 10000, rounds => 10);
GetOptions(\%o, 'names=i', 'rounds=i') or die "bad options\n";

my $TICK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;
my $pf = $dns->start_fault_server;

sub literal {
    my ($i) = @_;
    return sprintf '127.%d.%d.%d', 100 + int($i / 65536),
                   int($i / 256) % 256, $i % 256;
}

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    http => '    qqfail_zone ' . (8 + int($o{names} / 200)) . "m;\n"
          . "    upstream big {\n"
          . join('', map { '        qqfail_server ' . literal($_) . ":$P;\n" }
                         1 .. $o{names})
          . "    }\n",
    upstream => "        qqfail_server $b1:$P;\n");
$t->start;
$t->wait_for(sub { $s->body eq 'b1' }, 60, 'proxying') or die "no proxying\n";

my ($worker) = $t->worker_pids;

sub cpu {
    open my $fh, '<', "/proc/$worker/stat" or return 0;
    my $stat = <$fh>;
    $stat =~ s/^.*\)\s+//;
    my @f = split ' ', $stat;
    return ($f[11] + $f[12]) / $TICK;
}

sub connect_to {
    my $sock = IO::Socket::INET->new(PeerAddr => $t->addr(1),
                                     PeerPort => $t->port(1),
                                     Proto => 'tcp') or die "connect: $!";
    $sock->autoflush(1);
    return $sock;
}

# one proxied request on a keep-alive connection: its latency in ms
sub proxied {
    my ($sock) = @_;
    my $t0 = time;
    print {$sock} "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    my $buf = '';
    while ($buf !~ /\r\n\r\n/ || length($buf) < (index($buf, "\r\n\r\n") + 4
                                                 + content_length($buf)))
    {
        sysread($sock, $buf, 4096, length $buf) or die "proxied: closed\n";
    }
    return (time - $t0) * 1000;
}

sub content_length {
    my ($buf) = @_;
    return $buf =~ /Content-Length:\s*(\d+)/i ? $1 : 0;
}

sub pct {
    my ($p, @v) = @_;
    return 0 unless @v;
    @v = sort { $a <=> $b } @v;
    return $v[ int($p * $#v + 0.5) ];
}

# the proxied requests alone
my $keep = connect_to();
my @base;
for (1 .. 4) {
    push @base, proxied($keep) for 1 .. 500;
    close $keep;
    $keep = connect_to();
}
open my $la, '<', '/proc/loadavg';
printf "%d servers, module %s, load average %s", $o{names}, $t->module_path,
       scalar <$la>;
printf "proxied alone: %d requests, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n\n",
       scalar @base, pct(0.5, @base), pct(0.99, @base), pct(1, @base);

printf "%-31s %10s %9s %9s %6s %9s %9s %9s\n", 'page', 'bytes', 'fetch ms',
       'cpu ms', 'prox', 'prox p50', 'prox p99', 'prox max';

for my $q ('format=json', 'format=prometheus', 'format=html',
           'view=summary', 'view=summary&format=prometheus')
{
    my (@fetch, @lat, $bytes);

    # the page alone: fetch time and the worker's CPU per page
    my $cpu0 = cpu();

    for (1 .. $o{rounds}) {
        my $t0 = time;
        my $a = connect_to();
        print {$a} "GET /status?$q HTTP/1.0\r\nHost: x\r\n\r\n";
        my $data = '';
        while (sysread($a, $data, 1 << 20, length $data)) { }
        close $a;
        push @fetch, (time - $t0) * 1000;
        $bytes = length($data) - index($data, "\r\n\r\n") - 4;
    }

    my $cpu = (cpu() - $cpu0) * 1000 / $o{rounds};

    # the page again, with proxied requests beside it (a new keep-alive
    # connection each time: keepalive_requests closes it after 1,000)
    for (1 .. $o{rounds}) {
        close $keep;
        $keep = connect_to();
        my $a = connect_to();
        print {$a} "GET /status?$q HTTP/1.0\r\nHost: x\r\n\r\n";

        my $data = '';
        my $sel = IO::Select->new($a);

        # proxied requests one after the other until the page is in
        while (1) {
            push @lat, proxied($keep);

            while ($sel->can_read(0)) {
                my $n = sysread($a, $data, 1 << 20, length $data);
                goto DONE unless $n;
            }
        }
      DONE:
        close $a;
    }

    printf "%-31s %10d %9.1f %9.1f %6d %9.2f %9.2f %9.2f\n", $q, $bytes,
           pct(0.5, @fetch), $cpu, scalar @lat, pct(0.5, @lat),
           pct(0.99, @lat), pct(1, @lat);
}

close $keep;
$t->stop;

Test::More::done_testing() if defined &Test::More::done_testing;
