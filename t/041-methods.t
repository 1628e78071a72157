#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# nginx's balancing methods over qqfail_server lines, each compared with a
# stock upstream of "server IP:PORT" lines for the same backends, in the
# same nginx: upstream qq_M (qqfail_server) and st_M (server), locations
# /qq_M and /st_M.  Each backend answers with its id.
#
#   a. the share of each backend over 3,000 requests per method; hash,
#      ip_hash: each key on stock's backend; consistent hash: each key on
#      the backend of stock's ring for the qqfail_server names
#   a2. one server "down": never used, its keys moved as stock moves them
#   a3. one backend stopped: max_fails, its keys moved as stock moves them
#   b. consistent hash: one server's address changes; the keys that move
#   c. ip_hash: a client keeps its backend, with two workers
#   d. least_conn, e. random two, with one slow backend under concurrency
#   f. max_conns shared by the workers (stock needs "zone" for that), with
#      round robin and (f2) each method
#   g. "backup" refused with hash, ip_hash and random, allowed with
#      least_conn

use strict;
use warnings;

use Test::More;
use Compress::Zlib qw(crc32);
use HTTP::Tiny;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

# b1..b3 the pool, b4 where server2.example.com moves (b), b5 slow (d-f)
my $SLOW = 0.25;
my $s = QQ::Topo->new(backends => 5, providers => 2, delay => { 5 => $SLOW });
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my %ip = map { ("b$_" => $s->backend($_)->addr) } 1 .. 5;

my @METHODS = (
    [ rr        => '' ],
    [ hash      => 'hash $arg_k;' ],
    [ chash     => 'hash $arg_k consistent;' ],
    [ ip_hash   => 'ip_hash;' ],
    [ lc        => 'least_conn;' ],
    [ random    => 'random;' ],
    [ random2   => 'random two;' ],
    [ random2lc => 'random two least_conn;' ],
);

# a pool of servers (b-ids with parameters) as qqfail_server lines, or as
# server lines; the method line before the servers or after them
sub pool {
    my (%o) = @_;
    my (@qq, @st);
    for my $srv (@{ $o{servers} }) {
        my ($b, $params) = @$srv;
        my ($n) = $b =~ /(\d+)/;
        my $addr = $o{move}{$b} // $ip{$b};
        $params = $params ? " $params" : '';
        push @qq, "        qqfail_server "
                  . ($o{literal} ? "$ip{$b}:$P" : "server$n.example.com:$P")
                  . "$params;\n";
        push @st, "        server $addr:$P$params;\n";
    }
    my $m = $o{method} ? "        $o{method}\n" : '';
    my $tail = ($o{tail} // '') . ($o{keepalive} ? "        keepalive 8;\n"
                                                 : '');
    my ($pre, $post) = $o{after} ? ('', $m) : ($m, '');
    return (
        "qq_$o{name}" => $pre . join('', @qq) . $post . ($o{qq_tail} // '')
                         . $tail,
        "st_$o{name}" => $pre . ($o{st_head} // '') . join('', @st) . $post
                         . $tail,
    );
}

my @A = ([ b1 => 'weight=2' ], [ 'b2' ], [ 'b3' ]);

sub config {
    my (%o) = @_;
    my @up;
    my $i = 0;
    for my $m (@METHODS) {
        push @up, pool(name => $m->[0], method => $m->[1], servers => \@A,
                       after => $i++ % 2, keepalive => 1);
    }
    push @up, pool(name => 'chashlit', method => 'hash $arg_k consistent;',
                   servers => \@A, literal => 1);

    # b: a ring of three; st's server2 line may point at b4
    push @up, pool(name => 'ring', method => 'hash $arg_k consistent;',
                   servers => [ [ 'b1' ], [ 'b2' ], [ 'b3' ] ],
                   move => $o{move}, qq_tail => "        qqfail_refresh 1s;\n");

    # d, e: b5 slow
    my @slow = ([ 'b1' ], [ 'b2' ], [ 'b5' ]);
    push @up, pool(name => 'slowrr', servers => \@slow);
    push @up, pool(name => 'slowlc', method => 'least_conn;',
                   servers => \@slow);
    push @up, pool(name => 'slowr2', method => 'random two least_conn;',
                   servers => \@slow, after => 1);

    # f: max_conns=2 on b5, shared by the workers (stock: with a zone)
    push @up, pool(name => 'mc', servers => [ [ b5 => 'max_conns=2' ],
                                              [ 'b1' ] ],
                   st_head => "        zone st_mc 64k;\n");
    push @up, pool(name => 'mc1', servers => [ [ b5 => 'max_conns=2' ] ],
                   st_head => "        zone st_mc1 64k;\n");
    push @up, "st_mcnozone" => "        server $ip{b5}:$P max_conns=2;\n"
                             . "        server $ip{b1}:$P;\n";

    # a2: server2 down
    for my $m (@METHODS, [ chashlit => 'hash $arg_k consistent;' ]) {
        push @up, pool(name => "$m->[0]_down", method => $m->[1],
                       servers => [ [ b1 => 'weight=2' ], [ b2 => 'down' ],
                                    [ 'b3' ] ],
                       literal => $m->[0] eq 'chashlit', after => 1);
    }

    # a3: b3 stopped
    for my $m (@METHODS, [ chashlit => 'hash $arg_k consistent;' ]) {
        push @up, pool(name => "$m->[0]_fail", method => $m->[1],
                       servers => [ [ b1 => 'weight=2' ], [ 'b2' ],
                                    [ b3 => 'max_fails=1 fail_timeout=30s' ] ],
                       literal => $m->[0] eq 'chashlit');
    }

    # f2: max_conns=2 on b5 with each method
    for my $m (@METHODS[1 .. $#METHODS]) {
        push @up, pool(name => "$m->[0]_mc", method => $m->[1],
                       servers => [ [ b5 => 'max_conns=2' ], [ 'b1' ] ],
                       st_head => "        zone st_$m->[0]_mc 64k;\n");
    }

    push @up, @{ $o{extra} // [] };

    my @names;
    for (my $k = 0; $k < @up; $k += 2) {
        push @names, $up[$k];
    }

    return $s->nginx(workers => 2,
        upstreams => \@up,
        server => "        set_real_ip_from 127.0.0.0/8;\n"
                . "        real_ip_header X-Real-IP;\n",
        locations => $s->proxy_locations(@names),
        location => "return 404;");
}

config();
$t->start;

my $A = $t->addr(1);
my $PORT = $t->port(1);
my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 10, max_redirect => 0,
                         proxy => undef, http_proxy => undef,
                         https_proxy => undef);

# the id of the backend that answered, or "status N"
sub req {
    my ($path, %h) = @_;
    my $r = $ua->request('GET', "http://$A:$PORT$path",
                         { headers => \%h, peer => $A });
    return $r->{status} == 200 ? $r->{content} : "status $r->{status}";
}

sub share {
    my ($c, $b) = @_;
    my $n = 0;
    $n += $_ for values %$c;
    return $n ? ($c->{$b} // 0) / $n : 0;
}

sub shares_text {
    my ($c) = @_;
    return join ' ', map { sprintf '%s %.1f%%', $_, 100 * share($c, $_) }
                     sort keys %$c;
}

# request $n: a key for hash, a client address for ip_hash
sub key_req {
    my ($up, $k) = @_;
    my @h = ('X-Real-IP' => sprintf '10.%d.%d.7', $k >> 8, $k & 255);
    return req("/$up?k=key$k", @h);
}

my $N = 3000;
my @figures;

# ---------------------------------------------------------------------------
# a. shares per method

# stock's consistent hash ring over "HOST:PORT" names with weights:
# crc32(HOST \0 PORT PREV_HASH), 160 points per weight unit
sub ring {
    my (@servers) = @_;     # [ "host:port", weight, id ]
    my %point;
    for my $srv (@servers) {
        my ($name, $w, $id) = @$srv;
        my ($host, $port) = $name =~ /^(.*):(\d+)$/;
        my $prev = 0;
        for (1 .. 160 * $w) {
            my $h = crc32($host . "\0" . $port . pack('V', $prev));
            $point{$h} //= $id;
            $prev = $h;
        }
    }
    my @h = sort { $a <=> $b } keys %point;
    return [ \@h, [ map { $point{$_} } @h ] ];
}

# the backend of a key: the first point at or after its hash whose server
# is not down
sub ring_pick {
    my ($ring, $key, $down) = @_;
    my ($h, $ids) = @$ring;
    my $x = crc32($key);
    my ($i, $j) = (0, scalar @$h);
    while ($i < $j) {
        my $k = int(($i + $j) / 2);
        if ($x > $h->[$k]) { $i = $k + 1 } else { $j = $k }
    }
    $i++ while $down && $ids->[ $i % @$h ] eq $down;
    return $ids->[ $i % @$h ];
}

my %model = (
    qq_chash    => ring(map { [ "server$_.example.com:$P",
                                $_ == 1 ? 2 : 1, "b$_" ] } 1 .. 3),
    st_chash    => ring(map { [ "$ip{\"b$_\"}:$P", $_ == 1 ? 2 : 1, "b$_" ] }
                        1 .. 3),
);
$model{qq_chashlit} = $model{st_chashlit} = $model{st_chash};

my %got;        # upstream => [ backend of request 1..N ]

for my $m ((map { $_->[0] } @METHODS), 'chashlit') {
    my %c;
    for my $side (qw(qq st)) {
        my $up = "${side}_$m";
        my @r = map { key_req($up, $_) } 1 .. $N;
        $got{$up} = \@r;
        $c{$side}{$_}++ for @r;
    }

    my $line = sprintf '%-10s qq: %s | st: %s', $m, shares_text($c{qq}),
                       shares_text($c{st});
    diag $line;
    push @figures, $line;

    is(scalar(grep { !/^b[123]$/ } @{ $got{"qq_$m"} }), 0,
       "$m: every qq request answered by the pool");

    # random: 3,000 draws a side, a share's sd is at most 0.91 pp, the
    # difference of two sides' at most 1.29 pp: 5 pp is 3.9 sd.  The rings
    # of chash differ (qq's points come from the names, stock's from the
    # addresses; a share can be 5 pp off): each is checked against stock's
    # ring for its names below
    my $bound = $m =~ /^random/ ? 0.05 : 0.02;
    for my $b ($m eq 'chash' ? () : qw(b1 b2 b3)) {
        my ($q, $st) = (share($c{qq}, $b), share($c{st}, $b));
        ok(abs($q - $st) <= $bound,
           sprintf "%s: %s's share %.1f%% with qq, %.1f%% with stock "
                 . "(within %d pp)", $m, $b, 100 * $q, 100 * $st,
                 100 * $bound);
    }

    if ($model{"qq_$m"}) {
        for my $side (qw(st qq)) {
            my $up = "${side}_$m";
            my $diff = grep {
                $got{$up}[ $_ - 1 ] ne ring_pick($model{$up}, "key$_")
            } 1 .. $N;
            is($diff, 0, "$up: every key on the backend of stock's ring "
                         . ($side eq 'qq' && $m eq 'chash'
                            ? 'for the qqfail_server names'
                            : 'for the server addresses'));
        }
    }

    # an address per server, in the same order as stock's server lines:
    # the same backend for each key (round robin has the same shares)
    if ($m =~ /hash/) {
        my $same = grep { $got{"qq_$m"}[$_] eq $got{"st_$m"}[$_] }
                   0 .. $N - 1;
        my $what = sprintf '%s: %.1f%% of the keys on the same backend with '
                         . 'qq and stock', $m, 100 * $same / $N;
        if ($m eq 'chash') {
            diag $what;
        } else {
            is($same, $N, $what);
        }
    }
}

# ---------------------------------------------------------------------------
# a2. server2 down: never used; the hash methods move its keys as stock
# does (hash and ip_hash hash again, consistent hash takes the next point)

my $ND = 1000;
for my $m ((map { $_->[0] } @METHODS), 'chashlit') {
    my %r;
    for my $side (qw(qq st)) {
        $r{$side} = [ map { key_req("${side}_${m}_down", $_) } 1 .. $ND ];
    }
    my %c;
    for my $side (qw(qq st)) {
        $c{$side}{$_}++ for @{ $r{$side} };
    }
    my $line = sprintf '%-10s b2 down, qq: %s | st: %s', $m,
                       shares_text($c{qq}), shares_text($c{st});
    diag $line;
    push @figures, $line;
    is(scalar(grep { !/^b[13]$/ } @{ $r{qq} }), 0,
       "$m, b2 down: every request answered by b1 or b3");

    if ($m eq 'chash') {
        my $diff = grep {
            $r{qq}[ $_ - 1 ] ne ring_pick($model{qq_chash}, "key$_", 'b2')
        } 1 .. $ND;
        is($diff, 0, "$m, b2 down: every key on the next server of stock's "
                     . 'ring for the names');
    } elsif ($m =~ /hash/) {
        my $same = grep { $r{qq}[$_] eq $r{st}[$_] } 0 .. $ND - 1;
        is($same, $ND, "$m, b2 down: every key on the backend stock picks");
    }
}

# ---------------------------------------------------------------------------
# b. consistent hash: server2.example.com moves to b4 (qq), the server line
# of b2 is changed to b4 (stock)

my $NK = 2000;
my %before = map {
    my $up = $_;
    ($up => [ map { key_req($up, $_) } 1 .. $NK ])
} qw(qq_ring st_ring);

$dns->set_record('server2.example.com', [ $ip{b4} ]);
ok($t->wait_for(sub {
        $s->addresses('server2.example.com', 'qq_ring') eq "$ip{b4}:$P"
    }, 15, 'server2 moved'),
   'qq: server2.example.com now resolves to b4');

# every worker's view: the keys of b2 answered by b4
ok($t->wait_for(sub {
        my $k = (grep { $before{qq_ring}[ $_ - 1 ] eq 'b2' } 1 .. $NK)[0];
        !grep { $s->get("/qq_ring?k=key$k")->{content} ne 'b4' } 1 .. 6;
    }, 10, 'b4 answers'), 'qq: b4 answers for a key of b2');

config(move => { b2 => $ip{b4} });
ok($t->reload, 'stock: server b2 replaced by b4, reload');

my %after = map {
    my $up = $_;
    ($up => [ map { key_req($up, $_) } 1 .. $NK ])
} qw(qq_ring st_ring);

my %moved;
for my $up (qw(qq_ring st_ring)) {
    $moved{$up} = [ grep { $before{$up}[$_] ne $after{$up}[$_] }
                    0 .. $NK - 1 ];
}
my $on_b2 = grep { $_ eq 'b2' } @{ $before{qq_ring} };
my $line = sprintf 'consistent hash, one of 3 servers moved: qq %d of %d '
                 . 'keys moved (%.1f%%; %d were on b2), stock %d (%.1f%%)',
    scalar @{ $moved{qq_ring} }, $NK, 100 * @{ $moved{qq_ring} } / $NK,
    $on_b2, scalar @{ $moved{st_ring} }, 100 * @{ $moved{st_ring} } / $NK;
diag $line;
push @figures, $line;

is(scalar(grep { $before{qq_ring}[$_] ne 'b2' } @{ $moved{qq_ring} }), 0,
   'qq: every key that moved was on b2');
is(scalar(grep { $after{qq_ring}[$_] ne 'b4' } @{ $moved{qq_ring} }), 0,
   'qq: and moved to b4, where server2 is now');
is(scalar @{ $moved{qq_ring} }, $on_b2, 'qq: every key of b2 moved');
ok(@{ $moved{qq_ring} } <= @{ $moved{st_ring} } + 0.02 * $NK,
   'qq moved no more keys than stock (+2 pp)');

# server2.example.com back on b2 for what follows
$dns->set_record('server2.example.com', [ $ip{b2} ]);
ok($t->wait_for(sub {
        !grep { $s->addresses('server2.example.com', $_) ne "$ip{b2}:$P" }
            qw(qq_ring qq_rr_fail qq_hash_fail)
    }, 15, 'server2 back'),
   'qq: server2.example.com back on b2');

# ---------------------------------------------------------------------------
# c. ip_hash: a client keeps its backend, each request on a new connection
# (either worker)

my (%client, %used);
for my $k (1 .. 20) {
    my %b;
    for (1 .. 20) {
        my $r = $s->get('/qq_ip_hash',
                        headers => { 'X-Real-IP' => "10.77.$k.9" });
        $b{ $r->{status} == 200 ? $r->{content} : "status $r->{status}" }++;
    }
    $client{$k} = join ',', sort keys %b;
    $used{$_}++ for keys %b;
}
is(scalar(grep { $client{$_} !~ /^b\d$/ } keys %client), 0,
   'ip_hash: each of 20 clients got one backend for its 20 requests')
    or diag explain \%client;
ok(keys %used >= 2, 'ip_hash: the clients are spread ('
                    . join(' ', sort keys %used) . ')');

# ---------------------------------------------------------------------------
# d, e. one slow backend (b5 answers after 0.25 s), six clients

sub run_load {
    my ($path, $secs, %o) = @_;
    my $load = $s->load(path => $path, concurrency => $o{concurrency} // 6,
                        interval_ms => 0, %o);
    my $start = time;
    $t->wait_for(sub { time - $start >= $secs }, $secs + 1, 'load');
    return $load->stop;
}

my %slow;
for my $m (qw(slowrr slowlc slowr2)) {
    for my $side (qw(qq st)) {
        my $r = run_load("/${side}_$m", 3);
        $slow{"${side}_$m"} = $r;
        is($r->{failed}, 0, "${side}_$m: $r->{failed} of $r->{sent} failed");
    }
    my $line = sprintf '%-10s slow b5: qq %.1f%% of %d, st %.1f%% of %d', $m,
        100 * share($slow{"qq_$m"}{by_body}, 'b5'), $slow{"qq_$m"}{sent},
        100 * share($slow{"st_$m"}{by_body}, 'b5'), $slow{"st_$m"}{sent};
    diag $line;
    push @figures, $line;
}

for my $m (qw(slowlc slowr2)) {
    my $rr = share($slow{qq_slowrr}{by_body}, 'b5');
    my $q = share($slow{"qq_$m"}{by_body}, 'b5');
    my $st = share($slow{"st_$m"}{by_body}, 'b5');
    ok($q < $rr / 3, sprintf '%s: the slow backend gets %.1f%% with qq, '
                          . 'under a third of round robin\'s %.1f%%',
                          $m, 100 * $q, 100 * $rr);
    ok($q <= 2 * $st + 0.02, sprintf '%s: qq %.1f%%, like stock %.1f%%',
                                     $m, 100 * $q, 100 * $st);
}

# ---------------------------------------------------------------------------
# f. max_conns=2 on the slow b5, two workers, twelve clients, a connection
# per request (both workers take them): b5 counts its own connections

sub max_conns_run {
    my ($up, $conc) = @_;
    my $b5 = $s->backend(5);
    my $from = $b5->requests;
    # b5 logs a connection as it closes it, before nginx has the answer
    my $r = run_load("/$up", 4, concurrency => $conc, keepalive => 0);
    $r->{b5_max} = $b5->max_concurrency($from);
    $r->{b5_requests} = $b5->requests - $from;
    return $r;
}

my %mc;
for my $up (qw(qq_mc st_mc qq_mc1 st_mc1 st_mcnozone)) {
    my $r = $mc{$up} = max_conns_run($up, $up =~ /mc1/ ? 10 : 12);
    my $line = sprintf '%-12s %d sent, %d failed (%s), b5 answered %d, '
                     . 'at most %d at once', $up, $r->{sent}, $r->{failed},
        join(' ', map { "$_: $r->{by_status}{$_}" }
                  sort keys %{ $r->{by_status} }),
        $r->{by_body}{b5} // 0, $r->{b5_max};
    diag $line;
    push @figures, $line;
}

for my $up (qw(qq_mc st_mc qq_mc1 st_mc1)) {
    ok($mc{$up}{b5_max} <= 2 && $mc{$up}{b5_max} >= 1,
       "$up: b5 never had more than 2 connections ($mc{$up}{b5_max})");
    ok($mc{$up}{by_body}{b5}, "$up: b5 answered");
}
is($mc{qq_mc}{failed}, 0, 'qq_mc: the excess went to b1, nothing failed');
is($mc{st_mc}{failed}, 0, 'st_mc: likewise');
for my $up (qw(qq_mc1 st_mc1)) {
    my %st = %{ $mc{$up}{by_status} };
    delete @st{200, 502};
    ok($mc{$up}{by_status}{502} && !%st,
       "$up: b5 alone, the excess gets 502 ($mc{$up}{by_status}{502})");
}
ok(abs($mc{qq_mc1}{by_body}{b5} - $mc{st_mc1}{by_body}{b5})
   <= 0.25 * $mc{st_mc1}{by_body}{b5},
   'b5 alone: qq served as many as stock (within 25%)');

# f2. max_conns=2 on b5 with each method (b1 beside it), twelve clients

for my $m (map { $_->[0] } @METHODS[1 .. $#METHODS]) {
    for my $side (qw(qq st)) {
        my $up = "${side}_${m}_mc";
        my $b5 = $s->backend(5);
        my $from = $b5->requests;
        my $load = $s->load(concurrency => 12, interval_ms => 0,
                            keepalive => 0, paths => [ "/$up?k=key%N" ],
                            headers => { 'X-Real-IP' => '10.0.%B.1' });
        my $start = time;
        $t->wait_for(sub { time - $start >= 2 }, 3, 'load');
        my $r = $load->stop;
        my $max = $b5->max_concurrency($from);
        my $line = sprintf '%-12s %d sent, %d failed, b5 answered %d, at '
                         . 'most %d at once', $up, $r->{sent}, $r->{failed},
                           $r->{by_body}{b5} // 0, $max;
        diag $line;
        push @figures, $line;
        ok($max <= 2 && $r->{by_body}{b5},
           "$up: b5 answered, never more than 2 connections ($max)");
        is($r->{failed}, 0, "$up: nothing failed");
    }
}

# ---------------------------------------------------------------------------
# a3. b3 stopped: max_fails and fail_timeout with every method; the keys of
# b3 go where stock sends them, and proxy_next_upstream hides the failures

$s->backend(3)->stop;
for my $m ((map { $_->[0] } @METHODS), 'chashlit') {
    my %r;
    for my $side (qw(qq st)) {
        $r{$side} = [ map { key_req("${side}_${m}_fail", $_) } 1 .. 300 ];
    }
    is(scalar(grep { !/^b[12]$/ } @{ $r{qq} }), 0,
       "$m, b3 stopped: every request answered by b1 or b2");
    if ($m =~ /hash/ && $m ne 'chash') {
        my $same = grep { $r{qq}[$_] eq $r{st}[$_] } 0 .. 299;
        is($same, 300, "$m, b3 stopped: every key on the backend stock "
                       . 'picks');
    }
}
$s->backend(3)->start;

# ---------------------------------------------------------------------------
# g. backup: refused with hash, ip_hash and random, allowed with least_conn

for my $case (['hash $arg_k;', 0], ['hash $arg_k;', 1],
              ['hash $arg_k consistent;', 0], ['ip_hash;', 0],
              ['ip_hash;', 1], ['random;', 0], ['random two;', 1])
{
    my ($method, $after) = @$case;
    my %u = pool(name => 'bk', method => $method, after => $after,
                 servers => [ [ 'b1' ], [ b2 => 'backup' ] ]);
    $s->nginx(upstreams => [ qq_bk => $u{qq_bk} ], location => 'return 404;');
    my ($ok, $out) = $t->test_config;
    my $where = $after ? 'after' : 'before';
    ok(!$ok, "backup with \"$method\" ($where the servers): nginx -t fails");
    # stock refuses it before the servers, and ignores "backup" after them
    like($out, $after
         ? qr/\[emerg\] .*does not support parameter "backup".* in \S+nginx\.conf:\d+/
         : qr/\[emerg\] balancing method does not support parameter "backup" in \S+nginx\.conf:\d+/,
         "backup with \"$method\" ($where): "
         . ($after ? 'refused' : 'the stock message'));
}

my %u = pool(name => 'bk', method => 'least_conn;', after => 1,
             servers => [ [ 'b1' ], [ b2 => 'backup' ] ]);
config(extra => [ qq_bk => $u{qq_bk} ]);
my ($ok, $out) = $t->test_config;
ok($ok, 'backup with least_conn: nginx -t passes') or diag $out;
ok($t->reload, 'reload with least_conn and a backup server');
my %c;
$c{ $s->get('/qq_bk')->{content} }++ for 1 .. 20;
is_deeply(\%c, { b1 => 20 }, 'least_conn: the backup idle while b1 is up');

note $_ for @figures;

done_testing();
