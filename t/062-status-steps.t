#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The status page of a large configuration (6,000 servers) is rendered in
# bounded steps: proxied requests on the same worker are answered while it
# renders, not after; a client that reads the page slowly costs the worker
# one step's output, not the whole page; the page arrives complete and
# unchanged.  ?view=summary gives the counts per upstream in every format.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { rcode => 'NXDOMAIN' });

my $N = 6000;

# IP literals: no lookup, one address each; never connected to
sub literal {
    my ($i) = @_;
    return sprintf '127.%d.%d.%d', 100 + int($i / 65536),
                   int($i / 256) % 256, $i % 256;
}

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    http => "    qqfail_zone 32m;\n"
          . "    upstream big {\n"
          . join('', map { '        qqfail_server ' . literal($_) . ":$P;\n" }
                         1 .. $N)
          . "    }\n",
    upstream => "        qqfail_server gone.example.com:$P $b1:$P;\n"
              . "        qqfail_timeout 500ms;\n");
$t->start;

ok($t->wait_for(sub { $s->body eq 'b1' }, 20, 'proxying'), 'proxying');

my ($worker) = $t->worker_pids;

sub rss_kb {
    open my $fh, '<', "/proc/$worker/status" or return 0;
    while (<$fh>) {
        return $1 if /^VmRSS:\s+(\d+)/;
    }
    return 0;
}

# a raw HTTP/1.0 request: the response ends when the connection closes
sub send_request {
    my ($path, $rcvbuf) = @_;
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $rcvbuf) or die "SO_RCVBUF: $!"
        if $rcvbuf;
    my $to = Socket::pack_sockaddr_in($t->port(1), Socket::inet_aton($t->addr(1)));
    connect($sock, $to) or die "connect: $!";
    $sock->autoflush(1);
    print {$sock} "GET $path HTTP/1.0\r\nHost: " . $t->addr(1) . "\r\n\r\n";
    return $sock;
}

sub read_all {
    my ($sock, $deadline) = @_;
    my $data = '';
    my $sel = IO::Select->new($sock);
    while (time < $deadline) {
        next unless $sel->can_read($deadline - time);
        my $n = sysread($sock, $data, 65536, length $data);
        last unless $n;
    }
    return $data;
}

sub body_of {
    my ($response) = @_;
    my ($head, $body) = split /\r\n\r\n/, $response, 2;
    return ($head // '', $body // '');
}

# the page as a whole, read at once
my $r = $t->http_get('/status?format=prometheus', timeout => 60);
is($r->{status}, 200, 'the Prometheus page of 6,000 servers');
my $full = $r->{content};
my @addrs = $full =~ /^qqfail_server_addresses\{/mg;
is(scalar @addrs, $N + 1, 'it shows every server once per family');
like($full, qr/^qqfail_address_backup\{upstream="app",server="gone\.example\.com:\d+",address="[\d.:]+"\} \d+\n\z/m,
     'and ends with the last sample of the last family');
is($r->{headers}{'transfer-encoding'}, 'chunked',
   'a page of several steps is sent chunked');

# a slow reader: a small receive buffer, 1 KB read, then nothing

my $rss0 = rss_kb();
my $slow = send_request('/status?format=prometheus', 4096);

my $first = '';
my $sel = IO::Select->new($slow);
my $deadline = time + 30;
while (length $first < 1024 && time < $deadline) {
    last unless $sel->can_read($deadline - time);
    sysread($slow, $first, 1024 - length $first, length $first) or last;
}
like($first, qr{^HTTP/1\.1 200}, 'the slow reader got the start of the page');

# the worker serves proxied requests while the page waits for the reader
my $served = 0;
for (1 .. 5) {
    $served++ if $s->body eq 'b1';
}
is($served, 5, 'proxied requests are answered while the page is unread');

my $grown = rss_kb() - $rss0;
ok($grown < 8192,
   "the worker holds about one step of the page for a slow reader, "
   . "not the page (RSS +$grown kB, the page is " . int(length($full) / 1024)
   . ' kB)');

my ($head, $body) = body_of($first . read_all($slow, time + 60));
close $slow;
(my $norm_full = $full) =~ s/[0-9]+/N/g;
(my $norm_slow = $body) =~ s/[0-9]+/N/g;
ok($norm_slow eq $norm_full,
   'read slowly, the page is complete and the same ('
   . length($body) . ' bytes)');

# a client that goes away in the middle: the worker carries on

for my $q ('format=json', 'format=prometheus', 'format=html') {
    my $gone = send_request("/status?$q", 4096);
    my $got = '';
    sysread($gone, $got, 1024) if IO::Select->new($gone)->can_read(30);
    close $gone;
}
is($s->body, 'b1', 'clients that close in the middle of a page: proxying goes on');
$r = $t->http_get('/status?format=json', method => 'HEAD');
ok($r->{status} == 200 && ($r->{content} // "") eq '', 'HEAD of a large page');
ok(JSON::PP::decode_json($t->http_get('/status', timeout => 60)->{content}),
   'the JSON page of 6,000 servers parses');

# a proxied request sent right after the status request is answered in
# a small part of the page's time: the render does not hold the worker

my (@ratio, @lat, @page, $before);
$before = 0;

for my $round (1 .. 5) {
    my $t0 = time;
    my $a = send_request('/status?format=prometheus');
    my $tb = time;
    my $b = send_request('/');

    my %buf = ($a => '', $b => '');
    my %done;
    my $sel = IO::Select->new($a, $b);
    my $deadline = time + 60;

    while ($sel->count && time < $deadline) {
        for my $h ($sel->can_read($deadline - time)) {
            my $n = sysread($h, $buf{$h}, 65536, length $buf{$h});
            next if $n;
            $done{$h} = time;
            $sel->remove($h);
            close $h;
        }
    }

    my ($ha, $ba) = body_of($buf{$a});
    my ($hb, $bb) = body_of($buf{$b});

    unless ($done{$a} && $done{$b} && $bb eq 'b1' && length $ba > 1000000) {
        fail("round $round: both responses complete");
        next;
    }

    $before++ if $done{$b} < $done{$a};
    push @lat, ($done{$b} - $tb) * 1000;
    push @page, ($done{$a} - $t0) * 1000;
    push @ratio, ($done{$b} - $tb) / ($done{$a} - $t0);
}

my @sorted = sort { $a <=> $b } @ratio;
my $median = $sorted[int(@sorted / 2)] // 1;

is($before, 5, 'in every round the proxied response came before the page '
               . 'was complete');
ok($median < 0.25,
   sprintf('a proxied request waits a small part of the page time: '
           . 'median %.2f (proxied %s ms; page %s ms)', $median,
           join(', ', map { sprintf '%.1f', $_ } @lat),
           join(', ', map { sprintf '%.0f', $_ } @page)));

# ?view=summary

ok($t->wait_for(sub {
        my $st = $t->get_json('/status?view=summary');
        my ($app) = grep { $_->{name} eq 'app' } @{ $st->{upstreams} || [] };
        $app && $app->{on_alias} == 1;
    }, 20, 'app on its alias'), 'the summary counts a server on its alias');

my ($sum, $res) = $t->get_json('/status?view=summary');
is($res->{status}, 200, 'summary: 200');
ok(defined $res->{headers}{'content-length'}
   && $res->{headers}{'content-length'} < 4096,
   "summary: small, with a Content-Length ($res->{headers}{'content-length'} bytes)");
is_deeply([ map { $_->{name} } @{ $sum->{upstreams} } ], [ 'big', 'app' ],
          'summary: every upstream in order');
my ($big) = grep { $_->{name} eq 'big' } @{ $sum->{upstreams} };
is_deeply($big, { name => 'big', context => 'http', servers => $N,
                  sources => { none => 0, live => 0, stale => 0,
                               state_file => 0, literal => $N },
                  on_alias => 0, addresses => $N },
          'summary: the big upstream in counts');
my ($app) = grep { $_->{name} eq 'app' } @{ $sum->{upstreams} };
is_deeply($app, { name => 'app', context => 'http', servers => 1,
                  sources => { none => 0, live => 0, stale => 0,
                               state_file => 0, literal => 1 },
                  on_alias => 1, addresses => 1 },
          'summary: app in counts, on its alias');
is($sum->{providers}[0]{name}, 'pf', 'summary: the providers as on the full page');
ok(exists $sum->{zone}{used} && exists $sum->{leader}{pid},
   'summary: the zone and the leader');
like($sum->{events_total}, qr/^\d+$/, 'summary: the number of events');

my $one = $t->get_json('/status?view=summary&upstream=app');
is_deeply([ map { $_->{name} } @{ $one->{upstreams} } ], [ 'app' ],
          'summary with ?upstream=: that upstream only');

$r = $t->http_get('/status?view=summary&format=prometheus');
my $prom = $r->{content};
like($prom, qr/^qqfail_upstream_servers\{upstream="big"\} $N$/m,
     'summary, Prometheus: servers per upstream');
like($prom, qr/^qqfail_upstream_sources\{upstream="big",source="literal"\} $N$/m,
     'summary, Prometheus: servers by source');
like($prom, qr/^qqfail_upstream_on_alias\{upstream="app"\} 1$/m,
     'summary, Prometheus: servers on an alias');
like($prom, qr/^qqfail_upstream_addresses\{upstream="big"\} $N$/m,
     'summary, Prometheus: addresses');
like($prom, qr/^qqfail_provider_up\{provider="pf"\} 1$/m,
     'summary, Prometheus: the provider families');
like($prom, qr/^qqfail_events_total \d+$/m, 'summary, Prometheus: events');
unlike($prom, qr/^qqfail_server_/m, 'summary, Prometheus: no server samples');

SKIP: {
    skip 'promtool is not installed', 1 unless -x '/usr/bin/promtool';
    $t->write_file('summary.txt', $prom);
    my $out = qx{/usr/bin/promtool check metrics < @{[ $t->dir ]}/summary.txt 2>&1};
    is($? >> 8, 0, 'promtool check metrics accepts the summary')
        or diag($out);
}

$r = $t->http_get('/status?view=summary&format=html');
like($r->{content}, qr{<tr><td>big</td><td>$N</td><td>0</td><td>$N</td>},
     'summary, HTML: a table of counts');

is($t->http_get('/status?view=bogus')->{status}, 400,
   'an unknown view: 400');

done_testing;
