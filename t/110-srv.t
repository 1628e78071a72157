#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# SRV records ("service="), on the real topology: nsd serves the SRV
# records and their targets at both registrars, unbound providers resolve
# them.  Ports and weights come from the records, a priority after the
# lowest is backup, a target that moves is followed, a shrinking set is
# taken when the providers agree, the SRV name failing at registrar A
# fails over to the alias at registrar B, and the addresses (with their
# ports and weights) outlive every provider and a cold start through the
# state file.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;
use QQ::Backend;

my $s = QQ::Topo->new(backends => 0, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);

# four backends, each on a port of its own; b4 shares b2's port, to take
# over b2's target

my @b;
for my $i (1 .. 3) {
    push @b, QQ::Backend->new(t => $t, id => "b$i", addr => $t->addr(20 + $i));
}
push @b, QQ::Backend->new(t => $t, id => 'b4', addr => $t->addr(24),
                          port => $b[1]->port);
$_->start for @b;

my ($b1, $b2, $b3, $b4) = @b;

sub srv_set {
    my ($zone, @skip) = @_;
    my %skip = map { $_ => 1 } @skip;
    return { srv => [
        grep { !$skip{ (split /\./, $_->[3])[0] } }
        [10, 60, $b1->port, "s1.$zone"],
        [10, 20, $b2->port, "s2.$zone"],
        [20, 10, $b3->port, "s3.$zone"],
    ] };
}

my %records;
for my $zone ('example.com', 'example.net') {
    $records{"_http._tcp.app.$zone"} = srv_set($zone);
    $records{"s$_.$zone"} = [ $b[$_ - 1]->addr ] for 1 .. 3;
}
$dns->set_records(\%records);
$dns->start_providers(3);

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';

$s->nginx(workers => 2,
    http => "    qqfail_state_file %%DIR%%/state/state;",
    upstream => "        qqfail_server app.example.com app.example.net "
              . "service=http;\n"
              . "        qqfail_refresh 1s;\n"
              . "        qqfail_timeout 1s;");

my @figures;

sub finish { return $s->finish(@_, \@figures) }

sub server { return $s->server_status('app.example.com') }
sub addrs  { return $s->addresses('app.example.com') }

sub active {
    my $st = server() or return '';
    return ($st->{active_name} // '') . ' ' . $st->{source};
}

sub expect { return join ' ', sort map { $_->addr_port } @_ }

sub share {
    my ($n) = @_;
    my $c = $s->spread($n);
    return { map { $_ => 100 * ($c->{$_} // 0) / $n } keys %$c };
}

$t->start;

ok($t->wait_for(sub { addrs() eq expect($b1, $b2, $b3) }, 15, 'SRV set'),
   'ports from the SRV records: ' . addrs());
is(active(), 'app.example.com live', 'the SRV name at registrar A is used');

my $st = server();
is($st->{service}, 'http', 'status: service "http"');
my %w = map { $_->{address} => "$_->{weight}/"
                               . ($_->{backup} ? 'backup' : 'primary') }
        @{ $st->{addresses} };
is_deeply(\%w, { $b1->addr_port => '60/primary', $b2->addr_port => '20/primary',
                 $b3->addr_port => '10/backup' },
          'status: weights from the records, priority 20 is backup');
is($st->{name_status}[0]{name}, 'app.example.com', 'status: the name');

my $prom = $s->get('/status?format=prometheus')->{content};
my ($p1, $p3) = map { quotemeta $_->addr_port } $b1, $b3;
like($prom, qr/^qqfail_address_weight\{upstream="app",server="app\.example\.com",address="$p1"\} 60$/m,
     'Prometheus: the weight of the record');
like($prom, qr/^qqfail_address_backup\{upstream="app",server="app\.example\.com",address="$p3"\} 1$/m,
     'Prometheus: priority 20 is a backup');
like($prom, qr/^qqfail_address_backup\{upstream="app",server="app\.example\.com",address="$p1"\} 0$/m,
     'Prometheus: priority 10 is not');
my $html = $s->get('/status?format=html')->{content};
like($html, qr/$p3<\/span> <small>up, 0 fails, 0 active, weight 10, backup/,
     'HTML: the weight of the record, backup');

# weights 60/20: 75% and 25%, the backup unused

my $sh = share(400);
ok(abs(($sh->{b1} // 0) - 75) <= 5 && abs(($sh->{b2} // 0) - 25) <= 5
   && !$sh->{b3}, sprintf 'shares by SRV weight: b1 %.1f%%, b2 %.1f%%, '
                        . 'b3 %.1f%%', $sh->{b1} // 0, $sh->{b2} // 0,
                          $sh->{b3} // 0)
    or diag explain $sh;

# priority fallback: both primaries stop, the priority-20 target serves

my $load = $s->load;
$b1->stop;
$b2->stop;
ok($s->wait_backend('b3', 10), 'primaries down: the priority-20 record serves');
my $n3 = $b3->requests;
$t->wait_for(sub { $b3->requests > $n3 + 300 }, 20, 'load on the backup');
finish($load, 'priority fallback');
$b1->start;
$b2->start;
ok($s->wait_backend('b1', 20, 1), 'primaries back');

# a target moves: s2 now points to b4 (on the same port)

$load = $s->load;
$dns->set_record('s2.example.com', [ $b4->addr ]);
ok($t->wait_for(sub { addrs() eq expect($b1, $b4, $b3) }, 15, 'moved'),
   'target moved: ' . addrs());
ok($s->wait_backend('b4', 10, 1), 'the moved target answers');
my $n4 = $b4->requests;
$t->wait_for(sub { $b4->requests > $n4 + 200 }, 20, 'load on the moved target');
finish($load, 'target moved');

# the set shrinks when the providers agree: s1 leaves the SRV set

$dns->set_record('_http._tcp.app.example.com', srv_set('example.com', 's1'));
ok($t->wait_for(sub { addrs() eq expect($b4, $b3) }, 15, 'shrunk'),
   'SRV set shrank: ' . addrs());
is_deeply([ sort keys %{ $s->spread(40) } ], [ 'b4' ],
          'only the remaining primary answers');

$dns->set_records({ '_http._tcp.app.example.com' => srv_set('example.com'),
                    's2.example.com' => [ $b2->addr ] });
ok($t->wait_for(sub { addrs() eq expect($b1, $b2, $b3) }, 15, 'restored'),
   'SRV set restored');

# NXDOMAIN for the SRV name at registrar A: registrar B's takes over, and
# the NXDOMAIN never empties the set

$load = $s->load;
my $mark = $t->log_mark;
$dns->del_record('_http._tcp.app.example.com');
ok($t->wait_for(sub { active() eq 'app.example.net live' }, 20, 'failover'),
   'SRV name NXDOMAIN at registrar A: failover to app.example.net');
ok($t->wait_for_log(qr/qqfail: every provider failed for "app\.example\.com" \(nxdomain\), failing over to "app\.example\.net", upstream "app", server "app\.example\.com"/,
                    5, $mark), 'failover logged');
is(addrs(), expect($b1, $b2, $b3), 'the alias gives the same targets');
finish($load, 'SRV NXDOMAIN at registrar A');

# every provider down: the last good addresses, with their ports

$load = $s->load(keepalive => 0);
$dns->blackhole_provider($_) for 1 .. 3;
ok($t->wait_for(sub { active() =~ / stale$/ }, 20, 'stale'),
   'every provider down: stale');
is(addrs(), expect($b1, $b2, $b3), 'stale: the SRV addresses and ports kept');
finish($load, 'every provider down');

# a cold start during the outage: the state file keeps ports and weights

$t->stop;
my $state = $t->read_file('state/state');
my ($line) = $state =~ /^(s app _http\._tcp\.app\.example\.com:srv,_http\._tcp\.app\.example\.net:srv 1 \d+ .*)$/m;
is(join(' ', sort grep { /:\d+\// } split / /, $line // ''),
   join(' ', sort $b1->addr_port . '/60', $b2->addr_port . '/20',
                  $b3->addr_port . '/10b'),
   'state file: the SRV addresses with their weights, backup marked')
    or diag $state;

ok($t->try_start, 'nginx starts with every provider down');
is(active(), 'app.example.net state_file', 'cold start: from the state file');
is(addrs(), expect($b1, $b2, $b3), 'cold start: the ports from the file');
%w = map { $_->{address} => "$_->{weight}/"
                            . ($_->{backup} ? 'backup' : 'primary') }
     @{ server()->{addresses} };
is($w{ $b3->addr_port }, '10/backup', 'cold start: the backup is still backup');

$load = $s->load;
$sh = share(400);
ok(abs(($sh->{b1} // 0) - 75) <= 5 && !$sh->{b3},
   sprintf 'cold start: shares by SRV weight (b1 %.1f%%)', $sh->{b1} // 0)
    or diag explain $sh;
finish($load, 'cold start during the total outage');

# DNS back, the SRV name back at registrar A

$dns->restore_provider($_) for 1 .. 3;
$dns->set_record('_http._tcp.app.example.com', srv_set('example.com'));
$dns->flush_provider;
ok($t->wait_for(sub { active() eq 'app.example.com live' }, 30, 'back'),
   'DNS back: the SRV name at registrar A again');

note $_ for @figures;

$t->stop;
ok(!$t->sanitizer_reports, 'no sanitizer reports');

done_testing;
