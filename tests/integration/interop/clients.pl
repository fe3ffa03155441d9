#!/usr/bin/perl
# The interop matrix's Perl client (interop_matrix_test.cc): sends the text
# read from stdin (UTF-8 bytes) with Net::SMTP and AUTH, writing the header
# lines itself as a Perl script does (UTF-8, 8bit). Usage: clients.pl PORT
# USER PASSWORD. Prints one JSON object: the module's version and the
# server's reply to the message. Exits 77 (skipped) with the reason on stderr
# when Net::SMTP or Authen::SASL (which its auth() needs) is missing. Bounds
# its own time with Net::SMTP's Timeout.
use strict;
use warnings;

my ($port, $user, $password) = @ARGV;
for my $module ('Net::SMTP', 'Authen::SASL') {
  unless (eval "require $module; 1") {
    (my $why = $@) =~ s/\s+$//;
    print STDERR "$module not installed ($why); scripts/deps installs perl and libauthen-sasl-perl\n";
    exit 77;
  }
}
binmode STDIN;
my $text = do { local $/; <STDIN> };
$text =~ s/\n/\r\n/g;  # the wire's line ends; datasend() would also convert them

sub reply { my ($smtp) = @_; return $smtp->code . ' ' . join('', $smtp->message) =~ s/\s+$//r; }

my $smtp = Net::SMTP->new('127.0.0.1', Port => $port, Timeout => 20) or die "connect: $@\n";
my $out;
if (!$smtp->auth($user, $password)) {
  $out = reply($smtp);
} elsif (!$smtp->mail('+393401234567@sms.example.com') || !$smtp->to('+393331234567@sms.example.com')) {
  $out = reply($smtp);
} else {
  $smtp->data();
  $smtp->datasend("From: +393401234567\@sms.example.com\r\n", "To: +393331234567\@sms.example.com\r\n",
                  "Subject: prova\r\n", "MIME-Version: 1.0\r\n", "Content-Type: text/plain; charset=UTF-8\r\n",
                  "Content-Transfer-Encoding: 8bit\r\n", "\r\n", $text);
  $smtp->dataend();
  $out = reply($smtp);
}
$smtp->quit();
$out =~ s/(["\\])/\\$1/g;
$out =~ s/[\r\n]+/ /g;
print "{\"version\": \"Net::SMTP $Net::SMTP::VERSION, Perl $^V\", \"reply\": \"$out\"}\n";
