#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# The structure drawn from the code: which file calls which, read from the
# object files of the last build (nm).  The core (ngx_qqfail_*.c) calls
# nothing of the front ends (ngx_http_qqfail_*.c, ngx_stream_qqfail_*.c),
# and its files call
# each other in one direction only: resolver -> round -> lookup -> ares ->
# zone -> geo -> text, the state file beside them.  The layers above are
# called back through the resolver object's handlers, not by name.

use strict;
use warnings;

use Test::More;
use FindBin;

# the objects of the build under test: the sanitizer build's for --asan
my $root = "$FindBin::Bin/..";
my $variant = ($ENV{QQ_MODULE} // '') =~ m{/objs/asan/} ? '-asan' : '';
my $objs = "$root/build/nginx$variant/objs/addon/ngx_qqfail_module";
$objs = undef unless -d $objs;
plan skip_all => 'no build tree (./build.sh build)' unless $objs;
plan skip_all => 'nm is missing' unless grep { -x "$_/nm" } split /:/, $ENV{PATH};

my (%def, %undef);
for my $o (glob "$objs/*.o") {
    (my $f = $o) =~ s{.*/(ngx_\w+)\.o$}{$1};
    for (`nm $o`) {
        my @p = split;
        $def{ $p[2] } = $f if @p == 3 && $p[1] =~ /^[TDBR]$/;
        $undef{$f}{ $p[1] } = 1 if @p == 2 && $p[0] eq 'U';
    }
}

my %calls;
for my $f (keys %undef) {
    for my $sym (keys %{ $undef{$f} }) {
        my $to = $def{$sym} or next;
        $calls{$f}{$to}{$sym} = 1 unless $to eq $f;
    }
}

my %files = map { $_ => 1 } values %def;
my @core = grep { !/^ngx_(?:http|stream)_qqfail_/ } sort keys %files;
ok(@core >= 8, scalar(@core) . ' core files: ' . join(' ', @core));

# the core calls no front end file
my @up = map { my $f = $_; map { "$f -> $_ (" . join(', ', sort keys
            %{ $calls{$f}{$_} }) . ')' } grep { /^ngx_(?:http|stream)_qqfail_/ }
            sort keys %{ $calls{$f} || {} } } @core;
is("@up", '', 'no core file calls a front end');

# no cycle among the core files
sub reach {
    my ($from) = @_;
    my (%seen, @todo);
    @todo = keys %{ $calls{$from} || {} };
    while (defined(my $f = shift @todo)) {
        next if $seen{$f}++;
        push @todo, keys %{ $calls{$f} || {} };
    }
    return \%seen;
}

my @cycles;
for my $f (@core) {
    for my $to (grep { !/^ngx_(?:http|stream)_qqfail_/ } keys %{ $calls{$f} || {} }) {
        push @cycles, "$f -> $to (" . join(', ', sort keys
                          %{ $calls{$f}{$to} }) . ')'
            if reach($to)->{$f};
    }
}
is(join("\n", sort @cycles), '', 'the core files call each other in one '
   . 'direction only');

diag(join "\n", map { my $f = $_; "$f -> " . join(' ', sort
         keys %{ $calls{$f} || {} }) } @core);

done_testing;
