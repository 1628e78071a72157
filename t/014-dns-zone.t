#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The strict parser reads SOA and NS answers for the independence check
# (issue 17): a name's zone is the owner of its SOA record, or of the SOA
# record in the authority section of a NODATA answer (RFC 2308) when that
# owner is the name or one of its ancestors; a zone's name servers are the
# targets of its NS records.  Malformed data refuse the answer; records of
# other names are ignored.  Messages are built with Net::DNS::Packet and
# read by t/unit/dns.c.

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

sub answer {
    my (%o) = @_;
    my $p = Net::DNS::Packet->new($o{qname}, $o{qtype});
    $p->header->qr(1);
    $p->header->rcode($o{rcode} // 'NOERROR');
    $p->push(answer => Net::DNS::RR->new($_)) for @{ $o{answer} // [] };
    $p->push(authority => Net::DNS::RR->new($_))
        for @{ $o{authority} // [] };
    return $p->data;
}

my $SOA = 'IN SOA ns.example.com. hostmaster.example.com. 1 1 1 60 30';

# SOA

is(parse(SOA => 'example.com', answer(qname => 'example.com', qtype => 'SOA',
        answer => [ "Example.COM. 300 $SOA" ])),
   'ok 1 300 =example.com', 'SOA of the apex: the zone, lowercase');
is(parse(SOA => 'www.example.com', answer(qname => 'www.example.com',
        qtype => 'SOA', authority => [ "example.com. 30 $SOA" ])),
   'ok 1 30 =example.com',
   'NODATA: the zone from the SOA of the authority section');
is(parse(SOA => 'a.b.example.com', answer(qname => 'a.b.example.com',
        qtype => 'SOA', rcode => 'NOERROR', authority => [
            "example.net. 30 $SOA", "b.example.com. 30 $SOA" ])),
   'ok 1 30 =b.example.com',
   'the SOA of an ancestor, not of an unrelated zone');
is(parse(SOA => 'www.example.com', answer(qname => 'www.example.com',
        qtype => 'SOA', authority => [ "example.net. 30 $SOA",
                                       "wexample.com. 30 $SOA" ])),
   'nodata 0 0', 'no ancestor (not on a label boundary): no zone');
is(parse(SOA => 'www.example.com', answer(qname => 'www.example.com',
        qtype => 'SOA', answer => [
            'www.example.com. 300 IN CNAME web.example.net.' ],
        authority => [ "example.net. 30 $SOA" ])),
   'ok 1 30 =example.net', 'a CNAME: the zone of its target');
is(parse(SOA => 'www.example.com', answer(qname => 'www.example.com',
        qtype => 'SOA', authority => [ ". 30 $SOA" ])),
   'nodata 0 0', 'the root zone is no answer');
is(parse(SOA => 'www.example.com', answer(qname => 'www.example.com',
        qtype => 'SOA', rcode => 'NXDOMAIN',
        authority => [ "example.com. 30 $SOA" ])),
   'nxdomain 0 0', 'NXDOMAIN stays NXDOMAIN');
# the last record's RDLENGTH: the data run to the end of the message
sub last_rdlength_at {
    my ($wire) = @_;
    for my $n (1 .. 255) {
        my $at = length($wire) - $n - 2;
        return $at if unpack('n', substr($wire, $at, 2)) == $n;
    }
    die 'no RDLENGTH found';
}

{
    my $wire = answer(qname => 'www.example.com', qtype => 'SOA',
                      authority => [ "example.com. 30 $SOA" ]);
    # the SOA's data one octet short of its five numbers
    my $at = last_rdlength_at($wire);
    substr($wire, $at, 2) = pack 'n', unpack('n', substr($wire, $at, 2)) - 1;
    like(parse(SOA => 'www.example.com', substr($wire, 0, -1)),
         qr/^malformed 0 0 # SOA data of a wrong length$/,
         'SOA data shorter than its numbers: refused');
}
like(parse(SOA => 'www.example.com', answer(qname => 'www.example.net',
        qtype => 'SOA', authority => [ "example.com. 30 $SOA" ])),
     qr/^mismatch 0 0 # question name differs/,
     'the answer to another name');
like(parse(SOA => 'example.com', answer(qname => 'example.com',
        qtype => 'NS', answer => [ 'example.com. 30 IN NS ns.example.com.' ])),
     qr/^mismatch 0 0 # question type differs/,
     'the answer to another type');

# NS

is(parse(NS => 'example.com', answer(qname => 'example.com', qtype => 'NS',
        answer => [ 'example.com. 300 IN NS NS1.example.com.',
                    'example.com. 60 IN NS ns2.example.net.',
                    'other.com. 60 IN NS ns3.example.org.' ])),
   'ok 2 60 =ns1.example.com =ns2.example.net',
   'NS: the targets of the zone\'s records, not of another name');
is(parse(NS => 'example.com', answer(qname => 'example.com', qtype => 'NS',
        authority => [ "example.com. 30 $SOA" ])),
   'nodata 0 0', 'NS: no record');
like(parse(NS => 'example.com', answer(qname => 'example.com', qtype => 'NS',
        answer => [ 'example.com. 300 IN NS ns!.example.com.' ])),
     qr/^malformed 0 0 # NS target is not a host name$/,
     'NS: a target that is not a host name refuses the answer');
like(parse(NS => 'example.com', answer(qname => 'example.com', qtype => 'NS',
        answer => [ 'example.com. 300 IN NS ns1.example.com.',
                    'example.com. 300 IN NS ns!.example.com.' ])),
     qr/^malformed 0 0 # NS target is not a host name$/,
     'NS: ... after a good one: no target taken');
{
    my $wire = answer(qname => 'example.com', qtype => 'NS',
                      answer => [ 'example.com. 300 IN NS ns.example.com.' ]);
    # RDLENGTH one more, and one more octet
    my $at = last_rdlength_at($wire);
    substr($wire, $at, 2) = pack 'n', unpack('n', substr($wire, $at, 2)) + 1;
    like(parse(NS => 'example.com', $wire . "\0"),
         qr/^malformed 0 0 # NS data longer than its name$/,
         'NS: data longer than its name');
}

close $in;
waitpid $pid, 0;

done_testing;
