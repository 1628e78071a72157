#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Self-test of the test harness (t/lib/QQ/*.pm): the DNS topology (nsd
# registrars, unbound providers, the scripted fault server), the HTTP
# backends, the load helper and nginx process control.  Uses stock nginx;
# only the last part needs objs/ngx_http_qqfail_module.so.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;
use QQ::Load;
use QQ::Netns;

my $t = QQ::Nginx->new;
my $dns = QQ::DNS->new(t => $t);

# ---------------------------------------------------------------------------
note('harness basics');

like($t->addr(1), qr/^127\.\d+\.\d+\.1$/, 'addr(1) is a loopback literal');
isnt($t->port(1), $t->port(2), 'ports are distinct');
is($t->port(1), $t->port(1), 'ports are stable');
is((stat $t->dir)[4], scalar getpwnam('nobody'), 'test dir owned by nobody')
    if $> == 0;

$t->write_config(<<'EOF');
%%GLOBALS%%
events {
}
http {
    %%HTTP_GLOBALS%%
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        no_such_directive on;
    }
}
EOF
my ($cfg_ok, $cfg_out) = $t->test_config;
ok(!$cfg_ok, 'test_config rejects a bad configuration');
like($cfg_out, qr/\[emerg\] unknown directive "no_such_directive"/, 'test_config output');
ok(!$t->try_start, 'try_start returns false on a bad configuration');
like($t->last_start_error, qr/no_such_directive/, 'start error carries the log tail');

# ---------------------------------------------------------------------------
note('registrars and providers');

my %addr = map { $_ => $t->addr($_) } 20 .. 60;

my $t0 = time;
$dns->start_auth(
    records => {
        'server1.example.com' => [ $addr{20} ],
        'server1.example.net' => [ $addr{21} ],
        'server2.example.net' => [ $addr{22}, '::1' ],
    },
    ttl => 1,
);
$dns->start_providers(3);
note(sprintf 'DNS topology up in %.2fs', time - $t0);

for my $i (1 .. 3) {
    my $p = $dns->provider_addr($i);
    is_deeply([ $dns->query($p, 'server1.example.com', 'A') ],
              [ 'NOERROR', [ $addr{20} ] ], "provider $i answers server1.example.com");
    is_deeply([ $dns->query($p, 'server1.example.net', 'A') ],
              [ 'NOERROR', [ $addr{21} ] ], "provider $i answers server1.example.net");
}
is_deeply([ $dns->query($dns->provider_addr(1), 'server2.example.net', 'AAAA') ],
          [ 'NOERROR', ['::1'] ], 'AAAA records');
is(($dns->query($dns->provider_addr(1), 'nothere.example.com', 'A'))[0], 'NXDOMAIN',
   'unknown name in a zone is NXDOMAIN');
is(($dns->query($dns->provider_addr(1), 'www.example.org', 'A'))[0], 'REFUSED',
   'names outside the stub zones are refused, never recursed');
is(($dns->query($dns->auth_addr('a'), 'server1.example.com', 'A', recurse => 0))[0],
   'NOERROR', 'registrar A answers directly');

# A zone change is visible through every provider within the TTL.
$dns->set_record('server1.example.com', [ $addr{30}, $addr{31} ]);
$t0 = time;
ok($t->wait_for(sub {
        !grep {
            my (undef, $a) = $dns->query($dns->provider_addr($_), 'server1.example.com', 'A');
            join(',', sort @$a) ne join(',', sort $addr{30}, $addr{31});
        } 1 .. 3
    }, 5, 'new records through all providers'),
   'set_record is seen through every provider');
cmp_ok(time - $t0, '<=', $dns->ttl + 1.5, 'within the TTL (plus slack)');

$dns->del_record('server2.example.net');
ok($t->wait_for(sub {
        ($dns->query($dns->provider_addr(1), 'server2.example.net', 'A'))[0] eq 'NXDOMAIN'
    }, 5, 'deleted record gone'), 'del_record');

# ---------------------------------------------------------------------------
note('registrar outages');

sub all_providers {
    my ($name, $want) = @_;
    return !grep { ($dns->query($dns->provider_addr($_), $name, 'A', timeout => 3))[0] ne $want }
                 1 .. 3;
}

$dns->stop_auth('a');
ok($t->wait_for(sub { all_providers('server1.example.com', 'SERVFAIL') }, 10,
                'example.com SERVFAIL'), 'registrar A stopped: example.com is SERVFAIL');
ok(all_providers('server1.example.net', 'NOERROR'), '... while example.net resolves');
$t0 = time;
$dns->start_auth_server('a', flush => 1);
ok(all_providers('server1.example.com', 'NOERROR'),
   'registrar A restarted (providers flushed): example.com resolves at once');

$dns->blackhole_auth('b');
ok($t->wait_for(sub { all_providers('server1.example.net', 'SERVFAIL') }, 10,
                'example.net SERVFAIL'), 'registrar B blackholed: example.net is SERVFAIL');
ok(all_providers('server1.example.com', 'NOERROR'), '... while example.com resolves');
# A change made during the outage is served once the registrar is back.
$dns->set_record('server1.example.net', [ $addr{32} ]);
$t0 = time;
$dns->restore_auth('b');
ok($t->wait_for(sub {
        !grep { my (undef, $a) = $dns->query($dns->provider_addr($_), 'server1.example.net', 'A');
                "@$a" ne $addr{32} } 1 .. 3
    }, 15, 'example.net back'), 'registrar B restored, with the new record');
note(sprintf 'providers recovered after %.2fs (unbound caches SERVFAIL)', time - $t0);

# ---------------------------------------------------------------------------
note('provider outages');

$dns->blackhole_provider(2);
$t0 = time;
is(($dns->query($dns->provider_addr(2), 'server1.example.com', 'A', timeout => 0.5))[0],
   'TIMEOUT', 'blackholed provider does not answer');
cmp_ok(time - $t0, '>=', 0.4, '... it really timed out');
is(($dns->query($dns->provider_addr(1), 'server1.example.com', 'A'))[0], 'NOERROR',
   '... other providers still answer');
$dns->restore_provider(2);
ok($t->wait_for(sub {
        ($dns->query($dns->provider_addr(2), 'server1.example.com', 'A', timeout => 0.5))[0]
            eq 'NOERROR' }, 5, 'provider 2 back'), 'restored provider answers');

$dns->stop_provider(3);
is(($dns->query($dns->provider_addr(3), 'server1.example.com', 'A', timeout => 0.5))[0],
   'TIMEOUT', 'stopped provider gives no answer');
$dns->start_provider(3);
is(($dns->query($dns->provider_addr(3), 'server1.example.com', 'A'))[0], 'NOERROR',
   'restarted provider answers');

# ---------------------------------------------------------------------------
note('network namespace isolation (QQ::Netns), in a forked child');

SKIP: {
    skip 'network namespaces need root', 3 unless $> == 0;
    skip QQ::Netns::unusable(), 3 if QQ::Netns::unusable();

    my $out = $t->dir . '/netns.out';
    my $host_resolv = $t->read_file('/etc/resolv.conf');
    my $pid = QQ::Proc::fork_code(name => 'netns-check', code => sub {
        my $report = '';
        if (QQ::Netns::enter()) {
            QQ::Netns::set_resolv_conf('nameserver ' . $dns->provider_ip(1) . "\n",
                                       $t->dir . '/resolv.conf');
            $report .= 'resolv=' . $t->read_file('/etc/resolv.conf');
            my ($rc) = $dns->query($dns->provider_addr(1), 'server1.example.com', 'A',
                                   timeout => 0.5);
            $report .= "query=$rc\n";
        } else {
            $report = "error=$QQ::Netns::ERROR\n";
        }
        $t->write_file($out, $report);
    });
    $t->wait_for(sub { !QQ::Proc::alive($pid) }, 10, 'netns child');
    my $report = $t->read_file($out);
    like($report, qr/^resolv=nameserver \Q@{[ $dns->provider_ip(1) ]}\E$/m,
         'inside: /etc/resolv.conf replaced') or diag($report);
    like($report, qr/^query=TIMEOUT$/m, 'inside: the host loopback is out of reach');
    is($t->read_file('/etc/resolv.conf'), $host_resolv, 'outside: /etc/resolv.conf untouched');
}

# ---------------------------------------------------------------------------
note('fault server');

my $f1 = $dns->start_fault_server;
my $f2 = $dns->start_fault_server;
like($f1, qr/^127\.\d+\.\d+\.\d+:53$/, 'fault server address');

$dns->fault_set('ok.fault.test', { addrs => [ $addr{50}, $addr{51}, '::2' ], ttl => 5 });
$dns->fault_set('sf.fault.test', { rcode => 'SERVFAIL' });
$dns->fault_set('nx.fault.test', { rcode => 'NXDOMAIN' });
$dns->fault_set('ref.fault.test', { rcode => 'REFUSED' });
$dns->fault_set('drop.fault.test', { drop => 1 });
$dns->fault_set('slow.fault.test', { addrs => [ $addr{52} ], delay_ms => 600 });
$dns->fault_set('bad.fault.test', { malformed => 1 });
$dns->fault_set('tc.fault.test', { addrs => [ $addr{53} ], truncate => 1 });
$dns->fault_set('split.fault.test', { addrs => [ $addr{54} ] });
$dns->fault_set('split.fault.test', { rcode => 'SERVFAIL' }, $f2);

is_deeply([ $dns->query($f1, 'ok.fault.test', 'A') ], [ 'NOERROR', [ $addr{50}, $addr{51} ] ],
          'scripted answer');
is_deeply([ $dns->query($f1, 'ok.fault.test', 'AAAA') ], [ 'NOERROR', ['::2'] ],
          'scripted AAAA answer');
is(($dns->query($f1, 'sf.fault.test', 'A'))[0], 'SERVFAIL', 'scripted SERVFAIL');
is(($dns->query($f1, 'nx.fault.test', 'A'))[0], 'NXDOMAIN', 'scripted NXDOMAIN');
is(($dns->query($f1, 'ref.fault.test', 'A'))[0], 'REFUSED', 'scripted REFUSED');
is(($dns->query($f1, 'unscripted.fault.test', 'A'))[0], 'NXDOMAIN', 'unscripted name');
$t0 = time;
is(($dns->query($f1, 'drop.fault.test', 'A', timeout => 0.5))[0], 'TIMEOUT',
   'scripted drop times out');
cmp_ok(time - $t0, '>=', 0.4, '... after the timeout');
is(($dns->query($f1, 'bad.fault.test', 'A', timeout => 0.5))[0], 'MALFORMED',
   'malformed reply is unusable');
is_deeply([ $dns->query($f1, 'tc.fault.test', 'A') ], [ 'NOERROR', [ $addr{53} ] ],
          'truncated UDP answer, full answer over TCP');
is(scalar $dns->fault_queries(name => 'tc.fault.test', proto => 'tcp'), 1,
   '... the client retried over TCP');
is(($dns->query($f1, 'split.fault.test', 'A'))[0], 'NOERROR', 'per-server entry: default');
is(($dns->query($f2, 'split.fault.test', 'A'))[0], 'SERVFAIL', 'per-server entry: override');

{
    # A delayed answer must not hold up other queries.
    my $res = $dns->resolver($f1, timeout => 3);
    $t0 = time;
    my $handle = $res->bgsend('slow.fault.test', 'A');
    is(($dns->query($f1, 'ok.fault.test', 'A'))[0], 'NOERROR', 'fast query during a slow one');
    # the slow answer comes after 0.6 s; a loaded machine needs slack
    cmp_ok(time - $t0, '<', 0.5, '... is not delayed');
    $t->wait_for(sub { !$res->bgbusy($handle) }, 3, 'slow answer');
    my $packet = $res->bgread($handle);
    my $elapsed = time - $t0;
    ok($packet && $packet->header->rcode eq 'NOERROR', 'delayed answer arrives');
    cmp_ok($elapsed, '>=', 0.55, '... after the scripted delay');
}

{
    # hold_ms: a query sent again during the hold is answered with the
    # first one, when the hold ends, not a whole hold after it was sent
    $dns->fault_set('held.fault.test', { addrs => [ $addr{52} ], hold_ms => 1500 });
    my @res = map { $dns->resolver($f1, timeout => 4) } 1, 2;
    $t0 = time;
    my $first = $res[0]->bgsend('held.fault.test', 'A');
    $t->wait_for(sub { time - $t0 >= 0.8 }, 2, 'the second query');
    my $again = $res[1]->bgsend('held.fault.test', 'A');
    $t->wait_for(sub { !$res[1]->bgbusy($again) }, 4, 'the held answer');
    my $packet = $res[1]->bgread($again);
    my $elapsed = time - $t0;
    ok($packet && $packet->header->rcode eq 'NOERROR', 'held answer arrives');
    cmp_ok($elapsed, '>=', 1.45, '... when the hold of the first query ends');
    # a whole hold after the second query would be 2.3 s; slack for load
    cmp_ok($elapsed, '<', 2.2, '... not a whole hold after it was sent');
    $t->wait_for(sub { !$res[0]->bgbusy($first) }, 4, 'the first answer');
    ok($res[0]->bgread($first), '... and the first query is answered too');
}

$dns->fault_set('ok.fault.test', { rcode => 'SERVFAIL' });
is(($dns->query($f1, 'ok.fault.test', 'A'))[0], 'SERVFAIL', 'fault_set takes effect at once');
$dns->fault_clear('ok.fault.test');
is(($dns->query($f1, 'ok.fault.test', 'A'))[0], 'NXDOMAIN', 'fault_clear');
cmp_ok(scalar $dns->fault_queries(name => 'ok.fault.test', server => $f1), '>=', 4,
       'fault_queries counts');

# ---------------------------------------------------------------------------
note('backends');

my $b1 = QQ::Backend->new(t => $t, id => 'b1', addr => $addr{20});
my $b2 = QQ::Backend->new(t => $t, id => 'b2', addr => $addr{21});
$b1->start;
$b2->start;

for my $b ($b1, $b2) {
    my $r = $t->http_get('/x', addr => $b->addr, port => $b->port);
    is($r->{status}, 200, $b->id . ' answers');
    is($r->{content}, $b->id, '... with its id');
    is($r->{headers}{'x-backend'}, $b->id, '... and X-Backend');
}
# a backend logs a request after it has sent the answer: poll
ok($t->wait_for(sub { $b1->requests == 1 }, 5, 'b1 count'),
   'b1 counted one request');
ok($t->wait_for(sub { $b2->requests == 1 }, 5, 'b2 count'),
   'b2 counted one request');

# ---------------------------------------------------------------------------
note('plain nginx');

my $plain_conf = <<'EOF';
%%GLOBALS%%
worker_processes 2;
events {
}
http {
    %%HTTP_GLOBALS%%
    upstream app {
        UPSTREAM_SERVERS
        keepalive 4;
    }
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /host {
            return 200 "host=$host";
        }
    }
}
EOF

sub plain_config {
    my (@backends) = @_;
    my $servers = join "\n        ", map { 'server ' . $_->addr_port . ';' } @backends;
    (my $text = $plain_conf) =~ s/UPSTREAM_SERVERS/$servers/;
    return $text;
}

$t->write_config(plain_config($b1, $b2));
($cfg_ok, $cfg_out) = $t->test_config;
ok($cfg_ok, 'plain configuration is valid') or diag($cfg_out);
$t->start;
ok($t->master_pid, 'nginx started');
my @workers = $t->worker_pids;
is(scalar @workers, 2, 'two workers');

my %seen;
$seen{ $t->http_get('/')->{content} }++ for 1 .. 10;
ok($seen{b1} && $seen{b2} && $seen{b1} + $seen{b2} == 10, 'requests spread over both backends')
    or diag(explain(\%seen));
is($t->http_get('/host', host => 'vhost.example.com')->{content},
   'host=vhost.example.com', 'http_get host option (no name resolution involved)');

# a new connection per request: an idle keepalive connection that an old
# worker closes just as the client reuses it is reset (stock nginx too)
my $load = QQ::Load->start($t, url => 'http://' . $t->addr(1) . ':' . $t->port(1) . '/',
                           concurrency => 2, keepalive => 0);
ok($t->wait_for(sub { $b1->requests + $b2->requests > 60 }, 10, 'load flowing'),
   'load helper sends requests');

my $mark = $t->log_mark;
$t->write_config(plain_config($b2));
ok($t->reload, 'reload under load');
my %new = map { $_ => 1 } $t->worker_pids;
ok(!grep({ $new{$_} } @workers), 'new worker processes after reload');
like($t->error_log_since($mark), qr/reconfiguring/, 'error_log_since sees the reload');
my $b1_after_reload = $b1->requests;
my $b2_after_reload = $b2->requests;
ok($t->wait_for(sub { $b2->requests > $b2_after_reload + 20 }, 5, 'load after reload'),
   'load continues after the reload');
my $stats = $load->stop;
note(explain($stats));
cmp_ok($stats->{sent}, '>', 80, 'load helper counted requests');
is($stats->{failed}, 0, 'no failed requests, even across the reload');
is($stats->{sent}, ($stats->{by_body}{b1} // 0) + ($stats->{by_body}{b2} // 0),
   'every answer came from b1 or b2');
is($b1->requests, $b1_after_reload, 'no request reached b1 after the reload');
is($stats->{sent} + 10 + 2, $b1->requests + $b2->requests,
   'backend counters agree with the load helper');

$t->stop;
ok(!$t->master_pid, 'nginx stopped');
ok(!grep({ QQ::Proc::alive($_) } keys %new), 'workers gone');
is($t->last_exit_status, 0, 'nginx exited with status 0');

# ---------------------------------------------------------------------------
SKIP: {
    skip 'module not built: ' . $t->module_path . ' does not exist (run build.sh)', 4
        unless $t->has_module;

    note('nginx with the module loaded');
    $t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%GLOBALS%%
events {
}
http {
    %%HTTP_GLOBALS%%
    qqfail_provider p1 @{[ $dns->provider_addr(1) ]};
    qqfail_provider p2 @{[ $dns->provider_addr(2) ]};
    upstream app {
        qqfail_server server1.example.com;
    }
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        location / {
            return 200 "module loaded";
        }
        location /app {
            proxy_pass http://app;
        }
    }
}
EOF
    my ($ok, $out) = $t->test_config;
    ok($ok, 'module configuration is valid') or diag($out);
    ok($t->try_start, 'nginx with the module starts') or diag($t->last_start_error);
    is($t->http_get('/')->{content}, 'module loaded', 'and serves');
    $t->stop;
    ok(!$t->master_pid, 'and stops');
}

done_testing();
