#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The module loads into Debian's stock nginx with the example configuration
# of docs/; build.sh refuses a source tree of another nginx version and
# rebuilds without configuring again.

use strict;
use warnings;

use Test::More;
use File::Path qw(make_path);
use File::Copy qw(copy);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;

# a short command, its exit status and everything it printed
sub run {
    my (@cmd) = @_;
    my $out = qx{@cmd 2>&1};
    return ($? >> 8, $out);
}

my $t = QQ::Nginx->new;
my $root = $t->repo_root;

# docs/example.conf under a test prefix: the module in PREFIX/modules, the
# state file inside the test directory

my $prefix = $t->dir;
make_path("$prefix/logs", "$prefix/modules", "$prefix/state");
copy($t->module_path, "$prefix/modules/ngx_http_qqfail_module.so")
    or die "copy: $!";

open(my $in, '<', "$root/docs/example.conf") or die "example.conf: $!";
my $conf = do { local $/; <$in> };
close $in;

like($conf, qr/^load_module modules\/ngx_http_qqfail_module\.so;/m,
     'example.conf loads the module from modules/');
unlike($conf, qr/qqfail_provider\s+\S+\s+(?!127\.)\d/,
       'example.conf: every provider is a 127.x literal');

$conf =~ s{/var/lib/nginx/qqfail/state}{$prefix/state/state}g;
$conf =~ s{^user\s+www-data;}{}m;

# as the harness's own nginx.conf: nginx -t -p PREFIX/ (with the sanitizer
# runtime preloaded in an --asan run)
$t->write_file('nginx.conf', $conf);

my ($ok, $out) = $t->test_config;
ok($ok, 'docs/example.conf passes nginx -t with the module loaded')
    or diag $out;
like($out, qr/test is successful/, 'nginx -t says the test is successful');

# build.sh

my $status;
($status, $out) = run("$root/build.sh", '--help');
is($status, 0, 'build.sh --help');
like($out, qr/Usage: \.\/build\.sh/, 'build.sh --help prints the usage');

($status, $out) = run("$root/build.sh", 'frobnicate');
isnt($status, 0, 'build.sh refuses an unknown command');

# a source tree of another version is refused before anything is built

my $fake = "$prefix/nginx-0.0.1";
make_path("$fake/src/core");
$t->write_file('nginx-0.0.1/src/core/nginx.h',
               "#define NGINX_VERSION      \"0.0.1\"\n");

my $nginx = $t->nginx_binary;

($status, $out) = run('env', "NGINX_SRC=$fake", "NGINX_BIN=$nginx",
                      "$root/build.sh", 'build');
isnt($status, 0, 'build.sh refuses nginx 0.0.1 sources');
like($out, qr/is nginx 0\.0\.1 but \Q$nginx\E is nginx 1\.\d+\.\d+/,
     'the message names both versions');

# a rebuild with no change does not configure again

SKIP: {
    skip 'the asan build is tested by its own run', 2 if $ENV{QQ_ASAN};

    ($status, $out) = run("$root/build.sh", 'build');
    is($status, 0, 'build.sh build');
    unlike($out, qr/configuring nginx/, 'a rebuild with no change does not '
                                        . 'run configure');
}

done_testing();
