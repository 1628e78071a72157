#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The status endpoint: JSON with the contract's schema, Prometheus text
# that promtool accepts, an HTML page that reads well in a browser without
# JavaScript; format selection, methods, escaping of hostile strings, the
# ring of the last 64 events, and 1,000 servers.

use strict;
use warnings;

use Test::More;
use JSON::PP;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 2, providers => 2);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b2 = $s->backend(2)->addr;

# a hostile upstream name: quotes, angle brackets, ampersand, backslash
my $evil = q{ev<b>il"&'\\x};
(my $evil_conf = $evil) =~ s/(["\\])/\\$1/g;

$s->nginx(workers => 2,
    http => "    upstream \"$evil_conf\" {\n"
          . "        qqfail_server server2.example.com:$P;\n"
          . "    }\n",
    upstream => "        qqfail_server server1.example.com:$P "
              . "server1.example.net:$P $b2:$P weight=3;\n"
              . "        qqfail_server server2.example.com:$P backup;\n"
              . "        qqfail_refresh 2s;\n"
              . "        qqfail_timeout 1s;");
$t->start;

ok($t->wait_for(sub { $s->body eq 'b1' }, 10, 'b1'), 'proxying');

# JSON: every field of the contract, with its type

# the start-up pass stops at the first good answer: a slower provider is
# accounted by the leader's first round
$t->wait_for(sub {
    my $x = $t->get_json('/status');
    !grep { !$_->{last_success} } @{ $x->{providers} };
}, 10, 'both providers answered once');

my ($st, $res) = $t->get_json('/status');
is($res->{headers}{'content-type'}, 'application/json', 'JSON content type');
is($res->{headers}{'cache-control'}, 'no-store', 'not cached');

like($st->{version}, qr/^\d+\.\d+\.\d+$/, 'version');
my $nginx_bin = $t->nginx_binary;
my ($nginx_version) = `$nginx_bin -v 2>&1` =~ m{nginx/([\d.]+)};
is($st->{nginx_version}, $nginx_version, 'nginx_version');
ok(abs($st->{time} - time) < 5, 'time is now');
ok($st->{leader}{pid} > 0, 'leader pid');
ok($st->{zone}{used} > 0 && $st->{zone}{used} <= $st->{zone}{size},
   'zone usage');

my $p = $st->{providers}[0];
is($p->{name}, 'p1', 'provider name');
is_deeply($p->{servers}, [ $dns->provider_addr(1) ], 'provider servers');
is($p->{state}, 'up', 'provider state');
ok($p->{queries} > 0, 'provider queries');
is_deeply([ sort keys %{ $p->{failures} } ],
          [ qw(bad_answer nxdomain other refused servfail timeout
                unvalidated) ],
          'failure kinds');
ok(exists $p->{validates} && !defined $p->{validates},
   'validates: null without qqfail_dnssec');
ok(exists $p->{rtt_ms} && exists $p->{last_error}
   && $p->{last_success} > 0, 'rtt_ms, last_error, last_success');

my ($app) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} };
my $srv = $app->{servers}[0];
is_deeply($srv->{names}, [ "server1.example.com:$P", "server1.example.net:$P",
                           "$b2:$P" ], 'server names');
is($srv->{active_name}, "server1.example.com:$P", 'active_name');
is($srv->{source}, 'live', 'source');
is($srv->{weight}, 3, 'weight');
ok($srv->{last_success} > 0 && $srv->{next_lookup} >= $srv->{last_success},
   'last_success, next_lookup');
is($srv->{failovers}, 0, 'failovers');
is($srv->{addresses}[0]{address}, $s->backend(1)->addr . ":$P", 'address');
is($srv->{addresses}[0]{state}, 'up', 'address state');
is($srv->{addresses}[0]{fails}, 0, 'address fails');
ok(exists $srv->{addresses}[0]{geo}, 'address geo (null without GeoIP2)');
is($app->{servers}[1]{backup}, JSON::PP::true, 'backup flag');
is(ref $st->{events}, 'ARRAY', 'events');

my ($ev_up) = grep { $_->{name} eq $evil } @{ $st->{upstreams} };
ok($ev_up, 'hostile upstream name survives JSON intact');

# the outage, as the status tells it: provider down, failover, back

$dns->stop_auth('a');
$dns->blackhole_provider(2);

ok($t->wait_for(sub {
        my $x = $s->server_status('server1.example.com');
        $x && $x->{active_name} eq "server1.example.net:$P";
   }, 20, 'failover'), 'status: active_name switched to the alias');

ok($t->wait_for(sub { $s->provider_status('p2')->{state} eq 'down' }, 20,
                'p2 down'), 'status: black-holed provider down');

$srv = $s->server_status('server1.example.com');
is($srv->{failovers}, 1, 'status: failovers 1');
my ($ns) = grep { $_->{name} eq 'server1.example.com' } @{ $srv->{name_status} };
is($ns->{state}, 'failed', 'status: the primary name failed');
like($ns->{error}, qr/^(servfail|timeout)$/, "status: with error $ns->{error}");

$st = $s->status;
$t->write_file('status.json', $t->http_get('/status')->{content});
my @msgs = map { $_->{message} } @{ $st->{events} };
ok((grep { /^provider "p2" is down/ } @msgs), 'event: provider down');
ok((grep { /failing over to "server1\.example\.net:\d+"$/ } @msgs),
   'event: failover to the alias');
my ($fe) = grep { $_->{message} =~ /failing over/ } @{ $st->{events} };
is($fe->{upstream}, 'app', 'event upstream');
is($fe->{server}, "server1.example.com:$P", 'event server');
ok($fe->{time} > 0, 'event time');

# Prometheus, taken during the outage

my $r = $t->http_get('/status?format=prometheus');
is($r->{status}, 200, 'prometheus');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
     'prometheus content type');
my $prom = $r->{content};
$t->write_file('metrics.txt', $prom);

like($prom, qr/^qqfail_provider_up\{provider="p2"\} 0$/m, 'p2 down metric');
like($prom, qr/^qqfail_server_on_alias\{upstream="app",server="server1\.example\.com:\d+"\} 1$/m,
     "on-alias metric");
like($prom, qr/^qqfail_server_active_name\{upstream="app",server="server1\.example\.com:\d+",name="server1\.example\.net:\d+"\} 1$/m,
     'active name metric');
like($prom, qr/^qqfail_server_failovers_total\{upstream="app",server="server1\.example\.com:\d+"\} 1$/m,
     'failovers counter');
like($prom, qr/^qqfail_provider_failures_total\{provider="p1",kind="servfail"\} \d+$/m,
     'failures by kind');
like($prom, qr/^qqfail_server_addresses\{upstream="ev<b>il\\"&'\\\\x",server="server2\.example\.com:\d+"\} 1$/m,
     'hostile upstream name escaped in a label');

SKIP: {
    skip 'promtool is not installed', 1 unless -x '/usr/bin/promtool';
    my $out = qx{/usr/bin/promtool check metrics < @{[ $t->dir ]}/metrics.txt 2>&1};
    is($? >> 8, 0, 'promtool check metrics accepts the output')
        or diag $out;
}

SKIP: {
    skip 'promtool is not installed', 1 unless -x '/usr/bin/promtool';
    my $doc = $t->read_file($t->repo_root . '/docs/status.md');
    my ($rules) = $doc =~ /```yaml\n(groups:.*?)```/s;
    $t->write_file('rules.yml', $rules // '');
    my $out = qx{/usr/bin/promtool check rules @{[ $t->dir ]}/rules.yml 2>&1};
    ok($rules && $? == 0, 'the alerting rules in docs/status.md pass '
                          . 'promtool check rules') or diag $out;
}

# HTML: escaped, self-contained, refreshing, readable without JavaScript

$r = $t->http_get('/status?format=html');
is($r->{status}, 200, 'html');
like($r->{headers}{'content-type'}, qr{^text/html}, 'html content type');
my $html = $r->{content};
$t->write_file('status.html', $html);

like($html, qr/ev&lt;b&gt;il&quot;&amp;'\\x/, 'hostile name escaped in HTML');
unlike($html, qr/<b>il/, 'no raw markup from names');
unlike($html, qr/<script|src=|href=|\@import|url\(/i, 'no script, no external asset');
like($html, qr/<meta http-equiv="refresh" content="5">/, 'periodic refresh');

SKIP: {
    my $chromium = -x '/usr/bin/chromium' ? '/usr/bin/chromium' : undef;
    skip 'chromium is not installed', 4 unless $chromium;

    my $url = 'http://' . $t->addr(1) . ':' . $t->port(1) . '/status?format=html';
    my $flags = '--headless --no-sandbox --disable-gpu --disable-quic '
              . '--no-first-run --disable-background-networking '
              . '--disable-component-update --disable-sync '
              . '--user-data-dir=' . $t->dir . '/chromium';

    my $dom = qx{timeout 60 $chromium $flags --dump-dom '$url' 2>/dev/null};
    like($dom, qr/DNS providers/, 'chromium renders the page');
    like($dom, qr/<td class="down">down<\/td>/, 'provider p2 shown down');
    like($dom, qr/server1\.example\.net:\d+<\/td><td class="live">live/,
         'server1 on its alias, live');

    my $png = $t->dir . '/status.png';
    system("timeout 60 $chromium $flags --window-size=1400,1000 "
           . "--screenshot=$png '$url' >/dev/null 2>&1");
    ok(-s $png, 'screenshot taken');
    if ($ENV{QQ_SCREENSHOT} && -s $png) {
        system('cp', $png, $ENV{QQ_SCREENSHOT});
    }
}

# format selection and methods

is($t->http_get('/status', headers => { Accept => 'text/html' })
     ->{headers}{'content-type'}, 'text/html; charset=utf-8',
   'Accept: text/html gives HTML');
like($t->http_get('/status', headers => {
        Accept => 'application/openmetrics-text;version=1.0.0,'
                . 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1' })
     ->{headers}{'content-type'}, qr{^text/plain},
   'a Prometheus scraper gets Prometheus text');
is($t->http_get('/status?format=json', headers => { Accept => 'text/html' })
     ->{headers}{'content-type'}, 'application/json', '?format= wins');
is($t->http_get('/status?format=xml')->{status}, 400, 'unknown format: 400');

$r = $t->http_get('/status', method => 'POST', body => 'x');
is($r->{status}, 405, 'POST: 405');
is($r->{headers}{allow}, 'GET, HEAD', 'with Allow: GET, HEAD');

$r = $t->http_get('/status', method => 'HEAD');
is($r->{status}, 200, 'HEAD: 200');
is($r->{content} // '', '', 'HEAD: no body');

$dns->restore_provider(2);
$dns->start_auth_server('a', flush => 1);

ok($t->wait_for(sub {
        my $x = $s->server_status('server1.example.com');
        $x && $x->{active_name} eq "server1.example.com:$P";
   }, 20, 'back'), 'status: active_name back to the primary');

# a thousand servers, and the ring keeps only the last 64 events

my $fault = $dns->start_fault_server;
# one Perl fault server answers for 1,000 names: a 5 s refresh and a 2 s
# timeout keep it at 200 queries/s, so lookups do not time out under load
$dns->fault_set('*', { addrs => [ $s->backend(1)->addr ], ttl => 5 });

my $many = join '', map { "        qqfail_server n$_.test:$P $b2:$P;\n" }
                        1 .. 1000;
$s->nginx(workers => 2,
    providers => "    qqfail_provider pf $fault;\n",
    http => "    qqfail_zone 16m;",
    upstream => $many . "        qqfail_refresh 5s;\n"
                      . "        qqfail_timeout 2s;");
ok($t->reload, 'reload with 1,000 servers');

$st = $s->status;
is(scalar @{ $st->{upstreams}[0]{servers} }, 1000, 'JSON: 1,000 servers');
ok($t->wait_for(sub {
        my $x = $s->status;
        1000 == grep { $_->{source} eq 'live' } @{ $x->{upstreams}[0]{servers} };
   }, 60, 'all live'), 'JSON: all 1,000 live');

$prom = $t->http_get('/status?format=prometheus')->{content};
my $n = () = $prom =~ /^qqfail_server_addresses\{/mg;
is($n, 1000, 'Prometheus: 1,000 servers');
$html = $t->http_get('/status?format=html')->{content};
# a row per server, whatever the state of its name at this moment: with
# 1,000 names refreshed each second a lookup may time out now and then
$n = () = $html =~ /<tr><td><span class="\w+">n\d+\.test:/g;
is($n, 1000, 'HTML: 1,000 rows');

# every primary fails at once: 1,000 failovers, the ring shows 64

$dns->fault_set('*', { rcode => 'SERVFAIL' });

ok($t->wait_for(sub {
        my $x = $s->status;
        1000 == grep { $_->{active_name} eq "$b2:$P" }
                     @{ $x->{upstreams}[0]{servers} };
   }, 30, 'failover of all'), 'all 1,000 servers on their IP literal');

$st = $s->status;
is(scalar @{ $st->{events} }, 64, 'the ring holds the last 64 events');
# provider events (no server) may interleave with the burst
my @sev = grep { defined $_->{server} } @{ $st->{events} };
my $fo = grep { $_->{message} =~ /failing over to/ } @sev;
ok($fo >= 32 || ($fo && $fo == @sev),
   "the newest server events are the failovers ($fo of " . @sev . ")");
ok($st->{events}[0]{time} <= $st->{events}[-1]{time}, 'oldest first');

done_testing();
