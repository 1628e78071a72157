#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# A reload that loads more dynamic modules (here nginx's stream module and
# the stream front end) gives the module a new index in nginx's tables:
# the lookups go on after it, and a name that moves is followed.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 2, providers => 2);
my ($t, $dns) = ($s->t, $s->dns);

plan skip_all => 'no stream front end or nginx stream module'
    unless $t->has_stream;

my $P = $s->bport;
my $b2 = $s->backend(2)->addr;

sub config {
    my ($more) = @_;
    $s->nginx(workers => 2, main => $more ? '%%LOAD_STREAM%%' : '',
        upstream => "        qqfail_server server1.example.com:$P;\n"
                  . "        qqfail_refresh 1s;");
}

config(0);
$t->start;
is($s->body, 'b1', 'server1 on b1');

config(1);
ok($t->reload, 'reload that loads two more modules');

$dns->set_record('server1.example.com', [ $b2 ]);
ok(defined $s->wait_backend('b2', 15),
   'after the reload a move of server1 is followed (lookups go on)');
like($s->status->{leader}{pid} // '', qr/^\d+$/,
     'status: a leader looks names up');

config(0);
ok($t->reload, 'reload that unloads them');
$dns->set_record('server1.example.com', [ $s->backend(1)->addr ]);
ok(defined $s->wait_backend('b1', 15), 'and the lookups still go on');

$t->stop;

done_testing;
