# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::FaultServer;

# Scriptable DNS server used by QQ::DNS->start_fault_server.  Runs inside a
# forked child (QQ::Proc::fork_code) and never returns.
#
# It listens on UDP and TCP at one IP literal and re-reads a JSON control
# file (written atomically by QQ::DNS::fault_set) on every query:
#
#   { "names": { "server1.example.com": { "*": SPEC, "127.1.2.203:53": SPEC },
#                "*": { "*": SPEC } } }
#
# SPEC keys: addrs => [...] (IPv4 answer A, IPv6 answer AAAA), rcode =>
# 'NOERROR'|'SERVFAIL'|'NXDOMAIN'|'REFUSED'|..., drop => 1 (never answer),
# delay_ms => N, ttl => N, malformed => 1 (garbage after a valid header),
# truncate => 1 (UDP answers carry TC and no records; TCP answers are full).
# srv => [ [PRIORITY, WEIGHT, PORT, TARGET], ... ] answers an SRV question;
# additional => [ "RR text", ... ] goes into the additional section.
# cache_ttl => N answers as a provider's cache does: the rest of an N-second
# TTL that starts when the name and type are first asked, and again once
# it ended (ttl is then ignored).
# hold_ms => N answers as a recursive resolver waiting on a slow
# authority does: every query for the name and type, retries included, is
# answered N ms after the first one of the episode (which ends then; the
# next query starts another), where delay_ms delays each query by itself.
# A SPEC may hold one SPEC per query type that overrides its keys for that
# type: { addrs => [...], AAAA => { delay_ms => 3000 } }.
#
# Hostile answers (t/012-answers.t), with rcode NOERROR:
#   cname => [ N1, N2, ... ]   a CNAME chain: OWNER CNAME N1, N1 CNAME N2, ...,
#                              and the addrs belong to the last name
#   owner => NAME              the chain (or the addrs) starts at NAME instead
#                              of the name asked: records for another name
#   qr => 0                    the QR bit clear: a query, not a response
#   question => { name => N, type => T, class => C }
#                              the question echoed differs from the one asked
#   longname => 1              the name asked CNAME a name of 264 octets,
#                              written in 255 with a compression pointer, and
#                              the addrs belong to that name
#
# Names without an entry (and without a "*" entry) get NXDOMAIN.  The name
# "ready.qq.invalid" always answers (readiness probe) and is not logged.
#
# Replies are delayed without blocking: one slow name never delays another.
# Every query is logged to the log file as
#   "<epoch> <server> <udp|tcp> <qname> <qtype> <action>"

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use Net::DNS;
use Socket qw(SOL_SOCKET SO_REUSEADDR unpack_sockaddr_in);
use Time::HiRes qw(time);

use constant READY_NAME => 'ready.qq.invalid';

sub run {
    my (%args) = @_;
    my ($ip, $port) = @args{qw(ip port)};
    die "fault server: IP literal required\n" unless $ip =~ /^\d+\.\d+\.\d+\.\d+$/;
    my $self = {
        id       => "$ip:$port",
        control  => $args{control},
        log      => $args{log},
        pending  => [],      # [ due, kind, target, data ]
        conns    => {},      # fileno => { sock, buf }
        ctl      => { names => {} },
    };
    bless $self, __PACKAGE__;

    $self->{udp} = IO::Socket::INET->new(
        LocalAddr => $ip, LocalPort => $port, Proto => 'udp', ReuseAddr => 1,
    ) or die "fault server: udp $ip:$port: $!\n";
    $self->{tcp} = IO::Socket::INET->new(
        LocalAddr => $ip, LocalPort => $port, Proto => 'tcp', ReuseAddr => 1,
        Listen => 64,
    ) or die "fault server: tcp $ip:$port: $!\n";

    open $self->{logfh}, '>>', $self->{log} or die "fault server: log: $!\n";
    $self->{logfh}->autoflush(1);

    $self->loop;
    return;
}

sub loop {
    my ($self) = @_;
    my $sel = IO::Select->new($self->{udp}, $self->{tcp});

    while (1) {
        my $timeout = undef;
        if (@{ $self->{pending} }) {
            my ($first) = sort { $a->[0] <=> $b->[0] } @{ $self->{pending} };
            $timeout = $first->[0] - time;
            $timeout = 0 if $timeout < 0;
        }

        my @ready = $sel->can_read($timeout);
        for my $fh (@ready) {
            if ($fh == $self->{udp}) {
                $self->on_udp;
            } elsif ($fh == $self->{tcp}) {
                my $c = $self->{tcp}->accept or next;
                $c->blocking(0);
                $self->{conns}{ fileno $c } = { sock => $c, buf => '' };
                $sel->add($c);
            } else {
                $self->on_tcp($fh, $sel);
            }
        }
        $self->flush_pending;
    }
}

sub on_udp {
    my ($self) = @_;
    my $buf = '';
    my $peer = $self->{udp}->recv($buf, 65535, 0);
    return unless defined $peer && length $buf;
    $self->{from} = eval { (unpack_sockaddr_in($peer))[0] };
    my ($data, $delay) = $self->respond($buf, 'udp');
    return unless defined $data;
    $self->schedule($delay, [ 'udp', $peer ], $data);
    return;
}

sub on_tcp {
    my ($self, $fh, $sel) = @_;
    my $conn = $self->{conns}{ fileno $fh } or return;
    my $n = sysread($fh, my $chunk, 65535);
    if (!$n) {
        return if !defined $n && $!{EAGAIN};
        $sel->remove($fh);
        delete $self->{conns}{ fileno $fh };
        close $fh;
        return;
    }
    $conn->{buf} .= $chunk;
    while (length $conn->{buf} >= 2) {
        my $len = unpack 'n', $conn->{buf};
        last if length $conn->{buf} < 2 + $len;
        my $msg = substr $conn->{buf}, 2, $len;
        substr($conn->{buf}, 0, 2 + $len) = '';
        $self->{from} = $fh->peerport;
        my ($data, $delay) = $self->respond($msg, 'tcp');
        next unless defined $data;
        $self->schedule($delay, [ 'tcp', $fh ], pack('n', length $data) . $data);
    }
    return;
}

sub schedule {
    my ($self, $delay, $target, $data) = @_;
    push @{ $self->{pending} }, [ time + ($delay || 0), $target, $data ];
    $self->flush_pending unless $delay;
    return;
}

sub flush_pending {
    my ($self) = @_;
    my $now = time;
    my @keep;
    for my $p (@{ $self->{pending} }) {
        if ($p->[0] > $now) {
            push @keep, $p;
            next;
        }
        my ($kind, $where) = @{ $p->[1] };
        if ($kind eq 'udp') {
            $self->{udp}->send($p->[2], 0, $where);
        } elsif (defined fileno $where) {
            $where->blocking(1);
            syswrite $where, $p->[2];
            $where->blocking(0);
        }
    }
    $self->{pending} = \@keep;
    return;
}

# The control file is re-read on every query; QQ::DNS replaces it with
# rename(), so a reader sees either the old or the new version.
sub control {
    my ($self) = @_;
    if (open my $fh, '<', $self->{control}) {
        local $/;
        my $text = <$fh>;
        close $fh;
        my $ctl = eval { JSON::PP::decode_json($text) };
        $self->{ctl} = $ctl if $ctl && ref $ctl eq 'HASH';
    }
    return $self->{ctl};
}

sub spec_for {
    my ($self, $name) = @_;
    my $names = $self->control->{names} || {};
    for my $key ($name, '*') {
        my $entry = $names->{$key} or next;
        return $entry->{ $self->{id} } if $entry->{ $self->{id} };
        return $entry->{'*'} if $entry->{'*'};
    }
    return { rcode => 'NXDOMAIN' };
}

# a line per query: its time, this server, udp or tcp, the name, the type,
# what was done, then the query's DNS ID and the client's port (c-ares
# sends a query again with the same ID, from the same or a new socket)
sub logq {
    my ($self, $proto, $name, $type, $action) = @_;
    printf { $self->{logfh} } "%.3f %s %s %s %s %s %s %s\n",
        time, $self->{id}, $proto, $name, $type, $action,
        $self->{qid} // '-', $self->{from} // '-';
    return;
}

# Returns (wire data, delay seconds) or () to stay silent.
sub respond {
    my ($self, $buf, $proto) = @_;

    my $query = eval { Net::DNS::Packet->new(\$buf) };
    return () unless $query && !$query->header->qr;
    $self->{qid} = $query->header->id;
    my ($q) = $query->question;
    return () unless $q;

    my $qname = $q->qname;
    my $name = lc $qname;
    $name =~ s/\.$//;
    my $type = $q->qtype;

    if ($name eq READY_NAME) {
        my $reply = $query->reply(1232);
        $reply->header->rcode('NOERROR');
        $reply->header->ra(1);
        $reply->push(answer => Net::DNS::RR->new("$qname. 0 IN A 127.0.0.1"))
            if $type eq 'A';
        return ($reply->data, 0);
    }

    my $spec = $self->spec_for($name);
    $spec = { %$spec, %{ $spec->{$type} } } if ref $spec->{$type} eq 'HASH';
    my $delay = ($spec->{delay_ms} || 0) / 1000;

    # every query of an episode answered together, when it ends
    if (my $h = $spec->{hold_ms}) {
        my $now = time;
        my $end = $self->{held}{"$name $type"};
        $end = $self->{held}{"$name $type"} = $now + $h / 1000
            if !defined $end || $end <= $now;
        $delay = $end - $now;
    }

    if ($spec->{drop}) {
        $self->logq($proto, $name, $type, 'drop');
        return ();
    }

    if ($spec->{malformed}) {
        $self->logq($proto, $name, $type, 'malformed');
        # A plausible header (same id, QR, 1 question, 3 answers) followed by
        # bytes that cannot be parsed as a question and records.
        my $data = pack('n6', $query->header->id, 0x8180, 1, 3, 0, 0)
                 . "\x3f" . ("\xff" x 7) . "\xc0\xff\x00";
        return ($data, $delay);
    }

    my $rcode = uc($spec->{rcode} // 'NOERROR');
    my $ttl = $spec->{ttl} // 1;

    # as a provider's cache answers: the rest of a TTL of cache_ttl
    # seconds that started when the name (and type) was first asked, and
    # starts again once it ended
    if (my $c = $spec->{cache_ttl}) {
        my $now = time;
        my $end = $self->{cached}{"$name $type"};
        $end = $self->{cached}{"$name $type"} = $now + $c
            if !defined $end || $end <= $now;
        $ttl = int($end - $now + 0.999);
    }

    my $udp_max = 512;
    my ($opt) = grep { $_->type eq 'OPT' } $query->additional;
    $udp_max = $opt->size if $opt && $opt->size && $opt->size > 512;

    if ($spec->{longname}) {
        $self->logq($proto, $name, $type, 'longname');
        return ($self->longname($query, $spec, $ttl), $delay);
    }

    my $reply;
    my $action = lc $rcode;

    if (my $qs = $spec->{question}) {
        # a reply whose question is not the one asked
        $reply = Net::DNS::Packet->new($qs->{name} // $qname,
                                       $qs->{type} // $type,
                                       $qs->{class} // 'IN');
        $reply->header->id($query->header->id);
        $reply->header->qr(1);
        $reply->header->rd($query->header->rd);
        $action .= '+question';
    } else {
        $reply = $query->reply($udp_max);
    }

    my $header = $reply->header;
    $header->rcode($rcode);
    $header->aa(1);
    $header->ra(1);

    if ($rcode eq 'NOERROR') {
        my $owner = $spec->{owner} // "$qname";
        $owner =~ s/\.$//;
        for my $next (@{ $spec->{cname} || [] }) {
            $reply->push(answer => Net::DNS::RR->new("$owner. $ttl IN CNAME $next."));
            $owner = $next;
        }
        $action .= '+owner' if defined $spec->{owner};
        $action .= '+cname' . @{ $spec->{cname} } if $spec->{cname};
        for my $addr (@{ $spec->{addrs} || [] }) {
            my $rrtype = $addr =~ /:/ ? 'AAAA' : 'A';
            next unless $rrtype eq $type;
            $reply->push(answer => Net::DNS::RR->new("$owner. $ttl IN $rrtype $addr"));
        }
        if ($type eq 'SRV') {
            for my $r (@{ $spec->{srv} || [] }) {
                $reply->push(answer => Net::DNS::RR->new(
                    "$owner. $ttl IN SRV $r->[0] $r->[1] $r->[2] $r->[3]."));
            }
        }
        $reply->push(additional => Net::DNS::RR->new($_))
            for @{ $spec->{additional} || [] };
        $action .= '+additional' if $spec->{additional};
    }

    my $data;
    if ($proto eq 'udp' && $spec->{truncate}) {
        $header->tc(1);
        $reply->pop('answer') while $reply->answer;
        $data = $reply->data;
        $action .= '+tc';
    } elsif ($proto eq 'udp') {
        $data = $reply->data($udp_max);
        $action .= '+tc' if $reply->header->tc;
    } else {
        $data = $reply->data;
    }
    if (defined $spec->{qr} && !$spec->{qr}) {
        # the same message with QR clear
        substr($data, 2, 1) = chr(ord(substr($data, 2, 1)) & 0x7f);
        $action .= '+noqr';
    }
    $action .= sprintf('+delay%d', $spec->{delay_ms}) if $spec->{delay_ms};
    $action .= sprintf('+hold%d', $spec->{hold_ms}) if $spec->{hold_ms};
    $self->logq($proto, $name, $type, $action);

    return ($data, $delay);
}

# name asked CNAME L, L A addrs, where L is three labels of 63 octets and
# one of 60 followed by a pointer to the name asked: 255 octets in place,
# more than 255 once expanded; the A records name L by a pointer too
sub longname {
    my ($self, $query, $spec, $ttl) = @_;
    my ($q) = $query->question;
    my $wire = join('', map { chr(length) . $_ } split /\./, $q->qname) . "\0";
    my @addrs = grep { ($_ =~ /:/ ? 'AAAA' : 'A') eq $q->qtype }
                @{ $spec->{addrs} || [] };
    my $qtype = $q->qtype eq 'AAAA' ? 28 : 1;

    my $msg = pack('n6', $query->header->id,
                   0x8400 | ($query->header->rd ? 0x0100 : 0) | 0x0080,
                   1, 1 + @addrs, 0, 0)
            . $wire . pack('n2', $qtype, 1);

    my $long = join('', map { chr(63) . ('a' x 63) } 1 .. 3)
             . chr(60) . ('b' x 60) . pack('n', 0xc00c);
    my $at = length($msg) + 2 + 10;     # where L starts: after owner + fixed
    $msg .= pack('n n n N n', 0xc00c, 5, 1, $ttl, length $long) . $long;

    for my $addr (@addrs) {
        my $rdata = $qtype == 1 ? Socket::inet_aton($addr)
                                : Socket::inet_pton(Socket::AF_INET6(), $addr);
        $msg .= pack('n n n N n', 0xc000 | $at, $qtype, 1, $ttl, length $rdata)
              . $rdata;
    }

    return $msg;
}

1;
