# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Load;

# Continuous HTTP load from forked children.
#
#   my $l = QQ::Load->start($t, url => 'http://127.A.B.1:PORT/', concurrency => 2);
#   ...
#   my $r = $l->stop;   # { sent, failed, by_body => {b1 => n}, by_status => {200 => n},
#                       #   errors => { 'first line of a 599' => n } }
#
# "failed" counts every response whose status is not 200 (599 is HTTP::Tiny's
# own connection/timeout error).  by_body counts the bodies of 200 responses.
#
# paths => [ '/a?k=%N', '/b' ] sends the requests of each child to these
# paths in turn instead of the url's path; %N in a path or a header value
# is the child's request number, %B that number modulo 256.  The result then also has by_path =>
# { '/a?k=%N' => { sent, failed, by_body } } (keyed by the path as given).

use strict;
use warnings;

use Carp qw(croak);
use HTTP::Tiny;
use JSON::PP ();
use Time::HiRes qw(time sleep);

use QQ::Proc;

my $SEQ = 0;

sub start {
    my ($class, $t, %opts) = @_;
    my $url = $opts{url} // 'http://' . $t->addr(1) . ':' . $t->port(1) . '/';
    my ($ip, $port, $path) = $url =~ m{^http://(\d+\.\d+\.\d+\.\d+):(\d+)(/.*)?$}
        or croak "QQ::Load: url must be http://IPv4:port/path, got '$url'";
    $path //= '/';
    my $host = $opts{host} // $ip;
    croak "QQ::Load: bad host '$host'" unless $host =~ /^[\w.-]+$/;

    my $self = bless {
        t           => $t,
        id          => ++$SEQ,
        concurrency => $opts{concurrency} // 2,
        timeout     => $opts{timeout} // 5,
        interval    => ($opts{interval_ms} // 2) / 1000,
        keepalive   => $opts{keepalive} // 1,
        headers     => $opts{headers} // {},
        paths       => $opts{paths},
        children    => [],
    }, $class;
    $self->{stopfile} = $t->dir . "/load-$self->{id}.stop";
    unlink $self->{stopfile};

    my $target = "http://$host:$port";
    $self->{paths} //= [ $path ];
    for my $k (1 .. $self->{concurrency}) {
        my $result = $t->dir . "/load-$self->{id}-$k.json";
        unlink $result;
        my $pid = QQ::Proc::fork_code(
            name => "load-$self->{id}-$k",
            code => sub { $self->_run($target, $ip, $result) },
        );
        push @{ $self->{children} }, { pid => $pid, result => $result };
    }
    return $self;
}

sub _run {
    my ($self, $target, $peer, $result) = @_;
    my $http = HTTP::Tiny->new(
        timeout      => $self->{timeout},
        keep_alive   => $self->{keepalive},
        max_redirect => 0,
        proxy        => undef,
        http_proxy   => undef,
        https_proxy  => undef,
        agent        => 'qq-load/1',
    );
    my %r = (sent => 0, failed => 0, by_body => {}, by_status => {}, errors => {},
             by_path => {});
    my $stopfile = $self->{stopfile};
    my @paths = @{ $self->{paths} };
    my $n = 0;

    until (-e $stopfile) {
        my $tpl = $paths[ $n % @paths ];
        $n++;
        my %v = (N => $n, B => $n % 256);
        (my $path = $tpl) =~ s/%([NB])/$v{$1}/g;
        my %h = %{ $self->{headers} };
        s/%([NB])/$v{$1}/g for values %h;
        my $res = $http->request('GET', "$target$path",
                                 { headers => \%h, peer => $peer });
        my $p = $r{by_path}{$tpl} //= { sent => 0, failed => 0, by_body => {} };
        $r{sent}++;
        $p->{sent}++;
        $r{by_status}{ $res->{status} }++;
        if ($res->{status} == 200) {
            my $body = substr($res->{content} // '', 0, 64);
            $r{by_body}{$body}++;
            $p->{by_body}{$body}++;
        } else {
            $r{failed}++;
            $p->{failed}++;
            if ($res->{status} == 599) {
                my ($first) = split /\n/, $res->{content} // '';
                $r{errors}{ $first // 'unknown' }++;
            }
        }
        sleep $self->{interval} if $self->{interval} > 0;
    }

    open my $fh, '>', "$result.tmp" or die "load result: $!\n";
    print {$fh} JSON::PP::encode_json(\%r);
    close $fh;
    rename "$result.tmp", $result or die "load result rename: $!\n";
    return;
}

sub stop {
    my ($self) = @_;
    return $self->{totals} if $self->{totals};

    open my $fh, '>', $self->{stopfile} or croak "stop file: $!";
    close $fh;

    my %total = (sent => 0, failed => 0, by_body => {}, by_status => {}, errors => {},
                 by_path => {});
    for my $c (@{ $self->{children} }) {
        my $done = QQ::Proc::poll_until(sub { -e $c->{result} }, $self->{timeout} + 10, 0.02);
        QQ::Proc::poll_until(sub { !QQ::Proc::alive($c->{pid}) }, 2, 0.02) if $done;
        QQ::Proc::stop($c->{pid}, timeout => 2);
        unless ($done) {
            $total{lost_children}++;
            next;
        }
        my $r = eval {
            open my $in, '<', $c->{result} or die "$!\n";
            local $/;
            JSON::PP::decode_json(<$in>);
        } or next;
        $total{$_} += $r->{$_} for qw(sent failed);
        for my $h (qw(by_body by_status errors)) {
            $total{$h}{$_} += $r->{$h}{$_} for keys %{ $r->{$h} };
        }
        for my $path (keys %{ $r->{by_path} }) {
            my ($from, $to) = ($r->{by_path}{$path},
                               $total{by_path}{$path} //= {});
            $to->{$_} += $from->{$_} for qw(sent failed);
            $to->{by_body}{$_} += $from->{by_body}{$_}
                for keys %{ $from->{by_body} };
        }
    }
    return $self->{totals} = \%total;
}

sub DESTROY {
    my ($self) = @_;
    return unless QQ::Proc::is_owner() && !$self->{totals};
    local ($?, $!, $@);
    QQ::Proc::stop($_->{pid}, timeout => 2) for @{ $self->{children} };
    return;
}

1;
