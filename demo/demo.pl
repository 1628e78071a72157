#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# ./build.sh demo [--keep]: the 2012 registrar outage, replayed on 127.x.
#
# A self-contained sandbox inside a temporary directory and one loopback
# /24 (127.A.B.0), built from the test harness in t/lib:
#
#   registrar A (nsd, example.com)    127.A.B.201:53
#   registrar B (nsd, example.net)    127.A.B.202:53
#   providers p1..p3 (unbound)        127.A.B.211..213:53
#   backends b1..b3 (stock nginx)     127.A.B.20..22
#   nginx with the module             127.A.B.1, status at /qqfail
#
# Under steady traffic it plays: (a) registrar A's DNS goes down, every
# server fails over to example.net; (b) every provider goes down, last-good
# addresses (and server3's IP literal) carry the traffic; (c) nginx is
# restarted during the total outage and proxies from the state file; (d)
# DNS comes back and every server returns to example.com.  Each phase
# waits for its state on the status page, with a deadline.  Exit status 0
# only if every phase reached its state, no request failed, and nginx
# logged no [alert]/[crit] and no crash.
#
# Nothing is sent anywhere but 127.x literals: no host name appears in any
# configuration, and the DNS names live only in the sandbox's own zones.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Getopt::Long qw(GetOptions);
use POSIX ();
use Time::HiRes qw(time sleep);

# The harness reports through Test::More (wait_for/reload diagnostics, and
# its teardown checks: no [alert]/[crit], no process exited on signal, no
# sanitizer reports).  Keep that TAP away from the user: collect it in a
# buffer and turn it into the summary.
use Test::More ();
my $TAP = '';
BEGIN {
    my $tb = Test::More->builder;
    $tb->output(\$TAP);
    $tb->failure_output(\$TAP);
    $tb->todo_output(\$TAP);
    $tb->no_ending(1);
}

use QQ::Topo;

$| = 1;

# ---------------------------------------------------------------------------
# options

my %opt = (
    keep     => 0,
    fast     => ($ENV{QQ_DEMO_FAST} // '') =~ /^[1-9y]/i ? 1 : 0,
    deadline => 30,
);

sub usage {
    print <<'EOF';
Usage: perl demo/demo.pl [--keep] [--fast] [--outage SECONDS] [--deadline SECONDS]

Replays the 2012 registrar outage against nginx with ngx_qqfail_module, in a
sandbox on 127.x (run it through ./build.sh demo, which builds the module
and installs what is missing; needs root: the DNS servers use port 53).

  --keep             leave the sandbox running after the story, until Ctrl-C
  --fast             short holds (also QQ_DEMO_FAST=1); for the test suite
  --outage SECONDS   how long to hold the total DNS outage (default 20, fast 3)
  --deadline SECONDS how long each phase may take to reach its state (30)
EOF
}

GetOptions(
    'keep'       => \$opt{keep},
    'fast!'      => \$opt{fast},
    'outage=f'   => \$opt{outage},
    'deadline=f' => \$opt{deadline},
    'help|h'     => sub { usage(); exit 0 },
) or do { usage(); exit 2 };

my %hold = $opt{fast}
    ? (start => 1, a => 1.5, b => 3, c => 2, d => 1.5)
    : (start => 3, a => 5,   b => 20, c => 8, d => 4);
$hold{b} = $opt{outage} if defined $opt{outage};

# ---------------------------------------------------------------------------
# preconditions

sub fatal {
    print STDERR "demo: @_\n";
    exit 2;
}

fatal('run as root: the sandbox DNS servers listen on port 53 of 127.x '
      . 'addresses (./build.sh demo)') if $> != 0;
if (my @missing = QQ::DNS::missing_tools()) {
    fatal("missing @missing; ./build.sh demo installs them");
}
-x ($ENV{QQ_NGINX} || '/usr/sbin/nginx')
    or fatal('nginx is not installed; ./build.sh demo installs it');
-f QQ::Nginx->module_path
    or fatal('module not built: ' . QQ::Nginx->module_path . ' (run ./build.sh demo)');

# ---------------------------------------------------------------------------
# signals: Ctrl-C (INT), TERM and HUP end the demo through the same path as
# a normal end, so that the harness stops every process it started and
# checks the logs.  Children reset these handlers (QQ::Proc).

my $MAIN_PID = $$;
my $INTERRUPTED;
my $IN_TEARDOWN = 0;

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub {
        POSIX::_exit(1) if $$ != $MAIN_PID;   # a child not yet set up
        if ($IN_TEARDOWN) {
            print "\n(stopping, please wait)\n";
            return;
        }
        $INTERRUPTED //= $sig;
        die "demo interrupted by SIG$sig\n";
    };
}

# ---------------------------------------------------------------------------
# output

my $T0 = time;

sub out  { print @_, "\n" }
sub secs { return sprintf '%.1fs', $_[0] }

# ---------------------------------------------------------------------------
# the sandbox

my ($s, $t, $dns, $P, $b3, $proxy_url, $status_url);
my @SERVERS = (1, 2, 3);

sub setup {
    out('Starting the sandbox: 2 registrars (nsd), 3 DNS providers '
        . '(unbound), 3 backends,');
    out('and nginx with ngx_qqfail_module, all on 127.x.');

    $s = QQ::Topo->new(backends => 3, providers => 3, ttl => 1);
    ($t, $dns, $P) = ($s->t, $s->dns, $s->bport);
    $b3 = $s->backend(3)->addr;

    mkdir $t->dir . '/state';
    chmod 0777, $t->dir . '/state';

    write_config();
    $t->start;

    $proxy_url = 'http://' . $t->addr(1) . ':' . $t->port(1) . '/';
    $status_url = $proxy_url . 'qqfail';
    return;
}

sub write_config {
    my $providers = $s->providers_conf;
    my $module = $t->module_path;

    $t->write_config(<<"EOF");
# ngx_qqfail_module demo (generated by demo/demo.pl)

load_module $module;

daemon off;
pid %%DIR%%/nginx.pid;
error_log %%DIR%%/error.log notice;
worker_processes 2;

events {
    worker_connections 1024;
}

http {
    client_body_temp_path %%DIR%%/client_body_temp;
    proxy_temp_path %%DIR%%/proxy_temp;
    fastcgi_temp_path %%DIR%%/fastcgi_temp;
    uwsgi_temp_path %%DIR%%/uwsgi_temp;
    scgi_temp_path %%DIR%%/scgi_temp;

    log_format qqfail '\$remote_addr [\$time_local] "\$request" \$status '
                      'upstream=\$upstream_addr name=\$qqfail_name '
                      'source=\$qqfail_source';
    access_log %%DIR%%/access.log qqfail;

    # three independent DNS providers (unbound on 127.x)
$providers
    # last-good addresses survive a restart
    qqfail_state_file %%DIR%%/state/state;

    upstream app {
        qqfail_server server1.example.com:$P server1.example.net:$P;
        qqfail_server server2.example.com:$P server2.example.net:$P;
        qqfail_server server3.example.com:$P server3.example.net:$P $b3:$P;
        qqfail_refresh 2s;
        qqfail_timeout 1s;
        keepalive 16;
    }

    server {
        listen %%ADDR_1%%:%%PORT_1%%;

        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
        }

        location = /qqfail {
            qqfail_status;
            access_log off;
            allow 127.0.0.0/8;
            deny all;
        }
    }
}
EOF
    return;
}

# ---------------------------------------------------------------------------
# status page, logs and the live line

my $STATUS;             # the latest decoded status, or undef
my %FAILOVERS_RUN;      # server index => failovers seen in this nginx run
my %FAILOVERS_BASE;     # server index => failovers of earlier nginx runs
my %LOGPOS = (access => 0, error => 0);
my %SEEN = (ok => 0, failed => 0);
my $NEXT_LINE = 0;
my $LAST_LINE = 0;

sub fetch_status {
    my $st = eval { scalar $t->get_json('/qqfail', timeout => 2) };
    $STATUS = ref $st eq 'HASH' ? $st : undef;
    if ($STATUS) {
        for my $i (@SERVERS) {
            my $srv = server($i) or next;
            my $n = $srv->{failovers} // 0;
            $FAILOVERS_RUN{$i} = $n if $n > ($FAILOVERS_RUN{$i} // 0);
        }
    }
    return $STATUS;
}

sub server {
    my ($i) = @_;
    return undef unless $STATUS;
    my ($u) = grep { $_->{name} eq 'app' } @{ $STATUS->{upstreams} || [] };
    return $u ? $u->{servers}[ $i - 1 ] : undef;
}

# "example.net live": the active name without "serverN." and ":port"
sub active {
    my ($i) = @_;
    my $srv = server($i) or return '?';
    my $name = $srv->{active_name} // '-';
    $name =~ s/:\d+$//;
    $name =~ s/^server\Q$i\E\.//;
    return "$name " . ($srv->{source} // '?');
}

sub provider_states {
    return () unless $STATUS;
    return map { $_->{state} // '?' } @{ $STATUS->{providers} || [] };
}

sub read_new {
    my ($key, $file) = @_;
    open my $fh, '<', $file or return ();
    seek $fh, $LOGPOS{$key}, 0;
    my @lines;
    while (my $line = <$fh>) {
        last unless $line =~ /\n$/;          # a line still being written
        $LOGPOS{$key} += length $line;
        chomp $line;
        push @lines, $line;
    }
    close $fh;
    return @lines;
}

# count the proxied requests (the proxy's access log) and show what the
# module logs about its state changes as it happens
sub tail_logs {
    for (read_new(access => $t->dir . '/access.log')) {
        next unless /" (\d{3}) /;
        $SEEN{ $1 eq '200' ? 'ok' : 'failed' }++;
    }
    for (read_new(error => $t->dir . '/error.log')) {
        next unless /\[(?:warn|notice|error)\] \d+#\d+: qqfail: /
                 || /\[(?:alert|crit|emerg)\]/;
        s/^\S+ \S+ (\[\w+\]) \d+#\d+: /$1 /;
        out("          nginx: $_");
    }
    return;
}

sub live_line {
    my $when = time - $T0;
    my @p = provider_states();
    out(sprintf '%7.1fs %7d %6d   %-24s %-24s %-24s %s',
        $when, $SEEN{ok}, $SEEN{failed}, (map { active($_) } @SERVERS),
        @p ? join('/', @p) : (nginx_running() ? '?' : 'nginx stopped'));
    $LAST_LINE = time;
    return;
}

sub header {
    out(sprintf '%8s %7s %6s   %-24s %-24s %-24s %s', 'time', 'ok',
        'failed', 'server1', 'server2', 'server3', 'providers p1/p2/p3');
}

sub nginx_running { return $t && $t->is_running }

# one step of the clock: poll the status page, follow the logs, print the
# live line once a second
sub tick {
    fetch_status() if nginx_running();

    # a signal that arrived inside an eval (the status fetch, the harness)
    # was swallowed there: end the story now
    die "demo interrupted by SIG$INTERRUPTED\n" if $INTERRUPTED;

    tail_logs();
    if (time >= $NEXT_LINE) {
        live_line();
        $NEXT_LINE = time + 1;
    }
    return;
}

# wait until $cond is true on a fresh status, at most $deadline seconds;
# returns the seconds it took, or undef
sub wait_state {
    my ($cond, $deadline) = @_;
    my $start = time;
    while (1) {
        tick();
        if ($STATUS && $cond->()) {
            live_line() if time - $LAST_LINE > 0.2;
            $NEXT_LINE = time + 1;
            return time - $start;
        }
        return undef if time - $start >= $deadline;
        sleep 0.25;
    }
}

sub hold {
    my ($secs) = @_;
    my $end = time + $secs;
    while (time < $end) {
        tick();
        my $left = $end - time;
        sleep($left < 0.25 ? ($left > 0 ? $left : 0) : 0.25);
    }
    tick();
    return;
}

# ---------------------------------------------------------------------------
# conditions

sub on {
    my ($i, $re) = @_;
    my $srv = server($i) or return 0;
    return (($srv->{active_name} // '') . ' ' . ($srv->{source} // '')) =~ $re
        && @{ $srv->{addresses} || [] } > 0;
}

sub providers_all {
    my ($state) = @_;
    my @p = provider_states();
    return @p == 3 && !grep { $_ ne $state } @p;
}

sub all_primary {
    return providers_all('up')
        && !grep { !on($_, qr/^server$_\.example\.com:\d+ live$/) } @SERVERS;
}

sub all_alias {
    return !grep { !on($_, qr/^server$_\.example\.net:\d+ live$/) } @SERVERS;
}

sub all_stale {
    return providers_all('down')
        && on(1, qr/ stale$/) && on(2, qr/ stale$/)
        && on(3, qr/^\Q$b3:$P\E literal$/);
}

sub from_state_file {
    return on(1, qr/ state_file$/) && on(2, qr/ state_file$/)
        && on(3, qr/^\Q$b3:$P\E (?:literal|state_file)$/);
}

# ---------------------------------------------------------------------------
# phases

my @PHASES;       # { key, title, expect, reached, took, load, ok, interrupted }
my $CURRENT;      # the phase in progress
my $LOAD;         # the running QQ::Load
my %TOTAL = (sent => 0, failed => 0);
my $RESTART_GAP;
my $STORY_TIME;

sub start_load {
    $LOAD = $s->load(concurrency => 2, interval_ms => 5, timeout => 5);
    return;
}

sub stop_load {
    my $l = $LOAD or return undef;
    undef $LOAD;
    my $r = $l->stop;
    $TOTAL{sent} += $r->{sent};
    $TOTAL{failed} += $r->{failed} + ($r->{lost_children} // 0);
    return $r;
}

sub begin_phase {
    my (%p) = @_;
    $CURRENT = { %p, reached => 0 };
    push @PHASES, $CURRENT;
    out('');
    out("== $p{title} ==");
    out("   expect: $p{expect} (deadline $opt{deadline}s)");
    return;
}

# wait for the phase's state, then keep the traffic going for $hold
# seconds and check that the state held
sub reach {
    my ($cond, $hold, $what) = @_;
    my $took = wait_state($cond, $opt{deadline});
    $CURRENT->{took} = $took;
    if (!defined $took) {
        out("   FAILED: not reached within $opt{deadline}s: $CURRENT->{expect}");
        return 0;
    }
    out(sprintf '   reached after %s: %s', secs($took), $CURRENT->{expect});
    if ($hold > 0) {
        out(sprintf '   holding %ss%s', $hold, $what ? ": $what" : '');
        hold($hold);
        fetch_status();
        unless ($cond->()) {
            out('   FAILED: the state did not hold');
            return 0;
        }
    }
    return $CURRENT->{reached} = 1;
}

sub end_phase {
    my $r = stop_load();
    if ($r) {
        $CURRENT->{load} = $r;
        my $b = $r->{by_body};
        out(sprintf '   %d requests, %d failed; answered by b1 %d, b2 %d, b3 %d',
            $r->{sent}, $r->{failed}, map { $b->{"b$_"} // 0 } @SERVERS);
        if ($r->{failed}) {
            my @e = map { "$_ ($r->{errors}{$_})" } sort keys %{ $r->{errors} };
            out('   FAILED requests: status '
                . join(', ', map { "$_: $r->{by_status}{$_}" }
                             grep { $_ ne '200' } sort keys %{ $r->{by_status} })
                . (@e ? "; @e" : ''));
        }
    }
    $CURRENT->{ok} = $CURRENT->{reached} && $r && !$r->{failed}
                     && !$r->{lost_children} && $r->{sent} > 0
                     && !grep { !$r->{by_body}{"b$_"} } @SERVERS;
    Test::More::ok($CURRENT->{ok}, $CURRENT->{title});   # into the buffer
    undef $CURRENT;
    return;
}

sub story {
    setup();
    out('');
    out("proxy:       $proxy_url");
    out("status page: $status_url   (curl -s $status_url | json_pp)");
    out('sandbox:     ' . $t->dir);
    out('');
    out('Every line below: seconds since the start, requests answered ok / '
        . 'failed (the proxy\'s');
    out('access log), each server\'s active name and address source, and the '
        . 'providers\' states');
    out('(all from the status page).  "nginx:" lines are what the module '
        . 'logs.');
    out('');
    header();

    # start: everything resolves through example.com

    begin_phase(key => 'start', title => 'start: DNS works',
                expect => 'every server on its example.com name, live; '
                        . 'providers up');
    start_load();
    reach(\&all_primary, $hold{start}, 'normal traffic');
    end_phase();

    # (a) registrar A's DNS host goes down

    begin_phase(key => 'a',
                title => "(a) registrar A's DNS goes down (example.com)",
                expect => 'every server on its example.net alias, live');
    start_load();
    out('   stopping registrar A (nsd for example.com): every provider now '
        . 'answers SERVFAIL for *.example.com');
    $dns->stop_auth('a');
    reach(\&all_alias, $hold{a}, 'traffic continues through example.net');
    end_phase();

    # (b) every provider goes down

    begin_phase(key => 'b', title => '(b) every DNS provider goes down',
                expect => 'providers down; servers 1 and 2 on their last-good '
                        . 'addresses (stale), server3 on its IP literal');
    start_load();
    out('   blackholing providers p1, p2, p3 (SIGSTOP): no DNS answer at all');
    $dns->blackhole_provider($_) for $dns->providers;
    reach(\&all_stale, $hold{b}, 'the total DNS outage goes on, traffic '
                                . 'continues');
    end_phase();

    # (c) nginx restarted during the total outage

    begin_phase(key => 'c',
                title => '(c) nginx is restarted during the total outage',
                expect => 'servers 1 and 2 from the state file, server3 on '
                        . 'its IP literal; traffic from the first request');
    my $state = $t->read_file('state/state');
    my $saved = () = $state =~ /^s /mg;
    out("   state file " . $t->dir . "/state/state ($saved servers):");
    out("      $_") for split /\n/, $state;
    out('   load paused: no requests are sent while nginx is stopped');
    my $gap_start = time;
    $FAILOVERS_BASE{$_} += $FAILOVERS_RUN{$_} // 0 for @SERVERS;
    %FAILOVERS_RUN = ();
    $t->stop;
    tail_logs();
    out('   nginx stopped (QUIT); starting it again, every provider still down');
    if ($t->try_start) {
        $RESTART_GAP = time - $gap_start;
        out(sprintf '   nginx is back after %s; load resumed', secs($RESTART_GAP));
        start_load();
        reach(\&from_state_file, $hold{c}, 'proxying from the state file');
    } else {
        out('   FAILED: nginx did not start: ' . ($t->last_start_error // '?'));
        $CURRENT->{expect} = 'nginx starts during the outage';
    }
    end_phase();
    die "nginx is not running\n" unless nginx_running();

    # (d) DNS comes back

    begin_phase(key => 'd', title => '(d) DNS comes back',
                expect => 'providers up; every server back on its '
                        . 'example.com name, live');
    start_load();
    out('   restoring the providers and registrar A, flushing the '
        . 'providers\' caches');
    $dns->restore_provider($_) for $dns->providers;
    $dns->start_auth_server('a', flush => 1);
    reach(\&all_primary, $hold{d}, 'back to normal');
    end_phase();
    $STORY_TIME = time - $T0;
    return;
}

# ---------------------------------------------------------------------------
# the end

sub failovers {
    return map { ($FAILOVERS_BASE{$_} // 0) + ($FAILOVERS_RUN{$_} // 0) }
           @SERVERS;
}

sub story_summary {
    out('');
    out('== summary ==');
    for my $p (@PHASES) {
        my $r = $p->{load};
        out(sprintf '  %-4s %-50s %s',
            $p->{ok} ? 'ok' : $p->{interrupted} ? '--' : 'FAIL', $p->{title},
            $p->{interrupted} ? 'interrupted'
            : !$r ? ($p->{reached} ? 'reached' : 'not reached')
                : sprintf('%s, %d requests, %d failed',
                          defined $p->{took} ? 'reached in ' . secs($p->{took})
                                             : 'not reached',
                          $r->{sent}, $r->{failed}));
    }
    my @missing = grep { my $k = $_; !grep { $_->{key} eq $k } @PHASES }
                  qw(start a b c d);
    out("  --   phase $_ not played") for @missing;
    out(sprintf '  requests: %d sent, %d failed', $TOTAL{sent}, $TOTAL{failed});
    out(sprintf '  story time: %s (sandbox start to the end of phase (d))',
                secs($STORY_TIME)) if defined $STORY_TIME;
    out(sprintf '  nginx restart: %s without traffic (load paused)',
                secs($RESTART_GAP)) if defined $RESTART_GAP;
    my @f = failovers();
    out(sprintf '  failovers (status page, summed over both nginx runs): '
                . 'server1 %d, server2 %d, server3 %d', @f);
    return;
}

# the harness's teardown checks, collected from the TAP buffer
sub harness_checks {
    my @checks;
    my @lines = split /\n/, $TAP;
    for my $i (0 .. $#lines) {
        next unless $lines[$i] =~ /^(not )?ok \d+ - (\S+: no .*)$/;
        my ($bad, $name) = ($1, $2);
        $name =~ s/^qqtest\.\w+: //;
        my @diag;
        for my $j ($i + 1 .. $#lines) {
            last unless $lines[$j] =~ /^#/;
            push @diag, $lines[$j];
        }
        push @checks, { ok => !$bad, name => $name, diag => \@diag };
    }
    return @checks;
}

my $story_ok = eval { story(); 1 };
my $error = $@;
$IN_TEARDOWN = 1 if $INTERRUPTED;

if (!$story_ok) {
    if ($INTERRUPTED) {
        out('');
        out("interrupted (SIG$INTERRUPTED)"
            . ($CURRENT ? " during $CURRENT->{title}" : ''));
    } else {
        chomp $error;
        out('');
        out("demo error: $error");
    }
    if ($CURRENT) {
        $CURRENT->{ok} = 0;
        $CURRENT->{interrupted} = 1 if $INTERRUPTED;
    }
}

my $phases_ok = @PHASES == 5 && !grep { !$_->{ok} } @PHASES;
my $story_passed = $story_ok && $phases_ok && $TOTAL{failed} == 0;

eval {
    stop_load() unless $INTERRUPTED;
    story_summary();

    if ($opt{keep} && !$INTERRUPTED && nginx_running()) {
        tail_logs();
        out('');
        out('The sandbox is still running (--keep); press Ctrl-C to stop it.');
        out("  proxy:       $proxy_url");
        out("  status page: $status_url");
        out("               curl -s $status_url | json_pp");
        out('               (a browser gets HTML, ?format=prometheus the '
            . 'metrics)');
        out('  logs:        ' . $t->dir . '/error.log, access.log');
        out('  state file:  ' . $t->dir . '/state/state');
        while (1) {
            sleep 1;
            unless (nginx_running()) {
                out('nginx has stopped');
                last;
            }
        }
    }
    1;
} or do {
    $IN_TEARDOWN = 1;
    out('') if $INTERRUPTED;
};
$IN_TEARDOWN = 1;

# stop everything the harness started, and let it check the logs
out('');
out('Stopping the sandbox...');
# a failure keeps the sandbox directory for inspection (the harness does
# that when a test failed); an interruption alone does not
Test::More::ok($story_passed
               || ($INTERRUPTED && !grep { !$_->{ok} && !$_->{interrupted} }
                                       @PHASES),
               'story');
eval { Test::More::done_testing(); 1 }
    or out("teardown error: $@");

my @checks = harness_checks();
for my $c (@checks) {
    out(sprintf '  %-4s %s', $c->{ok} ? 'ok' : 'FAIL', $c->{name});
    out("         $_") for $c->{ok} ? () : @{ $c->{diag} };
}
my $checks_ok = @checks >= 3 && !grep { !$_->{ok} } @checks;
out('  FAIL harness log checks did not run') if @checks < 3;

if ($TAP =~ /^# test directory left in place: (\S+)/m) {
    out("  sandbox directory kept for inspection: $1");
}

my $passed = $story_passed && $checks_ok;
my $normal_end = !$INTERRUPTED || ($opt{keep} && $story_ok);
out('');
if ($passed && $normal_end) {
    out('PASS: every phase reached its state, no request failed, no '
        . '[alert]/[crit] and no crash in nginx');
    exit 0;
}
if (!$normal_end) {
    out('INTERRUPTED: the story did not finish');
    exit 128 + ({ INT => 2, TERM => 15, HUP => 1 }->{$INTERRUPTED} // 2);
}
out('FAIL: ' . join('; ',
    (!$phases_ok ? 'not every phase reached its state' : ()),
    ($TOTAL{failed} ? "$TOTAL{failed} requests failed" : ()),
    (!$checks_ok ? 'nginx log checks failed' : ()),
    (!$story_ok && !$INTERRUPTED ? 'the demo stopped early' : ())));
exit 1;
