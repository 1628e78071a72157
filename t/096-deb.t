#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The Debian package as an operator uses it: ./build.sh deb builds
# libnginx-mod-http-qqfail_VERSION_ARCH.deb into dist/ and lintian finds no
# error in it; then, in a fresh Debian root (debootstrap minbase, nothing
# else), t/deb/fresh-install.sh installs it with
# apt-get install ./libnginx-mod-http-qqfail_*.deb, runs nginx -t with the
# stock nginx.conf, proxies through a qqfail upstream (user www-data),
# restarts nginx with its DNS provider down and still proxies from the state
# file, then apt-get purge must leave no file behind.  Each of its checks is
# one test here.
#
# Runs only with ./build.sh test --deb (QQ_DEB=1): it builds a package and a
# Debian root, a few minutes.  The root is made by QQ_FRESH_MACHINE if set,
# else by ../shared/tools/fresh-machine.sh next to the checkout if it is
# there (and QQ_FRESH_OWN is not set), else by our own t/deb/fresh-root.sh
# (a clean clone in CI).  Both take the command to run inside as their
# argument.  The .deb and the script reach the root through /dev/shm, which
# both bind into it with /dev.

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

# build

my $t0 = time;
my $out = qx{"$root/build.sh" deb 2>&1};
is($? >> 8, 0, './build.sh deb') or diag $out;
like($out, qr/^build\.sh: lintian: no error$/m, 'lintian reports no error');
note sprintf 'build and lintian: %.0fs', time - $t0;
note $_ for grep { /^[EWI]: / } split /\n/, $out;

my @debs = glob "$root/dist/libnginx-mod-http-qqfail_*.deb";
is(scalar @debs, 1, 'one libnginx-mod-http-qqfail_VERSION_ARCH.deb in dist/')
    or BAIL_OUT("no package in $root/dist");

my $deps = qx{dpkg-deb -f "$debs[0]" Depends};
like($deps, qr/(?:^|, )nginx-abi-[\w.-]+(?:,|$)/,
     'it depends on the nginx ABI it was built for');
like($deps, qr/libc-ares2/, 'and on c-ares (shlibs)');
like($deps, qr/libmaxminddb0/, 'and on libmaxminddb (shlibs)');

# install, run, purge in a fresh root

my $dir = tempdir('qqdeb.XXXXXXXX', DIR => '/dev/shm', CLEANUP => 1);
copy($debs[0], $dir) or die "copy $debs[0]: $!";
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
