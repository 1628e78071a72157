#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Addresses are added and removed every second while requests are in
# flight, on several workers, with keepalive and retries: every request
# succeeds, and (under ./build.sh test --asan) no memory error appears.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 4, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my @addr = map { $s->backend($_)->addr } 1 .. 4;

my $pf = $dns->start_fault_server;
$dns->fault_set('churn.test', { addrs => [ @addr[0, 1] ], ttl => 1 });
$dns->fault_set('steady.test', { addrs => [ $addr[3] ], ttl => 1 });

$s->nginx(workers => 3,
    providers => "    qqfail_provider pf $pf;\n",
    location => "proxy_pass http://app;\n"
              . "            proxy_next_upstream error timeout;\n"
              . "            proxy_http_version 1.1;\n"
              . "            proxy_set_header Connection \"\";",
    upstream => "        qqfail_server churn.test:%%BPORT%% max_fails=1;\n"
              . "        qqfail_server steady.test:%%BPORT%% weight=2;\n"
              . "        qqfail_refresh 1s;\n"
              . "        qqfail_timeout 1s;",
    upstream_tail => "        keepalive 8;");
$t->start;

my @sets = ([ 0, 1 ], [ 1, 2 ], [ 2 ], [ 0, 1, 2 ], [ 0 ], [ 1, 2 ]);

my $load = $s->load(concurrency => 2, interval_ms => 1);
my $changes = 0;

for my $round (1 .. 2) {
    for my $set (@sets) {
        my $want = join ' ', sort map { "$addr[$_]:" . $s->bport } @$set;
        $dns->fault_set('churn.test', { addrs => [ @addr[@$set] ], ttl => 1 });

        $changes++ if $t->wait_for(sub { $s->addresses('churn.test') eq $want },
                                   10, "churn to $want");
    }
}

my $r = $load->stop;

is($changes, 2 * @sets, "the address set changed $changes times under load");
is($r->{failed}, 0, "$r->{failed} of $r->{sent} requests failed")
    or note explain $r;
ok($r->{sent} > 500, "load: $r->{sent} requests");

my @used = grep { ($r->{by_body}{"b$_"} // 0) > 0 } 1 .. 4;
is_deeply(\@used, [ 1, 2, 3, 4 ], 'every backend served during the churn');

done_testing();
