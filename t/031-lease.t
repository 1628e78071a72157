#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The lookup leader's lease.  A leader stopped (SIGSTOP here; a slow disk
# in fsync does the same) for longer than its lease is replaced; when it
# resumes it finds answers that came meanwhile and expired timers, and
# acts on none of them: no old answer is published, no server flips to
# "stale", no provider is charged a failure, and it stops leading.  With
# "timer_resolution 1s" the lease is renewed late but never lost: one
# leader for the whole generation.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Proc;
use QQ::Topo;

my $NB = 6;

my $s = QQ::Topo->new(backends => $NB, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);

# every answer comes 900 ms late, within the 1 s timeout: a leader
# stopped 860 ms after a query resumes with the answer in its socket and
# its timers expired.  After a stop in epoll_wait() nginx runs expired
# timers before reading anything (EINTR): c-ares' query timer and the
# lookup deadline come before the next lease tick in about half the stops.
my ($DELAY, $TIMEOUT, $GAP) = (0.9, 1, 0.86);

my $pf = $dns->start_fault_server;

my ($step, %step_of) = (0);

# the record moves to the next backend; the address remembers its step
sub churn {
    $step++;
    my $addr = $s->backend($step % $NB + 1)->addr;
    $step_of{$addr} = $step;
    $dns->fault_set('churn.test', { addrs => [ $addr ], ttl => 1,
                                    delay_ms => $DELAY * 1000 });
}

sub config {
    my (%o) = @_;
    $s->nginx(workers => $o{workers}, main => $o{main},
        providers => "    qqfail_provider pf $pf;\n",
        upstream => "        qqfail_server churn.test:%%BPORT%%;\n"
                  . "        qqfail_refresh 1s;\n"
                  . "        qqfail_timeout ${TIMEOUT}s;");
}

sub server { return $s->server_status('churn.test') }

sub failures {
    my $p = $s->provider_status('pf') or return -1;
    my $n = 0;
    $n += $_ for values %{ $p->{failures} };
    return $n;
}

# the time the fault server got the leader's next query
sub next_query {
    my @q = $dns->fault_queries(name => 'churn.test');
    my $n0 = @q;
    QQ::Proc::poll_until(sub {
        @q = $dns->fault_queries(name => 'churn.test');
        @q > $n0;
    }, 5, 0.005) or return undef;
    return $q[$n0]{time};
}

# poll the status for $secs seconds: [ time, step, source ] each time;
# $tick runs every second
sub watch {
    my ($secs, $obs, $tick) = @_;
    my $t0 = time;
    my $next = $t0 + 1;
    while (time - $t0 < $secs) {
        if ($tick && time >= $next) {
            $tick->();
            $next += 1;
        }
        my $srv = server() or next;
        my ($a) = map { $_->{address} } @{ $srv->{addresses} };
        next unless defined $a;
        $a =~ s/:\d+$//;
        push @$obs, [ time, $step_of{$a} // -1, $srv->{source} ];
        select(undef, undef, undef, 0.03);
    }
}

# stop the leader $GAP after it sent a query, move the record at once and
# every second while it is stopped, resume it after 3 s, watch 2 s more
sub stop_leader {
    my ($round) = @_;
    my $leader = $s->status->{leader}{pid};
    my $mark = $t->log_mark;

    my $q = next_query() or return fail("round $round: no query");
    my $wait = $q + $GAP - time;
    select(undef, undef, undef, $wait) if $wait > 0;
    kill 'STOP', $leader;
    my $late = time - $q;
    churn();

    my @obs;
    watch(3, \@obs, \&churn);
    kill 'CONT', $leader;
    my $during = @obs;
    watch(2, \@obs);

    my ($back, $max) = (0, 0);
    for my $o (@obs) {
        $back++ if $o->[1] < $max;
        $max = $o->[1] if $o->[1] > $max;
    }
    my $stale = grep { $_->[2] ne 'live' } @obs;
    my $stops = $t->wait_for(sub {
        $t->error_log_since($mark) =~ /worker $leader .*stops DNS lookups/;
    }, 5, "worker $leader stops leading");
    my $new = $s->status->{leader}{pid};

    # "lost its lease": a timer or an answer came before the lease tick
    my $how = $t->error_log_since($mark) =~ /worker $leader lost its lease/
              ? 'lost its lease first' : 'stopped by its lease tick';

    note(sprintf 'round %d: leader %d stopped %.0f ms after its query, %s; '
                 . '%d looks (%d while stopped), steps up to %d, %d '
                 . 'stale, back %d times; new leader %d', $round, $leader,
                 $late * 1000, $how, scalar @obs, $during, $max, $stale,
                 $back, $new);

    return { back => $back, stale => $stale, stops => $stops,
             taken => ($new && $new != $leader),
             known => !grep({ $_->[1] < 0 } @obs), obs => \@obs };
}

# ---------------------------------------------------------------------------
# (a) stopped leaders resume under address churn

churn();
config(workers => 2);
$t->start;
is($s->body, 'b2', 'proxying to b2');

ok($t->wait_for(sub { (server() // {})->{source} eq 'live' }, 5, 'live'),
   'the name is live');

my $load = $s->load(keepalive => 0, timeout => 10);
my $fail0 = failures();

my @rounds = map { stop_leader($_) } 1 .. 5;

my $r = $load->stop;

is(scalar(grep { $_->{taken} } @rounds), 5,
   'each time another worker took over');
is(scalar(grep { $_->{stops} } @rounds), 5,
   'each time the resumed worker stops leading');
is(scalar(grep { $_->{known} } @rounds), 5,
   'every address shown is a known one');
is(scalar(grep { $_->{back} } @rounds), 0,
   'the addresses shown never go back to an older one');
is(scalar(grep { $_->{stale} } @rounds), 0,
   'no server flips to "stale"');
is(failures(), $fail0, "no failure charged to the provider ($fail0 before, "
                       . failures() . ' after)');
is($r->{failed}, 0, "5 stopped leaders under load: $r->{failed} of "
                    . "$r->{sent} requests failed")
    or note explain $r;

# lookups continue

churn();
ok(defined $s->wait_backend('b' . ($step % $NB + 1), 5, 6),
   'a record move after the stops is followed');

$t->stop;

# ---------------------------------------------------------------------------
# (b) timer_resolution 1s: renewals come up to a second late

config(workers => 4, main => 'timer_resolution 1s;');
my $mark = $t->log_mark;
$t->start;

ok($t->wait_for(sub { (server() // {})->{source} eq 'live' }, 5, 'live'),
   'timer_resolution 1s, 4 workers: the name is live');

my $gen = $s->status->{leader}{generation};
my $leads = sub {
    my @l = $t->error_log_since($mark)
        =~ /leads DNS lookups \(generation $gen\)/g;
    return scalar @l;
};
# under load: a busy leader handles its timer signal later than an idle
# worker, whose tick then finds the lease expired
$load = $s->load(keepalive => 0, timeout => 10, concurrency => 4);
my $t0 = time;
$t->wait_for(sub { $leads->() > 1 || time - $t0 >= 30 }, 35, '30 s');
$r = $load->stop;

is($leads->(), 1, sprintf('one leader in %.0f s (generation %d)',
                          time - $t0, $gen));
my @stops = $t->error_log_since($mark) =~ /(stops DNS lookups)/g;
is(scalar @stops, 0, 'no leader stopped');
is($r->{failed}, 0, "timer_resolution 1s under load: $r->{failed} of "
                    . "$r->{sent} requests failed");

churn();
ok(defined $s->wait_backend('b' . ($step % $NB + 1), 5, 6),
   'a record move is followed');

done_testing();
