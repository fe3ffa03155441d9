// GSM 03.38 / UCS-2 encoding and segmentation (PROTOCOL.md section 3,
// "Encoding"): decides the alphabet of an SMS text, counts its segments for
// pricing, and builds each segment's SMPP short_message octets. It reads the
// caller's UTF-8 view; count_segments allocates nothing, encode_sms returns
// owned strings.
//
// The alphabet is 3GPP TS 23.038 section 6.2.1 (default alphabet, written
// below in code order so it can be read against the standard's table) and
// 6.2.1.1 (the extension table reached through ESC 0x1B); national language
// shift tables are not used, since few SMSCs pass them through. Segment
// sizes follow TS 23.040: 140 octets of user data, less a 6-octet UDH
// (IE 0x00, 8-bit reference) when concatenated, so 160/153 septets and 70/67
// UTF-16 code units. Segmentation is greedy, and a character whose two
// septets or two code units do not fit moves whole to the next segment: a
// split escape pair or surrogate pair would show as garbage on the handset.
// count_segments and encode_sms run the same walk and the same packer, so the
// price always matches what is sent.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "postino/sms.h"
#include "utf8.h"

namespace postino::sms {
namespace {

constexpr char32_t none = 0xFFFFFFFF;

// TS 23.038 6.2.1 in code order, one line per column of the standard's
// table (16 septets each): gsm_basic[septet] is the character. 0x1B, the
// escape to the extension table, is no character (none).
constexpr std::u32string_view gsm_basic =
    U"@£$¥èéùìòÇ\nØø\rÅå"          // 00..0F
    U"Δ_ΦΓΛΩΠΨΣΘΞ\xFFFFFFFFÆæßÉ"    // 10..1F
    U" !\"#¤%&'()*+,-./"             // 20..2F
    U"0123456789:;<=>?"              // 30..3F
    U"¡ABCDEFGHIJKLMNO"              // 40..4F
    U"PQRSTUVWXYZÄÖÑÜ§"              // 50..5F
    U"¿abcdefghijklmno"              // 60..6F
    U"pqrstuvwxyzäöñüà";             // 70..7F
static_assert(gsm_basic.size() == 128 && gsm_basic[0x1B] == none);

struct extension_entry {
  std::uint8_t septet;  // follows ESC
  char32_t cp;
};

// TS 23.038 6.2.1.1: the characters the extension table defines for every
// language (0x0D CR2 and 0x1B SS2 are control codes, not characters).
constexpr extension_entry gsm_extension[] = {
    {0x0A, U'\f'}, {0x14, U'^'}, {0x28, U'{'}, {0x29, U'}'}, {0x2F, U'\\'},
    {0x3C, U'['},  {0x3D, U'~'}, {0x3E, U']'}, {0x40, U'|'}, {0x65, U'€'},
};

// Reverse lookup: septet, with escaped set for the extension table.
constexpr std::uint16_t no_gsm = 0xFFFF;
constexpr std::uint16_t escaped = 0x100;
constexpr char32_t greek_first = 0x0393;  // Γ, the lowest Greek letter in the table
constexpr char32_t greek_last = 0x03A9;   // Ω
constexpr char32_t euro = 0x20AC;

struct reverse_tables {
  std::array<std::uint16_t, 256> latin{};  // U+0000..U+00FF
  std::array<std::uint16_t, greek_last - greek_first + 1> greek{};
  std::uint16_t euro_code = no_gsm;
};

constexpr reverse_tables build_reverse() {
  reverse_tables t;
  t.latin.fill(no_gsm);
  t.greek.fill(no_gsm);
  const auto put = [&t](char32_t cp, std::uint16_t code) {
    if (cp < 0x100) {
      t.latin[cp] = code;
    } else if (cp >= greek_first && cp <= greek_last) {
      t.greek[cp - greek_first] = code;
    } else if (cp == euro) {
      t.euro_code = code;
    } else {
      throw "GSM character outside the reverse tables";  // fails the constant evaluation
    }
  };
  for (std::uint16_t s = 0; s < 128; ++s) {
    if (gsm_basic[s] != none) put(gsm_basic[s], s);
  }
  for (const auto& e : gsm_extension) put(e.cp, escaped | e.septet);
  return t;
}

constexpr reverse_tables reverse_map = build_reverse();

constexpr std::uint16_t gsm_lookup(char32_t cp) {
  if (cp < 0x100) return reverse_map.latin[cp];
  if (cp >= greek_first && cp <= greek_last) return reverse_map.greek[cp - greek_first];
  if (cp == euro) return reverse_map.euro_code;
  return no_gsm;
}

// Optional transliteration, used only for characters GSM lacks and only when
// it makes the whole text GSM. Each replacement is 1-3 GSM characters.
struct transliteration {
  char32_t from;
  char32_t to[3];
};

constexpr transliteration transliterations[] = {
    {0x0009, {U' '}},                     // tab
    {0x0060, {U'\''}},                    // grave accent used as a quote
    {0x00A0, {U' '}},                     // no-break space
    {0x00AB, {U'"'}},                     // «
    {0x00B4, {U'\''}},                    // acute accent used as a quote
    {0x00BB, {U'"'}},                     // »
    {0x00C0, {U'A'}}, {0x00C1, {U'A'}}, {0x00C2, {U'A'}}, {0x00C3, {U'A'}},
    {0x00C8, {U'E'}}, {0x00CA, {U'E'}}, {0x00CB, {U'E'}},
    {0x00CC, {U'I'}}, {0x00CD, {U'I'}}, {0x00CE, {U'I'}}, {0x00CF, {U'I'}},
    {0x00D0, {U'D'}},
    {0x00D2, {U'O'}}, {0x00D3, {U'O'}}, {0x00D4, {U'O'}}, {0x00D5, {U'O'}},
    {0x00D7, {U'x'}},
    {0x00D9, {U'U'}}, {0x00DA, {U'U'}}, {0x00DB, {U'U'}},
    {0x00DD, {U'Y'}},
    {0x00E1, {U'a'}}, {0x00E2, {U'a'}}, {0x00E3, {U'a'}},
    {0x00E7, {U'Ç'}},  // 0x09 was drawn as ç in GSM 03.38 before TS 23.038 drew it as Ç
    {0x00EA, {U'e'}}, {0x00EB, {U'e'}},
    {0x00ED, {U'i'}}, {0x00EE, {U'i'}}, {0x00EF, {U'i'}},
    {0x00F0, {U'd'}},
    {0x00F3, {U'o'}}, {0x00F4, {U'o'}}, {0x00F5, {U'o'}},
    {0x00FA, {U'u'}}, {0x00FB, {U'u'}},
    {0x00FD, {U'y'}}, {0x00FF, {U'y'}},
    {0x0152, {U'O', U'E'}}, {0x0153, {U'o', U'e'}},
    {0x0160, {U'S'}}, {0x0161, {U's'}}, {0x0178, {U'Y'}}, {0x017D, {U'Z'}}, {0x017E, {U'z'}},
    {0x02C6, {U'^'}}, {0x02DC, {U'~'}},
    // Greek capitals drawn like Latin ones: Greek SMS are written this way.
    {0x0391, {U'A'}}, {0x0392, {U'B'}}, {0x0395, {U'E'}}, {0x0396, {U'Z'}}, {0x0397, {U'H'}},
    {0x0399, {U'I'}}, {0x039A, {U'K'}}, {0x039C, {U'M'}}, {0x039D, {U'N'}}, {0x039F, {U'O'}},
    {0x03A1, {U'P'}}, {0x03A4, {U'T'}}, {0x03A5, {U'Y'}}, {0x03A7, {U'X'}},
    // Typographic spaces, dashes, quotes, ellipsis.
    {0x2000, {U' '}}, {0x2001, {U' '}}, {0x2002, {U' '}}, {0x2003, {U' '}}, {0x2004, {U' '}},
    {0x2005, {U' '}}, {0x2006, {U' '}}, {0x2007, {U' '}}, {0x2008, {U' '}}, {0x2009, {U' '}},
    {0x200A, {U' '}},
    {0x2010, {U'-'}}, {0x2011, {U'-'}}, {0x2012, {U'-'}}, {0x2013, {U'-'}}, {0x2014, {U'-'}},
    {0x2015, {U'-'}},
    {0x2018, {U'\''}}, {0x2019, {U'\''}}, {0x201A, {U'\''}}, {0x201B, {U'\''}},
    {0x201C, {U'"'}}, {0x201D, {U'"'}}, {0x201E, {U'"'}}, {0x201F, {U'"'}},
    {0x2026, {U'.', U'.', U'.'}},
    {0x202F, {U' '}},
    {0x2032, {U'\''}}, {0x2033, {U'"'}},
    {0x2039, {U'<'}}, {0x203A, {U'>'}},
    {0x205F, {U' '}},
    {0x2212, {U'-'}},
};

constexpr bool transliterations_are_sound() {
  for (std::size_t i = 0; i < std::size(transliterations); ++i) {
    const auto& t = transliterations[i];
    if (i > 0 && transliterations[i - 1].from >= t.from) return false;  // binary search needs order
    if (gsm_lookup(t.from) != no_gsm) return false;                       // GSM already has it
    if (t.to[0] == 0) return false;
    for (char32_t c : t.to) {
      if (c != 0 && gsm_lookup(c) == no_gsm) return false;
    }
  }
  return true;
}
static_assert(transliterations_are_sound());

const transliteration* find_transliteration(char32_t cp) {
  const auto* end = std::end(transliterations);
  const auto* it = std::lower_bound(std::begin(transliterations), end, cp,
                                    [](const transliteration& t, char32_t c) { return t.from < c; });
  return it != end && it->from == cp ? it : nullptr;
}

std::uint32_t gsm_cost(std::uint16_t code) { return (code & escaped) ? 2 : 1; }

// Calls emit(code) for every GSM character of the text, in order; returns
// false, having stopped, at the first character with no GSM form.
template <class Emit>
bool walk_gsm(std::string_view s, bool transliterate, Emit&& emit) {
  for (std::size_t i = 0; i < s.size();) {
    const detail::decoded d = detail::next_code_point(s, i);
    i += d.len;
    const std::uint16_t code = gsm_lookup(d.cp);
    if (code != no_gsm) {
      emit(code);
      continue;
    }
    const transliteration* t = transliterate ? find_transliteration(d.cp) : nullptr;
    if (t == nullptr) return false;
    for (char32_t c : t->to) {
      if (c != 0) emit(gsm_lookup(c));
    }
  }
  return true;
}

// Calls emit(code point) for every character; UTF-16 cost is 1 or 2.
template <class Emit>
void walk_code_points(std::string_view s, Emit&& emit) {
  for (std::size_t i = 0; i < s.size();) {
    const detail::decoded d = detail::next_code_point(s, i);
    i += d.len;
    emit(d.cp);
  }
}

std::uint32_t utf16_cost(char32_t cp) { return cp >= 0x10000 ? 2 : 1; }

// Greedy placement of indivisible characters into segments of `limit` units.
struct packer {
  std::uint32_t limit;
  std::uint32_t segments = 1;
  std::uint32_t fill = 0;

  // True when the character opens a new segment.
  bool place(std::uint32_t cost) {
    if (fill + cost > limit) {
      ++segments;
      fill = cost;
      return true;
    }
    fill += cost;
    return false;
  }
};

std::uint32_t segments_for(std::uint32_t total, std::uint32_t single_limit, const packer& concat) {
  if (total == 0) return 0;
  return total <= single_limit ? 1 : concat.segments;
}

// Builds the segments in a fixed buffer and copies each out once, whole:
// per-octet push_back into the result strings costs more than the walk.
class segment_writer {
 public:
  segment_writer(std::vector<std::string>& out, std::uint32_t total, std::uint8_t ref, std::uint32_t limit,
                 std::uint32_t octets_per_unit)
      : out_(out), total_(total), ref_(ref), pack_{limit}, octets_per_unit_(octets_per_unit) {
    out_.reserve(total);
    open();
  }

  // Where the character's octets go; the caller writes cost x octets_per_unit.
  char* place(std::uint32_t cost) {
    if (total_ > 1 && pack_.place(cost)) {
      flush();
      open();
    }
    char* at = buf_ + used_;
    used_ += cost * octets_per_unit_;
    return at;
  }

  void finish() { flush(); }

 private:
  void open() {
    used_ = 0;
    if (total_ > 1) {
      const char udh[6] = {0x05, 0x00, 0x03, static_cast<char>(ref_), static_cast<char>(total_),
                           static_cast<char>(out_.size() + 1)};
      std::memcpy(buf_, udh, sizeof udh);
      used_ = sizeof udh;
    }
  }
  void flush() { out_.emplace_back(buf_, used_); }

  std::vector<std::string>& out_;
  std::uint32_t total_;
  std::uint8_t ref_;
  packer pack_;
  std::uint32_t octets_per_unit_;
  std::size_t used_ = 0;
  char buf_[gsm7_single_septets] = {};  // the largest segment: 160 septets; UDH + 153 or 140 octets are less
};

}  // namespace

segment_count count_segments(std::string_view utf8, bool transliterate) noexcept {
  std::uint32_t septets = 0;
  packer gsm_pack{gsm7_concat_septets};
  const bool is_gsm = walk_gsm(utf8, transliterate, [&](std::uint16_t code) {
    const std::uint32_t cost = gsm_cost(code);
    septets += cost;
    gsm_pack.place(cost);
  });
  if (is_gsm) {
    return {sms_encoding::gsm7, segments_for(septets, gsm7_single_septets, gsm_pack), septets};
  }
  std::uint32_t units = 0;
  packer ucs2_pack{ucs2_concat_units};
  walk_code_points(utf8, [&](char32_t cp) {
    const std::uint32_t cost = utf16_cost(cp);
    units += cost;
    ucs2_pack.place(cost);
  });
  return {sms_encoding::ucs2, segments_for(units, ucs2_single_units, ucs2_pack), units};
}

std::string transliterate_to_gsm(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (std::size_t i = 0; i < utf8.size();) {
    const detail::decoded d = detail::next_code_point(utf8, i);
    if (gsm_lookup(d.cp) != no_gsm) {
      out.append(utf8.substr(i, d.len));
    } else if (const transliteration* t = find_transliteration(d.cp)) {
      for (char32_t c : t->to)
        if (c != 0) detail::append_utf8(out, c);
    } else {
      return std::string(utf8);  // some character stays outside GSM: UCS-2 as written
    }
    i += d.len;
  }
  return out;
}

encoded_sms encode_sms(std::string_view utf8, std::uint8_t concat_ref, bool transliterate) {
  const segment_count count = count_segments(utf8, transliterate);
  encoded_sms out;
  out.encoding = count.encoding;
  if (count.segments == 0 || count.segments > max_concat_segments) return out;

  if (count.encoding == sms_encoding::gsm7) {
    segment_writer w(out.segments, count.segments, concat_ref, gsm7_concat_septets, 1);
    walk_gsm(utf8, transliterate, [&](std::uint16_t code) {
      char* at = w.place(gsm_cost(code));
      if (code & escaped) *at++ = 0x1B;
      *at = static_cast<char>(code & 0x7F);
    });
    w.finish();
    return out;
  }

  segment_writer w(out.segments, count.segments, concat_ref, ucs2_concat_units, 2);
  const auto put16 = [](char* at, std::uint32_t unit) {
    at[0] = static_cast<char>(unit >> 8);
    at[1] = static_cast<char>(unit & 0xFF);
  };
  walk_code_points(utf8, [&](char32_t cp) {
    char* at = w.place(utf16_cost(cp));
    if (cp < 0x10000) {
      put16(at, cp);
    } else {
      const std::uint32_t v = cp - 0x10000;
      put16(at, 0xD800 | (v >> 10));
      put16(at + 2, 0xDC00 | (v & 0x3FF));
    }
  });
  w.finish();
  return out;
}

}  // namespace postino::sms

namespace postino::sms {
namespace {

// Calls emit(code point) for each character of unpacked septets.
template <class Emit>
void walk_septets(std::string_view septets, Emit&& emit) {
  for (std::size_t i = 0; i < septets.size(); ++i) {
    const unsigned s = static_cast<unsigned char>(septets[i]) & 0x7F;
    if (s != 0x1B) {
      emit(gsm_basic[s]);
      continue;
    }
    if (++i == septets.size()) break;  // a dangling escape ends the text
    const unsigned e = static_cast<unsigned char>(septets[i]) & 0x7F;
    char32_t cp = U' ';
    for (const auto& x : gsm_extension)
      if (x.septet == e) cp = x.cp;
    emit(cp);
  }
}

}  // namespace

std::string gsm7_to_utf8(std::string_view septets) {
  std::string out;
  out.reserve(septets.size());
  walk_septets(septets, [&](char32_t cp) { detail::append_utf8(out, cp); });
  return out;
}

bool gsm7_to_latin1(std::string_view septets, std::string& out) {
  out.clear();
  bool ok = true;
  walk_septets(septets, [&](char32_t cp) {
    if (cp > 0xFF) ok = false;
    out += static_cast<char>(cp & 0xFF);
  });
  return ok;
}

std::string latin1_to_utf8(std::string_view latin1) {
  std::string out;
  out.reserve(latin1.size());
  for (unsigned char c : latin1) detail::append_utf8(out, c);
  return out;
}

std::string utf16be_to_utf8(std::string_view units) {
  std::string out;
  const auto unit = [&](std::size_t i) {
    return static_cast<char32_t>(static_cast<unsigned char>(units[i]) << 8 | static_cast<unsigned char>(units[i + 1]));
  };
  std::size_t i = 0;
  for (; i + 1 < units.size(); i += 2) {
    char32_t u = unit(i);
    if (u >= 0xD800 && u <= 0xDBFF && i + 3 < units.size()) {
      const char32_t low = unit(i + 2);
      if (low >= 0xDC00 && low <= 0xDFFF) {
        detail::append_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00));
        i += 2;
        continue;
      }
    }
    detail::append_utf8(out, (u >= 0xD800 && u <= 0xDFFF) ? detail::replacement_char : u);
  }
  if (i < units.size()) detail::append_utf8(out, detail::replacement_char);
  return out;
}

}  // namespace postino::sms
