// Command-line and DATA scanners. Both read the caller's input view in place
// (memchr for LF, then CR) and never keep a pointer into it after a call. The
// line scanner copies a line into its carry buffer only when the line is split
// across inputs; the DATA scanner appends text to the caller's body string,
// so every message byte is copied once.
#include "scanner.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "command.h"

namespace postino::smtp {

// ---------------------------------------------------------------- lines

void line_scanner::reset() {
  carry_.clear();
  carry_in_use_ = false;
  discarding_ = false;
  release_carry();
}

void line_scanner::release_carry() {
  // A carry buffer that once held a long (MAIL, AUTH) line is given back so
  // that an idle session stays small.
  if (carry_.empty() && carry_.capacity() > 2 * default_line_limit) std::string().swap(carry_);
}

std::size_t line_scanner::limit_for(std::string_view prefix, line_mode mode) const {
  return mode == line_mode::auth_response ? auth_line_limit : command_line_limit(prefix);
}

line_scanner::result line_scanner::next(std::string_view input, line_mode mode) {
  if (carry_in_use_) {
    carry_.clear();
    carry_in_use_ = false;
    release_carry();
  }
  const char* base = input.data();
  const auto* lf = static_cast<const char*>(input.empty() ? nullptr : std::memchr(base, '\n', input.size()));

  if (discarding_) {
    if (lf == nullptr) return {kind::need_more, {}, input.size()};
    discarding_ = false;
    return {kind::too_long, {}, static_cast<std::size_t>(lf - base) + 1};
  }

  // The verb decides the limit; it sits in the first bytes of the line,
  // which may be partly carried.
  std::array<char, 16> head{};
  const std::size_t from_carry = std::min(carry_.size(), head.size());
  std::memcpy(head.data(), carry_.data(), from_carry);
  const std::size_t from_input = std::min(input.size(), head.size() - from_carry);
  std::memcpy(head.data() + from_carry, base, from_input);
  const std::size_t limit = limit_for({head.data(), from_carry + from_input}, mode);

  if (lf == nullptr) {
    // The line is at least one octet (its LF) longer than what we have.
    if (carry_.size() + input.size() >= limit) {
      discarding_ = true;
      carry_.clear();
      release_carry();
    } else {
      carry_.append(input);
    }
    return {kind::need_more, {}, input.size()};
  }

  const std::size_t used = static_cast<std::size_t>(lf - base) + 1;
  if (carry_.size() + used > limit) {
    carry_.clear();
    release_carry();
    return {kind::too_long, {}, used};
  }
  std::string_view line;
  if (carry_.empty()) {
    line = input.substr(0, used - 1);
  } else {
    carry_.append(base, used - 1);
    carry_in_use_ = true;
    line = carry_;
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return {kind::line, line, used};
}

// ---------------------------------------------------------------- DATA

bool has_bare_newline(std::string_view text) {
  for (std::size_t i = text.find_first_of("\r\n"); i != std::string_view::npos; i = text.find_first_of("\r\n", i + 1)) {
    const bool crlf_cr = text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n';
    const bool crlf_lf = text[i] == '\n' && i > 0 && text[i - 1] == '\r';
    if (!crlf_cr && !crlf_lf) return true;
  }
  return false;
}

void data_scanner::start(std::uint64_t max_size, bool reject_bare) {
  *this = data_scanner{};
  max_size_ = max_size;
  reject_bare_ = reject_bare;
}

void data_scanner::stop_appending(std::string& body) {
  appending_ = false;
  std::string().swap(body);
}

void data_scanner::append(std::string& body, const char* p, std::size_t n) {
  line_len_ += n;
  // RFC 5321 4.5.3.1.6: 1000 octets including the CRLF, not counting the
  // dot removed by unstuffing.
  if (line_len_ + 2 > text_line_limit && !too_big_) {
    too_big_ = true;
    stop_appending(body);
  }
  if (!appending_) return;
  if (body.size() + n > max_size_) {
    too_big_ = true;
    stop_appending(body);
    return;
  }
  body.append(p, n);
}

void data_scanner::line_break(std::string& body, bool real_crlf) {
  line_len_ = 0;
  state_ = state::line_start;
  crlf_before_ = real_crlf;
  if (!real_crlf) {
    bare_seen_ = true;
    if (reject_bare_ && appending_) stop_appending(body);
  }
  if (!appending_) return;
  if (body.size() + 2 > max_size_) {
    too_big_ = true;
    stop_appending(body);
    return;
  }
  body.append("\r\n", 2);
}

void data_scanner::take_if(const char*& p, char c, state next) {
  if (*p == c) {
    state_ = next;
    ++p;
  } else {
    state_ = state::text;
  }
}

std::size_t data_scanner::feed(std::string_view input, std::string& body) {
  const char* p = input.data();
  const char* const end = p + input.size();
  while (p < end && !done_) {
    switch (state_) {
      case state::line_start: take_if(p, '.', state::dot); break;
      // Any line starting with '.' loses that dot; ".\r" may be the end.
      case state::dot: take_if(p, '\r', state::dot_cr); break;
      case state::dot_cr:
        if (*p == '\n') {
          ++p;
          // Only CRLF . CRLF ends DATA: LF . CRLF is an (unstuffed) empty line.
          if (crlf_before_) done_ = true;
          else line_break(body, true);
        } else {
          line_break(body, false);  // ".\r" + other: a bare CR ends the line
        }
        break;
      case state::text: {
        const auto* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
        const char* stop = lf != nullptr ? lf : end;
        const auto* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(stop - p)));
        if (cr != nullptr && cr + 1 == lf) {
          // The common case: the rest of the line and its CRLF in one append.
          const auto n = static_cast<std::size_t>(cr - p);
          line_len_ += n;
          if (line_len_ + 2 > text_line_limit && !too_big_) {
            too_big_ = true;
            stop_appending(body);
          }
          if (appending_) {
            if (body.size() + n + 2 > max_size_) {
              too_big_ = true;
              stop_appending(body);
            } else {
              body.append(p, n + 2);
            }
          }
          p = lf + 1;
          line_len_ = 0;
          state_ = state::line_start;
          crlf_before_ = true;
          break;
        }
        const char* brk = cr != nullptr ? cr : stop;
        append(body, p, static_cast<std::size_t>(brk - p));
        p = brk;
        if (p == end) break;
        ++p;
        if (brk == lf) line_break(body, false);  // bare LF
        else state_ = state::cr;
        break;
      }
      case state::cr:
        if (*p == '\n') {
          ++p;
          line_break(body, true);
        } else {
          line_break(body, false);  // bare CR; the byte starts the next line
        }
        break;
    }
  }
  return static_cast<std::size_t>(p - input.data());
}

}  // namespace postino::smtp
