#!/usr/bin/perl
# A subscriber that can stop reading. Used by lib/server.mjs (stalledSubscriber).
#
# usage: stalled-reader.pl HOST PORT RCVBUF REQUEST
#
# Opens a TCP socket with SO_RCVBUF = RCVBUF set *before* connect (so the window the kernel
# advertises stays small), sends REQUEST, prints "connected <local port>" on stderr and then reads nothing from
# the socket until a line "read" arrives on stdin; "pause" stops reading again. Whatever is read
# is copied to stdout byte for byte. Exits 0 on EOF from the server, 2 on a read error (e.g. a
# reset), 0 when stdin closes (the test process went away). Only core Perl (perl-base) is used,
# because Node's net module cannot set SO_RCVBUF.
use strict;
use warnings;
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF sockaddr_in inet_aton);
$| = 1;

my ($host, $port, $rcvbuf, $req) = @ARGV;
die "usage: $0 HOST PORT RCVBUF REQUEST\n" unless defined $req;

socket(my $s, PF_INET, SOCK_STREAM, getprotobyname('tcp')) or die "socket: $!\n";
setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', $rcvbuf)) or die "setsockopt: $!\n";
connect($s, sockaddr_in($port, inet_aton($host))) or die "connect: $!\n";
binmode $s;
binmode STDOUT;

sub write_all {
    my ($fh, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($fh, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $!{EINTR};
            return 0;
        }
        $off += $n;
    }
    return 1;
}

write_all($s, $req) or die "write: $!\n";
my ($lport) = sockaddr_in(getsockname($s));
print STDERR "connected $lport\n";

my $reading = 0;
my $cmdbuf = '';
while (1) {
    my $rin = '';
    vec($rin, fileno(STDIN), 1) = 1;
    vec($rin, fileno($s), 1) = 1 if $reading;
    my $n = select(my $rout = $rin, undef, undef, undef);
    if ($n < 0) {
        next if $!{EINTR};
        die "select: $!\n";
    }
    if (vec($rout, fileno(STDIN), 1)) {
        my $r = sysread(STDIN, my $cmd, 4096);
        exit 0 unless $r;    # the test process went away
        $cmdbuf .= $cmd;
        while ($cmdbuf =~ s/^(.*)\n//) {
            if ($1 eq 'read') { $reading = 1 }
            elsif ($1 eq 'pause') { $reading = 0 }
        }
    }
    if ($reading && vec($rout, fileno($s), 1)) {
        my $r = sysread($s, my $data, 65536);
        if (!defined $r) {
            next if $!{EINTR};
            print STDERR "read error: $!\n";
            exit 2;
        }
        exit 0 if $r == 0;
        write_all(\*STDOUT, $data) or exit 0;
    }
}
