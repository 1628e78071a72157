#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The failover policy, from a table: which name a server uses after a round
# of lookups (ngx_http_qqfail_policy_choose, driven by t/unit/policy.c).
# Each row: the round's result per name in order, the name in use, where
# its addresses come from, the good rounds of a better name so far; then
# the name chosen ("keep": every name failed, the last good addresses
# stay) and the count after the round.

use strict;
use warnings;

use Test::More;
use IPC::Open2;

my $unit = $ENV{QQ_UNIT} // '';
my $driver = "$unit/policy";
ok(-x $driver, "the unit driver $driver is built (./build.sh test builds it)")
    or BAIL_OUT('no unit driver: run through ./build.sh test');

my @cases = (
    # states            active source      recover => chosen recover  why
    [ 'ok,ok',             0, 'live',       0, '0 0', 'primary works: stays' ],
    [ 'failed,ok',         0, 'live',       0, '1 0', 'primary fails: alias' ],
    [ 'failed,failed',     0, 'live',       0, 'keep 0',
      'every name fails: last good addresses' ],
    [ 'failed,failed,ok',  0, 'live',       0, '2 0', 'first alias that works' ],
    [ 'failed,ok,ok',      0, 'live',       0, '1 0', 'aliases in order' ],
    [ 'ok,ok',             1, 'live',       0, '1 1',
      'primary back once: stays on the alias' ],
    [ 'ok,ok',             1, 'live',       1, '0 0',
      'primary back twice in a row: returns' ],
    [ 'ok,failed',         1, 'live',       0, '0 0',
      'primary back while the alias fails: returns at once' ],
    [ 'failed,ok',         1, 'live',       1, '1 0',
      'primary fails again: the count starts over' ],
    [ 'ok,noquorum',       1, 'live',       0, '1 1',
      'alias without quorum still works: it stays for now' ],
    [ 'noquorum,failed',   0, 'live',       0, '0 0',
      'no quorum on the name in use: its addresses stay' ],
    [ 'noquorum,ok',       0, 'none',       0, '1 0',
      'no quorum and no address yet: a name that works' ],
    [ 'noquorum,failed',   0, 'none',       0, 'keep 0',
      'no quorum and no address: nothing to use' ],
    [ 'ok,ok',             1, 'state_file', 0, '0 0',
      'addresses from the state file: the best name at once' ],
    [ 'ok,ok',             1, 'none',       0, '0 0',
      'no address: the best name at once' ],
    [ 'ok,ok',             1, 'stale',      0, '1 1',
      'stale on the alias, both work: stays for now' ],
    [ 'unknown,ok',        0, 'live',       0, '1 0',
      'primary undecided (lookup abandoned): alias' ],
    [ 'ok',                1, 'live',       0, '0 0',
      'only the primary asked, the alias in use: returns at once' ],
    [ 'failed',            0, 'literal',    0, 'keep 0',
      'nothing asked resolves: keep' ],
    [ 'ok,ok,ok',          2, 'live',       1, '0 0',
      'second good round: the best name, not the next one' ],
);

my $pid = open2(my $out, my $in, $driver) or die "$driver: $!";

for my $c (@cases) {
    my ($states, $active, $source, $recover, $want, $why) = @$c;
    print $in "$states $active $source $recover\n";
    my $got = <$out> // '';
    chomp $got;
    is($got, $want, "$why ($states, name $active in use, $source, "
                    . "$recover before)");
}

close $in;
waitpid $pid, 0;
is($? >> 8, 0, 'the driver exits cleanly');

done_testing();
