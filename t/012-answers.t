#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Answers that are not answers to the question are refused: a provider
# that sends records for another name (an unrelated CNAME plus its A
# records), a query instead of a response, another question than the one
# asked, a name longer than 255 octets, or a CNAME chain longer than 8
# links.  A good provider answers the same name 100 ms later.  Under steady
# load no request reaches the address the bad answers point to, the bad
# provider's failures are counted on the status page, and a good CNAME
# chain of 8 links is still followed.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Backend;

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;

my ($b1, $b2) = map { $s->backend($_)->addr } 1, 2;

# the attacker's server, where every bad answer points
my $evil = QQ::Backend->new(t => $t, id => 'evil', addr => $t->addr(40),
                            port => $P);
$evil->start;
my $forged = $evil->addr;

# pf answers first and is the one that goes wrong; pg answers 100 ms later
my $pf = $dns->start_fault_server;
my $pg = $dns->start_fault_server;

$dns->fault_set('victim.test', { addrs => [ $b1 ], ttl => 1 }, $pf);
$dns->fault_set('victim.test', { addrs => [ $b1 ], ttl => 1,
                                 delay_ms => 100 }, $pg);

$s->nginx(
    providers => "    qqfail_provider pf $pf;\n"
               . "    qqfail_provider pg $pg;\n",
    upstream => "        qqfail_server victim.test:$P;\n"
              . "        qqfail_refresh 1s;\n"
              . "        qqfail_timeout 1s;");

my @figures;

sub served { my $n = 0; $n += $_->requests for $s->backends; return $n }

sub failures {
    my $p = $s->provider_status('pf') or return 0;
    # refused by the parser (bad_answer), or nothing left once the records
    # of other names are ignored (other: an empty answer), or dropped by
    # c-ares before the parser (timeout)
    return $p->{failures}{bad_answer} + $p->{failures}{other}
         + $p->{failures}{timeout};
}

sub check_load {
    my ($load, $base, $what, $want) = @_;
    $t->wait_for(sub { served() > $base + 200 }, 30, "$what: load");
    my $r = $load->stop;
    my $to_evil = $r->{by_body}{evil} // 0;
    my $to_want = $r->{by_body}{$want} // 0;
    push @figures, sprintf '%s: %d requests sent, %d reached %s, '
                         . '%d the forged backend, %d failed', $what,
                           $r->{sent}, $to_want, $want, $to_evil,
                           $r->{failed};
    is($to_evil, 0, "$what: 0 of $r->{sent} requests reached the forged "
                    . 'backend');
    is($r->{failed}, 0, "$what: no failed request");
    is($to_want, $r->{sent}, "$what: every request reached $want");
}

# [ what, spec, what the log says (our parser), or undef: the answer
#   carries no address for the name asked (NOERROR, no data), or c-ares
#   drops it already (another question: the query times out) ]

my @bad = (
    [ 'unrelated CNAME and A records for another name',
      { owner => 'elsewhere.test', cname => [ 'evil.test' ],
        addrs => [ $forged ] },
      undef ],
    [ 'QR bit clear',
      { qr => 0, addrs => [ $forged ] },
      'not a response \(QR bit clear\)' ],
    [ 'question name differs',
      { question => { name => 'evil.test' }, owner => 'evil.test',
        addrs => [ $forged ] },
      undef ],
    [ 'question type differs',
      { question => { type => 'AAAA' }, addrs => [ $forged ] },
      undef ],
    [ 'question class differs',
      { question => { class => 'CH' }, addrs => [ $forged ] },
      undef ],
    [ 'name longer than 255 octets',
      { longname => 1, addrs => [ $forged ] },
      'name longer than 255 octets', 121 ],
    [ 'CNAME chain of 9 links',
      { cname => [ map { "c$_.chain.test" } 1 .. 9 ],
        addrs => [ $forged ] },
      'CNAME chain too long' ],
);

# the c-ares version the module was built with, as 134 for 1.34
sub cares_version {
    open my $fh, '<', '/usr/include/ares_version.h' or return 0;
    while (my $line = <$fh>) {
        return $1 * 100 + $2
            if $line =~ /^#define\s+ARES_VERSION_STR\s+"(\d+)\.(\d+)/;
    }
    return 0;
}

$t->start;

ok($t->wait_for(sub { $s->addresses('victim.test') ne '' }, 10, 'resolved'),
   'resolved at start');

for my $c (@bad) {
    my ($what, $spec, $log, $cares) = @$c;

    $dns->fault_set('victim.test', { %$spec, ttl => 1 }, $pf);

    my $mark = $t->log_mark;
    my $asked = $dns->fault_queries(name => 'victim.test', server => $pf);
    my $failed = failures();
    my $base = served();
    my $load = $s->load;

    ok($t->wait_for(sub {
            $dns->fault_queries(name => 'victim.test', server => $pf)
                >= $asked + 4 }, 15, "$what: asked"),
       "$what: the bad provider is asked again and again");

    is($s->addresses('victim.test'), "$b1:$P",
       "$what: the good provider's address is in use");

    ok($t->wait_for(sub { failures() >= $failed + 2 }, 10, "$what: counted"),
       "$what: counted on the status page (bad_answer + other + timeout: "
       . failures() . ')');
    like($s->provider_status('pf')->{last_error},
         qr/^(bad_answer|other|timeout) for victim\.test$/, "$what: last error");

    if (defined $log && $cares && cares_version() >= $cares) {
        # from this c-ares on, the library parses every message before the
        # module does and refuses this one itself (EBADRESP): the module
        # logs the kind of failure only
        like($t->error_log_since($mark),
             qr/provider "pf" failed for "victim\.test" \(bad_answer\)/,
             "$what: logged (refused by c-ares)");

    } elsif (defined $log) {
        like($t->error_log_since($mark),
             qr/A answer for "victim\.test" from provider "pf" refused: $log/,
             "$what: logged");
    }

    check_load($load, $base, $what, 'b1');
}

# a good chain of 8 links is followed: pf answers first, its answer wins

$dns->fault_set('victim.test', { cname => [ map { "c$_.good.test" } 1 .. 8 ],
                                 addrs => [ $b2 ], ttl => 1 }, $pf);

ok($t->wait_for(sub { $s->addresses('victim.test') eq "$b2:$P" }, 10,
                'chain followed'),
   'a CNAME chain of 8 links is followed');

my $base = served();
my $load = $s->load;

check_load($load, $base, 'CNAME chain of 8 links', 'b2');

diag($_) for @figures;

done_testing();
