// The little JSON postino-load needs: escaping strings for --json and for the
// results a worker process pipes to its parent, and a small reader for those
// results (objects, arrays, strings, numbers, booleans, null). Numbers keep
// their text so 64-bit counters survive the trip exactly. A json_value owns
// its strings and children; the reader copies out of the caller's text.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postino::load {

inline void json_escape_to(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (u < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out.append("\\u00");
          out.push_back(hex[u >> 4]);
          out.push_back(hex[u & 15]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

inline std::string json_quote(std::string_view s) {
  std::string out;
  json_escape_to(out, s);
  return out;
}

struct json_value {
  enum class kind { null, boolean, number, string, array, object };
  kind type = kind::null;
  bool flag = false;
  std::string text;  // the number's digits or the string's decoded value
  std::vector<json_value> items;
  std::vector<std::pair<std::string, json_value>> members;

  const json_value* find(std::string_view key) const {
    for (const auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }
  std::uint64_t as_u64(std::uint64_t fallback = 0) const {
    if (type != kind::number || text.empty() || text[0] == '-') return fallback;
    return std::strtoull(text.c_str(), nullptr, 10);
  }
  std::int64_t as_i64(std::int64_t fallback = 0) const {
    return type == kind::number ? std::strtoll(text.c_str(), nullptr, 10) : fallback;
  }
  double as_double(double fallback = 0) const {
    return type == kind::number ? std::strtod(text.c_str(), nullptr) : fallback;
  }
  std::uint64_t u64(std::string_view key) const {
    const auto* v = find(key);
    return v ? v->as_u64() : 0;
  }
  std::int64_t i64(std::string_view key) const {
    const auto* v = find(key);
    return v ? v->as_i64() : 0;
  }
  std::string str(std::string_view key) const {
    const auto* v = find(key);
    return v && v->type == kind::string ? v->text : std::string{};
  }
  bool boolean(std::string_view key) const {
    const auto* v = find(key);
    return v && v->type == kind::boolean && v->flag;
  }
};

class json_reader {
 public:
  // The value the whole of text holds, or nullopt when it is not JSON.
  static std::optional<json_value> parse(std::string_view text) {
    json_reader r(text);
    json_value v;
    if (!r.value(v, 0)) return std::nullopt;
    r.space();
    if (r.pos_ != r.s_.size()) return std::nullopt;
    return v;
  }

 private:
  explicit json_reader(std::string_view s) : s_(s) {}

  void space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool value(json_value& v, int depth) {
    if (depth > 64) return false;
    space();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (c == '{') return object(v, depth);
    if (c == '[') return array(v, depth);
    if (c == '"') {
      v.type = json_value::kind::string;
      return string(v.text);
    }
    if (literal("true")) {
      v.type = json_value::kind::boolean;
      v.flag = true;
      return true;
    }
    if (literal("false")) {
      v.type = json_value::kind::boolean;
      return true;
    }
    if (literal("null")) return true;
    return number(v);
  }

  bool number(json_value& v) {
    const std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    bool digits = false;
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c >= '0' && c <= '9') digits = true;
      else if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-') break;
      ++pos_;
    }
    if (!digits) return false;
    v.type = json_value::kind::number;
    v.text.assign(s_.substr(start, pos_ - start));
    return true;
  }

  bool string(std::string& out) {
    ++pos_;  // the opening quote
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return false;
      const char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'u': {
          if (pos_ + 4 > s_.size()) return false;
          const unsigned cp = static_cast<unsigned>(std::strtoul(std::string(s_.substr(pos_, 4)).c_str(), nullptr, 16));
          pos_ += 4;
          // Only the control characters json_escape_to writes come back this
          // way; anything wider is kept as UTF-8 for the BMP.
          if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
          } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          } else {
            out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
            out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
          }
          break;
        }
        default: return false;
      }
    }
    return false;
  }

  bool array(json_value& v, int depth) {
    v.type = json_value::kind::array;
    ++pos_;
    space();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      json_value item;
      if (!value(item, depth + 1)) return false;
      v.items.push_back(std::move(item));
      space();
      if (pos_ >= s_.size()) return false;
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return false;
    }
  }

  bool object(json_value& v, int depth) {
    v.type = json_value::kind::object;
    ++pos_;
    space();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      space();
      if (pos_ >= s_.size() || s_[pos_] != '"') return false;
      std::string key;
      if (!string(key)) return false;
      space();
      if (pos_ >= s_.size() || s_[pos_] != ':') return false;
      ++pos_;
      json_value item;
      if (!value(item, depth + 1)) return false;
      v.members.emplace_back(std::move(key), std::move(item));
      space();
      if (pos_ >= s_.size()) return false;
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return false;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace postino::load
