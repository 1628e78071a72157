#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The status page narrowed to one upstream: ?upstream=NAME in all three
# formats, the name percent-escaped in the query string, 404 for a name no
# upstream has.  Providers, zone and events stay on the page.

use strict;
use warnings;

use Test::More;
use JSON::PP ();

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 60 });

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    http => "    upstream \"my other\" {\n"
          . join('', map { "        qqfail_server o$_.example.com:$P;\n" }
                     1 .. 3)
          . "    }\n",
    upstream => join('', map { "        qqfail_server a$_.example.com:$P;\n" }
                         1 .. 20));

$t->start;
ok($t->wait_for(sub {
        my $st = $s->status or return 0;
        2 == grep { !grep { !@{ $_->{addresses} } } @{ $_->{servers} } }
                  @{ $st->{upstreams} };
    }, 15, 'all live'), 'both upstreams resolve');

my $all = $t->http_get('/status')->{content};
my $one = $t->http_get('/status?upstream=my%20other');
is($one->{status}, 200, '?upstream=my%20other answers');

my $st = JSON::PP::decode_json($one->{content});
is(join(',', map { $_->{name} } @{ $st->{upstreams} }), 'my other',
   'JSON: only that upstream');
is(scalar @{ $st->{upstreams}[0]{servers} }, 3, 'JSON: with its 3 servers');
ok(@{ $st->{providers} } == 1 && $st->{zone}{size},
   'JSON: providers and zone stay');
ok(length($one->{content}) < length($all) / 2,
   'JSON: a fraction of the whole page (' . length($one->{content})
   . ' of ' . length($all) . ' bytes)');

my $prom = $t->http_get('/status?format=prometheus&upstream=app')->{content};
ok($prom =~ /qqfail_server_addresses\{upstream="app"/
   && $prom !~ /upstream="my other"/, 'Prometheus: only that upstream');
like($prom, qr/^qqfail_provider_up\{provider="pf"\} 1$/m,
     'Prometheus: providers stay');

my $html = $t->http_get('/status?format=html&upstream=app')->{content};
ok($html =~ /<h2>Upstream app/ && $html !~ /Upstream my other/,
   'HTML: only that upstream');

is($t->http_get('/status?upstream=nope')->{status}, 404,
   'a name no upstream has: 404');

done_testing();
