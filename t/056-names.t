#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Names nginx accepts are names the module keeps: upstream names with a
# space and a newline, long UTF-8 names, bytes that are not UTF-8 (0xFF, a
# lead byte followed by another lead byte, a surrogate), and a state file
# under a UTF-8 directory.  The state file round-trips them (a
# restart with DNS silent gives every upstream its addresses back), and
# every format of the status page stays valid UTF-8, names cut only at a
# character boundary.

use strict;
use warnings;

use Test::More;
use Encode ();
use JSON::PP ();

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

my $s = QQ::Topo->new(backends => 1, providers => 0);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;
my $b1 = $s->backend(1)->addr;

my $pf = $dns->start_fault_server;
$dns->fault_set('*', { addrs => [ $b1 ], ttl => 1 });

# bytes, as nginx reads them from its configuration
my $spaced = "my app\nsecond line";
my $long = "\xc3\xa9" x 60 . 'x';                 # 121 bytes of UTF-8
# "\xc3\xc3" and the surrogate "\xed\xa0\x80" passed through as UTF-8 once
my $broken = "bad\xffname\xc3\xc3\xed\xa0\x80";

my $dir = $t->dir . "/\xc3\xa9tat";
mkdir $dir;
chmod 0777, $dir;
my $state = "$dir/state";

sub quoted {
    my ($name) = @_;
    (my $q = $name) =~ s/\n/\\n/g;
    return "\"$q\"";
}

my $i = 0;
my $extra = join '', map {
    $i++;
    "    upstream " . quoted($_) . " {\n"
  . "        qqfail_server name$i.example.com:$P;\n"
  . "        qqfail_refresh 1s;\n"
  . "        qqfail_timeout 300ms;\n"
  . "    }\n"
} $spaced, $long, $broken;

$s->nginx(workers => 1,
    providers => "    qqfail_provider pf $pf;\n",
    http => "    qqfail_state_file $state;\n$extra",
    upstream => "        qqfail_server server1.example.com:$P;\n"
              . "        qqfail_timeout 300ms;");

$t->start;
ok($t->wait_for(sub { -s $state && $t->read_file($state) =~ /^end 4$/m }, 10,
                'state file'), 'the state file holds the four upstreams');

# the long name fails: its events carry the upstream name, cut

$dns->fault_set('name2.example.com', { rcode => 'SERVFAIL', ttl => 1 });
ok($t->wait_for(sub {
        my $st = $s->status or return 0;
        grep { ($_->{message} // '') =~ /every provider failed/ }
             @{ $st->{events} };
    }, 15, 'event'), 'an event of the long-named upstream is recorded');

sub body { return $t->http_get('/status?format=' . $_[0])->{content} // '' }

for my $f (qw(json prometheus html)) {
    my $b = body($f);
    my $copy = $b;
    ok(eval { Encode::decode('UTF-8', $copy, Encode::FB_CROAK); 1 },
       "$f: valid UTF-8 (" . length($b) . ' bytes)') or diag $@;
}

my $st = JSON::PP->new->utf8->decode(body('json'));
my %names = map { Encode::encode('UTF-8', $_->{name}) => 1 }
            @{ $st->{upstreams} };
ok($names{$spaced}, 'JSON: the name with a space and a newline, whole');
ok($names{$long}, 'JSON: the long UTF-8 name, whole');
ok($names{"bad\xef\xbf\xbdname" . "\xef\xbf\xbd" x 5},
   'JSON: each byte that is not UTF-8 shows as U+FFFD');
is(Encode::encode('UTF-8', $st->{state_file}{path} // ''), $state,
   'JSON: the UTF-8 state file path');

my ($ev) = grep { ($_->{message} // '') =~ /every provider failed/ }
           @{ $st->{events} };
my $evu = Encode::encode('UTF-8', $ev->{upstream} // '');
ok(length($evu) < length($long) && index($long, $evu) == 0
   && length($evu) % 2 == 0,
   'the event keeps the upstream name cut at a character boundary ('
   . length($evu) . ' bytes)');

like(body('prometheus'), qr/upstream="my app\\nsecond line"/,
     'Prometheus: the newline escaped in a label');

SKIP: {
    my $promtool = -x '/usr/bin/promtool' ? '/usr/bin/promtool' : undef;
    skip 'promtool not installed', 1 unless $promtool;
    $t->write_file('metrics.txt', body('prometheus'));
    my $out = `$promtool check metrics < @{[ $t->dir ]}/metrics.txt 2>&1`;
    ok($? == 0, 'promtool accepts the metrics') or diag $out;
}

# a restart with DNS silent: the state file gives every upstream its
# addresses back

$dns->fault_set('name2.example.com', { addrs => [ $b1 ], ttl => 1 });
ok($t->wait_for(sub { $t->read_file($state) =~ /name2\.example\.com/ }, 10,
                'name2 saved'), 'the long-named upstream is saved again');

$t->stop;
my $saved = $t->read_file($state);
like($saved, qr/^s my%20app%0Asecond%20line name1\.example\.com:$P /m,
     'the state file escapes the space and the newline');

$dns->fault_set('*', { drop => 1 });
$dns->fault_set('name2.example.com', { drop => 1 });
my $mark = $t->log_mark;
ok($t->try_start, 'nginx starts with DNS silent');
like($t->error_log_since($mark), qr/addresses of 4 server\(s\) loaded/,
     'the state file is read whole');

$st = JSON::PP->new->utf8->decode(body('json'));
my @src = map { $_->{servers}[0]{source} } @{ $st->{upstreams} };
is(join(' ', @src), join(' ', ('state_file') x 4),
   'every upstream, odd names included, has its addresses from the file');

done_testing();
