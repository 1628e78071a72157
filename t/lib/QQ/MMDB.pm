# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::MMDB;

# Generates small MaxMind DB files for tests (libmaxmind-db-writer-perl).
#
#   QQ::MMDB::write_asn($path, { '127.0.0.0/24' => [64500, 'Test AS'] });
#   QQ::MMDB::write_country($path, { '127.0.0.0/24' => ['DE', 'EU'] });

use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my %TYPES = (
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
    country                        => 'map',
    continent                      => 'map',
    registered_country             => 'map',
    iso_code                       => 'utf8_string',
    code                           => 'utf8_string',
    names                          => 'map',
    en                             => 'utf8_string',
);

sub _tree {
    my ($type) = @_;
    return MaxMind::DB::Writer::Tree->new(
        ip_version               => 6,
        record_size              => 24,
        database_type            => $type,
        languages                => ['en'],
        description              => { en => "qqfail test $type" },
        alias_ipv6_to_ipv4       => 1,
        remove_reserved_networks => 0,
        map_key_type_callback    => sub { $TYPES{ $_[0] } // die "no type for $_[0]" },
    );
}

sub _write {
    my ($tree, $path) = @_;
    open(my $fh, '>:raw', "$path.tmp") or die "$path.tmp: $!";
    $tree->write_tree($fh);
    close($fh) or die "$path.tmp: $!";
    rename("$path.tmp", $path) or die "$path: $!";
    return $path;
}

sub write_asn {
    my ($path, $nets) = @_;
    my $tree = _tree('GeoLite2-ASN');
    for my $net (sort keys %$nets) {
        my ($asn, $org) = @{ $nets->{$net} };
        $tree->insert_network($net, {
            autonomous_system_number       => $asn,
            autonomous_system_organization => $org,
        });
    }
    return _write($tree, $path);
}

sub write_country {
    my ($path, $nets) = @_;
    my $tree = _tree('GeoLite2-Country');
    for my $net (sort keys %$nets) {
        my ($cc, $continent) = @{ $nets->{$net} };
        $tree->insert_network($net, {
            country   => { iso_code => $cc, names => { en => $cc } },
            continent => { code => $continent // 'EU' },
        });
    }
    return _write($tree, $path);
}

1;
