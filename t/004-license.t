#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The license: LICENSE at the root is the 2-clause BSD license, and every
# source file of the module, the fuzz harnesses, the unit drivers, the
# tests and the scripts names it in its header.

use strict;
use warnings;

use Test::More;

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;

my $root = QQ::Nginx->repo_root;

my $license = do { local (@ARGV, $/) = ("$root/LICENSE"); <> } // '';
like($license, qr/Redistribution and use in source and binary forms/,
     'LICENSE is a BSD license');
unlike($license, qr/3\.\s+Neither the name/, 'with two clauses');

my @files = (glob("$root/ngx_qqfail_module/*.[ch]"), glob("$root/fuzz/*.c"),
             glob("$root/t/unit/*.c"), glob("$root/t/*.t"),
             glob("$root/t/lib/QQ/*.pm"), glob("$root/bench/*.pl"),
             glob("$root/bench/lib/QQ/*.pm"),
             "$root/build.sh", "$root/config");

my @missing;
for my $f (@files) {
    open my $fh, '<', $f or die "$f: $!";
    my $head = join '', map { scalar(<$fh>) // '' } 1 .. 5;
    push @missing, $f =~ s{^\Q$root\E/}{}r
        unless $head =~ /2-clause BSD license, see LICENSE/;
}

ok(@files > 50, scalar(@files) . ' files checked');
is("@missing", '', 'every source file names the license in its header');

done_testing;
