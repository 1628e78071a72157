# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Stream;

# Backends and load for the stream front end, on QQ::Topo's backend
# addresses (b1..bN at 127.A.B.20, .21, ...):
#
#   TCP line echo   one Perl process per backend on ADDR:eport, answering
#                   each line "LINE\n" with "bI LINE\n"
#   UDP DNS         one nsd per backend on ADDR:dport, authoritative for
#                   qq.test, whose TXT record who.qq.test is "bI"
#
#   my $st = QQ::Stream->new(topo => $s);    # starts both on every backend
#   $st->eport; $st->dport;
#
# eports => [P1, P2, ...] (or dports =>) puts backend bI's echo server (or
# nsd) on its own port PI instead of the common one (for SRV records,
# whose ports must be the only place a port is written); $st->eport(I)
# and $st->dport(I) give backend bI's.
#   $st->tcp_once($ip, $port)   # "b2", or "" (error in $st->last_error)
#   $st->udp_once($ip, $port)   # the same over UDP DNS
#   $st->tcp_once($ip, $port, local => $client)    # from that address
#   my $l = $st->tcp_load(port => $p, concurrency => 2);    # or udp_load
#   my $l = $st->tcp_load(port => $p, clients => [ @addrs ]);  # in turn
#   my $r = $l->stop;   # { sent, failed, by_backend => { b1 => n },
#                       #   errors => { text => n }, fail_times => [...] }
#
# The clients only ever talk to IPv4 literals: the UDP client is a
# Net::DNS::Resolver given its one nameserver, recursion off, checked not
# to have picked up any other server (QQ::DNS makes Net::DNS's default
# a dead address as well).

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use Time::HiRes qw(time sleep);

use QQ::Backend;
use QQ::Proc;
use QQ::DNS;    # loads Net::DNS with a dead default nameserver

my $NSD = $ENV{QQ_NSD} || '/usr/sbin/nsd';

our $ZONE = 'qq.test';
our $QNAME = "who.$ZONE";

sub new {
    my ($class, %o) = @_;
    my $topo = $o{topo} or croak "QQ::Stream->new: topo => QQ::Topo required";
    my $t = $topo->t;
    my $self = bless {
        t     => $t,
        topo  => $topo,
        eport => $o{eport} // $t->port('echo'),
        dport => $o{dport} // $t->port('dnsb'),
        eports => $o{eports} // [],
        dports => $o{dports} // [],
        echo  => {},
        nsd   => {},
        last_error => '',
    }, $class;
    for my $i (1 .. scalar $topo->backends) {
        $self->start_echo($i) unless $o{no_echo};
        $self->start_dns($i) unless $o{no_dns};
    }
    return $self;
}

sub t     { return $_[0]{t} }
sub eport {
    my ($self, $i) = @_;
    return defined $i ? $self->{eports}[ $i - 1 ] // $self->{eport}
                      : $self->{eport};
}

sub dport {
    my ($self, $i) = @_;
    return defined $i ? $self->{dports}[ $i - 1 ] // $self->{dport}
                      : $self->{dport};
}
sub last_error { return $_[0]{last_error} }

sub _addr { my ($self, $i) = @_; return $self->{topo}->backend($i)->addr }

# ---------------------------------------------------------------------------
# TCP line echo

sub start_echo {
    my ($self, $i) = @_;
    my ($addr, $port) = ($self->_addr($i), $self->eport($i));
    my $pid = QQ::Proc::fork_code(
        name => "echo-b$i",
        code => sub { _run_echo("b$i", $addr, $port) },
    );
    $self->{echo}{$i} = $pid;
    my $ok = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($pid);
        return QQ::Backend::_listening($addr, $port) ? 'ok' : 0;
    }, 10, 0.02);
    croak "echo b$i did not start ($ok)" unless $ok eq 'ok';
    return 1;
}

# stop_echo($i [, drain => 1]): with drain, as a server that shuts down
# gracefully: no new connection (refused), the open ones served to their
# end, so that no connection a proxy made before the stop fails (TERM
# cuts them: a stream proxy cannot retry a connection it has made)
sub stop_echo {
    my ($self, $i, %o) = @_;
    my $pid = delete $self->{echo}{$i} or return 1;
    QQ::Proc::stop($pid, signal => $o{drain} ? 'USR1' : 'TERM', timeout => 3);
    return 1;
}

sub _run_echo {
    my ($id, $addr, $port) = @_;
    my $ls = IO::Socket::INET->new(
        LocalAddr => $addr, LocalPort => $port, Proto => 'tcp',
        ReuseAddr => 1, Listen => 1024,
    ) or die "echo $id: listen $addr:$port: $!\n";
    $ls->blocking(0);
    my $sel = IO::Select->new($ls);
    my %buf;
    my $drain = 0;
    local $SIG{USR1} = sub { $drain = 1 };

    while (1) {
        if ($drain && $ls) {
            # what the kernel queued is taken, then no more connections
            while (my $c = $ls->accept) {
                $c->blocking(0);
                $sel->add($c);
                $buf{ fileno $c } = '';
            }
            $sel->remove($ls);
            close $ls;
            undef $ls;
        }
        return if !$ls && !$sel->count;
        for my $s ($sel->can_read(1)) {
            if ($ls && $s == $ls) {
                while (my $c = $ls->accept) {
                    $c->blocking(0);
                    $sel->add($c);
                    $buf{ fileno $c } = '';
                }
                next;
            }
            my $n = sysread $s, my $data, 4096;
            next if !defined $n && $!{EAGAIN};
            unless ($n) {
                $sel->remove($s);
                delete $buf{ fileno $s };
                close $s;
                next;
            }
            $buf{ fileno $s } .= $data;
            while ($buf{ fileno $s } =~ s/^([^\n]*\n)//) {
                # a line is a few bytes: the socket buffer takes it
                $s->blocking(1);
                syswrite $s, "$id $1";
                $s->blocking(0);
            }
        }
    }
}

# ---------------------------------------------------------------------------
# UDP DNS backends (nsd)

sub _nsd_dir { my ($self, $i) = @_; return $self->{t}->dir . "/stream-dns-b$i" }

sub start_dns {
    my ($self, $i) = @_;
    my ($addr, $port) = ($self->_addr($i), $self->dport($i));
    my $dir = $self->_nsd_dir($i);
    make_path($dir);

    my $zone = join "\n",
        "\$ORIGIN $ZONE.",
        "\$TTL 60",
        "@ IN SOA ns.$ZONE. hostmaster.$ZONE. 1 3600 600 86400 60",
        "@ IN NS ns.$ZONE.",
        "ns IN A $addr",
        "who IN TXT \"b$i\"",
        '';
    _write("$dir/$ZONE.zone", $zone);
    _write("$dir/nsd.conf", QQ::DNS::nsd_conf(ip => $addr, port => $port,
                                              dir => $dir, zone => $ZONE));

    my $pid = QQ::Proc::spawn(
        name   => "nsd-b$i",
        cmd    => [ $NSD, '-d', '-c', "$dir/nsd.conf" ],
        stdout => "$dir/nsd.stderr",
        cwd    => $dir,
    );
    $self->{nsd}{$i} = $pid;
    my $ok = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($pid);
        return $self->udp_once($addr, $port, timeout => 0.3) eq "b$i"
               ? 'ok' : 0;
    }, 10, 0.05);
    croak "nsd b$i did not start ($ok):\n" . QQ::Proc::slurp("$dir/nsd.log")
        . QQ::Proc::slurp("$dir/nsd.stderr")
        unless $ok eq 'ok';
    return 1;
}

sub stop_dns {
    my ($self, $i) = @_;
    my $pid = delete $self->{nsd}{$i} or return 1;
    QQ::Proc::stop($pid, signal => 'TERM', timeout => 5);
    return 1;
}

sub _write {
    my ($file, $text) = @_;
    open my $fh, '>', $file or croak "write $file: $!";
    print {$fh} $text;
    close $fh or croak "close $file: $!";
    return;
}

# ---------------------------------------------------------------------------
# clients

# a Net::DNS::Resolver that asks exactly $ip:$port, once, without
# recursion; from the address $src when given
sub resolver {
    my ($ip, $port, $timeout, $src) = @_;
    croak "resolver: an IPv4 literal, got '$ip'"
        unless $ip =~ /^\d+\.\d+\.\d+\.\d+$/;
    croak "resolver: the source an IPv4 literal, got '$src'"
        if defined $src && $src !~ /^\d+\.\d+\.\d+\.\d+$/;
    my $res = Net::DNS::Resolver->new(
        (defined $src ? (srcaddr => $src) : ()),
        nameservers    => [$ip],
        port           => $port,
        recurse        => 0,
        retry          => 0,    # one try (Net::DNS: 0 counts as 1)
        retrans        => $timeout,
        udp_timeout    => $timeout,
        tcp_timeout    => $timeout,
        usevc          => 0,
        igntc          => 1,    # never a second query over TCP
        dnsrch         => 0,
        defnames       => 0,
        persistent_udp => 0,
        persistent_tcp => 0,
        force_v4       => 1,
    );
    my @ns = $res->nameservers;
    croak "resolver: nameservers (@ns), not $ip alone"
        unless @ns == 1 && $ns[0] eq $ip;
    return $res;
}

# one UDP DNS query through $ip:$port: the backend's id, or ""
sub udp_once {
    my ($self, $ip, $port, %o) = @_;
    my ($id, $err) = _udp(resolver($ip, $port, $o{timeout} // 2,
                                   $o{local}));
    $self->{last_error} = $err // '' if ref $self;
    return $id // '';
}

sub _udp {
    my ($res) = @_;
    my $p = $res->send($QNAME, 'TXT', 'IN');
    return (undef, 'no answer: ' . ($res->errorstring // '')) unless $p;
    my $rcode = $p->header->rcode;
    return (undef, "rcode $rcode") unless $rcode eq 'NOERROR';
    my ($txt) = map { $_->txtdata } grep { $_->type eq 'TXT' } $p->answer;
    unless (defined $txt) {
        my ($q) = $p->question;
        return (undef, sprintf 'no TXT in the answer (question %s, %d '
                       . 'answers, %d authority, aa %d, tc %d)',
                       $q ? $q->qname . ' ' . $q->qtype : 'none',
                       scalar(my @a = $p->answer),
                       scalar(my @n = $p->authority),
                       $p->header->aa, $p->header->tc);
    }
    return ($txt =~ /^b\d+$/ ? $txt : undef, "answer '$txt'");
}

# one TCP connection through $ip:$port: a line sent, its echo read
sub tcp_once {
    my ($self, $ip, $port, %o) = @_;
    my ($id, $err) = _tcp($ip, $port, $o{timeout} // 2, $o{line} // 'hello',
                          $o{local});
    $self->{last_error} = $err // '' if ref $self;
    return $id // '';
}

sub _tcp {
    my ($ip, $port, $timeout, $line, $local) = @_;
    my $deadline = time + $timeout;
    my $c = IO::Socket::INET->new(
        PeerAddr => $ip, PeerPort => $port, Proto => 'tcp',
        Timeout => $timeout,
        (defined $local ? (LocalAddr => $local) : ()),
    ) or return (undef, "connect: $!");
    syswrite $c, "$line\n" or return (undef, "send: $!");
    my $sel = IO::Select->new($c);
    my $got = '';
    while ($got !~ /\n/) {
        my $left = $deadline - time;
        return (undef, 'timeout') if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $c, my $data, 512;
        return (undef, "read: $!") unless defined $n;
        return (undef, $got eq '' ? 'closed' : "closed after '$got'")
            unless $n;
        $got .= $data;
    }
    close $c;
    return ($1, undef) if $got =~ /^(b\d+) \Q$line\E\n$/;
    chomp $got;
    return (undef, "answer '$got'");
}

# ---------------------------------------------------------------------------
# load

sub tcp_load { my ($self, %o) = @_; return QQ::Stream::Load->start($self, %o, kind => 'tcp') }
sub udp_load { my ($self, %o) = @_; return QQ::Stream::Load->start($self, %o, kind => 'udp') }

package QQ::Stream::Load;

use Time::HiRes qw(time sleep);

# Forked clients, each repeating one request (a TCP connection, or a UDP
# query) until stop: addr => (default addr(1)), port =>, concurrency =>
# (default 2), interval_ms => (pause after each request, default 5),
# timeout => (seconds, default 2), clients => [ source addresses, used in
# turn by each client, for "hash $remote_addr" ] (default: the kernel's).

my $SEQ = 0;

sub start {
    my ($class, $st, %o) = @_;
    my $t = $st->t;
    my $self = bless {
        t        => $t,
        kind     => $o{kind},
        addr     => $o{addr} // $t->addr(1),
        port     => $o{port} // Carp::croak('port => required'),
        n        => $o{concurrency} // 2,
        interval => ($o{interval_ms} // 5) / 1000,
        timeout  => $o{timeout} // 2,
        clients  => $o{clients} // [undef],
        id       => ++$SEQ,
        children => [],
    }, $class;
    $self->{stopfile} = $t->dir . "/sload-$self->{id}.stop";
    unlink $self->{stopfile};
    for my $k (1 .. $self->{n}) {
        my $result = $t->dir . "/sload-$self->{id}-$k.json";
        unlink $result;
        my $pid = QQ::Proc::fork_code(
            name => "$self->{kind}-load-$self->{id}-$k",
            code => sub { $self->_run($k, $result) },
        );
        push @{ $self->{children} }, { pid => $pid, result => $result };
    }
    return $self;
}

sub _run {
    my ($self, $k, $result) = @_;
    my %r = (sent => 0, failed => 0, by_backend => {}, errors => {},
             fail_times => [], slow => 0, slow_times => [], max_ms => 0);
    my @clients = @{ $self->{clients} };
    my @res = $self->{kind} eq 'udp'
        ? map { QQ::Stream::resolver($self->{addr}, $self->{port},
                                     $self->{timeout}, $_) } @clients
        : ();
    my $n = 0;
    until (-e $self->{stopfile}) {
        $n++;
        my $start = time;
        my $c = ($n + $k) % @clients;
        my ($id, $err) = @res
            ? QQ::Stream::_udp($res[$c])
            : QQ::Stream::_tcp($self->{addr}, $self->{port},
                               $self->{timeout}, "$k-$n", $clients[$c]);
        my $ms = (time - $start) * 1000;
        $r{max_ms} = $ms if $ms > ($r{max_ms} // 0);
        if ($ms >= 100 && defined $id) {
            $r{slow}++;
            push @{ $r{slow_times} }, sprintf '%.3f+%dms', $start, $ms
                if @{ $r{slow_times} } < 50;
        }
        $r{sent}++;
        if (defined $id) {
            $r{by_backend}{$id}++;
        } else {
            $r{failed}++;
            $r{errors}{$err}++;
            push @{ $r{fail_times} }, sprintf '%.3f', $start
                if @{ $r{fail_times} } < 50;
        }
        sleep $self->{interval} if $self->{interval} > 0;
    }
    open my $fh, '>', "$result.tmp" or die "load result: $!\n";
    print {$fh} JSON::PP::encode_json(\%r);
    close $fh;
    rename "$result.tmp", $result or die "load result: $!\n";
    return;
}

sub stop {
    my ($self) = @_;
    return $self->{totals} if $self->{totals};
    open my $fh, '>', $self->{stopfile} or Carp::croak("stop file: $!");
    close $fh;
    my %total = (sent => 0, failed => 0, by_backend => {}, errors => {},
                 fail_times => [], slow => 0, slow_times => [], max_ms => 0);
    for my $c (@{ $self->{children} }) {
        my $done = QQ::Proc::poll_until(sub { -e $c->{result} },
                                        $self->{timeout} + 10, 0.02);
        QQ::Proc::poll_until(sub { !QQ::Proc::alive($c->{pid}) }, 2, 0.02)
            if $done;
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
        $total{$_} += $r->{$_} for qw(sent failed slow);
        $total{max_ms} = $r->{max_ms} if $r->{max_ms} > $total{max_ms};
        for my $h (qw(by_backend errors)) {
            $total{$h}{$_} += $r->{$h}{$_} for keys %{ $r->{$h} };
        }
        push @{ $total{$_} }, @{ $r->{$_} } for qw(fail_times slow_times);
    }
    @{ $total{$_} } = sort @{ $total{$_} } for qw(fail_times slow_times);
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
