// The interop matrix (issue 13, "What it must show"): every mail client and
// library Debian ships sends the same UTF-8 text (accents, the euro sign, an
// emoji, two lines and a "-- " signature) through the gateway on loopback
// with AUTH, and the test checks the stored SMS text, its coding, segments
// and price. Each row's expectation comes from PROTOCOL.md 3, not from what
// the gateway does today: a client that writes header fields is e-mail mode
// (signature cut, on by default); one that sends the bare text (curl
// --upload-file, swaks --data of a file) is raw mode (the whole body is the
// text). Issue 13 item 4 has its rows too: PHPMailer's default CharSet
// (ISO-8859-1) over UTF-8 bytes is read as UTF-8, and real Latin bytes
// declared ISO-8859-1 / Windows-1252 stay Latin. Every row prints one summary
// line (client, version, reply, stored text, segments, price). A missing
// client skips with the reason, and fails under CI=true. The script clients
// are tests/integration/interop/; configs for msmtp and neomutt are written
// to the row's temp dir, and every client runs with HOME there. Child
// processes are the harness's; buffers are the test's own strings.
// INTEROP_VERBOSE=1 prints each client's transcript and the stored body.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <regex>

#include "harness.h"

namespace postino::test {
namespace {

const account_spec kAccount{"interop", "s3cret-pass", 1000, {}};  // the account defaults
const std::string kSender = "+393401234567@sms.example.com";
const std::string kRecipient = "+393331234567@sms.example.com";
constexpr auto kClientTimeout = std::chrono::seconds(20);

// "Ciao Giò, il caffè costa 2€ 😀" / "A domani", then the signature.
const std::string kText = "Ciao Gi\xC3\xB2, il caff\xC3\xA8 costa 2\xE2\x82\xAC \xF0\x9F\x98\x80\nA domani";
const std::string kSignature = "\n-- \nMario Rossi";
// The same without the emoji and (for ISO-8859-1) without the euro sign.
const std::string kLatinText = "Ciao Gi\xC3\xB2, il caff\xC3\xA8 costa 2 euro\nA domani";
const std::string kWindowsText = "Ciao Gi\xC3\xB2, il caff\xC3\xA8 costa 2\xE2\x82\xAC\nA domani";

// What one client run needs: the gateway's port, a temp dir for its files,
// and the text (UTF-8, a final LF as a text file has) in `text_file`.
struct client_env {
  std::string port;
  std::string dir;
  std::string text;
  std::string text_file;
};

struct client_run {
  std::string skipped;  // non-empty: the client is missing, and why
  command_result r;
  std::string version;
  std::string reply;    // the server's reply to the message, as the client saw it
};

// The first line of `program args...`'s output (its version banner).
std::string first_line(const std::vector<std::string>& argv) {
  const command_result r = run_command(argv, "", std::chrono::seconds(10));
  const std::string& text = r.out.empty() ? r.err : r.out;
  const std::string line = text.substr(0, text.find('\n'));
  return line.substr(0, line.find(" ("));  // curl's and s-nail's build details
}

// The last SMTP reply line with an enhanced status code in a transcript
// (msmtp --debug, s-nail -v, swaks, curl -v), without the client's prefix.
std::string last_reply_in(const std::string& transcript) {
  static const std::regex reply_line(R"(([245][0-9][0-9][ -][245]\.[0-9]{1,3}\.[0-9]{1,3} [^\r\n]*))");
  std::string last;
  for (auto it = std::sregex_iterator(transcript.begin(), transcript.end(), reply_line);
       it != std::sregex_iterator(); ++it) {
    const std::string line = (*it)[1].str();
    // Not the replies to AUTH, MAIL, RCPT or QUIT.
    if (line.rfind("235", 0) != 0 && line.rfind("250 2.1", 0) != 0 && line.rfind("221", 0) != 0) last = line;
  }
  return last;
}

// Runs argv with HOME (and the locale, UTF-8 as a user's terminal) set to the row's own.
command_result run_in(const client_env& env, std::vector<std::string> argv, const std::string& input = "") {
  argv.insert(argv.begin(), {"/usr/bin/env", "HOME=" + env.dir, "LC_ALL=C.UTF-8"});
  return run_command(argv, input, kClientTimeout);
}

client_run program_run(const client_env& env, const std::string& program, const std::vector<std::string>& version_argv,
                       const std::vector<std::string>& argv, const std::string& input = "") {
  client_run run;
  if (!have_program(program)) {
    run.skipped = program + " not installed (scripts/deps installs it)";
    return run;
  }
  run.version = first_line(version_argv);
  run.r = run_in(env, argv, input);
  run.reply = last_reply_in(run.r.out + run.r.err);
  return run;
}

// A script under tests/integration/interop/ run by `interpreter`; it prints
// {"version", "reply"} and exits 77 when its library is missing.
client_run script_run(const client_env& env, const std::string& interpreter, const std::string& script,
                      std::vector<std::string> args) {
  client_run run;
  if (!have_program(interpreter)) {
    run.skipped = interpreter + " not installed (scripts/deps installs it)";
    return run;
  }
  std::vector<std::string> argv{interpreter, source_path("tests/integration/interop/" + script)};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {env.port, kAccount.username, kAccount.password});
  run.r = run_in(env, argv, env.text);
  if (run.r.exit_code == 77) {
    run.skipped = run.r.err;
    return run;
  }
  const auto out = nlohmann::json::parse(run.r.out, nullptr, false);
  if (out.is_object()) {
    run.version = out.value("version", "");
    run.reply = out.value("reply", "");
  }
  return run;
}

std::string write_file(const client_env& env, const std::string& name, const std::string& content) {
  const std::string path = env.dir + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  return path;
}

// msmtp as sendmail: the user writes Subject and To, msmtp adds From and
// Date (add_missing_*_header, on by default), so the text has headers.
client_run msmtp(const client_env& env) {
  const std::string config = write_file(env, "msmtprc",
                                        "defaults\nauth plain\ntls off\nlogfile " + env.dir + "/msmtp.log\n"
                                        "account default\nhost 127.0.0.1\nport " + env.port + "\nfrom " +
                                            kSender + "\nuser " + kAccount.username + "\npassword " +
                                            kAccount.password + "\n");
  return program_run(env, "msmtp", {"msmtp", "--version"}, {"msmtp", "-C", config, "--debug", kRecipient},
                     "To: " + kRecipient + "\nSubject: prova\n\n" + env.text);
}

// s-nail (mailx) with its SMTP transport: writes MIME headers, charset from the locale.
client_run s_nail(const client_env& env) {
  return program_run(env, "s-nail", {"s-nail", "-V"},
                     {"s-nail", "-:/", "-vv", "-S", "v15-compat", "-S", "nosave", "-S", "sendcharsets=utf-8",
                      "-S", "from=" + kSender, "-S", "smtp-auth=plain", "-S",
                      "mta=smtp://" + kAccount.username + ":" + kAccount.password + "@127.0.0.1:" + env.port, "-s",
                      "prova", kRecipient},
                     env.text);
}

// neomutt in batch mode with its own SMTP client; its debug log holds the dialogue.
client_run neomutt(const client_env& env) {
  const std::string log = env.dir + "/neomutt.log";
  const std::string config = write_file(
      env, "neomuttrc",
      "set smtp_url=\"smtp://" + kAccount.username + "@127.0.0.1:" + env.port + "\"\nset smtp_pass=\"" +
          kAccount.password + "\"\nset smtp_authenticators=\"plain\"\nset ssl_starttls=no\nset ssl_force_tls=no\n"
          "set from=\"" + kSender + "\"\nset use_from=yes\nset charset=\"utf-8\"\nset send_charset=\"utf-8\"\n"
          "set folder=\"" + env.dir + "\"\nset record=\"\"\nset copy=no\n");
  client_run run = program_run(env, "neomutt", {"neomutt", "-v"},
                               {"neomutt", "-n", "-F", config, "-d", "2", "-l", log, "-s", "prova", kRecipient},
                               env.text);
  std::ifstream in(log + "0");  // neomutt appends the log's number
  if (!in) in.open(log);
  const std::string dialogue((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (run.reply.empty()) run.reply = last_reply_in(dialogue);
  return run;
}

// swaks reads a word with a leading '+' as an option ("Unknown option"), so
// its addresses are written in the 00 form.
std::vector<std::string> swaks_argv(const client_env& env) {
  return {"swaks", "--server", "127.0.0.1", "--port", env.port, "--auth", "PLAIN", "--auth-user", kAccount.username,
          "--auth-password", kAccount.password, "--from", "00393401234567@sms.example.com", "--to",
          "00393331234567@sms.example.com", "--timeout", "20"};
}

// swaks --body: swaks writes its default headers (Date, To, From, Subject, Message-Id, X-Mailer).
client_run swaks_body(const client_env& env) {
  std::vector<std::string> argv = swaks_argv(env);
  argv.insert(argv.end(), {"--header", "Subject: prova", "--body", env.text});
  return program_run(env, "swaks", {"swaks", "--version"}, argv);
}

// swaks --data of a plain text file: the file is the whole DATA, no headers.
client_run swaks_data(const client_env& env) {
  std::vector<std::string> argv = swaks_argv(env);
  argv.insert(argv.end(), {"--data", env.text_file});
  return program_run(env, "swaks", {"swaks", "--version"}, argv);
}

// curl --upload-file of a plain text file, the bulk script's form: raw mode.
client_run curl_upload(const client_env& env) {
  return program_run(env, "curl", {"curl", "--version"},
                     {"curl", "-sS", "-v", "--max-time", "20", "smtp://127.0.0.1:" + env.port, "--mail-from", kSender,
                      "--mail-rcpt", kRecipient, "--user", kAccount.username + ":" + kAccount.password,
                      "--upload-file", env.text_file});
}

struct matrix_row {
  std::string name;
  std::function<client_run(const client_env&)> client;
  std::string sent;      // the text the client is given (UTF-8)
  std::string stored;    // the SMS text PROTOCOL.md 3 makes of it
  std::uint8_t coding;   // 0x00 GSM 03.38, 0x08 UCS-2
  std::uint32_t segments;
  std::int64_t price;
  // What the stored body must contain (lower case) for the row to keep
  // testing its case, e.g. PHPMailer's ISO-8859-1 declaration; "" for none.
  std::string body_has = "";
};

std::ostream& operator<<(std::ostream& os, const matrix_row& row) { return os << row.name; }

std::function<client_run(const client_env&)> script(const std::string& interpreter, const std::string& file,
                                                    std::vector<std::string> args = {}) {
  return [=](const client_env& env) { return script_run(env, interpreter, file, args); };
}

// E-mail mode cuts the signature; raw mode keeps the whole body. The emoji
// makes it UCS-2; 39 (55 with the signature) UTF-16 units are one segment.
std::vector<matrix_row> matrix() {
  const std::string sent = kText + kSignature;
  const std::string email = kText;
  const std::string raw = kText + kSignature;
  return {
      {"msmtp", msmtp, sent, email, 0x08, 1, 1},
      {"s_nail", s_nail, sent, email, 0x08, 1, 1},
      {"neomutt", neomutt, sent, email, 0x08, 1, 1},
      {"swaks_body", swaks_body, sent, email, 0x08, 1, 1},
      {"swaks_data_raw", swaks_data, sent, raw, 0x08, 1, 1},
      {"curl_upload_raw", curl_upload, sent, raw, 0x08, 1, 1},
      {"smtplib", script("python3", "clients.py", {"smtplib"}), sent, email, 0x08, 1, 1},
      {"aiosmtplib", script("/usr/bin/python3", "clients.py", {"aiosmtplib"}), sent, email, 0x08, 1, 1},
      {"nodemailer", script("node", "clients.js"), sent, email, 0x08, 1, 1},
      {"perl_net_smtp", script("perl", "clients.pl"), sent, email, 0x08, 1, 1},
      {"ruby_net_smtp", script("ruby", "clients.rb"), sent, email, 0x08, 1, 1},
      // Issue 13 item 4: CharSet left at ISO-8859-1 over UTF-8 bytes.
      {"phpmailer_default_charset", script("php", "clients.php", {"default"}), sent, email, 0x08, 1, 1,
       "charset=iso-8859-1"},
      // The other direction: true Latin bytes stay Latin (GSM has ò and è;
      // the euro sign is a GSM extension).
      {"phpmailer_latin1", script("php", "clients.php", {"latin1"}), kLatinText + kSignature, kLatinText, 0x00, 1, 1,
       "charset=iso-8859-1"},
      {"smtplib_cp1252", script("python3", "clients.py", {"smtplib-cp1252"}), kWindowsText + kSignature,
       kWindowsText, 0x00, 1, 1, "charset=\"cp1252\""},
  };
}

// The stored text on one line, for the summary.
std::string one_line(std::string text) {
  for (std::size_t at = 0; (at = text.find('\n', at)) != std::string::npos; at += 2) text.replace(at, 1, "\\n");
  return text;
}

class interop_matrix : public ::testing::TestWithParam<matrix_row> {};

TEST_P(interop_matrix, stores_the_text_and_price) {
  const matrix_row& row = GetParam();
  gateway gw({kAccount});
  ASSERT_TRUE(gw.start()) << gw.last_log();
  temp_dir dir;
  client_env env{std::to_string(gw.smtp_port()), dir.path(), row.sent + "\n", dir.path() + "/sms.txt"};
  std::ofstream(env.text_file, std::ios::binary) << env.text;

  const auto started = std::chrono::steady_clock::now();
  const client_run run = row.client(env);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (!run.skipped.empty()) SKIP_OR_FAIL(row.name + ": " + run.skipped);
  EXPECT_FALSE(run.r.timed_out) << row.name << " did not finish in " << kClientTimeout.count() << " s";
  EXPECT_EQ(run.r.exit_code, 0) << run.r.out << run.r.err;
  EXPECT_EQ(run.reply.rfind("250 2.0.0 Message accepted for delivery to: +393331234567 queued as ", 0), 0u)
      << "reply: " << run.reply << "\n" << run.r.out << run.r.err;

  EXPECT_EQ(gw.stop(), 0) << gw.last_log();
  const auto messages = messages_in(read_journals(gw.data_dir()));
  ASSERT_EQ(messages.size(), 1u) << run.r.out << run.r.err;
  const message& m = messages[0].tx;
  if (std::getenv("INTEROP_VERBOSE")) std::cout << run.r.out << run.r.err << "\nBODY:\n" << m.body << "\n";
  std::cout << "interop | " << row.name << " | " << run.version << " | " << run.reply << " | from " << m.originator
            << " | " << one_line(m.sms_text)
            << " | coding 0x" << std::hex << int(m.data_coding) << std::dec << " | " << m.segments << " segment(s) | price "
            << m.price << " | " << took.count() << " ms\n";
  EXPECT_EQ(m.sms_text, row.stored) << "the body as stored:\n" << m.body;
  EXPECT_EQ(int(m.data_coding), int(row.coding));
  EXPECT_EQ(m.segments, row.segments);
  EXPECT_EQ(m.price, row.price);
  EXPECT_EQ(m.recipients, std::vector<std::string>{"+393331234567"});
  std::string body = m.body;
  std::transform(body.begin(), body.end(), body.begin(), [](unsigned char c) { return std::tolower(c); });
  EXPECT_NE(body.find(row.body_has), std::string::npos) << "the client no longer sends " << row.body_has << ":\n"
                                                        << m.body;
}

INSTANTIATE_TEST_SUITE_P(clients, interop_matrix, ::testing::ValuesIn(matrix()),
                         [](const ::testing::TestParamInfo<matrix_row>& info) { return info.param.name; });

}  // namespace
}  // namespace postino::test
