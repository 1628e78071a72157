#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# demo/demo.pl (./build.sh demo) in its short form: it plays every phase
# of the outage story, exits 0 with a clean summary and no TAP noise, and
# stops every process it started, also on Ctrl-C (SIGINT to its process
# group, as a terminal sends it) with --keep and in the middle of the story.

use strict;
use warnings;

use Test::More;
use File::Temp ();
use HTTP::Tiny;
use JSON::PP ();
use Time::HiRes qw(time sleep);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;
use QQ::DNS;
use QQ::Proc;

plan skip_all => 'needs root (the sandbox DNS servers use port 53)' if $> != 0;
if (my @missing = QQ::DNS::missing_tools()) {
    plan skip_all => "missing @missing";
}
plan skip_all => 'module not built: ' . QQ::Nginx->module_path
    unless -f QQ::Nginx->module_path;
plan skip_all => 'setsid(1) not found' unless -x '/usr/bin/setsid';

my $demo = QQ::Nginx->repo_root . '/demo/demo.pl';
my $out_dir = File::Temp::tempdir('qqdemo.XXXXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);

# the pgid of a process, or undef
sub pgid {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return undef;
    my $line = <$fh> // '';
    $line = substr $line, rindex($line, ')') + 2;
    my (undef, undef, $pgrp) = split ' ', $line;
    return $pgrp;
}

# processes (not zombies) of a process group
sub group_members {
    my ($pgid) = @_;
    my @pids;
    opendir my $dh, '/proc' or return ();
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $line = <$fh> // '';
        my @f = split ' ', substr($line, rindex($line, ')') + 2);
        push @pids, $p if $f[2] == $pgid && $f[0] ne 'Z';
    }
    return @pids;
}

# start the demo as the leader of its own process group (setsid execs in
# place: our child is never a group leader); returns ($pid, $output_file)
my $run = 0;
sub start_demo {
    my (@args) = @_;
    my $out = "$out_dir/demo-" . ++$run . '.out';
    my $pid = QQ::Proc::spawn(name => 'demo', cmd => [ '/usr/bin/setsid',
                              $^X, $demo, @args ], stdout => $out);
    return ($pid, $out);
}

sub wait_exit {
    my ($pid, $timeout) = @_;
    return undef unless QQ::Proc::poll_until(sub { !QQ::Proc::alive($pid) },
                                             $timeout, 0.1);
    my $st = QQ::Proc::exit_status($pid);
    return undef unless defined $st && $st >= 0;
    return $st & 127 ? 'signal ' . ($st & 127) : $st >> 8;
}

sub sandbox_dir {
    my ($out) = @_;
    return QQ::Proc::slurp($out) =~ /^sandbox:\s+(\S+)$/m ? $1 : undef;
}

# --- the whole story, short form --------------------------------------------

{
    my $start = time;
    my ($pid, $out) = start_demo('--fast');
    my $status = wait_exit($pid, 170);
    my $took = time - $start;
    my $text = QQ::Proc::slurp($out);

    ok(defined $status, sprintf 'demo --fast finished (%.0fs)', $took)
        or QQ::Proc::stop($pid);
    is($status, 0, 'demo --fast exits 0') or diag $text;

    like($text, qr{^proxy:\s+http://127\.\d+\.\d+\.1:\d+/$}m,
         'it prints the proxy URL');
    like($text, qr{^status page:\s+http://127\.\d+\.\d+\.1:\d+/qqfail\b}m,
         'it prints the status page URL');

    for my $phase ('start: DNS works',
                   "(a) registrar A's DNS goes down (example.com)",
                   '(b) every DNS provider goes down',
                   '(c) nginx is restarted during the total outage',
                   '(d) DNS comes back') {
        like($text, qr/^  ok   \Q$phase\E +reached in [\d.]+s, [1-9]\d* requests, 0 failed$/m,
             "summary: $phase: ok, requests, 0 failed");
    }
    like($text, qr/^  requests: [1-9]\d* sent, 0 failed$/m,
         'summary: requests sent, 0 failed');
    like($text, qr/^  failovers \(.*\): server1 [1-9]\d*, server2 [1-9]\d*, server3 [1-9]\d*$/m,
         'summary: failovers per server');
    for my $check ('no [alert] or [crit] in error.log',
                   'no process exited on signal', 'no sanitizer reports') {
        like($text, qr/^  ok   \Q$check\E$/m, "summary: $check");
    }
    like($text, qr/^PASS: /m, 'summary: PASS');

    # the live lines show each phase's state
    like($text, qr/^ +[\d.]+s +\d+ +0 +example\.net live +example\.net live +example\.net live +up\/up\/up$/m,
         'live line: every server on example.net');
    like($text, qr/^ +[\d.]+s +\d+ +0 +example\.net stale +example\.net stale +127\.[\d.]+ literal +down\/down\/down$/m,
         'live line: stale addresses and the literal, providers down');
    like($text, qr/^ +[\d.]+s +\d+ +0 +example\.net state_file +example\.net state_file +127\.[\d.]+ (?:literal|state_file) +down\/down\/down$/m,
         'live line: after the restart, from the state file');
    like($text, qr/load paused/, 'it says the load is paused for the restart');

    unlike($text, qr/^(?:not )?ok \d|^1\.\.\d|^#/m, 'no TAP in the output');

    my $dir = sandbox_dir($out);
    ok($dir && !-e $dir, 'the sandbox directory is removed');
    is(scalar(group_members($pid)), 0, 'no process of the demo is left');
}

# --- --keep, then Ctrl-C ----------------------------------------------------

{
    my ($pid, $out) = start_demo('--fast', '--keep');
    ok(QQ::Proc::poll_until(sub { (pgid($pid) // 0) == $pid }, 10, 0.05),
       'the demo leads its own process group');
    my $ready = QQ::Proc::poll_until(
        sub { !QQ::Proc::alive($pid) || QQ::Proc::slurp($out) =~ /press Ctrl-C/ }, 170, 0.2);
    ok($ready && QQ::Proc::alive($pid),
       '--keep: the sandbox stays up after the story')
        or diag QQ::Proc::slurp($out);

    my $text = QQ::Proc::slurp($out);
    my ($url) = $text =~ m{^  status page: (http://\S+)$}m;
    # an IP literal URL: nothing is resolved
    my $st = ($url // '') =~ m{^http://127\.[\d.]+:\d+/qqfail$} && eval {
        JSON::PP::decode_json(HTTP::Tiny->new(proxy => undef, timeout => 5)
                              ->get($url)->{content});
    };
    is(ref $st eq 'HASH' && scalar @{ $st->{providers} || [] }, 3,
       '--keep: the status page answers, with three providers');

    my @members = group_members($pid);
    ok(@members > 10, scalar(@members) . ' processes in the sandbox');

    kill 'INT', -$pid;          # what a terminal does on Ctrl-C
    my $status = wait_exit($pid, 60);
    $text = QQ::Proc::slurp($out);
    is($status, 0, 'Ctrl-C after the story: exit 0') or diag $text;
    like($text, qr/^PASS: /m, 'the summary says PASS');
    ok(QQ::Proc::poll_until(sub { !group_members($pid) }, 5, 0.1),
       'Ctrl-C: every process of the sandbox stopped')
        or diag join "\n", map { QQ::Proc::cmdline($_) } group_members($pid);
    my $dir = sandbox_dir($out);
    ok($dir && !-e $dir, 'the sandbox directory is removed');
    unlike($text, qr/^(?:not )?ok \d|^1\.\.\d|^#/m, 'no TAP in the output');
}

# --- Ctrl-C in the middle of the story ----------------------------------------

{
    my ($pid, $out) = start_demo('--fast');
    my $ready = QQ::Proc::poll_until(
        sub { !QQ::Proc::alive($pid) || QQ::Proc::slurp($out) =~ /stopping registrar A/ },
        60, 0.1);
    ok($ready && QQ::Proc::alive($pid), 'the story reaches phase (a)');
    kill 'INT', -$pid;
    my $status = wait_exit($pid, 60);
    my $text = QQ::Proc::slurp($out);
    is($status, 130, 'Ctrl-C during the story: exit 130') or diag $text;
    like($text, qr/^interrupted \(SIGINT\) during \(a\)/m,
         'it says where it was interrupted');
    like($text, qr/^INTERRUPTED: /m, 'the summary says INTERRUPTED');
    like($text, qr/^  ok   no \[alert\] or \[crit\] in error\.log$/m,
         'the log checks still ran');
    ok(QQ::Proc::poll_until(sub { !group_members($pid) }, 5, 0.1),
       'every process of the sandbox stopped')
        or diag join "\n", map { QQ::Proc::cmdline($_) } group_members($pid);
}

done_testing();
