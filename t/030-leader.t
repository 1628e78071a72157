#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# One process looks names up for the whole instance: the number of DNS
# queries does not grow with worker_processes, every worker serves the
# same addresses, a killed leader is replaced, and reloads under load fail
# no request, also while DNS is down.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);

# a scripted provider, so that every query can be counted
my $pf = $dns->start_fault_server;
$dns->fault_set('counted.test', { addrs => [ $s->backend(1)->addr ],
                                  ttl => 1 });

sub config {
    my ($workers) = @_;
    $s->nginx(workers => $workers,
        providers => "    qqfail_provider pf $pf;\n",
        upstream => "        qqfail_server counted.test:%%BPORT%%;\n"
                  . "        qqfail_refresh 1s;\n"
                  . "        qqfail_timeout 500ms;");
}

# queries for the name during $secs seconds
sub rate {
    my ($secs) = @_;
    my $n0 = $dns->fault_queries(name => 'counted.test');
    my $t0 = time;
    $t->wait_for(sub { time - $t0 >= $secs }, $secs + 1, 'window');
    my $n = $dns->fault_queries(name => 'counted.test') - $n0;
    return $n / (time - $t0) * 60;
}

config(1);
$t->start;

is($s->body, 'b1', 'one worker: proxying to b1');

my $one = rate(6);

config(4);
ok($t->reload, 'reload to worker_processes 4');
is(scalar $t->worker_pids, 4, 'four workers');

# the new generation's leader is one of the new workers
ok($t->wait_for(sub {
        my $st = $s->status or return 0;
        grep { $_ == $st->{leader}{pid} } $t->worker_pids;
   }, 5, 'leader among the new workers'),
   'after the reload a new worker leads');

my $four = rate(6);

note(sprintf 'DNS queries per name per minute (A + AAAA): '
             . '%.0f with 1 worker, %.0f with 4 workers', $one, $four);
ok($one > 0, sprintf('1 worker: %.0f queries per minute', $one));
ok($four <= $one * 1.5 + 10,
   sprintf('4 workers: %.0f queries per minute, not 4 times %.0f',
           $four, $one));

# every worker answers with the same addresses and the same leader

my %seen;
for (1 .. 40) {
    my $st = $s->status;
    my $srv = $st->{upstreams}[0]{servers}[0];
    $seen{ join ' ', $st->{leader}{pid},
                     map { $_->{address} } @{ $srv->{addresses} } }++;
}
is(scalar keys %seen, 1, 'status from 40 connections: one leader, one '
                         . 'address set') or diag explain \%seen;

my $mark = $t->log_mark;
$dns->fault_set('counted.test', { addrs => [ $s->backend(2)->addr ],
                                  ttl => 1 });
ok(defined $s->wait_backend('b2', 5, 12),
   'address change: 12 requests in a row (any worker) answered by b2');

my $leads = () = $t->error_log =~ /qqfail: worker \d+ leads DNS lookups \(generation 2\)/g;
is($leads, 1, 'exactly one leader in the current generation');

# the leader dies: another worker takes over within about a second

my $leader = $s->status->{leader}{pid};
ok(grep({ $_ == $leader } $t->worker_pids), "leader $leader is a worker");

$t->allow_log(qr/exited on signal 9/);
kill 'KILL', $leader;
my $killed = time;

ok($t->wait_for(sub {
        my $st = $s->status or return 0;
        my $p = $st->{leader}{pid};
        $p && $p != $leader && kill(0, $p);
   }, 5, 'new leader'),
   sprintf('a new leader took over (%.2f s)', time - $killed));

$dns->fault_set('counted.test', { addrs => [ $s->backend(1)->addr ],
                                  ttl => 1 });
ok(defined $s->wait_backend('b1', 5, 12), 'lookups continue after the kill');

# a reload, then the new generation's leader: a generation that a further
# reload replaces within milliseconds may never have had its turn to lead,
# which is not what "a leader in every generation" is about

sub reload_led {
    $t->reload or return 0;
    my $st = $s->status or return 0;
    my $gen = $st->{leader}{generation};
    return $t->wait_for_log(qr/leads DNS lookups \(generation $gen\)/, 5);
}

# 20 reloads under load: not one failed request.  The load opens a new
# connection per request: an idle keepalive connection that an old worker
# closes just as the client reuses it is reset by stock nginx too, and
# that race is not what this measures.

my $load = $s->load(keepalive => 0);
my $ok = 0;
for my $i (1 .. 20) {
    $ok++ if reload_led();
}
my $r = $load->stop;
is($ok, 20, '20 reloads');
is($r->{failed}, 0, "20 reloads under load: $r->{failed} of $r->{sent} "
                    . "requests failed")
    or note explain $r;

# reloads while DNS is down: addresses are kept, nginx keeps proxying

$dns->fault_set('counted.test', { drop => 1 });
$load = $s->load(keepalive => 0);
$ok = 0;
for my $i (1 .. 3) {
    $ok++ if reload_led();
}
$r = $load->stop;
is($ok, 3, '3 reloads with every provider silent');
is($r->{failed}, 0, "reloads with DNS down: $r->{failed} of $r->{sent} "
                    . "requests failed")
    or note explain $r;

my %gens = map { $_ => 1 }
    $t->error_log =~ /leads DNS lookups \(generation (\d+)\)/g;
my $leads_total = keys %gens;
ok($leads_total >= 25, "a leader in every generation ($leads_total)");

done_testing();
