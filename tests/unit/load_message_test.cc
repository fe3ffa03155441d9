// What postino-load puts on the wire: envelopes with valid-length random
// recipients under the given prefixes, texts of exactly the asked number of
// characters in either alphabet with the nonce first, lines an SMTP server
// accepts, the AUTH encodings, the queue id read back, the JSON the workers
// exchange, and the loopback-only target check.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>

#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../../tools/load/message_builder.h"
#include "../../tools/load/results.h"
#include "../../tools/load/settings.h"

namespace postino::load {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = s.find("\r\n", start)) != std::string::npos; start = nl + 2)
    out.push_back(s.substr(start, nl - start));
  EXPECT_EQ(start, s.size()) << "text does not end in CRLF";
  return out;
}

TEST(load_message, envelope_has_mail_rcpts_and_data) {
  message_spec spec;
  spec.from = "a@b.test";
  spec.to_prefixes = {"+39333", "+39347"};
  spec.rcpts = 5;
  spec.number_length = 12;
  message_builder b(spec, 1);
  rng r(1);
  std::string out;
  b.append_envelope(out, r);
  const auto l = lines_of(out);
  ASSERT_EQ(l.size(), 7u);
  EXPECT_EQ(l[0], "MAIL FROM:<a@b.test>");
  // Recipients take the prefixes in turn from a random first one.
  const bool first_is_333 = l[1].rfind("RCPT TO:<+39333", 0) == 0;
  for (int i = 1; i <= 5; ++i) {
    const std::string& rc = l[static_cast<std::size_t>(i)];
    ASSERT_EQ(rc.rfind("RCPT TO:<+393", 0), 0u) << rc;
    const std::string number = rc.substr(9, rc.size() - 10);
    EXPECT_EQ(number.size(), 13u) << number;  // '+' and 12 digits
    EXPECT_EQ(number.find_first_not_of("+0123456789"), std::string::npos);
    EXPECT_EQ(number.substr(0, 6), (i % 2 == 1) == first_is_333 ? "+39333" : "+39347");
  }
  EXPECT_EQ(l[6], "DATA");
}

TEST(load_message, single_recipient_messages_spread_over_every_prefix) {
  message_spec spec;
  spec.to_prefixes = {"+39333", "+39347", "+39320"};
  spec.rcpts = 1;
  message_builder b(spec, 1);
  rng r(7);
  std::map<std::string, int> seen;
  for (int m = 0; m < 300; ++m) {
    std::string out;
    b.append_envelope(out, r);
    const auto l = lines_of(out);
    ++seen[l[1].substr(9, 6)];
  }
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& [prefix, n] : seen) EXPECT_GT(n, 50) << prefix;
}

TEST(load_message, recipients_are_random) {
  message_spec spec;
  message_builder b(spec, 1);
  rng r(9);
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string out;
    b.append_rcpt(out, r, 0);
    seen.insert(out);
  }
  EXPECT_GT(seen.size(), 990u);
}

std::string text_of(const message_builder& b, std::uint64_t thread, std::uint64_t seq) {
  std::string out;
  b.append_text(out, thread, seq);
  EXPECT_TRUE(out.ends_with("\r\n.\r\n"));
  return out.substr(0, out.size() - 3);  // keep the text's last CRLF
}

class load_message_sizes : public ::testing::TestWithParam<std::tuple<alphabet, int>> {};

TEST_P(load_message_sizes, text_has_the_asked_characters_and_valid_lines) {
  const auto [alpha, size] = GetParam();
  message_spec spec;
  spec.text_alphabet = alpha;
  spec.size = size;
  message_builder b(spec, 11);
  for (std::uint64_t seq : {1ull, 99ull, 123456789ull}) {
    const std::string text = text_of(b, 3, seq);
    const std::string nonce = "n=3-" + std::to_string(seq);
    EXPECT_EQ(text.rfind(nonce + (static_cast<std::size_t>(size) > nonce.size() ? " " : "\r"), 0), 0u) << text;
    const std::string body = text.substr(0, text.size() - 2);
    const std::size_t want = std::max<std::size_t>(static_cast<std::size_t>(size), nonce.size());
    EXPECT_EQ(message_builder::count_chars(body), want);
    for (const auto& line : lines_of(text)) {
      EXPECT_LE(line.size(), 998u);
      EXPECT_FALSE(line.empty());
      EXPECT_NE(line.front(), '.');
    }
  }
}

INSTANTIATE_TEST_SUITE_P(all, load_message_sizes,
                         ::testing::Combine(::testing::Values(alphabet::gsm, alphabet::ucs2),
                                            ::testing::Values(0, 5, 100, 160, 199, 200, 201, 1000, 5000)));

TEST(load_message, ucs2_text_is_not_gsm_and_gsm_text_is) {
  message_spec spec;
  spec.size = 300;
  spec.text_alphabet = alphabet::ucs2;
  const std::string ucs2 = text_of(message_builder(spec, 5), 0, 1);
  EXPECT_NE(ucs2.find("\xd0"), std::string::npos);  // Cyrillic lead byte
  spec.text_alphabet = alphabet::gsm;
  const std::string gsm = text_of(message_builder(spec, 5), 0, 1);
  // Only the GSM 03.38 basic table's characters: ASCII printable minus the
  // extension ones, plus the table's accented letters.
  const std::string extension = "^{}\\[~]|";
  for (char c : gsm) EXPECT_EQ(extension.find(c), std::string::npos);
  EXPECT_EQ(gsm.find("\xd0"), std::string::npos);
}

TEST(load_message, nonces_differ_per_thread_and_sequence) {
  std::string a, b, c;
  append_nonce(a, 0, 12);
  append_nonce(b, 1, 2);
  append_nonce(c, 12, 0);
  EXPECT_EQ(a, "n=0-12");
  EXPECT_EQ(b, "n=1-2");
  EXPECT_EQ(c, "n=12-0");
}

TEST(load_message, auth_encodings) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("Username:"), "VXNlcm5hbWU6");
  EXPECT_EQ(auth_plain_response("user", "pass"), "AHVzZXIAcGFzcw==");
}

TEST(load_message, queue_id_of_a_250) {
  EXPECT_EQ(queue_id_of("2.0.0 Message accepted for delivery to: +393331234567 queued as 0A1B2C"), "0A1B2C");
  EXPECT_EQ(queue_id_of("2.0.0 Ok: queued as 4XyZ12 "), "4XyZ12");
  EXPECT_EQ(queue_id_of("2.0.0 Ok"), "2.0.0 Ok");
  EXPECT_EQ(queue_id_of("queued as "), "queued as");
}

TEST(load_settings, targets_are_loopback_only) {
  auto ok = [](std::string_view s) {
    const auto r = parse_target(s, 25);
    EXPECT_TRUE(std::holds_alternative<target>(r)) << s;
    return std::holds_alternative<target>(r) ? std::get<target>(r) : target{};
  };
  EXPECT_EQ(ok("127.0.0.1").text, "127.0.0.1:25");
  EXPECT_EQ(ok("127.1.2.3:2525").port, 2525);
  EXPECT_EQ(ok("localhost:2526").text, "127.0.0.1:2526");
  EXPECT_EQ(ok("[::1]:2527").text, "[::1]:2527");
  EXPECT_EQ(ok("::1").family, AF_INET6);
  for (const char* bad : {"10.0.0.1", "128.0.0.1:25", "0.0.0.0", "[::2]:25", "::ffff:127.0.0.1", "example.com",
                          "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x", "[::1"}) {
    const auto r = parse_target(bad, 25);
    EXPECT_TRUE(std::holds_alternative<std::string>(r)) << bad;
  }
}

TEST(load_settings, shares_cover_the_total) {
  for (std::uint64_t total : {0ull, 1ull, 7ull, 100ull, 20001ull}) {
    for (std::uint64_t n : {1ull, 2ull, 3ull, 8ull}) {
      std::uint64_t sum = 0;
      for (std::uint64_t i = 0; i < n; ++i) {
        EXPECT_EQ(share_base(total, n, i), sum);
        sum += share_of(total, n, i);
      }
      EXPECT_EQ(sum, total);
    }
  }
}

TEST(load_settings, settings_json_is_json) {
  settings s;
  s.user = "quote\"and\\slash";
  const auto v = nlohmann::json::parse(s.to_json().dump(), nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.value("user", ""), s.user);
  EXPECT_EQ(v.value("rcpts", 0u), 1u);
}

TEST(load_results, round_trip_and_merge) {
  run_results a;
  a.acked = 10;
  a.errors = 2;
  a.codes[250] = 30;
  a.error_codes[451] = 2;
  a.connect_failures["Connection refused"] = 3;
  a.first_start_ns = 500;
  a.last_ack_ns = 900;
  a.inflight = {"n=0-1", "n=0-2"};
  a.latency.record(1000);
  a.fatal = "protocol desync: \"x\"\n";
  const auto b = run_results::from_json(a.to_json());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->acked, 10u);
  EXPECT_EQ(b->codes.at(250), 30u);
  EXPECT_EQ(b->error_codes.at(451), 2u);
  EXPECT_EQ(b->connect_failures.at("Connection refused"), 3u);
  EXPECT_EQ(b->inflight, a.inflight);
  EXPECT_EQ(b->fatal, a.fatal);
  run_results m;
  m.merge(a);
  run_results c;
  c.acked = 5;
  c.first_start_ns = 400;
  c.last_ack_ns = 800;
  c.codes[250] = 1;
  m.merge(c);
  EXPECT_EQ(m.acked, 15u);
  EXPECT_EQ(m.first_start_ns, 400);
  EXPECT_EQ(m.last_ack_ns, 900);
  EXPECT_EQ(m.codes.at(250), 31u);
  EXPECT_FALSE(run_results::from_json("{\"acked\":").has_value());
  EXPECT_FALSE(run_results::from_json("[1,2]").has_value());
}

}  // namespace
}  // namespace postino::load
