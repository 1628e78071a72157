#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Writes the seed corpus of fuzz/dns_answer.c into fuzz/corpus/dns_answer/:
# answers as a provider sends them (Net::DNS), good and hostile, each
# prefixed with the harness's selector octet (bits 0-1: the name asked,
# bit 2: AAAA, bit 3: room for one address only, bit 4: SRV, bit 5: SOA,
# or NS with bit 4).  The files are committed;
# run this again only to change the seeds.  Regression inputs (crashes the
# fuzzer found) are kept in the same directory under names "crash-*".

use strict;
use warnings;

use FindBin;
use Net::DNS;
use Socket qw(inet_aton);

my $dir = "$FindBin::Bin/corpus/dns_answer";
my @names = ('victim.test', 'server1.example.com',
             'a.b.c.d.e.f.g.h.example.net', 'x');

sub reply {
    my ($sel, %o) = @_;
    my $name = $names[$sel & 3];
    my $type = $sel & 16 ? ($sel & 32 ? 'NS' : 'SRV')
             : $sel & 32 ? 'SOA' : $sel & 4 ? 'AAAA' : 'A';
    my $q = Net::DNS::Packet->new($name, $type, 'IN');
    $q->header->id(0x1234);
    $q->edns->size(1232) if $o{edns};
    my $r = $q->reply(4096);
    $r->header->rcode($o{rcode} // 'NOERROR');
    $r->header->aa(1);
    $r->header->ad(1) if $o{ad};
    $r->push(answer => Net::DNS::RR->new($_)) for @{ $o{an} || [] };
    $r->push(authority => Net::DNS::RR->new($_)) for @{ $o{ns} || [] };
    $r->push(additional => Net::DNS::RR->new($_)) for @{ $o{ar} || [] };
    my $data = $r->data;
    substr($data, 2, 1) = chr(ord(substr($data, 2, 1)) & 0x7f) if $o{noqr};
    return chr($sel) . $data;
}

sub chain {
    my ($from, $n, $tail) = @_;
    my @rr;
    for my $i (1 .. $n) {
        push @rr, "$from. 60 IN CNAME c$i.chain.test.";
        $from = "c$i.chain.test";
    }
    return (@rr, map { "$from. 30 IN $_" } @$tail);
}

# victim.test CNAME L, L A: L is 255 octets in place, 264 expanded
sub longname {
    my $msg = pack('n6', 0x1234, 0x8580, 1, 2, 0, 0)
            . "\x06victim\x04test\x00" . pack('n2', 1, 1);
    my $long = join('', map { chr(63) . ('a' x 63) } 1 .. 3)
             . chr(60) . ('b' x 60) . pack('n', 0xc00c);
    my $at = length($msg) + 12;
    $msg .= pack('n n n N n', 0xc00c, 5, 1, 60, length $long) . $long;
    $msg .= pack('n n n N n', 0xc000 | $at, 1, 1, 60, 4)
          . inet_aton('127.0.0.40');
    return "\x00" . $msg;
}

# victim.test A, its owner named through a chain of pointers, each to the
# one before it: $hops pointers in all (127 are allowed, 128 are not)
sub pointers {
    my ($hops) = @_;
    my $n = $hops - 1;
    my $msg = pack('n6', 0x1234, 0x8580, 1, 2, 0, 0)
            . "\x06victim\x04test\x00" . pack('n2', 1, 1);
    my $r0 = length($msg) + 12;
    my $chain = pack('n', 0xc00c)
              . join('', map { pack('n', 0xc000 | ($r0 + 2 * ($_ - 1))) }
                             1 .. $n - 1);
    $msg .= pack('n n n N n', 0xc00c, 16, 1, 60, length $chain) . $chain;
    $msg .= pack('n n n N n', 0xc000 | ($r0 + 2 * ($n - 1)), 1, 1, 60, 4)
          . inet_aton('127.0.0.20');
    return "\x00" . $msg;
}

my %seed = (
    'pointers-127' => pointers(127),
    'pointers-128' => pointers(128),
    'two-cnames' => reply(0, an => [ 'victim.test. 60 IN CNAME a.test.',
                                     'victim.test. 60 IN CNAME b.test.',
                                     'a.test. 60 IN A 127.0.0.40' ]),
    'a-two' => reply(0, an => [ 'victim.test. 30 IN A 127.0.0.20',
                                'victim.test. 20 IN A 127.0.0.21' ]),
    'a-one-room' => reply(8, an => [ 'victim.test. 30 IN A 127.0.0.20',
                                     'victim.test. 20 IN A 127.0.0.21' ]),
    'aaaa' => reply(4, an => [ 'victim.test. 30 IN AAAA 2001:db8::1',
                               'victim.test. 30 IN AAAA ::1' ]),
    'a-edns' => reply(1, edns => 1,
                      an => [ 'server1.example.com. 5 IN A 10.0.0.1' ]),
    'a-deep' => reply(2, an => [ 'a.b.c.d.e.f.g.h.example.net. 5 IN A '
                                 . '10.0.0.2' ]),
    'a-short-name' => reply(3, an => [ 'x. 5 IN A 10.0.0.3' ]),
    'cname-3' => reply(0, an => [ chain('victim.test', 3,
                                        [ 'A 127.0.0.22' ]) ]),
    'cname-8' => reply(4, an => [ chain('victim.test', 8,
                                        [ 'AAAA 2001:db8::8' ]) ]),
    'cname-9' => reply(0, an => [ chain('victim.test', 9,
                                        [ 'A 127.0.0.40' ]) ]),
    'cname-loop' => reply(0, an => [ 'victim.test. 60 IN CNAME l.test.',
                                     'l.test. 60 IN CNAME victim.test.' ]),
    'unrelated-cname' => reply(0, an => [
                                'elsewhere.test. 60 IN CNAME evil.test.',
                                'evil.test. 60 IN A 127.0.0.40' ]),
    'mixed-sections' => reply(0,
        an => [ 'victim.test. 60 IN TXT "x"',
                'victim.test. 60 IN A 127.0.0.20',
                'other.test. 60 IN A 127.0.0.40' ],
        ns => [ 'test. 60 IN NS ns.test.' ],
        ar => [ 'ns.test. 60 IN A 127.0.0.53' ]),
    'nodata-soa' => reply(0, ns => [ 'test. 60 IN SOA ns.test. h.test. '
                                     . '1 2 3 4 5' ]),
    'nxdomain' => reply(0, rcode => 'NXDOMAIN'),
    'servfail' => reply(1, rcode => 'SERVFAIL'),
    'refused' => reply(2, rcode => 'REFUSED'),
    'notimp' => reply(0, rcode => 'NOTIMP'),
    'noqr' => reply(0, noqr => 1,
                    an => [ 'victim.test. 30 IN A 127.0.0.40' ]),
    'longname' => longname(),
    'srv' => reply(16, an => [
        'victim.test. 60 IN SRV 10 60 8080 a.victim.test.',
        'victim.test. 30 IN SRV 20 0 8081 b.example.net.' ],
        ar => [ 'a.victim.test. 60 IN A 127.0.0.20' ]),
    'a-dnssec' => reply(1, edns => 1, ad => 1, an => [
        'server1.example.com. 5 IN A 10.0.0.1',
        'server1.example.com. 5 IN RRSIG A 13 3 5 20261228185301 '
        . '20261130185301 40551 example.com. hQ7zcPGCNzIFNokW1rrYp0sKk2K/qZzQ'
        . 'Q3ue8uO+wGtUmLCcRWL3PYzH6CiwDZXgCbxPF5iIW9BaOFIWN3NRLg==' ]),
    'nxdomain-dnssec' => reply(0, edns => 1, ad => 1, rcode => 'NXDOMAIN',
        ns => [ 'test. 60 IN SOA ns.test. h.test. 1 2 3 4 5',
                'test. 60 IN NSEC a.test. SOA NS RRSIG NSEC' ]),
    'srv-root' => reply(16, an => [ 'victim.test. 60 IN SRV 0 0 0 .' ]),
    'srv-cname' => reply(16, an => [ 'victim.test. 60 IN CNAME s.test.',
                                     's.test. 60 IN SRV 1 1 53 ns.test.' ]),
    'srv-additional' => reply(16, an => [
        'victim.test. 60 IN SRV 10 60 8080 a.victim.test.',
        'victim.test. 60 IN SRV 10 20 8081 b.victim.test.' ],
        ns => [ 'victim.test. 60 IN NS ns.victim.test.' ],
        ar => [ 'a.victim.test. 60 IN A 127.0.0.20',
                'B.victim.test. 60 IN AAAA ::1',
                'c.victim.test. 60 IN A 127.0.0.21',
                'a.victim.test. 60 IN TXT "x"' ]),
    'soa-apex' => reply(33, an => [
        'server1.example.com. 60 IN SOA ns.test. h.test. 1 2 3 4 5' ]),
    'soa-nodata' => reply(33, ns => [
        'example.com. 60 IN SOA ns.example.com. h.example.com. 1 2 3 4 5' ]),
    'soa-other' => reply(34, ns => [
        'example.org. 60 IN SOA ns.test. h.test. 1 2 3 4 5' ]),
    'ns' => reply(49, an => [
        'server1.example.com. 60 IN NS ns1.example.com.',
        'server1.example.com. 60 IN NS NS2.example.net.',
        'example.com. 60 IN NS ns3.example.org.' ]),
    'srv-one' => reply(24, an => [
        'victim.test. 60 IN SRV 1 1 80 a.test.',
        'victim.test. 60 IN SRV 1 1 81 b.test.' ]),
);

mkdir $dir unless -d $dir;
for my $k (sort keys %seed) {
    open my $fh, '>:raw', "$dir/$k" or die "$dir/$k: $!\n";
    print {$fh} $seed{$k};
    close $fh or die "$dir/$k: $!\n";
}
printf "%d seeds in %s\n", scalar keys %seed, $dir;
