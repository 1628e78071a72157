#!/usr/bin/perl
# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.

# TLS to the backends: "proxy_ssl_session_reuse on" (nginx's default)
# resumes sessions with a qqfail upstream as with a stock one, a session
# per address; and "proxy_ssl_name $qqfail_name" verifies each backend
# against the name it is reached by, also after a failover to the alias.
#
# Each backend address serves, chosen by SNI, a certificate for
# serverI.example.com or one for serverI.example.net, each naming only
# that name: a backend verified, or a session resumed, with the wrong name
# fails, and the backend reports the name it was reached by.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);

use FindBin;
use lib "$FindBin::Bin/lib";

use QQ::Nginx;
use QQ::Topo;
use QQ::Proc;

# the HTTPS backends run in a second nginx (the module refuses its own
# listen sockets as peers), on addresses of their own

my $b = QQ::Nginx->new;
my @baddr = map { $b->addr(19 + $_) } 1 .. 3;

my $s = QQ::Topo->new(backends => 3, providers => 3, records => {
    map { ("server$_.example.com" => [ $baddr[$_ - 1] ],
           "server$_.example.net" => [ $baddr[$_ - 1] ]) } 1 .. 3 });
my ($t, $dns) = ($s->t, $s->dns);
my $T = $b->port('tls');
my $dir = $b->dir;
my $workers = 2;

# a CA, and a certificate for each name

mkdir "$dir/tls";

$b->write_file('tls/ca.cnf', <<'EOF');
[req]
distinguished_name = dn
prompt = no
[dn]
CN = qqfail test CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign
subjectKeyIdentifier = hash
EOF

sub openssl {
    my (@args) = @_;
    my $pid = QQ::Proc::spawn(name => 'openssl', cmd => [ 'openssl', @args ],
                              stdout => "$dir/tls/openssl.out",
                              cwd => "$dir/tls");
    QQ::Proc::poll_until(sub { !QQ::Proc::alive($pid) }, 30, 0.02)
        or BAIL_OUT("openssl @args: did not finish");
    my $status = QQ::Proc::exit_status($pid);
    QQ::Proc::forget($pid);
    $status == 0
        or BAIL_OUT("openssl @args: " . $b->read_file('tls/openssl.out'));
}

my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
          '-nodes');

openssl('req', '-x509', '-config', 'ca.cnf', '-extensions', 'ca', @ec,
        '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2');

my $serial = 1;
my @names = map { ("server$_.example.com", "server$_.example.net") } 1 .. 3;

for my $name (@names) {
    $b->write_file("tls/$name.cnf", <<"EOF");
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $name
[leaf]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:$name
EOF
    openssl('req', '-new', '-config', "$name.cnf", @ec,
            '-keyout', "$name.key", '-out', "$name.csr");
    openssl('x509', '-req', '-in', "$name.csr", '-CA', 'ca.pem',
            '-CAkey', 'ca.key', '-set_serial', $serial++, '-days', '2',
            '-extfile', "$name.cnf", '-extensions', 'leaf',
            '-out', "$name.pem");
}

# on each backend address, a server per name (the .com one first, the
# default); the body tells the backend, the name it was reached by (SNI)
# and whether the session was resumed ("r")

my $https = '';
for my $i (1 .. 3) {
    for my $name ("server$i.example.com", "server$i.example.net") {
        $https .= <<"EOF";
    server {
        listen $baddr[$i - 1]:$T ssl;
        server_name $name;
        ssl_certificate $dir/tls/$name.pem;
        ssl_certificate_key $dir/tls/$name.key;
        location / {
            return 200 "b$i \$ssl_server_name \$ssl_session_reused";
        }
    }
EOF
    }
}

$b->write_config(<<"EOF");
%%GLOBALS%%
worker_processes 1;
events {
}
http {
    %%HTTP_GLOBALS%%
$https
}
EOF
$b->start;

# the same addresses through stock upstreams, one per name: /1, /2, /3

my $verify = "proxy_ssl_server_name on;\n"
           . "            proxy_ssl_verify on;\n"
           . "            proxy_ssl_trusted_certificate $dir/tls/ca.pem;\n"
           . "            proxy_next_upstream error timeout http_502;";

# every request a new TLS connection: nginx 1.29.7 and later keep
# connections to an upstream's peers alive unless told "keepalive 0"

my $no_keepalive = $b->nginx_at_least('1.29.7') ? "        keepalive 0;\n"
                                                : '';

my $stock = '';
my $stock_locations = '';
for my $i (1 .. 3) {
    $stock .= "    upstream stock$i {\n"
            . "        server $baddr[$i - 1]:$T;\n"
            . $no_keepalive
            . "    }\n";
    $stock_locations .= <<"EOF";
        location = /$i {
            proxy_pass https://stock$i/;
            proxy_ssl_name server$i.example.com;
            $verify
        }
EOF
}

$s->nginx(workers => $workers,
    http => "$stock\n"
          . "    server {\n"
          . "        listen %%ADDR_1%%:%%PORT_stock%%;\n"
          . "$stock_locations"
          . "    }\n",
    location => "proxy_pass https://app;\n"
              . "            proxy_ssl_name \$qqfail_name;\n"
              . "            $verify",
    upstream => join('', map {
                    "        qqfail_server server$_.example.com:$T "
                  . "server$_.example.net:$T;\n" } 1 .. 3)
              . "        qqfail_refresh 2s;\n"
              . "        qqfail_timeout 1s;\n"
              . $no_keepalive);
$t->start;

my $com = qr/^server\d\.example\.com:\d+ live$/;
my $net = qr/^server\d\.example\.net:\d+ live$/;

ok($t->wait_for(sub { $s->all_active($com) }, 20, 'live'),
   'every server live on its primary name');

# "b1 server1.example.com r" -> (backend, name, resumed)
sub parse {
    my ($body) = @_;
    return $body =~ /^(b\d) (\S+) (r|\.)$/ ? ($1, $2, $3 eq 'r') : ();
}

# the bodies of answers, as QQ::Load counts them: those whose name is not
# their backend's one in $tld, resumed ones, and full handshakes by name
sub tally {
    my ($r, $tld) = @_;
    my %c = (wrong => 0, resumed => 0, full => {}, backends => {});
    for my $body (keys %{ $r->{by_body} }) {
        my ($b, $name, $reused) = parse($body);
        my $n = $r->{by_body}{$body};
        if (!defined $b || $name !~ /^server\Q${\ substr($b, 1)}\E\.$tld$/) {
            $c{wrong} += $n;
            next;
        }
        $c{backends}{$b} += $n;
        if ($reused) {
            $c{resumed} += $n;
        } else {
            $c{full}{$name} += $n;
        }
    }
    return \%c;
}

sub full { my $n = 0; $n += $_ for values %{ $_[0]{full} }; return $n }

my @figures;

# $N requests each through the qqfail upstream and the stock ones, every
# one a new TLS connection to a backend (no upstream keepalive)

my $N = 200;
my %r = map { $_ => { sent => 0, failed => 0, by_body => {} } }
        qw(qqfail stock);

for my $n (1 .. $N) {
    for my $c ([ qqfail => $s->get('/') ],
               [ stock => $t->http_get('/' . (1 + $n % 3),
                                       port => $t->port('stock')) ])
    {
        my ($what, $res) = @$c;
        $r{$what}{sent}++;
        if ($res->{status} == 200) {
            $r{$what}{by_body}{ $res->{content} }++;
        } else {
            $r{$what}{failed}++;
        }
    }
}

my %c = map { $_ => tally($r{$_}, qr/example\.com/) } qw(qqfail stock);

for my $what (qw(qqfail stock)) {
    my $c = $c{$what};
    push @figures, sprintf '%s: %d requests, %d failed, %d resumed '
                           . '(%.1f%%), %d full handshakes',
                   $what, $N, $r{$what}{failed}, $c->{resumed},
                   100 * $c->{resumed} / $N, full($c);
    is($r{$what}{failed}, 0, "$what: every request verified and answered");
    is($c->{wrong}, 0, "$what: every backend reached by its .com name");
    is(scalar keys %{ $c->{backends} }, 3, "$what: all three backends");

    # a session per address and worker: a full handshake for each at most
    ok(full($c) <= 3 * $workers,
       "$what: sessions resumed, at most one full handshake per address "
       . "and worker (" . full($c) . ")");
}

ok(abs($c{qqfail}{resumed} - $c{stock}{resumed}) <= 3 * $workers,
   "qqfail resumes as many sessions as stock ($c{qqfail}{resumed} and "
   . "$c{stock}{resumed})");

sub phase {
    my ($what, $tld) = @_;
    my $load = $s->load;
    my $since = time;
    $t->wait_for(sub { time - $since >= 3 }, 5, 'load for 3 s');
    my $r = $load->stop;
    my $c = tally($r, qr/\Q$tld\E/);
    push @figures, sprintf '%s: %d sent, %d failed, %d resumed, '
                           . '%d full handshakes',
                   $what, $r->{sent}, $r->{failed}, $c->{resumed}, full($c);
    is($r->{failed}, 0, "$what: $r->{failed} of $r->{sent} requests failed")
        or diag explain $r;
    ok($r->{sent} > 100, "$what: steady load ($r->{sent} requests)");
    is($c->{wrong}, 0, "$what: every backend reached by its .$tld name")
        or diag explain $r->{by_body};
    ok(full($c) <= 3 * $workers,
       "$what: sessions resumed (" . full($c) . " full handshakes)");
}

# registrar A down: every server moves to its .net alias and is verified
# against it.  Each address holds a session made with its .com name: the
# backend would resume it for the .net name too, and the .com certificate
# it carries would fail the verification against the .net name

my $load = $s->load;

$dns->stop_auth('a');

ok($t->wait_for(sub { $s->all_active($net) }, 20, 'failover to example.net'),
   'registrar A down: every server moved to its example.net alias');

my $f = $load->stop;
my $fc = tally($f, qr/example\.(com|net)/);
my $fullnet = 0;
$fullnet += $fc->{full}{$_} for grep { /\.net$/ } keys %{ $fc->{full} };
push @figures, sprintf 'during the failover: %d sent, %d failed, '
                       . '%d full handshakes with the .net names',
                       $f->{sent}, $f->{failed}, $fullnet;
is($f->{failed}, 0, "during the failover: $f->{failed} of $f->{sent} "
                    . "requests failed")
    or diag explain $f;
is($fc->{wrong}, 0,
   'during the failover: every backend reached by one of its names');
ok($fullnet <= 3 * $workers,
   "at most a full handshake per address and worker for the .net names "
   . "($fullnet)")
    or diag explain $fc;

phase('registrar A down', 'example.net');

# registrar A back: the .com names again

$dns->start_auth_server('a', flush => 1);

ok($t->wait_for(sub { $s->all_active($com) }, 20, 'back to example.com'),
   'registrar A back: every server returned to its primary name');

phase('registrar A back', 'example.com');

unlike($t->error_log, qr/upstream SSL certificate|certificate verify/,
       'no verification error logged');

diag $_ for @figures;

done_testing();
