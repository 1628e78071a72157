#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The state file is bad input like any other: truncated at every byte, random
# bytes, a wrong version, 10 MB, an unwritable directory.  Each is one clear
# log line and nginx starts anyway.  Good addresses in memory are never
# replaced by a bad file, and a leader killed while writing never leaves a
# file that fails to parse.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Nginx;

my $s = QQ::Topo->new(backends => 2, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;

my $pf = $dns->start_fault_server;
$dns->fault_set('server1.example.com', { addrs => [ $s->backend(1)->addr ] });
$dns->fault_set('server2.example.com', { addrs => [ $s->backend(2)->addr ] });

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';
my $state = $t->dir . '/state/state';

sub config {
    my (%o) = @_;
    $s->nginx(workers => 2,
        providers => "    qqfail_provider pf $pf;\n",
        http => "    qqfail_state_file " . ($o{state} // $state) . ";",
        upstream =>
            "        qqfail_server server1.example.com:$P;\n"
          . ($o{no_server2} ? ''
             : "        qqfail_server server2.example.com:$P;\n")
          . "        qqfail_refresh 1s;\n"
          . "        qqfail_timeout 300ms;");
}

sub ignored_lines {
    my ($text) = @_;
    return () = $text =~ /qqfail: state file "[^"]*" ignored: /g;
}

# a real state file, written by the leader

config();
$t->start;

ok($t->wait_for(sub { -s $state && $t->read_file($state) =~ /^end 2$/m },
                10, 'state file'),
   'the leader wrote the state file');

my $good = $t->read_file($state);
like($good, qr/\Aqqfail-state 1\n/, 'versioned header');
like($good, qr/^s app server1\.example\.com:$P 0 \d+ \Q@{[ $s->backend(1)->addr ]}:$P\E$/m,
     'human-readable server line');
is((stat $state)[2] & 07777, 0600, 'file mode 0600: not world-readable');

$t->stop;

# truncated at every byte offset: nginx -t reads it, logs one line, passes

my ($bad, $lines) = (0, 0);

for my $len (0 .. length($good) - 1) {
    $t->write_file('state/state', substr($good, 0, $len));
    my ($ok, $out) = $t->test_config;
    my $n = ignored_lines($out);
    $bad++ unless $ok && $n == 1;
    $lines += $n;
    diag("offset $len: $out") unless $ok && $n == 1;
}

is($bad, 0, 'truncated at each of ' . length($good) . ' offsets: nginx -t '
            . 'passes and logs exactly one line each time');

$t->write_file('state/state', $good);
my $mark = $t->log_mark;
my ($ok, $out) = $t->test_config;
ok($ok && ignored_lines($out) == 0
   && $t->error_log_since($mark) =~ /addresses of 2 server\(s\) loaded/,
   'the whole file is accepted') or diag $out;

# starts with bad files, DNS down: one line each, nginx proxies anyway

$dns->fault_set('*', { drop => 1 });
$dns->fault_set('server1.example.com', { drop => 1 });
$dns->fault_set('server2.example.com', { drop => 1 });

open(my $rnd, '<', '/dev/urandom') or die;
read($rnd, my $random, 4096);
close $rnd;

(my $v2 = $good) =~ s/\Aqqfail-state 1/qqfail-state 2/;

my %bad = (
    'random bytes'   => [ $random, qr/not a qqfail state file/ ],
    'wrong version'  => [ $v2, qr/unsupported version/ ],
    '10 MB'          => [ $good . ('#' x 79 . "\n") x 131072,
                          qr/more than the limit/ ],
    'truncated'      => [ substr($good, 0, length($good) - 3),
                          qr/truncated file/ ],
    'bad address'    => [ $good =~ s/ (\d+\.\d+\.\d+\.\d+):$P$/ $1:0/mr,
                          qr/invalid address in line 2/ ],
);

for my $what (sort keys %bad) {
    my ($bytes, $re) = @{ $bad{$what} };
    $t->write_file('state/state', $bytes);
    $mark = $t->log_mark;

    ok($t->try_start, "$what: nginx starts with every provider silent");
    my $log = $t->error_log_since($mark);
    is(ignored_lines($log), 1, "$what: one log line");
    like($log, qr/qqfail: state file "\Q$state\E" ignored: .*$re/,
         "$what: the line says why");
    is($s->get('/')->{status}, 502, "$what: no address, no proxying "
                                    . '(and no crash)');
    $t->stop;
}

# a good file with DNS down: proxies from its first request

$t->write_file('state/state', $good);
ok($t->try_start, 'good file, DNS down: nginx starts');
is_deeply([ sort keys %{ $s->spread(10) } ], [ 'b1', 'b2' ],
          'proxies with the state file\'s addresses from the first request');
is($s->server_status('server1.example.com')->{source}, 'state_file',
   'status: source state_file');

# a bad file never replaces good addresses in memory (reload, DNS down)

$t->write_file('state/state', $random);
ok($t->reload, 'reload with a corrupt state file');
is_deeply([ sort keys %{ $s->spread(10) } ], [ 'b1', 'b2' ],
          'addresses kept across the reload');
$t->stop;

# entries for servers no longer configured are dropped

$dns->fault_clear('server1.example.com');
$dns->fault_clear('server2.example.com');
$dns->fault_set('server1.example.com', { addrs => [ $s->backend(1)->addr ] });
$dns->fault_set('server2.example.com', { addrs => [ $s->backend(2)->addr ] });

$t->write_file('state/state',
               $good =~ s/^end 2$/s gone x.example.com:80 0 1 10.0.0.1:80\nend 3/mr);
config(no_server2 => 1);
$mark = $t->log_mark;
($ok, $out) = $t->test_config;
ok($ok && !ignored_lines($out)
   && $t->error_log_since($mark) =~ /addresses of 1 server\(s\) loaded/,
   'unknown upstream and unconfigured server: dropped, the rest used')
    or diag $out;

$t->start;
my $mtime = (stat $state)[9];
ok($t->wait_for(sub { $t->read_file($state) =~ /^end 1$/m }, 10, 'rewrite'),
   'the rewritten file has only configured servers');
unlike($t->read_file($state), qr/server2|gone/, 'no trace of them');
$t->stop;

# an unwritable directory: one clear warning, nginx runs

mkdir $t->dir . '/ro';
chmod 0755, $t->dir . '/ro';
chown 0, 0, $t->dir . '/ro';

config(state => $t->dir . '/ro/state');
$t->start;
ok($t->wait_for_log(qr/qqfail: cannot write state file "[^"]*\/ro\/state": open\(\) "[^"]*" failed/, 10),
   'unwritable directory: a warning naming the file');
is($s->body, 'b1', 'nginx proxies anyway') if $> == 0;
$t->stop;
# once per leading process: a leader that stalls past its lease hands over,
# and the next one warns once too
my %warnings;
$warnings{$_}++ for $t->error_log =~ /\] (\d+)#\d+: .*cannot write state file/g;
ok(%warnings && !grep({ $_ != 1 } values %warnings),
   'the warning appears once (per leading process)')
    or diag explain \%warnings;

# the leader killed again and again while addresses change: the file always
# parses

config();
$t->start;
$t->allow_log(qr/exited on signal 9/);

ok($t->wait_for(sub { $t->read_file($state) =~ /^end 2$/m }, 10, 'both'),
   'the leader saved both servers again');

my $v = QQ::Nginx->new;
$v->write_config(<<"EOF");
%%LOAD_MODULE%%
%%GLOBALS%%
events {
}
http {
    %%HTTP_GLOBALS%%
    qqfail_provider pf $pf;
    qqfail_state_file $state;
    upstream app {
        qqfail_server server1.example.com:$P;
        qqfail_server server2.example.com:$P;
    }
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        location / {
            proxy_pass http://app;
        }
    }
}
EOF

my ($kills, $broken, $loaded) = (0, 0, 0);

for my $i (1 .. 10) {
    my $addr = $s->backend(1 + $i % 2)->addr;
    $dns->fault_set('server1.example.com', { addrs => [ $addr ] });

    # kill the leader at some moment of its 1 s save delay
    my $wait = 0.3 + rand(1.2);
    my $t0 = time;
    $t->wait_for(sub { time - $t0 >= $wait }, $wait + 1, 'kill moment');

    my $leader = ($s->status // {})->{leader}{pid};
    if ($leader && kill 'KILL', $leader) {
        $kills++;
    }

    $t->wait_for(sub {
        my $st = $s->status or return 0;
        $st->{leader}{pid} && $st->{leader}{pid} != ($leader // 0);
    }, 5, 'new leader');

    my $vmark = $v->log_mark;
    my ($vok, $vout) = $v->test_config;
    $broken++ unless $vok && !ignored_lines($vout);
    $loaded++ if $v->error_log_since($vmark)
                 =~ /addresses of 2 server\(s\) loaded/;
}

is($kills, 10, 'leader killed 10 times while addresses changed');
is($broken, 0, 'the state file parsed after every kill');
ok($loaded >= 9, "and it held both servers ($loaded of 10)");

done_testing();
