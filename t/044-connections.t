#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Connections per address, counted by every worker together: max_conns
# holds across two workers, and the status page shows each upstream's
# balancing method and each address's open connections, in all three
# formats, going back to 0 when the requests end.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Proc;

my $s = QQ::Topo->new(backends => 1, providers => 2);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;

# a backend that reads a request and never answers: its connections stay
# open until nginx closes them; it counts those open at once

my $hold = $t->addr(241);
my $seen = $t->dir . '/hold-seen';

QQ::Proc::fork_code(name => 'holding backend', code => sub {
    $SIG{PIPE} = 'IGNORE';
    my $l = IO::Socket::INET->new(LocalAddr => $hold, LocalPort => $P,
                                  Listen => 64, ReuseAddr => 1)
        or die "listen $hold:$P: $!";
    my $sel = IO::Select->new($l);
    my ($open, $most) = (0, 0);
    while (1) {
        for my $c ($sel->can_read(0.05)) {
            if ($c == $l) {
                my $n = $l->accept or next;
                $sel->add($n);
                next;
            }
            my $buf = '';
            if (!sysread($c, $buf, 4096)) {
                $sel->remove($c);
                close $c;
                $open-- if ${*$c}{counted};
                next;
            }
            # a proxied request, not the listener probe below
            next if ${*$c}{counted} || $buf !~ /^GET /;
            ${*$c}{counted} = 1;
            $open++;
            $most = $open if $open > $most;
        }
        open my $fh, '>', "$seen.tmp" or next;
        print {$fh} "$open $most\n";
        close $fh;
        rename "$seen.tmp", $seen;
    }
});

ok($t->wait_for(sub {
        IO::Socket::INET->new(PeerAddr => $hold, PeerPort => $P,
                              Timeout => 1) }, 10, 'holding backend'),
   'holding backend listening');

sub held {
    my ($open, $most) = split ' ', ($t->read_file('hold-seen') // '0 0');
    return ($open // 0, $most // 0);
}

$dns->set_record('hold.example.com', [ $hold ]);

sub config {
    my ($method) = @_;
    $s->nginx(workers => 2,
        location => "proxy_pass http://app;\n"
                  . "            proxy_read_timeout 60s;",
        upstream =>
            "        qqfail_server hold.example.com:$P max_conns=3;\n"
          . "        qqfail_server server1.example.com:$P;\n"
          . ($method ? "        $method;\n" : ''));
}

sub address {
    my ($st) = @_;
    for my $u (@{ $st->{upstreams} // [] }) {
        for my $srv (@{ $u->{servers} }) {
            next unless $srv->{names}[0] =~ /^hold\./;
            return ($u, $srv->{addresses}[0]);
        }
    }
    return ();
}

config();
$t->start;

ok($t->wait_for(sub { (address($s->status))[1] }, 10, 'hold address'),
   'hold.example.com resolved');

my ($u, $a) = address($s->status);
is($u->{method}, 'round_robin', 'JSON: the method of an upstream without one');
is($a->{active}, 0, 'JSON: no connection open to the holding backend');

# 12 clients at once, over both workers: the holding backend gets 3

my @clients;
for my $i (1 .. 12) {
    my $c = IO::Socket::INET->new(PeerAddr => $t->addr(1),
                                  PeerPort => $t->port(1))
        or die "connect: $!";
    print {$c} "GET /c$i HTTP/1.0\r\nHost: x\r\n\r\n";
    push @clients, $c;
}

ok($t->wait_for(sub { (held())[0] == 3 }, 10, 'three held'),
   'the holding backend has 3 connections open');

# the other 9 are answered by b1
my $answered = 0;
for my $c (@clients) {
    my $sel = IO::Select->new($c);
    next unless $sel->can_read(0.5);
    my $resp = '';
    while (sysread($c, $resp, 4096, length $resp)) {}
    $answered++ if $resp =~ /^HTTP\/1\.\d 200.*\r\n\r\nb1$/s;
}
is($answered, 9, '9 of 12 answered by b1 while the holding one is full');
is((held())[1], 3, 'never more than max_conns=3 at once, over 2 workers');

ok($t->wait_for(sub { ((address($s->status))[1] // {})->{active} == 3 },
                10, 'active 3'),
   'JSON: "active": 3 for the holding address');

my $prom = $s->get('/status?format=prometheus')->{content};
like($prom, qr/^qqfail_address_active\{upstream="app",server="hold\.example\.com:\d+",address="\Q$hold\E:$P"\} 3$/m,
     'Prometheus: qqfail_address_active 3');
my $html = $s->get('/status?format=html')->{content};
like($html, qr/\Q$hold\E:$P<\/span> <small>up, 0 fails, 3 active/,
     'HTML: 3 active');

# the clients go: nginx closes the held connections, the count falls to 0

close $_ for @clients;

ok($t->wait_for(sub { (held())[0] == 0 }, 10, 'none held'),
   'the held connections are closed when the clients go');
ok($t->wait_for(sub { ((address($s->status))[1] // {})->{active} == 0 },
                10, 'active 0'),
   'JSON: "active" back to 0');

# the method shows in every format

config('least_conn');
ok($t->reload, 'reload with least_conn');
ok($t->wait_for(sub { ((address($s->status))[0] // {})->{method}
                      eq 'least_conn' }, 10, 'method'),
   'JSON: "method": "least_conn"');
like($s->get('/status?format=html')->{content},
     qr/<h2>Upstream app <small>least_conn<\/small><\/h2>/,
     'HTML: the method next to the upstream');

$t->stop;

done_testing;
