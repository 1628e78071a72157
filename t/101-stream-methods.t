#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# nginx's stream balancing methods over qqfail_server lines, against stock
# stream upstreams of the same backends: "hash $remote_addr" puts every
# client on the backend stock puts it on, a consistent hash keeps a client
# on one backend, least_conn and random two spread the connections,
# max_conns holds, and "backup" is refused with hash as stock refuses it.

use strict;
use warnings;

use Test::More;
use IO::Select;
use IO::Socket::INET;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Stream;

my $s = QQ::Topo->new(backends => 3, providers => 2);
my $t = $s->t;

plan skip_all => 'no stream front end or nginx stream module'
    unless $t->has_stream;

my $st = QQ::Stream->new(topo => $s);
my $EP = $st->eport;
my @b = map { $s->backend($_)->addr } 1 .. 3;
my $ip = $t->addr(1);
my @ups = qw(qq_hash st_hash qq_chash qq_lc qq_random qq_max);
my %port = map { $_ => $t->port($_) } @ups;

sub qqup {
    my ($method, $extra) = @_;
    return "    upstream qq_$method {\n"
         . join('', map { "        qqfail_server server$_.example.com:$EP"
                          . ($extra // '') . ";\n" } 1 .. 3)
         . "        qqfail_refresh 2s;\n" . "        $_[2]\n    }\n";
}

my $prov = $s->providers_conf;
my $servers = join '', map { "    server { listen $ip:$port{$_}; "
                             . "proxy_pass $_; }\n" } @ups;

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
worker_processes 2;

events {
}

http {
    %%HTTP_GLOBALS%%
$prov
    server {
        listen $ip:%%PORT_1%%;
        location = /status { qqfail_status; }
    }
}

stream {
@{[ qqup('hash', '', 'hash $remote_addr;') ]}
    upstream st_hash {
        hash \$remote_addr;
@{[ join '', map { "        server $_:$EP;\n" } @b ]}    }

@{[ qqup('chash', '', 'hash $remote_addr consistent;') ]}
@{[ qqup('lc', '', 'least_conn;') ]}
@{[ qqup('random', '', 'random two least_conn;') ]}
@{[ qqup('max', ' max_conns=1', 'least_conn;') ]}
$servers
}
EOF

$t->start;

ok($t->wait_for(sub {
        my $x = $s->status or return 0;
        my @u = grep { $_->{context} eq 'stream' } @{ $x->{upstreams} };
        return @u == 5 && !grep { grep { !@{ $_->{addresses} } }
                                       @{ $_->{servers} } } @u;
    }, 15, 'stream upstreams resolved'),
   'every stream upstream has its addresses');

my $x = $s->status;
is(join(' ', map { "$_->{name}=$_->{method}" }
             grep { $_->{context} eq 'stream' } @{ $x->{upstreams} }),
   'qq_hash=hash qq_chash=hash consistent qq_lc=least_conn '
   . 'qq_random=random two qq_max=least_conn',
   'status: the method of each stream upstream');

# one connection from a client address of its own: the backend's id
sub from {
    my ($client, $up) = @_;
    my $c = IO::Socket::INET->new(LocalAddr => $client, PeerAddr => $ip,
                                  PeerPort => $port{$up}, Timeout => 2)
        or return "connect: $!";
    print {$c} "x\n";
    my $sel = IO::Select->new($c);
    return 'timeout' unless $sel->can_read(3);
    my $line = <$c> // '';
    return $line =~ /^(b\d) x$/ ? $1 : "answer '$line'";
}

my @clients = map { $t->addr(200 + $_) } 1 .. 40;

my ($same, %spread, %cspread, $sticky) = (0);
for my $c (@clients) {
    my $q = from($c, 'qq_hash');
    $same++ if $q eq from($c, 'st_hash');
    $spread{$q}++;
    my $ch = from($c, 'qq_chash');
    $sticky++ if $ch eq from($c, 'qq_chash') && $ch =~ /^b\d$/;
    $cspread{$ch}++;
}
is($same, 40, 'hash $remote_addr: each of 40 clients on the backend stock '
   . 'puts it on');
is(scalar(grep { /^b\d$/ } keys %spread), 3, 'hash: all three backends '
   . 'used (' . join(' ', map { "$_=$spread{$_}" } sort keys %spread) . ')');
is($sticky, 40, 'hash consistent: every client keeps its backend');
is(scalar(grep { /^b\d$/ } keys %cspread), 3, 'hash consistent: all three '
   . 'backends used (' . join(' ', map { "$_=$cspread{$_}" }
                                   sort keys %cspread) . ')');

for my $up (qw(qq_lc qq_random)) {
    my %n;
    $n{ from($clients[0], $up) }++ for 1 .. 30;
    is(scalar(grep { /^b\d$/ } keys %n), 3, "$up: 30 connections over all "
       . 'three backends (' . join(' ', map { "$_=$n{$_}" } sort keys %n)
       . ')');
}

# max_conns=1 per address: three held connections fill the three
# backends, a fourth finds none

my @held;
for my $i (1 .. 3) {
    my $c = IO::Socket::INET->new(PeerAddr => $ip, PeerPort => $port{qq_max},
                                  Timeout => 2) or die "connect: $!";
    print {$c} "x\n";
    my $line = <$c> // '';
    push @held, [ $c, $line =~ /^(b\d)/ ? $1 : '?' ];
}
is(join(' ', sort map { $_->[1] } @held), 'b1 b2 b3',
   'max_conns=1: three held connections on the three backends');
ok($t->wait_for(sub {
        my ($u) = grep { $_->{name} eq 'qq_max' } @{ $s->status->{upstreams} };
        my $n = 0;
        $n += $_->{addresses}[0]{active} for @{ $u->{servers} };
        return $n == 3;
    }, 5, 'active 3'), 'status: 3 active connections, one per address');
unlike(from($clients[0], 'qq_max'), qr/^b\d$/,
       'a fourth connection gets no backend while the three are held');
close $_->[0] for @held;
ok($t->wait_for(sub { from($clients[0], 'qq_max') =~ /^b\d$/ }, 5,
                'released'),
   'once they close, connections are proxied again');

$t->stop;

# backup: refused with hash before it, as stock refuses it

$t->write_config(<<"EOF");
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
events {
}
stream {
$prov
    upstream u {
        hash \$remote_addr;
        qqfail_server server1.example.com:$EP backup;
    }
    server { listen $ip:$port{qq_hash}; proxy_pass u; }
}
EOF
my ($ok, $out) = $t->test_config;
ok(!$ok && $out =~ /balancing method does not support parameter "backup"/,
   'stream: backup with hash is refused with nginx\'s message')
    or diag $out;

done_testing;
