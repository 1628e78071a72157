#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# A reload whose new server lines do not fit in the zone beside the records
# kept for the running workers: the reload is refused with what fills the
# zone, the running workers keep serving, and the zone is left as it was,
# so that the next reload that fits (a few servers added) succeeds.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 60 });

# 300 servers of one name each fit in 128k (ngx_http_qqfail_zone_check),
# twice as many do not
my $N = 300;

sub config {
    my (@names) = @_;
    $s->nginx(workers => 2,
        providers => "    qqfail_provider pf $pf;\n",
        http => "    qqfail_zone 128k;",
        upstream => join('', map {
                "        qqfail_server $_.example.com:$P;\n"
            } @names)
          . "        qqfail_refresh 30s;\n"
          . "        qqfail_timeout 500ms;\n");
}

sub live {
    my $st = $s->status or return 0;
    my ($u) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} };
    return 0 unless $u;
    return scalar grep { $_->{source} eq 'live' && @{ $_->{addresses} } }
                       @{ $u->{servers} };
}

my @old = map { "s$_" } 1 .. $N;

config(@old);
$t->start;

ok($t->wait_for(sub { live() == $N }, 30, "$N servers live"),
   "$N servers live");

my $load = $s->load(keepalive => 0, concurrency => 2);

# other names for every server: the old records stay for the old workers

config(map { "t$_" } 1 .. $N);
my $mark = $t->log_mark;
ok(!$t->reload, 'a reload that does not fit in the zone is refused');
like($t->error_log_since($mark),
     qr/"qqfail_zone" 128k is too small for this configuration: it holds $N server record\(s\) of the running configuration, 0 kept for workers of older generations still running, $N address\(es\) in all/,
     'the refusal says what fills the zone: the running servers alone');
is(live(), $N, "the running workers keep their $N servers");

# a reload that fits: nothing of the refused one is left in the zone

config(@old, map { "u$_" } 1 .. 20);
$mark = $t->log_mark;
ok($t->reload, 'the next reload, 20 servers added, succeeds');
ok($t->wait_for(sub { live() == $N + 20 }, 30, ($N + 20) . ' servers live'),
   ($N + 20) . ' servers live');
unlike($t->error_log_since($mark), qr/is (full|too small)/,
       'and the zone was not full');

my $r = $load->stop;
is($r->{failed}, 0, "0 of $r->{sent} requests failed");
ok($r->{sent} > 50, "steady load ($r->{sent} requests)");
diag("refused reload: $r->{sent} requests sent, $r->{failed} failed");

done_testing();
