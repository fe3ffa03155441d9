// Incremental SMTP reply parser for postino-load. It takes the bytes of one
// connection as they arrive, in pieces of any size, and hands back whole
// replies (one or many lines, RFC 5321 section 4.2). A reply that arrives
// whole inside one read is handed out as a view into the caller's buffer; the
// parser copies only a line split across reads (carry_) and the earlier lines
// of a multi-line reply (multi_), both owned by the parser. Anything that is
// not a reply line (no three-digit code, mixed codes in one reply, an endless
// line) is garbage: the connection is out of step and cannot be trusted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "postino/ascii.h"

namespace postino::load {

struct reply {
  int code = 0;
  // The text after "NNN " or "NNN-" of every line, lines joined by '\n'.
  std::string_view text;
  int lines = 0;

  // The text of the last line, which carries the queue id of a 250 to DATA.
  std::string_view last_line() const {
    const auto nl = text.rfind('\n');
    return nl == std::string_view::npos ? text : text.substr(nl + 1);
  }
};

enum class feed_result { ok, stopped, garbage };

class reply_parser {
 public:
  // Generous: EHLO lines are short, but a server may add detail after the
  // required phrase; 4 KiB is far beyond anything legitimate.
  static constexpr std::size_t max_line = 4096;

  // Calls on_reply(const reply&) -> bool for every complete reply in data;
  // stops early (stopped) when it returns false, leaving later bytes unread.
  template <class F>
  feed_result feed(std::string_view data, F&& on_reply) {
    while (!data.empty()) {
      const auto nl = data.find('\n');
      if (nl == std::string_view::npos) {
        if (carry_.size() + data.size() > max_line) return fail("reply line longer than 4096 octets", carry_);
        carry_.append(data);
        return feed_result::ok;
      }
      std::string_view line = data.substr(0, nl);
      data.remove_prefix(nl + 1);
      if (!carry_.empty()) {
        if (carry_.size() + line.size() > max_line) return fail("reply line longer than 4096 octets", carry_);
        carry_.append(line);
        line = carry_;
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      const auto r = take_line(line, on_reply);
      carry_.clear();
      if (r != feed_result::ok) return r;
    }
    return feed_result::ok;
  }

  // True while part of a reply has been read: a reply line cut short or the
  // first lines of a multi-line reply.
  bool mid_reply() const { return !carry_.empty() || multi_code_ != 0; }
  const std::string& error() const { return error_; }
  void reset() {
    carry_.clear();
    multi_.clear();
    multi_code_ = 0;
    lines_ = 0;
    error_.clear();
  }

 private:
  template <class F>
  feed_result take_line(std::string_view line, F& on_reply) {
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) || !is_digit(line[2]))
      return fail("not a reply line", line);
    const char sep = line.size() > 3 ? line[3] : ' ';
    if (sep != ' ' && sep != '-') return fail("no space or dash after the reply code", line);
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    const std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view{};
    if (multi_code_ != 0 && code != multi_code_) return fail("reply code changed inside a multi-line reply", line);
    ++lines_;
    if (sep == '-') {
      multi_code_ = code;
      multi_.append(text);
      multi_.push_back('\n');
      return feed_result::ok;
    }
    reply r;
    r.code = code;
    r.lines = lines_;
    if (multi_code_ != 0) {
      multi_.append(text);
      r.text = multi_;
    } else {
      r.text = text;
    }
    const bool go_on = on_reply(static_cast<const reply&>(r));
    multi_.clear();
    multi_code_ = 0;
    lines_ = 0;
    return go_on ? feed_result::ok : feed_result::stopped;
  }

  feed_result fail(std::string_view why, std::string_view line) {
    error_.assign(why);
    error_.append(": \"");
    for (char c : line.substr(0, 80)) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u < 0x7f) {
        error_.push_back(c);
      } else {
        static constexpr char hex[] = "0123456789abcdef";
        error_.append("\\x");
        error_.push_back(hex[u >> 4]);
        error_.push_back(hex[u & 15]);
      }
    }
    if (line.size() > 80) error_.append("...");
    error_.push_back('"');
    return feed_result::garbage;
  }

  std::string carry_;
  std::string multi_;
  int multi_code_ = 0;
  int lines_ = 0;
  std::string error_;
};

}  // namespace postino::load
