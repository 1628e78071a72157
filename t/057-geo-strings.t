#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# GeoIP2 data is input like any other: a country or continent code that is
# not two letters is not shown (nor matched), and an organisation name too
# long for its field is cut at a character boundary.  Every format of the
# status page stays valid.

use strict;
use warnings;

use Test::More;
use Encode ();
use JSON::PP ();

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::MMDB;

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my ($b1, $b2) = map { $s->backend($_)->addr } 1, 2;

my $long = "\xc3\xa9" x 60;                          # 120 bytes of UTF-8

QQ::MMDB::write_country($t->dir . '/country.mmdb', {
    "$b1/32" => [ '"<', '1' ],
    "$b2/32" => [ 'de', 'eu' ],
});
QQ::MMDB::write_asn($t->dir . '/asn.mmdb', {
    "$b1/32" => [ 64500, Encode::decode('UTF-8', $long) ],
    "$b2/32" => [ 64501, 'Good "Hosting" <b>' ],
});

my $pf = $dns->start_fault_server;
$dns->fault_set('server1.example.com', { addrs => [ $b1 ], ttl => 60 });
$dns->fault_set('server2.example.com', { addrs => [ $b2 ], ttl => 60 });

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    http => "    qqfail_geoip2 " . $t->dir . "/country.mmdb "
          . $t->dir . "/asn.mmdb;",
    upstream => "        qqfail_server server1.example.com:$P;\n"
              . "        qqfail_server server2.example.com:$P;");

$t->start;
ok($t->wait_for(sub { $s->addresses('server1.example.com')
                      && $s->addresses('server2.example.com') }, 10, 'live'),
   'both servers resolve');

my $raw = $t->http_get('/status')->{content};
my $st = eval { JSON::PP->new->utf8->decode($raw) };
ok($st, 'the JSON is valid') or diag $@;

my %geo = map { $_->{address} => $_->{geo} }
          map { @{ $_->{addresses} } }
          @{ ($st->{upstreams} || [])->[0]{servers} || [] };

my $g1 = $geo{"$b1:$P"} || {};
my $g2 = $geo{"$b2:$P"} || {};
ok(!defined $g1->{country} && !defined $g1->{continent},
   'codes that are not two letters are not shown');
is($g2->{country}, 'DE', 'a lowercase country code is shown upper case');
is($g2->{continent}, 'EU', 'so is the continent');

my $org = Encode::encode('UTF-8', $g1->{org} // '');
ok(length($org) > 0 && length($org) < length($long)
   && index($long, $org) == 0 && length($org) % 2 == 0,
   'a long organisation is cut at a character boundary ('
   . length($org) . ' bytes)');
is($g2->{org}, 'Good "Hosting" <b>', 'quotes and markup round-trip in JSON');

for my $f (qw(prometheus html)) {
    my $b = $t->http_get("/status?format=$f")->{content} // '';
    ok(eval { Encode::decode('UTF-8', my $c = $b, Encode::FB_CROAK); 1 },
       "$f: valid UTF-8");
}

my $html = $t->http_get('/status?format=html')->{content};
unlike($html, qr/<b>|"<</, 'HTML: no raw markup from the databases');

done_testing();
