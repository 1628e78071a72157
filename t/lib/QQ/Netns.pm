# Copyright (C) ngx_qqfail_module authors; 2-clause BSD license, see LICENSE.
package QQ::Netns;

# Optional isolation for a whole test file (design-pitfalls §h.6): move the
# test process into its own network and mount namespaces, so that
#   - only a private loopback exists: nothing the test starts can reach any
#     other host, in particular not the machine's resolver;
#   - /etc/resolv.conf can be replaced for this test only, which is how the
#     module's default "system" provider is tested against our providers.
#
#   use QQ::Netns;
#   QQ::Netns::enter() or plan skip_all => "no netns: $QQ::Netns::ERROR";
#   my $t = QQ::Nginx->new;  my $dns = QQ::DNS->new(t => $t); ...
#   QQ::Netns::set_resolv_conf("nameserver " . $dns->provider_ip(1) . "\n");
#
# Call enter() first, before anything is started; every process started
# afterwards inherits the namespaces.  Needs root (or CAP_SYS_ADMIN) and
# iproute2's `ip`; mount(8) is in util-linux.

use strict;
use warnings;

use Config;
use File::Spec;

use QQ::Proc;

our $ERROR = '';
my $entered = 0;
my @resolv_files;

my %UNSHARE_SYSCALL = (
    'x86_64-linux'  => 272,
    'aarch64-linux' => 97,
);
use constant CLONE_NEWNS  => 0x00020000;
use constant CLONE_NEWNET => 0x40000000;

sub entered { return $entered }

# A chroot (such as a fresh debootstrap root) has no mount point at "/":
# mount propagation cannot be made private there, and a bind mount over
# /etc/resolv.conf would leak into the host.  Returns the reason, or ''.
sub unusable {
    open my $fh, '<', '/proc/self/mountinfo' or return '';
    while (my $line = <$fh>) {
        return '' if (split ' ', $line)[4] eq '/';
    }
    return 'running in a chroot: "/" is not a mount point, so a private '
         . 'mount namespace cannot be set up';
}

sub enter {
    return 1 if $entered;
    if (my $why = unusable()) {
        $ERROR = $why;
        return 0;
    }
    my ($arch) = $Config{archname} =~ /^([^-]+-linux)/;
    my $nr = defined $arch ? $UNSHARE_SYSCALL{$arch} : undef;
    unless (defined $nr) {
        $ERROR = "unshare(2) syscall number unknown for $Config{archname}";
        return 0;
    }
    if (syscall($nr, CLONE_NEWNET | CLONE_NEWNS) != 0) {
        $ERROR = "unshare(CLONE_NEWNET|CLONE_NEWNS): $!";
        return 0;
    }
    for my $cmd ([qw(ip link set lo up)], [qw(mount --make-rprivate /)]) {
        my ($status, $out) = QQ::Proc::run_cmd($cmd, timeout => 10);
        unless (defined $status && $status == 0) {
            $ERROR = "@$cmd failed: $out";
            return 0;
        }
    }
    $entered = 1;
    return 1;
}

# Bind-mounts a file holding $text over /etc/resolv.conf; visible only in
# our mount namespace (so only after enter()).
sub set_resolv_conf {
    my ($text, $path) = @_;
    die "QQ::Netns::set_resolv_conf: call enter() first\n" unless $entered;
    $path //= File::Spec->catfile(File::Spec->tmpdir,
                                  "qq-resolv.$$." . scalar(@resolv_files) . '.conf');
    open my $fh, '>', $path or die "write $path: $!\n";
    print {$fh} $text;
    close $fh or die "close $path: $!\n";
    chmod 0644, $path;
    push @resolv_files, $path;
    my ($status, $out) = QQ::Proc::run_cmd([ 'mount', '--bind', $path, '/etc/resolv.conf' ],
                                           timeout => 10);
    die "mount --bind $path /etc/resolv.conf failed: $out\n"
        unless defined $status && $status == 0;
    return $path;
}

END {
    if (QQ::Proc::is_owner()) {
        unlink grep { m{/qq-resolv\.\d+\.\d+\.conf$} } @resolv_files;
    }
}

1;
