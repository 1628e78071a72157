#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Pacing: a provider with "max_inflight=" never has more queries in flight
# than that, one with "rate=" never gets more queries a second; waiting for
# a turn is never counted as a provider failure and causes no failover.
# And the refresh is spread: after the start, no second carries more than
# twice the average.  The independence check's queries are paced by rate=
# too.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $N = 200;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;

# $N servers nI.example.com with an IP literal alias, or with "line" the
# qqfail_server line of server I
sub config {
    my (%o) = @_;
    my $line = $o{line} // sub { "n$_[0].example.com:$P $b1:$P" };
    $s->nginx(workers => 2,
        providers => "    qqfail_provider pf $pf $o{params};\n",
        upstream => join('', map {
                "        qqfail_server " . $line->($_) . ";\n"
            } 1 .. ($o{servers} // $N))
          . "        qqfail_refresh $o{refresh};\n"
          . "        qqfail_timeout 2s;\n");
}

sub queries {
    my @q = $dns->fault_queries;
    return grep { $_->{name} =~ /^n\d+\.example\.com$/ } @q;
}

sub servers {
    my $st = $s->status or return ();
    my ($u) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} };
    return $u ? @{ $u->{servers} } : ();
}

sub all_live {
    my @s = servers();
    return @s == $N && !grep { ($_->{active_name} // '') !~ /^n\d+\./ } @s;
}

# 1. max_inflight=20 with answers that take 300 ms: at most 20 queries
#    wait for an answer at any moment

$dns->fault_set('*', { addrs => [ $b1 ], ttl => 60, delay_ms => 300 });
config(params => 'max_inflight=20', refresh => '60s');
$t->start;
ok($t->wait_for(\&all_live, 60, 'all live'),
   "every one of $N servers resolves through the paced provider");

# in flight at time x: queries received in (x - 0.28 s, x], a little
# under the 300 ms each stays in flight; the start-up pass (its first
# 0.5 s) and the leader are paced each on its own, and at the handoff a
# provider may see the pass's last queries and the leader's first ones
sub peak {
    my (@times) = @_;
    my ($peak, $j) = (0, 0);
    for my $i (0 .. $#times) {
        $j++ while $times[$j] <= $times[$i] - 0.28;
        $peak = $i - $j + 1 if $i - $j + 1 > $peak;
    }
    return $peak;
}

my @times = sort { $a <=> $b } map { $_->{time} } queries();
my @pass = grep { $_ < $times[0] + 0.5 } @times;
my @leader = grep { $_ >= $times[0] + 0.5 } @times;
my $peak = peak(@pass);
ok($peak <= 22, "start-up pass: at most 20 queries in flight (peak $peak "
                . 'of ' . @pass . ' queries; 2 of slack for timing)');
$peak = peak(@leader);
ok($peak <= 22, "leader: at most 20 queries in flight (peak $peak of "
                . @leader . ' queries; 2 of slack for timing)');

my $p = $s->provider_status('pf');
is($p->{failures}{timeout}, 0, 'waiting for a turn is no timeout');
is((grep { $_->{failovers} } servers()), 0, 'and no failover');
diag("max_inflight=20: " . scalar(@times) . " queries, peak in flight $peak");

# 2. rate=100: at most 100 queries in any second

$t->stop;
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 60 });
my $before = scalar queries();
config(params => 'rate=100', refresh => '60s');
$t->start;
ok($t->wait_for(\&all_live, 60, 'all live'),
   "every one of $N servers resolves at rate=100");

my @all = queries();
@times = sort { $a <=> $b } map { $_->{time} } @all[ $before .. $#all ];
my %per;
$per{ int $_ }++ for @times;
my ($max) = sort { $b <=> $a } values %per;
ok(@times >= $N && $max <= 120, "at most 100 queries a second, 20 % of "
   . "slack for the start-up pass's last tenth of a second (peak $max "
   . 'of ' . scalar(@times) . ')');
diag("rate=100: " . scalar(@times) . " queries, peak $max a second");

# 3. the refresh is spread: with a 10 s refresh, the servers' next lookups
#    (status: next_lookup) fall evenly over the window, no second with more
#    than twice the average, at the start and a round later; the queries
#    the provider saw are shown too (a loaded machine can delay them)

$t->stop;
config(params => '', refresh => '10s');
$t->start;
ok($t->wait_for(\&all_live, 30, 'all live'), 'all live with a 10 s refresh');

sub spread {
    my ($what) = @_;
    my %per;
    $per{ $_->{next_lookup} }++ for servers();
    my ($max) = sort { $b <=> $a } values %per;
    my $avg = $N / 10;
    ok($max <= 2 * $avg, "$what: at most $max next lookups in one second "
                         . "against an average of $avg");
}

spread('after the start');
my $from = time;
$t->wait_for(sub { time > $from + 12 }, 20, 'a round of refreshes');
spread('a round later');

my @round = grep { $_ >= $from && $_ < $from + 10 }
            map { $_->{time} } queries();
my %second;
$second{ int $_ }++ for @round;
my ($top) = sort { $b <=> $a } values %second;
diag(sprintf 'refresh 10s: %d queries in 10 s, peak %d in a second',
     scalar @round, $top // 0);

# 4. the independence check is paced by rate= as the lookups are: servers
#    with two names each, whose zones (SOA, walking up: the fault server
#    has none) it asks the provider for beside the lookups; every query
#    the provider gets counts, from the start until every server was
#    checked

my $M = 40;
$t->stop;
my $mark = scalar $dns->fault_queries;
config(params => 'rate=50', refresh => '60s', servers => $M,
       line => sub { "c$_[0].example.com:$P c$_[0].example.net:$P" });
$t->start;
ok($t->wait_for(sub {
        my @s = servers();
        @s == $M && !grep { !($_->{independence} // {})->{checked} } @s
   }, 60, 'every server checked'), "the check ran for all $M servers");

my @q = ($dns->fault_queries)[ $mark .. scalar($dns->fault_queries) - 1 ];
my @soa = grep { $_->{type} eq 'SOA' } @q;
%per = ();
$per{ int $_->{time} }++ for @q;
($max) = sort { $b <=> $a } values %per;
ok(@soa > $M, 'the check asked the provider for zones (' . scalar(@soa)
              . ' SOA queries of ' . scalar(@q) . ')');
ok($max <= 60, "rate=50: at most 50 queries a second, the check's "
               . "included, 20 % of slack (peak $max)");
diag("rate=50 with the independence check: " . scalar(@q)
     . " queries, peak $max a second");

done_testing();
