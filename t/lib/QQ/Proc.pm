# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Proc;

# Process bookkeeping shared by the QQ:: test helpers.
#
# Every daemon the harness starts goes through spawn() or fork_code(), is
# recorded here by PID, and is stopped by PID at teardown: from the helpers'
# own stop methods, from the END block, and from the INT/TERM/HUP handlers,
# even when the test dies.  Nothing is ever killed by name.
#
# Belt and braces against leaks when the test process itself is SIGKILLed:
# - children get PR_SET_PDEATHSIG(SIGTERM);
# - a small guardian process (forked on first use, ignores INT/TERM/HUP)
#   mirrors the list of live pids and, if the test process disappears
#   without having cleaned up, sends SIGCONT (blackholed daemons are
#   SIGSTOPped), SIGTERM and then SIGKILL to them and their descendants;
# - the test process makes itself a child subreaper, so grandchildren
#   orphaned by a crashing daemon are re-parented to us and swept at teardown.

use strict;
use warnings;

use Config;
use Errno qw(ESRCH EINTR);
use IO::Select;
use POSIX qw(WNOHANG _exit);
use Time::HiRes qw(time sleep);

our $OWNER_PID = $$;

my %procs;           # pid => { name, started, order }
my %exit_status;     # pid => $? of reaped children
my $order = 0;
our $cleaning = 0;

# prctl(2) numbers.  Only used where we know the syscall number.
my %PRCTL_SYSCALL = (
    'x86_64-linux'  => 157,
    'aarch64-linux' => 167,
);
use constant PR_SET_PDEATHSIG       => 1;
use constant PR_SET_CHILD_SUBREAPER => 36;

sub _prctl {
    my ($option, $value) = @_;
    my ($arch) = $Config{archname} =~ /^([^-]+-linux)/;
    my $nr = defined $arch ? $PRCTL_SYSCALL{$arch} : undef;
    return 0 unless defined $nr;
    return syscall($nr, $option, $value, 0, 0, 0) == 0;
}

_prctl(PR_SET_CHILD_SUBREAPER, 1);

my @HANDLED_SIGNALS = qw(INT TERM HUP);

for my $sig (@HANDLED_SIGNALS) {
    next if defined $SIG{$sig} && $SIG{$sig} ne '' && $SIG{$sig} ne 'DEFAULT';
    $SIG{$sig} = sub {
        return unless $$ == $OWNER_PID;
        cleanup_all();
        $SIG{$sig} = 'DEFAULT';
        kill $sig, $$;
    };
}

END {
    my $status = $?;
    cleanup_all() if $$ == $OWNER_PID;
    $? = $status;
}

sub is_owner { return $$ == $OWNER_PID }

# ---------------------------------------------------------------------------
# guardian

my ($guard_pid, $guard_fh);

sub _guardian_send {
    my ($msg) = @_;
    return unless $$ == $OWNER_PID;
    if (!$guard_pid || !_alive_proc($guard_pid)) {
        return if $msg eq 'quit';
        _start_guardian() or return;
    }
    local $SIG{PIPE} = 'IGNORE';
    syswrite $guard_fh, "$msg\n";
    if ($msg eq 'quit') {
        close $guard_fh;
        my $pid = $guard_pid;
        undef $guard_fh;
        undef $guard_pid;
        # reap it: a zombie would outlive us where init does not reap
        poll_until(sub { waitpid($pid, WNOHANG) != 0 }, 2, 0.01);
    }
    return;
}

sub _start_guardian {
    pipe(my $reader, my $writer) or return 0;
    my $parent = $$;
    my @current = keys %procs;
    my $pid = fork();
    return 0 unless defined $pid;
    if ($pid == 0) {
        close $writer;
        close $guard_fh if $guard_fh;
        $SIG{$_} = 'IGNORE' for qw(INT TERM HUP QUIT PIPE USR1 USR2);
        $SIG{$_} = 'DEFAULT' for qw(CHLD ALRM);
        $0 = 'qq-guardian';
        eval { _guardian_loop($reader, $parent, @current) };
        _exit(0);
    }
    close $reader;
    $writer->autoflush(1);
    ($guard_pid, $guard_fh) = ($pid, $writer);
    return 1;
}

sub _guardian_loop {
    my ($reader, $parent, @initial) = @_;
    my %watch = map { $_ => 1 } @initial;
    my $sel = IO::Select->new($reader);
    my $buf = '';

    while (1) {
        if ($sel->can_read(0.2)) {
            my $n = sysread $reader, my $chunk, 4096;
            last unless $n;                      # EOF: the test process is gone
            $buf .= $chunk;
            while ($buf =~ s/^(\S+)\n//) {
                my $cmd = $1;
                return if $cmd eq 'quit';        # clean teardown done
                if ($cmd =~ /^\+(\d+)$/) { $watch{$1} = 1 }
                elsif ($cmd =~ /^-(\d+)$/) { delete $watch{$1} }
            }
        }
        last if getppid() != $parent;
    }

    my @roots = grep { _alive_proc($_) } keys %watch;
    return unless @roots;
    my @all = (@roots, map { descendants($_) } @roots);
    kill 'CONT', @all;
    kill 'TERM', @roots;
    my $deadline = time + 3;
    sleep 0.05 while time < $deadline && grep { _alive_proc($_) } @all;
    kill 'KILL', grep { _alive_proc($_) } @all;
    return;
}

sub _alive_proc {
    my ($pid) = @_;
    my $stat = _read_stat($pid) or return 0;
    return $stat->{state} ne 'Z' && $stat->{state} ne 'X';
}

# ---------------------------------------------------------------------------

# Called in every freshly forked child before it does anything else.
sub _child_setup {
    my ($parent) = @_;

    $SIG{$_} = 'DEFAULT' for @HANDLED_SIGNALS, qw(CHLD PIPE USR1 USR2 ALRM QUIT);
    %procs = ();
    if ($guard_fh) {
        close $guard_fh;
        undef $guard_fh;
        undef $guard_pid;
    }
    _prctl(PR_SET_PDEATHSIG, 15);
    # The parent may have died between fork() and prctl().
    _exit(1) if getppid() != $parent;
    return;
}

sub _register {
    my ($pid, $name) = @_;
    $procs{$pid} = { name => $name, started => time, order => ++$order };
    _guardian_send("+$pid");
    return $pid;
}

# spawn(name => 'nsd-a', cmd => [...], env => {...}, stdout => FILE,
#       stderr => FILE, cwd => DIR)
# Starts an external program as our direct child and returns its pid.
sub spawn {
    my (%args) = @_;
    my @cmd = @{ $args{cmd} or die "spawn: cmd required\n" };
    my $name = $args{name} // $cmd[0];
    my $parent = $$;

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        _child_setup($parent);
        eval {
            if (defined $args{cwd}) {
                chdir $args{cwd} or die "chdir $args{cwd}: $!\n";
            }
            while (my ($k, $v) = each %{ $args{env} || {} }) {
                if (defined $v) { $ENV{$k} = $v } else { delete $ENV{$k} }
            }
            open STDIN, '<', '/dev/null' or die "stdin: $!\n";
            my $out = $args{stdout} // '/dev/null';
            my $err = $args{stderr} // $out;
            open STDOUT, '>>', $out or die "stdout $out: $!\n";
            open STDERR, '>>', $err or die "stderr $err: $!\n";
            exec { $cmd[0] } @cmd or die "exec $cmd[0]: $!\n";
        };
        print STDERR "QQ::Proc child: $@";
        _exit(127);
    }

    return _register($pid, $name);
}

# fork_code(name => 'fault-1', code => sub { ... })
# Runs perl code in a forked child.  The child never runs END blocks or
# destructors of the parent: it leaves through POSIX::_exit.
sub fork_code {
    my (%args) = @_;
    my $code = $args{code} or die "fork_code: code required\n";
    my $parent = $$;

    my $pid = fork();
    die "fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        _child_setup($parent);
        my $rc = eval { $code->(); 0 };
        unless (defined $rc) {
            print STDERR "QQ::Proc child $args{name}: $@";
            $rc = 1;
        }
        _exit($rc);
    }

    return _register($pid, $args{name} // 'perl-child');
}

# Reaps our children that have exited; records their status.
sub reap {
    for my $pid (keys %procs) {
        next if exists $exit_status{$pid};
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid || ($r == -1 && $! != EINTR)) {
            $exit_status{$pid} = $r == $pid ? $? : -1;
            _guardian_send("-$pid");
        }
    }
    return;
}

# Reaps every exited child, including orphans re-parented to us (we are a
# subreaper).  Only used at teardown so that it never steals the exit status
# of a child the test manages itself.
sub _reap_all {
    while ((my $r = waitpid(-1, WNOHANG)) > 0) {
        $exit_status{$r} = $?;
    }
    return;
}

sub exit_status {
    my ($pid) = @_;
    reap();
    return $exit_status{$pid};
}

# True while the process exists and is not a zombie.
sub alive {
    my ($pid) = @_;
    return 0 unless $pid && $pid > 0;
    if ($procs{$pid}) {
        reap();
        return 0 if exists $exit_status{$pid};
    }
    my $stat = _read_stat($pid) or return 0;
    return $stat->{state} ne 'Z' && $stat->{state} ne 'X';
}

sub _read_stat {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return undef;
    my $line = <$fh>;
    close $fh;
    return undef unless defined $line;
    # pid (comm) state ppid ...  -- comm may contain spaces or parentheses
    my $close = rindex($line, ')');
    return undef if $close < 0;
    my @rest = split ' ', substr($line, $close + 2);
    return { pid => $pid, state => $rest[0], ppid => $rest[1] };
}

# the content of a file from byte $offset on (default 0); '' if it cannot
# be read
sub slurp {
    my ($path, $offset) = @_;
    open my $fh, '<', $path or return '';
    seek $fh, $offset, 0 if $offset;
    local $/;
    my $c = <$fh> // '';
    close $fh;
    return $c;
}

sub cmdline {
    my ($pid) = @_;
    my $c = slurp("/proc/$pid/cmdline");
    $c =~ s/\0+$//;
    $c =~ s/\0/ /g;
    return $c;
}

# Direct children of $pid, from /proc.
sub children {
    my ($pid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return ();
    while (defined(my $e = readdir $dh)) {
        next unless $e =~ /^\d+$/;
        my $st = _read_stat($e) or next;
        push @kids, $e + 0 if $st->{ppid} == $pid && $st->{state} ne 'Z';
    }
    closedir $dh;
    return sort { $a <=> $b } @kids;
}

sub descendants {
    my ($pid) = @_;
    my @out;
    my @queue = ($pid);
    my %seen;
    while (@queue) {
        my $p = shift @queue;
        for my $k (children($p)) {
            next if $seen{$k}++;
            push @out, $k;
            push @queue, $k;
        }
    }
    return @out;
}

# Sends a signal to a process and all its descendants.
sub signal_tree {
    my ($pid, $sig) = @_;
    my @pids = ($pid, descendants($pid));
    kill $sig, @pids;
    return @pids;
}

# poll_until(sub { ... }, $timeout_seconds [, $interval])
sub poll_until {
    my ($cond, $timeout, $interval) = @_;
    $timeout  //= 10;
    $interval //= 0.05;
    my $deadline = time + $timeout;
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return 0 if time >= $deadline;
        sleep $interval;
    }
}

# stop($pid, signal => 'TERM', timeout => 5)
# Sends the signal (after SIGCONT, so stopped processes can act on it), waits
# for exit, escalates to SIGKILL, then kills any descendants left behind.
sub stop {
    my ($pid, %args) = @_;
    return 1 unless $pid;
    my $sig     = $args{signal}  // 'TERM';
    my $timeout = $args{timeout} // 5;

    my @tree = ($pid, descendants($pid));
    if (alive($pid)) {
        kill 'CONT', @tree;
        kill $sig, $pid;
        unless (poll_until(sub { !alive($pid) }, $timeout, 0.02)) {
            if ($sig ne 'TERM') {
                kill 'TERM', $pid;
                poll_until(sub { !alive($pid) }, 3, 0.02);
            }
            if (alive($pid)) {
                kill 'KILL', $pid;
                poll_until(sub { !alive($pid) }, 3, 0.02);
            }
        }
    }

    # Whatever the process left behind (workers of a killed master, ...).
    my @left = grep { alive($_) } @tree, descendants($pid);
    if (@left) {
        kill 'CONT', @left;
        kill 'TERM', @left;
        poll_until(sub { !grep { alive($_) } @left }, 2, 0.02);
        kill 'KILL', grep { alive($_) } @left;
        poll_until(sub { !grep { alive($_) } @left }, 2, 0.02);
    }
    reap();
    delete $procs{$pid} unless alive($pid);
    return !alive($pid);
}

# run_cmd([cmd...], timeout => 30, env => {...}): runs a short-lived command
# to completion; returns ($exit_status, $combined_output).
sub run_cmd {
    my ($cmd, %args) = @_;
    my $out = $args{output} // "/tmp/qqcmd.$$." . int(rand 1e9) . '.out';
    unlink $out;
    my $pid = spawn(name => $args{name} // $cmd->[0], cmd => $cmd,
                    env => $args{env}, stdout => $out, cwd => $args{cwd});
    my $done = poll_until(sub { !alive($pid) }, $args{timeout} // 30, 0.01);
    stop($pid) unless $done;
    my $status = $done ? exit_status($pid) : -1;
    delete $procs{$pid};
    my $text = slurp($out);
    unlink $out unless defined $args{output};
    return ($status, $text);
}

sub forget {
    my ($pid) = @_;
    delete $procs{$pid};
    _guardian_send("-$pid");
    return;
}

sub registered {
    my @pids = sort { $procs{$a}{order} <=> $procs{$b}{order} } keys %procs;
    return wantarray ? @pids : scalar @pids;
}

sub name_of { my ($pid) = @_; return $procs{$pid} ? $procs{$pid}{name} : undef }

# Stops every process we started, newest first, then sweeps any remaining
# process whose parent is us (orphans re-parented to the subreaper).
sub cleanup_all {
    return unless $$ == $OWNER_PID;
    return if $cleaning;
    local $cleaning = 1;
    local ($?, $!, $@);

    for my $pid (reverse registered()) {
        stop($pid, signal => 'TERM', timeout => 5);
        delete $procs{$pid};
    }
    my @strays = grep { $_ != $$ && (!$guard_pid || $_ != $guard_pid)
                        && cmdline($_) ne 'qq-guardian' } children($$);
    for my $pid (@strays) {
        stop($pid, signal => 'TERM', timeout => 2);
    }
    reap();
    _guardian_send('quit');
    _reap_all();
    return;
}

1;
