// A recorded SMTP session for postino-replay (tests/replay/*.txt): a few
// header lines starting with '#', then the client's bytes exactly as sent.
// Header keys: `messages: N` (how many the session must get accepted),
// `reads: lines` (one read per line: a person at telnet) or `reads: N N ...`
// (the sizes of the server's recv() calls as recorded), and free text
// (`replay:`, `recorded:`). A recording owns its bytes; its reads are views
// into them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace postino::replay {

// What a piece of client input is, for the per-phase counts: command lines
// other than RCPT (greeting and EHLO/AUTH/MAIL/DATA/QUIT, the session's
// setup and teardown too), RCPT lines (recipient validation), and DATA text
// through its terminator (scanner, content step, commit).
enum class phase : std::uint8_t { envelope, recipients, text };
inline constexpr phase all_phases[] = {phase::envelope, phase::recipients, phase::text};
inline const char* phase_name(phase p) {
  return p == phase::envelope ? "envelope" : p == phase::recipients ? "recipients" : "text";
}

struct piece {
  std::string_view bytes;
  phase what;
};

struct recording {
  std::string name;   // the file name without directory and extension
  std::string about;  // the `replay:` header
  std::uint64_t messages = 0;
  std::string bytes;                   // what the client sent
  std::vector<std::string_view> reads; // into `bytes`, at most `read_limit` each
  std::vector<piece> pieces;           // `bytes` again, one command line or one text per piece
};

// Loads `path`; the reads are the recorded ones, each split further into
// pieces of at most `read_limit` bytes (the gateway's receive buffer). The
// pieces cut the same bytes by phase: every command line alone, every DATA
// text (after a `DATA` line, through CRLF.CRLF) alone, texts again cut at
// `read_limit`.
// Throws std::runtime_error with the file name and the problem.
recording load_recording(const std::string& path, std::size_t read_limit);

}  // namespace postino::replay
