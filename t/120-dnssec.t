#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# qqfail_dnssec on: both zones signed (ldns-signzone, served by nsd), two
# unbound providers that validate with the zones' keys as trust anchors,
# one unbound provider that does not validate, and a forger (a fault
# server) that answers every name with the address of backend b4, which
# no zone names, and never sets the AD bit.  Only validated answers are
# used: no request of the qqfail_dnssec upstream reaches b4, while a
# control upstream without it does once the forger alone answers; the
# providers that never validate are shown so; the registrar outage, the
# outage of the validating providers and the total outage end with 0
# failed requests, through an http upstream and a stream upstream alike.
#
# A forger that sets the AD bit is out of scope: qqfail_dnssec trusts the
# provider's validation (docs/security.md); qqfail_quorum covers it.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::DNS;
use QQ::Load;
use QQ::Topo;

if (my @missing = (QQ::DNS::missing_tools(), QQ::DNS::missing_dnssec_tools())) {
    plan skip_all => "missing @missing (./build.sh installs them)";
}

my $s = QQ::Topo->new(backends => 4, providers => 3, dnssec => 1,
                      validators => [ 1, 2 ]);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b3 = $s->backend(3)->addr;
my $forged = $s->backend(4)->addr;

# the forger: every name is b4, no AD bit

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { addrs => [ $forged ] });

# the forger first: its queries leave first, its answers come first.
# A stream upstream of the same servers, with qqfail_dnssec on, proxies
# TCP to the http backends: an http request through it reaches one too.

my $servers =
            "        qqfail_server server1.example.com:$P "
          . "server1.example.net:$P;\n"
          . "        qqfail_server server2.example.com:$P "
          . "server2.example.net:$P;\n"
          . "        qqfail_server server3.example.com:$P "
          . "server3.example.net:$P $b3:$P;\n"
          . "        qqfail_refresh 1s;\n"
          . "        qqfail_timeout 1s;\n"
          . "        qqfail_dnssec on;\n";

my $stream = $t->has_stream;
my $sport = $t->port('stream');

$s->nginx(workers => 2,
    main => $stream ? "%%LOAD_STREAM%%\n"
                    . "stream {\n    upstream sapp {\n$servers    }\n"
                    . "    server {\n        listen %%ADDR_1%%:$sport;\n"
                    . "        proxy_pass sapp;\n    }\n}\n" : '',
    providers => "    qqfail_provider pf $pf;\n" . $s->providers_conf,
    locations => $s->proxy_locations('plain'),
    upstreams => [
        app => $servers,
        plain =>
            "        qqfail_server server1.example.com:$P;\n"
          . "        qqfail_refresh 1s;\n"
          . "        qqfail_timeout 1s;\n",
    ]);

$t->start;

sub active { return $s->active(@_) }
# servers 1 to 3 (b4 has no server in "app")
sub all_active {
    my ($re) = @_;
    return !grep { active($_) !~ $re } 1 .. 3;
}

sub provider { return $s->provider_status($_[0]) // {} }

# the providers as the status page shows them

ok($t->wait_for(sub { (provider('p1')->{validates} // '') eq '1'
                      && (provider('p2')->{validates} // '') eq '1' },
                10, 'p1 and p2 validate'),
   'the validating providers: "validates": true');
ok($t->wait_for(sub { defined provider('p3')->{validates}
                      && !provider('p3')->{validates}
                      && defined provider('pf')->{validates}
                      && !provider('pf')->{validates} }, 10,
                'p3 and pf never validate'),
   'the provider that does not validate and the forger: "validates": false');
ok(provider('p3')->{failures}{unvalidated} > 0
   && provider('pf')->{failures}{unvalidated} > 0,
   'their answers are counted as failures "unvalidated" ('
   . provider('p3')->{failures}{unvalidated} . ', '
   . provider('pf')->{failures}{unvalidated} . ')');
is(provider('p1')->{failures}{unvalidated}, 0,
   'no unvalidated answer from a validating provider');
ok($dns->fault_queries > 0, 'the forger is asked ('
                            . scalar($dns->fault_queries) . ' queries)');

ok(all_active(qr/^server\d\.example\.com:\d+ live$/),
   'every server on its primary name');
my %c = %{ $s->spread(30) };
is_deeply([ sort keys %c ], [ 'b1', 'b2', 'b3' ],
          'requests reach b1, b2, b3 and never the forged b4')
    or diag explain \%c;

# the status page in its other formats

my $prom = $t->http_get('/status?format=prometheus')->{content};
like($prom, qr/^qqfail_provider_validates\{provider="p1"\} 1$/m,
     'prometheus: p1 validates 1');
like($prom, qr/^qqfail_provider_validates\{provider="p3"\} 0$/m,
     'prometheus: p3 validates 0');
like($prom, qr/^qqfail_provider_failures_total\{provider="pf",kind="unvalidated"\} [1-9]/m,
     'prometheus: the forger\'s unvalidated answers');
my $html = $t->http_get('/status?format=html')->{content};
like($html, qr/<td class="failed">never validated<\/td>/,
     'html: a provider that never validated');
like($html, qr/<td>validates<\/td>/, 'html: a provider that validates');

my @figures;
my %total;

# http load, and the same through the stream upstream (one connection a
# request: a TCP connection stays with the backend it reached)

sub start_load {
    my (%o) = @_;
    my @l = ($s->load(%o));
    push @l, QQ::Load->start($t, url => 'http://' . $t->addr(1)
                                        . ":$sport/", concurrency => 1,
                             keepalive => 0)
        if $stream;
    return \@l;
}

sub finish {
    my ($loads, $what) = @_;
    my @kind = ('http', 'stream');
    for my $load (@$loads) {
        my $kind = shift @kind;
        my $r = $load->stop;
        my $b4 = $r->{by_body}{b4} // 0;
        $total{"$kind $_"} += $r->{$_} for qw(sent failed);
        $total{"$kind forged"} += $b4;
        push @figures, sprintf '%s, %s: %d sent, %d failed, %d reached the '
                               . 'forged backend', $what, $kind, $r->{sent},
                               $r->{failed}, $b4;
        is($r->{failed}, 0,
           "$what, $kind: $r->{failed} of $r->{sent} requests failed")
            or note explain $r;
        is($b4, 0, "$what, $kind: no request reached the forged backend");
        ok($r->{sent} > 50, "$what, $kind: steady load ($r->{sent} requests)");
    }
    return;
}

sub run_for {
    my ($secs) = @_;
    my $since = time;
    $t->wait_for(sub { time - $since >= $secs }, $secs + 5, 'load');
}

# steady state

my $load = start_load();
run_for(5);
finish($load, 'steady');

# registrar A down: example.com fails through the validating providers,
# the forger still answers it: every server moves to its validated alias

$load = start_load();
$dns->stop_auth('a');

ok($t->wait_for(sub { all_active(qr/^server\d\.example\.net:\d+ live$/) },
                20, 'failover to example.net'),
   'registrar A down: every server moved to its example.net alias');
run_for(3);
finish($load, 'registrar A down');

$load = start_load();
$dns->start_auth_server('a', flush => 1);
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                20, 'back to example.com'),
   'registrar A back: every server returned to its primary name');
finish($load, 'registrar A back');

# the validating providers down: the unvalidated answers that remain are
# not used, the servers keep their last good addresses

# p3 may still hold registrar A's outage (SERVFAIL until its
# infrastructure cache lets it ask again): the error below is that of its
# unvalidated answer, so it must answer first
ok($t->wait_for(sub {
        !grep { ($dns->query($dns->provider_addr(3), "server$_.example.com",
                             'A'))[0] ne 'NOERROR' } 1 .. 3
   }, 20, 'p3 answers example.com'),
   'the provider that does not validate answers example.com again');

$load = start_load(keepalive => 0);
$dns->blackhole_provider($_) for 1, 2;

ok($t->wait_for(sub {
        active(1) =~ /stale$/ && active(2) =~ /stale$/
            && active(3) eq "$b3:$P literal"
   }, 20, 'stale'),
   'validating providers down: servers 1 and 2 stale, server3 on its literal');
my $st = $s->server_status('server1.example.com');
is($st->{name_status}[0]{error}, 'unvalidated',
   'the name failed as "unvalidated"')
    or diag explain $st->{name_status};
run_for(3);
finish($load, 'validating providers down');

# every honest provider down, the forger alone answers: the control
# upstream, without qqfail_dnssec, takes its answer (the forger is the
# only provider with addresses, so no race decides it), while the
# qqfail_dnssec upstream keeps its last good addresses

$load = start_load(keepalive => 0);
$dns->blackhole_provider(3);

my ($plain, $since) = (0, time);
ok($t->wait_for(sub { $plain++; $s->body('/plain') eq 'b4' }, 20,
                'plain reaches b4'),
   'control: without qqfail_dnssec a request reaches the forged b4');
push @figures, sprintf 'control (no qqfail_dnssec): request %d reached the '
                       . 'forged backend, after %.1f s', $plain, time - $since;
ok(all_active(qr/ (stale|literal)$/),
   'the qqfail_dnssec upstream still stale meanwhile');
run_for(2);
finish($load, 'only the forger answers');

# every provider down, the forger silent too, and a reload

$load = start_load(keepalive => 0);
$dns->fault_set('*', { drop => 1 });
my $mark = $t->log_mark;
ok($t->wait_for_log(qr/every provider failed for every name \(timeout\)/,
                    20, $mark),
   'total outage: every provider times out');
ok($t->reload, 'a reload during the total outage');
run_for(3);
ok(all_active(qr/ (stale|literal)$/), 'still stale');
finish($load, 'every provider down, a reload');

# back: validated again

$dns->restore_provider($_) for 1 .. 3;
$dns->flush_provider;
$dns->fault_set('*', { addrs => [ $forged ] });

$load = start_load();
ok($t->wait_for(sub { all_active(qr/^server\d\.example\.com:\d+ live$/) },
                30, 'live again'),
   'DNS back: every server live on its primary name');
finish($load, 'DNS back');

for my $kind ('http', $stream ? 'stream' : ()) {
    push @figures, sprintf "in all, $kind: %d sent, %d failed, %d reached "
                           . 'the forged backend',
                           map { $total{"$kind $_"} } qw(sent failed forged);
}
note $_ for @figures;

done_testing();
