#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# 300 servers, each with an alias, three unbound providers, DNS healthy:
# the lookups are paced and the DNS sockets sized for the answers in
# flight, so no answer is dropped by the kernel and no server fails over to
# its alias on the module's own account.  Drops would be counted on the
# status page.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $N = 300;

my $s = QQ::Topo->new(backends => 1, providers => 3, ttl => 30);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

# every name on backend b1
$dns->set_records({ map { ("svc$_.example.com" => [ $b1 ],
                           "svc$_.example.net" => [ $b1 ]) } 1 .. $N });

$s->nginx(workers => 2,
    upstream => join('', map {
            "        qqfail_server svc$_.example.com:$P svc$_.example.net:$P;\n"
        } 1 .. $N)
      . "        qqfail_refresh 5s;\n"
      . "        qqfail_timeout 2s;\n");

$t->start;

sub servers {
    my $st = $s->status or return ();
    my ($u) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} };
    return $u ? @{ $u->{servers} } : ();
}

ok($t->wait_for(sub {
        my @s = servers();
        @s == $N && !grep { !@{ $_->{addresses} } } @s;
    }, 60, 'all live'), "every one of $N servers has its address");

# two more refresh rounds, all at once

my $st = $s->status;
my $q0 = 0;
$q0 += $_->{queries} for @{ $st->{providers} };
ok($t->wait_for(sub {
        my $q = 0;
        $q += $_->{queries} for @{ ($s->status || {})->{providers} || [] };
        $q >= $q0 + 2 * $N * 3;
    }, 60, 'two refresh rounds'), 'two more refresh rounds ran');

my @s = servers();
my @alias = grep { $_->{active_name} !~ /\.example\.com:/ } @s;
my $failovers = 0;
$failovers += $_->{failovers} for @s;
is(scalar @alias, 0, 'no server is on its alias');
is($failovers, 0, 'no failover happened');

$st = $s->status;
my $drops = 0;
my $timeouts = 0;
for my $p (@{ $st->{providers} }) {
    $drops += $p->{drops} // 0;
    $timeouts += $p->{failures}{timeout};
}
is($drops, 0, 'no answer was dropped by the kernel');
is($timeouts, 0, 'no provider was charged a timeout');
like($t->http_get('/status?format=prometheus')->{content},
     qr/^qqfail_provider_drops_total\{provider="p1"\} 0$/m,
     'Prometheus: qqfail_provider_drops_total');
diag("$N servers: $failovers failovers, $drops drops, $timeouts timeouts");

done_testing();
