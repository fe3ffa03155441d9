// What postino-load says on the wire: the MAIL/RCPT/DATA commands, random
// recipient numbers under the configured prefixes, and message texts of a
// fixed size in characters in either alphabet, each carrying a unique nonce
// ("n=<thread>-<seq>") so a crash test can match what was acknowledged. Also
// the AUTH encodings and the queue id read back from a 250. Every function
// appends to a std::string the caller owns (the session's output buffer); the
// builder owns only its precomputed filler text.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <iterator>
#include <string_view>
#include <vector>

namespace postino::load {

// xoshiro256**: fast, and good enough to pick digits and words.
class rng {
 public:
  explicit rng(std::uint64_t seed) {
    for (auto& w : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      w = z ^ (z >> 31);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

inline std::string base64(std::string_view in) {
  static constexpr char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                            (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
    out.push_back(table[v >> 18]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(table[(v >> 6) & 63]);
    out.push_back(table[v & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (rest == 2) v |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out.push_back(table[v >> 18]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(rest == 2 ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// RFC 4616: authzid (empty) NUL authcid NUL password.
inline std::string auth_plain_response(std::string_view user, std::string_view password) {
  std::string raw;
  raw.push_back('\0');
  raw.append(user);
  raw.push_back('\0');
  raw.append(password);
  return base64(raw);
}

// The id a 250 to the end of DATA names: the token after the last "queued as ",
// or the whole text when the server names none (smtp-sink says "Ok").
inline std::string_view queue_id_of(std::string_view text) {
  constexpr std::string_view marker = "queued as ";
  const auto at = text.rfind(marker);
  if (at != std::string_view::npos) {
    std::string_view rest = text.substr(at + marker.size());
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto end = rest.find_first_of(" \t\r\n");
    rest = rest.substr(0, end);
    if (!rest.empty()) return rest;
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

// Appends "n=<thread>-<seq>" without going through a formatter: this runs once
// per message.
inline void append_nonce(std::string& out, std::uint64_t thread, std::uint64_t seq) {
  char buf[48];
  char* p = buf + sizeof buf;
  auto put = [&p](std::uint64_t v) {
    do {
      *--p = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
  };
  put(seq);
  *--p = '-';
  put(thread);
  *--p = '=';
  *--p = 'n';
  out.append(p, buf + sizeof buf - p);
}

enum class alphabet { gsm, ucs2 };

struct message_spec {
  std::string from = "load@postino.test";
  std::vector<std::string> to_prefixes{"+39333"};
  int rcpts = 1;
  int number_length = 12;  // digits after the '+' of a whole number
  int size = 100;          // characters of text, nonce included
  alphabet text_alphabet = alphabet::gsm;
};

class message_builder {
 public:
  // Text lines are broken every line_chars characters (each break is one of
  // the size characters: the gateway turns it into one LF), which keeps a line
  // under RFC 5321's 1000 octets even at four octets per character.
  static constexpr int line_chars = 200;

  message_builder(const message_spec& spec, std::uint64_t seed) : spec_(spec) {
    for (const auto& p : spec.to_prefixes) {
      int digits = 0;
      for (char c : p) digits += (c >= '0' && c <= '9');
      prefix_digits_.push_back(std::max(spec.number_length - digits, 0));
    }
    build_filler(seed);
    mail_ = "MAIL FROM:<" + spec.from + ">\r\n";
    // What a mail library declares where the server offers SIZE (RFC 1870):
    // a bound on the text's octets (nonce, filler, terminator), so that a
    // gateway reserving body memory per transaction reserves this, not its
    // maximum.
    mail_sized_ = "MAIL FROM:<" + spec.from + "> SIZE=" + std::to_string(filler_.size() + 64) + "\r\n";
  }

  const message_spec& spec() const { return spec_; }
  std::string_view mail_command() const { return mail_; }

  // `declare_size`: the server's EHLO offered SIZE.
  void append_mail(std::string& out, bool declare_size = false) const { out.append(declare_size ? mail_sized_ : mail_); }

  void append_rcpt(std::string& out, rng& r, std::size_t prefix_choice) const {
    const std::size_t i = prefix_choice % spec_.to_prefixes.size();
    out.append("RCPT TO:<");
    out.append(spec_.to_prefixes[i]);
    int left = prefix_digits_[i];
    while (left > 0) {
      std::uint64_t v = r.next();
      for (int k = 0; k < 18 && left > 0; ++k, --left) {
        out.push_back(static_cast<char>('0' + v % 10));
        v /= 10;
      }
    }
    out.append(">\r\n");
  }

  // MAIL, every RCPT and DATA (or, with `bdat`, no DATA: the chunk follows
  // at once): one pipelined group (RFC 2920). With several prefixes, each
  // message starts at a random one and its recipients take the following
  // ones in turn, so every prefix gets its share of messages.
  void append_envelope(std::string& out, rng& r, bool declare_size = false, bool bdat = false) const {
    append_mail(out, declare_size);
    const std::size_t first = spec_.to_prefixes.size() > 1 ? r.next() % spec_.to_prefixes.size() : 0;
    for (int k = 0; k < spec_.rcpts; ++k) append_rcpt(out, r, first + static_cast<std::size_t>(k));
    if (!bdat) out.append("DATA\r\n");
  }

  // The text of one message and its terminator. The nonce comes first, then
  // filler up to the configured size in characters.
  void append_text(std::string& out, std::uint64_t thread, std::uint64_t seq) const {
    append_message(out, thread, seq);
    out.append(".\r\n");
  }

  // The same text as one BDAT chunk: "BDAT <octets> LAST", then the text
  // with its last line end and no terminator (the filler has no '.' to
  // stuff either way). The text is written first and its command put in
  // front of it: a move of one text, once per message.
  void append_bdat(std::string& out, std::uint64_t thread, std::uint64_t seq) const {
    const std::size_t start = out.size();
    append_message(out, thread, seq);
    const std::string command = "BDAT " + std::to_string(out.size() - start) + " LAST\r\n";
    out.insert(start, command);
  }

  // The nonce, the filler up to the configured size and a CRLF.
  void append_message(std::string& out, std::uint64_t thread, std::uint64_t seq) const {
    const std::size_t before = out.size();
    append_nonce(out, thread, seq);
    const std::size_t nonce_chars = out.size() - before;  // ASCII: octets are characters
    if (static_cast<std::size_t>(spec_.size) > nonce_chars) {
      out.push_back(' ');
      out.append(filler_, offsets_[nonce_chars + 1], std::string::npos);
    }
    out.append("\r\n");
  }

  // Characters of text as a handset would count them: code points, one per
  // line break.
  static std::size_t count_chars(std::string_view text_without_terminator) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < text_without_terminator.size(); ++i) {
      const auto c = static_cast<unsigned char>(text_without_terminator[i]);
      if (c == '\r') continue;
      if ((c & 0xc0) != 0x80) ++n;
    }
    return n;
  }

 private:
  void build_filler(std::uint64_t seed) {
    // GSM: the basic table only (one septet each), a few non-ASCII letters so
    // the UTF-8 path is exercised, no '.' so no line needs dot-stuffing.
    static const char* const gsm_words[] = {
        "lorem", "ipsum", "dolor", "sit", "amet", "consegna", "ordine", "codice", "ritiro", "è",
        "città", "però", "perché", "Grüße", "señal", "Ødegaard", "@home", "100%", "£5", "ok!",
        "numero", "conferma", "alle", "ore", "17:30", "grazie", "cordiali", "saluti", "Åse", "Ñoño"};
    // UCS-2: Cyrillic, Greek letters the GSM table lacks, a check mark and an
    // emoji (two UTF-16 units on the handset).
    static const char* const ucs2_words[] = {
        "привет", "доставка", "заказ", "код", "подтверждение", "спасибо", "сегодня", "в", "и",
        "ваш", "номер", "αβγ", "λόγος", "✓", "😀", "готово", "Москва", "ждём", "вас", "ещё"};
    rng r(seed ^ 0x5eedf111e7ull);
    const bool gsm = spec_.text_alphabet == alphabet::gsm;
    const std::size_t nwords = gsm ? std::size(gsm_words) : std::size(ucs2_words);
    const auto size = static_cast<std::size_t>(std::max(spec_.size, 0));
    offsets_.reserve(size + 1);
    std::size_t chars = 0;
    auto put_char = [&](std::string_view utf8) {
      offsets_.push_back(filler_.size());
      filler_.append(utf8);
      ++chars;
    };
    bool at_line_start = true;
    while (chars < size) {
      const std::string_view word = gsm ? gsm_words[r.below(nwords)] : ucs2_words[r.below(nwords)];
      std::size_t i = 0;
      if (!at_line_start) {
        if ((chars + 1) % line_chars == 0 && chars + 1 < size) {
          put_char("\r\n");
          at_line_start = true;
          continue;
        }
        put_char(" ");
      }
      while (i < word.size() && chars < size) {
        if ((chars + 1) % line_chars == 0 && chars + 1 < size) {
          put_char("\r\n");
          continue;
        }
        std::size_t len = 1;
        const auto c = static_cast<unsigned char>(word[i]);
        if (c >= 0xf0) len = 4;
        else if (c >= 0xe0) len = 3;
        else if (c >= 0xc0) len = 2;
        put_char(word.substr(i, len));
        i += len;
      }
      at_line_start = false;
    }
    offsets_.push_back(filler_.size());
  }

  message_spec spec_;
  std::string mail_;
  std::string mail_sized_;
  std::vector<int> prefix_digits_;
  std::string filler_;
  std::vector<std::size_t> offsets_;  // byte offset of each character, plus the end
};

}  // namespace postino::load
