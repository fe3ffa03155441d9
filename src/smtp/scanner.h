// Zero-copy scanners for the two shapes of SMTP input: command lines and DATA
// text. Both work in place on the caller's input view and keep their state
// across calls, so a CRLF or a CRLF.CRLF split over two reads is found. The
// input views belong to the caller and are only read during a call. The line
// scanner owns a small carry buffer (bounded by the line limit) that holds a
// line split across reads; the DATA scanner appends unstuffed text to a body
// string the caller owns, copying every byte exactly once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace postino::smtp {

// What limits a command line: commands (limit chosen by the verb, see
// command_line_limit) or SASL responses during an AUTH exchange.
enum class line_mode : std::uint8_t { command, auth_response };

// RFC 4954's limit for SASL lines, and RFC 5321's for text lines.
inline constexpr std::size_t auth_line_limit = 12288;
inline constexpr std::size_t text_line_limit = 1000;

class line_scanner {
 public:
  enum class kind : std::uint8_t { line, too_long, need_more };
  struct result {
    kind what = kind::need_more;
    // For `line`: the line without its CRLF (or bare LF). Points into the
    // input or into the carry buffer; valid until the next call.
    std::string_view line;
    // Bytes of the input used; need_more uses all of it.
    std::size_t consumed = 0;
  };

  // Finds the next line starting at input[0] (after any carried prefix).
  result next(std::string_view input, line_mode mode);

  // Forgets a carried partial line (STARTTLS discards read-ahead).
  void reset();

  // Heap bytes held while idle (for the memory budget tests).
  std::size_t carry_capacity() const { return carry_.capacity(); }
  bool has_partial_line() const { return !carry_.empty() || discarding_; }

 private:
  std::size_t limit_for(std::string_view prefix, line_mode mode) const;
  void release_carry();

  std::string carry_;         // a partial line split across inputs
  bool carry_in_use_ = false; // the last result pointed into carry_
  bool discarding_ = false;   // over the limit: drop bytes up to the next LF
};

// A CR not followed by LF, or an LF not after a CR, anywhere in `text` (a
// BDAT message, which has no scanner: its octets are taken as they come).
bool has_bare_newline(std::string_view text);

// The DATA text state machine (RFC 5321 4.1.1.4 and 4.5.2): strict CRLF.CRLF
// end, dot-unstuffing, bare CR/LF detection, the 1000-octet text line limit and
// the message size limit.
class data_scanner {
 public:
  // `reject_bare`: a bare CR or LF refuses the message, so its text is not kept.
  void start(std::uint64_t max_size, bool reject_bare);

  // Consumes text and appends it, unstuffed and with CRLF line breaks, to
  // `body`. Stops right after the terminator (done() is then true) or at the
  // end of the input. Returns the bytes consumed.
  std::size_t feed(std::string_view input, std::string& body);

  bool done() const { return done_; }
  bool bare_newline_seen() const { return bare_seen_; }
  bool too_big() const { return too_big_; }

 private:
  // Once the message is known to be refused (too big, or a bare newline under
  // the reject policy) its text is never used: stop keeping it.
  void stop_appending(std::string& body);
  enum class state : std::uint8_t { line_start, dot, dot_cr, text, cr };
  // At a line's first octets: `c` is taken and leads to `next`; anything
  // else is left for the text state.
  void take_if(const char*& p, char c, state next);
  void append(std::string& body, const char* p, std::size_t n);
  void line_break(std::string& body, bool real_crlf);

  std::uint64_t max_size_ = 0;
  bool reject_bare_ = false;
  std::size_t line_len_ = 0;  // octets of the current line's text (unstuffed)
  state state_ = state::line_start;
  bool crlf_before_ = true;   // the current line began after a real CRLF
  bool done_ = false;
  bool bare_seen_ = false;
  bool too_big_ = false;
  bool appending_ = true;
};

}  // namespace postino::smtp
