#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The strict parser reads SRV answers (RFC 2782), the first step of
# service= (issue 15): priority, weight, port and target of each record of
# the name asked, at the end of its CNAME chain; a target "." is no
# record; data longer or shorter than the record, or a target that is not
# a host name, refuse the whole answer.  Messages are built with
# Net::DNS::Packet and read by t/unit/dns.c.  The AD bit (qqfail_dnssec,
# issue 17) is reported as it is, and RRSIG records are skipped.

use strict;
use warnings;

use Test::More;
use IPC::Open2;
use Net::DNS;

my $unit = $ENV{QQ_UNIT} // '';
my $driver = "$unit/dns";
ok(-x $driver, "the unit driver $driver is built (./build.sh test builds it)")
    or BAIL_OUT('no unit driver: run through ./build.sh test');

my $pid = open2(my $out, my $in, $driver) or die "$driver: $!";

sub parse {
    my ($type, $name, $wire) = @_;
    print {$in} "$type $name " . unpack('H*', $wire) . "\n";
    my $r = <$out> // '';
    chomp $r;
    return $r;
}

my $Q = '_http._tcp.svc.example.com';

sub answer {
    my (%o) = @_;
    my $p = Net::DNS::Packet->new($o{qname} // $Q, $o{qtype} // 'SRV');
    $p->header->qr(1);
    $p->header->rcode($o{rcode} // 'NOERROR');
    $p->push(answer => Net::DNS::RR->new($_)) for @{ $o{answer} // [] };
    $p->push(additional => Net::DNS::RR->new($_))
        for @{ $o{additional} // [] };
    return $p->data;
}

is(parse(SRV => $Q, answer(answer => [
        "$Q 300 IN SRV 10 60 8080 a.svc.example.com.",
        "$Q 120 IN SRV 10 20 8081 B.Svc.Example.com.",
        "$Q 300 IN SRV 20 0 8082 c.svc.example.net.",
    ], additional => [ 'a.svc.example.com. 300 IN A 192.0.2.1' ])),
   'ok 3 120 10 60 8080 a.svc.example.com 10 20 8081 b.svc.example.com '
   . '20 0 8082 c.svc.example.net +0=192.0.2.1',
   'three records: priority, weight, port, target (lowercase); the least '
   . 'TTL; the address of a target from the additional section');

# the additional section: the A and AAAA records of the targets, nothing
# else; a malformed record there drops them all, the SRV records stand

is(parse(SRV => $Q, answer(answer => [
        "$Q 300 IN SRV 10 60 8080 a.svc.example.com.",
        "$Q 300 IN SRV 10 20 8081 b.svc.example.com.",
    ], additional => [
        'B.svc.example.com. 300 IN A 192.0.2.2',
        'b.svc.example.com. 300 IN AAAA 2001:db8::2',
        'x.svc.example.com. 300 IN A 192.0.2.99',
        'svc.example.com. 300 IN TXT "a.svc.example.com"',
        'a.svc.example.com. 300 IN A 192.0.2.1',
    ])),
   'ok 2 300 10 60 8080 a.svc.example.com 10 20 8081 b.svc.example.com '
   . '+1=192.0.2.2 +1=aaaa +0=192.0.2.1',
   'additional: addresses of the targets (any case), not of another name '
   . 'or type');

{
    my $wire = answer(answer => [ "$Q 300 IN SRV 10 60 8080 a.svc.example.com." ],
                      additional => [ 'a.svc.example.com. 300 IN A 192.0.2.1' ]);
    # the A record's RDLENGTH (last 6 octets: RDLENGTH 2, RDATA 4) says 5
    substr($wire, -6, 2) = pack 'n', 5;
    is(parse(SRV => $Q, $wire . "\0"),
       'ok 1 300 10 60 8080 a.svc.example.com',
       'an additional address of a wrong length: none taken, the SRV stands');
}

is(parse(SRV => $Q, answer(answer => [ "$Q 60 IN SRV 0 0 0 ." ])),
   'nodata 0 0', 'a target "." (RFC 2782: no service) is no record');

is(parse(SRV => $Q, answer(answer => [
        "$Q 60 IN CNAME alias.example.net.",
        "alias.example.net. 30 IN SRV 5 1 443 x.example.net.",
        "other.example.net. 30 IN SRV 5 1 444 y.example.net.",
    ])),
   'ok 1 30 5 1 443 x.example.net',
   'the records of the name at the end of the CNAME chain, no other');

is(parse(SRV => $Q, answer(rcode => 'NXDOMAIN')), 'nxdomain 0 0',
   'NXDOMAIN');
like(parse(SRV => $Q, answer(qtype => 'A', answer => [])),
     qr/^mismatch 0 0 # question type differs/, 'an answer to another type');

# hand-made data: a record longer or shorter than its target, a target
# that is not a host name

sub srv_raw {
    my ($rdata) = @_;
    my $p = Net::DNS::Packet->new($Q, 'SRV');
    $p->header->qr(1);
    my $wire = $p->data;
    substr($wire, 6, 2) = pack 'n', 1;                  # ANCOUNT 1
    return $wire . pack('n', 0xc00c) . pack('nnNn', 33, 1, 60,
                                             length $rdata) . $rdata;
}

sub name_wire { join '', map { chr(length) . $_ } split(/\./, $_[0]), '' }

like(parse(SRV => $Q, srv_raw(pack('nnn', 1, 2, 3) . name_wire('t.example')
                              . 'junk')),
     qr/^malformed 0 0 # SRV data longer than its target/,
     'data longer than the record: refused');
like(parse(SRV => $Q, srv_raw(pack('nn', 1, 2))),
     qr/^malformed 0 0 # SRV data shorter than a record/,
     'data shorter than a record: refused');
like(parse(SRV => $Q, srv_raw(pack('nnn', 1, 2, 3) . name_wire('bad host.x'))),
     qr/^malformed 0 0 # SRV target is not a host name/,
     'a target with a space: refused');
like(parse(SRV => $Q, srv_raw(pack('nnn', 1, 2, 3) . "\x03a\x00b\x00")),
     qr/^malformed 0 0 # SRV target is not a host name/,
     'a target with a NUL octet: refused');
is(parse(SRV => $Q, srv_raw(pack('nnn', 7, 8, 65535)
                            . name_wire('ok-1_x.example'))),
   'ok 1 60 7 8 65535 ok-1_x.example', 'port 65535, "-" and "_" in a target');

# a compression pointer in the target, back into the question

is(parse(SRV => $Q, srv_raw(pack('nnn', 1, 1, 80) . "\x04host"
                            . pack('n', 0xc00c))),
   "ok 1 60 1 1 80 host.$Q", 'a target compressed against the question');

# A and AAAA answers are read as before

is(parse(A => 'a.example.com', do {
        my $p = Net::DNS::Packet->new('a.example.com', 'A');
        $p->header->qr(1);
        $p->push(answer =>
                 Net::DNS::RR->new('a.example.com. 30 IN A 192.0.2.7'));
        $p->data }),
   'ok 1 30', 'an A answer as before');

# qqfail_dnssec: the AD bit is reported ("ad"), the RRSIG records a query
# with the DO bit brings are skipped, and the OPT record of the answer
# (additional section) is not read

my $SIG = '13 3 30 20261228185301 20261130185301 40551 example.com. '
        . 'hQ7zcPGCNzIFNokW1rrYp0sKk2K/qZzQQ3ue8uO+wGtUmLCcRWL3PYzH6CiwDZXgC'
        . 'bxPF5iIW9BaOFIWN3NRLg==';

sub signed {
    my (%o) = @_;
    my $name = $o{qname} // 'a.example.com';
    my $p = Net::DNS::Packet->new($name, $o{qtype} // 'A');
    $p->header->qr(1);
    $p->header->ad($o{ad} // 1);
    $p->header->do(1);
    $p->header->rcode($o{rcode} // 'NOERROR');
    $p->push(answer => Net::DNS::RR->new($_)) for @{ $o{answer} // [] };
    $p->push(authority => Net::DNS::RR->new($_)) for @{ $o{authority} // [] };
    return $p->data;
}

is(parse(A => 'a.example.com', signed(answer => [
        'a.example.com. 30 IN A 192.0.2.7',
        "a.example.com. 30 IN RRSIG A $SIG",
    ])),
   'ok 1 30 ad', 'a validated answer: AD, its RRSIG skipped');
is(parse(A => 'a.example.com', signed(ad => 0, answer => [
        'a.example.com. 30 IN A 192.0.2.7',
        "a.example.com. 30 IN RRSIG A $SIG",
    ])),
   'ok 1 30', 'the same without AD: not validated');
is(parse(A => 'a.example.com', signed(answer => [
        "a.example.com. 30 IN RRSIG A $SIG",
        'a.example.com. 60 IN CNAME b.example.com.',
        "a.example.com. 60 IN RRSIG CNAME $SIG",
        'b.example.com. 20 IN A 192.0.2.8',
        "b.example.com. 20 IN RRSIG A $SIG",
    ])),
   'ok 1 20 ad', 'a signed CNAME chain: RRSIGs before and between');
is(parse(AAAA => 'a.example.com', signed(qtype => 'AAAA', authority => [
        'example.com. 1 IN SOA ns.example.com. h.example.com. 1 1 1 60 1',
        "example.com. 1 IN RRSIG SOA $SIG",
        'a.example.com. 1 IN NSEC c.example.com. A RRSIG NSEC',
    ])),
   'nodata 0 0 ad', 'a validated NODATA (NSEC in the authority section)');
is(parse(A => 'x.example.com', signed(qname => 'x.example.com',
                                      rcode => 'NXDOMAIN')),
   'nxdomain 0 0 ad', 'a validated NXDOMAIN');
is(parse(A => 'a.example.com', signed(rcode => 'SERVFAIL')),
   'servfail 0 0 ad', 'AD is reported as it is, with any rcode');
like(parse(A => 'a.example.com', substr(signed(), 0, 11)),
     qr/^malformed 0 0 # message shorter than a header$/,
     'no AD from a message shorter than a header');
like(parse(A => 'b.example.com', signed()),
     qr/^mismatch 0 0 # question name differs/,
     'no AD from the answer to another question');

close $in;
waitpid $pid, 0;

done_testing;
