#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Forged answers are refused: a lying provider is outvoted under
# qqfail_quorum 2; a forged address outside the CIDR, ASN or country rules
# of qqfail_allow is dropped and the server fails over to its alias.  Under
# steady load, no request ever reaches the attacker's backend.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Backend;
use QQ::MMDB;

my $s = QQ::Topo->new(backends => 2, providers => 2);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $base = $t->base;

my ($b1, $b2) = map { $s->backend($_)->addr } 1, 2;

# the attacker's server, outside 127.A.B.16/29
my $evil = QQ::Backend->new(t => $t, id => 'evil', addr => $t->addr(40),
                            port => $P);
$evil->start;
my $forged = $evil->addr;

# a lying provider
my $pf = $dns->start_fault_server;
$dns->fault_set('server1.example.com', { addrs => [ $forged ], ttl => 1 });
$dns->fault_set('server1.example.net', { addrs => [ $b1 ], ttl => 1 });

# GeoIP2 databases: the good /29 in Germany at AS64500, the rest elsewhere
my $asn = QQ::MMDB::write_asn($t->dir . '/asn.mmdb', {
    "$base.16/29" => [ 64500, 'Good Hosting' ],
    "$base.32/27" => [ 64666, 'Evil "Corp" <b>&' ],
});
my $country = QQ::MMDB::write_country($t->dir . '/country.mmdb', {
    "$base.16/29" => [ 'DE', 'EU' ],
    "$base.32/27" => [ 'KP', 'AS' ],
});

my @figures;

# requests answered by the backends so far, and a load that remembers it
sub served { my $n = 0; $n += $_->requests for $s->backends; return $n }

my %base;

sub start_load {
    my $load = $s->load;
    $base{$load} = served();
    return $load;
}

sub check_load {
    my ($load, $what) = @_;
    # a phase may be over in two seconds: let the load reach a few hundred
    # requests so "0 of N" means something
    $t->wait_for(sub { served() > $base{$load} + 200 }, 30, "$what: load");
    my $r = $load->stop;
    my $to_evil = $r->{by_body}{evil} // 0;
    push @figures, sprintf '%s: %d requests sent, %d reached the forged '
                         . 'backend, %d failed', $what, $r->{sent}, $to_evil,
                           $r->{failed};
    is($to_evil, 0, "$what: 0 of $r->{sent} requests reached the forged "
                    . 'backend');
    is($r->{failed}, 0, "$what: no failed request");
    ok($r->{sent} > 100, "$what: steady load");
}

# quorum 2: p1 and p2 tell the truth, pf lies

$s->nginx(
    providers => $s->providers_conf . "    qqfail_provider pf $pf;\n",
    upstream => "        qqfail_server server1.example.com:$P "
              . "server1.example.net:$P;\n"
              . "        qqfail_quorum 2;\n"
              . "        qqfail_refresh 1s;\n"
              . "        qqfail_timeout 1s;");
$t->start;

my $load = start_load();
ok($t->wait_for(sub { ($s->provider_status('pf') // {})->{disagreements} >= 3 },
                15, 'disagreements'),
   'the lying provider is counted: disagreements '
   . ($s->provider_status('pf')->{disagreements} // 0));
is($s->addresses('server1.example.com'), "$b1:$P",
   'quorum 2: the honest answer is in use');
check_load($load, 'quorum 2, one provider forging server1');

# with fewer than 2 agreeing answers, a changed set is not accepted

$dns->blackhole_provider(2);
my $mark = $t->log_mark;
$load = start_load();

$dns->set_record('server1.example.com', [ $b2 ]);

ok($t->wait_for_log(qr/fewer than 2 providers agree on the addresses of "server1\.example\.com"/, 15, $mark),
   'no quorum: logged');
$t->wait_for(sub { ($s->provider_status('p1') // {})->{queries} > 0
                   && $t->error_log_since($mark) =~ /p2" is down/ }, 15);
is($s->addresses('server1.example.com'), "$b1:$P",
   'no quorum: the current address stays in use');
my $n = () = $t->error_log_since($mark) =~ /fewer than 2 providers agree/g;
is($n, 1, 'logged once for the episode');

$dns->restore_provider(2);
$dns->flush_provider;
ok($t->wait_for(sub { $s->addresses('server1.example.com') eq "$b2:$P" },
                20, 'quorum again'),
   'two providers agree again: the new address is accepted');
check_load($load, 'quorum 2, one provider forging, one silent');

$dns->set_record('server1.example.com', [ $b1 ]);

# qqfail_allow: the forger is the only provider; the forged address is
# dropped and server1 fails over to its alias

for my $case (
    [ 'CIDR rule',    "qqfail_allow $base.16/29;", '' ],
    [ 'ASN rule',     'qqfail_allow asn=64500;',
      "    qqfail_geoip2 $asn;\n" ],
    [ 'country rule', 'qqfail_allow country=de;',
      "    qqfail_geoip2 $country $asn;\n" ],
    )
{
    my ($what, $rule, $geo) = @$case;

    $s->nginx(
        providers => "    qqfail_provider pf $pf;\n",
        http => $geo,
        upstream => "        qqfail_server server1.example.com:$P "
                  . "server1.example.net:$P;\n"
                  . "        $rule\n"
                  . "        qqfail_refresh 1s;\n"
                  . "        qqfail_timeout 1s;");
    $t->stop;
    $mark = $t->log_mark;
    $t->start;
    my $seen = $s->backend(1)->requests;
    $load = start_load();

    ok($t->wait_for(sub {
            my $x = $s->server_status('server1.example.com');
            $x && ($x->{active_name} // '') eq "server1.example.net:$P";
       }, 10, 'alias'), "$what: forged answer dropped, server1 on its alias");

    like($t->error_log_since($mark),
         qr/answer \Q$forged\E for "server1\.example\.com" from provider "pf" refused: outside every "qqfail_allow" rule \(1 address\(es\)\), upstream "app", server "server1\.example\.com:$P"/,
         "$what: the rejection is logged");

    my ($ns) = grep { $_->{name} eq 'server1.example.com' }
               @{ $s->server_status('server1.example.com')->{name_status} };
    ok($ns->{rejected} > 0, "$what: counted ($ns->{rejected})");
    is($ns->{state}, 'failed', "$what: the primary counts as failed");

    $t->wait_for(sub { $s->backend(1)->requests > $seen + 500 }, 30,
                 'steady load');
    check_load($load, "$what, forged answer");
}

# geo fields on the status endpoint (the last case loaded both databases)

my $a = $s->server_status('server1.example.com')->{addresses}[0];
is_deeply($a->{geo}, { country => 'DE', continent => 'EU', asn => 64500,
                       org => 'Good Hosting' },
          'status: country, continent, ASN and organisation');

my $html = $t->http_get('/status?format=html')->{content};
like($html, qr/DE, AS64500 Good Hosting/, 'HTML shows them');

# the forged address is known to the databases, escaped when shown

$dns->fault_set('server1.example.net', { addrs => [ $forged ], ttl => 1 });
$s->nginx(
    providers => "    qqfail_provider pf $pf;\n",
    http => "    qqfail_geoip2 $country $asn;\n",
    upstream => "        qqfail_server server1.example.net:$P;\n"
              . "        qqfail_refresh 1s;");
ok($t->reload, 'reload without allow rules');
ok($t->wait_for(sub { $s->addresses('server1.example.net') eq "$forged:$P" },
                10, 'forged'), 'without rules the address is used');
$a = $s->server_status('server1.example.net')->{addresses}[0];
is($a->{geo}{org}, 'Evil "Corp" <b>&', 'hostile organisation name intact '
                                       . 'in JSON');
like($t->http_get('/status?format=html')->{content},
     qr/AS64666 Evil &quot;Corp&quot; &lt;b&gt;&amp;/, 'and escaped in HTML');

# a replaced database is picked up by a reload

QQ::MMDB::write_asn($t->dir . '/asn.mmdb', {
    "$base.32/27" => [ 64777, 'Renamed' ],
});
ok($t->reload, 'reload after the ASN database was replaced');
ok($t->wait_for(sub {
        ($s->server_status('server1.example.net')->{addresses}[0]{geo}{asn}
         // 0) == 64777 }, 10, 'new asn'),
   'the new database is used');

# IPv6 rules

# (an IPv4-mapped IPv6 answer is matched as its IPv4 address: by the
# IPv4 rules, as nginx's ngx_cidr_match() does)

$dns->fault_set('v6.test', { addrs => [ $b1, '::1', '2001:db8::7',
                                        "::ffff:$b2", "::ffff:$forged" ],
                             ttl => 1 });
$s->nginx(
    providers => "    qqfail_provider pf $pf;\n",
    upstream => "        qqfail_server v6.test:$P;\n"
              . "        qqfail_allow $base.16/29 ::1/128;\n"
              . "        qqfail_refresh 1s;");
ok($t->reload, 'reload with IPv6 rules');
my $v6 = join ' ', sort "$b1:$P", "[::1]:$P", "[::ffff:$b2]:$P";
ok($t->wait_for(sub { $s->addresses('v6.test') eq $v6 }, 10, 'v6'),
   'IPv6: ::1 allowed by ::1/128, ::ffff:b2 by the IPv4 rule; '
   . '2001:db8::7 and ::ffff:forged dropped')
    or diag $s->addresses('v6.test');

# no quorum on a better name does not hold the server back: names a, b, c;
# on b; then a answers without quorum and b fails: the server goes to c

my @f = ($pf, map { $dns->start_fault_server } 1 .. 2);
$dns->fault_reset;
$dns->fault_set('a.test', { rcode => 'SERVFAIL' });
$dns->fault_set('b.test', { addrs => [ $b1 ], ttl => 1 });
$dns->fault_set('c.test', { addrs => [ $b2 ], ttl => 1 });

$s->nginx(
    providers => join('', map { "    qqfail_provider f$_ $f[$_];\n" } 0 .. 2),
    upstream => "        qqfail_server a.test:$P b.test:$P c.test:$P;\n"
              . "        qqfail_quorum 2;\n"
              . "        qqfail_refresh 1s;\n"
              . "        qqfail_timeout 500ms;");
ok($t->reload, 'reload: three scripted providers, quorum 2');
ok($t->wait_for(sub {
        (($s->server_status('a.test') // {})->{active_name} // '')
            eq "b.test:$P" }, 10, 'on b'), 'on the first alias b');

$dns->fault_set('a.test', { addrs => [ $forged ], ttl => 1 }, $f[0]);
$dns->fault_set('b.test', { rcode => 'SERVFAIL' });

ok($t->wait_for(sub {
        (($s->server_status('a.test') // {})->{active_name} // '')
            eq "c.test:$P" }, 15, 'on c'),
   'a without quorum, b failing: the server moves on to c');
is($s->addresses('a.test'), "$b2:$P", 'with c\'s address');

note $_ for @figures;

done_testing();
