#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# ./build.sh install puts the module into the system nginx's modules path
# and enables it the Debian way; the stock /etc/nginx/nginx.conf then loads
# it (nginx -t, nginx -T).  ./build.sh uninstall removes every file again.
# A module installed before the test is put back afterwards.

use strict;
use warnings;

use Test::More;
use Fcntl qw(:flock);
use File::Compare qw(compare);
use Cwd ();
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);

use FindBin;

plan skip_all => 'needs root (installs into the system nginx)' if $> != 0;

my $root  = File::Spec->rel2abs("$FindBin::Bin/..");
my $nginx = $ENV{QQ_NGINX} || '/usr/sbin/nginx';

# the system's nginx: a source-built one (NGINX_BIN=... ./build.sh test)
# is installed into by hand (docs/install.md)
plan skip_all => "installs into the system nginx, not $nginx"
    unless $nginx eq '/usr/sbin/nginx';
my $module = 'ngx_http_qqfail_module.so';

# one install test at a time on this machine
my $lockdir = File::Spec->catdir(File::Spec->tmpdir, 'qqtest-locks');
mkdir $lockdir;
open my $lock, '>', "$lockdir/system-nginx.lock" or die "lock: $!";
flock $lock, LOCK_EX or die "flock: $!";

sub slurp {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    return scalar(<$fh>) // '';
}

sub run {
    my (@cmd) = @_;
    my $out = qx{@cmd 2>&1};
    return ($? >> 8, $out);
}

my ($mdir) = `$nginx -V 2>&1` =~ /--modules-path=(\S+)/;
$mdir //= '/usr/share/nginx/modules';
my ($conf) = `$nginx -V 2>&1` =~ /--conf-path=(\S+)/;
$conf //= '/etc/nginx/nginx.conf';

my $so    = "$mdir/$module";
my $avail = '/usr/share/nginx/modules-available/mod-http-qqfail.conf';
my $link  = '/etc/nginx/modules-enabled/50-mod-http-qqfail.conf';
my $debian = -d '/etc/nginx/modules-enabled';
my $line = 'load_module modules/ngx_http_qqfail_module.so;';

# what was there before: put back at the end
my $backup = tempdir('qqinstall.XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
my %before;
for my $f ($so, $avail) {
    next unless -e $f;
    my $name = $f eq $so ? 'so' : 'avail';
    copy($f, "$backup/$name") or die "backup $f: $!";
    $before{$name} = $f;
}
$before{link} = readlink $link if -l $link;
note 'a qqfail module was installed before the test: it is restored after it'
    if %before;

END {
    restore() if %before && $backup && -d $backup;
}

sub restore {
    local $?;
    make_path($mdir);
    copy("$backup/so", $before{so}) if $before{so};
    if ($before{avail}) {
        make_path('/usr/share/nginx/modules-available');
        copy("$backup/avail", $before{avail});
    }
    symlink $before{link}, $link if $before{link} && !-l $link;
}

my $env = "NGINX_BIN=$nginx";

# the link an install before the package made (60-, now 70- as the
# package's): install replaces it, the file would be loaded twice
my $old_link = '/etc/nginx/modules-enabled/60-mod-stream-qqfail.conf';
my $made_old;
if ($debian && -f "$root/objs/ngx_stream_qqfail_module.so"
    && !-e $old_link && !-l $old_link) {
    $made_old = symlink
        '/usr/share/nginx/modules-available/mod-stream-qqfail.conf', $old_link;
}

END {
    unlink $old_link if $made_old && -l $old_link;
}

# install

my ($status, $out) = run($env, "$root/build.sh", 'install');
is($status, 0, 'build.sh install') or diag $out;
like($out, qr/test is successful/, 'install shows the verdict of nginx -t');

ok(-f $so, "the module is in the modules path $mdir");
is(compare($so, "$root/objs/$module"), 0, 'it is the module of objs/');

SKIP: {
    skip 'no /etc/nginx/modules-enabled (not Debian\'s layout)', 4
        unless $debian;

    ok(-f $avail, "$avail exists");
    is(slurp($avail), "$line\n", 'it holds the load_module line');
    ok(-l $link, "$link is a symlink");
    is(readlink $link, $avail, "it points to $avail");
}

# the stream front end: installed with it, enabled after nginx's stream
# module when that is enabled

my $stream_so = "$mdir/ngx_stream_qqfail_module.so";
my $stream_link = '/etc/nginx/modules-enabled/70-mod-stream-qqfail.conf';

SKIP: {
    skip 'no stream front end built (nginx without stream)', 4
        unless -f "$root/objs/ngx_stream_qqfail_module.so";

    ok(-f $stream_so, "the stream front end is in $mdir");
    skip 'nginx\'s stream module is not enabled', 3
        unless $debian && glob('/etc/nginx/modules-enabled/*-mod-stream.conf');
    ok(-l $stream_link, "$stream_link is a symlink");
    ok(!-l $old_link, "an earlier install's $old_link is gone");
    like(slurp($stream_link), qr{^load_module modules/ngx_stream_qqfail_module\.so;$},
         'it loads the stream front end');
}

my $dir;    # a configuration that uses a qqfail directive

SKIP: {
    skip "$conf does not include /etc/nginx/modules-enabled", 4
        unless $debian && slurp($conf)
                          =~ m{^[^#\n]*include\s+/etc/nginx/modules-enabled/}m;

    ($status, $out) = run($nginx, '-t');
    is($status, 0, "nginx -t with the stock $conf and the module") or diag $out;

    ($status, $out) = run($nginx, '-T');
    is($status, 0, 'nginx -T');
    like($out, qr/^# configuration file \Q$link\E:\n\Q$line\E$/m,
         'nginx -T shows the load_module line from modules-enabled');

    # the module really registers its directives: a configuration that
    # includes modules-enabled and uses one (default prefix, so that
    # "modules/" is the system modules path)
    $dir = tempdir('qqinstall.XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $fh, '>', "$dir/nginx.conf" or die "$dir/nginx.conf: $!";
    print {$fh} "include /etc/nginx/modules-enabled/*.conf;\n",
                "pid $dir/nginx.pid;\n",
                "error_log $dir/error.log;\n",
                "events {}\n",
                "http {\n    qqfail_zone 1m;\n}\n";
    close $fh;
    ($status, $out) = run($nginx, '-t', '-c', "$dir/nginx.conf",
                          '-e', "$dir/error.log");
    is($status, 0, 'a qqfail directive is known with the installed module')
        or diag $out;
}

# the quick start's nginx.conf (README.md, the first ```nginx block) passes
# nginx -t with the installed module; nginx -t sends no DNS query, and every
# provider in it is a 127.x literal anyway

SKIP: {
    skip 'no /etc/nginx/modules-enabled (not Debian\'s layout)', 3
        unless $debian;

    my ($qs) = slurp("$root/README.md") =~ /^```nginx\n(.*?)^```$/ms;
    ok($qs && $qs =~ m{^include\s+/etc/nginx/modules-enabled/\*\.conf;}m,
       'README: the quick start has a complete nginx.conf')
        or skip 'no nginx.conf in README.md', 2;
    my @addrs = map { my ($name, @a) = split ' ', $_; @a }
                $qs =~ /^\s*qqfail_provider\s+([^;]*);/mg;
    ok(@addrs && !(grep { !/^127\.\d+\.\d+\.\d+(?::\d+)?$/ } @addrs),
       'README: every provider of the quick start is a 127.x literal')
        or diag "@addrs";

    my $qdir = tempdir('qqinstall.XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
    open my $fh, '>', "$qdir/nginx.conf" or die "$qdir/nginx.conf: $!";
    print {$fh} $qs;
    close $fh;
    ($status, $out) = run($nginx, '-t', '-c', "$qdir/nginx.conf",
                          '-e', "$qdir/error.log");
    is($status, 0, 'README: the quick start nginx.conf passes nginx -t with '
                 . 'the installed module') or diag $out;
}

# install again: idempotent

($status, $out) = run($env, "$root/build.sh", 'install');
is($status, 0, 'build.sh install a second time') or diag $out;

# uninstall

($status, $out) = run($env, "$root/build.sh", 'uninstall');
is($status, 0, 'build.sh uninstall') or diag $out;
like($out, qr/test is successful/, 'uninstall shows the verdict of nginx -t');

ok(!-e $so, 'the module is gone from the modules path');
ok(!-e $avail, "$avail is gone");
ok(!-l $link && !-e $link, "$link is gone");
ok(!-e $stream_so && !-l $stream_link, 'the stream front end is gone');

($status, $out) = run($nginx, '-T');
is($status, 0, 'nginx -T without the module');
unlike($out, qr/qqfail/, 'nginx -T shows no qqfail line');

SKIP: {
    skip 'no configuration with a qqfail directive', 1 unless $dir;
    ($status, $out) = run($nginx, '-t', '-c', "$dir/nginx.conf",
                          '-e', "$dir/error.log");
    like($out, qr/unknown directive "qqfail_zone"/,
         'without the module, qqfail directives are unknown again');
}

($status, $out) = run($env, "$root/build.sh", 'uninstall');
is($status, 0, 'build.sh uninstall when nothing is installed') or diag $out;
like($out, qr/not installed/, 'it says so');

# files a package owns: install and uninstall refuse to touch them.  A
# dpkg database of our own (DPKG_ADMINDIR) in which the package
# libnginx-mod-http-qqfail holds the module and its load file: no package
# is installed on this machine for the test

{
    my $adm = tempdir('qqinstall.XXXXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $pkg = 'libnginx-mod-http-qqfail';
    make_path("$adm/info", "$adm/updates");
    open my $st, '>', "$adm/status" or die "$adm/status: $!";
    # build.sh's build packages are "installed" there too: a build.sh that
    # went on would not run apt-get with this database
    my ($bp) = slurp("$root/build.sh") =~ /^BUILD_PKGS=\(([^)]*)\)/m;
    for my $p ($pkg, split ' ', $bp // '') {
        print {$st} "Package: $p\nStatus: install ok installed\n",
                    "Priority: optional\nSection: misc\nArchitecture: all\n",
                    "Version: 1.0\nMaintainer: qqfail <qq\@qqfail.example>\n",
                    "Description: qqfail\n\n";
    }
    close $st;
    # dpkg knows the file by the path it unpacked: /usr/lib/nginx/modules,
    # which Debian's modules path /usr/share/nginx/modules links to
    my $real = Cwd::realpath($mdir) // $mdir;
    open my $ls, '>', "$adm/info/$pkg.list" or die "$adm/info/$pkg.list: $!";
    print {$ls} "/.\n$real/$module\n$avail\n";
    close $ls;

    my $penv = "$env DPKG_ADMINDIR=$adm";

    ($status, $out) = run($penv, "$root/build.sh", 'install');
    isnt($status, 0, 'build.sh install refuses files of a package');
    like($out, qr/belongs to the package \Q$pkg\E.*apt/s,
         'it names the package and apt') or diag $out;
    ok(!-e $so && !-e $avail && !-l $link, 'it wrote no file');

    # the package's files in place: uninstall leaves them
    make_path($mdir);
    open my $fh, '>', $so or die "$so: $!";
    close $fh;
    ($status, $out) = run($penv, "$root/build.sh", 'uninstall');
    isnt($status, 0, 'build.sh uninstall refuses files of a package');
    like($out, qr/belongs to the package \Q$pkg\E/, 'it names the package')
        or diag $out;
    ok(-e $so, 'the file of the package is still there');
    unlink $so;
}

done_testing();
