# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::DNS;

# A real DNS topology on loopback literals, plus a scriptable fault server.
#
#   registrar A (nsd)  serves zone a (example.com)   at ADDR_201:53
#   registrar B (nsd)  serves zone b (example.net)   at ADDR_202:53
#   more registrars    zones c, d, e, f, if given     at ADDR_241..244:53
#   fault servers      (perl, forked)                at ADDR_203.. ADDR_209
#   providers 1..N     (unbound, recursive)          at ADDR_211.. ADDR_240
#   fake root hint     (nothing listens)             at ADDR_250
#
# unbound is locked down so that it can never send a packet off this host:
# it answers "." with REFUSED (local-zone) except for the two stub zones, its
# root hints point at ADDR_250, it may only query 127.0.0.0/8
# (do-not-query-address covers every other IPv4 block), IPv6 is off and its
# outgoing sockets are bound to 127.0.0.1.
#
# zones => { a => 'example.com', b => 'example.net', c => 'example.org' }
# serves more zones (c to f), each by its own nsd; ns => { WHICH => [ [
# NAME, ADDR ], ... ] } gives a zone these NS records instead of
# "ns.<zone>" at its registrar's address (ADDR "auth:c": registrar c's
# address; undef: no A record; an A
# record is written only for a NAME inside the zone).  The providers ask
# each zone's registrar (stub zones) whatever its NS records say.
#
# dnssec => 1 signs both zones (one ECDSA P-256 key per zone made by
# ldns-keygen in the test's directory, the zone signed by ldns-signzone
# each time it is written, NSEC); validators => [ I, ... ] makes those
# providers validate (unbound's validator, the zones' keys as their only
# trust anchors); the others never validate.

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path);
use JSON::PP ();
use Time::HiRes qw(time sleep);

use QQ::Proc;
use QQ::FaultServer;

# Net::DNS builds its default configuration from /etc/resolv.conf the first
# time a resolver is created.  Make that default a dead loopback address, so
# that even an accidental default resolver in this process can never reach
# the machine's real resolver (design-pitfalls §0.3).
our $DEAD_RESOLVER = '127.254.254.254';
BEGIN {
    local $ENV{RES_NAMESERVERS} = '127.254.254.254';
    local $ENV{RES_SEARCHLIST};
    local $ENV{LOCALDOMAIN};
    require Net::DNS;
    Net::DNS::Resolver->new(nameservers => ['127.254.254.254']);
}

my $NSD     = $ENV{QQ_NSD}     || '/usr/sbin/nsd';
my $UNBOUND = $ENV{QQ_UNBOUND} || '/usr/sbin/unbound';
my $UNBOUND_CONTROL = '/usr/sbin/unbound-control';
my $LDNS_KEYGEN = '/usr/bin/ldns-keygen';
my $LDNS_SIGNZONE = '/usr/bin/ldns-signzone';

my %AUTH_HOST   = (a => 201, b => 202, c => 241, d => 242, e => 243,
                   f => 244, g => 247);
my $FAULT_FIRST = 203;
my $FAULT_MAX   = 7;
my $PROVIDER_FIRST = 211;
my $PROVIDER_MAX   = 30;
my $ROOT_HOST   = 250;

# Names of the daemons this helper needs that are not installed.
sub missing_tools {
    return grep { !-x $_ } $NSD, $UNBOUND, $UNBOUND_CONTROL;
}

# ... and the ones dnssec => 1 needs (package ldnsutils)
sub missing_dnssec_tools {
    return grep { !-x $_ } $LDNS_KEYGEN, $LDNS_SIGNZONE;
}

sub new {
    my ($class, %opts) = @_;
    my $t = $opts{t} or croak "QQ::DNS->new: t => QQ::Nginx object required";

    my $self = bless {
        t         => $t,
        dir       => $t->dir . '/dns',
        port      => $opts{port} // 53,
        zones     => $opts{zones} // { a => 'example.com', b => 'example.net' },
        ttl       => $opts{ttl} // 1,
        records   => {},
        serial    => {},
        zone_mtime=> {},
        ns        => $opts{ns} // {},
        auth      => {},     # a|b => { pid, blackholed }
        providers => {},     # i   => { pid, blackholed }
        faults    => [],     # { ip, port, pid, log }
        fault_ctl => { names => {} },
        dnssec    => $opts{dnssec} // 0,
        keys      => {},     # a|b => key file base name, "K<zone>.+013+<id>"
        validators=> { map { $_ => 1 } @{ $opts{validators} // [] } },
    }, $class;

    for my $which (keys %{ $self->{zones} }) {
        croak "zone '$which': a to g" unless $AUTH_HOST{$which};
        $self->{serial}{$which} = 1;
        $self->{zone_mtime}{$which} = 0;
    }

    make_path($self->{dir});
    $self->_write_root_hints;
    $self->_write_fault_control;
    return $self;
}

sub t   { return $_[0]{t} }
sub dir { return $_[0]{dir} }
sub ttl { return $_[0]{ttl} }

sub _ip { my ($self, $n) = @_; return $self->{t}->addr($n) }

# ---------------------------------------------------------------------------
# addresses

sub auth_ip {
    my ($self, $which) = @_;
    my $n = $AUTH_HOST{ $which // '' } or croak "auth: 'a' to 'g'";
    return $self->_ip($n);
}

sub auth_addr {
    my ($self, $which) = @_;
    return $self->auth_ip($which) . ':' . $self->{port};
}

sub provider_ip {
    my ($self, $i) = @_;
    croak "provider index 1..$PROVIDER_MAX" unless $i && $i >= 1 && $i <= $PROVIDER_MAX;
    return $self->_ip($PROVIDER_FIRST + $i - 1);
}

sub provider_addr {
    my ($self, $i) = @_;
    return $self->provider_ip($i) . ':' . $self->{port};
}

sub providers { return sort { $a <=> $b } keys %{ $_[0]{providers} } }

sub zone_of {
    my ($self, $name) = @_;
    $name = lc $name;
    $name =~ s/\.$//;
    # the longest zone: a name in dept.example.com is not in example.com
    for my $which (sort { length $self->{zones}{$b}
                          <=> length $self->{zones}{$a} }
                   keys %{ $self->{zones} }) {
        my $zone = $self->{zones}{$which};
        return $which if $name eq $zone || $name =~ /\.\Q$zone\E$/;
    }
    croak "name '$name' is not inside " . join(' or ', values %{ $self->{zones} });
}

# ---------------------------------------------------------------------------
# registrars (nsd)

sub start_auth {
    my ($self, %opts) = @_;
    $self->{ttl} = $opts{ttl} if defined $opts{ttl};
    my $records = $opts{records} || {};
    while (my ($name, $value) = each %$records) {
        my $key = lc $name;
        $key =~ s/\.$//;
        $self->zone_of($key);
        $self->{records}{$key} = $value;
    }
    for my $which (sort keys %{ $self->{zones} }) {
        $self->_write_zone($which);
        $self->start_auth_server($which);
    }
    return 1;
}

sub _auth_dir { my ($self, $which) = @_; return "$self->{dir}/auth-$which" }

sub _write_zone {
    my ($self, $which) = @_;
    my $zone = $self->{zones}{$which};
    my $dir = $self->_auth_dir($which);
    make_path($dir);
    my $ttl = $self->{ttl};
    my $serial = $self->{serial}{$which};
    my $ns_ip = $self->auth_ip($which);

    my @lines = (
        "\$ORIGIN $zone.",
        "\$TTL $ttl",
        "@ IN SOA ns.$zone. hostmaster.$zone. $serial 1 1 60 $ttl",
    );
    for my $ns (@{ $self->{ns}{$which} // [ [ "ns.$zone", $ns_ip ] ] }) {
        my ($host, $addr) = @$ns;
        # "auth:c": the address of registrar c
        $addr = $self->auth_ip($1) if defined $addr && $addr =~ /^auth:(\w)$/;
        push @lines, "@ IN NS $host.";
        push @lines, "$host. IN A $addr"
            if defined $addr && ($host eq $zone || $host =~ /\.\Q$zone\E$/);
    }
    for my $name (sort keys %{ $self->{records} }) {
        next unless $self->zone_of($name) eq $which;
        my $value = $self->{records}{$name};
        if (ref $value eq 'HASH' && $value->{cname}) {
            push @lines, "$name. IN CNAME $value->{cname}.";
            next;
        }
        if (ref $value eq 'HASH' && $value->{srv}) {
            # [ PRIORITY, WEIGHT, PORT, TARGET ], ...
            push @lines, map { "$name. IN SRV $_->[0] $_->[1] $_->[2] "
                               . "$_->[3]." } @{ $value->{srv} };
            next;
        }
        for my $addr (@{ ref $value eq 'ARRAY' ? $value : [$value] }) {
            my $type = $addr =~ /:/ ? 'AAAA' : 'A';
            push @lines, "$name. IN $type $addr";
        }
    }

    my $file = "$dir/$zone.zone";
    open my $fh, '>', "$file.tmp" or croak "write $file: $!";
    print {$fh} join("\n", @lines), "\n";
    close $fh or croak "close $file: $!";

    if ($self->{dnssec}) {
        # nsd serves the signed zone: signed next to it, then renamed
        $self->_sign_zone($which, "$file.tmp");
        rename "$file.tmp.signed", "$file.signed"
            or croak "rename $file.signed: $!";
        unlink "$file.tmp";
        $file = "$file.signed";
    } else {
        rename "$file.tmp", $file or croak "rename $file: $!";
    }

    # nsd reloads a zone only when its mtime changed: make it strictly grow.
    my $mtime = int time;
    $mtime = $self->{zone_mtime}{$which} + 1 if $mtime <= $self->{zone_mtime}{$which};
    utime $mtime, $mtime, $file;
    $self->{zone_mtime}{$which} = $mtime;

    $self->_write_nsd_conf($which);
    return;
}

sub _write_nsd_conf {
    my ($self, $which) = @_;
    my $dir = $self->_auth_dir($which);
    open my $fh, '>', "$dir/nsd.conf" or croak "write nsd.conf: $!";
    print {$fh} nsd_conf(ip => $self->auth_ip($which), port => $self->{port},
                         dir => $dir, zone => $self->{zones}{$which},
                         signed => $self->{dnssec});
    close $fh;
    return;
}

# the zone's key, made once (ECDSA P-256, a key-signing key that signs
# everything); its DNSKEY record is the providers' trust anchor
sub _zone_key {
    my ($self, $which) = @_;
    return $self->{keys}{$which} if $self->{keys}{$which};
    my $zone = $self->{zones}{$which};
    my $dir = "$self->{dir}/keys";
    make_path($dir);
    my ($status, $out) = QQ::Proc::run_cmd(
        [ $LDNS_KEYGEN, '-a', 'ECDSAP256SHA256', '-k', $zone ],
        cwd => $dir, timeout => 30);
    croak "ldns-keygen $zone failed: $out" unless defined $status && $status == 0;
    my ($base) = $out =~ /^(K\S+)$/m or croak "ldns-keygen $zone: '$out'";
    return $self->{keys}{$which} = "$dir/$base";
}

# the DNSKEY record of zone $which, for a trust anchor
sub trust_anchor_file {
    my ($self, $which) = @_;
    return $self->_zone_key($which) . '.key';
}

sub _sign_zone {
    my ($self, $which, $file) = @_;
    my $key = $self->_zone_key($which);
    my ($status, $out) = QQ::Proc::run_cmd(
        [ $LDNS_SIGNZONE, '-o', $self->{zones}{$which}, $file, $key ],
        timeout => 30);
    croak "ldns-signzone $file failed: $out"
        unless defined $status && $status == 0 && -s "$file.signed";
    return;
}

# nsd.conf of an nsd (run with -d) serving one zone from DIR/ZONE.zone on
# one address, its files in DIR (also used by QQ::Stream)
sub nsd_conf {
    my (%o) = @_;
    my ($ip, $port, $dir, $zone) = @o{qw(ip port dir zone)};
    my $file = "$dir/$zone.zone" . ($o{signed} ? '.signed' : '');
    return <<"EOF";
server:
  ip-address: $ip\@$port
  do-ip4: yes
  do-ip6: no
  username: ""
  chroot: ""
  database: ""
  zonelistfile: "$dir/zone.list"
  xfrdfile: "$dir/xfrd.state"
  xfrdir: "$dir"
  pidfile: "$dir/nsd.pid"
  logfile: "$dir/nsd.log"
  zonesdir: "$dir"
  server-count: 1
  reuseport: no
  verbosity: 1
  hide-version: yes
  # no response rate limiting: a load test's 200 answers a second from one
  # /24 would otherwise be truncated or dropped
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "$zone"
  zonefile: "$file"
EOF
}

# start_auth_server('a' [, flush => 1]): (re)starts a registrar.  Providers
# that answered SERVFAIL during the outage keep doing so for up to ~5 s
# (unbound caches SERVFAIL); flush => 1 flushes every provider's caches.
sub start_auth_server {
    my ($self, $which, %opts) = @_;
    my $st = $self->{auth}{$which} //= {};
    croak "auth $which already running" if $st->{pid} && QQ::Proc::alive($st->{pid});
    my $dir = $self->_auth_dir($which);
    croak "start_auth first" unless -f "$dir/nsd.conf";

    $st->{pid} = QQ::Proc::spawn(
        name   => "nsd-$which",
        cmd    => [ $NSD, '-d', '-c', "$dir/nsd.conf" ],
        stdout => "$dir/nsd.stderr",
        cwd    => $dir,
    );
    $st->{blackholed} = 0;

    my $zone = $self->{zones}{$which};
    my $serial = $self->{serial}{$which};
    my $ok = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($st->{pid});
        return $self->_auth_serial($which) == $serial ? 'ok' : 0;
    }, 10, 0.05);
    croak "nsd for $zone did not start ($ok):\n" . QQ::Proc::slurp("$dir/nsd.log")
        . QQ::Proc::slurp("$dir/nsd.stderr")
        unless $ok eq 'ok';
    $self->flush_provider if $opts{flush};
    return 1;
}

sub _auth_serial {
    my ($self, $which) = @_;
    my $packet = $self->_send($self->auth_addr($which), $self->{zones}{$which}, 'SOA',
                              timeout => 0.5, recurse => 0);
    return -1 unless $packet && $packet->header->rcode eq 'NOERROR';
    my ($soa) = grep { $_->type eq 'SOA' } $packet->answer;
    return $soa ? $soa->serial : -1;
}

# Stop, black-hole (SIGSTOP: packets are queued, never answered) and
# restore one daemon, an authoritative server or a provider, by its state.

sub _stop_daemon {
    my ($st) = @_;
    return 1 unless $st;
    QQ::Proc::stop($st->{pid}, signal => 'TERM', timeout => 5) if $st->{pid};
    $st->{pid} = undef;
    $st->{blackholed} = 0;
    return 1;
}

sub _blackhole_daemon {
    my ($st, $what) = @_;
    croak "$what not running" unless $st && $st->{pid} && QQ::Proc::alive($st->{pid});
    QQ::Proc::signal_tree($st->{pid}, 'STOP');
    $st->{blackholed} = 1;
    return 1;
}

sub _restore_daemon {
    my ($st, $what) = @_;
    croak "$what not running" unless $st && $st->{pid};
    QQ::Proc::signal_tree($st->{pid}, 'CONT');
    $st->{blackholed} = 0;
    return 1;
}

sub stop_auth {
    my ($self, $which) = @_;
    return _stop_daemon($self->{auth}{$which});
}

sub blackhole_auth {
    my ($self, $which) = @_;
    return _blackhole_daemon($self->{auth}{$which}, "auth $which");
}

sub restore_auth {
    my ($self, $which, %opts) = @_;
    _restore_daemon($self->{auth}{$which}, "auth $which");
    # A HUP sent while stopped (set_record) is handled now: wait for it.
    $self->_wait_serial($which);
    if ($opts{flush}) {
        $self->flush_provider;
    } else {
        # unbound 1.2x (Debian 13) keeps a server whose timeout reached
        # infra-cache-max-rtt down after its entry expired, for good
        # (NLnetLabs/unbound#1461): the providers forget their server
        # state, as unbound 1.17 does within infra-host-ttl, not answers
        $self->_provider_control([qw(flush_infra all)]);
    }
    return 1;
}

sub _auth_answering {
    my ($self, $which) = @_;
    my $st = $self->{auth}{$which};
    return $st && $st->{pid} && !$st->{blackholed} && QQ::Proc::alive($st->{pid});
}

sub _wait_serial {
    my ($self, $which) = @_;
    return 1 unless $self->_auth_answering($which);
    my $serial = $self->{serial}{$which};
    my $pid = $self->{auth}{$which}{pid};
    my $last_hup = time;
    my $ok = QQ::Proc::poll_until(sub {
        return 1 if $self->_auth_serial($which) == $serial;
        if (time - $last_hup > 1) {        # a HUP may have been coalesced
            kill 'HUP', $pid;
            $last_hup = time;
        }
        return 0;
    }, 10, 0.05);
    croak "registrar $which did not load serial $serial" unless $ok;
    return 1;
}

sub _zone_changed {
    my ($self, $which) = @_;
    $self->{serial}{$which}++;
    $self->_write_zone($which);
    my $st = $self->{auth}{$which};
    return 1 unless $st && $st->{pid} && QQ::Proc::alive($st->{pid});
    kill 'HUP', $st->{pid};
    $self->_wait_serial($which);
    return 1;
}

sub set_record {
    my ($self, $name, $addrs) = @_;
    my $key = lc $name;
    $key =~ s/\.$//;
    my $which = $self->zone_of($key);
    $self->{records}{$key} = $addrs;
    return $self->_zone_changed($which);
}

# many records at once: each zone is rewritten and reloaded once
sub set_records {
    my ($self, $records) = @_;
    my %zones;
    while (my ($name, $addrs) = each %$records) {
        my $key = lc $name;
        $key =~ s/\.$//;
        $zones{ $self->zone_of($key) } = 1;
        $self->{records}{$key} = $addrs;
    }
    $self->_zone_changed($_) for sort keys %zones;
    return 1;
}

sub del_record {
    my ($self, $name) = @_;
    my $key = lc $name;
    $key =~ s/\.$//;
    my $which = $self->zone_of($key);
    delete $self->{records}{$key};
    return $self->_zone_changed($which);
}

sub records { return { %{ $_[0]{records} } } }

# ---------------------------------------------------------------------------
# providers (unbound)

sub _provider_dir { my ($self, $i) = @_; return "$self->{dir}/p$i" }

sub _write_root_hints {
    my ($self) = @_;
    my $root = $self->_ip($ROOT_HOST);
    open my $fh, '>', "$self->{dir}/root.hints" or croak "root.hints: $!";
    print {$fh} ".                      3600000 IN NS a.root.qq.invalid.\n",
                "a.root.qq.invalid.     3600000 IN A  $root\n";
    close $fh;
    return;
}

# Every IPv4 block except 127.0.0.0/8.
my @NOT_LOOPBACK = qw(0.0.0.0/2 64.0.0.0/3 96.0.0.0/4 112.0.0.0/5 120.0.0.0/6
                      124.0.0.0/7 126.0.0.0/8 128.0.0.0/1);

sub _write_unbound_conf {
    my ($self, $i) = @_;
    my $dir = $self->_provider_dir($i);
    make_path($dir);
    my $ip = $self->provider_ip($i);
    my $port = $self->{port};
    my $negttl = $self->{ttl} > 0 ? $self->{ttl} : 1;

    my $conf = <<"EOF";
server:
  interface: $ip
  port: $port
  interface-automatic: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  logfile: "$dir/unbound.log"
  use-syslog: no
  log-time-ascii: yes
  verbosity: 1
  num-threads: 1
  module-config: "@{[ $self->{validators}{$i} ? 'validator iterator' : 'iterator' ]}"
  do-ip4: yes
  do-ip6: no
  do-udp: yes
  do-tcp: yes
  so-reuseport: no
  outgoing-interface: 127.0.0.1
  outgoing-range: 64
  num-queries-per-thread: 256
  access-control: 127.0.0.0/8 allow
  root-hints: "$self->{dir}/root.hints"
  do-not-query-localhost: no
EOF
    $conf .= "  do-not-query-address: $_\n" for @NOT_LOOPBACK;
    $conf .= <<"EOF";
  local-zone: "." refuse
  local-data: "ready.qq.invalid. 0 IN A 127.0.0.1"
  qname-minimisation: no
  prefetch: no
  serve-expired: no
  target-fetch-policy: "0 0 0 0 0"
  harden-referral-path: no
  cache-max-negative-ttl: $negttl
  infra-host-ttl: 1
  infra-keep-probing: yes
  infra-cache-max-rtt: 300
  unknown-server-time-limit: 100
  discard-timeout: 0
EOF
    for my $which (sort keys %{ $self->{zones} }) {
        my $zone = $self->{zones}{$which};
        $conf .= "  local-zone: \"$zone.\" transparent\n";
    }
    for my $which (sort keys %{ $self->{zones} }) {
        my $zone = $self->{zones}{$which};
        my $auth = $self->auth_ip($which);
        $conf .= "stub-zone:\n  name: \"$zone.\"\n  stub-addr: $auth\@$self->{port}\n"
               . "  stub-prime: no\n";
    }
    if ($self->{validators}{$i}) {
        # the zones' own keys are the only trust anchors (no root key):
        # answers from the signed zones are validated, bogus ones SERVFAIL
        $conf .= "server:\n";
        $conf .= "  trust-anchor-file: \"" . $self->trust_anchor_file($_)
               . "\"\n" for sort keys %{ $self->{zones} };
        $conf .= "  val-log-level: 1\n";
    }
    $conf .= "remote-control:\n  control-enable: yes\n"
           . "  control-interface: \"$dir/unbound.ctl\"\n";

    open my $fh, '>', "$dir/unbound.conf" or croak "write unbound.conf: $!";
    print {$fh} $conf;
    close $fh;
    return;
}

sub start_providers {
    my ($self, $count) = @_;
    croak "start_providers: 1..$PROVIDER_MAX" unless $count && $count <= $PROVIDER_MAX;
    my @started;
    for my $i (1 .. $count) {
        my $st = $self->{providers}{$i};
        next if $st && $st->{pid} && QQ::Proc::alive($st->{pid});
        $self->_spawn_provider($i);
        push @started, $i;
    }
    $self->_wait_provider($_) for @started;
    return $count;
}

sub _spawn_provider {
    my ($self, $i) = @_;
    $self->_write_unbound_conf($i);
    my $dir = $self->_provider_dir($i);
    $self->{providers}{$i} = {
        pid => QQ::Proc::spawn(
            name   => "unbound-p$i",
            cmd    => [ $UNBOUND, '-d', '-c', "$dir/unbound.conf" ],
            stdout => "$dir/unbound.stderr",
            cwd    => $dir,
        ),
        blackholed => 0,
    };
    return;
}

sub _wait_provider {
    my ($self, $i) = @_;
    my $st = $self->{providers}{$i};
    my $dir = $self->_provider_dir($i);
    my $ok = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($st->{pid});
        my ($rcode) = $self->query($self->provider_addr($i), 'ready.qq.invalid', 'A',
                                   timeout => 0.3);
        return $rcode eq 'NOERROR' ? 'ok' : 0;
    }, 10, 0.05);
    croak "unbound provider $i did not start ($ok):\n" . QQ::Proc::slurp("$dir/unbound.log")
        . QQ::Proc::slurp("$dir/unbound.stderr")
        unless $ok eq 'ok';
    return 1;
}

sub start_provider {
    my ($self, $i) = @_;
    my $st = $self->{providers}{$i};
    croak "provider $i already running" if $st && $st->{pid} && QQ::Proc::alive($st->{pid});
    $self->_spawn_provider($i);
    $self->_wait_provider($i);
    return 1;
}

sub stop_provider {
    my ($self, $i) = @_;
    return _stop_daemon($self->{providers}{$i});
}

sub provider_pid {
    my ($self, $i) = @_;
    my $st = $self->{providers}{$i} or return undef;
    return $st->{pid};
}

sub blackhole_provider {
    my ($self, $i) = @_;
    return _blackhole_daemon($self->{providers}{$i}, "provider $i");
}

sub restore_provider {
    my ($self, $i) = @_;
    return _restore_daemon($self->{providers}{$i}, "provider $i");
}

# Drops the cache and the infrastructure cache (server up/down and RTT
# state) of one provider, or of all when $i is undef.
sub flush_provider {
    my ($self, $i) = @_;
    return $self->_provider_control([qw(flush_zone .)], [qw(flush_infra all)],
                                    ['flush_requestlist'], $i);
}

# Runs unbound-control commands on one running provider, or on all when
# the last argument is undef or absent.
sub _provider_control {
    my ($self, @cmds) = @_;
    my $i = ref $cmds[-1] ? undef : pop @cmds;
    my @which = defined $i ? ($i) : $self->providers;
    for my $p (@which) {
        my $st = $self->{providers}{$p};
        next unless $st && $st->{pid} && !$st->{blackholed} && QQ::Proc::alive($st->{pid});
        my $conf = $self->_provider_dir($p) . '/unbound.conf';
        for my $cmd (@cmds) {
            my ($status, $out) = QQ::Proc::run_cmd(
                [ $UNBOUND_CONTROL, '-c', $conf, @$cmd ], timeout => 10);
            croak "unbound-control @$cmd failed: $out" unless defined $status && $status == 0;
        }
    }
    return 1;
}

# ---------------------------------------------------------------------------
# queries

sub _split_server {
    my ($server) = @_;
    my ($ip, $port) = $server =~ /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/
        or croak "DNS server must be an IPv4 literal with optional :port, got '$server'";
    return ($ip, $port // 53);
}

# resolver('127.A.B.x:port', timeout => 2, tcp => 0, recurse => 1): a
# Net::DNS::Resolver aimed at exactly that literal (for bgsend and the like).
sub resolver {
    my ($self, $server, %opts) = @_;
    my ($ip, $port) = _split_server($server);
    my $timeout = $opts{timeout} // 2;
    my $res = Net::DNS::Resolver->new(
        nameservers    => [$ip],
        port           => $port,
        recurse        => $opts{recurse} // 1,
        retry          => 1,
        retrans        => $timeout,
        udp_timeout    => $timeout,
        tcp_timeout    => $timeout,
        usevc          => $opts{tcp} ? 1 : 0,
        igntc          => 0,
        dnsrch         => 0,
        defnames       => 0,
        persistent_udp => 0,
        persistent_tcp => 0,
        force_v4       => 1,
    );
    # nameservers() would resolve a non-literal through the default
    # resolver: make sure it is exactly the literal we passed.
    my @ns = $res->nameservers;
    croak "resolver nameservers @ns" unless @ns == 1 && $ns[0] eq $ip;
    return $res;
}

sub _send {
    my ($self, $server, $name, $type, %opts) = @_;
    my $res = $self->resolver($server, %opts);
    my $packet = $res->send($name, $type // 'A');
    $self->{last_error} = $packet ? '' : $res->errorstring;
    return $packet;
}

# query('127.A.B.x:port', $name, $type, timeout => 2, tcp => 0)
# Returns (rcode, [addresses]): the A and AAAA data of the answer section
# in answer order (IPv6 in short form, '::1'); rcode is 'TIMEOUT' when
# no reply came back (timeout, or ICMP port unreachable) and 'MALFORMED'
# when the reply could not be parsed.
sub query {
    my ($self, $server, $name, $type, %opts) = @_;
    my $packet = $self->_send($server, $name, $type, %opts);
    return ('TIMEOUT', []) unless $packet;
    # Net::DNS keeps what it could decode of a corrupt reply; the header
    # counts then disagree with the sections.
    my $h = $packet->header;
    return ('MALFORMED', [])
        if $h->qdcount != scalar(my @q = $packet->question)
        || $h->ancount != scalar(my @an = $packet->answer);
    my @addrs = map { $_->type eq 'AAAA' ? $_->address_short : $_->address }
                grep { $_->type eq 'A' || $_->type eq 'AAAA' } $packet->answer;
    return ($packet->header->rcode, \@addrs);
}

sub last_error { return $_[0]{last_error} }

# ---------------------------------------------------------------------------
# fault servers

sub _fault_control_path { return "$_[0]{dir}/fault-control.json" }

sub _write_fault_control {
    my ($self) = @_;
    my $path = $self->_fault_control_path;
    my $tmp = "$path.tmp.$$";
    open my $fh, '>', $tmp or croak "write $tmp: $!";
    print {$fh} JSON::PP->new->canonical->encode($self->{fault_ctl});
    close $fh or croak "close $tmp: $!";
    rename $tmp, $path or croak "rename $tmp: $!";
    return;
}

sub start_fault_server {
    my ($self, %opts) = @_;
    my $k = @{ $self->{faults} } + 1;
    croak "at most $FAULT_MAX fault servers" if $k > $FAULT_MAX;
    my $ip = $self->_ip($FAULT_FIRST + $k - 1);
    my $port = $opts{port} // $self->{port};
    my $log = "$self->{dir}/fault-$k.log";
    my $control = $self->_fault_control_path;

    my $pid = QQ::Proc::fork_code(
        name => "fault-$k",
        code => sub {
            open STDIN, '<', '/dev/null';
            open STDOUT, '>>', "$self->{dir}/fault-$k.stderr";
            open STDERR, '>>', "$self->{dir}/fault-$k.stderr";
            QQ::FaultServer::run(ip => $ip, port => $port, control => $control, log => $log);
        },
    );
    my $fault = { k => $k, ip => $ip, port => $port, pid => $pid, log => $log };
    push @{ $self->{faults} }, $fault;

    my $addr = "$ip:$port";
    my $ok = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($pid);
        my ($rcode) = $self->query($addr, 'ready.qq.invalid', 'A', timeout => 0.3);
        return $rcode eq 'NOERROR' ? 'ok' : 0;
    }, 10, 0.05);
    croak "fault server $k did not start ($ok): " . QQ::Proc::slurp("$self->{dir}/fault-$k.stderr")
        unless $ok eq 'ok';
    return $addr;
}

sub fault_servers { return map { "$_->{ip}:$_->{port}" } @{ $_[0]{faults} } }

my %FAULT_KEYS = map { $_ => 1 } qw(addrs rcode drop delay_ms hold_ms ttl
                                    malformed truncate cname owner qr
                                    question longname A AAAA cache_ttl srv
                                    additional);
my %RCODES = map { $_ => 1 } qw(NOERROR FORMERR SERVFAIL NXDOMAIN NOTIMP REFUSED);

# fault_set($name, \%spec [, $server]): $name may be '*' (any name without
# its own entry); $server ('ip:port') limits the entry to one fault server.
sub fault_set {
    my ($self, $name, $spec, $server) = @_;
    croak "fault_set: spec must be a hash" unless ref $spec eq 'HASH';
    for my $k (keys %$spec) {
        croak "fault_set: unknown key '$k'" unless $FAULT_KEYS{$k};
        # per query type (A, AAAA): a spec whose keys override for it
        croak "fault_set: '$k' must be a spec of its own"
            if $k =~ /^A/ && ref $spec->{$k} ne 'HASH';
    }
    croak "fault_set: unknown rcode '$spec->{rcode}'"
        if defined $spec->{rcode} && !$RCODES{ uc $spec->{rcode} };
    croak "fault_set: addrs must be an array"
        if defined $spec->{addrs} && ref $spec->{addrs} ne 'ARRAY';
    my $key = lc $name;
    $key =~ s/\.$//;
    $self->{fault_ctl}{names}{$key}{ $server // '*' } = { %$spec };
    $self->_write_fault_control;
    return 1;
}

sub fault_clear {
    my ($self, $name, $server) = @_;
    my $key = lc $name;
    $key =~ s/\.$//;
    if (defined $server) {
        delete $self->{fault_ctl}{names}{$key}{$server};
        delete $self->{fault_ctl}{names}{$key} unless %{ $self->{fault_ctl}{names}{$key} || {} };
    } else {
        delete $self->{fault_ctl}{names}{$key};
    }
    $self->_write_fault_control;
    return 1;
}

sub fault_reset {
    my ($self) = @_;
    $self->{fault_ctl} = { names => {} };
    $self->_write_fault_control;
    return 1;
}

# fault_queries(name => ..., server => 'ip:port', type => 'A', proto => 'udp')
# List context: hashes { time, server, proto, name, type, action, id, from }
# (id: the query's DNS ID, from: the client's port);
# scalar context: how many.
sub fault_queries {
    my ($self, %filter) = @_;
    my $want_name = defined $filter{name} ? lc $filter{name} : undef;
    $want_name =~ s/\.$// if defined $want_name;
    my @out;
    for my $f (@{ $self->{faults} }) {
        open my $fh, '<', $f->{log} or next;
        while (my $line = <$fh>) {
            chomp $line;
            my %q;
            @q{qw(time server proto name type action id from)} =
                split ' ', $line;
            next unless defined $q{action};
            next if defined $want_name && $q{name} ne $want_name;
            next if defined $filter{server} && $q{server} ne $filter{server};
            next if defined $filter{type} && $q{type} ne $filter{type};
            next if defined $filter{proto} && $q{proto} ne $filter{proto};
            push @out, \%q;
        }
        close $fh;
    }
    return wantarray ? @out : scalar @out;
}

sub stop_fault_server {
    my ($self, $addr) = @_;
    for my $f (@{ $self->{faults} }) {
        next if defined $addr && "$f->{ip}:$f->{port}" ne $addr;
        QQ::Proc::stop($f->{pid}, signal => 'TERM', timeout => 3) if $f->{pid};
        $f->{pid} = undef;
    }
    return 1;
}

# ---------------------------------------------------------------------------

sub stop_all {
    my ($self) = @_;
    $self->stop_fault_server;
    $self->stop_provider($_) for $self->providers;
    $self->stop_auth($_) for keys %{ $self->{auth} };
    return 1;
}

# Going out of scope stops the daemons (before the QQ::Nginx object that
# owns the directory is destroyed and removes it).
sub DESTROY {
    my ($self) = @_;
    return unless QQ::Proc::is_owner();
    local ($?, $!, $@);
    eval { $self->stop_all };
    return;
}

1;
