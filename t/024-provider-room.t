#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# "max_inflight=" is a bound on the queries in flight to each provider,
# counted until each query ends: a slow provider gets no more than its
# room even while a fast one decides every name at once, and a provider
# that stopped answering holds no server's turn (it is asked only where it
# has room) and is charged nothing for the queries it was never sent.
#
# What is counted is the module's queries: a packet with the DNS ID, name
# and type of an earlier one is that query sent again by c-ares (1.32 and
# later retry within a query's share of qqfail_timeout, and 1.34 once more,
# from a new socket, as the module ends it, when it knows no latency of
# the provider yet: then its first attempt takes the whole share).  Those
# are counted apart and shown.  The start-up pass (the master) and the leader
# (a worker) are told apart by their client port, not by time: the leader
# starts as the pass ends, about 0.5 s after its first query.

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

my $fast = $dns->start_fault_server;
my $slow = $dns->start_fault_server;

sub config {
    $s->nginx(workers => 2,
        providers => "    qqfail_provider fast $fast;\n"
                   . "    qqfail_provider slow $slow max_inflight=20;\n",
        upstream => join('', map {
                "        qqfail_server n$_.example.com:$P $b1:$P;\n"
            } 1 .. $N)
          . "        qqfail_refresh 60s;\n"
          . "        qqfail_timeout 2s;\n");
}

# the queries to a provider in time order, each once (its first packet),
# and the packets that sent one of them again
sub queries_to {
    my ($server) = @_;
    my (%seen, @first, @again);
    for my $q (sort { $a->{time} <=> $b->{time} }
               grep { $_->{name} =~ /^n\d+\.example\.com$/ }
               $dns->fault_queries(server => $server)) {
        my $key = join ' ', map { $_ // '-' } @$q{qw(id name type)};
        push @{ $seen{$key}++ ? \@again : \@first }, $q;
    }
    return (\@first, \@again);
}

sub times_of {
    return map { $_->{time} } @_;
}

sub servers {
    my $st = $s->status or return ();
    my ($u) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} };
    return $u ? @{ $u->{servers} } : ();
}

sub all_live {
    my @s = servers();
    return @s == $N && !grep { ($_->{source} // '') ne 'live' } @s;
}

# the most queries received within any $window seconds (a little under
# how long each stays in flight, so that one ending and the next sent
# after it never count twice): the queries in flight
# to a provider that answers after that time (or never, and times out)
sub peak {
    my ($window, @times) = @_;
    my ($peak, $j) = (0, 0);
    for my $i (0 .. $#times) {
        $j++ while $times[$j] <= $times[$i] - $window;
        $peak = $i - $j + 1 if $i - $j + 1 > $peak;
    }
    return $peak;
}

# the times of the queries of the start-up pass (the master: the client
# port of the first query) and of the leader (any other port)
sub split_pass {
    my (@q) = @_;
    return ([], []) unless @q;
    my $master = $q[0]{from} // '-';
    return ([ times_of(grep { ($_->{from} // '-') eq $master } @q) ],
            [ times_of(grep { ($_->{from} // '-') ne $master } @q) ]);
}

# 1. the slow provider answers after 300 ms, the fast one at once: every
#    name is decided by the fast one, yet the slow one never has more than
#    its 20 queries in flight from the leader

$dns->fault_set('*', { addrs => [ $b1 ], ttl => 120 }, $fast);
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 120, delay_ms => 300 },
                $slow);
config();
$t->start;
ok($t->wait_for(\&all_live, 60, 'all live'),
   "every one of $N servers resolves");
my $q = $dns->fault_queries(server => $slow);
ok($t->wait_for(sub {
        my $n = $dns->fault_queries(server => $slow);
        my $same = $n == $q;
        $q = $n;
        return $same && $n >= $N;
    }, 30, 'the slow provider asked every name'),
   "the slow provider was asked every name too ($q queries)");

# the start-up pass (at most 0.5 s) and the leader are paced each on its
# own: at the handoff, once, a provider may see up to twice its room
my ($first, $again) = queries_to($slow);
my ($pass, $leader) = split_pass(@$first);
my $peak = peak(0.28, @$pass);
ok($peak <= 22, "start-up pass: at most 20 queries in flight to the slow "
                . "provider (peak $peak of " . @$pass . ' queries)');
$peak = peak(0.28, @$leader);
ok($peak <= 22, "leader: at most 20 queries in flight to the slow provider "
                . "(peak $peak of " . @$leader . ' queries; 2 of slack)');
my $p = $s->provider_status('slow');
is($p->{failures}{timeout}, 0, 'waiting for room is no timeout');
diag("slow provider: " . @$pass . ' + ' . @$leader . ' queries, '
     . @$again . ' sent again by c-ares');

# 2. the slow provider never answers: it is marked down after its first
#    timeouts and then holds no server's turn; it still gets queries, never
#    more than 20 in flight from the leader (a query to it ends when it
#    times out, 2 s)

$t->stop;
$dns->fault_set('*', { drop => 1 }, $slow);
my @before = @{ (queries_to($slow))[0] };
my $before_again = @{ (queries_to($slow))[1] };
config();
$t->start;
ok($t->wait_for(\&all_live, 60, 'all live'),
   "every one of $N servers resolves through the provider that answers");
ok($t->wait_for(sub {
        my $st = $s->provider_status('slow');
        return $st && $st->{state} eq 'down';
    }, 30, 'provider down'), 'the silent provider is shown down');

($first, $again) = queries_to($slow);
my @slow = @$first[ scalar @before .. $#$first ];
my @again = @$again[ $before_again .. $#$again ];
($pass, $leader) = split_pass(@slow);
$peak = peak(1.9, @$pass);
ok($peak <= 22, "start-up pass: at most 20 queries in flight to the silent "
                . "provider (peak $peak of " . @$pass . ' queries)');
$peak = peak(1.9, @$leader);
ok($peak <= 22, "leader: at most 20 queries in flight to the silent provider "
                . "(peak $peak of " . @$leader . ' queries in 2 s)');
ok(@slow < 2 * $N, 'the silent provider was not asked every name ('
                   . scalar(@slow) . ' queries for ' . $N . ' names)');
is((grep { $_->{failovers} } servers()), 0, 'no server failed over');
diag("silent provider: " . scalar(@slow) . " queries, peak in 2 s $peak; "
     . @again . ' sent again by c-ares, peak of every packet in 2 s '
     . peak(1.9, sort { $a <=> $b } times_of(@slow, @again)));

done_testing();
