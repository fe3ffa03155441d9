// Exact number validity from libphonenumber's own metadata (see
// number_ranges.h). libphonenumber validates a national significant number
// (NSN) by full-matching ICU regexes of its metadata; under callgrind about
// 85% of that cost is the regex plumbing around the match (pattern-string
// hashing in RegExpCache, UnicodeString conversion, a RegexMatcher per call).
// The patterns only use a small regular subset (digits, \d, classes, (?:),
// |, ?, {n,m}), so each region's patterns are compiled here into one DFA over
// the ten digits whose states carry a bit per pattern that accepts there;
// a lookup walks at most one state per digit. Anything outside the subset,
// or an automaton over the state cap, marks its calling code `unknown` so the
// caller asks libphonenumber: exactness never rests on a guess about the
// data. Reading the bytes libphonenumber itself loads (metadata_get) means
// the two can never disagree on data either.
//
// What is reproduced (phonenumberutil.cc and regex_based_matcher.cc of
// libphonenumber 8.12.57): IsNumberMatchingDesc (possible lengths first, then
// a full match; an empty pattern matches nothing), GetNumberTypeHelper !=
// UNKNOWN (general_desc, then any type; mobile only when
// same_mobile_and_fixed_line_pattern is false), IsValidNumberForRegion, and
// IsValidNumber's region choice for shared calling codes (regions in the
// order of country_calling_code_to_region_code_map, main country first; a
// region with leading_digits is chosen when the NSN starts with a match of
// them, a region without when the number is of a known type there).
//
// The tables are built once, at first use, into a function-local static
// (thread-safe initialisation) and never change afterwards, so every shard
// reads them without locks; a lookup allocates nothing.
#include "number_ranges.h"

#include <phonenumbers/phonemetadata.pb.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace i18n::phonenumbers {
// libphonenumber's compiled-in metadata (a serialized PhoneMetadataCollection),
// exported by libphonenumber.so but declared in metadata.h, which Debian does
// not install.
int metadata_size();
const void* metadata_get();
}  // namespace i18n::phonenumbers

namespace postino::sms {
namespace {

using i18n::phonenumbers::PhoneMetadata;
using i18n::phonenumbers::PhoneMetadataCollection;
using i18n::phonenumbers::PhoneNumberDesc;

constexpr std::size_t max_dfa_states = 50'000;  // per region; fits the 16-bit tables
constexpr int max_repeat = 64;                  // {n,m} bound; the data stays far below
constexpr int max_code = 999;
constexpr std::uint16_t all_digits_mask = 0x3ff;
constexpr std::size_t long_length = 32;  // length bucket for NSNs of 32 digits and more

// Accept bits of a region automaton: general_desc, the types in the order
// GetNumberTypeHelper tries them, and leading_digits (a prefix match).
enum desc_bit : int {
  bit_general,
  bit_premium_rate,
  bit_toll_free,
  bit_shared_cost,
  bit_voip,
  bit_personal_number,
  bit_pager,
  bit_uan,
  bit_voicemail,
  bit_fixed_line,
  bit_mobile,
  bit_leading,
};
constexpr int type_desc_count = bit_mobile + 1;  // general_desc and the ten types

// ---- pattern syntax -> AST ----

struct ast_node {
  enum class kind : std::uint8_t { digits, concat, alternation, repeat };
  kind what = kind::digits;
  std::uint16_t mask = 0;  // digits: which of 0-9 match
  int min = 0, max = 0;    // repeat
  std::vector<int> kids;
};

// Recursive-descent parser for the regex subset the metadata uses. Returns
// false on anything else, including constructs that would change meaning
// under ICU (possessive or lazy quantifiers, anchors, escapes other than \d).
class pattern_parser {
 public:
  explicit pattern_parser(std::string_view text) : text_(text) {}

  bool parse(std::vector<ast_node>& nodes, int& root) {
    nodes_ = &nodes;
    if (!alternation(root)) return false;
    return pos_ == text_.size();
  }

 private:
  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  int add(ast_node n) {
    nodes_->push_back(std::move(n));
    return static_cast<int>(nodes_->size() - 1);
  }

  bool alternation(int& out) {
    ast_node alt;
    alt.what = ast_node::kind::alternation;
    for (;;) {
      int branch = 0;
      if (!concatenation(branch)) return false;
      alt.kids.push_back(branch);
      if (!at('|')) break;
      ++pos_;
    }
    out = alt.kids.size() == 1 ? alt.kids.front() : add(std::move(alt));
    return true;
  }

  bool concatenation(int& out) {
    ast_node cat;
    cat.what = ast_node::kind::concat;
    while (pos_ < text_.size() && !at('|') && !at(')')) {
      int atom_index = 0;
      if (!atom(atom_index) || !quantified(atom_index)) return false;
      cat.kids.push_back(atom_index);
    }
    out = add(std::move(cat));
    return true;
  }

  bool atom(int& out) {
    char c = text_[pos_];
    if (c >= '0' && c <= '9') {
      ++pos_;
      out = add_digits(static_cast<std::uint16_t>(1u << (c - '0')));
      return true;
    }
    if (c == '\\') {
      if (pos_ + 1 >= text_.size() || text_[pos_ + 1] != 'd') return false;
      pos_ += 2;
      out = add_digits(all_digits_mask);
      return true;
    }
    if (c == '[') return char_class(out);
    if (c == '(') {
      ++pos_;
      if (at('?')) {  // only the non-capturing group; lookarounds etc. are refused
        if (pos_ + 1 >= text_.size() || text_[pos_ + 1] != ':') return false;
        pos_ += 2;
      }
      if (!alternation(out) || !at(')')) return false;
      ++pos_;
      return true;
    }
    return false;
  }

  bool char_class(int& out) {
    ++pos_;  // '['
    std::uint16_t mask = 0;
    bool empty = true;
    while (!at(']')) {
      if (pos_ >= text_.size()) return false;
      char c = text_[pos_];
      if (c == '\\') {
        if (pos_ + 1 >= text_.size() || text_[pos_ + 1] != 'd') return false;
        pos_ += 2;
        mask = all_digits_mask;
      } else if (c >= '0' && c <= '9') {
        ++pos_;
        char last = c;
        if (at('-') && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']') {
          last = text_[pos_ + 1];
          if (last < c || last > '9') return false;
          pos_ += 2;
        }
        for (char d = c; d <= last; ++d) mask |= static_cast<std::uint16_t>(1u << (d - '0'));
      } else {
        return false;  // negation, a non-digit member, a '-' at an edge...
      }
      empty = false;
    }
    if (empty) return false;
    ++pos_;  // ']'
    out = add_digits(mask);
    return true;
  }

  // One optional quantifier after an atom: '?', {n} or {n,m}. Anything
  // else (a second quantifier, ICU's lazy or possessive forms, '*', '+',
  // {n,}) is refused: the metadata has none, so none is tested.
  bool quantified(int& atom_index) {
    int min = 0, max = 0;
    if (at('?')) {
      ++pos_;
      max = 1;
    } else if (at('{')) {
      ++pos_;
      if (!number(min)) return false;
      max = min;
      if (at(',')) {
        ++pos_;
        if (!number(max) || max < min) return false;
      }
      if (!at('}')) return false;
      ++pos_;
    } else {
      return true;
    }
    if (at('?') || at('*') || at('+') || at('{')) return false;
    ast_node rep;
    rep.what = ast_node::kind::repeat;
    rep.min = min;
    rep.max = max;
    rep.kids.push_back(atom_index);
    atom_index = add(std::move(rep));
    return true;
  }

  bool number(int& out) {
    std::size_t start = pos_;
    out = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9' && pos_ - start < 3)
      out = out * 10 + (text_[pos_++] - '0');
    return pos_ > start && out <= max_repeat &&
           !(pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9');
  }

  int add_digits(std::uint16_t mask) {
    ast_node n;
    n.mask = mask;
    return add(std::move(n));
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::vector<ast_node>* nodes_ = nullptr;
};

// ---- AST -> Thompson NFA ----

struct nfa_state {
  std::uint16_t mask = 0;    // digits leading to `out`
  std::uint16_t accept = 0;  // desc bits accepted here
  std::int32_t out = -1;
  std::int32_t eps[2] = {-1, -1};
};

class nfa_builder {
 public:
  std::vector<nfa_state> states;

  int add_state() {
    states.emplace_back();
    return static_cast<int>(states.size() - 1);
  }

  int split(int a, int b) {
    int s = add_state();
    states[s].eps[0] = a;
    states[s].eps[1] = b;
    return s;
  }

  // Builds `node` backwards: returns the entry state of a fragment that
  // continues to `next` once the node has matched.
  int emit(const std::vector<ast_node>& nodes, int node, int next) {
    const ast_node& n = nodes[node];
    switch (n.what) {
      case ast_node::kind::digits: {
        int s = add_state();
        states[s].mask = n.mask;
        states[s].out = next;
        return s;
      }
      case ast_node::kind::concat:
        for (auto it = n.kids.rbegin(); it != n.kids.rend(); ++it) next = emit(nodes, *it, next);
        return next;
      case ast_node::kind::alternation: {
        int entry = emit(nodes, n.kids.back(), next);
        for (auto it = n.kids.rbegin() + 1; it != n.kids.rend(); ++it)
          entry = split(emit(nodes, *it, next), entry);
        return entry;
      }
      case ast_node::kind::repeat: {
        // (x(x(x)?)?)? for the optional copies: nested, so the subsets stay small.
        int tail = next;
        for (int i = n.min; i < n.max; ++i) tail = split(emit(nodes, n.kids.front(), tail), next);
        for (int i = 0; i < n.min; ++i) tail = emit(nodes, n.kids.front(), tail);
        return tail;
      }
    }
    return next;
  }
};

// ---- NFA -> DFA (subset construction) ----

// One region's automaton: state 0 rejects everything and is absorbing.
struct region_dfa {
  std::vector<std::uint16_t> next;    // [state * 10 + digit]
  std::vector<std::uint16_t> accept;  // desc bits per state
  std::uint16_t start = 0;
  std::uint16_t counted_types = 0;  // type bits GetNumberTypeHelper counts
  bool has_leading = false;
  // Desc bits whose possible lengths admit an NSN of length L (L >= 32: long_length).
  std::array<std::uint16_t, long_length + 1> length_ok{};

  std::uint16_t walk(std::string_view digits) const {
    std::uint32_t s = start;
    for (char c : digits) {
      s = next[s * 10 + static_cast<std::uint32_t>(c - '0')];
      if (s == 0) return 0;
    }
    return accept[s];
  }

  std::uint16_t accepted(std::uint16_t bits, std::size_t length) const {
    return bits & length_ok[std::min(length, long_length)];
  }

  // GetNumberTypeHelper(nsn) != UNKNOWN, from the walk's accept bits.
  bool known_type(std::uint16_t bits, std::size_t length) const {
    std::uint16_t ok = accepted(bits, length);
    return (ok & (1u << bit_general)) != 0 && (ok & counted_types) != 0;
  }
};

class dfa_builder {
 public:
  explicit dfa_builder(const std::vector<nfa_state>& nfa) : nfa_(nfa), mark_(nfa.size(), 0) {}

  bool build(int nfa_start, region_dfa& out) {
    out_ = &out;
    intern({});  // state 0: the empty set
    std::vector<std::int32_t> set;
    closure({nfa_start}, set);
    out.start = static_cast<std::uint16_t>(intern(set));
    std::vector<std::int32_t> moved;
    for (std::size_t s = 1; s < sets_.size(); ++s) {
      for (int d = 0; d < 10; ++d) {
        moved.clear();
        for (std::int32_t n : sets_[s])
          if (nfa_[n].mask & (1u << d)) moved.push_back(nfa_[n].out);
        closure(moved, set);
        std::size_t target = intern(set);
        if (target >= max_dfa_states) return false;
        out.next[s * 10 + static_cast<std::size_t>(d)] = static_cast<std::uint16_t>(target);
      }
    }
    return true;
  }

 private:
  // The states reachable through epsilon moves that matter to the DFA
  // (digit moves or accepts), sorted so equal sets compare equal.
  void closure(const std::vector<std::int32_t>& from, std::vector<std::int32_t>& set) {
    set.clear();
    ++epoch_;
    stack_.assign(from.begin(), from.end());
    while (!stack_.empty()) {
      std::int32_t n = stack_.back();
      stack_.pop_back();
      if (n < 0 || mark_[n] == epoch_) continue;
      mark_[n] = epoch_;
      const nfa_state& st = nfa_[n];
      if (st.mask != 0 || st.accept != 0) set.push_back(n);
      stack_.push_back(st.eps[0]);
      stack_.push_back(st.eps[1]);
    }
    std::sort(set.begin(), set.end());
  }

  std::size_t intern(const std::vector<std::int32_t>& set) {
    std::string key(reinterpret_cast<const char*>(set.data()), set.size() * sizeof(std::int32_t));
    auto [it, fresh] = index_.try_emplace(std::move(key), sets_.size());
    if (fresh) {
      sets_.push_back(set);
      std::uint16_t bits = 0;
      for (std::int32_t n : set) bits |= nfa_[n].accept;
      out_->accept.push_back(bits);
      out_->next.resize(out_->next.size() + 10, 0);
    }
    return it->second;
  }

  const std::vector<nfa_state>& nfa_;
  std::vector<std::uint32_t> mark_;
  std::uint32_t epoch_ = 0;
  std::vector<std::int32_t> stack_;
  std::vector<std::vector<std::int32_t>> sets_;
  std::unordered_map<std::string, std::size_t> index_;
  region_dfa* out_ = nullptr;
};

// ---- metadata -> tables ----

// The metadata's description of each type, indexed by desc_bit.
using desc_getter = const PhoneNumberDesc& (PhoneMetadata::*)() const;
constexpr desc_getter type_descs[type_desc_count] = {
    &PhoneMetadata::general_desc, &PhoneMetadata::premium_rate,    &PhoneMetadata::toll_free,
    &PhoneMetadata::shared_cost,  &PhoneMetadata::voip,            &PhoneMetadata::personal_number,
    &PhoneMetadata::pager,        &PhoneMetadata::uan,             &PhoneMetadata::voicemail,
    &PhoneMetadata::fixed_line,   &PhoneMetadata::mobile,
};

const PhoneNumberDesc& desc_for(const PhoneMetadata& m, int bit) { return (m.*type_descs[bit])(); }

// Adds `pattern` to the NFA behind `entry` with an accepting end tagged
// `bit`; a leading_digits end also loops on every digit, so "the input
// starts with a match" becomes "the walk ends in a state holding it".
bool add_pattern(nfa_builder& nfa, int& entry, std::string_view pattern, int bit) {
  std::vector<ast_node> nodes;
  int root = 0;
  if (!pattern_parser(pattern).parse(nodes, root)) return false;
  int end = nfa.add_state();
  nfa.states[end].accept = static_cast<std::uint16_t>(1u << bit);
  if (bit == bit_leading) {
    nfa.states[end].mask = all_digits_mask;
    nfa.states[end].out = end;
  }
  int start = nfa.emit(nodes, root, end);
  entry = entry < 0 ? start : nfa.split(start, entry);
  return true;
}

bool compile_region(const PhoneMetadata& m, region_dfa& out) {
  nfa_builder nfa;
  int entry = -1;
  for (int bit = 0; bit < type_desc_count; ++bit) {
    const PhoneNumberDesc& desc = desc_for(m, bit);
    std::uint32_t lengths = 0;
    for (int l : desc.possible_length()) {
      if (l >= static_cast<int>(long_length)) return false;  // beyond the length buckets
      if (l >= 0) lengths |= 1u << l;
    }
    for (std::size_t l = 0; l <= long_length; ++l) {
      bool ok = desc.possible_length_size() == 0 || (l < long_length && (lengths >> l) & 1u);
      if (ok) out.length_ok[l] |= static_cast<std::uint16_t>(1u << bit);
    }
    // An empty pattern matches nothing (RegexBasedMatcher::MatchNationalNumber).
    if (desc.national_number_pattern().empty()) continue;
    if (!add_pattern(nfa, entry, desc.national_number_pattern(), bit)) return false;
  }
  for (int bit = bit_premium_rate; bit <= bit_mobile; ++bit)
    if (bit != bit_mobile || !m.same_mobile_and_fixed_line_pattern())
      out.counted_types |= static_cast<std::uint16_t>(1u << bit);
  // has_leading_digits, not non-empty: an empty pattern is a match of every NSN.
  out.has_leading = m.has_leading_digits();
  if (out.has_leading) {
    if (!add_pattern(nfa, entry, m.leading_digits(), bit_leading)) return false;
    for (auto& ok : out.length_ok) ok |= 1u << bit_leading;
  }
  if (entry < 0) entry = nfa.add_state();  // nothing matches: the walk dies at once
  return dfa_builder(nfa.states).build(entry, out);
}

struct code_entry {
  std::uint16_t first = 0;  // into tables::order
  std::uint8_t count = 0;   // 0: libphonenumber does not know the code
  bool compiled = false;
};

struct tables {
  std::vector<region_dfa> regions;
  std::vector<std::uint16_t> order;  // region indices per code, main country first
  std::array<code_entry, max_code + 1> codes{};
  number_ranges_info info;
};

std::size_t heap_bytes(const region_dfa& r) {
  return r.next.capacity() * sizeof(r.next[0]) + r.accept.capacity() * sizeof(r.accept[0]);
}

tables build_tables() {
  auto t0 = std::chrono::steady_clock::now();
  tables t;
  PhoneMetadataCollection collection;
  if (!collection.ParseFromArray(i18n::phonenumbers::metadata_get(),
                                 i18n::phonenumbers::metadata_size()))
    return t;  // no compiled code: is_valid_number says unknown to every question
  // The region lists as PhoneNumberUtil's constructor builds them: in
  // collection order, the main country pushed to the front; "ZZ" skipped;
  // the first metadata of a region id (or non-geographic code) is the one used.
  std::array<std::vector<const PhoneMetadata*>, max_code + 1> lists;
  std::unordered_map<std::string, const PhoneMetadata*> by_region;
  std::unordered_map<int, const PhoneMetadata*> non_geographic;
  std::vector<int> out_of_range;
  for (const PhoneMetadata& m : collection.metadata()) {
    if (m.id() == "ZZ") continue;
    if (m.id() == "001")
      non_geographic.try_emplace(m.country_code(), &m);
    else
      by_region.try_emplace(m.id(), &m);
    int code = m.country_code();
    if (code < 1 || code > max_code) {
      out_of_range.push_back(code);
      continue;
    }
    auto& list = lists[static_cast<std::size_t>(code)];
    if (!list.empty() && m.main_country_for_code())
      list.insert(list.begin(), &m);
    else
      list.push_back(&m);
  }
  for (int code = 1; code <= max_code; ++code) {
    auto& list = lists[static_cast<std::size_t>(code)];
    if (list.empty()) continue;
    code_entry& e = t.codes[static_cast<std::size_t>(code)];
    e.first = static_cast<std::uint16_t>(t.order.size());
    e.count = static_cast<std::uint8_t>(std::min<std::size_t>(list.size(), 255));
    e.compiled = list.size() <= 255;
    std::size_t regions_before = t.regions.size();
    for (const PhoneMetadata* listed : list) {
      const PhoneMetadata* m =
          listed->id() == "001" ? non_geographic[code] : by_region[listed->id()];
      region_dfa r;
      if (!e.compiled || m->country_code() != code || !compile_region(*m, r)) {
        e.compiled = false;
        break;
      }
      r.next.shrink_to_fit();
      r.accept.shrink_to_fit();
      t.order.push_back(static_cast<std::uint16_t>(t.regions.size()));
      t.regions.push_back(std::move(r));
    }
    if (!e.compiled) {
      t.order.resize(e.first);
      t.regions.resize(regions_before);
      t.info.fallback_codes.push_back(code);
    } else {
      t.info.compiled_codes.push_back(code);
    }
  }
  t.info.fallback_codes.insert(t.info.fallback_codes.end(), out_of_range.begin(),
                               out_of_range.end());
  t.info.regions = t.regions.size();
  for (const region_dfa& r : t.regions) {
    t.info.dfa_states += r.accept.size();
    t.info.table_bytes += heap_bytes(r) + sizeof(region_dfa);
  }
  t.info.table_bytes += t.order.capacity() * sizeof(std::uint16_t) + sizeof(tables);
  t.info.build_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

const tables& the_tables() {
  static const tables t = build_tables();
  return t;
}

}  // namespace

validity is_valid_number(int country_code, std::string_view national_digits) {
  const tables& t = the_tables();
  if (country_code < 1 || country_code > max_code || t.info.compiled_codes.empty())
    return validity::unknown;
  const code_entry& e = t.codes[static_cast<std::size_t>(country_code)];
  if (e.count == 0) return validity::invalid;  // libphonenumber has no region for it
  if (!e.compiled) return validity::unknown;
  for (char c : national_digits)
    if (c < '0' || c > '9') return validity::unknown;
  std::size_t length = national_digits.size();
  const std::uint16_t* order = t.order.data() + e.first;
  // IsValidNumberForRegion(number, main region).
  const region_dfa& main = t.regions[order[0]];
  std::uint16_t main_bits = main.walk(national_digits);
  if (main.known_type(main_bits, length)) return validity::valid;
  if (e.count == 1) return validity::invalid;  // IsValidNumber would pick the main region again
  // IsValidNumber: the region GetRegionCodeForNumberFromRegionList picks.
  for (std::size_t i = 0; i < e.count; ++i) {
    const region_dfa& r = t.regions[order[i]];
    std::uint16_t bits = i == 0 ? main_bits : r.walk(national_digits);
    if (r.has_leading) {
      if (r.accepted(bits, length) & (1u << bit_leading))
        return r.known_type(bits, length) ? validity::valid : validity::invalid;
    } else if (r.known_type(bits, length)) {
      return validity::valid;
    }
  }
  return validity::invalid;  // no region: "ZZ", never valid
}

i18n::phonenumbers::PhoneNumber make_phone_number(int country_code,
                                                  std::string_view national_digits) {
  i18n::phonenumbers::PhoneNumber number;
  number.set_country_code(country_code);
  std::uint64_t value = 0;
  for (char c : national_digits) value = value * 10 + static_cast<std::uint64_t>(c - '0');
  number.set_national_number(value);
  // Leading zeros are significant in some countries (Italian landlines);
  // Parse records them the same way (SetItalianLeadingZerosForPhoneNumber:
  // an all-zero number keeps its last zero in national_number).
  std::size_t zeros = 0;
  while (zeros + 1 < national_digits.size() && national_digits[zeros] == '0') ++zeros;
  if (zeros > 0) {
    number.set_italian_leading_zero(true);
    if (zeros > 1) number.set_number_of_leading_zeros(static_cast<int>(zeros));
  }
  return number;
}

const number_ranges_info& number_ranges_stats() { return the_tables().info; }

pattern_match match_pattern(std::string_view pattern, std::string_view digits, bool prefix) {
  for (char c : digits)
    if (c < '0' || c > '9') return pattern_match::unsupported;
  nfa_builder nfa;
  int entry = -1;
  int bit = prefix ? bit_leading : bit_general;
  if (!add_pattern(nfa, entry, pattern, bit)) return pattern_match::unsupported;
  region_dfa dfa;
  if (!dfa_builder(nfa.states).build(entry, dfa)) return pattern_match::unsupported;
  return dfa.walk(digits) & (1u << bit) ? pattern_match::yes : pattern_match::no;
}

}  // namespace postino::sms
