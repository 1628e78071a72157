#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# State-file addresses are read strictly: an address that lost a digit or
# an octet is not read as some other address, it makes the file invalid
# (one log line, nginx starts).  Every address form the module writes,
# IPv6 included, reads back as itself: a cold start with DNS silent proxies
# from the file, and the leader writes the same addresses back.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { drop => 1 });
$dns->fault_set('server1.example.com', { drop => 1 });

mkdir $t->dir . '/state';
chmod 0777, $t->dir . '/state';
my $state = $t->dir . '/state/state';

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    http => "    qqfail_state_file $state;",
    upstream => "        qqfail_server server1.example.com:$P;\n"
              . "        qqfail_timeout 300ms;");

sub file_with {
    my (@addrs) = @_;
    return "qqfail-state 1\n"
         . "s app server1.example.com:$P 0 " . time . " @addrs\n"
         . "end 1\n";
}

# malformed addresses: the whole file is refused, in one line

my @bad = ('127.77.241.:8080', '127...1:8080', '.77.241.10:8080',
           '127.0.0.1:', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536',
           '127.0.0.1:80:80', '1.2.3.4.5:80', '256.1.1.1:80', '1.2.3:80',
           '0x7f.0.0.1:80', '[::1]8080', '[::1:8080', '[::1]:', '[]:80',
           '[fe80::1%lo]:80', '[::g]:80', '::1:80', '[1.2.3.4]:80');

for my $a (@bad) {
    $t->write_file('state/state', file_with("$b1:$P", $a));
    my ($ok, $out) = $t->test_config;
    ok($ok && $out =~ /ignored: invalid address in line 2/,
       "\"$a\": nginx -t passes and says the file is invalid")
        or diag $out;
}

# every form the module writes reads back as itself

my @good = ("$b1:$P", "[::1]:$P", "[2001:db8::1]:$P",
            "[::ffff:127.0.0.1]:$P", "[2001:db8:0:1:2:3:4:5]:$P",
            "192.0.2.1:$P");

$t->write_file('state/state', file_with(@good));
my ($ok, $out) = $t->test_config;
ok($ok && $out !~ /ignored/, 'nginx -t accepts every form') or diag $out;

my $before = -M $state;
ok($t->try_start, 'nginx starts with DNS silent');
ok($s->wait_backend('b1', 10), 'requests are proxied from the state file');

my %got = map { $_->{address} => 1 }
          @{ ($s->server_status('server1.example.com') || {})->{addresses} };
is(join(' ', sort keys %got), join(' ', sort @good),
   'the status page shows exactly the addresses of the file');

# the leader writes the file at once when it starts leading
ok($t->wait_for(sub { -M $state < $before }, 10, 'state file rewritten'),
   'the leader wrote the state file');
my ($line) = $t->read_file($state) =~ /^s app (.*)$/m;
my @back = split ' ', $line // '';
splice @back, 0, 3;
is(join(' ', sort @back), join(' ', sort @good),
   'the addresses written back are the ones read');

done_testing();
