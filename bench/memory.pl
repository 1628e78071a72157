#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# Memory benchmark (not a test): the names of bench/scale.pl (N
# "qqfail_server svcI.example.com:P svcI.example.net:P" lines over 10
# upstreams, three unbound providers), without the timing and load runs.
# For each N it starts stock nginx with the same servers as static
# "server" lines, then the qqfail configuration, waits until every server
# is live, and prints /proc/PID/smaps_rollup of the master and the
# workers (Rss, Pss, Shared, Private; the shared zone is a shared
# mapping: its pages a process touched count in its Rss and Shared, and
# Pss divides them between the processes that touched them) and the
# status page's zone figures.
#
#   bench/memory.pl [--names 1000,10000] [--workers 1] [--zone auto]
#                   [--polls 1] [--trim] [--detail]
#
# --polls N asks the status page N times before the last reading (JSON,
# as bench/scale.pl does every second); --trim reads the memory again
# after malloc_trim(0) in every process (through gdb: what is free heap);
# --detail lists the largest mappings of each process.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Getopt::Long;
use Time::HiRes qw(time sleep);

use QQ::Topo;

my $JSON = eval { require JSON::XS; JSON::XS->new }
           // do { require JSON::PP; JSON::PP->new };

my %o = (names => '1000,10000', workers => 1, zone => 'auto', polls => 1,
         upstreams => 10, timeout => 180);
GetOptions(\%o, 'detail', 'trim', 'polls=i', 'hold=i', 'names=s', 'workers=i', 'zone=s', 'upstreams=i',
           'timeout=i')
    or die "usage: see the head of $0\n";

my $U = $o{upstreams};

sub status {
    my ($t) = @_;
    my $r = $t->http_get('/status', timeout => 30);
    return $r->{status} == 200 ? eval { $JSON->decode($r->{content}) }
                               : undef;
}

sub smaps {
    my ($pid) = @_;
    my %m;
    open my $fh, '<', "/proc/$pid/smaps_rollup" or return {};
    while (local $_ = <$fh>) {
        $m{$1} = $2 / 1024 if /^(\w+):\s+(\d+) kB/;
    }
    return {
        rss => $m{Rss}, pss => $m{Pss},
        shared => ($m{Shared_Clean} // 0) + ($m{Shared_Dirty} // 0),
        private => ($m{Private_Clean} // 0) + ($m{Private_Dirty} // 0),
    };
}

# the largest mappings by Rss, "--detail"
sub mappings {
    my ($pid) = @_;
    my (@m, $cur);
    open my $fh, '<', "/proc/$pid/smaps" or return '';
    no warnings 'portable';
    while (local $_ = <$fh>) {
        if (/^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/) {
            $cur = { name => $3 || '[anon]',
                     size => (hex($2) - hex($1)) / 1048576 };
            push @m, $cur;
        } elsif ($cur && /^Rss:\s+(\d+) kB/) {
            $cur->{rss} = $1 / 1024;
        }
    }
    @m = (sort { $b->{rss} <=> $a->{rss} } @m)[0 .. 5];
    return join '', map {
        sprintf "      %7.1f MB of %7.1f %s\n", $_->{rss}, $_->{size},
                $_->{name}
    } @m;
}

sub line {
    my ($what, $m) = @_;
    return sprintf "  %-24s Rss %7.1f  Pss %7.1f  Shared %7.1f  "
                   . "Private %7.1f MB\n", $what,
                   map { $_ // 0 } @$m{qw(rss pss shared private)};
}

for my $n (split /,/, $o{names}) {
    my $s = QQ::Topo->new(backends => 3, providers => 3, ttl => 60);
    my ($t, $dns) = ($s->t, $s->dns);
    my $P = $s->bport;
    my @baddr = map { $_->addr } $s->backends;

    $dns->set_records({ map {
        my $b = $baddr[ $_ % 3 ];
        ("svc$_.example.com" => [ $b ], "svc$_.example.net" => [ $b ])
    } 1 .. $n });

    my $zone = $o{zone} eq 'auto' ? '' : "    qqfail_zone $o{zone};\n";
    my (%qq, %st);
    for my $i (1 .. $n) {
        my $k = $i % $U;
        $qq{$k} .= "        qqfail_server svc$i.example.com:$P "
                 . "svc$i.example.net:$P;\n";
        $st{$k} .= "        server $baddr[$i % 3]:$P;\n";
    }

    my %res;

    for my $kind (qw(static qqfail)) {
        my $ups = '';
        for my $k (0 .. $U - 1) {
            $ups .= "    upstream u$k {\n"
                  . ($kind eq 'qqfail' ? $qq{$k} : $st{$k})
                  . "        keepalive 32;\n    }\n";
        }
        my $locs = join '', map {
            "        location /u$_/ { proxy_pass http://u$_; }\n"
        } 0 .. $U - 1;
        my $q = $kind eq 'qqfail';
        $t->write_config(($q ? '%%LOAD_MODULE%%' : '') . <<"EOF2");

%%GLOBALS%%
worker_processes $o{workers};
worker_rlimit_nofile 8192;
events {
    worker_connections 1024;
}
http {
    %%HTTP_GLOBALS%%
    access_log off;
@{[ $q ? $s->providers_conf . $zone
         . "    qqfail_state_file %%DIR%%/qq.state;\n" : '' ]}
$ups
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
$locs@{[ $q ? "        location = /status { qqfail_status; }\n" : '' ]}    }
}
EOF2

        my $t0 = time;
        $t->start(timeout => $o{timeout});

        if ($q) {
            # all live: every server is in the state file (the status
            # page is not asked before the memory is read: rendering it
            # at 10,000 servers takes memory of its own)
            $t->wait_for(sub {
                my $f = $t->read_file('qq.state') // '';
                my $c = () = $f =~ /^s /mg;
                return $c == $n;
            }, $o{timeout}, 'all live');
            # a request through every upstream, as a bench would send
            $t->http_get("/u$_/") for 0 .. $U - 1;
            $res{$kind}{master} = smaps($t->master_pid);
            $res{$kind}{workers} = [ map { smaps($_) } $t->worker_pids ];
            if ($o{trim}) {
                # how much of it is free heap: malloc_trim(0) through gdb
                for my $pid ($t->master_pid, $t->worker_pids) {
                    system("gdb -p $pid -batch -ex 'call (int) malloc_trim(0)'"
                           . " >/dev/null 2>&1");
                }
                $res{$kind}{trimmed} = [ map { smaps($_) }
                                         $t->master_pid, $t->worker_pids ];
            }
            my $st = status($t);
            # as bench/scale.pl does: the status page every second
            status($t) for 2 .. $o{polls};
            $res{$kind}{after_status} = [ map { smaps($_) } $t->worker_pids ];
            if ($o{hold}) {
                printf STDERR "holding %d s: master %d, workers %s, %s\n",
                    $o{hold}, $t->master_pid, join(' ', $t->worker_pids),
                    $t->dir;
                sleep $o{hold};
            }
            my $addrs = 0;
            for my $u (@{ $st->{upstreams} }) {
                $addrs += @{ $_->{addresses} } for @{ $u->{servers} };
            }
            $res{zone} = { %{ $st->{zone} }, addresses => $addrs };
        } else {
            sleep 2;
            $t->http_get("/u$_/") for 0 .. $U - 1;
        }

        $res{$kind}{master} //= smaps($t->master_pid);
        my @w = $t->worker_pids;
        $res{$kind}{workers} //= [ map { smaps($_) } @w ];
        if ($o{detail}) {
            print "  $kind master\n", mappings($t->master_pid);
            print "  $kind worker\n", mappings($_) for @w;
        }
        $t->stop;
    }

    printf "== %d names, %d worker(s)\n", $n, $o{workers};
    for my $kind (qw(static qqfail)) {
        print line("$kind master", $res{$kind}{master});
        my $i = 0;
        print line("$kind worker " . $i++, $_) for @{ $res{$kind}{workers} };
        print line("$kind after malloc_trim", $_)
            for @{ $res{$kind}{trimmed} // [] };
        print line("$kind worker, $o{polls} status", $_)
            for @{ $res{$kind}{after_status} // [] };
    }
    my $z = $res{zone};
    printf "  zone: size %d, used %d, %.0f bytes per server, %.0f per "
           . "address (%d addresses)\n", $z->{size}, $z->{used},
           $z->{used} / $n, $z->{used} / ($z->{addresses} || 1),
           $z->{addresses};
    for my $x (qw(rss pss private)) {
        printf "  %s ratio qqfail/static: master %.2f, worker %.2f\n", $x,
               $res{qqfail}{master}{$x} / $res{static}{master}{$x},
               $res{qqfail}{workers}[0]{$x} / $res{static}{workers}[0]{$x};
    }
}
