# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Backend;

# An HTTP backend that answers every request with its own id: a separate
# stock nginx process (master_process off) with its own prefix directory
# DIR/backend-<id>/.  Body "<id>", header "X-Backend: <id>", HTTP/1.1
# keepalive, one access-log line per request (used by ->requests).
#
# delay => SECONDS makes a slow backend instead: a Perl process (one event
# loop, no limit on connections) that answers each request that long after
# its headers arrived, then closes the connection.  Its access log has one
# line per connection, "<accepted> <closed> <peer> "<request>" <status>", from
# which ->max_concurrency tells how many connections it had open at once.

use strict;
use warnings;

use Carp qw(croak);
use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

use QQ::Proc;

my %COUNT;    # backends created per harness object (default addresses)

sub new {
    my ($class, %opts) = @_;
    my $t = $opts{t} or croak "QQ::Backend->new: t => QQ::Nginx object required";
    my $id = $opts{id} // croak "QQ::Backend->new: id required";
    croak "QQ::Backend: id must be [A-Za-z0-9_.-]+" unless $id =~ /^[\w.-]+$/;

    my $n = ++$COUNT{ $t->dir };
    my $self = bless {
        t      => $t,
        id     => $id,
        addr   => $opts{addr} // $t->addr(19 + $n),
        port   => $opts{port} // $t->port("backend_$id"),
        status => $opts{status} // 200,
        delay  => $opts{delay},
        extra  => $opts{extra_addrs} // [],     # more addresses to listen on
        blob   => $opts{blob},                  # bytes served at /blob
        dir    => $t->dir . "/backend-$id",
        nginx  => $ENV{QQ_NGINX} || '/usr/sbin/nginx',
    }, $class;
    croak "QQ::Backend: addr must be an IPv4 literal" unless $self->{addr} =~ /^\d+\.\d+\.\d+\.\d+$/;
    make_path($self->{dir});
    return $self;
}

sub id   { return $_[0]{id} }
sub addr { return $_[0]{addr} }
sub port { return $_[0]{port} }
sub dir  { return $_[0]{dir} }
sub addr_port { return "$_[0]{addr}:$_[0]{port}" }
sub url  { return "http://$_[0]{addr}:$_[0]{port}" }
sub pid  { return $_[0]{pid} }
sub delay { return $_[0]{delay} }

sub _write_config {
    my ($self) = @_;
    my ($dir, $id, $status) = @{$self}{qw(dir id status)};
    my $conf = <<"EOF";
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log notice;

events {
    worker_connections 1024;
}

http {
    client_body_temp_path $dir/client_body_temp;
    proxy_temp_path $dir/proxy_temp;
    fastcgi_temp_path $dir/fastcgi_temp;
    uwsgi_temp_path $dir/uwsgi_temp;
    scgi_temp_path $dir/scgi_temp;

    log_format qq_backend '\$msec \$remote_addr:\$remote_port "\$request" \$status';
    access_log $dir/access.log qq_backend;

    keepalive_requests 100000;
    keepalive_timeout 60s;
    server_tokens off;
    default_type text/plain;

    server {
        listen $self->{addr}:$self->{port};
@{[ join '', map { "        listen $_:$self->{port};\n" } @{ $self->{extra} } ]}
        location / {
            add_header X-Backend $id always;
            return $status "$id";
        }
@{[ $self->{blob} ? "        location = /blob { alias $dir/blob; }\n" : '' ]}
    }
}
EOF
    if ($self->{blob}) {
        # a body of blob bytes at /blob (bench/stream.pl: throughput)
        open my $bf, '>', "$dir/blob" or croak "write $dir/blob: $!";
        print {$bf} 'x' x $self->{blob};
        close $bf;
    }
    open my $fh, '>', "$dir/nginx.conf" or croak "write $dir/nginx.conf: $!";
    print {$fh} $conf;
    close $fh;
    return;
}

sub start {
    my ($self) = @_;
    croak "backend $self->{id} already running" if $self->is_running;
    return $self->_start_slow if $self->{delay};
    $self->_write_config;
    my $dir = $self->{dir};
    unlink "$dir/nginx.pid";

    my $pid = QQ::Proc::spawn(
        name   => "backend-$self->{id}",
        cmd    => [ $self->{nginx}, '-p', "$dir/", '-c', "$dir/nginx.conf",
                    '-e', "$dir/error.log" ],
        stdout => "$dir/nginx.stderr",
        cwd    => $dir,
    );
    $self->{pid} = $pid;

    my $ok = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($pid);
        open my $fh, '<', "$dir/nginx.pid" or return 0;
        my $content = <$fh> // '';
        return 0 unless $content =~ /^(\d+)/ && $1 == $pid;
        return _listening($self->{addr}, $self->{port}) ? 'ok' : 0;
    }, 10, 0.02);

    unless ($ok eq 'ok') {
        QQ::Proc::stop($pid) if QQ::Proc::alive($pid);
        croak "backend $self->{id} did not start ($ok):\n" . QQ::Proc::slurp("$dir/error.log")
            . QQ::Proc::slurp("$dir/nginx.stderr");
    }
    return 1;
}

sub _start_slow {
    my ($self) = @_;
    my $pid = QQ::Proc::fork_code(
        name => "backend-$self->{id}",
        code => sub { $self->_run_slow },
    );
    $self->{pid} = $pid;
    my $ok = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($pid);
        return _listening($self->{addr}, $self->{port}) ? 'ok' : 0;
    }, 10, 0.02);
    croak "slow backend $self->{id} did not start ($ok)" unless $ok eq 'ok';
    return 1;
}

sub _run_slow {
    my ($self) = @_;
    my ($id, $delay) = @{$self}{qw(id delay)};
    my $ls = IO::Socket::INET->new(
        LocalAddr => $self->{addr}, LocalPort => $self->{port},
        Proto => 'tcp', ReuseAddr => 1, Listen => 1024,
    ) or die "slow backend $id: listen: $!\n";
    $ls->blocking(0);
    open my $log, '>>', "$self->{dir}/access.log" or die "log: $!\n";
    $log->autoflush(1);

    my $sel = IO::Select->new($ls);
    my %c;          # fileno => { sock, buf, start, peer, due, req }
    my $body = $id;
    my $resp = "HTTP/1.1 $self->{status} X\r\nContent-Type: text/plain\r\n"
             . "X-Backend: $id\r\nContent-Length: " . length($body)
             . "\r\nConnection: close\r\n\r\n$body";

    my $close = sub {
        my ($st, $status) = @_;
        $sel->remove($st->{sock});
        delete $c{ fileno $st->{sock} };
        close $st->{sock};
        printf {$log} "%.6f %.6f %s \"%s\" %s\n", $st->{start}, time,
               $st->{peer}, $st->{req} // '', $status;
    };

    while (1) {
        my @due = sort { $a <=> $b } grep { defined } map { $_->{due} }
                  values %c;
        my $wait = @due ? $due[0] - time : 1;
        $wait = 0 if $wait < 0;

        for my $s ($sel->can_read($wait)) {
            if ($s == $ls) {
                while (my $n = $ls->accept) {
                    $n->blocking(0);
                    $c{ fileno $n } = {
                        sock => $n, buf => '', start => time,
                        peer => $n->peerhost . ':' . $n->peerport,
                    };
                    $sel->add($n);
                }
                next;
            }
            my $st = $c{ fileno $s } or next;
            my $got = sysread $s, my $buf, 4096;
            next if !defined $got && $!{EAGAIN};
            unless ($got) {
                $close->($st, 499);
                next;
            }
            $st->{buf} .= $buf;
            if (!$st->{due} && $st->{buf} =~ /\r?\n\r?\n/) {
                ($st->{req}) = $st->{buf} =~ /^([^\r\n]*)/;
                $st->{due} = time + $delay;
            }
        }

        my $now = time;
        for my $st (grep { $_->{due} && $_->{due} <= $now } values %c) {
            $st->{sock}->blocking(1);
            syswrite $st->{sock}, $resp;
            $close->($st, $self->{status});
        }
    }
}

# The most connections a slow backend had open at once, over the lines of
# its access log from $from (a ->requests count taken earlier) on.
sub max_concurrency {
    my ($self, $from) = @_;
    my @lines = split /\n/, $self->access_log;
    my @ev;
    for my $l (@lines[ ($from // 0) .. $#lines ]) {
        my ($s, $e) = $l =~ /^(\d+\.\d+) (\d+\.\d+) / or next;
        push @ev, [ $s, 1 ], [ $e, -1 ];
    }
    # at equal times, a close before an open
    my ($n, $max) = (0, 0);
    for my $e (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev) {
        $n += $e->[1];
        $max = $n if $n > $max;
    }
    return $max;
}

sub _listening {
    my ($ip, $port) = @_;
    my $want = sprintf '%02X%02X%02X%02X:%04X', reverse(split /\./, $ip), $port;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (my $line = <$fh>) {
        my (undef, $local, undef, $state) = split ' ', $line;
        return 1 if $local eq $want && $state eq '0A';
    }
    return 0;
}

sub is_running {
    my ($self) = @_;
    return $self->{pid} && QQ::Proc::alive($self->{pid});
}

sub stop {
    my ($self) = @_;
    return 1 unless $self->{pid};
    QQ::Proc::stop($self->{pid}, signal => 'QUIT', timeout => 5);
    delete $self->{pid};
    return 1;
}

# Number of requests served so far (all starts of this backend).
sub requests {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/access.log" or return 0;
    my $n = 0;
    $n++ while defined(my $line = <$fh>);
    close $fh;
    return $n;
}

sub DESTROY {
    my ($self) = @_;
    return unless QQ::Proc::is_owner();
    local ($?, $!, $@);
    eval { $self->stop };
    return;
}

sub access_log { return QQ::Proc::slurp("$_[0]{dir}/access.log") }
sub error_log  { return QQ::Proc::slurp("$_[0]{dir}/error.log") }

1;
