#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Each upstream's qqfail_timeout is its own: a provider that answers in
# 400 ms fails the names of an upstream that waits 100 ms, and serves the
# names of one that waits 2 s, in the same nginx at the same time.

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
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 1, delay_ms => 400 });

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    http => "    upstream patient {\n"
          . "        qqfail_server slow.example.com:$P;\n"
          . "        qqfail_refresh 1s;\n"
          . "        qqfail_timeout 2s;\n"
          . "    }\n",
    location => "proxy_pass http://patient;",
    upstream => "        qqfail_server hasty.example.com:$P;\n"
              . "        qqfail_refresh 1s;\n"
              . "        qqfail_timeout 100ms;");

$t->start;

sub server_of {
    my ($upstream) = @_;
    my $st = $s->status or return undef;
    my ($u) = grep { $_->{name} eq $upstream } @{ $st->{upstreams} };
    return $u ? $u->{servers}[0] : undef;
}

ok($t->wait_for(sub {
        my $sv = server_of('patient') or return 0;
        $sv->{source} eq 'live' && @{ $sv->{addresses} } == 1;
    }, 15, 'patient live'),
   'the upstream that waits 2 s gets the 400 ms answers');
is(join(' ', map { $_->{address} } @{ (server_of('patient') || {})->{addresses} }),
   "$b1:$P", 'with the right address');
is($s->body, 'b1', 'and proxies');

my $hasty = server_of('app');
is($hasty && $hasty->{name_status}[0]{state}, 'failed',
   'the upstream that waits 100 ms counts its name as failed');
is($hasty && $hasty->{name_status}[0]{error}, 'timeout', 'by timeout');

# the patient one keeps being refreshed, not failed
my $before = (server_of('patient') || {})->{name_status}[0]{last_success} // 0;
ok($t->wait_for(sub {
        my $sv = server_of('patient') or return 0;
        $sv->{name_status}[0]{last_success} > $before;
    }, 10, 'refresh'), 'and the patient upstream keeps succeeding');

done_testing();
