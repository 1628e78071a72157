#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# SRV targets' addresses from the additional section: a provider that puts
# them in its SRV answer is not asked for them again; one that does not is
# asked; the two answers agree (qqfail_quorum 2).  Additional records for
# another name are ignored, and a provider whose additional section gives
# a target another address disagrees and is outvoted, so that address is
# never used.  The providers are fault servers, which log every query.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;

my $t = QQ::Nginx->new;

my @b = map { QQ::Backend->new(t => $t, id => "b$_", addr => $t->addr(20 + $_)) }
        1 .. 3;
$_->start for @b;
my ($b1, $b2, $b3) = @b;

my $dns = QQ::DNS->new(t => $t, ttl => 1);
my ($f1, $f2) = map { $dns->start_fault_server } 1 .. 2;

my $Q = '_http._tcp.app.example.com';
my @srv = ([10, 1, $b1->port, 's1.example.com'],
           [10, 1, $b2->port, 's2.example.com']);

sub additional {
    my ($s2) = @_;
    return [ "s1.example.com. 1 IN A " . $b1->addr,
             "s2.example.com. 1 IN A $s2",
             "x.example.com. 1 IN A " . $b3->addr ];
}

$dns->fault_set($Q, { srv => \@srv, additional => additional($b2->addr) },
                $f1);
$dns->fault_set($Q, { srv => \@srv }, $f2);
$dns->fault_set('s1.example.com', { addrs => [ $b1->addr ] });
$dns->fault_set('s2.example.com', { addrs => [ $b2->addr ] });
$dns->fault_set('x.example.com', { addrs => [ $b3->addr ] });

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%GLOBALS%%
worker_processes 1;

events {
}

http {
    %%HTTP_GLOBALS%%

    qqfail_provider f1 $f1;
    qqfail_provider f2 $f2;

    upstream app {
        qqfail_server app.example.com service=http;
        qqfail_quorum 2;
        qqfail_refresh 1s;
        qqfail_timeout 1s;
    }

    server {
        listen %%ADDR_1%%:%%PORT_1%%;

        location / {
            proxy_pass http://app;
        }

        location = /status {
            qqfail_status;
        }
    }
}
EOF

$t->start;

sub addrs {
    my $st = $t->get_json('/status') or return '';
    my $s = $st->{upstreams}[0]{servers}[0];
    return join ' ', sort map { $_->{address} } @{ $s->{addresses} };
}

my $want = join ' ', sort map { $_->addr_port } $b1, $b2;

ok($t->wait_for(sub { addrs() eq $want }, 10, 'addresses'),
   'the two providers agree: the targets with the ports of the records');

sub asked {
    my ($name, $server) = @_;
    return scalar $dns->fault_queries(name => $name, type => 'A',
                                      server => $server);
}

# a few rounds more

ok($t->wait_for(sub { $dns->fault_queries(name => $Q, server => $f1) >= 5 },
                15, 'rounds'), 'the SRV name is asked again and again');

is(asked('s1.example.com', $f1) + asked('s2.example.com', $f1), 0,
   'the provider that gave the addresses in its additional section is not '
   . 'asked for the targets');
ok(asked('s1.example.com', $f2) >= 3 && asked('s2.example.com', $f2) >= 3,
   'the provider that did not is asked for each target ('
   . asked('s1.example.com', $f2) . ' and ' . asked('s2.example.com', $f2)
   . ' queries)');
is(asked('x.example.com', $f1) + asked('x.example.com', $f2), 0,
   'a name in the additional section that is no target is not asked');

my %seen;
for (1 .. 40) {
    my $r = $t->http_get('/');
    $seen{ $r->{status} == 200 ? $r->{content} : "status $r->{status}" }++;
}
is_deeply([ sort keys %seen ], [ 'b1', 'b2' ],
          'both targets answer, never the other name\'s address');

# f1's additional section now gives s2 another address: it disagrees with
# f2, whose answer is the set in use, which stays (an unchanged set needs
# no quorum, a changed one two providers)

sub disagreements {
    my $st = $t->get_json('/status') or return 0;
    my ($p) = grep { $_->{name} eq 'f1' } @{ $st->{providers} };
    return $p ? $p->{disagreements} : 0;
}

my $before = disagreements();
$dns->fault_set($Q, { srv => \@srv, additional => additional($b3->addr) },
                $f1);
ok($t->wait_for(sub { disagreements() >= $before + 3 }, 10, 'disagree'),
   'a forged target address in the additional section: f1 disagrees');
is(addrs(), $want, 'the agreed set is kept');

%seen = ();
for (1 .. 40) {
    my $r = $t->http_get('/');
    $seen{ $r->{status} == 200 ? $r->{content} : "status $r->{status}" }++;
}
ok(!$seen{b3}, 'the forged address is never used')
    or diag explain \%seen;

$t->stop;

done_testing;
