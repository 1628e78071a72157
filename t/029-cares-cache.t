#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Every refresh reaches the provider, whatever the c-ares version the module
# runs with: c-ares 1.31 and later answer from a cache of their own by
# default (for up to the TTL, an hour at most), so that with a long TTL a
# provider would be asked once, its new answers and its outage never seen.
# The module turns that cache off; with c-ares 1.18 there is none.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my ($b1, $b2) = ($s->backend(1)->addr, $s->backend(2)->addr);

my $pf = $dns->start_fault_server;
$dns->fault_set('cached.example.com', { addrs => [ $b1 ], ttl => 300 });

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    upstream => "        qqfail_server cached.example.com:$P;\n"
              . "        qqfail_refresh 1s;\n"
              . "        qqfail_timeout 1s;");
$t->start;

ok($t->wait_for(sub { $s->body eq 'b1' }, 10, 'b1'), 'proxying to b1');

sub asked { return scalar $dns->fault_queries(name => 'cached.example.com') }

# a TTL of 300 s, a refresh of 1 s: a query a second reaches the provider

my $n0 = asked();
ok($t->wait_for(sub { asked() >= $n0 + 4 }, 12, 'queries'),
   'every refresh reaches the provider: ' . (asked() - $n0)
   . ' queries in the wait, despite the TTL of 300 s');

my $st = $s->provider_status('pf') || { queries => 0 };
ok($st->{queries} > 0 && $st->{queries} <= asked(),
   "the queries counted ($st->{queries}) reached the provider (" . asked()
   . ')');

# a new answer is seen at the next refresh, not when the TTL runs out

$dns->fault_set('cached.example.com', { addrs => [ $b2 ], ttl => 300 });
ok($t->wait_for(sub { $s->body eq 'b2' }, 10, 'b2'),
   'the changed answer is used within seconds');

# an outage is seen, not hidden behind the last answer

$dns->fault_set('cached.example.com', { drop => 1 });
sub pf_state { return (($s->provider_status('pf') || {})->{state} // '') }

ok($t->wait_for(sub { pf_state() eq 'down' }, 20, 'pf down'),
   'the silent provider is seen down');
is($s->body, 'b2', 'and the last good address still serves');

done_testing();
