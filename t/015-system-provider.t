#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# With no qqfail_provider, the one provider "system" comes from
# /etc/resolv.conf.  Tested only inside a network namespace of this test,
# whose /etc/resolv.conf names one of our unbound providers: the machine's
# real resolver never sees a packet.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Netns;

BEGIN {
    plan skip_all => 'network namespaces need root' unless $> == 0;
    plan skip_all => QQ::Netns::unusable() if QQ::Netns::unusable();
    QQ::Netns::enter() or plan skip_all => "no netns: $QQ::Netns::ERROR";
}

use QQ::Topo;

my $s = QQ::Topo->new(backends => 2, providers => 2);
my ($t, $dns) = ($s->t, $s->dns);

QQ::Netns::set_resolv_conf("nameserver " . $dns->provider_ip(2) . "\n"
                           . "options timeout:1 attempts:1\n");

$s->nginx(providers => '',
    upstream => "        qqfail_server server1.example.com:%%BPORT%%;\n"
              . "        qqfail_refresh 2s;");
$t->start;

is($s->body, 'b1', 'resolved through the system provider');

my $st = $s->status;
is(scalar @{ $st->{providers} }, 1, 'one provider');
is($st->{providers}[0]{name}, 'system', 'named "system"');
is_deeply($st->{providers}[0]{servers}, [ $dns->provider_ip(2) . ':53' ],
          'its server, as c-ares reads it from /etc/resolv.conf');
ok($st->{providers}[0]{queries} > 0, 'it was queried');

$dns->set_record('server1.example.com', [ $s->backend(2)->addr ]);
ok(defined $s->wait_backend('b2', 10), 'a record change is followed');

done_testing();
