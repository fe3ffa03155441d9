// Message content end to end (issue 4, PROTOCOL.md section 3): messages built
// by real composers, Python's `email` package (content_mail.py) and
// nodemailer's MailComposer from npm (content_nodemailer.js), are sent with
// smtplib through the running gateway; after it stops, the journal must hold
// for each one the exact SMS text, its encoding, its segment count and the
// price debited (segments x each recipient's prefix price). A raw bulk text
// that looks like one header field stays raw; an MM4_forward.REQ is an MMS for
// an mms_enabled account and 554 5.6.1 for another. Files live in the test's
// temp dirs; nodemailer is installed into the build dir.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "harness.h"

namespace postino::test {
namespace {

constexpr const char* kMms = "+393401234567/TYPE=PLMN@mms.example.net";
const std::vector<std::string> kBoth = {"+393331234567", "+393471234567"};

// "mail": its own price 4 for +39333, the global 3 for +39347, else 2, so a
// message to kBoth costs 7 per segment. "subj" cuts signatures and keeps the
// subject. "plain" has every default (since issue 13 every account cuts
// signatures and quoted originals by default).
const std::vector<account_spec> kAccounts = {
    {"mail", "pw-mail", 10000, {"--max-segments", "5", "--unit-price", "2"}},
    {"subj", "pw-subj", 1000, {"--subject-prefix", "yes", "--strip-signature", "yes"}},
    {"mms", "pw-mms", 1000, {"--mms-enabled", "yes", "--mms-price", "5"}},
    {"plain", "pw-plain", 1000, {}},
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// What the gateway stores for a text: bare LF and bare CR read as line
// breaks (PROTOCOL.md 3, "normalize"); nodemailer's quoted-printable keeps the
// text's own LF.
std::string crlf_normalized(const std::string& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n') {
      out += "\r\n";
      ++i;
    } else if (in[i] == '\r' || in[i] == '\n') {
      out += "\r\n";
    } else {
      out += in[i];
    }
  }
  return out;
}

struct reply {
  int code = 0;
  std::string text;
};

struct expected_sms {
  std::string kind;        // file <kind>.eml; also the originator
  std::string user;
  std::vector<std::string> recipients;
  std::string text;
  std::uint32_t segments;
  std::uint8_t coding;
  credit_units price;
};

class content_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("python3")) GTEST_SKIP() << "python3 not installed";
    gw_ = std::make_unique<gateway>(kAccounts);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"price", "set", "+39347", "3"},
          std::vector<std::string>{"price", "set", "--account", "mail", "+39333", "4"}}) {
      auto r = gw_->ctl(args);
      ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    }
    ASSERT_TRUE(gw_->start()) << gw_->last_log();
    auto r = python({"compose", mail_.path()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  command_result python(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"python3", source_path("tests/integration/content_mail.py")};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, "", std::chrono::seconds(120));
  }

  std::string file(const std::string& kind) const { return mail_.path() + "/" + kind + ".eml"; }

  reply send(const std::string& user, const std::string& from, const std::string& kind,
             const std::vector<std::string>& recipients) {
    const std::string password = "pw-" + user;
    std::vector<std::string> args = {"send", std::to_string(gw_->smtp_port()), user, password, from, file(kind)};
    args.insert(args.end(), recipients.begin(), recipients.end());
    auto r = python(args);
    std::smatch m;
    reply out;
    if (r.exit_code == 0 && std::regex_search(r.out, m, std::regex("\"code\": ([0-9]+), \"msg\": \"(.*)\"\\}"))) {
      out.code = std::stoi(m[1]);
      out.text = m[2];
    } else {
      ADD_FAILURE() << kind << ": " << r.out << r.err;
    }
    return out;
  }

  // Sends every case, stops the gateway and checks the journal's records.
  void send_and_check(const std::vector<expected_sms>& cases) {
    for (const auto& c : cases) {
      reply r = send(c.user, c.kind, c.kind, c.recipients);
      EXPECT_EQ(r.code, 250) << c.kind << ": " << r.text;
      EXPECT_EQ(r.text.rfind("2.0.0 Message accepted for delivery to: ", 0), 0u) << c.kind << ": " << r.text;
    }
    ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
    std::map<std::string, message> by_originator;
    for (const auto& rec : messages_in(read_journals(gw_->data_dir()))) by_originator[rec.tx.originator] = rec.tx;
    for (const auto& c : cases) {
      SCOPED_TRACE(c.kind);
      auto it = by_originator.find(c.kind);
      ASSERT_NE(it, by_originator.end()) << "no journal record";
      const message& tx = it->second;
      EXPECT_EQ(tx.sms_text, c.text);
      EXPECT_EQ(tx.segments, c.segments);
      EXPECT_EQ(tx.data_coding, c.coding);
      EXPECT_EQ(tx.price, c.price);
      EXPECT_EQ(tx.recipients, c.recipients);
      EXPECT_FALSE(tx.is_mms);
      // The body is kept as it came, the text beside it.
      std::string sent = crlf_normalized(read_file(file(c.kind)));
      if (!sent.ends_with("\r\n")) sent += "\r\n";  // smtplib ends the text with CRLF
      EXPECT_EQ(tx.body, sent);
    }
  }

  temp_dir mail_;
  std::unique_ptr<gateway> gw_;
};

TEST_F(content_test, python_email_messages_become_the_exact_sms) {
  const std::string nota = "Nota: domani gli uffici resteranno chiusi per inventario.";
  std::ofstream(file("NOTA"), std::ios::binary) << nota << "\r\n";
  send_and_check({
      {"PLAIN", "mail", kBoth, "Il tuo ordine 1234 \xC3\xA8 pronto per il ritiro.\nGrazie!", 1, 0x00, 7},
      {"ALT", "mail", kBoth, "Offerta: 2x1 su tutte le pizze fino a domenica.", 1, 0x00, 7},
      // 171 characters, the euro sign two septets: 172, two segments.
      {"QP", "mail", kBoth,
       "Gentile cliente, la fattura di marzo \xC3\xA8 disponibile nell'area riservata: importo 45,90 \xE2\x82\xAC "
       "da pagare entro il 30 aprile. Grazie per aver scelto i nostri servizi di fornitura.",
       2, 0x00, 14},
      {"BASE64", "mail", kBoth, "Codice di accesso: 493021. Non condividerlo con nessuno.", 1, 0x00, 7},
      {"LATIN1", "mail", kBoth, "Caff\xC3\xA8 e cornetto a 2 euro, perch\xC3\xA9 s\xC3\xAC.", 1, 0x00, 7},
      // 96 characters, two of them outside the BMP: 98 UTF-16 units, two UCS-2 segments.
      {"EMOJI", "mail", kBoth,
       "Buon compleanno Giulia! \xF0\x9F\x8E\x89\xF0\x9F\x8E\x82 Ci vediamo stasera alle 20 al solito posto, "
       "porta anche Marco e Sara.",
       2, 0x08, 14},
      // RFC 2047 subject kept as the first line, "-- " signature cut; the
      // hot beverage sign is not GSM. Unit price 1 (no rule for +39333).
      {"SUBJECT", "subj", {"+393331234567"},
       "Promemoria: caff\xC3\xA8 \xE2\x98\x95 alle 10\nCi vediamo al bar.", 1, 0x08, 1},
      // Thunderbird's HTML signature (moz-signature "-- <br>") is cut by
      // default since issue 13 (it was kept, "--\nAnna Bianchi", before).
      {"TBIRD", "mail", kBoth,
       "Ciao Luca,\nla riunione \xC3\xA8 spostata alle 15:30, in sala Verdi (https://meet.example.com/r/42).",
       1, 0x00, 7},
      // An inline image from an account without MMS: the mail's text.
      {"RELATED", "mail", kBoth, "Ecco il nuovo volantino:\nOfferte valide fino al 31.", 1, 0x00, 7},
      // A bulk text whose first line looks like a header field stays raw;
      // "plain" pays the global 3 for +39347.
      {"NOTA", "plain", {"+393471234567"}, nota, 1, 0x00, 3},
  });
}

TEST_F(content_test, nodemailer_messages_become_the_exact_sms) {
  if (!have_program("node") || !have_program("npm")) GTEST_SKIP() << "node or npm not installed";
  // nodemailer comes from the npm registry, into the build dir, once.
  const std::string prefix = std::string(POSTINO_BINARY_DIR) + "/npm-content";
  std::filesystem::create_directories(prefix);
  if (!std::filesystem::exists(prefix + "/node_modules/nodemailer/package.json")) {
    auto r = run_command({"npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", prefix, "nodemailer"},
                         "", std::chrono::seconds(300));
    if (r.exit_code != 0) {
      auto ping = run_command({"npm", "ping"}, "", std::chrono::seconds(60));
      if (ping.exit_code != 0)
        GTEST_SKIP() << "npm cannot reach its registry to install nodemailer: " << ping.err.substr(0, 300);
      FAIL() << "npm install nodemailer failed although the registry answers: " << r.out << r.err;
    }
  }
  auto built = run_command({"node", source_path("tests/integration/content_nodemailer.js"), prefix, mail_.path()}, "",
                           std::chrono::seconds(60));
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  send_and_check({
      // multipart/alternative, quoted-printable UTF-8: the plain part.
      {"NMALT", "mail", kBoth, "Il pacco \xC3\xA8 in consegna oggi tra le 14 e le 18.", 1, 0x00, 7},
      // Soft line breaks undone; 218 characters, two euro signs: 220 septets.
      {"NMLONG", "mail", kBoth,
       "Gentile cliente,\nil saldo del suo conto \xC3\xA8 di 1.250,00 \xE2\x82\xAC alla data odierna. Le ricordiamo "
       "che la prossima rata di 320,00 \xE2\x82\xAC scade il 15 del mese. Per informazioni risponda a questo "
       "messaggio o chiami il servizio clienti.",
       2, 0x00, 14},
  });
}

TEST_F(content_test, mm4_forward_is_an_mms_only_for_an_mms_account) {
  reply refused = send("plain", kMms, "MM4", {"+393331234567/TYPE=PLMN@mms.example.net"});
  EXPECT_EQ(refused.code, 554);
  EXPECT_EQ(refused.text, "5.6.1 MMS not enabled for this account");
  reply accepted = send("mms", kMms, "MM4", {"+393331234567/TYPE=PLMN@mms.example.net"});
  EXPECT_EQ(accepted.code, 250);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(accepted.text, m,
                                std::regex("^2\\.0\\.0 Message accepted for delivery to: \\+393331234567 queued as "
                                           "([0-9A-F]{16})$")))
      << accepted.text;
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  EXPECT_EQ(journal_queue_ids(gw_->data_dir()), std::vector<std::string>{m[1].str()});
  auto messages = messages_in(read_journals(gw_->data_dir()));
  ASSERT_EQ(messages.size(), 1u);
  const message& tx = messages[0].tx;
  EXPECT_TRUE(tx.is_mms);
  EXPECT_TRUE(tx.mm4_ack_owed) << "X-Mms-Ack-Request: Yes: an MM4_forward.RES is owed";
  EXPECT_EQ(tx.mm4_message_id, "20240101-0001@mms.example.net") << "stored without the msg-id's <>";
  EXPECT_EQ(tx.mm4_transaction_id, "T-20240101-0001");
  EXPECT_EQ(tx.mm4_originator_system, "system-user@mms.example.net");
  EXPECT_EQ(tx.originator, "+393401234567");
  EXPECT_EQ(tx.sms_text, "Auguri da Roma!");
  EXPECT_EQ(tx.segments, 1u);
  EXPECT_EQ(tx.price, 5) << "the MMS price, per recipient";
  // The parts are kept whole: the body is what was sent.
  EXPECT_EQ(tx.body, read_file(file("MM4")));
  EXPECT_NE(tx.body.find("Content-Type: image/jpeg"), std::string::npos);

  // The message index (the checkpoint's message table, written at start-up
  // from the replayed journal) finds our queue id from the MM4 message id.
  ASSERT_TRUE(gw_->start()) << gw_->last_log();
  ASSERT_EQ(gw_->stop(), 0) << gw_->last_log();
  auto q = run_command({"python3", "-c",
                        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); print(db.execute("
                        "'SELECT queue_id FROM checkpoint_message WHERE mm4_message_id = ?', (sys.argv[2],))"
                        ".fetchone()[0])",
                        gw_->database(), "20240101-0001@mms.example.net"});
  EXPECT_EQ(q.out, m[1].str() + "\n") << q.err;
}

}  // namespace
}  // namespace postino::test
