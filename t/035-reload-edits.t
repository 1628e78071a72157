#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The operator's everyday changes, under load: a reload that adds
# qqfail_allow or raises qqfail_quorum applies to the addresses already in
# use; a server line edited during an outage (an alias added, names
# reordered, a dead alias removed, an alias's port changed) keeps its last
# good addresses, across reloads and across a restart through the state
# file; hundreds of reloads that rename servers never fill the zone.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Backend;

my $s = QQ::Topo->new(backends => 2, providers => 2, ttl => 1);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $base = $t->base;

my ($b1, $b2) = map { $s->backend($_)->addr } 1, 2;

# the attacker's server, outside 127.A.B.16/29
my $evil = QQ::Backend->new(t => $t, id => 'evil', addr => $t->addr(40),
                            port => $P);
$evil->start;

# a lying provider; long TTLs, so that nothing is looked up again soon
my $pf = $dns->start_fault_server;
$dns->fault_set('server1.example.com', { addrs => [ $evil->addr ], ttl => 60 });
$dns->fault_set('server1.example.net', { addrs => [ $b1 ], ttl => 60 });

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';
my $state = $t->dir . '/state/state';

my @figures;

sub config {
    my (%o) = @_;
    $s->nginx(workers => 2,
        providers => $o{providers} // "    qqfail_provider pf $pf;\n",
        http => ($o{http} // '')
              . "    qqfail_state_file $state;\n"
              . ($o{zone} ? "    qqfail_zone $o{zone};\n" : ''),
        upstream => $o{upstream}
            // "        qqfail_server server1.example.com:$P "
             . "server1.example.net:$P;\n"
             . "        qqfail_refresh 30s;\n"
             . "        qqfail_timeout 500ms;\n"
             . ($o{extra} // ''));
}

sub load { return $s->load(keepalive => 0, concurrency => 2) }

sub check {
    my ($r, $what, %o) = @_;
    my $to_evil = $r->{by_body}{evil} // 0;
    push @figures, sprintf '%s: %d requests sent, %d failed, %d reached the '
                         . 'forged backend', $what, $r->{sent}, $r->{failed},
                           $to_evil;
    is($r->{failed}, 0, "$what: 0 of $r->{sent} requests failed")
        or diag explain $r;
    is($to_evil, 0, "$what: 0 requests reached the forged backend")
        unless $o{evil_ok};
    ok($r->{sent} >= ($o{min} // 50), "$what: steady load ($r->{sent})");
}

# requests for a while after a change, counted
sub measure {
    my ($what, $n, %o) = @_;
    my $l = load();
    my $served = sub {
        my $c = 0;
        $c += $_->requests for $s->backends, $evil;
        return $c;
    };
    my $from = $served->();
    $t->wait_for(sub { $served->() >= $from + $n }, 30, "$what: $n requests");
    check($l->stop, $what, %o);
}

# 1. a forged address in use; a reload adds qqfail_allow

config();
$t->start;
ok($s->wait_backend('evil', 10), 'before: the forged answer is in use');

my $l = load();
my $mark = $t->log_mark;
config(extra => "        qqfail_allow $base.16/29;\n");
ok($t->reload, 'reload with an allow rule');
check($l->stop, 'reload adding qqfail_allow', evil_ok => 1, min => 1);
like($t->error_log_since($mark),
     qr/qqfail: 1 of 1 address\(es\) of "server1\.example\.com:$P" refused by the new configuration/,
     'the log says which kept address the new rules refused');

measure('after the reload with qqfail_allow', 300);
is($s->addresses('server1.example.com'), "$b1:$P",
   'the status page shows the alias address only');

# 2. a forged address agreed by one provider; the quorum is raised

my $one = "        qqfail_server server1.example.com:$P;\n"
        . "        qqfail_refresh 30s;\n"
        . "        qqfail_timeout 500ms;\n";

config(upstream => $one);
ok($t->reload, 'reload: server1 without an alias, no allow rule');
ok($s->wait_backend('evil', 10), 'the forged answer is in use again');

$l = load();
config(providers => "    qqfail_provider pf $pf;\n" . $s->providers_conf,
       upstream => $one . "        qqfail_quorum 2;\n");
ok($t->reload, 'reload with qqfail_quorum 2 and two honest providers');
check($l->stop, 'reload raising qqfail_quorum', evil_ok => 1, min => 1);

measure('after the reload with qqfail_quorum 2', 300);
is($s->addresses('server1.example.com'), "$b1:$P",
   'the set the honest providers agree on is in use');

# 3. server lines edited during a total outage keep their addresses

sub upstream2 {
    my (@names) = @_;
    return "        qqfail_server " . join(' ', @names) . ";\n"
         . "        qqfail_refresh 1s;\n"
         . "        qqfail_timeout 300ms;\n";
}

my @line = ("server2.example.com:$P", "server2.example.net:$P");

config(providers => $s->providers_conf, upstream => upstream2(@line));
ok($t->reload, 'reload: server2 through the honest providers');
ok($s->wait_backend('b2', 10), 'server2 answers');
ok($t->wait_for(sub { -s $state && $t->read_file($state) =~ /server2/ }, 10,
                'state file'), 'the state file has server2');

$dns->blackhole_provider($_) for $dns->providers;
ok($t->wait_for(sub {
        my $st = $s->server_status('server2.example.com') or return 0;
        $st->{source} eq 'stale';
    }, 20, 'stale'), 'every provider black-holed: server2 is stale');

my @edits = (
    [ 'an alias added',
      "server2.example.com:$P", "server2.example.net:$P",
      "server2.example.org:$P" ],
    [ 'the names reordered',
      "server2.example.org:$P", "server2.example.com:$P",
      "server2.example.net:$P" ],
    [ 'a dead alias removed', "server2.example.com:$P",
      "server2.example.org:$P" ],
    [ 'an alias port changed', "server2.example.com:$P",
      "server2.example.org:" . ($P + 1) ],
);

for my $e (@edits) {
    my ($what, @names) = @$e;
    $l = load();
    config(providers => $s->providers_conf, upstream => upstream2(@names));
    ok($t->reload(timeout => 20), "reload during the outage: $what");
    # two loads run here, this one and the one across the reload: 200
    # served leaves this one its 50 at least
    measure("outage, $what", 200);
    my $r = $l->stop;
    check($r, "outage, across the reload ($what)", min => 1);
    my $st = $s->server_status($names[0]);
    is($st && join(' ', map { $_->{address} } @{ $st->{addresses} }),
       "$b2:$P", "$what: the edited server keeps its address");
}

# a restart during the outage, with yet another edit

$t->stop;
config(providers => $s->providers_conf,
       upstream => upstream2("server2.example.net:$P",
                             "server2.example.com:$P"));
$mark = $t->log_mark;
ok($t->try_start, 'nginx starts during the outage with an edited line');
like($t->error_log_since($mark), qr/addresses of 1 server\(s\) loaded/,
     'the state file gave the edited server its addresses');
measure('restart during the outage, line edited', 200);

$dns->restore_provider($_) for $dns->providers;

# 4. hundreds of reloads, each renaming servers: the zone stays bounded

$dns->fault_set('*', { addrs => [ $b1 ], ttl => 60 });

my $n = $ENV{QQ_RELOADS} // 1000;
my ($max, $first, @used) = (0, undef);

sub generated {
    my ($round) = @_;
    my $u = '';
    for my $i (1 .. 20) {
        # half the names change on every reload
        my $g = $i <= 10 ? 'static' : "r$round";
        $u .= "        qqfail_server $g-$i.example.com:$P;\n";
    }
    return $u . "        qqfail_timeout 500ms;\n";
}

config(zone => '128k', upstream => generated(0));
ok($t->reload, 'reload: 20 generated servers in a 128k zone');
ok($s->wait_backend('b1', 10), 'generated servers answer');

$l = load();
my ($bad, $nogo) = (0, 0);

for my $round (1 .. $n) {
    config(zone => '128k', upstream => generated($round));
    $t->reload(timeout => 20) or $bad++;

    my $st = $s->status;
    my $z = $st && $st->{zone} && $st->{zone}{used};
    $first //= $z;
    $max = $z if defined $z && $z > $max;

    # every server of the new generation gets an address (the start-up
    # pass, or the new leader right after it on a loaded machine)
    $t->wait_for(sub {
        my $st = $s->status or return 0;
        my ($u) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} || [] };
        $u && !grep { !@{ $_->{addresses} } } @{ $u->{servers} };
    }, 10, "round $round: every server has an address") or $nogo++;
}

my $r = $l->stop;
is($bad, 0, "$n reloads, each renaming 10 of 20 servers, all succeeded");
is($nogo, 0, 'after every reload every server gets an address');
check($r, "$n reloads renaming servers", min => $n);
ok(defined $first && $max <= $first + 16 * 1024 && $max < 128 * 1024,
   "zone used stays bounded: at most $max bytes of 128k (after the first "
   . 'reload: ' . ($first // 'unknown') . ')');
push @figures, "$n reloads: zone used $first bytes after the first, "
             . "$max at most";
unlike($t->error_log, qr/is (full|too small)/, 'the zone never filled');

diag($_) for @figures;

done_testing();
