#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Names are looked up through every provider at once, inside nginx's event
# loop, and every worker balances over the published addresses: a record
# that moves is followed within its TTL with no failed request, a
# black-holed provider does not slow lookups down, a provider that answers
# SERVFAIL does not stop the others.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 3, providers => 3);
my ($t, $dns) = ($s->t, $s->dns);

# a fourth provider answers SERVFAIL for every name
my $fault = $dns->start_fault_server;
$dns->fault_set('*', { rcode => 'SERVFAIL' });

$s->nginx(
    providers => $s->providers_conf . "    qqfail_provider pf $fault;\n",
    http => "    log_format qq '\$upstream_addr \$qqfail_name "
          . "\$qqfail_source';\n"
          . "    access_log %%DIR%%/qq.log qq;",
    upstream => "        qqfail_server server1.example.com:%%BPORT%% "
              . "server1.example.net:%%BPORT%%;\n"
              . "        qqfail_refresh 5s;\n"
              . "        qqfail_timeout 8s;",
);

$t->start;

my $b1 = $s->backend(1)->addr . ':' . $s->bport;
my $b2 = $s->backend(2)->addr . ':' . $s->bport;
my $b3 = $s->backend(3)->addr . ':' . $s->bport;

# the synchronous pass at start: addresses from the first request on

is($s->body, 'b1', 'first request after start answered by b1');

my $st = $s->server_status('server1.example.com');
is($st->{source}, 'live', 'status: source live');
is($st->{active_name}, 'server1.example.com:' . $s->bport,
   'status: active name is the primary');
is($s->addresses('server1.example.com'), $b1, 'status: address of b1');

like($t->read_file('qq.log'),
     qr/^\Q$b1\E server1\.example\.com live$/m,
     '$qqfail_name and $qqfail_source in the access log');

# a record moves: traffic follows within TTL + 1 s, nothing fails

my $seen = $s->backend(1)->requests;
my $load = $s->load;
$t->wait_for(sub { $s->backend(1)->requests > $seen + 20 }, 10,
             'load reaching b1');

$dns->set_record('server1.example.com', [ $s->backend(2)->addr ]);
my $moved = time;

my $took = $s->wait_backend('b2', 10);
ok(defined $took && $took <= 4,
   'record moved: traffic follows within TTL + 1 s (took '
   . (defined $took ? sprintf('%.2f s', $took) : 'forever') . ')');

my $r = $load->stop;
is($r->{failed}, 0, "no failed request while the record moved "
                    . "($r->{sent} sent)");
ok(($r->{by_body}{b1} // 0) > 0 && ($r->{by_body}{b2} // 0) > 0,
   'load saw b1, then b2');

like($t->error_log, qr/qqfail: address set of "server1\.example\.com:\d+" changed: 1 added, 1 removed, upstream "app"/,
     'address change logged');

# provider 1 black-holed (packets dropped): lookups finish with the other
# providers, far below qqfail_timeout (8 s)

$dns->blackhole_provider(1);
$load = $s->load;

$dns->set_record('server1.example.com', [ $s->backend(3)->addr ]);

$took = $s->wait_backend('b3', 15);
ok(defined $took && $took < 5,
   'provider 1 black-holed: change followed far below qqfail_timeout (took '
   . (defined $took ? sprintf('%.2f s', $took) : 'forever') . ')');

$r = $load->stop;
is($r->{failed}, 0, "no failed request with provider 1 black-holed "
                    . "($r->{sent} sent)");

# p1 is reported down once its queries time out
ok($t->wait_for(sub {
        my $p = $s->provider_status('p1');
        $p && $p->{state} eq 'down' && $p->{failures}{timeout} > 0
   }, 25, 'p1 down'),
   'status: black-holed provider p1 is down, timeouts counted');

like($t->error_log, qr/qqfail: provider "p1" is down \(timeout/,
     'provider down logged');

$dns->restore_provider(1);

ok($t->wait_for(sub {
        my $p = $s->provider_status('p1');
        $p && $p->{state} eq 'up'
   }, 20, 'p1 up'),
   'status: p1 up again after its first good answer');

like($t->error_log, qr/qqfail: provider "p1" is up again/,
     'provider up logged');

# the SERVFAIL provider: counted, and never stopped anything

my $pf = $s->provider_status('pf');
ok($pf->{failures}{servfail} > 0, 'status: pf servfail counted ('
                                  . $pf->{failures}{servfail} . ')');
is($pf->{state}, 'up', 'a provider answering SERVFAIL is up (it answers)');
like($pf->{last_error}, qr/^servfail for server1\.example\.(com|net)$/,
     'status: last_error of pf');

my $p2 = $s->provider_status('p2');
ok($p2->{queries} > 0 && $p2->{failures}{servfail} == 0,
   'p2 answered, no failure');

is($s->body, 'b3', 'still proxying to the current address');

done_testing();
