#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# With qqfail_ipv6 on, a server with no address asks A alone first: it
# serves from its IPv4 addresses as soon as the A answers are in, without
# waiting for slow AAAA answers, and its AAAA come with its next round (the
# first refresh).  A name without A records (IPv6 only) is asked again for
# both at once, and keeps its name: no failover to its alias.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;

# dual.test: A at once, AAAA after 3 s (as from a resolver waiting on a
# slow authority: a query c-ares sends again is answered with the first,
# hold_ms); v6only.test: AAAA only, its alias has an A record
$dns->fault_set('dual.test', { addrs => [ $b1, '::1' ], ttl => 120,
                               AAAA => { hold_ms => 3000 } });
$dns->fault_set('v6only.test', { addrs => [ '::1' ], ttl => 120 });
$dns->fault_set('v6only-alias.test', { addrs => [ $b1 ], ttl => 120 });

$s->nginx(
    providers => "    qqfail_provider pf $pf;\n",
    upstream => "        qqfail_server dual.test:$P;\n"
              . "        qqfail_server v6only.test:$P v6only-alias.test:$P"
              . " backup;\n"
              . "        qqfail_ipv6 on;\n"
              . "        qqfail_timeout 5s;\n"
              . "        qqfail_refresh 4s;\n");

$t->start;

# the first request after the start: served from dual.test's A record
# while its AAAA answers are still on their way
my $r = $t->http_get('/');
is("$r->{status} " . ($r->{content} // ''), '200 b1',
   'the first request after the start is served');
is($s->addresses('dual.test'), "$b1:$P",
   'dual.test serves from its IPv4 address before its AAAA answers came');

# the next round (the first refresh) brings the AAAA records
ok($t->wait_for(sub { $s->addresses('dual.test') eq "$b1:$P [::1]:$P" }, 30,
                'AAAA of dual.test'),
   'the first refresh adds the IPv6 address');

my %asked;
$asked{"$_->{name} $_->{type}"}++ for $dns->fault_queries;
ok($asked{'dual.test AAAA'}, 'AAAA was asked for dual.test ('
   . ($asked{'dual.test AAAA'} // 0) . ' queries)');

# the IPv6-only name: asked again for both types, served from its AAAA
# record, never failed over to its alias
ok($t->wait_for(sub { $s->addresses('v6only.test') eq "[::1]:$P" }, 20,
                'v6only.test'),
   'a name with AAAA records only resolves');
my $v6 = $s->server_status('v6only.test');
is($v6->{active_name}, "v6only.test:$P", 'it keeps its own name');
is($v6->{failovers}, 0, 'no failover to its alias');
unlike($t->error_log, qr/failing over/, 'no failover in the error log');

$t->stop;

done_testing;
