#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The module builds against nginx source trees of the site's own (releases
# configured with --with-compat) and loads into the nginx built from each:
# for every tree of QQ_NGINX_TREES, a copy of this checkout runs
# NGINX_SRC=TREE NGINX_BIN=BIN ./build.sh build, then nginx -t with nginx's
# stream module, our http and stream modules and a qqfail upstream in http
# and in stream must say the test is successful.  The tree's source paired
# with the binary of another tree of a different version is refused with
# both versions named.
#
# QQ_NGINX_TREES=DIR[=BIN]:DIR[=BIN]...: DIR is a configured and built
# nginx source tree (./configure --with-compat ... && make), BIN its
# binary (default DIR/objs/nginx); nginx's ngx_stream_module.so is taken
# from the modules path of BIN -V if it is there, else from DIR/objs.
# Skipped without QQ_NGINX_TREES.  docs/install.md has the matrix.

use strict;
use warnings;

use Test::More;
use File::Path qw(make_path);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;

plan skip_all => 'QQ_NGINX_TREES=DIR[=BIN]:... names no nginx tree'
    unless $ENV{QQ_NGINX_TREES};

# the modules built here have no sanitizer, whatever the suite's mode
$ENV{QQ_ASAN} = 0;

sub run {
    my (@cmd) = @_;
    my $out = qx{@cmd 2>&1};
    return ($? >> 8, $out);
}

sub version_of_bin {
    my ($bin) = @_;
    my $out = qx{$bin -v 2>&1};
    return $out =~ m{nginx version: [^/]*/(\d+\.\d+\.\d+)} ? $1 : undef;
}

# where BIN's nginx keeps ngx_stream_module.so: its modules path, else the
# tree's objs/ (built but not installed)
sub nginx_stream_module {
    my ($src, $bin) = @_;
    my $v = qx{$bin -V 2>&1};
    my ($mpath) = $v =~ /--modules-path=(\S+)/;
    unless (defined $mpath) {
        my ($prefix) = $v =~ /--prefix=(\S+)/;
        $mpath = ($prefix // '/usr/local/nginx') . '/modules';
    }
    for my $p ("$mpath/ngx_stream_module.so", "$src/objs/ngx_stream_module.so")
    {
        return $p if -f $p;
    }
    return undef;
}

my @trees;
for my $entry (split /:/, $ENV{QQ_NGINX_TREES}) {
    next unless length $entry;
    my ($src, $bin) = split /=/, $entry, 2;
    $bin //= "$src/objs/nginx";
    push @trees, { src => $src, bin => $bin, version => version_of_bin($bin) };
}

my $t0 = QQ::Nginx->new;
my $root = $t0->repo_root;

for my $i (0 .. $#trees) {
    my $tree = $trees[$i];
    my ($src, $bin, $ver) = @$tree{qw(src bin version)};

    subtest "nginx tree $src" => sub {
        ok(defined $ver, "$bin -v names a version")
            or return;

        my $t = QQ::Nginx->new;
        my $copy = $t->dir . '/repo';
        make_path($copy);

        # this checkout without its builds: objs/ and build/ stay as they are
        system("tar -C '$root' --exclude=./.git --exclude=./build "
               . "--exclude=./objs --exclude=./dist -cf - . "
               . "| tar -C '$copy' -xf -") == 0
            or BAIL_OUT("cannot copy $root");

        my ($status, $out) = run('env', "NGINX_SRC=$src", "NGINX_BIN=$bin",
                                 "$copy/build.sh", 'build');
        is($status, 0, "nginx $ver: build.sh build")
            or diag($out);
        like($out, qr/built \S+ngx_http_qqfail_module\.so \(nginx \Q$ver\E\)/,
             "nginx $ver: the module is built for nginx $ver");

        my $module = "$copy/objs/ngx_http_qqfail_module.so";
        my $stream = "$copy/objs/ngx_stream_qqfail_module.so";
        my $nstream = nginx_stream_module($src, $bin);

        ok(-f $module, "nginx $ver: ngx_http_qqfail_module.so");
        ok(-f $stream, "nginx $ver: ngx_stream_qqfail_module.so");
        ok(defined $nstream, "nginx $ver: nginx's own ngx_stream_module.so")
            or diag("no ngx_stream_module.so for $bin: configure nginx "
                    . "with --with-stream=dynamic");

        # the loads check: every module and a qqfail upstream in both

        local $ENV{QQ_NGINX} = $bin;
        local $ENV{QQ_MODULE} = $module;
        local $ENV{QQ_NGINX_STREAM_MODULE} = $nstream // '/nonexistent';

        my $n = QQ::Nginx->new;
        $n->write_config(<<'EOF');
%%LOAD_MODULE%%
%%LOAD_STREAM%%
%%GLOBALS%%
events {
}
http {
    %%HTTP_GLOBALS%%
    qqfail_provider p1 %%ADDR_53%%:%%PORT_DNS%%;
    upstream app {
        qqfail_server app.example.com:8080 weight=2;
        qqfail_server backup.example.net:8080 backup;
        keepalive 4;
    }
    server {
        listen %%ADDR_1%%:%%PORT_HTTP%%;
        location / {
            proxy_pass http://app;
        }
        location /status {
            qqfail_status;
        }
    }
}
stream {
    upstream tcp {
        qqfail_server tcp.example.com:9000;
    }
    server {
        listen %%ADDR_1%%:%%PORT_TCP%%;
        proxy_pass tcp;
    }
}
EOF
        my ($ok, $said) = $n->test_config;
        ok($ok, "nginx $ver: nginx -t loads the modules") or diag($said);
        like($said, qr/test is successful/,
             "nginx $ver: nginx -t says the test is successful");

        # the source of this tree with a binary of another version

        my ($other) = grep { defined $_->{version} && $_->{version} ne $ver }
                      @trees[$i + 1 .. $#trees, 0 .. $i - 1];
        SKIP: {
            skip 'no tree of another version in QQ_NGINX_TREES', 2
                unless $other;

            ($status, $out) = run('env', "NGINX_SRC=$src",
                                  "NGINX_BIN=$other->{bin}",
                                  "$copy/build.sh", 'build');
            isnt($status, 0, "nginx $ver source, nginx $other->{version} "
                             . 'binary: refused');
            my ($obin, $over) = @$other{qw(bin version)};
            like($out, qr/is nginx \Q$ver\E but \Q$obin\E is nginx \Q$over\E/,
                 'the message names both versions');
        }
    };
}

done_testing();
