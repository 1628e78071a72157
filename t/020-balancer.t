#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The balancer keeps nginx's semantics: every address of a name is a peer
# with the server's weight, smooth weighted round robin, backup servers
# only when the primaries are unavailable, max_fails and fail_timeout, and
# keepalive connections to the peers.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 3, providers => 2);
my ($t, $dns) = ($s->t, $s->dns);

# b1 and b2 behind one name
$dns->set_record('multi.example.com',
                 [ $s->backend(1)->addr, $s->backend(2)->addr ]);

my $loc = "proxy_pass http://app;\n"
        . "            proxy_next_upstream error timeout;\n"
        . "            proxy_http_version 1.1;\n"
        . "            proxy_set_header Connection \"\";";

# weights: each address of multi (weight 1) and server3 (weight 2)

$s->nginx(location => $loc, upstream =>
      "        qqfail_server multi.example.com:%%BPORT%%;\n"
    . "        qqfail_server server3.example.com:%%BPORT%% weight=2;");
$t->start;

my $c = $s->spread(400);
is_deeply($c, { b1 => 100, b2 => 100, b3 => 200 },
          'two A records and a weight=2 server: 100/100/200 of 400')
    or diag explain $c;

my $st = $s->server_status('multi.example.com');
is(scalar @{ $st->{addresses} }, 2, 'status: two addresses for multi');

# backup: used only while the primary is unavailable

$s->nginx(location => $loc, upstream =>
      "        qqfail_server server1.example.com:%%BPORT%% max_fails=1 "
    . "fail_timeout=2s;\n"
    . "        qqfail_server server2.example.com:%%BPORT%% backup;");
ok($t->reload, 'reload with a backup server');

is_deeply($s->spread(20), { b1 => 20 }, 'backup idle while b1 is up');

$s->backend(1)->stop;
is_deeply($s->spread(20), { b2 => 20 },
          'b1 down: the backup answers every request');

$s->backend(1)->start;
ok(defined $s->wait_backend('b1', 10),
   'b1 back: traffic returns from the backup after fail_timeout');

# max_fails takes a peer out, fail_timeout brings it back

$s->nginx(location => $loc, upstream =>
      "        qqfail_server server1.example.com:%%BPORT%% max_fails=2 "
    . "fail_timeout=5s;\n"
    . "        qqfail_server server2.example.com:%%BPORT%% max_fails=2 "
    . "fail_timeout=5s;");
ok($t->reload, 'reload with max_fails=2 fail_timeout=5s');

my $b2 = $s->backend(2)->addr . ':' . $s->bport;
$s->backend(2)->stop;

my $mark = $t->log_mark;
is_deeply($s->spread(12), { b1 => 12 }, 'b2 down: every request answered');

my $log = $t->error_log_since($mark);
my $tries = () = $log =~ /connect\(\) failed .*upstream: "http:\/\/\Q$b2\E\//g;
is($tries, 2, 'b2 tried exactly max_fails=2 times, then left alone');
like($log, qr/upstream server temporarily disabled/, 'disable logged');

$st = $s->server_status('server2.example.com');
is($st->{addresses}[0]{state}, 'unavailable', 'status: b2 unavailable');
is($st->{addresses}[0]{fails}, 2, 'status: 2 fails');

$s->backend(2)->start;
my $took = $s->wait_backend('b2', 15, 1);
ok(defined $took, 'b2 back after fail_timeout');

ok($t->wait_for(sub {
        my $a = $s->server_status('server2.example.com')->{addresses}[0];
        $a->{state} eq 'up' && $a->{fails} == 0;
   }, 10, 'b2 up in status'),
   'status: b2 up, fails reset by a successful request');

# keepalive: connections to the peers are reused

$s->nginx(location => $loc, upstream =>
      "        qqfail_server server3.example.com:%%BPORT%%;",
    upstream_tail => "        keepalive 4;");
ok($t->reload, 'reload with keepalive 4');

my $before = $s->backend(3)->requests;
is_deeply($s->spread(50), { b3 => 50 }, '50 requests to b3');

my @lines = (split /\n/, $s->backend(3)->access_log)[$before .. $before + 49];
my %ports = map { /:(\d+) "/ ? ($1 => 1) : () } @lines;
ok(keys %ports >= 1 && keys %ports <= 2,
   'keepalive: 50 requests over ' . scalar(keys %ports) . ' connection(s)');

# nginx 1.29.7 and later: keepalive anywhere in the upstream, the method
# after it still the upstream's

SKIP: {
    skip 'keepalive takes the method\'s place before nginx 1.29.7', 4
        unless $t->nginx_at_least('1.29.7');

    $s->nginx(location => $loc, upstream =>
          "        keepalive 4;\n"
        . "        qqfail_server server3.example.com:%%BPORT%%;\n"
        . "        least_conn;");
    ok($t->reload, 'reload with keepalive 4 before qqfail_server, '
                   . 'least_conn after it');

    $before = $s->backend(3)->requests;
    is_deeply($s->spread(50), { b3 => 50 }, '50 requests to b3');

    @lines = (split /\n/, $s->backend(3)->access_log)[$before .. $before + 49];
    %ports = map { /:(\d+) "/ ? ($1 => 1) : () } @lines;
    ok(keys %ports >= 1 && keys %ports <= 2,
       'keepalive first: 50 requests over ' . scalar(keys %ports)
       . ' connection(s)');

    my ($u) = grep { $_->{name} eq 'app' } @{ $s->status->{upstreams} };
    is($u->{method}, 'least_conn', 'status: the method is least_conn');
}

done_testing();
