#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The stream front end through the 2012 outage (t/040-failover.t's phases),
# under steady TCP and UDP load: registrar A down, registrar A back, every
# provider down for a minute with five reloads, a stop and a cold start
# from the state file during the total outage, and DNS back.  TCP goes to
# line-echo backends, UDP to DNS backends (nsd), both through qqfail
# upstreams of stream{}; stock stream upstreams of the same backends'
# addresses, in the same nginx, are the control.  One nginx also serves
# an http qqfail upstream of the same names and the status page.  Then a
# stream-only configuration, and one with the providers in stream{} and
# the status page in http{}.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;

BEGIN {
    plan skip_all => 'no stream module (ngx_stream_qqfail_module.so or '
                   . 'nginx\'s ngx_stream_module.so)'
        unless QQ::Nginx->has_stream;
}

use QQ::Topo;
use QQ::Stream;
use QQ::Proc;

my $s = QQ::Topo->new(backends => 3, providers => 3);
my ($t, $dns) = ($s->t, $s->dns);
my $st = QQ::Stream->new(topo => $s);
my ($P, $EP, $DP) = ($s->bport, $st->eport, $st->dport);
my @b = map { $s->backend($_)->addr } 1 .. 3;
my $ip = $t->addr(1);
my %port = map { $_ => $t->port($_) } qw(tcp udp stock_tcp stock_udp);

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';

# the three servers of t/040, server3 with an IP literal as its last name
sub servers {
    my ($port) = @_;
    return join '', map {
        "        qqfail_server server$_.example.com:$port "
      . "server$_.example.net:$port"
      . ($_ == 3 ? " $b[2]:$port" : '') . ";\n"
    } 1 .. 3;
}

sub stock {
    my ($port) = @_;
    return join '', map { "        server $_:$port;\n" } @b;
}

my $TUNE = "        qqfail_refresh 2s;\n        qqfail_timeout 1s;\n";

sub config {
    my $prov = $s->providers_conf;
    $t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
worker_processes 2;

events {
}

http {
    %%HTTP_GLOBALS%%

$prov
    qqfail_state_file %%DIR%%/state/state;

    upstream web {
@{[ servers($P) ]}$TUNE    }

    server {
        listen $ip:%%PORT_1%%;

        location / {
            proxy_pass http://web;
        }

        location = /status {
            qqfail_status;
        }
    }
}

stream {
    upstream tcp {
@{[ servers($EP) ]}$TUNE    }

    upstream udp {
@{[ servers($DP) ]}$TUNE    }

    upstream stock_tcp {
@{[ stock($EP) ]}    }

    upstream stock_udp {
@{[ stock($DP) ]}    }

    server {
        listen $ip:$port{tcp};
        proxy_pass tcp;
    }

    server {
        listen $ip:$port{udp} udp;
        proxy_pass udp;
        proxy_responses 1;
        proxy_timeout 1s;
    }

    server {
        listen $ip:$port{stock_tcp};
        proxy_pass stock_tcp;
    }

    server {
        listen $ip:$port{stock_udp} udp;
        proxy_pass stock_udp;
        proxy_responses 1;
        proxy_timeout 1s;
    }
}
EOF
}

# "active_name source" of server $n of upstream $u
sub active {
    my ($u, $n) = @_;
    my $x = $s->server_status("server$n.example.com", $u) or return '';
    return ($x->{active_name} // '') . ' ' . $x->{source};
}

# every server of the upstreams tcp, udp (and web) matches $re
sub all_active {
    my ($re, @u) = @_;
    @u = qw(tcp udp web) unless @u;
    for my $u (@u) {
        for my $n (1 .. 3) {
            return 0 unless active($u, $n) =~ $re;
        }
    }
    return 1;
}

# the backends answering $n TCP connections, or UDP queries, at $port
sub spread {
    my ($kind, $port, $n) = @_;
    my %c;
    for (1 .. $n) {
        my $id = $kind eq 'tcp' ? $st->tcp_once($ip, $port)
                                : $st->udp_once($ip, $port);
        $c{ $id ne '' ? $id : 'failed: ' . $st->last_error }++;
    }
    return \%c;
}

# steady load on the four listeners
sub loads {
    return {
        tcp       => $st->tcp_load(port => $port{tcp}),
        udp       => $st->udp_load(port => $port{udp}),
        stock_tcp => $st->tcp_load(port => $port{stock_tcp},
                                   concurrency => 1),
        stock_udp => $st->udp_load(port => $port{stock_udp},
                                   concurrency => 1),
    };
}

my @figures;

# UDP sessions on the listener at $port that nginx closed at a worker's
# graceful shutdown, their answer not yet in ("disconnected on shutdown",
# an info line: the harness's default QQ_LOG_LEVEL), in the error log
# since $mark
sub closed_on_shutdown {
    my ($port, $mark) = @_;
    my (%session, $n);
    for (split /\n/, $t->error_log_since($mark)) {
        if (/ (\d+)#\d+: \*(\d+) udp client \S+ connected to \S+:(\d+)$/) {
            $session{"$1 $2"} = $3;
        } elsif (/ (\d+)#\d+: \*(\d+) disconnected on shutdown$/) {
            $n++ if ($session{"$1 $2"} // 0) == $port;
        }
    }
    return $n // 0;
}

# stop the loads; qqfail's TCP and UDP must lose nothing, or, with
# reloads => $mark, UDP no more than the queries of sessions that nginx
# closed on shutdown since $mark
sub finish {
    my ($l, $what, %o) = @_;
    my %r = map { $_ => $l->{$_}->stop } keys %$l;
    my %shut = map {
        $_ => defined $o{reloads}
              ? closed_on_shutdown($port{$_}, $o{reloads}) : 0
    } qw(udp stock_udp);
    push @figures, sprintf '%-38s TCP %6d sent %d failed (stock %5d/%d), '
                         . 'UDP %6d sent %d failed (stock %5d/%d), '
                         . 'slowest UDP %d ms (stock %d)%s',
        $what . ':', (map { $r{$_}{sent}, $r{$_}{failed} }
                      qw(tcp stock_tcp udp stock_udp)),
        $r{udp}{max_ms}, $r{stock_udp}{max_ms},
        defined $o{reloads}
            ? "; closed on shutdown $shut{udp} (stock $shut{stock_udp})"
            : '';
    for my $k (qw(tcp udp)) {
        my $r = $r{$k};
        ok($r->{sent} > 100, "$what: steady $k load ($r->{sent} sent)");
        if ($k eq 'udp' && defined $o{reloads}) {
            ok($r->{failed} <= $shut{udp},
               "$what: udp: $r->{failed} of $r->{sent} lost, "
               . "$shut{udp} closed by nginx on shutdown")
                or diag explain $r;
        } else {
            is($r->{failed}, 0, "$what: $k: $r->{failed} of $r->{sent} "
                                . "failed")
                or diag explain $r;
        }
    }
    is($r{stock_tcp}{failed}, 0, "$what: stock tcp: none failed")
        or diag explain $r{stock_tcp};
    return \%r;
}

config();
$t->start;

# the three backends answer through both stream upstreams

is_deeply([ sort keys %{ spread(tcp => $port{tcp}, 30) } ],
          [ qw(b1 b2 b3) ], 'tcp: the three backends answer');
is_deeply([ sort keys %{ spread(udp => $port{udp}, 30) } ],
          [ qw(b1 b2 b3) ], 'udp: the three backends answer');
ok(all_active(qr/^server\d\.example\.com:\d+ live$/),
   'every server of tcp, udp and web on its primary name');

# the status page: stream upstreams in each format

my $status = $s->status;
my %ctx = map { $_->{name} => $_->{context} } @{ $status->{upstreams} };
is_deeply(\%ctx, { web => 'http', tcp => 'stream', udp => 'stream' },
          'JSON: the stream upstreams with "context": "stream", web with '
          . '"http"; no stock upstream');
is(scalar @{ $status->{providers} }, 3, 'JSON: the providers once');

my $prom = $t->http_get('/status?format=prometheus')->{content};
like($prom, qr/^qqfail_server_addresses\{upstream="tcp",server="server1\.example\.com:$EP",context="stream"\} 1$/m,
     'Prometheus: a tcp series with context="stream"');
like($prom, qr/^qqfail_server_addresses\{upstream="udp",server="server3\.example\.com:$DP",context="stream"\} 1$/m,
     'Prometheus: a udp series with context="stream"');
like($prom, qr/^qqfail_server_addresses\{upstream="web",server="server1\.example\.com:$P"\} 1$/m,
     'Prometheus: an http series without a context label');
unlike($prom, qr/upstream="web"[^\n]*context=/, 'no context on http series');

my $html = $t->http_get('/status?format=html')->{content};
like($html, qr{<h2>Upstream tcp <small>stream, round_robin</small></h2>},
     'HTML: "stream, round_robin" next to tcp');
like($html, qr{<h2>Upstream udp <small>stream, round_robin</small></h2>},
     'HTML: and next to udp');
like($html, qr{<h2>Upstream web <small>round_robin</small></h2>},
     'HTML: web without it');

# one set of lookups: what the providers received is what the status page
# counts (a second set of lookups, of the stream upstreams, would be
# missing from the page or doubled on it)

sub unbound_queries {
    my $n = 0;
    for my $i ($dns->providers) {
        my $conf = $dns->dir . "/p$i/unbound.conf";
        my ($rc, $out) = QQ::Proc::run_cmd(
            [ '/usr/sbin/unbound-control', '-c', $conf, 'stats_noreset' ],
            timeout => 10);
        my ($q) = ($out // '') =~ /^total\.num\.queries=(\d+)$/m;
        return undef unless defined $q;
        $n += $q;
    }
    return $n;
}

sub page_queries {
    my $n = 0;
    $n += $_->{queries} for @{ $s->status->{providers} };
    return $n;
}

{
    my ($u0, $p0) = (unbound_queries(), page_queries());
    my $since = time;
    $t->wait_for(sub { time - $since > 8 }, 10, 'eight seconds');
    my ($u1, $p1) = (unbound_queries(), page_queries());
    my ($du, $dp) = ($u1 - $u0, $p1 - $p0);
    diag("queries in 8 s: $dp on the status page, $du at the providers");
    # 9 servers, two names for the lookup of each, refresh 2 s
    ok($dp >= 9 * 3, "the status page counts the rounds ($dp queries)");
    ok(abs($du - $dp) <= 12, "the providers got what the page counts "
                             . "($du, $dp)");
}

# registrar A down: every upstream moves to example.net, nothing fails

my $l = loads();
my $mark = $t->log_mark;
$dns->stop_auth('a');

ok($t->wait_for(sub { all_active(qr/^server\d\.example\.net:\d+ live$/) },
                20, 'failover to example.net'),
   'registrar A down: every server of tcp, udp and web on its .net alias');
ok($t->wait_for_log(qr/qqfail: every provider failed for "server1\.example\.com" \((servfail|timeout)\), failing over to "server1\.example\.net:$EP", upstream "tcp"/,
                    5, $mark),
   'tcp failover logged with its upstream');
ok($t->wait_for_log(qr/failing over to "server1\.example\.net:$DP", upstream "udp"/,
                    5, $mark),
   'udp failover logged with its upstream');
is_deeply([ sort keys %{ spread(tcp => $port{tcp}, 15) } ],
          [ qw(b1 b2 b3) ], 'registrar A down: tcp reaches every backend');
finish($l, 'registrar A down');

# registrar A back

$l = loads();
$dns->start_auth_server('a', flush => 1);
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                20, 'back to example.com'),
   'registrar A back: every server on its primary name');
finish($l, 'registrar A back');

# every provider down for a minute, five reloads

$l = loads();
$mark = $t->log_mark;
$dns->blackhole_provider($_) for 1 .. 3;
my $outage = time;

ok($t->wait_for(sub {
        for my $u (qw(tcp udp)) {
            return 0 unless active($u, 1) =~ /stale$/
                && active($u, 2) =~ /stale$/
                && active($u, 3) =~ /^\Q$b[2]\E:\d+ literal$/;
        }
        return 1;
    }, 20, 'stale'),
   'every provider down: servers 1 and 2 stale, server3 on its literal');

my $reloads = 0;
my @reload_times;
for (1 .. 5) {
    push @reload_times, sprintf '%.3f', time;
    $reloads++ if $t->reload;
}
is($reloads, 5, 'five reloads during the total outage');

$t->wait_for(sub { time - $outage >= 60 }, 65, 'outage length');
ok(all_active(qr/ (stale|literal)$/, qw(tcp udp)),
   'still stale after a minute');

# nginx 1.22 itself loses a UDP query in flight at a reload: a worker
# that shuts down closes its UDP sessions that wait for an answer
# ("disconnected on shutdown"), stock upstreams alike (seen with a stock
# upstream and a DNS backend that answers in 800 ms).  The DNS backends
# here answer in well under a millisecond: such a loss is rare, and every
# loss must be one of those sessions.
my $r = finish($l, 'every provider down 60 s, 5 reloads',
               reloads => $mark);
note("reloads at @reload_times; udp losses at "
     . "@{ $r->{udp}{fail_times} }; stock at "
     . "@{ $r->{stock_udp}{fail_times} }")
    if $r->{udp}{failed} || $r->{stock_udp}{failed};

# stop, cold start during the total outage from the state file

$t->stop;
my $state = $t->read_file('state/state');
like($state, qr/^s stream:tcp server1\.example\.com:$EP,/m,
     'state file holds tcp\'s server1');
like($state, qr/^s stream:udp server1\.example\.com:$DP,/m,
     'state file holds udp\'s server1');

ok($t->try_start, 'nginx starts with every provider down')
    or diag($t->last_start_error);
is(active('tcp', 1), "server1.example.com:$EP state_file",
   'tcp: server1 from the state file');
is(active('udp', 2), "server2.example.com:$DP state_file",
   'udp: server2 from the state file');

$l = loads();
ok($t->wait_for(sub { active('tcp', 3) =~ / literal$/
                      && active('udp', 3) =~ / literal$/ }, 10,
                'server3 literal'),
   'cold start: server3 served through its literal');
is_deeply([ sort keys %{ spread(tcp => $port{tcp}, 30) } ],
          [ qw(b1 b2 b3) ], 'cold start: tcp reaches every backend');
is_deeply([ sort keys %{ spread(udp => $port{udp}, 30) } ],
          [ qw(b1 b2 b3) ], 'cold start: udp reaches every backend');
{
    my $since = time;
    $t->wait_for(sub { time - $since > 10 }, 12, 'ten seconds');
}
finish($l, 'cold start during the total outage');

# DNS back

$l = loads();
$dns->restore_provider($_) for 1 .. 3;
$dns->flush_provider;
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                30, 'live again'),
   'DNS back: every server live on its primary name');
finish($l, 'DNS back');

# a stream-only configuration: the providers in stream{}, no http{}

my $prov = $s->providers_conf;

# stream upstream tcp, the providers in stream{}; then $o{http}
sub stream_conf {
    my (%o) = @_;
    $t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
worker_processes 2;

events {
}

stream {
$prov
@{[ $o{stream} // '' ]}
    upstream tcp {
@{[ servers($EP) ]}$TUNE    }

    server {
        listen $ip:$port{tcp};
        proxy_pass tcp;
    }
}
@{[ $o{http} // '' ]}
EOF
}

$t->stop;
stream_conf(stream => '    qqfail_zone 1m;');
ok($t->try_start, 'stream only: nginx starts')
    or diag($t->last_start_error);
is_deeply([ sort keys %{ spread(tcp => $port{tcp}, 30) } ],
          [ qw(b1 b2 b3) ], 'stream only: tcp reaches every backend');
$dns->set_record('server1.example.com', [ $b[1] ]);
ok($t->wait_for(sub { my $c = spread(tcp => $port{tcp}, 12);
                      !$c->{b1} && $c->{b2} }, 15, 'server1 moved'),
   'stream only: a change of address is followed');
$dns->set_record('server1.example.com', [ $b[0] ]);
ok($t->wait_for(sub { spread(tcp => $port{tcp}, 12)->{b1} }, 15,
                'server1 back'),
   'stream only: and back');

# both blocks: the providers in stream{}, the status page in http{}

$t->stop;
stream_conf(http => <<"EOF");
http {
    %%HTTP_GLOBALS%%

    server {
        listen $ip:%%PORT_1%%;

        location = /status {
            qqfail_status;
        }
    }
}
EOF
ok($t->try_start, 'providers in stream{}, status in http{}: nginx starts')
    or diag($t->last_start_error);
is_deeply([ sort keys %{ spread(tcp => $port{tcp}, 30) } ],
          [ qw(b1 b2 b3) ], 'tcp reaches every backend');
ok($t->wait_for(sub {
        my $x = $s->status or return 0;
        my @p = map { $_->{name} } @{ $x->{providers} };
        my $q = 0;
        $q += $_->{queries} for @{ $x->{providers} };
        return "@p" eq 'p1 p2 p3' && $q > 0
            && active('tcp', 1) eq "server1.example.com:$EP live";
    }, 10, 'status'),
   'status page: the providers of stream{} with their queries, tcp live');

# one configuration: a provider given in both blocks is a duplicate

$t->stop;
$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
events {
}

stream {
$prov
}

http {
$prov
}
EOF
my ($ok, $out) = $t->test_config;
ok(!$ok, 'a provider in stream{} and again in http{}: refused');
like($out, qr/\[emerg\] "qqfail_provider" name "p1" is duplicate in \S+nginx\.conf:\d+/,
     'the second one is a duplicate');

# an http and a stream upstream of the same name are two upstreams (the
# status page tells them apart by their context); known bug: they share
# the zone record of a server line they have in common (a record is
# found by upstream name and names), so that the stream upstream's
# qqfail_allow is not applied to the addresses it uses

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
worker_processes 1;

events {
}

http {
    %%HTTP_GLOBALS%%

$prov
    upstream app {
        qqfail_server server1.example.com:$EP;
        qqfail_refresh 1s;
    }

    server {
        listen $ip:%%PORT_1%%;

        location = /status {
            qqfail_status;
        }
    }
}

stream {
    upstream app {
        qqfail_server server1.example.com:$EP;
        qqfail_refresh 1s;
        qqfail_allow $b[1]/32;
    }

    server {
        listen $ip:$port{tcp};
        proxy_pass app;
    }
}
EOF
ok($t->try_start, 'an http and a stream upstream "app": nginx starts')
    or diag($t->last_start_error);

sub app_server1 {
    my ($context) = @_;
    my $x = $s->status or return undef;
    my ($u) = grep { $_->{name} eq 'app' && $_->{context} eq $context }
              @{ $x->{upstreams} };
    return $u ? $u->{servers}[0] : undef;
}

ok($t->wait_for(sub { (app_server1('http') // {})->{source} eq 'live' },
                10, 'http app live'),
   'http "app": server1 live');
# each its own record: the stream one's qqfail_allow refuses server1's
# address there only, and the state file has a line for each

my $x = app_server1('stream') // {};
is(join(' ', map { $_->{address} } @{ $x->{addresses} // [] }), '',
   'stream "app": server1 has no address (its qqfail_allow refuses b1)');
like(join(' ', map { $_->{address} }
               @{ (app_server1('http') // {})->{addresses} // [] }),
     qr/^\Q$b[0]\E:/, 'http "app": server1 keeps b1');

# the figures of the closing note

diag $_ for @figures;

done_testing();
