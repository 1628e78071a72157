#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Scale benchmark (not a test): the topology of issue 12 for N names and
# what the module costs there, against stock nginx with the same servers as
# static "server" lines in the same run.
#
#   bench/scale.pl [--names 1000,10000] [--workers 1,4] [--big]
#                  [--refresh 30] [--ttl 30] [--window 30] [--slice 3]
#                  [--live-timeout 120] [--zone auto] [--ipv6 on|off]
#                  [--json FILE] [--no-down] [--no-latency] [--t-runs 3]
#                  [--settle SECONDS after all live]
#
# For every N and worker count: N "qqfail_server svcI.example.com:P
# svcI.example.net:P" lines over 10 upstreams, every name on one of three
# backends, three unbound providers in front of two nsd registrars, all on
# 127.x.  It reports the time to the first proxied request and to all live
# (DNS up; DNS down with a state file), queries per name per refresh, peak
# queries per second (the status page sampled each second), UDP receive
# errors (/proc/net/snmp RcvbufErrors and the providers' drops), provider
# timeouts, false failovers, leaders per generation, proxied p50/p99 through
# qqfail against a static upstream of the same addresses, leader and
# non-leader CPU, zone bytes per name and per address, master/worker RSS
# against stock nginx, "nginx -t" time and status render time and size.
# A table is printed, and a JSON summary written (--json, default
# bench/scale-results.json).  --big adds 100,000 names.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Getopt::Long;
use POSIX ();
use Time::HiRes qw(time sleep);

use QQ::Proc;
use QQ::Topo;

my %o = (names => '1000,10000', workers => '1,4', refresh => 30,
         window => 30, slice => 3, 'live-timeout' => 120, zone => 'auto',
         ipv6 => 'on', json => "$FindBin::Bin/scale-results.json",
         down => 1, latency => 1, connections => 8, upstreams => 10,
         't-runs' => 3, settle => undef);
GetOptions(\%o, 'names=s', 'workers=s', 'big', 'refresh=i', 'ttl=i',
           'window=i', 'slice=i', 'live-timeout=i', 'zone=s', 'ipv6=s',
           'json=s', 'down!', 'latency!', 'connections=i', 'upstreams=i',
           't-runs=i', 'settle=i')
    or die "usage: see the head of $0\n";

$o{ttl} //= 2 * $o{refresh};
my @NAMES = split /,/, $o{names};
push @NAMES, 100_000 if $o{big} && !grep { $_ == 100_000 } @NAMES;
my @WORKERS = split /,/, $o{workers};
my $U = $o{upstreams};

my $JSON;
if (eval { require JSON::XS; 1 }) {
    $JSON = JSON::XS->new->canonical->pretty;
} else {
    require JSON::PP;
    $JSON = JSON::PP->new->canonical->pretty;
    warn "JSON::XS missing (apt-get install libjson-xs-perl): status pages "
       . "at 10,000 names take seconds to parse\n";
}

unless (-x '/usr/bin/wrk') {
    die "wrk is missing: apt-get install wrk\n" if $>;
    system('apt-get', 'install', '-y', '-q', 'wrk') == 0
        or die "apt-get install wrk failed\n";
}

my $TICK = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

sub median {
    my @v = sort { $a <=> $b } grep { defined } @_;
    return undef unless @v;
    return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub cpu_seconds {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh>;
    $stat =~ s/^.*\)\s+//;
    my @f = split ' ', $stat;
    return ($f[11] + $f[12]) / $TICK;
}

sub rss_mb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (<$fh>) {
        return $1 / 1024 if /^VmRSS:\s+(\d+)/;
    }
    return undef;
}

sub udp_rcvbuf_errors {
    open my $fh, '<', '/proc/net/snmp' or return 0;
    my @udp = grep { /^Udp:/ } <$fh>;
    my @k = split ' ', $udp[0];
    my @v = split ' ', $udp[1];
    my %h;
    @h{@k} = @v;
    return $h{RcvbufErrors} // 0;
}

# drops of the UDP sockets open now (/proc/net/udp), summed by role: bound
# to one of @local (the providers' and registrars' listening sockets), or
# connected to one of @remote (the module's sockets to its providers)
sub udp_socket_drops {
    my ($local, $remote) = @_;
    my %l = map { $_ => 1 } @$local;
    my %r = map { $_ => 1 } @$remote;
    my %d = (local => 0, remote => 0);
    open my $fh, '<', '/proc/net/udp' or return \%d;
    <$fh>;
    while (<$fh>) {
        my @f = split ' ';
        my ($la) = $f[1] =~ /^([0-9A-F]{8}):/;
        my ($ra) = $f[2] =~ /^([0-9A-F]{8}):/;
        next unless $la && $ra;
        my $ip = sub { join '.', reverse map { hex } unpack '(A2)4', $_[0] };
        $d{local} += $f[12] if $l{ $ip->($la) };
        $d{remote} += $f[12] if $r{ $ip->($ra) };
    }
    return \%d;
}

# the providers' own view (unbound-control stats_noreset, summed): queries
# received, and those refused or pushed out because the request list was
# full (unbound's num-queries-per-thread; they look like timeouts)
sub unbound_stats {
    my ($dns) = @_;
    my %s = (queries => 0, exceeded => 0, overwritten => 0, max => 0);
    for my $i ($dns->providers) {
        my $conf = $dns->dir . "/p$i/unbound.conf";
        my ($st, $out) = QQ::Proc::run_cmd(
            [ 'unbound-control', '-c', $conf, 'stats_noreset' ],
            timeout => 10);
        next unless defined $st && $st == 0;
        $s{queries} += $1 if $out =~ /^total\.num\.queries=(\d+)/m;
        $s{exceeded} += $1 if $out =~ /^total\.requestlist\.exceeded=(\d+)/m;
        $s{overwritten} += $1
            if $out =~ /^total\.requestlist\.overwritten=(\d+)/m;
        $s{max} = $1 if $out =~ /^total\.requestlist\.max=(\d+)/m
                        && $1 > $s{max};
    }
    return \%s;
}

sub unbound_delta {
    my ($a, $b) = @_;
    return { map { $_ => $_ eq 'max' ? $b->{$_} : $b->{$_} - $a->{$_} }
             keys %$b };
}

# ---------------------------------------------------------------------------

my @RESULTS;

for my $n (@NAMES) {
    my $s = QQ::Topo->new(backends => 3, providers => 3, ttl => $o{ttl});
    my ($t, $dns) = ($s->t, $s->dns);
    my $P = $s->bport;
    my @baddr = map { $_->addr } $s->backends;

    printf STDERR "== %d names: writing %d records\n", $n, 2 * $n;
    $dns->set_records({ map {
        my $b = $baddr[ $_ % 3 ];
        ("svc$_.example.com" => [ $b ], "svc$_.example.net" => [ $b ])
    } 1 .. $n });

    my @pips = map { $dns->provider_ip($_) } $dns->providers;
    my @dns_listen = (@pips, $dns->auth_ip('a'), $dns->auth_ip('b'));
    # "auto": no qqfail_zone, the size the module derives from the
    # configuration
    my $zone = $o{zone};

    # upstream K holds the names I with I % U == K
    my (%qq, %st);
    for my $i (1 .. $n) {
        my $k = $i % $U;
        $qq{$k} .= "        qqfail_server svc$i.example.com:$P "
                 . "svc$i.example.net:$P;\n";
        $st{$k} .= "        server $baddr[$i % 3]:$P;\n";
    }

    my $config = sub {
        my (%c) = @_;
        my $kind = $c{kind};        # qqfail or static
        my $ups = '';
        for my $k (0 .. $U - 1) {
            $ups .= "    upstream u$k {\n"
                  . ($kind eq 'qqfail' ? $qq{$k}
                        . "        qqfail_refresh $o{refresh}s;\n"
                        . "        qqfail_ipv6 $o{ipv6};\n"
                     : $st{$k})
                  . "        keepalive 32;\n    }\n";
        }
        # the static twin of u0, for the latency comparison
        $ups .= "    upstream st {\n$st{0}        keepalive 32;\n    }\n";
        my $locs = join '', map {
            "        location /u$_/ { proxy_pass http://u$_; }\n"
        } 0 .. $U - 1;
        my $mod = $kind eq 'qqfail' ? '%%LOAD_MODULE%%' : '';
        my $http = $kind eq 'qqfail'
            ? $s->providers_conf
              . ($zone eq 'auto' ? '' : "    qqfail_zone $zone;\n")
              . ($c{state} ? "    qqfail_state_file %%DIR%%/qq.state;\n" : '')
            : '';
        my $status = $kind eq 'qqfail'
            ? "        location = /status { qqfail_status; }\n" : '';
        $t->write_config(<<"EOF");
$mod
%%GLOBALS%%
worker_processes $c{workers};
worker_rlimit_nofile 8192;
events {
    worker_connections 4096;
}
http {
    %%HTTP_GLOBALS%%
    access_log off;
$http
$ups
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
$locs        location /st/ { proxy_pass http://st; }
$status    }
}
EOF
    };

    my $nginx_t = sub {
        my @cmd = $t->_nginx_cmd('-t');
        my @times;
        for (1 .. $o{'t-runs'}) {
            my $t0 = time;
            system("@cmd >/dev/null 2>&1") == 0
                or die "nginx -t failed:\n" . `@cmd 2>&1`;
            push @times, time - $t0;
        }
        return median(@times);
    };

    my $status = sub {
        my ($query) = @_;
        my $r = $t->http_get('/status' . ($query // ''), timeout => 30);
        return undef unless $r->{status} == 200;
        return eval { $JSON->decode($r->{content}) };
    };

    my $servers = sub {
        my ($st) = @_;
        return map { @{ $_->{servers} } } @{ $st->{upstreams} };
    };

    my $providers = sub {
        my ($st) = @_;
        my %p = (queries => 0, drops => 0, timeouts => 0);
        for my $p (@{ $st->{providers} }) {
            $p{queries} += $p->{queries};
            $p{drops} += $p->{drops} // 0;
            $p{timeouts} += $p->{failures}{timeout};
        }
        return \%p;
    };

    # A child probes the upstreams in turn, from before nginx starts, until
    # one proxies a request (200 from a backend); it writes the time and
    # the failed probes (answers other than a refused connection).
    my $prober = sub {
        my ($t0, $file) = @_;
        unlink $file;
        return QQ::Proc::fork_code(name => 'first-request probe', code => sub {
            my ($k, $fails, $probes) = (0, 0, 0);
            while (time < $t0 + $o{'live-timeout'}) {
                my $r = $t->http_get("/u$k/", timeout => 10);
                $probes++;
                if (open my $lf, ">>", "$file.log") {
                    printf {$lf} "%.3f %s %s\n", time - $t0, $r->{status},
                        substr($r->{content} // "", 0, 60) =~ s/\s+/ /gr;
                }
                if ($r->{status} == 200) {
                    open my $fh, '>', "$file.tmp" or die "$file: $!";
                    print {$fh} time - $t0, " $fails $probes\n";
                    close $fh;
                    rename "$file.tmp", $file;
                    return;
                }
                $fails++ unless $r->{status} == 599
                                && $r->{content} =~ /refused/i;
                $k = ($k + 1) % $U;
                sleep 0.02;
            }
        });
    };

    # sample the status page every second until every server has an
    # address and the prober is done
    my $start_run = sub {
        my ($t0, $file, $pid) = @_;
        my ($live, @samples);
        my ($last, $nlive) = (0, 0);
        push @samples, [ $t0, 0 ];
        my $deadline = $t0 + $o{'live-timeout'};
        while (time < $deadline) {
            if (time - $last >= 1) {
                $last = time;
                my $at = time;
                # the summary: counts per upstream, cheap to render and
                # to parse at any number of servers (a server without
                # address has the source "none")
                my $st = $status->('?view=summary');
                if ($st) {
                    my ($total, $none) = (0, 0);
                    for my $u (@{ $st->{upstreams} }) {
                        $total += $u->{servers};
                        $none += $u->{sources}{none};
                    }
                    $nlive = $total - $none;
                    push @samples, [ $at, $providers->($st)->{queries} ];
                    $live //= $at - $t0 if $total == $n && $nlive == $n;
                }
            }
            last if defined $live && !QQ::Proc::alive($pid);
            sleep 0.1;
        }
        QQ::Proc::stop($pid) if QQ::Proc::alive($pid);
        my ($first, $fails, $probes) = split ' ', $t->read_file($file) // '';
        return { first => $first, live => $live, live_count => $nlive,
                 probes => $probes, probe_failures => $fails,
                 samples => \@samples };
    };

    my $peak_qps = sub {
        my ($samples) = @_;
        my $peak = 0;
        for my $i (1 .. $#$samples) {
            my $dt = $samples->[$i][0] - $samples->[$i - 1][0] or next;
            my $q = ($samples->[$i][1] - $samples->[$i - 1][1]) / $dt;
            $peak = $q if $q > $peak;
        }
        return $peak;
    };

    my $leaders = sub {
        my ($mark) = @_;
        my %g;
        for (split /\n/, $t->error_log_since($mark)) {
            $g{$2}{$1}++
                if /worker (\d+) leads DNS lookups \(generation (\d+)\)/;
        }
        my ($lines, $pids) = (0, 0);
        for my $gen (keys %g) {
            my @p = keys %{ $g{$gen} };
            $pids = @p if @p > $pids;
            $lines += $g{$gen}{$_} for @p;
        }
        return { generations => scalar keys %g, max_leaders => $pids,
                 lead_lines => $lines,
                 takeovers => $lines - scalar keys %g };
    };

    my $wrk = sub {
        my ($path, $secs) = @_;
        my $url = 'http://' . $t->addr(1) . ':' . $t->port(1) . $path;
        my $out = qx{wrk -t1 -c$o{connections} -d${secs}s --latency $url 2>&1};
        my %r;
        ($r{rps}) = $out =~ /Requests\/sec:\s+([\d.]+)/;
        for my $pc (50, 99) {
            my ($v, $unit) = $out =~ /^\s+$pc%\s+([\d.]+)(us|ms|s)\b/m;
            $r{"p$pc"} = defined $v
                ? $v * { us => 0.001, ms => 1, s => 1000 }->{$unit} : undef;
        }
        ($r{non2xx}) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
        ($r{errors}) = $out =~ /Socket errors: (.*)/;
        $r{non2xx} //= 0;
        return \%r;
    };

    # ------------------------------------------------------------------
    # nginx -t: static lines, then qqfail (no state file yet)

    $config->(kind => 'static', workers => 1);
    my $t_static = $nginx_t->();
    $config->(kind => 'qqfail', workers => 1, state => 1);
    unlink $t->dir . '/qq.state';
    my $t_qq = $nginx_t->();

    for my $w (@WORKERS) {
        my %R = (names => $n, workers => $w, refresh_s => $o{refresh},
                 ttl_s => $o{ttl}, zone_size => $zone, ipv6 => $o{ipv6},
                 providers => 3, upstreams => $U,
                 nginx_t_s => { static => $t_static, qqfail => $t_qq });
        printf STDERR "== %d names, %d worker(s)\n", $n, $w;

        # stock nginx with static lines: memory
        $config->(kind => 'static', workers => $w);
        $t->start(timeout => $o{'live-timeout'});
        sleep 2;
        my @wp = $t->worker_pids;
        $R{rss_mb}{static} = {
            master => rss_mb($t->master_pid),
            worker_max => (sort { $b <=> $a } map { rss_mb($_) // 0 } @wp)[0],
        };
        $t->stop;

        # qqfail, DNS up, cold (no state file)
        $config->(kind => 'qqfail', workers => $w, state => 1);
        unlink $t->dir . '/qq.state';
        my $mark = $t->log_mark;
        my $udp0 = udp_rcvbuf_errors();
        my $sd0 = udp_socket_drops(\@dns_listen, \@pips);
        my $ub0 = unbound_stats($dns);
        my $t0 = time;
        my $pf = $t->dir . '/first-request';
        my $pp = $prober->($t0, $pf);
        $t->start(timeout => $o{'live-timeout'});
        my $started = time - $t0;
        my $up = $start_run->($t0, $pf, $pp);
        my $st = $status->() // {};
        my $pr = $providers->($st);
        my @sv = $servers->($st);
        $R{dns_up} = {
            start_returned_s => $started,
            first_request_s => $up->{first}, all_live_s => $up->{live},
            live_at_end => $up->{live_count}, probes => $up->{probes},
            probe_failures => $up->{probe_failures},
            queries => $pr->{queries},
            queries_per_name => $pr->{queries} / $n,
            peak_qps => $peak_qps->($up->{samples}),
            udp_rcvbuf_errors => udp_rcvbuf_errors() - $udp0,
            dns_server_socket_drops =>
                udp_socket_drops(\@dns_listen, \@pips)->{local}
                - $sd0->{local},
            unbound => unbound_delta($ub0, unbound_stats($dns)),
            drops => $pr->{drops}, timeouts => $pr->{timeouts},
            false_failovers => false_failovers(@sv),
        };
        printf STDERR "   DNS up: first %s s, all live %s s\n",
               $up->{first} // 'never', $up->{live} // 'never';

        # steady state: one window without load, once the first refresh
        # of every server (spread over its window after its first round)
        # is behind (--settle, default one qqfail_refresh and 2 s after
        # every server was live): a server whose first refresh came late
        # refreshes again inside a window that starts earlier, which is
        # the start, not the steady rate
        my $settle = ($o{settle} // ($o{refresh} + 2))
                     - (time - $t0 - ($up->{live} // 0));
        if ($settle > 0) {
            sleep $settle;
            $pr = $providers->($status->('?view=summary') // {});
        }
        $udp0 = udp_rcvbuf_errors();
        $sd0 = udp_socket_drops(\@dns_listen, \@pips);
        $ub0 = unbound_stats($dns);
        my %cpu0 = map { $_ => cpu_seconds($_) } $t->worker_pids;
        my @samples;
        my $p0 = $pr;
        my $w0 = time;
        while (time - $w0 < $o{window}) {
            # the small summary page, timed when it is asked for: the
            # counters come first in the page, and a full page at 10,000
            # servers takes long enough in its steps to skew the rate
            my $at = time;
            my $x = $status->('?view=summary') or next;
            push @samples, [ $at, $providers->($x)->{queries} ];
            sleep 1;
        }
        my $dt = time - $w0;
        $st = $status->() // {};
        $pr = $providers->($st);
        my $leader = $st->{leader}{pid} // 0;
        my ($lcpu, $ocpu) = (0, 0);
        for my $pid ($t->worker_pids) {
            my $c = cpu_seconds($pid) - ($cpu0{$pid} // 0);
            if ($pid == $leader) { $lcpu += $c } else { $ocpu += $c }
        }
        @sv = $servers->($st);
        my $addrs = 0;
        $addrs += @{ $_->{addresses} } for @sv;
        # the rate from the samples alone: one view of the counters, timed
        # as the peak is
        my ($q, $qt) = @samples > 1
            ? ($samples[-1][1] - $samples[0][1],
               ($samples[-1][0] - $samples[0][0]) || 1)
            : ($pr->{queries} - $p0->{queries}, $dt);
        $R{steady} = {
            window_s => $dt,
            queries => $q,
            queries_per_name_per_refresh => $q / $n * $o{refresh} / $qt,
            average_qps => $q / $qt,
            peak_qps => $peak_qps->(\@samples),
            qps => [ map {
                sprintf '%.0f', ($samples[$_][1] - $samples[$_ - 1][1])
                                / (($samples[$_][0] - $samples[$_ - 1][0])
                                   || 1)
            } 1 .. $#samples ],
            udp_rcvbuf_errors => udp_rcvbuf_errors() - $udp0,
            dns_server_socket_drops =>
                udp_socket_drops(\@dns_listen, \@pips)->{local}
                - $sd0->{local},
            module_socket_drops =>
                udp_socket_drops(\@dns_listen, \@pips)->{remote},
            unbound => unbound_delta($ub0, unbound_stats($dns)),
            drops => $pr->{drops} - $p0->{drops},
            timeouts => $pr->{timeouts} - $p0->{timeouts},
            false_failovers => false_failovers(@sv),
            live => scalar(grep { @{ $_->{addresses} } } @sv),
            leader_cpu_s_per_min => $lcpu * 60 / $dt,
            others_cpu_s_per_min => $ocpu * 60 / $dt,
        };
        $R{zone} = {
            size => $st->{zone}{size}, used => $st->{zone}{used},
            full => $st->{zone}{full} ? 1 : 0,
            bytes_per_name => $st->{zone}{used} / $n,
            addresses => $addrs,
            bytes_per_address => $addrs ? $st->{zone}{used} / $addrs : undef,
        };
        @wp = $t->worker_pids;
        $R{rss_mb}{qqfail} = {
            master => rss_mb($t->master_pid),
            leader => rss_mb($leader),
            worker_max => (sort { $b <=> $a } map { rss_mb($_) // 0 } @wp)[0],
        };

        # status render time and size per format
        for my $f (qw(json prometheus html)) {
            my (@times, $size);
            for (1 .. 3) {
                my $t1 = time;
                my $r = $t->http_get("/status?format=$f", timeout => 30);
                push @times, time - $t1;
                $size = length $r->{content};
            }
            $R{status}{$f} = { ms => median(@times) * 1000, bytes => $size };
        }

        # proxied latency, qqfail u0 against its static twin, alternating
        if ($o{latency}) {
            my (%lat, $wstart);
            $wstart = time;
            my $cpu1 = { map { $_ => cpu_seconds($_) } $t->worker_pids };
            my $q1 = $providers->($status->() // {})->{queries};
            my $round = 0;
            while (time - $wstart < $o{window}) {
                my @order = $round++ % 2 ? qw(/st/ /u0/) : qw(/u0/ /st/);
                push @{ $lat{$_} }, $wrk->($_, $o{slice}) for @order;
            }
            my $q2 = $providers->($status->() // {})->{queries};
            for my $p (qw(/u0/ /st/)) {
                my $k = $p eq '/st/' ? 'static' : 'qqfail';
                $R{latency}{$k} = {
                    p50_ms => median(map { $_->{p50} } @{ $lat{$p} }),
                    p99_ms => median(map { $_->{p99} } @{ $lat{$p} }),
                    rps => median(map { $_->{rps} } @{ $lat{$p} }),
                    non2xx => eval { my $x = 0; $x += $_->{non2xx}
                                     for @{ $lat{$p} }; $x },
                };
            }
            my $L = $R{latency};
            $L->{p50_ratio} = $L->{static}{p50_ms}
                ? $L->{qqfail}{p50_ms} / $L->{static}{p50_ms} : undef;
            $L->{p99_ratio} = $L->{static}{p99_ms}
                ? $L->{qqfail}{p99_ms} / $L->{static}{p99_ms} : undef;
            $L->{rps_ratio} = $L->{static}{rps}
                ? $L->{qqfail}{rps} / $L->{static}{rps} : undef;
            $L->{queries_during} = $q2 - $q1;
            $L->{rounds} = $round;
        }

        # a state file to start from
        $t->wait_for(sub { -s $t->dir . '/qq.state' }, 10, 'state file');
        $R{state_file_bytes} = -s $t->dir . '/qq.state';
        $t->stop;
        $R{leaders_dns_up} = $leaders->($mark);

        # nginx -t with the state file present
        $R{nginx_t_s}{qqfail_state} = $nginx_t->() if $w == $WORKERS[0];

        # DNS down: every provider black-holed, start from the state file
        if ($o{down}) {
            $dns->blackhole_provider($_) for $dns->providers;
            $mark = $t->log_mark;
            $t0 = time;
            my $pp = $prober->($t0, $pf);
            $t->start(timeout => $o{'live-timeout'});
            my $down = $start_run->($t0, $pf, $pp);
            my $sx = $status->() // {};
            my %src;
            $src{ $_->{source} }++ for $servers->($sx);
            $R{dns_down} = {
                first_request_s => $down->{first},
                all_live_s => $down->{live},
                live_at_end => $down->{live_count},
                probe_failures => $down->{probe_failures},
                sources => \%src,
            };
            $t->stop;
            $dns->restore_provider($_) for $dns->providers;
            $R{leaders_dns_down} = $leaders->($mark);
            printf STDERR "   DNS down: first %s s, all live %s s\n",
                   $down->{first} // 'never', $down->{live} // 'never';
        }

        push @RESULTS, \%R;
        report(\%R);
    }

    $dns->stop_all;
}

open my $jf, '>', $o{json} or die "$o{json}: $!\n";
print {$jf} $JSON->encode(numify({ options => \%o, time => time,
                                   results => \@RESULTS }));
close $jf;
print "\nJSON summary: $o{json}\n";

# numbers read from text are strings to the JSON encoder
sub numify {
    my ($v) = @_;
    return { map { $_ => numify($v->{$_}) } keys %$v } if ref $v eq 'HASH';
    return [ map { numify($_) } @$v ] if ref $v eq 'ARRAY';
    return $v + 0 if defined $v && $v =~ /^-?\d+(?:\.\d+)?(?:e[-+]?\d+)?$/i;
    return $v;
}

sub fmt {
    my ($v, $f) = @_;
    return 'n/a' unless defined $v;
    return sprintf($f // '%.2f', $v);
}

sub report {
    my ($R) = @_;
    my $up = $R->{dns_up};
    my $sd = $R->{steady};
    my $dn = $R->{dns_down} // {};
    my $L = $R->{latency} // {};
    my $z = $R->{zone};
    my $m = $R->{rss_mb};
    my $ld = $R->{leaders_dns_up};
    my @rows = (
        [ 'nginx started (pid file, listening, workers) (s)',
              fmt($up->{start_returned_s}) ],
        [ 'first proxied request, DNS up (s)', fmt($up->{first_request_s}) ],
        [ 'all live, DNS up (s)', defined $up->{all_live_s}
              ? fmt($up->{all_live_s})
              : "not in $o{'live-timeout'} s ($up->{live_at_end} live)" ],
        [ 'probe requests failed before the first', $up->{probe_failures} ],
        [ 'first proxied request, DNS down + state (s)',
              fmt($dn->{first_request_s}) ],
        [ 'all live, DNS down + state (s)', defined $dn->{all_live_s}
              ? fmt($dn->{all_live_s})
              : defined $dn->{live_at_end}
                  ? "not in $o{'live-timeout'} s ($dn->{live_at_end} live)"
                  : 'n/a' ],
        [ 'queries per name, start to all live', fmt($up->{queries_per_name}) ],
        [ 'queries per name per refresh (steady)',
              fmt($sd->{queries_per_name_per_refresh}) ],
        [ 'peak queries/s: start, steady (average)',
              sprintf('%.0f, %.0f (%.0f)', $up->{peak_qps}, $sd->{peak_qps},
                      $sd->{average_qps}) ],
        [ 'UDP RcvbufErrors: start, steady',
              "$up->{udp_rcvbuf_errors}, $sd->{udp_rcvbuf_errors}" ],
        [ '  of which at unbound/nsd sockets: start, steady',
              "$up->{dns_server_socket_drops}, "
              . "$sd->{dns_server_socket_drops}" ],
        [ 'module drops (status): start, steady',
              "$up->{drops}, $sd->{drops}" ],
        [ 'provider timeouts: start, steady',
              "$up->{timeouts}, $sd->{timeouts}" ],
        [ 'unbound requests dropped (list full): start, steady',
              sprintf('%d, %d (request list max %d)',
                      $up->{unbound}{exceeded} + $up->{unbound}{overwritten},
                      $sd->{unbound}{exceeded} + $sd->{unbound}{overwritten},
                      $sd->{unbound}{max}) ],
        [ 'false failovers: start, steady',
              "$up->{false_failovers}, $sd->{false_failovers}" ],
        [ 'leaders per generation / takeovers',
              "$ld->{max_leaders} / $ld->{takeovers}" ],
        [ 'proxied p50 ms qqfail / static (ratio)',
              sprintf('%s / %s (%s)', fmt($L->{qqfail}{p50_ms}, '%.3f'),
                      fmt($L->{static}{p50_ms}, '%.3f'),
                      fmt($L->{p50_ratio})) ],
        [ 'proxied p99 ms qqfail / static (ratio)',
              sprintf('%s / %s (%s)', fmt($L->{qqfail}{p99_ms}, '%.3f'),
                      fmt($L->{static}{p99_ms}, '%.3f'),
                      fmt($L->{p99_ratio})) ],
        [ 'proxied req/s qqfail / static (ratio)',
              sprintf('%s / %s (%s)', fmt($L->{qqfail}{rps}, '%.0f'),
                      fmt($L->{static}{rps}, '%.0f'), fmt($L->{rps_ratio})) ],
        [ 'leader CPU s/min (steady, no load)',
              fmt($sd->{leader_cpu_s_per_min}) ],
        [ 'other workers CPU s/min (steady, no load)',
              fmt($sd->{others_cpu_s_per_min}) ],
        [ 'zone used / size', "$z->{used} / $z->{size}"
              . ($z->{full} ? ' FULL' : '') ],
        [ 'zone bytes per name / per address',
              sprintf('%.0f / %s', $z->{bytes_per_name},
                      fmt($z->{bytes_per_address}, '%.0f')) ],
        [ 'master RSS MB qqfail / static (ratio)',
              sprintf('%.1f / %.1f (%.2f)', $m->{qqfail}{master},
                      $m->{static}{master},
                      $m->{qqfail}{master} / $m->{static}{master}) ],
        [ 'worker RSS MB qqfail max / static (ratio)',
              sprintf('%.1f / %.1f (%.2f)', $m->{qqfail}{worker_max},
                      $m->{static}{worker_max},
                      $m->{qqfail}{worker_max} / $m->{static}{worker_max}) ],
        [ 'nginx -t s qqfail / +state / static',
              sprintf('%s / %s / %s', fmt($R->{nginx_t_s}{qqfail}, '%.3f'),
                      fmt($R->{nginx_t_s}{qqfail_state}, '%.3f'),
                      fmt($R->{nginx_t_s}{static}, '%.3f')) ],
        [ 'state file bytes', $R->{state_file_bytes} // 'n/a' ],
        map {
            [ "status $_: ms, bytes",
              sprintf('%.1f, %d', $R->{status}{$_}{ms},
                      $R->{status}{$_}{bytes}) ]
        } qw(json prometheus html),
    );
    printf "\n%d names, %d worker(s), refresh %ds, ttl %ds, zone %s\n",
           $R->{names}, $R->{workers}, $R->{refresh_s}, $R->{ttl_s},
           $R->{zone_size};
    printf "  %-52s %s\n", @$_ for @rows;
}

# the harness adds its own checks (no alerts, no crashes) at teardown
Test::More::done_testing() if defined &Test::More::done_testing;

# servers not on their first name, or that ever switched names
sub false_failovers {
    return scalar grep {
        ($_->{active_name} // '') ne $_->{names}[0] || $_->{failovers} > 0
    } @_;
}
