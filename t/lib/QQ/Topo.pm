# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Topo;

# The operator's topology on loopback: backends b1..bN, the names
# serverI.example.com (registrar A) and serverI.example.net (registrar B)
# pointing at bI, unbound providers in front of both registrars, and an
# nginx configuration with a qqfail upstream "app" and a status location.
#
#   my $s = QQ::Topo->new(backends => 3, providers => 3);
#   $s->nginx(upstream => "qqfail_server server1.example.com:%%BPORT%%;");
#   $s->t->start;
#   is($s->get('/')->{content}, 'b1');
#
# delay => { I => SECONDS } makes backend bI a slow one (QQ::Backend delay).
# zones => { ... } and ns => { ... } serve more zones and give zones other
# NS records (QQ::DNS).
# dnssec => 1 signs both zones and validators => [ I, ... ] makes those
# providers validate (QQ::DNS).

use strict;
use warnings;

use Carp qw(croak);
use Test::More ();
use Time::HiRes qw(time);

use QQ::Nginx;
use QQ::DNS;
use QQ::Backend;
use QQ::Load;

sub new {
    my ($class, %o) = @_;

    my $t = QQ::Nginx->new;
    my $nb = $o{backends} // 3;
    my $bport = $t->port('backend');

    my @b = map {
        QQ::Backend->new(t => $t, id => "b$_", addr => $t->addr(19 + $_),
                         port => $bport, delay => ($o{delay} // {})->{$_})
    } 1 .. $nb;

    $_->start for @b;

    my $dns = QQ::DNS->new(t => $t, ttl => $o{ttl} // 1,
                           dnssec => $o{dnssec},
                           validators => $o{validators},
                           ($o{zones} ? (zones => $o{zones}) : ()),
                           ns => $o{ns});

    my %rec;
    for my $i (1 .. $nb) {
        $rec{"server$i.example.com"} = [ $b[$i - 1]->addr ];
        $rec{"server$i.example.net"} = [ $b[$i - 1]->addr ];
    }
    %rec = (%rec, %{ $o{records} }) if $o{records};

    $dns->start_auth(records => \%rec, ttl => $o{ttl} // 1);
    $dns->start_providers($o{providers} // 3) if $o{providers} // 3;

    return bless {
        t => $t, dns => $dns, backends => \@b, bport => $bport,
    }, $class;
}

sub t        { return $_[0]{t} }
sub dns      { return $_[0]{dns} }
sub bport    { return $_[0]{bport} }
sub backend  { return $_[0]{backends}[ $_[1] - 1 ] }
sub backends { return @{ $_[0]{backends} } }

# "qqfail_provider pI ADDR;" for the given unbound providers (default all)
sub providers_conf {
    my ($self, @idx) = @_;
    @idx = $self->{dns}->providers unless @idx;
    return join '', map {
        "    qqfail_provider p$_ " . $self->{dns}->provider_addr($_) . ";\n"
    } @idx;
}

# A complete nginx.conf.  %%BPORT%% in any part is the backends' port.
# upstreams => [ NAME => TEXT, ... ] writes these upstreams instead of
# "app" (then upstream => is not needed), locations => TEXT adds locations
# and server => TEXT directives to the server block.
sub nginx {
    my ($self, %o) = @_;

    my $providers = $o{providers} // $self->providers_conf;
    my $workers = $o{workers} // 1;
    my $http = $o{http} // '';
    my $location = $o{location}
        // "proxy_pass http://app;\n"
         . "            proxy_next_upstream error timeout http_502;";
    my $upstreams;
    if ($o{upstreams}) {
        my @u = @{ $o{upstreams} };
        while (my ($name, $text) = splice @u, 0, 2) {
            $upstreams .= "    upstream $name {\n$text\n    }\n\n";
        }
    } else {
        my $upstream = $o{upstream} or croak "upstream => required";
        $upstreams = "    upstream app {\n$upstream\n"
                   . ($o{upstream_tail} // '') . "\n    }\n";
    }

    my $text = <<"EOF";
%%LOAD_MODULE%%
%%GLOBALS%%
worker_processes $workers;
@{[ $o{main} // '' ]}
events {
}

http {
    %%HTTP_GLOBALS%%

$providers
$http

$upstreams
    server {
        listen %%ADDR_1%%:%%PORT_1%%;
@{[ $o{server} // '' ]}
@{[ $o{locations} // '' ]}

        location / {
            $location
        }

        location = /status {
            qqfail_status;
        }
    }
}
EOF

    my $bport = $self->{bport};
    $text =~ s/%%BPORT%%/$bport/g;

    return $self->{t}->write_config($text);
}

# "location /NAME { proxy_pass http://NAME; ... }" for each upstream NAME,
# with keepalive connections to the peers possible
sub proxy_locations {
    my ($self, @names) = @_;
    return join '', map {
        "        location /$_ {\n"
      . "            proxy_pass http://$_;\n"
      . "            proxy_http_version 1.1;\n"
      . "            proxy_set_header Connection \"\";\n"
      . "        }\n"
    } @names;
}

sub get {
    my ($self, $path, %o) = @_;
    return $self->{t}->http_get($path // '/', %o);
}

sub status {
    my ($self) = @_;
    return scalar $self->{t}->get_json('/status');
}

# the first server of upstream "app" (or $upstream) whose first name is $name
sub server_status {
    my ($self, $name, $upstream) = @_;
    my $st = $self->status or return undef;
    for my $u (@{ $st->{upstreams} }) {
        next unless $u->{name} eq ($upstream // 'app');
        for my $s (@{ $u->{servers} }) {
            return $s if $s->{names}[0] =~ /^\Q$name\E(?::\d+)?$/;
        }
    }
    return undef;
}

# "active_name source" of server $n (its first name serverN.example.com)
sub active {
    my ($self, $n) = @_;
    my $st = $self->server_status("server$n.example.com") or return '';
    return ($st->{active_name} // '') . ' ' . $st->{source};
}

# whether active() of every backend's server matches $re
sub all_active {
    my ($self, $re) = @_;
    return !grep { $self->active($_) !~ $re } 1 .. @{ $self->{backends} };
}

sub provider_status {
    my ($self, $name) = @_;
    my $st = $self->status or return undef;
    my ($p) = grep { $_->{name} eq $name } @{ $st->{providers} };
    return $p;
}

# the set of "ip:port" addresses of a server, sorted, as one string
sub addresses {
    my ($self, $name, $upstream) = @_;
    my $s = $self->server_status($name, $upstream) or return '';
    return join ' ', sort map { $_->{address} } @{ $s->{addresses} };
}

sub load {
    my ($self, %o) = @_;
    my $t = $self->{t};
    return QQ::Load->start($t,
        url => 'http://' . $t->addr(1) . ':' . $t->port(1) . ($o{path} // '/'),
        concurrency => $o{concurrency} // 2,
        %o);
}

# body of one request, or "" on failure
sub body {
    my ($self, $path) = @_;
    my $r = $self->get($path // '/');
    return $r->{status} == 200 ? $r->{content} : '';
}

# count bodies over $n sequential requests
sub spread {
    my ($self, $n) = @_;
    my %c;
    for (1 .. $n) {
        my $r = $self->get('/');
        $c{ $r->{status} == 200 ? $r->{content} : "status $r->{status}" }++;
    }
    return \%c;
}

# stop a load and assert what an outage test asserts of it: nothing failed,
# and it was steady; "sent, failed" joins @$figures for the closing note
sub finish {
    my ($self, $load, $what, $figures) = @_;
    my $r = $load->stop;
    push @$figures, sprintf '%s: %d sent, %d failed', $what, $r->{sent},
                            $r->{failed};
    Test::More::is($r->{failed}, 0,
                   "$what: $r->{failed} of $r->{sent} requests failed")
        or Test::More::note(Test::More::explain($r));
    Test::More::ok($r->{sent} > 100, "$what: steady load ($r->{sent} requests)");
    return $r;
}

# poll until $n consecutive requests are answered by backend $id;
# returns the seconds it took, or undef
sub wait_backend {
    my ($self, $id, $timeout, $n) = @_;
    $n //= 3;
    my $start = time;
    my $ok = $self->{t}->wait_for(sub {
        for (1 .. $n) {
            return 0 unless $self->body eq $id;
        }
        return 1;
    }, $timeout, "requests answered by $id");
    return $ok ? time - $start : undef;
}

1;
