# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Nginx;

# Test harness for ngx_http_qqfail_module: one nginx instance per object,
# run in the foreground (daemon off) as a child tracked by pid, inside its own
# temporary prefix directory and its own loopback /24 (127.A.B.0).
#
# See t/lib/README.md for the API.  Never put host names in configurations:
# this machine's resolver must not receive a packet (design-pitfalls §0.3).

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Fcntl qw(:flock O_WRONLY O_CREAT);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP ();
use Scalar::Util qw(weaken);
use Socket qw(SOCK_STREAM SOCK_DGRAM);
use Test::More ();
use Test2::API ();
use Time::HiRes qw(time sleep);

use QQ::Proc;

our $REPO_ROOT = abs_path(dirname(__FILE__) . '/../../..');

# error_log level of every test nginx: "info" keeps the module's own lines
# (notice, warn, error and its per-provider info lines) without nginx's
# per-event debug output, which slows a loaded worker and grows to hundreds
# of megabytes in the load tests; QQ_LOG_LEVEL=debug brings that back
our $LOG_LEVEL = $ENV{QQ_LOG_LEVEL} || 'info';

my @INSTANCES;            # weak references to live harness objects
my %BASES_TAKEN;          # 127.A.B bases used by this process
my %PORTS_TAKEN;          # ports handed out by this process
my $ASAN_PRELOAD;         # cached libasan path

my $PORT_MIN = 10000;     # below the kernel's ephemeral range
my $PORT_MAX = 32000;

Test2::API::test2_add_callback_testing_done(\&_teardown_all);

END {
    my $status = $?;
    _teardown_all() if QQ::Proc::is_owner();
    $? = $status;
}

sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        allow       => [],
        ports       => {},
        started     => 0,
        ran_config  => 0,
        torn_down   => 0,
        config_text => undef,
        nginx       => $ENV{QQ_NGINX} || '/usr/sbin/nginx',
        leave       => $ENV{TEST_NGINX_LEAVE},
        owner       => $$,
    }, $class;

    $self->{dir} = tempdir('qqtest.XXXXXXXX', TMPDIR => 1, CLEANUP => 0);
    chmod 0755, $self->{dir} or croak "chmod $self->{dir}: $!";
    if ($> == 0) {
        # Workers drop to nobody when nginx runs as root; let them write here.
        my $uid = getpwnam('nobody');
        my $gid = getgrnam('nogroup') // getgrnam('nobody');
        chown $uid, $gid, $self->{dir} if defined $uid && defined $gid;
    }
    $self->{name} = (File::Spec->splitdir($self->{dir}))[-1];

    $self->_pick_base;

    push @INSTANCES, $self;
    weaken($INSTANCES[-1]);

    return $self;
}

# ---------------------------------------------------------------------------
# addresses, ports, paths

sub dir  { return $_[0]{dir} }
sub name { return $_[0]{name} }
sub base { return $_[0]{base} }

sub addr {
    my ($self, $n) = @_;
    croak "addr: n must be 1..250" unless defined $n && $n =~ /^\d+$/ && $n >= 1 && $n <= 250;
    return "$self->{base}.$n";
}

sub port {
    my ($self, $key) = @_;
    croak "port: key required" unless defined $key && length $key;
    return $self->{ports}{$key} //= _free_port();
}

sub module_path {
    return $ENV{QQ_MODULE} || "$REPO_ROOT/objs/ngx_http_qqfail_module.so";
}

sub has_module { return -f $_[0]->module_path }

# the stream front end, next to the http one
sub stream_module_path {
    (my $p = $_[0]->module_path) =~ s{ngx_http_qqfail_module\.so$}
                                     {ngx_stream_qqfail_module.so};
    return $p;
}

sub nginx_stream_module_path {
    return $ENV{QQ_NGINX_STREAM_MODULE}
        || '/usr/lib/nginx/modules/ngx_stream_module.so';
}

sub has_stream {
    return -f $_[0]->stream_module_path && -f $_[0]->nginx_stream_module_path;
}

sub repo_root { return $REPO_ROOT }

sub nginx_binary { return $_[0]{nginx} }

# the version of the nginx binary ("1.28.3"), and whether it is at least V
sub nginx_version {
    my ($self) = @_;
    return $self->{nginx_version} //= do {
        my $out = qx{$self->{nginx} -v 2>&1};
        $out =~ m{nginx version: [^/]*/(\d+\.\d+\.\d+)}
            or croak "no version in \"$self->{nginx} -v\": $out";
        $1;
    };
}

sub nginx_at_least {
    my ($self, $want) = @_;
    my @have = split /\./, $self->nginx_version;
    my @want = split /\./, $want;
    for my $i (0 .. 2) {
        return $have[$i] > $want[$i] if $have[$i] != $want[$i];
    }
    return 1;
}

sub _pick_base {
    my ($self) = @_;

    my $lockdir = File::Spec->catdir(File::Spec->tmpdir, 'qqtest-locks');
    mkdir $lockdir;
    chmod 01777, $lockdir;

    for (1 .. 500) {
        my ($x, $y) = (2 + int rand 249, 2 + int rand 249);
        my $base = "127.$x.$y";
        next if $BASES_TAKEN{$base};

        sysopen my $fh, "$lockdir/$base.lock", O_WRONLY | O_CREAT or next;
        unless (flock $fh, LOCK_EX | LOCK_NB) {
            close $fh;
            next;
        }
        if (_base_has_sockets($x, $y)) {
            close $fh;
            next;
        }
        $BASES_TAKEN{$base} = 1;
        $self->{base} = $base;
        $self->{base_lock} = $fh;       # held for the object's lifetime
        return;
    }
    croak "could not find a free 127.A.B.0/24 base";
}

# Any TCP or UDP socket bound to an address inside 127.A.B.0/24?
sub _base_has_sockets {
    my ($x, $y) = @_;
    my $want = sprintf '%02X%02X7F', $y, $x;       # little-endian hex
    for my $file (qw(/proc/net/tcp /proc/net/udp)) {
        open my $fh, '<', $file or next;
        <$fh>;
        while (my $line = <$fh>) {
            my (undef, $local) = split ' ', $line;
            return 1 if defined $local && $local =~ /^[0-9A-F]{2}\Q$want\E:/;
        }
    }
    return 0;
}

sub _free_port {
    for (1 .. 1000) {
        my $port = $PORT_MIN + int rand($PORT_MAX - $PORT_MIN);
        next if $PORTS_TAKEN{$port};
        my $tcp = IO::Socket::INET->new(
            LocalAddr => '0.0.0.0', LocalPort => $port, Proto => 'tcp',
            ReuseAddr => 1, Listen => 1,
        ) or next;
        my $udp = IO::Socket::INET->new(
            LocalAddr => '0.0.0.0', LocalPort => $port, Proto => 'udp',
        ) or next;
        close $tcp;
        close $udp;
        $PORTS_TAKEN{$port} = 1;
        return $port;
    }
    croak "no free port found";
}

# ---------------------------------------------------------------------------
# files and configuration

sub write_file {
    my ($self, $name, $content) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    my $tmp = "$path.tmp.$$";
    open my $fh, '>', $tmp or croak "write $tmp: $!";
    print {$fh} $content;
    close $fh or croak "close $tmp: $!";
    rename $tmp, $path or croak "rename $tmp: $!";
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    return QQ::Proc::slurp($name =~ m{^/} ? $name : "$self->{dir}/$name");
}

sub expand {
    my ($self, $text) = @_;
    my $dir = $self->{dir};

    my %fixed = (
        LOAD_MODULE  => 'load_module ' . $self->module_path . ';',
        # nginx's stream module (Debian: libnginx-mod-stream), then ours,
        # after %%LOAD_MODULE%%, whose core it uses
        LOAD_STREAM  => 'load_module ' . $self->nginx_stream_module_path
                      . ";\nload_module " . $self->stream_module_path . ';',
        GLOBALS      => "daemon off;\npid $dir/nginx.pid;\n"
                      . "error_log $dir/error.log $LOG_LEVEL;",
        HTTP_GLOBALS => join("\n",
            "client_body_temp_path $dir/client_body_temp;",
            "proxy_temp_path $dir/proxy_temp;",
            "fastcgi_temp_path $dir/fastcgi_temp;",
            "uwsgi_temp_path $dir/uwsgi_temp;",
            "scgi_temp_path $dir/scgi_temp;",
            "access_log $dir/access.log;"),
        DIR => $dir,
    );

    $text =~ s{%%(\w+)%%}{
        my $key = $1;
        exists $fixed{$key}           ? $fixed{$key}
        : $key =~ /^ADDR_(\d+)$/      ? $self->addr($1)
        : $key =~ /^PORT_(\w+)$/      ? $self->port($1)
        : croak "unknown placeholder %%$key%%"
    }ge;

    return $text;
}

sub write_config {
    my ($self, $text, $name) = @_;
    $name //= 'nginx.conf';
    my $expanded = $self->expand($text);
    $self->write_file($name, $expanded);
    $self->{config_text} = $expanded if $name eq 'nginx.conf';
    return $expanded;
}

sub conf_path { return "$_[0]{dir}/nginx.conf" }

sub _nginx_cmd {
    my ($self, @extra) = @_;
    my $dir = $self->{dir};
    return ($self->{nginx}, @extra, '-p', "$dir/", '-c', "$dir/nginx.conf",
            '-e', "$dir/error.log");
}

sub asan_preload {
    return $ENV{QQ_ASAN_PRELOAD} if $ENV{QQ_ASAN_PRELOAD};
    return $ASAN_PRELOAD if defined $ASAN_PRELOAD;
    open my $fh, '-|', 'gcc', '-print-file-name=libasan.so'
        or croak "gcc -print-file-name: $!";
    my $path = <$fh> // '';
    close $fh;
    chomp $path;
    croak "QQ_ASAN: libasan.so not found (gcc printed '$path')"
        unless $path =~ m{^/} && -e $path;
    return $ASAN_PRELOAD = $path;
}

# ASan mode: QQ_ASAN=1 (or 0 to force it off); when QQ_ASAN is unset it is
# switched on if the module itself was built with -fsanitize=address, which
# could not be loaded without the runtime anyway.
my %MODULE_ASAN;
sub asan_mode {
    my ($self) = @_;
    return $ENV{QQ_ASAN} ? 1 : 0 if defined $ENV{QQ_ASAN} && $ENV{QQ_ASAN} ne '';
    my $path = $self->module_path;
    my @st = stat $path or return 0;
    my $key = "$path:$st[9]:$st[7]";
    return $MODULE_ASAN{$key} //= do {
        my $found = 0;
        if (open my $fh, '<:raw', $path) {
            local $/;
            my $data = <$fh> // '';
            $found = index($data, '__asan_init') >= 0 ? 1 : 0;
        }
        $found;
    };
}

sub _nginx_env {
    my ($self) = @_;
    return {} unless $self->asan_mode;
    my $dir = $self->{dir};
    return {
        LD_PRELOAD    => $self->asan_preload,
        ASAN_OPTIONS  => "detect_leaks=0:abort_on_error=0:log_path=$dir/asan"
                       . ":allow_user_segv_handler=1"
                       . ":suppressions=$REPO_ROOT/t/lib/asan.supp",
        UBSAN_OPTIONS => "print_stacktrace=1:log_path=$dir/ubsan:halt_on_error=0",
    };
}

sub test_config {
    my ($self, %opts) = @_;
    croak "test_config: write_config first" unless -f $self->conf_path;

    my $out = "$self->{dir}/test_config.out";
    unlink $out;
    $self->{ran_config} = 1;

    my $pid = QQ::Proc::spawn(
        name   => 'nginx -t',
        cmd    => [ $self->_nginx_cmd('-t') ],
        env    => $self->_nginx_env,
        stdout => $out,
        cwd    => $self->{dir},
    );
    my $timeout = $opts{timeout} // 30;
    unless (QQ::Proc::poll_until(sub { !QQ::Proc::alive($pid) }, $timeout, 0.02)) {
        QQ::Proc::stop($pid);
        return (0, "nginx -t did not finish within ${timeout}s\n" . $self->read_file($out));
    }
    my $status = QQ::Proc::exit_status($pid);
    QQ::Proc::forget($pid);
    my $output = $self->read_file($out);
    return (defined $status && $status == 0 ? 1 : 0, $output);
}

# ---------------------------------------------------------------------------
# process control

sub master_pid {
    my ($self) = @_;
    my $pid = $self->{master_pid};
    return $pid && QQ::Proc::alive($pid) ? $pid : undef;
}

sub is_running { return defined $_[0]->master_pid }

# Worker processes of the current generation (not those shutting down).
sub worker_pids {
    my ($self, %opts) = @_;
    my $master = $self->master_pid;
    my @pids = !$master ? () : grep {
        my $cmd = QQ::Proc::cmdline($_);
        $cmd =~ /worker process/ && ($opts{all} || $cmd !~ /shutting down/);
    } QQ::Proc::children($master);
    return wantarray ? @pids : scalar @pids;
}

sub _config_directive {
    my ($self, $name) = @_;
    my $text = $self->read_file('nginx.conf');
    $text =~ s/#[^\n]*//g;
    return $text =~ /(?:^|[;{}\s])\Q$name\E\s+([^;]+);/ ? $1 : undef;
}

sub expected_workers {
    my ($self) = @_;
    my $mp = $self->_config_directive('master_process');
    return 0 if defined $mp && $mp =~ /^\s*off\s*$/;
    my $wp = $self->_config_directive('worker_processes') // 1;
    $wp =~ s/\s+//g;
    return _nproc() if $wp eq 'auto';
    return $wp =~ /^\d+$/ ? $wp : 1;
}

sub _nproc {
    open my $fh, '-|', 'nproc' or return 1;
    my $n = <$fh> // 1;
    close $fh;
    chomp $n;
    return $n =~ /^\d+$/ ? $n : 1;
}

# TCP listen sockets (addr, port) named in the configuration as IPv4
# literals.  Listening is checked in /proc/net/tcp, without connecting.
sub _listen_addrs {
    my ($self) = @_;
    my $text = $self->read_file('nginx.conf');
    $text =~ s/#[^\n]*//g;
    my @out;
    while ($text =~ /(?:^|[;{}\s])listen\s+(\d+\.\d+\.\d+\.\d+):(\d+)([^;]*);/g) {
        next if $3 =~ /\budp\b/;
        push @out, [ $1, $2 ];
    }
    return @out;
}

sub _tcp_listening {
    my (%want) = map { (sprintf('%02X%02X%02X%02X:%04X',
                               reverse(split /\./, $_->[0]), $_->[1]) => 1) } @_;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    <$fh>;
    while (my $line = <$fh>) {
        my (undef, $local, undef, $state) = split ' ', $line;
        delete $want{$local} if $state eq '0A';
    }
    return !%want;
}

sub start {
    my ($self, %opts) = @_;
    my ($ok, $err) = $self->_start(%opts);
    croak $err unless $ok;
    return 1;
}

sub try_start {
    my ($self, %opts) = @_;
    my ($ok, $err) = $self->_start(%opts);
    $self->{last_start_error} = $err;
    return $ok;
}

sub last_start_error { return $_[0]{last_start_error} }

sub _start {
    my ($self, %opts) = @_;
    croak "start: nginx already running" if $self->is_running;
    croak "start: write_config first" unless -f $self->conf_path;

    my $conf = $self->read_file('nginx.conf');
    croak "start: configuration lacks 'daemon off;' (use %%GLOBALS%%)"
        unless $conf =~ /\bdaemon\s+off\s*;/;
    croak "start: configuration lacks a pid directive (use %%GLOBALS%%)"
        unless $conf =~ /\bpid\s+\S+\s*;/;

    my $dir = $self->{dir};
    my $pidfile = "$dir/nginx.pid";
    unlink $pidfile;

    my $mark = $self->log_mark;
    my $stderr_mark = -s "$dir/nginx.stderr" || 0;
    my $pid = QQ::Proc::spawn(
        name   => "nginx $self->{name}",
        cmd    => [ $self->_nginx_cmd ],
        env    => $self->_nginx_env,
        stdout => "$dir/nginx.stderr",
        cwd    => $dir,
    );
    $self->{master_pid} = $pid;
    $self->{started}++;

    my $timeout  = $opts{timeout} // 10;
    my @listen   = $self->_listen_addrs;
    my $expected = $self->expected_workers;

    my $ready = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($pid);
        my $content = $self->read_file($pidfile);
        return 0 unless $content =~ /^(\d+)/ && $1 == $pid;
        return 0 unless _tcp_listening(@listen);
        return 0 if scalar($self->worker_pids) < $expected;
        return 'ok';
    }, $timeout, 0.02);

    return 1 if $ready eq 'ok';

    my $why = $ready eq 'died'
        ? 'nginx exited' . _status_text(QQ::Proc::exit_status($pid))
        : "nginx not ready within ${timeout}s";
    QQ::Proc::stop($pid, signal => 'TERM', timeout => 5) if QQ::Proc::alive($pid);
    return (0, "$why\n" . $self->_failure_context($mark, $stderr_mark));
}

sub _status_text {
    my ($status) = @_;
    return '' unless defined $status;
    return " (status -1)" if $status == -1;
    return sprintf ' (exit code %d)', $status >> 8 unless $status & 127;
    return sprintf ' (signal %d)', $status & 127;
}

sub _failure_context {
    my ($self, $mark, $stderr_mark) = @_;
    my @lines = split /\n/, $self->error_log_since($mark);
    my @important = grep { !/\[debug\]/ } @lines;
    @lines = @important if @important;
    @lines = @lines[-30 .. -1] if @lines > 30;
    my $stderr = substr($self->read_file('nginx.stderr'), $stderr_mark // 0);
    return "--- error.log (tail, without debug lines) ---\n" . join("\n", @lines) . "\n"
         . ($stderr ne '' ? "--- stderr ---\n$stderr" : '');
}

# HUP the master and wait until a full set of new workers runs.  Returns
# false when the reload failed (an [emerg] is logged and nginx keeps the
# old configuration) or nothing happened within the timeout.  With
# "master_process off" the one process reloads in place (see
# _reload_single).
sub reload {
    my ($self, %opts) = @_;
    my $master = $self->master_pid or croak "reload: nginx is not running";
    my $timeout = $opts{timeout} // 10;
    my $wait_old = $opts{wait_old} // 1;

    my %old = map { $_ => 1 } $self->worker_pids(all => 1);
    my $mark = $self->log_mark;
    my $expected = $self->expected_workers;
    return $self->_reload_single($master, $mark, $timeout) if $expected == 0;

    kill 'HUP', $master;

    my $result = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($master);
        my $since = $self->error_log_since($mark);
        return 'failed' if $since =~ /\[emerg\]/;
        my @new = grep { !$old{$_} } $self->worker_pids;
        return @new >= $expected ? 'ok' : 0;
    }, $timeout, 0.02);

    unless ($result eq 'ok') {
        Test::More::diag("reload of $self->{name}: "
            . ($result || "no new workers within ${timeout}s"));
        return 0;
    }

    if ($wait_old) {
        my @old = keys %old;
        unless (QQ::Proc::poll_until(sub { !grep { QQ::Proc::alive($_) } @old },
                                     $timeout, 0.02))
        {
            Test::More::note("reload: old workers still running: "
                . join(' ', grep { QQ::Proc::alive($_) } @old));
        }
    }
    return 1;
}

# A single process logs "reconfiguring", then loads the new configuration
# without serving anything: a response to a request sent after that line
# comes once the reload succeeded or failed.
sub _reload_single {
    my ($self, $pid, $mark, $timeout) = @_;
    my ($listen) = $self->_listen_addrs;

    kill 'HUP', $pid;

    my $result = QQ::Proc::poll_until(sub {
        return 'died' unless QQ::Proc::alive($pid);
        my $since = $self->error_log_since($mark);
        return 'failed' if $since =~ /\[emerg\]/;
        # not the signal handler's "... received, reconfiguring"
        return 0 unless $since =~ /: reconfiguring$/m;
        if ($listen) {
            my $r = $self->http_get('/', addr => $listen->[0],
                                    port => $listen->[1], timeout => 2);
            return 0 if $r->{status} == 599;
        }
        # a refused configuration was reported before that answer
        return $self->error_log_since($mark) =~ /\[emerg\]/ ? 'failed' : 'ok';
    }, $timeout, 0.02);

    return 1 if $result eq 'ok';

    Test::More::diag("reload of $self->{name} (single process): "
        . ($result || "not reloaded within ${timeout}s"));
    return 0;
}

sub stop {
    my ($self, %opts) = @_;
    my $pid = $self->{master_pid} or return 1;
    my $workers = [ $self->worker_pids(all => 1) ];
    QQ::Proc::stop($pid, signal => 'QUIT', timeout => $opts{timeout} // 10);
    $self->{last_exit_status} = QQ::Proc::exit_status($pid);
    # workers of a master that had to be killed
    for my $w (@$workers) {
        QQ::Proc::stop($w, signal => 'TERM', timeout => 2) if QQ::Proc::alive($w);
    }
    delete $self->{master_pid};
    return 1;
}

sub last_exit_status { return $_[0]{last_exit_status} }

# ---------------------------------------------------------------------------
# logs

sub error_log { return $_[0]->read_file('error.log') }

sub log_mark {
    my ($self) = @_;
    return -s "$self->{dir}/error.log" || 0;
}

sub error_log_since {
    my ($self, $mark) = @_;
    return QQ::Proc::slurp("$self->{dir}/error.log", $mark);
}

# wait_for_log(qr/.../, $timeout, $mark): true once the error log (since
# $mark, default: everything) matches.
sub wait_for_log {
    my ($self, $re, $timeout, $mark) = @_;
    return $self->wait_for(sub { $self->error_log_since($mark) =~ $re },
                           $timeout // 10, "error log to match $re");
}

sub allow_log {
    my ($self, @res) = @_;
    push @{ $self->{allow} }, @res;
    return;
}

# ---------------------------------------------------------------------------
# HTTP

sub _http_tiny {
    my (%opts) = @_;
    return HTTP::Tiny->new(
        timeout      => $opts{timeout} // 10,
        keep_alive   => 0,
        max_redirect => 0,
        proxy        => undef,
        http_proxy   => undef,
        https_proxy  => undef,
        agent        => 'qq-harness/1',
    );
}

sub http_get {
    my ($self, $path, %opts) = @_;
    $path //= '/';
    my $addr = $opts{addr} // $self->addr(1);
    my $port = $opts{port} // $self->port(1);
    croak "http_get: address must be an IPv4 literal, got '$addr'"
        unless $addr =~ /^\d+\.\d+\.\d+\.\d+$/;
    my $host = $opts{host} // $addr;
    croak "http_get: bad host '$host'" unless $host =~ /^[\w.-]+$/;

    my %req = (headers => $opts{headers} // {}, peer => $addr);
    $req{content} = $opts{body} if defined $opts{body};
    return _http_tiny(%opts)->request($opts{method} // 'GET',
                                      "http://$host:$port$path", \%req);
}

# GET and decode a JSON body; returns (decoded or undef, response).
sub get_json {
    my ($self, $path, %opts) = @_;
    my $r = $self->http_get($path, %opts);
    my $data = eval { JSON::PP::decode_json($r->{content}) };
    return wantarray ? ($data, $r) : $data;
}

# ---------------------------------------------------------------------------
# polling

sub wait_for {
    my ($self, $cond, $timeout, $what) = @_;
    $timeout //= 10;
    my $ok = QQ::Proc::poll_until($cond, $timeout, 0.05);
    Test::More::diag("timed out after ${timeout}s waiting for: " . ($what // 'condition'))
        unless $ok;
    return $ok;
}

# ---------------------------------------------------------------------------
# teardown

sub _hub {
    my $stack = Test2::API::test2_stack();
    return $stack ? $stack->top : undef;
}

# Runs once, from done_testing (Test2 follow-up), the END block or DESTROY:
# stops every nginx instance, then every other helper process, then checks
# the logs of the instances that were started.
sub _teardown_all {
    return unless QQ::Proc::is_owner();
    my @live = grep { defined && !$_->{torn_down} } @INSTANCES;
    return unless @live;

    for my $t (@live) {
        $t->stop if $t->{master_pid};
    }
    QQ::Proc::cleanup_all();
    for my $t (@live) {
        $t->_teardown(assert => 1);
    }
    return;
}

sub _teardown {
    my ($self, %opts) = @_;
    return if $self->{torn_down}++;
    return unless $self->{owner} == $$;

    $self->stop if $self->{master_pid};

    my $hub = _hub();
    if ($opts{assert} && $hub && !$hub->ended) {
        $self->_check_logs($hub);
    }

    my $failed = $hub && !$hub->is_passing;
    if ($self->{leave} || $failed) {
        my $msg = "test directory left in place: $self->{dir}";
        if ($hub && !$hub->ended) {
            $failed ? Test::More::diag($msg) : Test::More::note($msg);
        } else {
            print STDERR "# $msg\n" if $failed;
        }
    } else {
        remove_tree($self->{dir});
    }
    return;
}

sub _allowed {
    my ($self, $line) = @_;
    return scalar grep { $line =~ $_ } @{ $self->{allow} };
}

sub sanitizer_reports {
    my ($self) = @_;
    my @reports;
    my $dir = $self->{dir};
    opendir my $dh, $dir or return ();
    for my $f (sort readdir $dh) {
        next unless $f =~ /^(?:asan|ubsan)\./;
        push @reports, "$f:\n" . $self->read_file($f);
    }
    closedir $dh;
    for my $f (qw(nginx.stderr error.log test_config.out)) {
        my @lines = grep { /AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:/ }
                    split /\n/, $self->read_file($f);
        push @reports, "$f:\n" . join("\n", @lines) if @lines;
    }
    return @reports;
}

sub _check_logs {
    my ($self, $hub) = @_;
    return unless $self->{started} || $self->{ran_config};

    my $plan = $hub->plan;
    return if defined $plan && $plan eq 'SKIP';
    my $fixed_plan = defined $plan && $plan =~ /^\d+$/;

    my @lines = split /\n/, $self->error_log;
    my @checks;
    if ($self->{started}) {
        my @alerts = grep { /\[(?:alert|crit)\]/ && !$self->_allowed($_) } @lines;
        my @signals = grep { /exited on signal/ && !$self->_allowed($_) } @lines;
        push @checks, [ "$self->{name}: no [alert] or [crit] in error.log", \@alerts ];
        push @checks, [ "$self->{name}: no process exited on signal", \@signals ];
    }
    push @checks, [ "$self->{name}: no sanitizer reports", [ $self->sanitizer_reports ] ];

    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $check (@checks) {
        my ($name, $bad) = @$check;
        if (@$bad) {
            Test::More::ok(0, $name);
            Test::More::diag(join "\n", @$bad);
        } elsif ($fixed_plan) {
            # a fixed plan cannot absorb extra passing tests
            Test::More::note("ok - $name");
        } else {
            Test::More::ok(1, $name);
        }
    }
    return;
}

sub DESTROY {
    my ($self) = @_;
    return unless QQ::Proc::is_owner() && $self->{owner} == $$;
    local ($?, $!, $@);
    $self->_teardown(assert => ${^GLOBAL_PHASE} ne 'DESTRUCT');
    return;
}

1;
