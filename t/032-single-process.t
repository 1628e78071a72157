#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# "master_process off": nginx 1.22 reloads the one process in place but
# never gives the new cycle its connections, so after a reload it accepts
# nothing (nginx/nginx#1368).  A process that looks names up refuses the
# reload instead, like a configuration error: it keeps serving with its
# running configuration, keeps looking names up (a record move is
# followed), and nothing crashes, over many reload attempts.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);

# two scripted providers: lookups are in flight on both at any reload
my $pf = $dns->start_fault_server;
my $pg = $dns->start_fault_server;

sub point {
    my ($b) = @_;
    $dns->fault_set('single.test', { addrs => [ $s->backend($b)->addr ],
                                     ttl => 1, delay_ms => 20 });
}

# $i edits the configuration: the refresh, the zone size, and at $i == 5
# no qqfail server at all (a process that leads lookups still refuses)
sub config {
    my ($i) = @_;
    my $zone = 128 + 64 * ($i % 2);
    my $server = $i == 5
        ? "        server %%ADDR_1%%:%%BPORT%%;\n"
        : "        qqfail_server single.test:%%BPORT%%;\n"
        . "        qqfail_refresh " . (1 + $i % 2) . "s;\n"
        . "        qqfail_timeout 500ms;";
    $s->nginx(main => "master_process off;",
        providers => "    qqfail_provider pf $pf;\n"
                   . "    qqfail_provider pg $pg;\n"
                   . "    qqfail_zone ${zone}k;\n",
        upstream => $server);
}

point(1);
config(0);
$t->start;

my $pid = $t->master_pid;
is(scalar $t->worker_pids, 0, "one process ($pid), no workers");
is($s->body, 'b1', 'proxying to b1');

my $gen = $s->status->{leader}{generation};

my $load = $s->load(keepalive => 0, timeout => 10);
my ($refused, $followed) = (0, 0);
my $cur = 1;
my $mark = $t->log_mark;

for my $i (1 .. 10) {
    if ($i % 2 == 0) {
        $cur = 3 - $cur;
        point($cur);
    }

    config($i);
    $refused++ unless $t->reload;

    $followed++ if defined $s->wait_backend("b$cur", 5, 3);
}

my $r = $load->stop;

my $msgs = () = $t->error_log_since($mark)
    =~ /\[emerg\] .*qqfail: with "master_process off" nginx cannot reload/g;
is($refused, 10, '10 reloads of the single process refused');
is($msgs, 10, 'each refusal says why ([emerg] in the error log)');
is($followed, 10, 'after every reload attempt requests reach the '
                  . 'current backend (records moved 5 times)');
is($t->master_pid, $pid, 'the same process runs');
is($s->status->{leader}{generation}, $gen,
   'the running generation stays');
is($r->{failed}, 0, "10 reload attempts under load: $r->{failed} of "
                    . "$r->{sent} requests failed")
    or note explain $r;

# lookups continue: a record move after the reloads is followed

$cur = 3 - $cur;
point($cur);
ok(defined $s->wait_backend("b$cur", 5, 6),
   "a record move after the reload attempts is followed (b$cur)");

my $queries = $dns->fault_queries(name => 'single.test');
ok($t->wait_for(sub {
        $dns->fault_queries(name => 'single.test') > $queries + 4;
   }, 8, 'more queries'),
   'the process still looks the name up');

# nginx -t still accepts the configuration: only the reload is refused

config(1);
my ($tested, $out) = $t->test_config;
ok($tested, 'nginx -t accepts the configuration') or diag($out);

$t->stop;
is($t->last_exit_status, 0, 'the process exits cleanly');

done_testing();
