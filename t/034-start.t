#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Start with DNS only (no state file) and a provider that can take only a
# few queries at a time: the start-up pass looks the upstreams' servers up
# in turn (the first server of each upstream, then the second, ...), so
# that every upstream serves from the first request, not only the first
# upstreams of nginx.conf; the pass then ends (after 0.5 s, once every
# upstream has addresses) and the leader takes over the rest, asking a
# server's aliases only when its primary name fails or is slow.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my ($U, $PER) = (10, 20);

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;

sub servers_of {
    my ($u) = @_;
    return join '', map {
        "        qqfail_server s$_.$u.example.com:$P"
        . " s$_.$u.alias.example.com:$P;\n"
    } 1 .. $PER;
}

# upstream "app" and u2 .. u10; "/?u=NAME" proxies to upstream NAME
my @ups = ('app', map { "u$_" } 2 .. $U);

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf max_inflight=4;\n",
    http => join('', map {
            "    upstream $_ {\n" . servers_of($_)
            . "        qqfail_timeout 2s;\n    }\n"
        } @ups[1 .. $#ups]),
    upstream => servers_of('app') . "        qqfail_timeout 2s;\n",
    location => "proxy_pass http://\$arg_u;\n"
              . "            proxy_next_upstream error timeout http_502;");

# every name answers after 50 ms: with room for 4 queries (the A and AAAA
# of a server's two names), the pass looks up one server in 50 ms
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 120, delay_ms => 50 });

$t->start;

# right after the start: one request to each upstream, no retry
my @failed = grep {
    my $r = $t->http_get("/?u=$_");
    !($r->{status} == 200 && $r->{content} eq 'b1');
} @ups;
is("@failed", '', "right after the start every one of $U upstreams "
                  . 'serves its first request');

sub all_live {
    my $st = $s->status or return 0;
    my @srv = map { @{ $_->{servers} } } @{ $st->{upstreams} };
    return @srv == $U * $PER && !grep { $_->{source} ne 'live' } @srv;
}

ok($t->wait_for(\&all_live, 60, 'all live'),
   'the leader resolves every server after the pass');

# the aliases: the pass asks every name of the servers it looks up, the
# leader only the primary names, which answer
my %alias = map { $_->{name} => 1 }
            grep { $_->{name} =~ /\.alias\.example\.com$/ }
            $dns->fault_queries;
my $n = keys %alias;
ok($n < $U * $PER / 2, "aliases asked for $n of " . $U * $PER
                       . ' servers: only by the start-up pass');

my $st = $s->status;
is((grep { $_->{failovers} } map { @{ $_->{servers} } }
    @{ $st->{upstreams} }), 0, 'no server failed over');

# a primary name that never answers, of the last server the leader looks
# up (the pass does not reach it): its alias is asked a quarter of
# qqfail_timeout (0.5 s) after it, not at once and not after its timeout
$t->stop;
my $last = "s$PER.u$U";
$dns->fault_set("$last.example.com", { drop => 1 });
my $before = scalar(() = $dns->fault_queries);
$t->start;
ok($t->wait_for(sub {
        my $st = $s->status or return 0;
        my ($x) = grep { $_->{names}[0] =~ /^\Q$last\E\./ }
                  map { @{ $_->{servers} } } @{ $st->{upstreams} };
        $x && ($x->{active_name} // '') =~ /^\Q$last\E\.alias\./;
    }, 60, 'alias'), "$last serves through its alias");

my @q = ($dns->fault_queries)[ $before .. $dns->fault_queries - 1 ];
my @primary = map { $_->{time} }
              grep { $_->{name} eq "$last.example.com" } @q;
my @aliasq = map { $_->{time} }
             grep { $_->{name} eq "$last.alias.example.com" } @q;
my $gap = (@primary && @aliasq) ? $aliasq[0] - $primary[0] : -1;
ok($gap >= 0.45 && $gap < 2, sprintf 'its alias was asked %.2f s after '
   . 'the primary name: after 0.5 s, before the 2 s timeout', $gap);

# a state file with every provider silent and a long qqfail_timeout: the
# start-up pass ends once every upstream has addresses (from the file),
# after 0.5 s, not after the timeout; the first request is served
$t->stop;
my $state = $t->dir . '/state/state';
sub one {
    $s->nginx(workers => 1,
        providers => "    qqfail_provider pf $pf;\n",
        http => "    qqfail_state_file $state;\n",
        upstream => "        qqfail_server one.example.com:$P;\n"
                  . "        qqfail_timeout 30s;\n");
}
$dns->fault_set('one.example.com', { addrs => [ $b1 ], ttl => 120 });
one();
$t->start;
ok($t->wait_for(sub { -s $state }, 10, 'state file'), 'state file written');
$t->stop;

$dns->fault_set('*', { drop => 1 });
$dns->fault_set('one.example.com', { drop => 1 });
one();
ok($t->try_start(timeout => 10), 'with every provider silent and '
   . 'qqfail_timeout 30s, nginx starts within 10 s: '
   . ($t->last_start_error // 'ok'));
my $r = $t->http_get('/?u=app');
is($r->{status} == 200 ? $r->{content} : $r->{status}, 'b1',
   'its first request is served from the state file');

# servers with no address whose primary names never answer, behind a
# provider with room for one name at a time (an IP literal server ends the
# start-up pass early, so the leader asks them): each one's aliases wait
# for their turn (queued a quarter of qqfail_timeout in), then its primary
# times out; every server still ends on its alias, and nginx answers
$t->stop;
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 120 });
$dns->fault_set("h$_.example.com", { drop => 1 }) for 1 .. 4;
$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf max_inflight=2;\n",
    upstream => "        qqfail_server $b1:$P;\n"
              . join('', map {
                    "        qqfail_server h$_.example.com:$P"
                    . " h$_.alias.example.com:$P;\n"
                } 1 .. 4) . "        qqfail_timeout 2s;\n");
$t->start;
ok($t->wait_for(sub {
        my $st = $s->status or return 0;
        my @srv = map { @{ $_->{servers} } } @{ $st->{upstreams} };
        my @h = grep { $_->{names}[0] =~ /^h\d/ } @srv;
        @h == 4 && !grep { ($_->{active_name} // '') !~ /\.alias\./ } @h;
    }, 60, 'aliases'), 'every server whose primary is silent ends on its '
   . 'alias, the leader answering throughout');
my $r2 = $t->http_get('/');
is($r2->{status} == 200 ? $r2->{content} : $r2->{status}, 'b1',
   'and proxies through it');

done_testing();
