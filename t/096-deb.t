#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The Debian packages as an operator uses them: ./build.sh deb builds
# libnginx-mod-http-qqfail_VERSION_ARCH.deb and its stream front end,
# libnginx-mod-stream-qqfail_VERSION_ARCH.deb, into dist/ and lintian finds
# no error in them; then, in a fresh Debian root (debootstrap minbase,
# nothing else), t/deb/fresh-install.sh installs both with apt-get install
# ./*.deb, runs nginx -t with the stock nginx.conf, proxies HTTP and TCP
# through qqfail upstreams (user www-data), restarts nginx with its DNS
# provider down and still proxies from the state file, then apt-get purge
# must leave no file behind.  Each of its checks is one test here.
#
# Runs only with ./build.sh test --deb (QQ_DEB=1): it builds a package and a
# Debian root, a few minutes.  The root is made by QQ_FRESH_MACHINE if set,
# else by ../shared/tools/fresh-machine.sh next to the checkout if it is
# there (and QQ_FRESH_OWN is not set), else by our own t/deb/fresh-root.sh
# (a clean clone in CI).  Both take the command to run inside as their
# argument.  The .deb and the script reach the root through /dev/shm, which
# both bind into it with /dev.
#
# QQ_DEB_SUITE=SUITE (e.g. trixie, Debian 13) tests the package of another
# Debian release than the host's: the package is built in a fresh root of
# that suite (t/deb/fresh-build.sh: ./build.sh deb on a copy of the
# working tree) and installed in another fresh root of it; both tools are
# told the suite (FRESH_SUITE, QQ_FRESH_SUITE).

use strict;
use warnings;

use Test::More;
use Fcntl qw(:flock);
use File::Copy qw(copy);
use File::Spec;
use File::Temp qw(tempdir);
use Time::HiRes qw(time);

use FindBin;

# (not QQ::Proc: it makes this process a child subreaper, and the nginx
# daemons of the fresh root would become its zombies)

sub slurp {
    my ($path) = @_;
    return '' unless -r $path;
    local (@ARGV, $/) = ($path);
    return <> // '';
}

plan skip_all => 'the package test runs with ./build.sh test --deb'
    unless $ENV{QQ_DEB};

my $root = File::Spec->rel2abs("$FindBin::Bin/..");
my $shared = File::Spec->rel2abs("$root/../shared/tools/fresh-machine.sh");
my $fresh = $ENV{QQ_FRESH_MACHINE}
            || (-f $shared && !$ENV{QQ_FRESH_OWN} ? $shared
                : "$root/t/deb/fresh-root.sh");

BAIL_OUT('t/096-deb.t needs root (apt-get, chroot)') if $> != 0;
BAIL_OUT("t/096-deb.t needs $fresh (set QQ_FRESH_MACHINE)") unless -f $fresh;
BAIL_OUT('t/096-deb.t needs /dev/shm') unless -d '/dev/shm';
note "the fresh root: $fresh";

# one package test at a time on this machine: fixed addresses 127.96.0.x,
# outside the harness's 127.A.B.0/24 blocks (A and B 2..250)
my $lockdir = File::Spec->catdir(File::Spec->tmpdir, 'qqtest-locks');
mkdir $lockdir;
open my $lock, '>', "$lockdir/deb.lock" or die "lock: $!";
flock $lock, LOCK_EX or die "flock: $!";

my $suite = $ENV{QQ_DEB_SUITE} // '';
BAIL_OUT("QQ_DEB_SUITE=\"$suite\" is not a suite name")
    unless $suite =~ /^[a-z]*$/;
if ($suite) {
    $ENV{FRESH_SUITE} = $ENV{QQ_FRESH_SUITE} = $suite;
    note "suite: $suite (built and installed in fresh roots of it)";
}

# the files handed into the fresh roots
my $dir = tempdir('qqdeb.XXXXXXXX', DIR => '/dev/shm', CLEANUP => 1);

# build

my $t0 = time;
my ($out, $debdir);

if ($suite) {
    system('tar', '-C', $root, '--exclude=./.git', '--exclude=./build',
           '--exclude=./objs', '--exclude=./dist', '-cf', "$dir/src.tar",
           '.') == 0 or BAIL_OUT("cannot copy the tree into $dir");
    copy("$root/t/deb/fresh-build.sh", $dir) or die "copy: $!";
    my $fout =
        qx{cd "$root" && bash "$fresh" "bash $dir/fresh-build.sh $dir" 2>&1};
    my $rc = $? >> 8;
    $out = slurp("$dir/build.out");
    is($rc, 0, "./build.sh deb in a fresh $suite root") or diag $fout, $out;
    $debdir = $dir;
} else {
    $out = qx{"$root/build.sh" deb 2>&1};
    is($? >> 8, 0, './build.sh deb') or diag $out;
    $debdir = "$root/dist";
}

like($out, qr/^build\.sh: lintian: no error$/m, 'lintian reports no error');
note sprintf 'build and lintian: %.0fs', time - $t0;
note $_ for grep { /^[EWI]: / } split /\n/, $out;

my @debs = glob "$debdir/libnginx-mod-http-qqfail_*.deb";
is(scalar @debs, 1, 'one libnginx-mod-http-qqfail_VERSION_ARCH.deb')
    or BAIL_OUT("no package in $debdir");

my $deps = qx{dpkg-deb -f "$debs[0]" Depends};
like($deps, qr/(?:^|, )nginx-abi-[\w.-]+(?:,|$)/,
     'it depends on the nginx ABI it was built for');
# (c-ares is libc-ares2 in Debian 12, libcares2 in Debian 13)
like($deps, qr/libc-?ares2/, 'and on c-ares (shlibs)');
like($deps, qr/libmaxminddb0/, 'and on libmaxminddb (shlibs)');

my @sdebs = glob "$debdir/libnginx-mod-stream-qqfail_*.deb";
is(scalar @sdebs, 1, 'one libnginx-mod-stream-qqfail_VERSION_ARCH.deb')
    or BAIL_OUT("no stream package in $debdir");

my ($version) = $debs[0] =~ /_([^_]+)_[^_]+\.deb$/;
my $sdeps = qx{dpkg-deb -f "$sdebs[0]" Depends};
like($sdeps, qr/(?:^|, )nginx-abi-[\w.-]+(?:,|$)/,
     'the stream package depends on the nginx ABI');
# (Debian 13's nginx-dev makes it libnginx-mod-stream (>= V), (<< V.1~))
like($sdeps, qr/(?:^|, )libnginx-mod-stream(?: \(|,|$)/,
     'on nginx\'s stream module');
like($sdeps, qr/(?:^|, )libnginx-mod-http-qqfail \(= \Q$version\E\)/,
     "and on the http package of its version ($version)");

# install, run, purge in a fresh root

unlink "$dir/src.tar";
unless ($suite) {
    copy($_, $dir) or die "copy $_: $!" for $debs[0], $sdebs[0];
}
copy("$root/t/deb/fresh-install.sh", $dir) or die "copy: $!";

$t0 = time;
$out = qx{cd "$root" && bash "$fresh" "bash $dir/fresh-install.sh $dir" 2>&1};
my $status = $? >> 8;
note sprintf 'fresh root: %.0fs', time - $t0;
note $out;

my @lines = split /\n/, slurp("$dir/results");
my $checks = 0;

for my $line (@lines) {
    if ($line =~ /^(not )?ok - (.*)$/) {
        ok(!$1, "fresh root: $2");
        $checks++;
    } elsif ($line =~ /^# (.*)$/) {
        note $1;
    }
}

my $expect = () = slurp("$root/t/deb/fresh-install.sh") =~ /^ok /mg;
is($checks, $expect, "fresh root: every check ran ($expect)");
is($lines[-1] // '', 'done', 'fresh root: the script finished');
is($status, 0, 'the fresh root\'s script passed') or diag $out;

if (!Test::More->builder->is_passing) {
    my @log = split /\n/, slurp("$dir/log");
    diag 'the last lines of its log:';
    diag $_ for @log > 60 ? @log[-60 .. -1] : @log;
}

done_testing();
