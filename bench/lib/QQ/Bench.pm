# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Bench;

# What the request benchmarks share (bench.pl, methods.pl): CPU pinning,
# wrk, the CPU time of nginx workers, medians, and the files of
# bench/results.  Not a test module: nothing here asserts anything.

use strict;
use warnings;

use Cwd ();
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use POSIX ();

our @EXPORT_OK = qw(can_pin pin need_wrk worker_ticks tick_us run_wrk median
                    commit save_results proxy_config out out_text loadavg);

# what a bench prints, kept for its results file (out_text)
my $TEXT = '';

sub out {
    my ($fmt, @args) = @_;
    my $s = sprintf $fmt, @args;
    print $s;
    $TEXT .= $s;
}

sub out_text { return $TEXT }

# /proc/loadavg, without its newline
sub loadavg {
    my $l = do { open my $fh, '<', '/proc/loadavg'; <$fh> } // '';
    chomp $l;
    return $l;
}

# true if there are 2 or more CPUs and taskset to pin processes with
sub can_pin {
    my $cpus = () = grep { /^processor\s*:/ } do {
        open my $fh, '<', '/proc/cpuinfo' or die "/proc/cpuinfo: $!\n";
        <$fh>;
    };
    return $cpus >= 2 && -x '/usr/bin/taskset' ? 1 : 0;
}

# a process and its children (nginx master and workers) onto one CPU;
# nothing if $on is false
sub pin {
    my ($on, $cpu, @pids) = @_;
    return unless $on;
    for my $pid (@pids) {
        my @all = ($pid, split ' ', qx{pgrep -P $pid});
        system("taskset -pc $cpu $_ >/dev/null") for @all;
    }
}

# wrk from its Debian package, installed if missing (as root)
sub need_wrk {
    return if -x '/usr/bin/wrk';
    die "wrk is missing: apt-get install wrk\n" if $>;
    system('apt-get', 'install', '-y', '-q', 'wrk') == 0
        or die "apt-get install wrk failed\n";
}

# CPU time (clock ticks) used so far by the workers of a QQ::Nginx
sub worker_ticks {
    my ($t) = @_;
    my $ticks = 0;
    for my $pid ($t->worker_pids) {
        open my $fh, '<', "/proc/$pid/stat" or next;
        my $stat = <$fh>;
        $stat =~ s/^.*\)\s+//;            # past "pid (comm)"
        my @f = split ' ', $stat;
        $ticks += $f[11] + $f[12];       # utime + stime
    }
    return $ticks;
}

# microseconds in a clock tick (10,000 with the usual 100 ticks a second)
sub tick_us {
    return 1_000_000 / (POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100);
}

# One wrk run with one thread:
#   run_wrk(url => URL, connections => N, seconds => N, pin => BOOL,
#           latency => BOOL, script => FILE, args => [ ... ])
# With pin, wrk runs on CPU 1.  Returns { rps, total, errors, p99 (ms, with
# latency), out }; dies if wrk printed no rate (or no p99 when asked).
sub run_wrk {
    my (%a) = @_;
    my $pin = $a{pin} ? 'taskset -c 1 ' : '';
    my $cmd = "${pin}wrk -t1 -c$a{connections} -d$a{seconds}s";
    $cmd .= ' --latency' if $a{latency};
    $cmd .= " -s $a{script}" if $a{script};
    $cmd .= " $a{url}";
    $cmd .= join ' ', ' --', @{ $a{args} } if $a{args};
    my $out = qx{$cmd 2>&1};
    my ($total) = $out =~ /(\d+) requests in/;
    my ($rps) = $out =~ /Requests\/sec:\s+([\d.]+)/;
    my ($p99, $unit) = $out =~ /^\s+99%\s+([\d.]+)(us|ms|s)\b/m;
    my ($errors) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    die "wrk failed:\n$out" unless $rps && (!$a{latency} || defined $p99);
    $p99 *= { us => 0.001, ms => 1, s => 1000 }->{$unit} if defined $p99;
    return { rps => $rps, total => $total // 0, errors => $errors // 0,
             p99 => $p99, out => $out };
}

# The configuration (for QQ::Nginx->write_config) of one nginx with one
# worker that proxies with keep-alive: provider "pf" at $a{pf} (ip:port),
# a 16m zone, the upstreams of $a{upstreams} and the locations of
# $a{locations} (text), and the status page at /status.
sub proxy_config {
    my (%a) = @_;
    return <<"EOF";
%%LOAD_MODULE%%
%%GLOBALS%%
worker_processes 1;
error_log %%DIR%%/error.log notice;
events {
    worker_connections 4096;
}
http {
    %%HTTP_GLOBALS%%
    access_log off;
    qqfail_provider pf $a{pf};
    qqfail_zone 16m;

$a{upstreams}
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
$a{locations}        location = /status { qqfail_status; }
    }
}
EOF
}

sub median {
    my @v = sort { $a <=> $b } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# the short commit of the checkout the bench runs from, "-dirty" if it has
# uncommitted changes to tracked files
sub commit {
    my $root = dirname(__FILE__) . '/../../..';
    my $c = qx{git -C $root rev-parse --short=7 HEAD 2>/dev/null};
    chomp $c;
    return 'unknown' unless length $c;
    my $dirty = qx{git -C $root status --porcelain --untracked-files=no 2>/dev/null};
    return length $dirty ? "$c-dirty" : $c;
}

# bench/results/DATE-COMMIT-NAME.{json,txt} (or under $dir): the JSON of
# $data and the text as printed; returns the two paths
sub save_results {
    my (%a) = @_;
    my $dir = $a{dir} // dirname(__FILE__) . '/../../results';
    make_path($dir);
    $dir = Cwd::abs_path($dir);
    my $date = POSIX::strftime('%Y-%m-%d', gmtime);
    my $base = "$dir/$date-" . ($a{commit} // commit()) . "-$a{name}";
    require JSON::PP;
    open my $jf, '>', "$base.json" or die "$base.json: $!\n";
    print {$jf} JSON::PP->new->canonical->pretty->encode($a{data});
    close $jf or die "$base.json: $!\n";
    open my $tf, '>', "$base.txt" or die "$base.txt: $!\n";
    print {$tf} $a{text};
    close $tf or die "$base.txt: $!\n";
    return ("$base.json", "$base.txt");
}

1;
