# The interop matrix's Ruby client (interop_matrix_test.cc): sends the text
# read from stdin (UTF-8) with net-smtp and AUTH PLAIN, its message written
# as the net-smtp documentation's example writes it (From, To, Subject, Date,
# Message-Id; no MIME headers). Usage: ruby clients.rb PORT USER PASSWORD.
# Prints one JSON object: the library's version and the server's reply to
# the message. Exits 77 (skipped) with the reason on stderr when net-smtp is
# missing. Bounds its own time with net-smtp's timeouts.
begin
  require 'net/smtp'
rescue LoadError => e
  warn "net-smtp not available (#{e.message}); scripts/deps installs ruby"
  exit 77
end
require 'json'
require 'time'

port, user, password = ARGV[0].to_i, ARGV[1], ARGV[2]
text = $stdin.binmode.read.gsub("\n", "\r\n")
message = "From: +393401234567@sms.example.com\r\nTo: +393331234567@sms.example.com\r\nSubject: prova\r\n" \
          "Date: #{Time.now.rfc2822}\r\nMessage-Id: <interop.#{Process.pid}@example.com>\r\n\r\n" + text
reply = begin
  smtp = Net::SMTP.new('127.0.0.1', port)
  smtp.open_timeout = 20
  smtp.read_timeout = 20
  smtp.start('localhost', user, password, :plain) do |s|
    s.send_message(message, '+393401234567@sms.example.com', '+393331234567@sms.example.com').string.strip
  end
rescue Net::SMTPError => e
  e.message.strip
end
puts JSON.generate({ 'version' => "net-smtp #{Net::SMTP::VERSION}, Ruby #{RUBY_VERSION}", 'reply' => reply })
