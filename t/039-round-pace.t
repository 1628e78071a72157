#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The pace of a server's rounds when its names do not resolve cleanly:
# - providers that disagree on the name in use (no quorum): the addresses
#   stay, and the lookups back off from 1 s to qqfail_refresh, never every
#   second for as long as the disagreement lasts;
# - a provider nothing answers at (connection refused), with qqfail_ipv6
#   on and no address yet: each round asks A alone, once; an error is not
#   a missing A record, so the round is not asked again for A and AAAA.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my ($b1, $b2) = map { $s->backend($_)->addr } 1 .. 2;

my $f1 = $dns->start_fault_server;
my $f2 = $dns->start_fault_server;

$dns->fault_set('q.test', { addrs => [ $b1 ], ttl => 60 });

$s->nginx(
    providers => "    qqfail_provider f1 $f1;\n    qqfail_provider f2 $f2;\n",
    upstream => "        qqfail_server q.test:$P;\n"
              . "        qqfail_quorum 2;\n"
              . "        qqfail_refresh 8s;\n"
              . "        qqfail_ipv6 off;\n");

$t->start;

ok($t->wait_for(sub { $s->addresses('q.test') eq "$b1:$P" }, 10, 'q.test'),
   'both providers agree: q.test in use');

# the providers now disagree, each with a new set: no quorum (a provider
# still giving the set in use would keep it without one)
my $mark = $t->log_mark;
$dns->fault_set('q.test', { addrs => [ $b2 ], ttl => 60 }, $f1);
$dns->fault_set('q.test', { addrs => [ $t->addr(246) ], ttl => 60 }, $f2);

ok($t->wait_for_log(qr/fewer than 2 providers agree on the addresses of "q\.test"/,
                    20, $mark), 'no quorum: logged');

sub asked { return scalar $dns->fault_queries(name => 'q.test', server => $f1) }

my ($n0, $t0) = (asked(), time);
ok($t->wait_for(sub { time - $t0 >= 12 }, 20, '12 s'), '12 s went by');
my $n = asked() - $n0;

is($s->addresses('q.test'), "$b1:$P", 'no quorum: the address stays');
ok($n >= 2 && $n <= 7, "no quorum for 12 s: $n lookups (backing off from "
   . '1 s to the 8 s refresh, not one a second)');

$t->stop;

# a provider that refuses every query, qqfail_ipv6 on
my $dead = $t->addr(245) . ':' . $dns->{port};

$s->nginx(
    providers => "    qqfail_provider dead $dead;\n",
    upstream => "        qqfail_server v.test:$P;\n"
              . "        qqfail_server $b1:$P backup;\n"
              . "        qqfail_refresh 2s;\n"
              . "        qqfail_ipv6 on;\n");

$t->start;

my $t1 = time;
ok($t->wait_for(sub { time - $t1 >= 10 }, 20, '10 s'), '10 s went by');
my $pr = $s->provider_status('dead') // {};
my $q = $pr->{queries} // 0;

# each lookup of v.test is logged once (failed, or the provider down)
my $lookups = () = $t->error_log
    =~ /provider "dead" (?:failed for|is down \(\w+ for) "v\.test"/g;
ok($lookups >= 3, "v.test looked up $lookups times in 10 s");
ok($q <= $lookups + 1, "refused provider: $q queries for $lookups lookups "
   . '(A alone, one query a lookup)');
like($s->server_status('v.test')->{source} // '', qr/^none$/,
     'v.test has no address');

$t->stop;

done_testing;
