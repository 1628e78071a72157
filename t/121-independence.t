#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The independence check (issue 17): for every server with aliases the
# leader learns each name's zone (SOA), the zone's name servers (NS) and
# their addresses through the providers, and reports what the names share.
# Six zones, each served by its own nsd:
#
#   example.com       NS ns.example.com       (registrar a's address)
#   example.net       NS ns.example.net       (registrar b's)
#   example.org       NS ns.example.org       (registrar c's)
#   example.info      NS ns.example.com       the same host as example.com
#   example.biz       NS ns1.example.biz      registrar c's address, as
#                                             ns.example.org
#   dept.example.com  NS ns.dept.example.com  (registrar f's)
#
#   example.xyz       NS ns.example.xyz       (registrar g's, stopped)
#
# and eight servers: s1 (.com, .org) independent; s2 (.com, .info) a
# shared name server host; s3 (.org, .biz) a shared name server address;
# s4 (example.com, dept.example.com) one registered domain; s5 (two names
# in example.com) one zone; s6 (.com, .net) independent, with the soft
# note that Verisign runs both TLDs; s7 (.com, .xyz) an unknown zone, its
# registrar down; s8 (a name and an IP literal) nothing to check.  The
# status page shows each in JSON, Prometheus and HTML, the log has each
# finding once at warn, a stream upstream's server is checked as an http
# one is, a failover and a reload check the server again without logging
# its findings again, and the check never changes traffic.

use strict;
use warnings;

use Test::More;
use JSON::PP ();

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::DNS;
use QQ::Topo;

if (my @missing = QQ::DNS::missing_tools()) {
    plan skip_all => "missing @missing (./build.sh installs them)";
}

my %zones = (a => 'example.com', b => 'example.net', c => 'example.org',
             d => 'example.info', e => 'example.biz',
             f => 'dept.example.com', g => 'example.xyz');

my $s0 = QQ::Topo->new(backends => 3, providers => 2, zones => \%zones,
                       ns => { d => [ [ 'ns.example.com', undef ] ],
                               e => [ [ 'ns1.example.biz', 'auth:c' ] ] },
                       records => {});
my ($t, $dns) = ($s0->t, $s0->dns);
my $P = $s0->bport;
my @b = map { $s0->backend($_)->addr } 1 .. 3;

my %names = (
    s1 => [ 's1.example.com', 's1.example.org' ],
    s2 => [ 's2.example.com', 's2.example.info' ],
    s3 => [ 's3.example.org', 's3.example.biz' ],
    s4 => [ 's4.example.com', 's4.dept.example.com' ],
    s5 => [ 's5.example.com', 's5b.example.com' ],
    s6 => [ 's6.example.com', 's6.example.net' ],
    s7 => [ 's7.example.com', 's7.example.xyz' ],
);
my @servers = sort keys %names;

# s1, s4, s7 on b1; s2, s5 on b2; s3, s6 on b3
my %backend = (s1 => 0, s2 => 1, s3 => 2, s4 => 0, s5 => 1, s6 => 2,
               s7 => 0);
$dns->set_records({ map { my $id = $_;
                          map { ($_ => [ $b[ $backend{$id} ] ]) }
                              @{ $names{$id} } } @servers });
$dns->stop_auth('g');

my $tune = "        qqfail_refresh 1s;\n"
         . "        qqfail_timeout 1s;\n";
my $lit = $s0->backend(1)->addr . ":$P";
my $stream = $t->has_stream;
my $sport = $t->port('stream');

# a stream upstream with s2's names: checked on its own
$s0->nginx(
    main => $stream ? "%%LOAD_STREAM%%\n"
                    . "stream {\n    upstream sapp {\n"
                    . "        qqfail_server s2.example.com:$P "
                    . "s2.example.info:$P;\n$tune    }\n"
                    . "    server {\n        listen %%ADDR_1%%:$sport;\n"
                    . "        proxy_pass sapp;\n    }\n}\n" : '',
    upstream => join('', map {
        "        qqfail_server " . join(' ', map { "$_:$P" } @{ $names{$_} })
        . ";\n" } @servers)
      . "        qqfail_server server1.example.com:$P;\n"
      . "        qqfail_server s8.example.com:$P $lit;\n"
      . $tune);
$dns->set_records({ 's8.example.com' => [ $b[0] ] });

$t->start;

sub server {
    my ($first) = @_;
    return $s0->server_status($first) // {};
}

sub report { return server($names{ $_[0] }[0])->{independence} }

ok($t->wait_for(sub { !grep { !(report($_) // {})->{checked} } @servers },
                30, 'every server checked'),
   'every server with aliases is checked soon after the start');

my %want = (
    s1 => [ 1, [] ],
    s2 => [ 0, [ [ 'shared_ns_host', 'ns.example.com' ] ] ],
    s3 => [ 0, [ [ 'shared_ns_address', $dns->auth_ip('c') ] ] ],
    s4 => [ 0, [ [ 'same_registered_domain', 'example.com' ] ] ],
    s5 => [ 0, [ [ 'same_zone', 'example.com' ] ] ],
    s6 => [ 1, [ [ 'same_tld_operator', 'com, net: Verisign' ] ] ],
    # the providers cannot reach example.xyz's name server: SERVFAIL, or a
    # timeout when they take longer than qqfail_timeout to say so
    s7 => [ 0, [ [ 'unknown_zone', qr/^(servfail|timeout)$/ ] ] ],
);

for my $id (@servers) {
    my $r = report($id);
    my ($independent, $findings) = @{ $want{$id} };
    is($r->{independent} ? 1 : 0, $independent,
       "$id (@{ $names{$id} }): \"independent\": "
       . ($independent ? 'true' : 'false'));
    my @got = map { [ $_->{kind}, $_->{detail} ] } @{ $r->{findings} };
    # a detail given as a pattern: the finding's own detail when it matches
    $_->[1] = $got[0][1] for grep { ref $_->[1] eq 'Regexp' && @got
                                    && $got[0][1] =~ $_->[1] } @$findings;
    is_deeply(\@got, $findings, "$id: findings "
              . join(', ', map { "$_->[0] ($_->[1])" } @$findings))
        or diag explain $r;
    # an unknown zone names the name whose zone it is, the others both
    is_deeply([ map { @{ $_->{names} } } @{ $r->{findings} } ],
              [ map { $_->[0] eq 'unknown_zone' ? $names{$id}[1]
                                                 : @{ $names{$id} } }
                    @$findings ],
              "$id: the findings name the names concerned") if @$findings;
}

is(server('server1.example.com')->{independence}, undef,
   'a server without aliases: "independence": null');
is(server('s8.example.com')->{independence}, undef,
   'a name and an IP literal, nothing to compare: "independence": null');

SKIP: {
    skip 'no stream module', 2 unless $stream;
    my $r = ($s0->server_status('s2.example.com', 'sapp') // {})
            ->{independence};
    ok($t->wait_for(sub {
            $r = ($s0->server_status('s2.example.com', 'sapp') // {})
                 ->{independence};
            $r && $r->{checked} }, 20, 'the stream server checked'),
       'a stream upstream\'s server is checked');
    is_deeply([ map { [ $_->{kind}, $_->{detail} ] } @{ $r->{findings} } ],
              $want{s2}[1], 'stream: s2 shares a name server host')
        or diag explain $r;
}

# the status JSON of a server flagged dependent and of an independent one
my $json = JSON::PP->new->canonical;
note "$_: \"independence\": " . $json->encode(report($_)) for qw(s2 s1);

# Prometheus and HTML

my $prom = $t->http_get('/status?format=prometheus')->{content};
for my $id (@servers) {
    my $v = $want{$id}[0];
    like($prom, qr/^qqfail_server_independent\{upstream="app",server="\Q$names{$id}[0]\E:$P[^"]*"\} $v$/m,
         "prometheus: $id qqfail_server_independent $v");
}
unlike($prom, qr/^qqfail_server_independent\{[^}]*server="server1\.example\.com/m,
       'prometheus: no sample for a server without aliases');

my $html = $t->http_get('/status?format=html')->{content};
like($html, qr/<th>Independence<\/th>/, 'html: the column');
like($html, qr/<td class="failed">not independent<br><small>shared_ns_host: ns\.example\.com<\/small><\/td>/,
     'html: s2 not independent, shared name server host');
like($html, qr/<td class="failed">not independent<br><small>shared_ns_address: \Q$want{s3}[1][0][1]\E<\/small>/,
     'html: s3, shared name server address');
like($html, qr/<td class="ok">independent<\/td>/, 'html: s1 independent');
like($html, qr/<td class="ok">independent<br><small>same_tld_operator: com, net: Verisign<\/small>/,
     'html: s6 independent, with the note on the TLD operator');
like($html, qr/<td class="none">no aliases<\/td>/, 'html: server1, no aliases');

# the log: each finding once, at warn

# upstream "app" (the stream upstream logs its own)
sub logged {
    my ($kind) = @_;
    my @l = $t->error_log
            =~ /\[warn\].*upstream "app" .*(are not independent: \Q$kind\E .*)/g;
    return scalar @l;
}

for my $kind (qw(shared_ns_host shared_ns_address same_registered_domain
                 same_zone same_tld_operator unknown_zone)) {
    is(logged($kind), 1, "log: $kind once at warn");
}
like($t->error_log,
     qr/\[warn\].*upstream "app" server "s2\.example\.com:$P,s2\.example\.info:$P": names "s2\.example\.com", "s2\.example\.info" are not independent: shared_ns_host \(ns\.example\.com\)/,
     'log: the upstream, the server, the names, what they share');

# traffic is unchanged: every server on its first name, no request fails

ok(!grep({ (server($names{$_}[0])->{active_name} // '') ne "$names{$_}[0]:$P" }
         @servers), 'every server on its first name');
my %c = %{ $s0->spread(30) };
is_deeply([ sort keys %c ], [ 'b1', 'b2', 'b3' ],
          'requests succeed on b1, b2, b3') or diag explain \%c;

# a failover checks the server again, its findings are not logged again

my $checked = report('s2')->{checked};
# "checked" is in seconds: a new check must come in a later second
$t->wait_for(sub { time >= $checked + 1 }, 3, 'a second after the check');
$dns->del_record('s2.example.com');
ok($t->wait_for(sub { (server('s2.example.com')->{active_name} // '')
                      eq "s2.example.info:$P" }, 20, 's2 on its alias'),
   's2 fails over to s2.example.info');
ok($t->wait_for(sub { (report('s2')->{checked} // 0) > $checked }, 20,
                's2 checked again'),
   'the failover checks s2 again');
is(report('s2')->{independent} ? 1 : 0, 0, 's2 still not independent');
is(logged('shared_ns_host'), 1, 'log: the same finding is not logged again');

my %c2 = %{ $s0->spread(30) };
is_deeply([ sort keys %c2 ], [ 'b1', 'b2', 'b3' ],
          'requests still succeed') or diag explain \%c2;

# a reload: the new leader checks every server at once; the reports kept
# in the zone make nothing new to log

my %before = map { ($_ => report($_)->{checked}) } @servers;
my $last = (sort { $b <=> $a } values %before)[0];
$t->wait_for(sub { time >= $last + 1 }, 3, 'a second after the checks');
ok($t->reload, 'reload');
ok($t->wait_for(sub { !grep { (report($_)->{checked} // 0) <= $before{$_} }
                          @servers }, 30, 'every server checked again'),
   'after the reload every server is checked again');
is_deeply({ map { ($_ => report($_)->{independent} ? 1 : 0) } @servers },
          { map { ($_ => $want{$_}[0]) } @servers },
          'the same verdicts after the reload');
for my $kind (qw(shared_ns_host shared_ns_address same_registered_domain
                 same_zone same_tld_operator unknown_zone)) {
    is(logged($kind), 1, "log after the reload: $kind still logged once");
}

done_testing;
