#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# A provider's cache answers with the rest of a TTL, and the names it
# fetched together (all of them, at a start) end their TTL at the same
# moment.  The refresh keeps its own pace through such rests: the names do
# not all come back in the second their cached TTL ends, and the queries
# stay spread.  A record whose own TTL is shorter than qqfail_refresh
# still sets the pace.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $N = 200;
my ($REFRESH, $CACHE) = (6, 12);

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;

# every name as a cache gives it: a 12 s TTL from its first query on;
# short.test has a 2 s TTL of its own
$dns->fault_set('*', { addrs => [ $b1 ], cache_ttl => $CACHE });
$dns->fault_set('short.test', { addrs => [ $b1 ], ttl => 2 });

$s->nginx(
    providers => "    qqfail_provider pf $pf;\n",
    upstream => join('', map { "        qqfail_server c$_.test:$P;\n" } 1 .. $N)
              . "        qqfail_server short.test:$P;\n"
              . "        qqfail_refresh ${REFRESH}s;\n"
              . "        qqfail_ipv6 off;\n");

my $t0 = time;
$t->start;

ok($t->wait_for(sub {
        my $st = $s->status or return 0;
        !grep { $_->{source} ne 'live' } @{ $st->{upstreams}[0]{servers} }
    }, 30, 'all live'), "all $N servers live");

# three cached TTLs from the start: every name's rest ended twice
my $END = $t0 + 3 * $CACHE + 2;
ok($t->wait_for(sub { time > $END }, 3 * $CACHE + 10, 'three cache TTLs'),
   'three cache TTLs went by');

my (%sec, $n, %short);
for my $q ($dns->fault_queries) {
    next unless $q->{time} >= $t0 + $CACHE - 2 && $q->{time} < $END;
    if ($q->{name} eq 'short.test') {
        $short{int $q->{time}}++;
        next;
    }
    $sec{int $q->{time}}++;
    $n++;
}

my $span = $END - ($t0 + $CACHE - 2);
my ($peak) = sort { $b <=> $a } values %sec;
diag("after the first cached TTL: $n queries in ${\ int $span} s, the "
     . "busiest second " . ($peak // 0) . ": "
     . join(' ', map { $sec{$_} } sort keys %sec));

ok($peak && $peak < $N / 2, "no second carries half the names ($peak of $N)");
ok($n <= 1.5 * $N * $span / $REFRESH, "about one query per name per "
   . "refresh: $n in ${\ int $span} s for $N names and ${REFRESH}s");

# short.test's own 2 s TTL: looked up about every 2 s, not every 6 s
my $nshort = 0;
$nshort += $_ for values %short;
ok($nshort >= $span / 3, "the name with a 2 s TTL was asked $nshort times "
   . "in ${\ int $span} s");

$t->stop;

done_testing;
