#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# A full qqfail_zone: 40 servers of 32 addresses each do not fit in 128k.
# A server that cannot store its addresses is never "live" without any: it
# keeps what it had, or falls through to its next name (here an IP-literal
# alias).  The condition is logged once, with the size needed, and shown on
# the status page; no request fails; a bigger zone ends it.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Backend;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

# one backend behind 32 addresses
my @many = map { $t->addr($_) } 100 .. 131;
my $bm = QQ::Backend->new(t => $t, id => 'bm', addr => shift(@many),
                          port => $P, extra_addrs => \@many);
$bm->start;
unshift @many, $bm->addr;

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { addrs => \@many, ttl => 1 });

my $N = 40;

sub config {
    my ($zone) = @_;
    $s->nginx(workers => 2,
        providers => "    qqfail_provider pf $pf;\n",
        http => "    qqfail_zone $zone;",
        upstream => join('', map {
                "        qqfail_server big$_.example.com:$P $b1:$P;\n"
            } 1 .. $N)
          . "        qqfail_refresh 1s;\n"
          . "        qqfail_timeout 500ms;\n");
}

sub servers {
    my $st = $s->status or return ();
    my ($u) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} };
    return $u ? @{ $u->{servers} } : ();
}

config('128k');
$t->start;

my $load = $s->load(keepalive => 0, concurrency => 2);

ok($t->wait_for(sub { my $st = $s->status; $st && $st->{zone}{full} }, 15,
                'zone full'), 'the status page says the zone is full');

my $st = $s->status;
ok($st->{zone}{suggested_size} > 128 * 1024,
   "and suggests a size: $st->{zone}{suggested_size} bytes");

# wait for every server to be decided
ok($t->wait_for(sub {
        my @s = servers();
        @s == $N && !grep { $_->{source} eq 'none' && !@{ $_->{addresses} } }
                          @s;
    }, 20, 'every server has addresses'),
   'every server has addresses, its own or its alias\'s');

my @s = servers();
my @empty_live = grep { $_->{source} eq 'live' && !@{ $_->{addresses} } } @s;
is(scalar @empty_live, 0, 'no server is live without an address');

my @own = grep { $_->{active_name} =~ /^big/ } @s;
my @alias = grep { $_->{active_name} eq "$b1:$P" } @s;
ok(@own > 0 && @alias > 0, scalar(@own) . ' servers hold their 32 '
   . 'addresses, ' . scalar(@alias) . ' fell through to the literal alias');
is(@own + @alias, $N, 'each server uses one or the other');
ok(!grep({ $_->{active_name} =~ /^big/ && @{ $_->{addresses} } != 32 } @s),
   'a server on its own name has its whole set');

my @full = $t->error_log =~ /("qqfail_zone" 128k is full: .*)/g;
is(scalar @full, 1, 'the zone-full condition is logged once');
like($full[0] // '', qr/more bytes are needed, raise "qqfail_zone" to at least \d+k/,
     'the log line says what size is needed');

my $base = $s->backend(1)->requests + $bm->requests;
$t->wait_for(sub { $s->backend(1)->requests + $bm->requests > $base + 300 },
             30, '300 more requests');

my $prom = $t->http_get('/status?format=prometheus')->{content};
like($prom, qr/^qqfail_zone_full 1$/m, 'Prometheus: qqfail_zone_full 1');

my $r = $load->stop;
is($r->{failed}, 0, "0 of $r->{sent} requests failed with a full zone");
ok($r->{sent} > 50, "steady load ($r->{sent} requests)");
diag("full zone: $r->{sent} requests sent, $r->{failed} failed; "
     . scalar(@own) . " servers on their own name, " . scalar(@alias)
     . " on the alias");

# a bigger zone: everything fits

config('2m');
$t->stop;
$t->start;
ok($t->wait_for(sub {
        my @s = servers();
        @s == $N && !grep { $_->{active_name} !~ /^big/
                            || @{ $_->{addresses} } != 32 } @s;
    }, 20, 'all own'), 'with 2m every server holds its own 32 addresses');
ok(!$s->status->{zone}{full}, 'and the zone is not full');

done_testing();
