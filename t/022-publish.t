#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Publication in a large upstream: 2,000 servers, 4 workers, names moved by
# the DNS while traffic flows.  Every worker follows each change (one
# server moves; a request in flight on a removed address finishes; 1,998
# servers change at once, more than the ring of changes holds), and the
# requests keep their weighted spread.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Proc;
use QQ::Topo;

my $s = QQ::Topo->new(backends => 3, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my ($b1, $b2, $b3) = map { $s->backend($_)->addr } 1 .. 3;
my $P = $s->bport;
my $dead = $t->addr(240);      # nothing listens there
my $slow = $t->addr(241);      # answers when told to
my $WORKERS = 4;
my $N = 2000;

my $pf = $dns->start_fault_server;
$dns->fault_set('moving.test', { addrs => [ $b1 ], ttl => 1 });
$dns->fault_set('steady.test', { addrs => [ $b2 ], ttl => 1 });
$dns->fault_set('*', { addrs => [ $dead ], ttl => 1 });

# two primaries, and 1,998 backup servers that are used only when both
# are unavailable; listen with reuseport so that requests reach every
# worker

my $backups = join '', map {
    "        qqfail_server w$_.test:$P backup;\n"
} 1 .. $N - 2;

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%GLOBALS%%
worker_processes $WORKERS;
events {
}
http {
    %%HTTP_GLOBALS%%
    qqfail_provider pf $pf;
    qqfail_zone 8m;

    upstream app {
        qqfail_server moving.test:$P;
        qqfail_server steady.test:$P weight=2;
$backups        qqfail_refresh 1s;
        qqfail_timeout 1s;
        qqfail_ipv6 off;
    }

    server {
        listen %%ADDR_1%%:%%PORT_1%% reuseport;

        location / {
            proxy_pass http://app;
            proxy_next_upstream error timeout;
            add_header X-Worker \$pid always;
        }
    }
}
EOF

$t->start(timeout => 60);

my @pids = sort { $a <=> $b } $t->worker_pids;
is(scalar @pids, $WORKERS, "$WORKERS workers");

# $n requests, each on a new connection: bodies and the workers that
# answered each body
sub spread {
    my ($n) = @_;
    my (%body, %by);
    for (1 .. $n) {
        my $r = $t->http_get('/', timeout => 10);
        my $k = $r->{status} == 200 ? $r->{content} : "status $r->{status}";
        $body{$k}++;
        $by{$k}{ $r->{headers}{'x-worker'} // '?' } = 1;
    }
    return (\%body, \%by);
}

sub every_worker {
    my ($by, $body) = @_;
    return join(' ', sort { $a <=> $b } keys %{ $by->{$body} || {} })
        eq join(' ', @pids);
}

# nginx's weighted round robin, per worker: 1 in 3 to moving, 2 to steady
sub about {
    my ($got, $want, $n) = @_;
    return abs(($got // 0) - $want) <= $n / 10;
}

ok($t->wait_for(sub { $s->body eq 'b1' }, 60, 'b1 answers'),
   'every name resolved: moving.test answers');

my ($c, $by) = spread(300);
ok(about($c->{b1}, 100, 300) && about($c->{b2}, 200, 300)
       && keys %$c == 2,
   "weights 1 and 2: b1 $c->{b1}, b2 $c->{b2} of 300")
    or diag explain $c;

# one server of 2,000 moves: every worker sends its share to the new
# address at once, none to the old one

$dns->fault_set('moving.test', { addrs => [ $b3 ], ttl => 1 });
ok($t->wait_for(sub { $s->body eq 'b3' }, 10, 'b3 answers'),
   'moving.test moved from b1 to b3');

($c, $by) = spread(400);
ok(!$c->{b1} && about($c->{b3}, 133, 400) && about($c->{b2}, 267, 400)
       && keys %$c == 2,
   "after the move: b3 " . ($c->{b3} // 0) . ", b2 " . ($c->{b2} // 0)
   . ", b1 " . ($c->{b1} // 0) . " of 400")
    or diag explain $c;
ok(every_worker($by, 'b3'), "each of the $WORKERS workers sent requests to "
   . "the new address") or diag explain $by;

# a request in flight on an address that is removed finishes

my $released = $t->dir . '/slow-release';
my $seen = $t->dir . '/slow-seen';
my $slow_pid = QQ::Proc::fork_code(name => 'slow backend', code => sub {
    $SIG{PIPE} = 'IGNORE';
    my $l = IO::Socket::INET->new(LocalAddr => $slow, LocalPort => $P,
                                  Listen => 64, ReuseAddr => 1)
        or die "listen $slow:$P: $!";
    my $sel = IO::Select->new($l);
    my @held;
    while (1) {
        if ($sel->can_read(0.05)) {
            my $c = $l->accept or next;
            my $req = '';
            while ($req !~ /\r\n\r\n/) {
                sysread($c, $req, 4096, length $req) or last;
            }
            # only a proxied request counts: the probe of the listener
            # above connects and closes without one, and may be accepted
            # after the count below was taken
            next unless $req =~ /\r\n\r\n/;
            open my $fh, '>>', $seen;
            print {$fh} time, "\n";
            close $fh;
            push @held, $c;
        }
        next unless -e $released;
        syswrite($_, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n"
                   . "Connection: close\r\n\r\nslow") for @held;
        close $_ for @held;
        @held = ();
    }
});
ok($t->wait_for(sub {
        IO::Socket::INET->new(PeerAddr => $slow, PeerPort => $P,
                              Timeout => 1) }, 10, 'slow backend'),
   'slow backend listening');

sub seen { return scalar(() = ($t->read_file('slow-seen') // '') =~ /\n/g) }

# short probes: one that reaches the slow backend gives up at once
sub probe {
    my ($want) = @_;
    my $r = $t->http_get('/', timeout => 0.5);
    return $r->{status} == 200 && $r->{content} eq $want;
}

$dns->fault_set('moving.test', { addrs => [ $slow ], ttl => 1 });
my $before = seen();
ok($t->wait_for(sub { probe('none'); seen() > $before }, 10,
                'a probe reached the slow backend'),
   'moving.test moved to the slow backend');

# 12 requests: one worker at least gets 3 of them, and its round robin
# (1 in 3 to moving.test) sends one to the slow backend
my $HELD = 12;
$before = seen();
my @kids = map {
    my $k = $_;
    QQ::Proc::fork_code(name => "request $k", code => sub {
        my $r = $t->http_get('/', timeout => 30);
        my $f = $t->dir . "/held-$k";
        open my $fh, '>', "$f.tmp" or die "$f: $!";
        print {$fh} "$r->{status} ", $r->{content} // '', "\n";
        close $fh;
        rename "$f.tmp", $f;
    });
} 1 .. $HELD;

ok($t->wait_for(sub { seen() > $before }, 10,
                'requests in flight on the slow backend'),
   'requests in flight on the slow backend');

$dns->fault_set('moving.test', { addrs => [ $b1 ], ttl => 1 });
ok($t->wait_for(sub { probe('b1') }, 10, 'b1 answers'),
   'moving.test moved away from the slow backend');

# the slow backend answers what it holds
open my $rf, '>', $released or die "$released: $!";
close $rf;

ok($t->wait_for(sub { !grep { !-e $t->dir . "/held-$_" } 1 .. $HELD }, 30,
                'held requests'), 'the requests in flight ended');
my %held;
$held{ $t->read_file("held-$_") // 'none' }++ for 1 .. $HELD;
is(scalar(grep { !/^200 / } keys %held), 0,
   'every request in flight during the change succeeded')
    or diag explain \%held;
ok($held{"200 slow\n"}, ($held{"200 slow\n"} // 0) . " of $HELD answered by "
   . 'the address removed while they were in flight') or diag explain \%held;
QQ::Proc::stop($slow_pid);
waitpid($_, 0) for @kids;

($c, $by) = spread(150);
ok(!$c->{slow} && about($c->{b1}, 50, 150) && about($c->{b2}, 100, 150)
       && keys %$c == 2, "then: b1 " . ($c->{b1} // 0) . ", b2 "
   . ($c->{b2} // 0) . " of 150") or diag explain $c;

# 1,998 servers change at once, more than the ring of changes holds:
# each worker copies the upstream again; the backups now lead to b3, and
# take the traffic when both primaries are unavailable

my $mark = $t->log_mark;
$dns->fault_set('*', { addrs => [ $b3 ], ttl => 1 });
my $moved = 0;
ok($t->wait_for(sub {
        $moved = () = $t->error_log_since($mark)
                      =~ /address set of "w\d+\.test:\d+" changed/g;
        $moved >= $N - 2;
   }, 60, 'every backup moved'), "the 1,998 backups moved to b3 ($moved)");

$s->backend(1)->stop;
$s->backend(2)->stop;

($c, $by) = spread(200);
is_deeply($c, { b3 => 200 }, 'primaries down: the backups answer every '
          . 'request') or diag explain $c;
ok(every_worker($by, 'b3'), "each of the $WORKERS workers follows the "
   . "1,998 changes") or diag explain $by;

$t->allow_log(qr/connect\(\) failed|upstream server temporarily disabled/);

done_testing();
