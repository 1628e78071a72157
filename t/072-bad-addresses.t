#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Addresses no backend can have are refused whoever answers them: the
# unspecified, broadcast, multicast and link-local addresses of both
# families, this nginx's own listen socket (a request loop, also written as
# an IPv4-mapped IPv6 address), and the cloud metadata service unless an
# allow rule names it.  Under steady load no request fails: the server
# falls back to its alias, and each refusal is one log line with its reason.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $base = $t->base;
my $b1 = $s->backend(1)->addr;
my ($self_addr, $self_port) = ($t->addr(1), $t->port(1));

my $pf = $dns->start_fault_server;
$dns->fault_set('server1.example.net', { addrs => [ $b1 ], ttl => 1 });
$dns->fault_set('bad.example.com', { addrs => [ $b1 ], ttl => 1 });
$dns->fault_set('loop.example.com', { addrs => [ $b1 ], ttl => 1 });

sub config {
    my ($allow) = @_;
    $s->nginx(workers => 2,
        providers => "    qqfail_provider pf $pf;\n",
        upstream =>
            "        qqfail_server bad.example.com:$P server1.example.net:$P;\n"
          . "        qqfail_server loop.example.com:$self_port "
          . "server1.example.net:$P;\n"
          . "        qqfail_refresh 1s;\n"
          . "        qqfail_timeout 300ms;\n"
          . ($allow ? "        qqfail_allow $allow;\n" : ''));
}

sub name_state {
    my ($server, $name) = @_;
    my $st = $s->server_status($server) or return '';
    my ($n) = grep { $_->{name} eq $name } @{ $st->{name_status} };
    return $n ? $n->{state} : '';
}

config();
$t->start;
ok($s->wait_backend('b1', 10), 'b1 answers');

my $load = $s->load(keepalive => 0, concurrency => 2);

my @cases = (
    [ 'bad',  '0.0.0.0',         $P, qr/no backend can have/ ],
    [ 'bad',  '255.255.255.255', $P, qr/no backend can have/ ],
    [ 'bad',  '224.0.0.1',       $P, qr/no backend can have/ ],
    [ 'bad',  '169.254.1.1',     $P, qr/no backend can have/ ],
    [ 'bad',  '::',              $P, qr/no backend can have/ ],
    [ 'bad',  'ff02::1',         $P, qr/no backend can have/ ],
    [ 'bad',  'fe80::1',         $P, qr/no backend can have/ ],
    [ 'bad',  '169.254.169.254', $P, qr/cloud metadata service address/ ],
    [ 'loop', $self_addr, $self_port, qr/own listen sockets \(a request loop\)/ ],
    [ 'loop', "::ffff:$self_addr", $self_port,
      qr/own listen sockets \(a request loop\)/ ],
);

for my $c (@cases) {
    my ($who, $addr, $port, $why) = @$c;
    my $name = "$who.example.com";
    my $server = $name;

    # a good answer first: the next refusal starts a new episode
    $dns->fault_set($name, { addrs => [ $b1 ], ttl => 1 });
    ok($t->wait_for(sub { name_state($server, $name) eq 'ok' }, 15,
                    "$name ok"), "$addr: $name resolves to b1 first");

    my $mark = $t->log_mark;
    $dns->fault_set($name, { addrs => [ $addr ], ttl => 1 });

    ok($t->wait_for_log(qr/answer \Q$addr\E for "\Q$name\E" from provider "pf" refused: .*\(1 address\(es\)\)/,
                        15, $mark),
       "$addr: refused, one log line");
    like($t->error_log_since($mark), $why, "$addr: the reason is given");
    ok($t->wait_for(sub { name_state($server, $name) eq 'failed' }, 15,
                    "$name failed"), "$addr: the name counts as failed");
    my $st = $s->server_status($server);
    ok(!grep({ $_->{address} =~ /^\[?\Q$addr\E\]?:/ } @{ $st->{addresses} }),
       "$addr: not among the server's addresses");
}

my $r = $load->stop;
is($r->{failed}, 0, "0 of $r->{sent} requests failed while every bad "
                    . 'address was answered');
ok($r->{sent} > 200, "steady load ($r->{sent} requests)");
unlike($t->error_log, qr/\[crit\]|Invalid argument/,
       'no connect() to an impossible address');
diag("bad addresses: $r->{sent} requests sent, $r->{failed} failed");

my $st = $s->provider_status('pf');
ok($st && $st->{rejected} >= scalar @cases,
   'the provider\'s rejected counter counts them (' . ($st->{rejected} // 0)
   . ')');

# the metadata service, when an allow rule names it (no load: no backend
# there)

config("169.254.169.254/32 $base.0/24");
ok($t->reload, 'reload with an allow rule naming the metadata address');
$dns->fault_set('bad.example.com', { addrs => [ '169.254.169.254' ], ttl => 1 });
ok($t->wait_for(sub {
        $s->addresses('bad.example.com') eq "169.254.169.254:$P" }, 15,
                'metadata allowed'),
   'an allow rule that names the metadata address lets it through');

done_testing();
