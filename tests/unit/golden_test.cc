// Runs the hand-written golden transcripts (tests/golden/*.in -> *.ref, the
// format is in tests/golden/README.md) through the pure SMTP session, at every
// fragment size from one byte to the whole input, with a fake owner that
// resolves the session's requests. The input bytes are owned by the test; the
// session only reads them during feed().
#include <gtest/gtest.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "postino/credit.h"
#include "postino/mime.h"
#include "postino/smtp.h"

namespace postino::smtp {
namespace {

namespace fs = std::filesystem;

struct fake_account {
  account_settings settings;
  std::string password;
  credit_units credit = 0;
  std::vector<credit::ip_network> relay_networks;  // relay_networks=CIDR,...
  std::vector<std::string> relay_domains;          // relay_domains=a,b
};

struct segment {
  std::string bytes;
  std::string event;  // the positional directive applied after the bytes
};

// `#! connection_limit peer|account`: the owner's connection gate refuses
// that admission (the other is uncounted).
struct refusing_gate final : connection_gate {
  bool refuse_peer = false, refuse_account = false;
  admission admit_peer(std::string_view) override { return refuse_peer ? admission::refused : admission::uncounted; }
  void leave_peer(std::string_view) override {}
  admission admit_account(account_id) override { return refuse_account ? admission::refused : admission::uncounted; }
  void leave_account(account_id) override {}
};

struct golden_case {
  std::string name;
  session_config config;
  // `#! body_memory LIMIT HELD`: the process-wide budget, HELD bytes taken by others.
  std::shared_ptr<body_memory_budget> body_memory;
  std::shared_ptr<refusing_gate> gate;
  connection_info conn{1, "192.0.2.1"};
  std::vector<fake_account> accounts;
  std::string preauth_user;
  bool whole_only = false;
  bool show_content = false;
  std::vector<segment> segments;
  std::vector<std::string> expected;
  std::size_t total_bytes = 0;
};

std::vector<std::string> split_words(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string underscores_to_spaces(std::string s) {
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Client-line escapes: \r \n \t \0 \\ \xHH and {{N*text}}.
std::string unescape(std::string_view s, const std::string& where) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s.substr(i, 2) == "{{") {
      const std::size_t star = s.find('*', i);
      const std::size_t close = s.find("}}", i);
      if (star == std::string_view::npos || close == std::string_view::npos || star > close) {
        ADD_FAILURE() << where << ": bad {{N*text}}";
        return out;
      }
      std::size_t n = 0;
      std::from_chars(s.data() + i + 2, s.data() + star, n);
      const std::string text = unescape(s.substr(star + 1, close - star - 1), where);
      for (std::size_t k = 0; k < n; ++k) out += text;
      i = close + 1;
      continue;
    }
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out.push_back(s[i]);
      continue;
    }
    const char e = s[++i];
    switch (e) {
      case 'r': out.push_back('\r'); break;
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case '0': out.push_back('\0'); break;
      case '\\': out.push_back('\\'); break;
      case 'x':
        if (i + 2 < s.size() + 0 && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
          out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
          i += 2;
          break;
        }
        [[fallthrough]];
      default: ADD_FAILURE() << where << ": bad escape \\" << e;
    }
  }
  return out;
}

// Expands only {{N*text}} (reference lines keep their backslashes, which
// are the transcript's own escapes).
std::string expand_repeats(const std::string& s) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t open = s.find("{{", i);
    const std::size_t star = open == std::string::npos ? open : s.find('*', open);
    const std::size_t close = open == std::string::npos ? open : s.find("}}", open);
    if (open == std::string::npos || star == std::string::npos || close == std::string::npos || star > close) {
      out += s.substr(i);
      break;
    }
    out += s.substr(i, open - i);
    std::size_t n = 0;
    std::from_chars(s.data() + open + 2, s.data() + star, n);
    for (std::size_t k = 0; k < n; ++k) out += s.substr(star + 1, close - star - 1);
    i = close + 2;
  }
  return out;
}

// The transcript's way of writing owner-visible strings.
std::string escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\0': out += "\\0"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02X", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

std::uint64_t to_u64(const std::string& s) { return std::stoull(s); }

fake_account parse_account(const std::vector<std::string>& w, const std::string& where) {
  fake_account a;
  if (w.size() < 4) {
    ADD_FAILURE() << where << ": #! account USER PASS key=value...";
    return a;
  }
  a.settings.username = w[2];
  a.password = w[3];
  for (std::size_t i = 4; i < w.size(); ++i) {
    const auto eq = w[i].find('=');
    const std::string key = w[i].substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : w[i].substr(eq + 1);
    if (key == "id") a.settings.id = to_u64(value);
    else if (key == "credit") a.credit = static_cast<credit_units>(std::stoll(value));
    else if (key == "status") a.settings.status = value == "SUSPENDED" ? account_status::suspended : account_status::active;
    else if (key == "max_recipients") a.settings.max_recipients = static_cast<std::uint32_t>(to_u64(value));
    else if (key == "default_originator") a.settings.default_originator = underscores_to_spaces(value);
    else if (key == "country") a.settings.default_country = value;
    else if (key == "price") a.settings.unit_price = static_cast<credit_units>(std::stoll(value));
    else if (key == "max_segments") a.settings.max_segments = static_cast<std::uint32_t>(to_u64(value));
    else if (key == "content_mode") a.settings.content = parse_content_mode(value).value_or(content_mode::automatic);
    else if (key == "subject_prefix") a.settings.subject_prefix = value == "yes";
    else if (key == "strip_signature") a.settings.strip_signature = value == "yes";
    else if (key == "strip_quoted_reply") a.settings.strip_quoted_reply = value == "yes";
    else if (key == "subject_as_text") a.settings.subject_as_text = value == "yes";
    else if (key == "transliterate") a.settings.transliterate = value == "yes";
    else if (key == "mms") a.settings.mms_enabled = value == "yes";
    else if (key == "mms_price") a.settings.mms_price = static_cast<credit_units>(std::stoll(value));
    else if (key == "max_mms_bytes") a.settings.max_mms_bytes = to_u64(value);
    else if (key == "rate") a.settings.max_messages_per_second = static_cast<std::uint32_t>(to_u64(value));
    else if (key == "prices" || key == "global_prices") {
      // prefix:price,prefix:price in precedence order (as the store builds it).
      auto table = a.settings.prices ? *a.settings.prices : price_table{};
      std::istringstream in(value);
      for (std::string one; std::getline(in, one, ',');) {
        const auto colon = one.find(':');
        table.push_back({one.substr(0, colon), std::stoll(one.substr(colon + 1)), key == "global_prices"});
      }
      a.settings.prices = std::make_shared<const price_table>(std::move(table));
    } else if (key == "relay_networks") {
      std::istringstream in(value);
      std::string why;
      for (std::string one; std::getline(in, one, ',');)
        if (auto n = credit::parse_network(one, why)) a.relay_networks.push_back(*n);
        else ADD_FAILURE() << where << ": " << why;
    } else if (key == "relay_domains") {
      std::istringstream in(value);
      for (std::string one; std::getline(in, one, ',');) a.relay_domains.push_back(one);
    } else if (key == "allowed") {
      std::istringstream in(value);
      for (std::string one; std::getline(in, one, ',');) a.settings.allowed_originators.push_back(underscores_to_spaces(one));
    } else ADD_FAILURE() << where << ": unknown account key " << key;
  }
  return a;
}

golden_case load(const fs::path& in_path) {
  golden_case gc;
  gc.name = in_path.stem().string();
  gc.config.hostname = "mx.postino.test";
  std::ifstream in(in_path, std::ios::binary);
  std::string line;
  int number = 0;
  segment current;
  bool any_bytes = false;
  while (std::getline(in, line)) {
    ++number;
    const std::string where = in_path.filename().string() + ":" + std::to_string(number);
    if (line.rfind("#!", 0) == 0) {
      const auto w = split_words(line);
      const std::string d = w.size() > 1 ? w[1] : "";
      const bool setup = d == "hostname" || d == "max_size" || d == "tls" || d == "bare_newline" ||
                         d == "max_errors" || d == "max_auth_failures" || d == "connection" || d == "account" ||
                         d == "preauth" || d == "whole" || d == "show_content" || d == "mime_limits" ||
                         d == "body_memory" || d == "connection_limit" || d == "relay";
      if (setup) {
        if (any_bytes) ADD_FAILURE() << where << ": set-up directive after client bytes";
        if (d == "hostname") gc.config.hostname = w.at(2);
        else if (d == "max_size") gc.config.max_message_size = to_u64(w.at(2));
        else if (d == "tls") {
          // "#! tls [implicit] [require_auth]": STARTTLS offered, or TLS from the start.
          const bool implicit = std::find(w.begin(), w.end(), "implicit") != w.end();
          gc.config.tls_available = !implicit;
          gc.config.implicit_tls = implicit;
          gc.config.require_tls_for_auth = std::find(w.begin(), w.end(), "require_auth") != w.end();
        }
        else if (d == "bare_newline") gc.config.bare_newline = w.at(2) == "reject" ? bare_newline_policy::reject : bare_newline_policy::normalize;
        else if (d == "max_errors") gc.config.max_errors = static_cast<unsigned>(to_u64(w.at(2)));
        else if (d == "max_auth_failures") gc.config.max_auth_failures = static_cast<unsigned>(to_u64(w.at(2)));
        else if (d == "connection") gc.conn = {to_u64(w.at(2)), w.at(3)};
        else if (d == "account") gc.accounts.push_back(parse_account(w, where));
        else if (d == "preauth") gc.preauth_user = w.at(2);
        else if (d == "whole") gc.whole_only = true;
        else if (d == "relay") gc.config.relay = true;
        else if (d == "show_content") gc.show_content = true;
        else if (d == "mime_limits")
          gc.config.mime_limits = {static_cast<std::uint32_t>(to_u64(w.at(2))), static_cast<std::uint32_t>(to_u64(w.at(3)))};
        else if (d == "body_memory") {
          gc.body_memory = std::make_shared<body_memory_budget>();
          gc.body_memory->limit = static_cast<std::int64_t>(to_u64(w.at(2)));
          gc.body_memory->reserved = static_cast<std::int64_t>(to_u64(w.at(3)));
          gc.config.body_memory = gc.body_memory.get();
        } else if (d == "connection_limit") {
          if (!gc.gate) gc.gate = std::make_shared<refusing_gate>();
          (w.at(2) == "peer" ? gc.gate->refuse_peer : gc.gate->refuse_account) = true;
          gc.config.connections = gc.gate.get();
        }
      } else if (d == "pause" || d == "timeout" || d == "shutdown" || d == "topup" || d == "next_auth" ||
                 d == "next_commit" || d == "next_rate") {
        current.event = line.substr(3);
        gc.total_bytes += current.bytes.size();
        gc.segments.push_back(std::move(current));
        current = segment{};
      } else {
        ADD_FAILURE() << where << ": unknown directive " << d;
      }
      continue;
    }
    if (line == "#" || line.rfind("# ", 0) == 0) continue;
    any_bytes = true;
    if (!line.empty() && line.front() == '~') {
      current.bytes += unescape(std::string_view(line).substr(1), where);
    } else {
      current.bytes += unescape(line, where);
      current.bytes += "\r\n";
    }
  }
  gc.total_bytes += current.bytes.size();
  gc.segments.push_back(std::move(current));

  fs::path ref_path = in_path;
  ref_path.replace_extension(".ref");
  std::ifstream ref(ref_path, std::ios::binary);
  if (!ref) ADD_FAILURE() << "missing " << ref_path;
  while (std::getline(ref, line)) {
    if (line.empty() || line.front() == '#') continue;
    gc.expected.push_back(expand_repeats(line));
  }
  return gc;
}

// The owner side: a ledger of fake accounts that resolves requests for real
// (password match, credit balance, debit on commit).
class fake_owner {
 public:
  fake_owner(std::vector<fake_account> accounts, bool show_content)
      : accounts_(std::move(accounts)), show_content_(show_content) {}

  fake_account* find_user(std::string_view user) {
    for (auto& a : accounts_)
      if (a.settings.username == user) return &a;
    return nullptr;
  }
  fake_account* find_id(account_id id) {
    for (auto& a : accounts_)
      if (a.settings.id == id) return &a;
    return nullptr;
  }

  void event(const std::string& text) {
    const auto w = split_words(text);
    if (w.empty()) return;
    if (w[0] == "topup") {
      if (auto* a = find_user(w.at(1))) a->credit += std::stoll(w.at(2));
      else ADD_FAILURE() << "topup: no account " << w.at(1);
    } else if (w[0] == "next_auth") {
      next_auth_ = w.size() > 1 && w[1] == "busy" ? auth_result::outcome::busy : auth_result::outcome::temporary_failure;
      temporary_auth_ = true;
    } else if (w[0] == "next_commit") {
      local_error_ = true;
    } else if (w[0] == "next_rate") {
      ++rate_refusals_;
    }
  }

  // Resolves the session's pending request and writes it to the transcript.
  void resolve(session& s, std::vector<std::string>& t) {
    switch (s.pending()) {
      case request_kind::authenticate: {
        const auto& req = s.pending_auth();
        t.push_back("= auth " + escape(req.username) + " " + escape(req.password));
        auth_result r{};
        fake_account* a = find_user(req.username);
        if (temporary_auth_) {
          temporary_auth_ = false;
          r.result = next_auth_;
        } else if (a != nullptr && a->password == req.password) {
          r.result = auth_result::outcome::ok;
          r.account = a->settings;
          r.available = a->credit;
        } else {
          r.result = auth_result::outcome::invalid;
        }
        s.resolve(r);
        break;
      }
      case request_kind::credit_check: {
        const auto& req = s.pending_credit_check();
        t.push_back("= credit_check " + std::to_string(req.account) + " " + std::to_string(req.amount));
        fake_account* a = find_id(req.account);
        s.resolve(credit_check_result{a != nullptr ? a->credit : 0});
        break;
      }
      case request_kind::rate_check: {
        const auto& req = s.pending_rate_check();
        t.push_back("= rate_check " + std::to_string(req.account) + " " + std::to_string(req.per_second));
        const bool refused = rate_refusals_ > 0;
        if (refused) --rate_refusals_;
        s.resolve(rate_check_result{!refused});
        break;
      }
      case request_kind::commit: {
        transaction& tx = s.pending_commit();
        std::string to;
        for (const auto& r : tx.recipients) to += (to.empty() ? "" : ",") + r;
        const char* kind = tx.originator_type == originator_kind::alphanumeric ? "alphanumeric"
                           : tx.originator_type == originator_kind::numeric    ? "numeric"
                                                                               : "numeric_long";
        t.push_back("= commit account=" + std::to_string(tx.account) + " from=" + escape(tx.originator) +
                    " kind=" + kind + " to=" + to + " price=" + std::to_string(tx.price) + " body=\"" +
                    escape(tx.body) + "\"");
        if (show_content_) {
          char coding[8];
          std::snprintf(coding, sizeof coding, "%02X", tx.data_coding);
          t.push_back(std::string("= content segments=") + std::to_string(tx.segments) + " coding=" + coding +
                      " mms=" + (tx.is_mms ? "yes" : "no") + " ack=" + (tx.mm4_ack_owed ? "yes" : "no") +
                      " mm4id=\"" + escape(tx.mm4_message_id) + "\" text=\"" + escape(tx.sms_text) + "\"");
        }
        commit_result r{};
        char id[16];  // r.queue_id views it until resolve returns
        fake_account* a = find_id(tx.account);
        const credit_units credit = a != nullptr ? a->credit : 0;
        if (local_error_) {
          local_error_ = false;
          r.result = commit_result::outcome::local_error;
        } else if (tx.price > credit) {
          r.result = commit_result::outcome::insufficient_credit;
          r.need = tx.price;
          r.available = credit;
        } else {
          a->credit -= tx.price;
          std::snprintf(id, sizeof id, "%08X", ++queue_ids_);
          r.result = commit_result::outcome::accepted;
          r.queue_id = id;
        }
        // The owner takes the body, as the real one does for the journal.
        std::string taken = std::move(tx.body);
        s.resolve(r);
        break;
      }
      case request_kind::content: {
        const auto& req = s.pending_content();
        s.resolve(mime::read_content(*req.body, *req.account, req.limits));
        break;
      }
      case request_kind::relay_lookup: {
        const auto& req = s.pending_relay();
        t.push_back("= relay " + std::string(req.client_ip) + " " + escape(req.sender_domain));
        s.resolve(relay_result{relay_account(req.client_ip, req.sender_domain)});
        break;
      }
      case request_kind::none: break;
    }
  }

 private:
  // The first account whose relay networks and domains both match.
  const account_settings* relay_account(std::string_view ip, std::string_view domain) const {
    for (const auto& a : accounts_) {
      const bool domain_ok = std::find(a.relay_domains.begin(), a.relay_domains.end(), domain) != a.relay_domains.end();
      for (const auto& n : a.relay_networks)
        if (domain_ok && credit::network_contains(n, ip)) return &a.settings;
    }
    return nullptr;
  }

  std::vector<fake_account> accounts_;
  bool show_content_ = false;
  auth_result::outcome next_auth_ = auth_result::outcome::temporary_failure;
  bool temporary_auth_ = false;
  bool local_error_ = false;
  unsigned rate_refusals_ = 0;  // the next N rate checks are refused
  unsigned queue_ids_ = 0;
};

void drain(session& s, std::vector<std::string>& t) {
  std::string& out = s.output();
  std::size_t pos = 0;
  while (pos < out.size()) {
    const std::size_t end = out.find("\r\n", pos);
    if (end == std::string::npos) {
      t.push_back("!! output without CRLF: " + escape(out.substr(pos)));
      break;
    }
    const std::string line = out.substr(pos, end - pos);
    if (line.find('\n') != std::string::npos || line.find('\r') != std::string::npos)
      t.push_back("!! bare CR or LF in output: " + escape(line));
    else
      t.push_back(line);
    pos = end + 2;
  }
  out.clear();
}

std::vector<std::string> run(const golden_case& gc, std::size_t fragment) {
  std::vector<std::string> t;
  fake_owner owner(gc.accounts, gc.show_content);
  const account_settings* pre = nullptr;
  if (!gc.preauth_user.empty()) {
    if (auto* a = owner.find_user(gc.preauth_user)) pre = &a->settings;
    else ADD_FAILURE() << gc.name << ": preauth account missing";
  }
  session s(gc.config, gc.conn, pre);
  s.start();
  drain(s, t);
  for (const auto& seg : gc.segments) {
    const std::size_t n = gc.whole_only ? std::max<std::size_t>(seg.bytes.size(), 1) : fragment;
    for (std::size_t pos = 0; pos < seg.bytes.size() && !s.closing(); pos += n) {
      const std::string_view chunk = std::string_view(seg.bytes).substr(pos, n);
      std::size_t used = 0;
      for (;;) {
        const std::size_t n = s.feed(chunk.substr(used));
        used += n;
        drain(s, t);
        if (s.pending() != request_kind::none) {
          owner.resolve(s, t);
          drain(s, t);
          continue;
        }
        if (s.closing() || used == chunk.size()) break;
        // A feed stops once a batch's replies reach max_pending_output; the
        // drain above took them, so the next feed goes on.
        if (n == 0) {
          t.push_back("!! feed() stopped with nothing pending");
          return t;
        }
      }
    }
    const auto w = split_words(seg.event);
    if (!w.empty()) {
      if (w[0] == "timeout") s.on_timeout();
      else if (w[0] == "shutdown") s.on_shutdown();
      else owner.event(seg.event);
      drain(s, t);
      while (s.pending() != request_kind::none) {
        owner.resolve(s, t);
        drain(s, t);
      }
    }
  }
  if (s.closing()) t.push_back("= closed");
  return t;
}

bool line_matches(const std::string& expected, const std::string& got) {
  constexpr std::string_view glob = "{*}";
  if (expected.size() >= glob.size() && expected.compare(expected.size() - glob.size(), glob.size(), glob) == 0)
    return got.rfind(expected.substr(0, expected.size() - glob.size()), 0) == 0;
  return expected == got;
}

// Empty when the transcript matches, else a description of the first difference.
std::string compare(const std::vector<std::string>& expected, const std::vector<std::string>& got) {
  const std::size_t n = std::max(expected.size(), got.size());
  for (std::size_t i = 0; i < n; ++i) {
    const std::string e = i < expected.size() ? expected[i] : "<nothing>";
    const std::string g = i < got.size() ? got[i] : "<nothing>";
    if (i >= expected.size() || i >= got.size() || !line_matches(e, g)) {
      std::ostringstream msg;
      msg << "line " << i + 1 << "\n  expected: " << e << "\n  got:      " << g << "\n  full transcript:\n";
      for (const auto& l : got) msg << "    " << l << "\n";
      return msg.str();
    }
  }
  return {};
}

std::vector<fs::path> golden_inputs() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(POSTINO_SOURCE_DIR) / "tests" / "golden"))
    if (entry.path().extension() == ".in") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

class golden_test : public ::testing::TestWithParam<fs::path> {};

TEST_P(golden_test, every_fragment_size_matches_the_reference) {
  const golden_case gc = load(GetParam());
  ASSERT_FALSE(gc.expected.empty()) << gc.name << ": empty .ref";
  const std::size_t largest = gc.whole_only ? 1 : std::max<std::size_t>(gc.total_bytes, 1);
  for (std::size_t fragment = 1; fragment <= largest; ++fragment) {
    const std::int64_t held = gc.body_memory ? gc.body_memory->reserved.load() : 0;
    const std::string diff = compare(gc.expected, run(gc, fragment));
    ASSERT_TRUE(diff.empty()) << gc.name << " fed in fragments of " << fragment << " bytes: " << diff;
    // The session gave back every byte it reserved, whatever ended it.
    if (gc.body_memory) ASSERT_EQ(gc.body_memory->reserved.load(), held) << gc.name << ", fragments of " << fragment;
  }
}

std::string test_name(const ::testing::TestParamInfo<fs::path>& info) {
  std::string name = info.param.stem().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(transcripts, golden_test, ::testing::ValuesIn(golden_inputs()), test_name);

TEST(golden_inputs, there_are_transcripts) { EXPECT_GE(golden_inputs().size(), 30u); }

}  // namespace
}  // namespace postino::smtp
