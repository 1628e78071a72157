#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# One set of lookups for a name that several servers use: the same host in
# two http upstreams and a stream upstream (each with its own port) is
# asked of each provider about as often as a name one server uses, and
# each upstream still gets the addresses with its own port.  The providers
# are fault servers, which log every query they get.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;

my $t = QQ::Nginx->new;
my $stream = QQ::Nginx->has_stream;

my $b1 = QQ::Backend->new(t => $t, id => 'b1', addr => $t->addr(21));
my $b2 = QQ::Backend->new(t => $t, id => 'b2', addr => $t->addr(22));
$_->start for $b1, $b2;
my $P = $b1->port;
my $P2 = $b2->port;
my $SP = $t->port('stream_backend');

my $dns = QQ::DNS->new(t => $t, ttl => 1);
my @f = map { $dns->start_fault_server } 1 .. 2;
$dns->fault_set('server1.example.com', { addrs => [ $b1->addr ], ttl => 1 });
$dns->fault_set('server2.example.com', { addrs => [ $b2->addr ], ttl => 1 });

my $prov = join '', map { "    qqfail_provider f$_ $f[$_ - 1];\n" } 1 .. 2;
my $tune = "        qqfail_refresh 1s;\n        qqfail_timeout 1s;\n";

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
@{[ $stream ? '%%LOAD_STREAM%%' : '' ]}
%%GLOBALS%%
worker_processes 2;

events {
}

http {
    %%HTTP_GLOBALS%%

$prov
    upstream one {
        qqfail_server server1.example.com:$P;
$tune    }

    upstream two {
        qqfail_server server1.example.com:$P;
$tune    }

    upstream control {
        qqfail_server server2.example.com:$P2;
$tune    }

    server {
        listen %%ADDR_1%%:%%PORT_1%%;

        location /one { proxy_pass http://one; }
        location /two { proxy_pass http://two; }
        location /control { proxy_pass http://control; }

        location = /status {
            qqfail_status;
        }
    }
}
@{[ $stream ? "
stream {
    upstream tcp {
        qqfail_server server1.example.com:$SP;
$tune    }
}
" : '' ]}
EOF

$t->start;

sub body {
    my $r = $t->http_get($_[0]);
    return $r->{status} == 200 ? $r->{content} : "status $r->{status}";
}

ok($t->wait_for(sub { body('/one') eq 'b1' && body('/two') eq 'b1'
                      && body('/control') eq 'b2' }, 10, 'answers'),
   'both upstreams of server1 and the control upstream answer');

sub addrs {
    my ($upstream) = @_;
    my $st = $t->get_json('/status') or return '';
    my ($u) = grep { $_->{name} eq $upstream } @{ $st->{upstreams} };
    return '' unless $u;
    return join ' ', map { "$_->{address}/$_->{source}" }
        map { my $s = $_; map { { %$_, source => $s->{source} } }
                          @{ $s->{addresses} } } @{ $u->{servers} };
}

is(addrs('one'), $b1->addr . ":$P/live", 'upstream one: its own port');
is(addrs('two'), $b1->addr . ":$P/live", 'upstream two: its own port');
SKIP: {
    skip 'no stream module', 1 unless $stream;
    ok($t->wait_for(sub { addrs('tcp') eq $b1->addr . ":$SP/live" }, 10,
                    'stream'),
       'stream upstream tcp: the same name with the stream port');
}

# the queries each name gets from now on, until the control name, which
# one server asks, has been asked 12 times of each provider

sub asked { return scalar $dns->fault_queries(name => $_[0], type => 'A') }

my ($s1, $s2) = (asked('server1.example.com'), asked('server2.example.com'));

ok($t->wait_for(sub { asked('server2.example.com') - $s2 >= 24 }, 30,
                'control asked'), 'the control name is looked up again and again');

my $n1 = asked('server1.example.com') - $s1;
my $n2 = asked('server2.example.com') - $s2;
my $servers = $stream ? 3 : 2;

note "server1 ($servers servers): $n1 queries, server2 (1 server): $n2";
ok($n1 <= 1.5 * $n2 + 2,
   "a name $servers servers use is asked about as often as one server's "
   . "($n1 vs $n2 queries; $servers times as many without sharing)");

# the servers still follow a change of address

$dns->fault_set('server1.example.com', { addrs => [ $b2->addr ], ttl => 1 });
ok($t->wait_for(sub { addrs('one') eq $b2->addr . ":$P/live"
                      && addrs('two') eq $b2->addr . ":$P/live" }, 10,
                'moved'),
   'a new address reaches every upstream of the name');
SKIP: {
    skip 'no stream module', 1 unless $stream;
    ok($t->wait_for(sub { addrs('tcp') eq $b2->addr . ":$SP/live" }, 10,
                    'stream moved'),
       'and the stream upstream, with its own port');
}

# a provider that fails is asked again by each server: nothing is shared
# from a failure

$dns->fault_set('server1.example.com', { rcode => 'SERVFAIL' });
ok($t->wait_for(sub {
        my $st = $t->get_json('/status') or return 0;
        my @s = map { @{ $_->{servers} } }
                grep { $_->{name} =~ /^(one|two)$/ } @{ $st->{upstreams} };
        @s == 2 && !grep { $_->{source} ne 'stale' } @s
    }, 15, 'stale'),
   'every provider failing: both servers stale, none kept a shared answer');

$t->stop;

done_testing;
