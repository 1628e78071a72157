#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The 2012 outage, survived: registrar A down, then every provider down,
# reloads and a restart during the total outage, and recovery.  Every
# phase runs under steady load and counts requests sent and failed.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 3, providers => 3);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b3 = $s->backend(3)->addr;

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';

sub config {
    my (%o) = @_;
    $s->nginx(workers => 2,
        http => "    qqfail_state_file %%DIR%%/state/state;",
        upstream =>
            "        qqfail_server server1.example.com:$P "
          . "server1.example.net:$P;\n"
          . "        qqfail_server server2.example.com:$P "
          . "server2.example.net:$P;\n"
          . "        qqfail_server server3.example.com:$P "
          . "server3.example.net:$P $b3:$P;\n"
          . "        qqfail_refresh 2s;\n"
          . "        qqfail_timeout 1s;\n"
          . ($o{max_stale} ? "        qqfail_max_stale $o{max_stale};\n" : ''));
}

sub active { return $s->active(@_) }
sub all_active { return $s->all_active(@_) }

my @figures;

sub finish {
    my ($load, $what) = @_;
    my $r = $load->stop;
    push @figures, sprintf '%s: %d sent, %d failed', $what, $r->{sent},
                           $r->{failed};
    is($r->{failed}, 0, "$what: $r->{failed} of $r->{sent} requests failed")
        or note explain $r;
    ok($r->{sent} > 100, "$what: steady load ($r->{sent} requests)");
    return $r;
}

config();
$t->start;

is_deeply([ sort keys %{ $s->spread(30) } ], [ 'b1', 'b2', 'b3' ],
          'all three servers answer');
ok(all_active(qr/^server\d\.example\.com:\d+ live$/),
   'every server on its primary name');

# registrar A down: example.com SERVFAILs through every provider

my $load = $s->load;
my $mark = $t->log_mark;

$dns->stop_auth('a');

ok($t->wait_for(sub { all_active(qr/^server\d\.example\.net:\d+ live$/) },
                20, 'failover to example.net'),
   'registrar A down: every server moved to its example.net alias');

# a worker may serve the status page between the leader's publication and
# its log line: poll for the line
ok($t->wait_for_log(qr/qqfail: every provider failed for "server1\.example\.com" \((servfail|timeout)\), failing over to "server1\.example\.net:\d+", upstream "app", server "server1\.example\.com:\d+"/,
                    5, $mark),
   'failover logged with upstream, server and names');
my $log = $t->error_log_since($mark);
my $switches = () = $log =~ /failing over to "server1\.example\.net/g;
is($switches, 1, 'the switch is logged once');
ok($t->wait_for(sub { $s->server_status('server1.example.com')->{failovers}
                      == 1 }, 5, 'failovers 1'),
   'status: failovers 1');

# during the outage, server2's alias moves: followed

$dns->set_record('server2.example.net', [ $b3 ]);
ok($t->wait_for(sub { $s->addresses('server2.example.com') eq "$b3:$P" },
                10, 'server2.example.net moved'),
   'a change of server2.example.net is followed during the outage');

finish($load, 'registrar A down');

# registrar A back: servers return to their primary names

$load = $s->load;
$mark = $t->log_mark;
$dns->start_auth_server('a', flush => 1);

ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                20, 'back to example.com'),
   'registrar A back: every server returned to its primary name');
ok($t->wait_for_log(qr/qqfail: "server1\.example\.com:\d+" resolves again, back from "server1\.example\.net:\d+", upstream "app"/,
                    5, $mark),
   'return to the primary logged');
ok($t->wait_for(sub { $s->server_status('server1.example.com')->{failovers}
                      == 2 }, 5, 'failovers 2'),
   'status: failovers 2');

finish($load, 'registrar A back');

# every provider down: last-good addresses, and server3's IP literal; the
# load opens a connection per request, because reloads follow, and an old
# worker closing an idle keepalive connection as a request arrives on it is
# a reset that the client, not the module, would have to retry

$load = $s->load(keepalive => 0);
$mark = $t->log_mark;
$dns->blackhole_provider($_) for 1 .. 3;
my $outage = time;

ok($t->wait_for(sub {
        active(1) =~ /stale$/ && active(2) =~ /stale$/
            && active(3) eq "$b3:$P literal"
   }, 20, 'stale'),
   'every provider down: servers 1 and 2 stale, server3 on its literal');

ok($t->wait_for_log(qr/qqfail: every provider failed for every name \(timeout\), using the last good addresses, upstream "app", server "server1\.example\.com:\d+"/,
                    5, $mark),
   'stale addresses logged');

# five reloads during the total outage

my $reloads = 0;
for (1 .. 5) {
    $reloads++ if $t->reload;
}
is($reloads, 5, 'five reloads during the total outage');

# keep going until the outage has lasted 60 seconds

$t->wait_for(sub { time - $outage >= 60 }, 65, 'outage length');

ok(all_active(qr/ (stale|literal)$/), 'still stale after a minute');
finish($load, 'every provider down for 60 s, 5 reloads');

# stop, then start nginx with all DNS down: the state file carries it

$t->stop;
like($t->read_file('state/state'), qr/^s app server1\.example\.com:\d+,/m,
     'state file holds server1');

ok($t->try_start, 'nginx starts with every provider down');
is(active(1), "server1.example.com:$P state_file",
   'server1 from the state file');

sub served { my $n = 0; $n += $_->requests for $s->backends; return $n }

my $served = served();
$load = $s->load;
$t->wait_for(sub { served() > $served + 500 }, 30, 'cold start load');

# server3 (its primary name silent, an IP literal as its alias) is served
# once its round ends: its alias asked a quarter of qqfail_timeout in, the
# primary given up after qqfail_timeout; the start-up pass no longer
# holds nginx that long
ok($t->wait_for(sub { active(3) =~ / literal$/ }, 10, 'server3 literal'),
   'cold start: server3 served through its literal');
my %c = %{ $s->spread(30) };
is_deeply([ sort keys %c ], [ 'b1', 'b2', 'b3' ],
          'cold start: servers answer from the state file and the literal')
    or diag explain \%c;
finish($load, 'cold start during the total outage');

# DNS back: live again

$dns->restore_provider($_) for 1 .. 3;
$dns->flush_provider;

ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                30, 'live again'),
   'DNS back: every server live on its primary name');

# qqfail_max_stale: past it, a server is unavailable, and comes back

config(max_stale => '3s');
ok($t->reload, 'reload with qqfail_max_stale 3s');

$mark = $t->log_mark;
$dns->blackhole_provider($_) for 1 .. 3;

ok($t->wait_for(sub { !@{ $s->server_status('server1.example.com')
                          ->{addresses} } }, 20, 'expired'),
   'max_stale passed: server1 has no address');
ok($t->wait_for_log(qr/qqfail: the last good addresses are older than qqfail_max_stale, server unavailable, upstream "app", server "server1\.example\.com:\d+"/,
                    5, $mark),
   'expiry logged');
my $expired = () = $t->error_log_since($mark)
                   =~ /older than qqfail_max_stale, server unavailable, upstream "app", server "server1\./g;
is($expired, 1, 'expiry logged once');

%c = %{ $s->spread(20) };
ok(!$c{b1} && $c{b3}, 'requests go to the servers that still have an '
                      . 'address');

$dns->restore_provider($_) for 1 .. 3;
$dns->flush_provider;

ok($t->wait_for(sub { $s->spread(6)->{b1} }, 20, 'b1 back'),
   'server1 back at the first successful lookup');

# qqfail_max_stale lowered by a reload during the outage: the addresses
# expire (the start-up pass, or the new leader once the pass has ended,
# must not arm a timer of the master's: the next reload would crash the
# old leader)

config(max_stale => '1h');
ok($t->reload, 'reload with qqfail_max_stale 1h');
$dns->blackhole_provider($_) for 1 .. 3;
ok($t->wait_for(sub { active(1) =~ /stale$/ }, 20, 'stale again'),
   'every provider down: server1 stale');

my $since = time;
$t->wait_for(sub { time - $since > 2.5 }, 4, 'stale for a while');

config(max_stale => '1s');
$mark = $t->log_mark;
ok($t->reload, 'reload with qqfail_max_stale 1s during the outage');
ok($t->wait_for_log(qr/older than qqfail_max_stale/, 10, $mark),
   'the stale addresses expire after the reload');
ok($t->reload, 'and one more reload');
ok($t->reload, 'and one more');
is(scalar $t->worker_pids, 2, 'workers running');

$dns->restore_provider($_) for 1 .. 3;
$dns->flush_provider;

note $_ for @figures;

done_testing();
