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

# two records whose targets are one address: the best record's weight,
# whatever order the targets' answers come in; and a target with only an
# IPv6 address
$dns->fault_set('_http._tcp.dup.example.com', { srv => [
    [20, 1, $b1->port, 'd2.example.com'], [10, 7, $b1->port, 'd1.example.com'],
    [10, 3, $b1->port, 'd3.example.com'] ] });
$dns->fault_set("d$_.example.com", { addrs => [ $b1->addr ] }) for 1 .. 3;
$dns->fault_set('_http._tcp.v6.example.com', { srv => [
    [10, 1, $b1->port, 'six.example.com'] ] });
$dns->fault_set('six.example.com', { addrs => [ '::1' ] });
# priorities 10 and 20 under hash consistent
$dns->fault_set('_http._tcp.pri.example.com', { srv => [
    [10, 1, $b1->port, 'p1.example.com'], [20, 1, $b2->port, 'p2.example.com'] ] });
$dns->fault_set('p1.example.com', { addrs => [ $b1->addr ] });
$dns->fault_set('p2.example.com', { addrs => [ $b2->addr ] });

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

    upstream dup {
        qqfail_server dup.example.com service=http;
        qqfail_quorum 2;
        qqfail_refresh 1s;
        qqfail_timeout 1s;
    }

    upstream ch {
        hash \$arg_k consistent;
        qqfail_server pri.example.com service=http;
        qqfail_refresh 1s;
        qqfail_timeout 1s;
    }

    upstream v6 {
        qqfail_server v6.example.com service=http;
        qqfail_refresh 1s;
        qqfail_timeout 1s;
    }

    server {
        listen %%ADDR_1%%:%%PORT_1%%;

        location / {
            proxy_pass http://app;
        }

        location /ch {
            proxy_pass http://ch;
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

# one address from three records: the primary with the greater weight,
# agreed by both providers every round

sub server_of {
    my ($u) = @_;
    my $st = $t->get_json('/status') or return {};
    my ($up) = grep { $_->{name} eq $u } @{ $st->{upstreams} };
    return $up ? $up->{servers}[0] : {};
}

ok($t->wait_for(sub { my $a = server_of('dup')->{addresses} // [];
                      @$a == 1 && $a->[0]{weight} == 7 && !$a->[0]{backup} },
                10, 'dup'),
   'one address from three records: the primary record with weight 7');
my $mark2 = $t->log_mark;
$t->wait_for(sub { $dns->fault_queries(name => '_http._tcp.dup.example.com')
                   >= 12 }, 15, 'dup rounds');
unlike($t->error_log_since($mark2), qr/agree on the addresses of "dup\.example\.com"|address set of "dup\.example\.com" changed/,
       'the providers agree every round, and the peer is never remade');

# hash consistent over an SRV server: the priority-20 record is a backup,
# which a hash does not use, as nginx

ok($t->wait_for(sub { @{ server_of('ch')->{addresses} // [] } == 2 }, 10,
                'ch'), 'hash consistent: both records\' addresses');
%seen = ();
for my $k (1 .. 60) {
    my $r = $t->http_get("/ch?k=$k");
    $seen{ $r->{status} == 200 ? $r->{content} : "status $r->{status}" }++;
}
is_deeply([ sort keys %seen ], [ 'b1' ],
          'hash consistent: 60 keys, all on the priority-10 record')
    or diag explain \%seen;

# a target with only an IPv6 address: asked for AAAA once A finds none

ok($t->wait_for(sub { my $a = server_of('v6')->{addresses} // [];
                      @$a == 1 && $a->[0]{address} eq '[::1]:' . $b1->port },
                15, 'v6'),
   'a target with only an AAAA record: its address, with the record\'s port');

$t->stop;

done_testing;
