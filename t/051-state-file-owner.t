#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The state file out of the box: nginx started as root, workers as nobody
# (no "user" line) or www-data, the state file in a directory that does not
# exist yet under a root-owned parent.  The master creates the directory for
# the worker user, the leader writes the file (not world-readable), and a
# cold start with every DNS provider black-holed answers every request from
# it.  An existing directory the workers cannot write into is left alone;
# "nginx -t" and the start say so in one line naming the fix, and the status
# page shows the write error in all three formats.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Topo;

plan skip_all => 'needs root: the master must run as root' unless $> == 0;

my $s = QQ::Topo->new(backends => 2, providers => 2);
my ($t, $dns) = ($s->t, $s->dns);
my $P = $s->bport;

# a root-owned parent, as /var/lib/nginx or /var/cache on Debian

my $parent = $t->dir . '/root-owned';
mkdir $parent or die "mkdir $parent: $!";
chown 0, 0, $parent;
chmod 0755, $parent;

sub config {
    my (%o) = @_;
    my $http = defined $o{state} ? "    qqfail_state_file $o{state};" : '';
    $s->nginx(workers => 2, main => $o{main} // '', http => $http,
        upstream => "        qqfail_server server1.example.com:$P;\n"
                  . "        qqfail_server server2.example.com:$P;\n"
                  . "        qqfail_refresh 1s;\n"
                  . "        qqfail_timeout 300ms;");
}

# the line of the qqfail_state_file directive in nginx.conf
sub directive_line {
    my @lines = split /\n/, $t->read_file('nginx.conf');
    for my $i (0 .. $#lines) {
        return $i + 1 if $lines[$i] =~ /^\s*qqfail_state_file\s/;
    }
    return 0;
}

sub prometheus { return $t->http_get('/status?format=prometheus')->{content} }

# promtool accepts the output with the state file's families
sub promtool_ok {
    my ($text, $what) = @_;
    SKIP: {
        skip 'promtool is not installed', 1 unless -x '/usr/bin/promtool';
        $t->write_file('metrics.txt', $text);
        my $out = qx{/usr/bin/promtool check metrics < @{[ $t->dir ]}/metrics.txt 2>&1};
        is($? >> 8, 0, "$what: promtool check metrics accepts it")
            or diag $out;
    }
}
sub html       { return $t->http_get('/status?format=html')->{content} }

# requests sent and failed over $n sequential requests
sub count_failed {
    my ($n) = @_;
    my $failed = 0;
    for (1 .. $n) {
        $failed++ unless $s->get('/')->{status} == 200;
    }
    return $failed;
}

my @users = ([ 'nobody', '' ]);
push @users, [ 'www-data', 'user www-data;' ] if defined getpwnam('www-data');

for my $u (@users) {
    my ($user, $line) = @$u;
    my ($uid) = (getpwnam($user))[2];
    my $dir = "$parent/new-$user";
    my $state = "$dir/state";

    # a healthy run: the directory is created, the leader writes the file

    config(state => $state, main => $line);
    $t->start;

    ok(-d $dir, "$user: the master created the missing directory");
    my @st = stat $dir;
    is($st[4], $uid, "$user: the directory is the worker user's");
    is(@st ? $st[2] & 07077 : -1, 0,
       "$user: the directory is open to that user only");

    ok($t->wait_for(sub { -s $state && $t->read_file($state) =~ /^end 2$/m },
                    10, "$user: state file"),
       "$user: the leader wrote the state file");
    is(-e $state ? (stat $state)[2] & 0007 : -1, 0,
       "$user: the file is not world-readable");
    is((stat $state)[4], $uid, "$user: the file is the worker user's");

    my $sf;
    ok($t->wait_for(sub {
            $sf = ($s->status // {})->{state_file};
            $sf && $sf->{last_write} > 0;
       }, 10, "$user: last write in the status"),
       "$user: status shows the last write");
    is($sf->{path}, $state, "$user: status: path");
    is($sf->{last_error}, '', "$user: status: no error");
    like(prometheus(),
         qr/^qqfail_state_file_ok\{path="\Q$state\E"\} 1$/m,
         "$user: prometheus: qqfail_state_file_ok 1");
    like(prometheus(),
         qr/^qqfail_state_file_last_write_timestamp_seconds\{path="\Q$state\E"\} [1-9]\d*$/m,
         "$user: prometheus: last write timestamp");
    promtool_ok(prometheus(), "$user: prometheus") if $user eq 'nobody';
    $t->stop;

    # cold start during a total DNS outage: every request answered

    $dns->blackhole_provider($_) for $dns->providers;
    $t->start;

    my $n = 100;
    my $failed = count_failed($n);
    is($failed, 0, "$user: every provider black-holed, cold start: "
                   . "$n requests sent, $failed failed");
    is(($s->server_status('server1.example.com') // {})->{source},
       'state_file', "$user: status: source state_file");

    $t->stop;
    $dns->restore_provider($_) for $dns->providers;
}

# a reload to a path in another missing directory: created by the master
# at the reload, written by the new generation's leader, shown in the status

{
    my $dir = "$parent/reloaded";
    my $state = "$dir/state";

    config(state => "$parent/new-nobody/state");
    $t->start;
    config(state => $state);
    ok($t->reload, 'reload to a state file in a missing directory');
    is((stat $dir)[4], scalar getpwnam('nobody'),
       'reload: the master created the directory for nobody');
    ok($t->wait_for(sub { -s $state && $t->read_file($state) =~ /^end 2$/m },
                    10, 'state file after the reload'),
       'reload: the new leader wrote the file');
    ok($t->wait_for(sub {
            my $sf = ($s->status // {})->{state_file};
            $sf && $sf->{path} eq $state && $sf->{last_write} > 0
                && $sf->{last_error} eq '';
       }, 10, 'status after the reload'),
       'reload: the status shows the new path written');
    $t->stop;
}

# an existing root-owned 0755 directory: left alone, one line naming the fix

my $ro = "$parent/existing";
mkdir $ro or die "mkdir $ro: $!";
chown 0, 0, $ro;
chmod 0755, $ro;

config(state => "$ro/state");
my $conf = $t->conf_path;
my $where = "$conf:" . directive_line();
my $fix = qr/nginx: \[warn\] qqfail: the worker user "nobody" cannot write state files in "\Q$ro\E" \(owner root, mode 0755\): make the directory that user's \("chown nobody \Q$ro\E"\) or choose another "qqfail_state_file" in \Q$where\E$/m;

my ($ok, $out) = $t->test_config;
ok($ok, 'nginx -t passes (a warning, not an error)') or diag $out;
like($out, $fix, 'nginx -t: one line naming the user, the directory and '
                 . 'the fix');
is(() = $out =~ /cannot write state files/g, 1, 'nginx -t: said once');

my $mark = $t->log_mark;
$t->start;
ok($t->wait_for(sub {
        my $sf = ($s->status // {})->{state_file};
        $sf && $sf->{last_error} ne '';
   }, 10, 'write error in the status'),
   'status: the leader tried and failed');

my $log = $t->error_log_since($mark);
is(() = $log =~ /qqfail: the worker user "nobody" cannot write state files in "\Q$ro\E"/g,
   1, 'start: the line is logged once');
is((stat $ro)[4], 0, 'the existing directory is not chowned');
is((stat $ro)[2] & 07777, 0755, 'nor chmod-ed');
is($s->body, 'b1', 'nginx proxies anyway');

my $sf = $s->status->{state_file};
is($sf->{path}, "$ro/state", 'json: path');
is($sf->{last_write}, 0, 'json: never written');
like($sf->{last_error}, qr/^open\(\) failed \(13: Permission denied\)$/,
     'json: the error');

my $prom = prometheus();
like($prom, qr/^qqfail_state_file_ok\{path="\Q$ro\E\/state"\} 0$/m,
     'prometheus: qqfail_state_file_ok 0');
like($prom, qr/^qqfail_state_file_last_write_timestamp_seconds\{path="\Q$ro\E\/state"\} 0$/m,
     'prometheus: never written');
like($prom, qr/^qqfail_state_file_error_info\{path="\Q$ro\E\/state",error="open\(\) failed \(13: Permission denied\)"\} 1$/m,
     'prometheus: the error');
promtool_ok($prom, 'prometheus with a write error');

my $html = html();
like($html, qr{<h2>State file</h2>}, 'html: a state file section');
like($html, qr{<td>\Q$ro\E/state</td><td class="failed">never</td><td class="failed">open\(\) failed \(13: Permission denied\)</td>},
     'html: path, never written, the error');
$t->stop;

# no state file: null in JSON, absent from Prometheus and HTML

config();
$t->start;
my $st = $s->status;
ok($st && exists $st->{state_file} && !defined $st->{state_file},
   'json: state_file null without qqfail_state_file');
unlike(prometheus(), qr/qqfail_state_file/, 'prometheus: no state file '
                                            . 'metrics');
unlike(html(), qr/State file/, 'html: no state file section');
$t->stop;

done_testing();
