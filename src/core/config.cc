// Loads the gateway configuration: a TOML file read with toml++, then the
// command-line flags (CLI11) on top. Runs once on the main thread before any
// shard starts; the gateway_config it returns is owned by the caller and only
// read afterwards. The file is strict: an unknown key, a wrong type or an
// out-of-range value is an error naming the file, the line and the key, since
// a typo silently ignored ("max_mesage_size") is worse than a refusal.
// SMPP delivery ([[smsc]], [[route]], [delivery]) uses its structs' field
// names as keys; cross-checks (routes naming SMSCs, an SMSC's shard below
// the shard count once --shards is known) still name the line at fault.
// [admin] address must be loopback (127.0.0.0/8, ::1, localhost) unless the
// admin endpoint has TLS ([admin] certificate and private_key).
// Exceptions are used inside this file for the first error found and never
// leave it: the public functions return nullopt with the message.
#include <arpa/inet.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>
#include <string_view>
#include <type_traits>
#include <variant>

#include "postino/config.h"
#include "postino/network.h"

namespace postino {
namespace {

struct config_error {
  std::string message;
};

// What the file said about a listener's hostname, kept until the global
// hostname is final (a --hostname flag must reach listeners without their own).
struct parse_state {
  gateway_config config;
  bool hostname_set = false;
  std::vector<std::optional<std::string>> listener_hostnames;
  // Where each [[smsc]] set `shard` ("<file>:<line>"): whether it is below
  // the shard count is only known once --shards is in.
  std::vector<std::pair<std::size_t, std::string>> smsc_shard_lines;
};

const char* type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

// Textual form of an IP literal, canonicalised, or nullopt when it is not one.
std::optional<std::string> canonical_ip(const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  char out[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, text.c_str(), buf) == 1)
    return std::string(inet_ntop(AF_INET, buf, out, sizeof out));
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1)
    return std::string(inet_ntop(AF_INET6, buf, out, sizeof out));
  return std::nullopt;
}

bool is_loopback(const std::string& text) {
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

// The hostname goes into the 220 greeting and the EHLO reply verbatim.
bool valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 255) return false;
  for (unsigned char c : h)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

std::string system_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !valid_hostname(buf)) return "localhost";
  return buf;
}

// store_in<&S::field>: stores a range-checked integer into a field of S,
// converting to the field's type (the range makes the value fit).
template <auto field>
struct field_store;
template <class S, class T, T S::*field>
struct field_store<field> {
  static void store(S& s, std::int64_t v) { s.*field = static_cast<T>(v); }
};
template <auto field>
constexpr auto store_in = &field_store<field>::store;

template <class S>
using integer_store = void (*)(S&, std::int64_t);

// A key whose value is an integer in lo..hi. Its store says the section: a
// field of gateway_config is a top-level key, one of smsc_config a key of
// every [[smsc]], and so on.
struct integer_key {
  std::string_view name;
  std::int64_t lo, hi;
  std::variant<integer_store<gateway_config>, integer_store<smsc_config>, integer_store<delivery_config>,
               integer_store<limits_config>>
      store;
};

// Every plain number of the file, section by section, with its range.
constexpr integer_key integer_keys[] = {
    // The top level.
    {"shards", 0, 256, store_in<&gateway_config::shards>},
    {"node_id", 0, 255, store_in<&gateway_config::node_id>},
    {"idle_timeout", 1, 86400, store_in<&gateway_config::idle_timeout_s>},
    {"data_timeout", 1, 86400, store_in<&gateway_config::data_timeout_s>},
    {"shutdown_grace", 0, 3600, store_in<&gateway_config::shutdown_grace_s>},
    {"auth_workers", 1, 64, store_in<&gateway_config::auth_workers>},
    {"auth_queue", 1, 1 << 24, store_in<&gateway_config::auth_queue>},
    {"checkpoint_interval", 0, 86400, store_in<&gateway_config::checkpoint_interval_s>},
    // [[smsc]]: bind shape, pacing, the TON/NPI pairs (SMPP 3.4 5.2.5-6:
    // TON 0-6, NPI 0-18) and timers.
    {"port", 1, 65535, store_in<&smsc_config::port>},
    {"binds", 1, 64, store_in<&smsc_config::binds>},
    {"window", 1, 1000, store_in<&smsc_config::window>},
    {"max_submits_per_second", 0, 100000, store_in<&smsc_config::max_submits_per_second>},
    {"alphanumeric_ton", 0, 6, store_in<&smsc_config::alphanumeric_ton>},
    {"alphanumeric_npi", 0, 18, store_in<&smsc_config::alphanumeric_npi>},
    {"numeric_ton", 0, 6, store_in<&smsc_config::numeric_ton>},
    {"numeric_npi", 0, 18, store_in<&smsc_config::numeric_npi>},
    {"long_numeric_ton", 0, 6, store_in<&smsc_config::long_numeric_ton>},
    {"long_numeric_npi", 0, 18, store_in<&smsc_config::long_numeric_npi>},
    {"destination_ton", 0, 6, store_in<&smsc_config::destination_ton>},
    {"destination_npi", 0, 18, store_in<&smsc_config::destination_npi>},
    {"enquire_link_s", 1, 3600, store_in<&smsc_config::enquire_link_s>},
    {"response_timeout_s", 1, 600, store_in<&smsc_config::response_timeout_s>},
    {"reconnect_min_ms", 10, 600000, store_in<&smsc_config::reconnect_min_ms>},
    {"reconnect_max_ms", 10, 3600000, store_in<&smsc_config::reconnect_max_ms>},
    // [delivery]
    {"validity_s", 1, 2592000, store_in<&delivery_config::validity_s>},
    {"retry_min_ms", 10, 3600000, store_in<&delivery_config::retry_min_ms>},
    {"retry_max_ms", 10, 86400000, store_in<&delivery_config::retry_max_ms>},
    {"queue_limit", 1, INT64_MAX, store_in<&delivery_config::queue_limit>},
    {"receipt_hold_s", 1, 86400, store_in<&delivery_config::receipt_hold_s>},
    {"failover_after_s", 1, 3600, store_in<&delivery_config::failover_after_s>},
    // [limits]
    {"auth_failures_per_minute", 1, 1'000'000, store_in<&limits_config::auth_failures_per_minute>},
    {"mime_max_parts", 1, 1'000'000, store_in<&limits_config::mime_max_parts>},
    {"mime_max_depth", 1, 1000, store_in<&limits_config::mime_max_depth>},
    {"content_workers", 1, 64, store_in<&limits_config::content_workers>},
    {"content_queue", 1, 1 << 24, store_in<&limits_config::content_queue>},
    {"max_pending_output", 1024, 1 << 30, store_in<&limits_config::max_pending_output>},
    {"connections_per_ip", 0, 1'000'000, store_in<&limits_config::connections_per_ip>},
    {"connections_per_account", 0, 1'000'000, store_in<&limits_config::connections_per_account>},
    {"data_total_timeout", 0, 86400, store_in<&limits_config::data_total_timeout_s>},
    {"max_body_memory", 0, std::int64_t{1} << 48, store_in<&limits_config::max_body_memory>},
};

// The row of `key` in the section whose struct is S, or null.
template <class S>
const integer_key* integer_key_of(std::string_view key) {
  for (const auto& row : integer_keys)
    if (row.name == key && std::holds_alternative<integer_store<S>>(row.store)) return &row;
  return nullptr;
}

// Reads one table of the file against a fixed set of keys.
class toml_reader {
 public:
  explicit toml_reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const toml::source_region& where, std::string_view path,
                         const std::string& what) const {
    throw config_error{source_ + ":" + std::to_string(where.begin.line) + ": " +
                       std::string(path) + ": " + what};
  }

  // Refuses the first key (by line) that `known` does not list.
  void check_keys(const toml::table& t, std::string_view prefix,
                  std::initializer_list<std::string_view> known) const {
    check_keys_of<void>(t, prefix, known);
  }
  // The same where the section's plain numbers (integer_keys rows storing
  // into S) are known too.
  template <class S>
  void check_keys_of(const toml::table& t, std::string_view prefix,
                     std::initializer_list<std::string_view> known) const {
    const toml::key* first = nullptr;
    for (const auto& [k, v] : t) {
      bool ok = false;
      for (auto name : known) ok = ok || k.str() == name;
      if constexpr (!std::is_void_v<S>) ok = ok || integer_key_of<S>(k.str()) != nullptr;
      if (!ok && (first == nullptr || k.source().begin.line < first->source().begin.line))
        first = &k;
    }
    if (first != nullptr)
      throw config_error{source_ + ":" + std::to_string(first->source().begin.line) +
                         ": unknown key '" + std::string(prefix) + std::string(first->str()) +
                         "'"};
  }

  std::int64_t integer(const toml::node& n, std::string_view path, std::int64_t lo,
                       std::int64_t hi) const {
    if (!n.is_integer())
      fail(n.source(), path, std::string("expected an integer, got ") + type_name(n.type()));
    std::int64_t v = n.as_integer()->get();
    if (v < lo || v > hi)
      fail(n.source(), path,
           std::to_string(v) + " is out of range " + std::to_string(lo) + ".." +
               std::to_string(hi));
    return v;
  }

  // Reads `key` into `s` when it is one of the section's plain numbers
  // (integer_keys); false when it is not.
  template <class S>
  bool integer_field(std::string_view key, const toml::node& n, std::string_view path, S& s) const {
    const integer_key* row = integer_key_of<S>(key);
    if (row == nullptr) return false;
    std::get<integer_store<S>>(row->store)(s, integer(n, path, row->lo, row->hi));
    return true;
  }

  std::string string(const toml::node& n, std::string_view path) const {
    if (!n.is_string())
      fail(n.source(), path, std::string("expected a string, got ") + type_name(n.type()));
    return n.as_string()->get();
  }

  bool boolean(const toml::node& n, std::string_view path) const {
    if (!n.is_boolean())
      fail(n.source(), path, std::string("expected a boolean, got ") + type_name(n.type()));
    return n.as_boolean()->get();
  }

  const toml::table& table(const toml::node& n, std::string_view path) const {
    if (!n.is_table())
      fail(n.source(), path, std::string("expected a table, got ") + type_name(n.type()));
    return *n.as_table();
  }

  std::string address(const toml::node& n, std::string_view path) const {
    std::string a = string(n, path);
    if (!canonical_ip(a)) fail(n.source(), path, "'" + a + "' is not an IPv4 or IPv6 address");
    return a;
  }

  std::string hostname(const toml::node& n, std::string_view path) const {
    std::string h = string(n, path);
    if (!valid_hostname(h))
      fail(n.source(), path, "'" + h + "' is not a usable hostname (1-255 printable characters, no spaces)");
    return h;
  }

  std::string nonempty(const toml::node& n, std::string_view path) const {
    std::string s = string(n, path);
    if (s.empty()) fail(n.source(), path, "must not be empty");
    return s;
  }

 private:
  std::string source_;
};

// Where a listener's TLS keys were, for errors that concern them together.
struct tls_keys {
  const toml::node* mode = nullptr;
  const toml::node* require_for_auth = nullptr;
};

bool read_tls_key(const toml_reader& r, std::string_view key, const toml::node& v, const std::string& path,
                  listener_tls_config& tls, tls_keys& where) {
  if (key == "tls") {
    const std::string m = r.string(v, path);
    if (m != "none" && m != "starttls" && m != "implicit")
      r.fail(v.source(), path, "'" + m + "' is not one of \"none\", \"starttls\", \"implicit\"");
    tls.mode = m == "starttls" ? listener_tls::starttls : m == "implicit" ? listener_tls::implicit : listener_tls::none;
    where.mode = &v;
  } else if (key == "certificate") {
    tls.certificate = r.nonempty(v, path);
  } else if (key == "private_key") {
    tls.private_key = r.nonempty(v, path);
  } else if (key == "tls_min_version") {
    tls.min_version = r.string(v, path);
    if (tls.min_version != "1.1" && tls.min_version != "1.2" && tls.min_version != "1.3")
      r.fail(v.source(), path, "'" + tls.min_version + "' is not one of \"1.1\", \"1.2\", \"1.3\"");
  } else if (key == "require_tls_for_auth") {
    tls.require_for_auth = r.boolean(v, path);
    where.require_for_auth = &v;
  } else {
    return false;
  }
  return true;
}

// TLS needs its files; a listener off loopback asks for TLS before AUTH
// unless told otherwise, and one without TLS would then refuse every login,
// which is a configuration mistake to name now rather than a 538 later.
void check_listener_tls(const toml_reader& r, const toml::table& t, const std::string& prefix,
                        listener_config& l, const tls_keys& where) {
  auto& tls = l.tls;
  if (tls.mode != listener_tls::none && (tls.certificate.empty() || tls.private_key.empty()))
    r.fail(where.mode->source(), prefix + "tls", "TLS needs `certificate` and `private_key` (PEM files)");
  if (where.require_for_auth == nullptr) tls.require_for_auth = !is_loopback(l.address);
  if (tls.require_for_auth && tls.mode == listener_tls::none && l.auth_required)
    r.fail(where.require_for_auth != nullptr ? where.require_for_auth->source() : t.source(), prefix + "tls",
           "a listener on " + l.address + " without TLS would refuse every AUTH (require_tls_for_auth is on "
           "off loopback): set tls = \"starttls\" or \"implicit\" with a certificate, or "
           "require_tls_for_auth = false");
}

void read_listener(const toml_reader& r, const toml::table& t, std::size_t index,
                   parse_state& st) {
  const std::string prefix = "listener[" + std::to_string(index) + "].";
  r.check_keys(t, prefix,
               {"address", "port", "auth", "account", "max_message_size", "bare_newline",
                "max_errors", "max_auth_failures", "hostname", "tls", "certificate", "private_key",
                "tls_min_version", "require_tls_for_auth"});
  listener_config l;
  std::optional<std::string> hostname;
  const toml::node* auth_node = nullptr;
  tls_keys tls;
  for (const auto& [k, v] : t) {
    const std::string path = prefix + std::string(k.str());
    const auto& key = k.str();
    if (read_tls_key(r, key, v, path, l.tls, tls)) {
      continue;
    } else if (key == "address") {
      l.address = r.address(v, path);
    } else if (key == "port") {
      l.port = static_cast<std::uint16_t>(r.integer(v, path, 0, 65535));
    } else if (key == "auth") {
      std::string a = r.string(v, path);
      if (a != "required" && a != "none" && a != "relay")
        r.fail(v.source(), path, "'" + a + "' is not one of \"required\", \"none\", \"relay\"");
      l.auth_required = a == "required";
      l.relay = a == "relay";
      auth_node = &v;
    } else if (key == "account") {
      l.account = r.nonempty(v, path);
    } else if (key == "max_message_size") {
      l.session.max_message_size = static_cast<std::uint64_t>(r.integer(v, path, 1, UINT32_MAX));
    } else if (key == "bare_newline") {
      std::string b = r.string(v, path);
      if (b != "normalize" && b != "reject")
        r.fail(v.source(), path, "'" + b + "' is not one of \"normalize\", \"reject\"");
      l.session.bare_newline =
          b == "reject" ? bare_newline_policy::reject : bare_newline_policy::normalize;
    } else if (key == "max_errors") {
      l.session.max_errors = static_cast<unsigned>(r.integer(v, path, 1, 1000));
    } else if (key == "max_auth_failures") {
      l.session.max_auth_failures = static_cast<unsigned>(r.integer(v, path, 1, 100));
    } else if (key == "hostname") {
      hostname = r.hostname(v, path);
    }
  }
  check_listener_tls(r, t, prefix, l, tls);
  if (l.relay && !l.account.empty())
    r.fail(auth_node->source(), prefix + "auth", "auth = \"relay\" takes no `account`: the relay rules choose it");
  if (!l.auth_required && !l.relay) {
    // An unauthenticated listener spends an account's credit for anyone who
    // can connect, so it is only allowed where only this machine can.
    const auto& where = auth_node->source();
    if (l.account.empty())
      r.fail(where, prefix + "auth", "auth = \"none\" needs `account` (the account to charge)");
    if (!is_loopback(l.address))
      r.fail(where, prefix + "auth",
             "auth = \"none\" is only allowed on a loopback address (127.0.0.0/8 or ::1), not " +
                 l.address);
  }
  st.config.listeners.push_back(std::move(l));
  st.listener_hostnames.push_back(std::move(hostname));
}

// SMPP's C-Octet strings (system_id, password, system_type) are ASCII and
// end at a NUL, so anything else would reach the SMSC as something else.
bool printable_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c >= 0x7f) return false;
  return true;
}

bool valid_smsc_name(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!std::isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

std::string c_octet(const toml_reader& r, const toml::node& n, std::string_view path,
                    std::size_t max) {
  std::string s = r.string(n, path);
  if (s.size() > max)
    r.fail(n.source(), path, "'" + s + "' is longer than " + std::to_string(max) + " characters");
  if (!printable_ascii(s)) r.fail(n.source(), path, "must be printable ASCII");
  return s;
}

// The [[smsc]] keys that are not plain numbers: names, credentials and
// choices, each with its own check.
void read_smsc_key(const toml_reader& r, std::string_view key, const toml::node& v, const std::string& path,
                   std::size_t index, parse_state& st, const std::string& source, smsc_config& s) {
  if (key == "name") {
    s.name = r.string(v, path);
    if (!valid_smsc_name(s.name))
      r.fail(v.source(), path, "'" + s.name + "' is not a name (1 or more of A-Z a-z 0-9 _ . -)");
    for (std::size_t i = 0; i < st.config.smscs.size(); ++i)
      if (st.config.smscs[i].name == s.name)
        r.fail(v.source(), path, "'" + s.name + "' is configured twice (also smsc[" + std::to_string(i) + "])");
  } else if (key == "host") {
    s.host = r.nonempty(v, path);
  } else if (key == "system_id") {
    s.system_id = c_octet(r, v, path, 15);
    if (s.system_id.empty()) r.fail(v.source(), path, "must not be empty");
  } else if (key == "password") {
    s.password = c_octet(r, v, path, 8);
  } else if (key == "system_type") {
    s.system_type = c_octet(r, v, path, 12);
  } else if (key == "gsm_data_coding") {
    auto dc = r.integer(v, path, 0, 3);
    if (dc != 0 && dc != 3) r.fail(v.source(), path, std::to_string(dc) + " is not 0 (SMSC default) or 3 (Latin-1)");
    s.gsm_data_coding = static_cast<std::uint8_t>(dc);
  } else if (key == "receipt_ids") {
    s.receipt_ids = r.string(v, path);
    if (s.receipt_ids != "auto" && s.receipt_ids != "same" && s.receipt_ids != "hex" && s.receipt_ids != "decimal")
      r.fail(v.source(), path, "'" + s.receipt_ids + "' is not auto, same, hex or decimal");
  } else if (key == "shard") {
    s.shard = static_cast<int>(r.integer(v, path, -1, 255));
    if (s.shard >= 0) st.smsc_shard_lines.emplace_back(index, source + ":" + std::to_string(v.source().begin.line));
  }
}

// What one [[smsc]] needs as a whole: a name, a system_id, a sane back-off.
void check_smsc(const toml_reader& r, const toml::table& t, const std::string& prefix, const smsc_config& s) {
  if (!t.contains("name")) r.fail(t.source(), prefix + "name", "required (the name routes use)");
  if (!t.contains("system_id")) r.fail(t.source(), prefix + "system_id", "required");
  if (s.reconnect_max_ms < s.reconnect_min_ms) {
    const toml::node* at = t.get("reconnect_max_ms");
    if (at == nullptr) at = t.get("reconnect_min_ms");
    r.fail(at->source(), prefix + (t.contains("reconnect_max_ms") ? "reconnect_max_ms" : "reconnect_min_ms"),
           "reconnect_max_ms (" + std::to_string(s.reconnect_max_ms) +
               ") must not be below reconnect_min_ms (" + std::to_string(s.reconnect_min_ms) + ")");
  }
}

void read_smsc(const toml_reader& r, const toml::table& t, std::size_t index, parse_state& st,
               const std::string& source) {
  const std::string prefix = "smsc[" + std::to_string(index) + "].";
  r.check_keys_of<smsc_config>(
      t, prefix, {"name", "host", "system_id", "password", "system_type", "gsm_data_coding", "receipt_ids", "shard"});
  smsc_config s;
  for (const auto& [k, v] : t) {
    const std::string path = prefix + std::string(k.str());
    if (!r.integer_field(k.str(), v, path, s)) read_smsc_key(r, k.str(), v, path, index, st, source, s);
  }
  check_smsc(r, t, prefix, s);
  st.config.smscs.push_back(std::move(s));
}

// Routes name SMSCs, which toml++ may hand over after the routes (its tables
// are ordered by key), so they are checked once the whole document is read.
void read_route(const toml_reader& r, const toml::table& t, std::size_t index, parse_state& st) {
  const std::string prefix = "route[" + std::to_string(index) + "].";
  r.check_keys(t, prefix, {"prefix", "smscs"});
  route_config route;
  for (const auto& [k, v] : t) {
    const std::string path = prefix + std::string(k.str());
    const auto& key = k.str();
    if (key == "prefix") {
      route.prefix = r.string(v, path);
      if (route.prefix.find_first_not_of("0123456789") != std::string::npos)
        r.fail(v.source(), path,
               "'" + route.prefix + "' is not a prefix (digits of the E.164 number, no '+'; \"\" for every number)");
    } else if (key == "smscs") {
      const toml::array* arr = v.as_array();
      if (arr == nullptr)
        r.fail(v.source(), path, std::string("expected an array of SMSC names, got ") + type_name(v.type()));
      if (arr->empty()) r.fail(v.source(), path, "must name at least one [[smsc]]");
      for (const auto& item : *arr) {
        std::string name = r.string(item, path);
        if (std::find(route.smscs.begin(), route.smscs.end(), name) != route.smscs.end())
          r.fail(item.source(), path, "'" + name + "' is named twice");
        route.smscs.push_back(std::move(name));
      }
    }
  }
  if (!t.contains("smscs")) r.fail(t.source(), prefix + "smscs", "required (the SMSCs in failover order)");
  // No prefix is the default route (""), so two routes without one collide too.
  for (std::size_t i = 0; i < st.config.routes.size(); ++i)
    if (st.config.routes[i].prefix == route.prefix) {
      const toml::node* at = t.get("prefix");
      r.fail(at != nullptr ? at->source() : t.source(), prefix + "prefix",
             "prefix '" + route.prefix + "' is routed twice (also route[" + std::to_string(i) + "])");
    }
  st.config.routes.push_back(std::move(route));
}

void check_routes(const toml_reader& r, const toml::array& arr, const gateway_config& c) {
  for (std::size_t i = 0; i < c.routes.size(); ++i) {
    const toml::table& t = *arr.get(i)->as_table();
    const std::string prefix = "route[" + std::to_string(i) + "]";
    if (c.smscs.empty())
      r.fail(t.source(), prefix, "a route needs an [[smsc]], and none is configured");
    const toml::array& names = *t.get("smscs")->as_array();
    for (std::size_t j = 0; j < c.routes[i].smscs.size(); ++j) {
      const auto& name = c.routes[i].smscs[j];
      bool found = false;
      for (const auto& s : c.smscs) found = found || s.name == name;
      if (!found)
        r.fail(names.get(j)->source(), prefix + ".smscs", "no [[smsc]] is named '" + name + "'");
    }
  }
}

void read_delivery(const toml_reader& r, const toml::table& t, delivery_config& d) {
  r.check_keys_of<delivery_config>(t, "delivery.", {});
  for (const auto& [k, v] : t) r.integer_field(k.str(), v, "delivery." + std::string(k.str()), d);
  if (d.retry_max_ms < d.retry_min_ms) {
    const bool max_given = t.contains("retry_max_ms");
    r.fail(t.get(max_given ? "retry_max_ms" : "retry_min_ms")->source(),
           max_given ? "delivery.retry_max_ms" : "delivery.retry_min_ms",
           "retry_max_ms (" + std::to_string(d.retry_max_ms) + ") must not be below retry_min_ms (" +
               std::to_string(d.retry_min_ms) + ")");
  }
}

// "ADDRESS/BITS" with an IPv4 or IPv6 address and a prefix length that fits it.
std::vector<std::string> network_list(const toml_reader& r, const toml::node& v, const std::string& path) {
  const toml::array* arr = v.as_array();
  if (arr == nullptr) r.fail(v.source(), path, std::string("expected an array of CIDR blocks, got ") + type_name(v.type()));
  std::vector<std::string> out;
  for (const auto& item : *arr) {
    std::string n = r.string(item, path);
    std::string why;
    if (!core::parse_network(n, why)) r.fail(item.source(), path, why);
    out.push_back(std::move(n));
  }
  return out;
}

void read_limits(const toml_reader& r, const toml::table& t, limits_config& l) {
  r.check_keys_of<limits_config>(t, "limits.", {"connection_limit_exempt"});
  for (const auto& [k, v] : t) {
    if (k.str() == "connection_limit_exempt")
      l.connection_limit_exempt = network_list(r, v, "limits.connection_limit_exempt");
    else
      r.integer_field(k.str(), v, "limits." + std::string(k.str()), l);
  }
}

const toml::array& array_of_tables(const toml_reader& r, const toml::node& v, const std::string& key) {
  const toml::array* arr = v.as_array();
  if (arr == nullptr || !arr->is_array_of_tables())
    r.fail(v.source(), key, "expected an array of tables ([[" + key + "]])");
  return *arr;
}

// The admin endpoint's bearer token must not cross the network in clear: a
// non-loopback [admin] address needs the endpoint's TLS (certificate and
// private_key), checked once the whole table is read (admin_tls_check).
std::string admin_address(const toml_reader& r, const toml::node& n) {
  const std::string a = r.string(n, "admin.address");
  if (a == "localhost") return a;
  if (!canonical_ip(a)) r.fail(n.source(), "admin.address", "'" + a + "' is not an IPv4 or IPv6 address or localhost");
  return a;
}

void read_admin(const toml_reader& r, const toml::table& t, gateway_config& c) {
  r.check_keys(t, "admin.", {"address", "port", "certificate", "private_key"});
  if (auto* n = t.get("address")) c.admin_address = admin_address(r, *n);
  if (auto* n = t.get("port")) c.admin_port = static_cast<std::uint16_t>(r.integer(*n, "admin.port", 0, 65535));
  if (auto* n = t.get("certificate")) c.admin_certificate = r.nonempty(*n, "admin.certificate");
  if (auto* n = t.get("private_key")) c.admin_private_key = r.nonempty(*n, "admin.private_key");
  if (c.admin_certificate.empty() != c.admin_private_key.empty())
    r.fail(t.source(), "admin", "TLS needs both `certificate` and `private_key` (PEM files)");
  const auto* address = t.get("address");
  if (address != nullptr && c.admin_address != "localhost" && !is_loopback(c.admin_address) &&
      c.admin_certificate.empty())
    r.fail(address->source(), "admin.address",
           "'" + c.admin_address + "' is not a loopback address (127.0.0.0/8, ::1 or localhost); off loopback the "
           "admin endpoint needs TLS (set [admin] certificate and private_key), so that its bearer token is "
           "never sent in clear");
}

void read_document(const toml_reader& r, const toml::table& doc, parse_state& st,
                   const std::string& source) {
  r.check_keys_of<gateway_config>(doc, "",
                                  {"hostname", "log_level", "data_dir", "database", "create_demo_account",
                                   "ports_file", "admin", "journal", "index", "listener", "smsc", "route",
                                   "delivery", "limits"});
  gateway_config& c = st.config;
  for (const auto& [k, v] : doc) {
    const std::string key(k.str());
    if (r.integer_field(key, v, key, c)) continue;
    if (key == "hostname") {
      c.hostname = r.hostname(v, key);
      st.hostname_set = true;
    } else if (key == "log_level") {
      const std::string level = r.string(v, key);
      if (level != "info" && level != "debug")
        r.fail(v.source(), key, "'" + level + "' is not one of \"info\", \"debug\"");
      c.log_level = level == "debug" ? verbosity::debug : verbosity::info;
    } else if (key == "data_dir") {
      c.data_dir = r.nonempty(v, key);
    } else if (key == "database") {
      c.database = r.string(v, key);
    } else if (key == "create_demo_account") {
      c.create_demo_account = r.boolean(v, key);
    } else if (key == "ports_file") {
      c.ports_file = r.string(v, key);
    } else if (key == "admin") {
      read_admin(r, r.table(v, key), c);
    } else if (key == "journal") {
      const auto& t = r.table(v, key);
      r.check_keys(t, "journal.", {"segment_bytes"});
      if (auto* n = t.get("segment_bytes"))
        c.journal_segment_bytes =
            static_cast<std::uint64_t>(r.integer(*n, "journal.segment_bytes", 1 << 16, 1ll << 40));
    } else if (key == "index") {
      // The message index (postino-ctl message show): how long it keeps a
      // message's text; 0 clears it at the checkpoint thread's next sweep.
      const auto& t = r.table(v, key);
      r.check_keys(t, "index.", {"text_retention_days"});
      if (auto* n = t.get("text_retention_days"))
        c.index_text_retention_days = static_cast<unsigned>(r.integer(*n, "index.text_retention_days", 0, 36500));
    } else if (key == "listener") {
      const toml::array* arr = v.as_array();
      if (arr == nullptr || !arr->is_array_of_tables())
        r.fail(v.source(), key, "expected an array of tables ([[listener]])");
      for (std::size_t i = 0; i < arr->size(); ++i)
        read_listener(r, *arr->get(i)->as_table(), i, st);
    } else if (key == "smsc") {
      const auto& arr = array_of_tables(r, v, key);
      for (std::size_t i = 0; i < arr.size(); ++i) read_smsc(r, *arr.get(i)->as_table(), i, st, source);
    } else if (key == "route") {
      const auto& arr = array_of_tables(r, v, key);
      for (std::size_t i = 0; i < arr.size(); ++i) read_route(r, *arr.get(i)->as_table(), i, st);
    } else if (key == "delivery") {
      read_delivery(r, r.table(v, key), c.delivery);
    } else if (key == "limits") {
      read_limits(r, r.table(v, key), c.limits);
    }
  }
  if (const auto* routes = doc.get("route")) check_routes(r, *routes->as_array(), c);
}

void parse_text_into(const std::string& text, const std::string& source, parse_state& st) {
  toml::table doc;
  try {
    doc = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw config_error{source + ":" + std::to_string(e.source().begin.line) + ":" +
                       std::to_string(e.source().begin.column) + ": " +
                       std::string(e.description())};
  }
  read_document(toml_reader(source), doc, st, source);
}

std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    throw config_error{"cannot read configuration " + path + ": " + std::strerror(errno)};
  std::string text;
  char buf[8192];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0)
    throw config_error{"cannot read configuration " + path + ": " + std::strerror(err)};
  return text;
}

// Fills what depends on other settings, once the file and flags are both in.
void finalize(parse_state& st) {
  gateway_config& c = st.config;
  if (!st.hostname_set) c.hostname = system_hostname();
  if (c.database.empty())
    c.database = c.data_dir + (c.data_dir.ends_with('/') ? "" : "/") + "postino.db";
  // shards = 0 (one per core) is resolved by the gateway, which checks then.
  if (c.shards != 0)
    for (const auto& [index, where] : st.smsc_shard_lines)
      if (static_cast<unsigned>(c.smscs[index].shard) >= c.shards)
        throw config_error{where + ": smsc[" + std::to_string(index) + "].shard: " +
                           std::to_string(c.smscs[index].shard) + " is not below the shard count " +
                           std::to_string(c.shards) + " (shards are numbered 0.." +
                           std::to_string(c.shards - 1) + ")"};
  if (c.listeners.empty()) {
    c.listeners.emplace_back();
    st.listener_hostnames.assign(1, std::nullopt);
  }
  std::set<std::pair<std::string, std::uint16_t>> seen;
  for (std::size_t i = 0; i < c.listeners.size(); ++i) {
    auto& l = c.listeners[i];
    l.session.hostname = st.listener_hostnames[i].value_or(c.hostname);
    l.session.mime_max_parts = c.limits.mime_max_parts;
    l.session.mime_max_depth = c.limits.mime_max_depth;
    l.session.max_pending_output = c.limits.max_pending_output;
    // Port 0 asks for an ephemeral port, so several of those never collide.
    if (l.port != 0 && !seen.emplace(*canonical_ip(l.address), l.port).second)
      throw config_error{"listener[" + std::to_string(i) + "]: " + l.address + " port " +
                         std::to_string(l.port) + " is configured twice"};
  }
}

// "ADDR:PORT", with IPv6 written "[ADDR]:PORT".
listener_config parse_listen_flag(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return config_error{"--listen " + text + ": " + why};
  };
  std::string addr, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find("]:");
    if (close == std::string::npos) throw bad("expected [IPV6]:PORT");
    addr = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) throw bad("expected ADDR:PORT");
    addr = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (addr.find(':') != std::string::npos) throw bad("write an IPv6 address as [ADDR]:PORT");
  }
  if (!canonical_ip(addr)) throw bad("'" + addr + "' is not an IPv4 or IPv6 address");
  // Off loopback AUTH needs TLS (PROTOCOL.md 5a), which only the file configures.
  if (!is_loopback(addr))
    throw bad("a listener off loopback needs TLS for AUTH: configure it in a [[listener]] with tls and a certificate");
  // from_chars: no sign, no spaces, no exception; a value past 16 bits is
  // out of range rather than wrapped.
  std::uint16_t number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size())
    throw bad("the port must be a number 0..65535");
  listener_config l;
  l.address = addr;
  l.port = number;
  return l;
}

}  // namespace

std::optional<gateway_config> parse_config_text(const std::string& toml_text,
                                                const std::string& source_name,
                                                std::string& error) {
  parse_state st;
  try {
    parse_text_into(toml_text, source_name, st);
    finalize(st);
  } catch (const config_error& e) {
    error = e.message;
    return std::nullopt;
  }
  return std::move(st.config);
}

// On --help the help text goes to stdout here, `error` stays empty and
// exit_code is 0. Bad flags and bad files both give exit_code 2.
std::optional<gateway_config> load_config(int argc, char** argv, std::string& error,
                                          int& exit_code) {
  CLI::App app{"postino: SMTP-to-SMS/MMS gateway", "postino"};
  std::string config_path, data_dir, database, hostname, ports_file, log_level;
  std::vector<std::string> listen;
  unsigned shards = 0, node_id = 0;
  std::uint16_t admin_port = 0;
  app.add_option("-c,--config", config_path, "TOML configuration file");
  auto* o_data_dir = app.add_option("--data-dir", data_dir, "data directory (journals, database)");
  auto* o_database = app.add_option("--database", database, "SQLite database (default <data-dir>/postino.db)");
  auto* o_shards = app.add_option("--shards", shards, "shard threads (0: one per core)")
                       ->check(CLI::Range(0u, 256u));
  auto* o_hostname = app.add_option("--hostname", hostname, "name in the greeting and EHLO reply");
  auto* o_listen = app.add_option("--listen", listen,
                                  "ADDR:PORT of an auth-required listener ([ADDR]:PORT for IPv6); "
                                  "repeatable; replaces the configured listeners")
                       ->allow_extra_args(false);
  auto* o_ports_file = app.add_option("--ports-file", ports_file, "write the bound ports here");
  auto* o_admin_port = app.add_option("--admin-port", admin_port, "admin endpoint port (0: none)")
                           ->check(CLI::Range(0, 65535));
  auto* o_node_id = app.add_option("--node-id", node_id, "node number 0..255, unique per cluster")
                        ->check(CLI::Range(0u, 255u));
  auto* o_log_level = app.add_option("--log-level", log_level, "info, or debug: also SMTP phase changes")
                          ->check(CLI::IsMember({"info", "debug"}));
  exit_code = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    error.clear();
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    error = e.what();
    exit_code = 2;
    return std::nullopt;
  }

  parse_state st;
  try {
    if (!config_path.empty()) parse_text_into(read_file(config_path), config_path, st);
    gateway_config& c = st.config;
    if (o_data_dir->count() > 0) {
      if (data_dir.empty()) throw config_error{"--data-dir: must not be empty"};
      c.data_dir = data_dir;
    }
    if (o_database->count() > 0) c.database = database;
    if (o_shards->count() > 0) c.shards = shards;
    if (o_hostname->count() > 0) {
      if (!valid_hostname(hostname))
        throw config_error{"--hostname: '" + hostname + "' is not a usable hostname"};
      c.hostname = hostname;
      st.hostname_set = true;
    }
    if (o_listen->count() > 0) {
      c.listeners.clear();
      st.listener_hostnames.clear();
      for (const auto& text : listen) {
        c.listeners.push_back(parse_listen_flag(text));
        st.listener_hostnames.emplace_back();
      }
    }
    if (o_ports_file->count() > 0) c.ports_file = ports_file;
    if (o_admin_port->count() > 0) c.admin_port = admin_port;
    if (o_node_id->count() > 0) c.node_id = node_id;
    if (o_log_level->count() > 0) c.log_level = log_level == "debug" ? verbosity::debug : verbosity::info;
    finalize(st);
  } catch (const config_error& e) {
    error = e.message;
    exit_code = 2;
    return std::nullopt;
  }
  return std::move(st.config);
}

}  // namespace postino
