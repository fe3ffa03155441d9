// postino-ctl: the administration tool for postino's account store
// (accounts, passwords, status, settings, credit, destination price tables)
// and a reader of its message index (a message's delivery per recipient and
// segment, inbound messages from handsets). It opens postino.db directly; every
// write first takes the database lock the gateway holds for its lifetime.
// When the gateway holds it, credit top-ups, suspend and resume go through
// the gateway's loopback admin endpoint instead (httplib::Client with the
// bearer token of <data-dir>/admin-token, connect + send + answer bounded by
// 5 s; the JSON answers read with nlohmann-json), because only the gateway
// may change a running account's credit and cached logins; `account show`
// then adds the live balance and leases; every other write refuses. Reads
// work alongside the gateway thanks to SQLite's WAL mode.
// The credit `account show` and `list` print is the spendable credit: live
// from the admin endpoint while the gateway runs, else accounts.credit plus
// the checkpoint's journal delta plus the journals' records past the
// checkpoint (read without changing them: none after a clean stop, whose
// final checkpoint covers everything; some after a crash, and then it says so).
// The message index is read on a read-only connection of its own, so
// `message show` and `inbound list` never write and never wait for the lock.
// Exit codes: 0 done, 1 usage or operational error (a non-2xx admin answer
// included, a missing or unreadable admin token, and a queue id the index
// does not have), 2 no such account or a
// conflict (duplicate name, credit out of range), 3 the gateway holds the
// lock and no admin endpoint is known.
// Everything it touches is its own: command-line strings, account copies,
// the journal records it sums, and the client, token and answer of each
// admin request.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "admin_token.h"
#include "postino/ascii.h"
#include "postino/config.h"
#include "postino/credit.h"
#include "postino/message_state.h"
#include "postino/spool.h"

namespace {

using postino::account_settings;
using postino::account_status;
using postino::credit::account_store;
using postino::credit::database_lock;
using postino::credit::stored_account;

constexpr int exit_ok = 0;
constexpr int exit_usage = 1;
constexpr int exit_not_found = 2;
constexpr int exit_locked = 3;

// Thrown with the exit code and message; caught only in main.
struct ctl_error {
  int code;
  std::string message;
};

[[noreturn]] void fail(int code, std::string message) { throw ctl_error{code, std::move(message)}; }

struct options {
  std::string database, data_dir, config;
  std::string admin;     // --admin HOST:PORT, else found through -c when needed
  std::string account;   // <user|id>
  std::string password;
  long long credit = 0;
  long long amount = 0;
  std::string default_originator;
  std::string allowed_originators;
  unsigned max_recipients = 1000;
  std::string default_country;
  long long unit_price = 1;
  // Message content settings (issue 4); defaults as in account_settings.
  std::string content_mode = "auto";
  unsigned max_segments = 1;
  bool subject_prefix = false;
  bool strip_signature = true;
  bool strip_quoted_reply = true;
  bool subject_as_text = true;
  bool transliterate = false;
  bool mms_enabled = false;
  unsigned long long max_mms_bytes = postino::default_max_mms_bytes;
  long long mms_price = 3;
  // Which of the settings options were given (account set changes only those).
  std::vector<std::string> given;
  // price set/list/delete
  std::string price_account;  // empty: the global table
  std::string prefix;
  long long price = 0;
  // message show / inbound list
  std::string queue_id;
  unsigned limit = 100;
  // Relay rule (PROTOCOL.md 5a): comma-separated; '' clears the list.
  std::string relay_networks, relay_domains;
  std::string admin_ca;  // --admin-ca: HTTPS to the admin endpoint, trusting this PEM
};

bool given(const options& o, const std::string& name) {
  return std::find(o.given.begin(), o.given.end(), name) != o.given.end();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_text_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) fail(exit_usage, "cannot read " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

// The gateway's TOML file (-c), parsed; ends the command when it is bad.
postino::gateway_config config_file(const options& o) {
  std::string error;
  auto cfg = postino::parse_config_text(read_text_file(o.config), o.config, error);
  if (!cfg) fail(exit_usage, error);
  return *cfg;
}

// The same default as the gateway: <data_dir>/postino.db, data_dir
// ./postino-data; a gateway config file (-c) supplies both when given.
std::string database_path(const options& o) {
  if (!o.database.empty()) return o.database;
  std::string data_dir = "./postino-data";
  std::string database;
  if (!o.config.empty()) {
    const postino::gateway_config cfg = config_file(o);
    data_dir = cfg.data_dir;
    database = cfg.database;
  }
  if (!o.data_dir.empty()) return o.data_dir + (o.data_dir.ends_with('/') ? "" : "/") + "postino.db";
  if (!database.empty()) return database;
  return data_dir + "/postino.db";
}

[[noreturn]] void fail_no_database(const std::string& db) {
  fail(exit_usage, "no database at " + db + " (use --database, --data-dir or -c)");
}

// The database a command changes or reads: it must exist already.
std::string existing_database(const options& o) {
  std::string db = database_path(o);
  if (!file_exists(db)) fail_no_database(db);
  return db;
}

std::unique_ptr<account_store> open_store(const std::string& db, bool create) {
  if (!create && !file_exists(db)) fail_no_database(db);
  std::string error;
  auto store = account_store::open(db, error);
  if (!store) fail(exit_usage, error);
  for (const std::string& note : store->migration_notes()) std::fprintf(stderr, "postino-ctl: migrated: %s\n", note.c_str());
  return store;
}

[[noreturn]] void refuse_locked(const std::string& db) {
  fail(exit_locked, "the gateway is running and holds " + db +
                        ".lock; stop it first (live changes come with the admin endpoint)");
}

// True with the lock taken; false when the gateway holds it.
bool lock_unless_held(database_lock& lock, const std::string& db) {
  if (lock.try_acquire(db)) return true;
  if (errno == EWOULDBLOCK) return false;
  fail(exit_usage, "cannot lock " + db + ".lock: " + std::strerror(errno));
}

void take_lock(database_lock& lock, const std::string& db) {
  if (!lock_unless_held(lock, db)) refuse_locked(db);
}

// Whether someone (the gateway) holds the lock, for reads that take none: a
// shared probe, dropped at once, on a lock file that must already exist.
bool lock_is_held(const std::string& db) {
  int fd = ::open((db + ".lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  int rc;
  do {
    rc = ::flock(fd, LOCK_SH | LOCK_NB);
  } while (rc < 0 && errno == EINTR);
  const bool held = rc < 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

// ---- The admin endpoint of a running gateway ----

struct endpoint {
  std::string host;  // without IPv6 brackets
  int port = 0;
};

// "host:port" or "[v6]:port", as the gateway writes it in its ports file.
std::optional<endpoint> parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int number = 0;
  const auto parsed = std::from_chars(port.data(), port.data() + port.size(), number);
  if (host.empty() || port.empty() || parsed.ec != std::errc() || parsed.ptr != port.data() + port.size() ||
      number <= 0 || number > 65535)
    return std::nullopt;
  return endpoint{host, number};
}

// The `admin <addr>:<port>` line of the gateway's ports file, if any.
std::optional<endpoint> endpoint_from_ports_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::nullopt;
  std::fclose(f);
  const std::string text = read_text_file(path);
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (line.rfind("admin ", 0) == 0) return parse_endpoint(line.substr(6));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

// --admin; else the gateway config's ports file; else its [admin] address
// and port. Only asked once the gateway is known to hold the lock.
std::optional<endpoint> find_endpoint(const options& o) {
  if (!o.admin.empty()) {
    auto e = parse_endpoint(o.admin);
    if (!e) fail(exit_usage, "--admin: '" + o.admin + "' is not HOST:PORT");
    return e;
  }
  if (o.config.empty()) return std::nullopt;
  const postino::gateway_config cfg = config_file(o);
  if (!cfg.ports_file.empty())
    if (auto e = endpoint_from_ports_file(cfg.ports_file)) return e;
  if (cfg.admin_port != 0) return endpoint{cfg.admin_address, cfg.admin_port};
  return std::nullopt;
}

endpoint endpoint_or_refuse(const options& o, const std::string& db) {
  auto e = find_endpoint(o);
  if (!e) refuse_locked(db);
  return *e;
}

// The gateway's data directory, where its admin token is: --data-dir, else
// the -c file's data_dir, else the directory of --database, else the default.
std::string data_dir_of(const options& o) {
  if (!o.data_dir.empty()) return o.data_dir;
  if (!o.config.empty()) return config_file(o).data_dir;
  if (!o.database.empty()) {
    const auto parent = std::filesystem::path(o.database).parent_path();
    return parent.empty() ? "." : parent.string();
  }
  return "./postino-data";
}

std::string admin_token(const options& o) {
  std::string error;
  auto token = postino::app::read_admin_token(postino::app::admin_token_path(data_dir_of(o)), error);
  if (!token)
    fail(exit_usage, error + " (the gateway writes it when it starts; run postino-ctl as the gateway's user, "
                             "with --data-dir or -c naming the gateway's data directory)");
  return *token;
}

// The whole exchange is bounded by 5 s: connect, send, then the answer.
constexpr auto admin_connect_timeout = std::chrono::seconds(1);
constexpr auto admin_write_timeout = std::chrono::seconds(1);
constexpr auto admin_read_timeout = std::chrono::seconds(3);

std::string where(const endpoint& e) {
  return (e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port);
}

std::string transport_error(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection: return "cannot connect (is the gateway listening there?)";
    case httplib::Error::ConnectionTimeout: return "no connection within 1 s";
    case httplib::Error::Read: return "no answer within 3 s, or the connection broke";
    case httplib::Error::Write: return "cannot send the request";
    default: return httplib::to_string(error);
  }
}

// One request with the token; the JSON object of a 2xx answer. Anything
// else ends the command with the gateway's reason.
// The certificate to trust for HTTPS: --admin-ca, else the gateway config's
// own [admin] certificate (a self-signed one); empty: plain HTTP (loopback).
std::string admin_trust(const options& o) {
  if (!o.admin_ca.empty()) return o.admin_ca;
  return o.config.empty() ? std::string() : config_file(o).admin_certificate;
}

httplib::Result admin_exchange(httplib::ClientImpl& client, const options& o, const std::string& method,
                               const std::string& target) {
  client.set_bearer_token_auth(admin_token(o));
  client.set_connection_timeout(admin_connect_timeout);
  client.set_write_timeout(admin_write_timeout);
  client.set_read_timeout(admin_read_timeout);
  client.set_keep_alive(false);
  return method == "GET" ? client.Get(target) : client.Post(target);
}

nlohmann::json admin_call(const options& o, const endpoint& e, const std::string& method, const std::string& target) {
  const std::string trust = admin_trust(o);
  httplib::Result r = [&] {
    if (trust.empty()) {
      httplib::ClientImpl client(e.host, e.port);
      return admin_exchange(client, o, method, target);
    }
    // The server's certificate must chain to `trust` and name the host.
    httplib::SSLClient client(e.host, e.port);
    client.set_ca_cert_path(trust.c_str());
    client.enable_server_certificate_verification(true);
    httplib::Result answer = admin_exchange(client, o, method, target);
    if (!answer && client.get_openssl_verify_result() != X509_V_OK)
      fail(exit_usage, "admin endpoint " + where(e) + ": its certificate is not trusted (" +
                           X509_verify_cert_error_string(client.get_openssl_verify_result()) + "; --admin-ca " +
                           trust + ")");
    return answer;
  }();
  if (!r) fail(exit_usage, "admin endpoint " + where(e) + ": " + transport_error(r.error()));
  const nlohmann::json body = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (r->status < 200 || r->status > 299) {
    std::string why = r->body;
    if (body.is_object() && body.contains("error") && body["error"].is_string()) why = body["error"];
    while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
    fail(exit_usage, "admin endpoint answered " + std::to_string(r->status) + ": " + why);
  }
  if (!body.is_object()) fail(exit_usage, "admin endpoint " + where(e) + ": not a JSON object: " + r->body);
  return body;
}

// A number or boolean field of an admin answer, as text.
std::string json_field(const nlohmann::json& answer, const char* name) {
  if (!answer.contains(name)) fail(exit_usage, std::string("admin endpoint: no '") + name + "' in " + answer.dump());
  return answer[name].dump();
}

// The "balance" of an admin account answer: the home shard's balance, the
// 235 line's CREDIT.
postino::credit_units live_balance(const nlohmann::json& answer) {
  if (!answer.contains("balance") || !answer["balance"].is_number_integer())
    fail(exit_usage, "admin endpoint: no integer 'balance' in " + answer.dump());
  return answer["balance"].get<postino::credit_units>();
}

// `who` as an account id: digits only, within 64 bits.
std::optional<std::uint64_t> account_id_of(const std::string& who) {
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(who.data(), who.data() + who.size(), id);
  if (!postino::all_digits(who) || ec != std::errc() || end != who.data() + who.size()) return std::nullopt;
  return id;
}

// A username first; only when none matches, a number is taken as an id.
stored_account resolve(account_store& store, const std::string& who) {
  auto a = store.find_by_username(who);
  if (!a && store.last_error().empty())
    if (const auto id = account_id_of(who)) a = store.find_by_id(*id);
  if (a) return *a;
  if (!store.last_error().empty()) fail(exit_usage, store.last_error());
  fail(exit_not_found, "no account '" + who + "'");
}

std::string password_argument(const std::string& p) {
  if (p != "-") {
    if (p.empty()) fail(exit_usage, "the password must not be empty");
    return p;
  }
  std::string line;
  if (!std::getline(std::cin, line)) fail(exit_usage, "no password on standard input");
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.empty()) fail(exit_usage, "the password must not be empty");
  return line;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) fail(exit_usage, "--allowed-originators: empty item in '" + text + "'");
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string country_code(const std::string& given_code) {
  if (given_code.empty()) return {};
  std::string c = given_code;
  if (c.size() != 2 || !std::isalpha(static_cast<unsigned char>(c[0])) ||
      !std::isalpha(static_cast<unsigned char>(c[1])))
    fail(exit_usage, "--default-country: '" + c + "' is not an ISO 3166 alpha-2 code");
  return postino::to_upper(c);
}

// Applies the settings options to `s`: every one for `account add` (their
// defaults included), only the given ones for `account set`.
void apply_settings(const options& o, account_settings& s, bool only_given) {
  auto use = [&](const char* name) { return !only_given || given(o, name); };
  if (use("default-originator")) s.default_originator = o.default_originator;
  if (use("allowed-originators"))
    s.allowed_originators = o.allowed_originators.empty() ? std::vector<std::string>{}
                                                          : split_list(o.allowed_originators);
  if (!s.default_originator.empty() && !s.allowed_originators.empty() &&
      std::find(s.allowed_originators.begin(), s.allowed_originators.end(),
                s.default_originator) == s.allowed_originators.end())
    fail(exit_usage, "the default originator '" + s.default_originator +
                         "' is not among the allowed originators");
  if (use("max-recipients")) s.max_recipients = o.max_recipients;
  if (use("default-country")) s.default_country = country_code(o.default_country);
  if (use("unit-price")) s.unit_price = o.unit_price;
  if (use("content-mode")) {
    auto mode = postino::parse_content_mode(o.content_mode);
    if (!mode) fail(exit_usage, "--content-mode: '" + o.content_mode + "' is not auto, raw or email");
    s.content = *mode;
  }
  if (use("max-segments")) s.max_segments = o.max_segments;
  if (use("subject-prefix")) s.subject_prefix = o.subject_prefix;
  if (use("strip-signature")) s.strip_signature = o.strip_signature;
  if (use("strip-quoted-reply")) s.strip_quoted_reply = o.strip_quoted_reply;
  if (use("subject-as-text")) s.subject_as_text = o.subject_as_text;
  if (use("transliterate")) s.transliterate = o.transliterate;
  if (use("mms-enabled")) s.mms_enabled = o.mms_enabled;
  if (use("max-mms-bytes")) s.max_mms_bytes = o.max_mms_bytes;
  if (use("mms-price")) s.mms_price = o.mms_price;
}

std::vector<std::string> relay_list(const std::string& text) {
  return text.empty() ? std::vector<std::string>{} : split_list(text);
}

// --relay-networks and --relay-domains, when given: checked, made canonical
// and stored with the list not given kept as it was.
void apply_relay(const options& o, account_store& store, postino::account_id id) {
  if (!given(o, "relay-networks") && !given(o, "relay-domains")) return;
  auto rule = store.relay_of(id);
  if (!rule) fail(exit_usage, "cannot read the relay rule: " + store.last_error());
  std::string why;
  if (given(o, "relay-networks") &&
      !postino::credit::canonical_networks(relay_list(o.relay_networks), rule->networks, why))
    fail(exit_usage, "--relay-networks: " + why);
  if (given(o, "relay-domains") && !postino::credit::canonical_domains(relay_list(o.relay_domains), rule->domains, why))
    fail(exit_usage, "--relay-domains: " + why);
  if (!store.set_relay(id, rule->networks, rule->domains))
    fail(exit_usage, "cannot set the relay rule: " + store.last_error());
}

int account_add(const options& o) {
  account_settings s;
  s.username = o.account;
  apply_settings(o, s, false);
  const std::string password = password_argument(o.password);

  const std::string db = database_path(o);
  std::error_code ec;
  auto parent = std::filesystem::path(db).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) fail(exit_usage, "cannot create " + parent.string() + ": " + ec.message());
  database_lock lock;
  take_lock(lock, db);
  auto store = open_store(db, true);
  std::string error;
  auto id = store->add(s, password, o.credit, error);
  if (id == 0) {
    bool exists = store->find_by_username(s.username).has_value();
    fail(exists ? exit_not_found : exit_usage, error);
  }
  apply_relay(o, *store, id);
  std::printf("account %s added with id %llu\n", s.username.c_str(),
              static_cast<unsigned long long>(id));
  return exit_ok;
}

// ---- The spendable credit ----

// Where a shown credit figure comes from. The store's accounts.credit column
// alone is only the initial credit plus offline top-ups: the spendable
// credit adds the checkpoint's journal delta and whatever the journals hold
// past the checkpoint (DESIGN.md "Durability and credit").
enum class credit_source : std::uint8_t {
  live,        // the running gateway's home shard (the 235 line's CREDIT)
  checkpoint,  // column + checkpoint delta; the checkpoint covers every journal
  journal,     // column + checkpoint delta + journal records past it (a crash)
};

struct spendable {
  std::map<postino::account_id, postino::credit_units> credit;
  credit_source source = credit_source::checkpoint;
  std::uint64_t uncovered_records = 0;  // journal records past the checkpoint, with a credit effect
};

// Defined with the message index reader below.
spendable stored_spendable(const options& o, const std::string& db, const std::vector<stored_account>& accounts);

// The spendable credit of `accounts`: live when the gateway runs and its
// admin endpoint is known, else from the store and the journals.
spendable spendable_credit(const options& o, const std::string& db, const std::vector<stored_account>& accounts);

// Where the figure comes from, in words: "live", "checkpoint + 3 journal
// record(s) past it"; empty for the checkpoint that covers every journal,
// the one case a reader needs no note for.
std::string source_words(const spendable& c) {
  switch (c.source) {
    case credit_source::live: return "live";
    case credit_source::checkpoint: return "";
    case credit_source::journal: return "checkpoint + " + std::to_string(c.uncovered_records) + " journal record(s) past it";
  }
  return "";
}

// " (live)" and the like after a credit figure.
std::string source_note(const spendable& c) {
  const std::string words = source_words(c);
  return words.empty() ? words : " (" + words + ")";
}

postino::credit_units credit_of(const spendable& c, const stored_account& a) {
  const auto it = c.credit.find(a.settings.id);
  return it != c.credit.end() ? it->second : a.credit_checkpoint;
}

int account_list(const options& o) {
  auto store = open_store(database_path(o), false);
  auto accounts = store->list();
  if (!store->last_error().empty()) fail(exit_usage, store->last_error());
  const spendable credit = spendable_credit(o, database_path(o), accounts);
  if (credit.source != credit_source::checkpoint)
    std::fprintf(stderr, "postino-ctl: CREDIT: %s\n", source_words(credit).c_str());
  std::vector<std::vector<std::string>> rows = {
      {"ID", "USERNAME", "STATUS", "CREDIT", "UNIT PRICE", "DEFAULT ORIGINATOR"}};
  for (const auto& a : accounts)
    rows.push_back({std::to_string(a.settings.id), a.settings.username,
                    postino::status_name(a.settings.status), std::to_string(credit_of(credit, a)),
                    std::to_string(a.settings.unit_price), a.settings.default_originator});
  std::vector<std::size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  const bool numeric[] = {true, false, false, true, true, false};
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      std::string pad(width[i] - r[i].size(), ' ');
      if (i > 0) line += "  ";
      line += numeric[i] ? pad + r[i] : r[i] + pad;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
  return exit_ok;
}

int account_show(const options& o) {
  const std::string db = database_path(o);
  auto store = open_store(db, false);
  auto a = resolve(*store, o.account);
  const auto& s = a.settings;
  // Under a running gateway the checkpointed credit lags; ask for the live
  // figures first so a failure prints nothing half-done.
  std::optional<nlohmann::json> live;
  if (lock_is_held(db)) {
    if (auto e = find_endpoint(o))
      live = admin_call(o, *e, "GET", "/accounts/" + std::to_string(s.id));
    else
      std::fprintf(stderr, "postino-ctl: the gateway is running but no admin endpoint is known "
                           "(use --admin or -c); credit is read from the store and the journals\n");
  }
  std::printf("id: %llu\n", static_cast<unsigned long long>(s.id));
  std::printf("username: %s\n", s.username.c_str());
  std::printf("status: %s\n", postino::status_name(s.status));
  spendable credit;
  if (live) {
    credit.source = credit_source::live;
    credit.credit[s.id] = live_balance(*live);
  } else {
    credit = stored_spendable(o, db, {a});
  }
  std::printf("credit: %lld%s\n", static_cast<long long>(credit_of(credit, a)), source_note(credit).c_str());
  std::printf("default originator: %s\n",
              s.default_originator.empty() ? "(none)" : s.default_originator.c_str());
  std::printf("allowed originators: %s\n",
              s.allowed_originators.empty() ? "(any)" : postino::join(s.allowed_originators, ",").c_str());
  std::printf("max recipients: %u\n", s.max_recipients);
  std::printf("default country: %s\n",
              s.default_country.empty() ? "(none)" : s.default_country.c_str());
  std::printf("unit price: %lld\n", static_cast<long long>(s.unit_price));
  std::printf("content mode: %s\n", postino::content_mode_name(s.content));
  std::printf("max segments: %u\n", s.max_segments);
  std::printf("subject prefix: %s\n", s.subject_prefix ? "yes" : "no");
  std::printf("strip signature: %s\n", s.strip_signature ? "yes" : "no");
  std::printf("strip quoted reply: %s\n", s.strip_quoted_reply ? "yes" : "no");
  std::printf("subject as text: %s\n", s.subject_as_text ? "yes" : "no");
  std::printf("transliterate: %s\n", s.transliterate ? "yes" : "no");
  std::printf("mms enabled: %s\n", s.mms_enabled ? "yes" : "no");
  std::printf("max mms bytes: %llu\n", static_cast<unsigned long long>(s.max_mms_bytes));
  std::printf("mms price: %lld\n", static_cast<long long>(s.mms_price));
  if (s.prices) {
    for (const auto& rule : *s.prices)
      std::printf("price +%s: %lld%s\n", rule.prefix.c_str(), static_cast<long long>(rule.price),
                  rule.global ? " (global)" : "");
  }
  if (auto relay = store->relay_of(s.id); relay && (!relay->networks.empty() || !relay->domains.empty())) {
    std::printf("relay networks: %s\n", relay->networks.empty() ? "(none)" : postino::join(relay->networks, ",").c_str());
    std::printf("relay domains: %s\n", relay->domains.empty() ? "(none)" : postino::join(relay->domains, ",").c_str());
  }
  if (live) {
    std::printf("balance: %s\n", json_field(*live, "balance").c_str());
    std::printf("leased: %s\n", json_field(*live, "leased").c_str());
    std::printf("lease holders: %s\n", json_field(*live, "lease_holders").c_str());
    std::printf("messages since start: %s\n", json_field(*live, "messages_since_start").c_str());
  }
  return exit_ok;
}

// An existing database opened for a write, the lock held for as long as this
// lives.
struct locked_store {
  database_lock lock;
  std::unique_ptr<account_store> store;
};

// Refuses while the gateway holds the lock.
void open_locked(locked_store& l, const options& o) {
  const std::string db = existing_database(o);
  take_lock(l.lock, db);
  l.store = open_store(db, false);
}

// Lock, open an existing database, find the account: the start of every
// write to one account but `account add`.
struct write_context : locked_store {
  stored_account account;
  std::optional<endpoint> live;  // set when the gateway holds the lock
};

void begin_write(write_context& w, const options& o) {
  open_locked(w, o);
  w.account = resolve(*w.store, o.account);
}

// Like begin_write, but when the gateway holds the lock this finds its admin
// endpoint (refusing without one) and still resolves the account, since
// reads work under the lock; false says the write must go live.
bool begin_write_or_live(write_context& w, const options& o) {
  const std::string db = existing_database(o);
  const bool locked = lock_unless_held(w.lock, db);
  if (!locked) w.live = endpoint_or_refuse(o, db);
  w.store = open_store(db, false);
  w.account = resolve(*w.store, o.account);
  return locked;
}

// The admin path of an account: always by id, resolved from the database.
std::string account_target(const write_context& w, const std::string& verb) {
  return "/accounts/" + std::to_string(w.account.settings.id) + (verb.empty() ? "" : "/" + verb);
}

int account_password(const options& o) {
  const std::string password = password_argument(o.password);
  write_context w;
  begin_write(w, o);
  if (!w.store->set_password(w.account.settings.id, password))
    fail(exit_usage, "cannot change the password: " + w.store->last_error());
  std::printf("password of %s changed\n", w.account.settings.username.c_str());
  return exit_ok;
}

int account_set_status(const options& o, account_status status) {
  write_context w;
  if (!begin_write_or_live(w, o)) {
    // The gateway changes the status and drops its cached logins.
    admin_call(o, *w.live, "POST", account_target(w, status == account_status::active ? "resume" : "suspend"));
  } else if (!w.store->set_status(w.account.settings.id, status)) {
    fail(exit_usage, "cannot change the status: " + w.store->last_error());
  }
  std::printf("account %s %s\n", w.account.settings.username.c_str(),
              status == account_status::active ? "resumed" : "suspended");
  return exit_ok;
}

int account_set(const options& o) {
  if (o.given.empty()) fail(exit_usage, "account set: no setting given (try --help)");
  write_context w;
  begin_write(w, o);
  account_settings s = w.account.settings;
  apply_settings(o, s, true);
  if (!w.store->update_settings(s))
    fail(exit_usage, "cannot change the settings: " + w.store->last_error());
  apply_relay(o, *w.store, s.id);
  std::printf("settings of %s changed\n", s.username.c_str());
  return exit_ok;
}

// The E.164 prefix as the store keeps it: digits, without a leading '+'.
std::string prefix_argument(const std::string& p) {
  std::string digits = p.starts_with('+') ? p.substr(1) : p;
  if (digits.size() > 15 || !postino::all_digits(digits))
    fail(exit_usage, "'" + p + "' is not a destination prefix (1 to 15 digits, '+' allowed)");
  return digits;
}

// The table a price command works on: an account's, or the global one (0).
postino::account_id price_table_of(account_store& store, const options& o) {
  return o.price_account.empty() ? 0 : resolve(store, o.price_account).settings.id;
}

std::string table_name(const options& o) {
  return o.price_account.empty() ? std::string("the global table") : "the table of " + o.price_account;
}

int price_set(const options& o) {
  const std::string prefix = prefix_argument(o.prefix);
  if (o.price < 0) fail(exit_usage, "the price must not be negative");
  locked_store l;
  open_locked(l, o);
  if (!l.store->set_price(price_table_of(*l.store, o), prefix, o.price))
    fail(exit_usage, "cannot set the price: " + l.store->last_error());
  std::printf("price of +%s in %s is now %lld\n", prefix.c_str(), table_name(o).c_str(), o.price);
  return exit_ok;
}

int price_delete(const options& o) {
  const std::string prefix = prefix_argument(o.prefix);
  locked_store l;
  open_locked(l, o);
  if (!l.store->delete_price(price_table_of(*l.store, o), prefix)) {
    if (!l.store->last_error().empty()) fail(exit_usage, l.store->last_error());
    fail(exit_not_found, "no price for +" + prefix + " in " + table_name(o));
  }
  std::printf("price of +%s deleted from %s\n", prefix.c_str(), table_name(o).c_str());
  return exit_ok;
}

int price_list(const options& o) {
  auto store = open_store(database_path(o), false);
  const auto table = price_table_of(*store, o);
  auto rules = store->list_prices(table);
  if (!store->last_error().empty()) fail(exit_usage, store->last_error());
  std::printf("PREFIX  PRICE\n");
  for (const auto& r : rules) std::printf("+%s  %lld\n", r.prefix.c_str(), static_cast<long long>(r.price));
  return exit_ok;
}

int credit_add(const options& o) {
  if (o.amount <= 0) fail(exit_usage, "the amount must be a positive number");
  write_context w;
  if (!begin_write_or_live(w, o)) {
    // A journaled top-up on the account's home shard, answered once durable.
    const nlohmann::json body =
        admin_call(o, *w.live, "POST", account_target(w, "credit") + "?amount=" + std::to_string(o.amount));
    std::printf("credit of %s is now %s\n", w.account.settings.username.c_str(),
                json_field(body, "balance").c_str());
    return exit_ok;
  }
  if (!w.store->add_credit(w.account.settings.id, o.amount))
    fail(exit_not_found, "cannot add credit to " + w.account.settings.username + ": " +
                             w.store->last_error());
  auto after = w.store->find_by_id(w.account.settings.id);
  std::printf("credit of %s is now %lld\n", w.account.settings.username.c_str(),
              static_cast<long long>(after ? after->credit_checkpoint : 0));
  return exit_ok;
}

// ---- The message index (read-only) ----

// A read-only connection to postino.db for the checkpoint's tables, which
// the gateway writes every checkpoint_interval_s; WAL mode lets this read
// while it does. Tables a database does not have yet read as empty.
class index_reader {
 public:
  explicit index_reader(const std::string& path) {
    if (!file_exists(path)) fail_no_database(path);
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      fail(exit_usage, path + ": " + why);
    }
    sqlite3_busy_timeout(db_, 5000);
    path_ = path;
  }
  ~index_reader() { sqlite3_close(db_); }
  index_reader(const index_reader&) = delete;
  index_reader& operator=(const index_reader&) = delete;

  // One prepared statement, finalized on scope exit.
  class query {
   public:
    query(index_reader& r, const std::string& sql) : r_(r) {
      if (sqlite3_prepare_v2(r.db_, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) r.fail_sql();
    }
    ~query() { sqlite3_finalize(s_); }
    query(const query&) = delete;
    query& operator=(const query&) = delete;
    void bind(int i, const std::string& v) {
      sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    }
    void bind(int i, long long v) { sqlite3_bind_int64(s_, i, v); }
    // True with a row; false when done; an error ends the command.
    bool next() {
      int rc = sqlite3_step(s_);
      if (rc == SQLITE_ROW) return true;
      if (rc != SQLITE_DONE) r_.fail_sql();
      return false;
    }
    long long integer(int i) { return sqlite3_column_int64(s_, i); }
    bool null(int i) { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
    std::string text(int i) {
      const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
      return p != nullptr ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, i))) : std::string();
    }

   private:
    index_reader& r_;
    sqlite3_stmt* s_ = nullptr;
  };

  bool has_table(const std::string& name) {
    query q(*this, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1");
    q.bind(1, name);
    return q.next();
  }
  bool has_column(const std::string& table, const std::string& column) {
    query q(*this, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2");
    q.bind(1, table);
    q.bind(2, column);
    return q.next();
  }

 private:
  [[noreturn]] void fail_sql() { fail(exit_usage, path_ + ": " + sqlite3_errmsg(db_)); }
  sqlite3* db_ = nullptr;
  std::string path_;
};

// Per shard, the journal sequence the checkpoint covers.
std::map<unsigned, std::uint64_t> checkpoint_positions(index_reader& db) {
  std::map<unsigned, std::uint64_t> out;
  if (!db.has_table("checkpoint_journal")) return out;
  index_reader::query q(db, "SELECT shard, sequence FROM checkpoint_journal");
  while (q.next()) out[static_cast<unsigned>(q.integer(0))] = static_cast<std::uint64_t>(q.integer(1));
  return out;
}

std::map<postino::account_id, postino::credit_units> checkpoint_deltas(index_reader& db) {
  std::map<postino::account_id, postino::credit_units> out;
  if (!db.has_table("checkpoint_balance")) return out;
  index_reader::query q(db, "SELECT account, journal_delta FROM checkpoint_balance");
  while (q.next()) out[static_cast<postino::account_id>(q.integer(0))] = q.integer(1);
  return out;
}

// The shard of a "journal-<n>" directory (decimal, below 256), as the gateway names them.
std::optional<unsigned> journal_shard(const std::string& name) {
  if (!name.starts_with("journal-")) return std::nullopt;
  const std::string digits = name.substr(8);
  unsigned shard = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), shard);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || shard > 255) return std::nullopt;
  return shard;
}

// The credit effect of every journal record past the checkpoint's position,
// read without changing the journals (the same sums start-up makes: debits
// of messages, top-ups, refunds and refunded segments).
struct journal_effects {
  std::map<postino::account_id, postino::credit::wide_credit> effect;
  std::uint64_t records = 0;

  void add(postino::account_id account, postino::credit::wide_credit amount) {
    effect[account] += amount;
    ++records;
  }
  void visit(const postino::spool::record& r) {
    using postino::spool::record_type;
    if (r.type == record_type::message) add(r.tx.account, -r.tx.price);
    if (r.type == record_type::top_up || r.type == record_type::refund) add(r.account, r.amount);
    if (r.type == record_type::delivery_final && r.delivery.refund != 0) add(r.delivery.account, r.delivery.refund);
  }
};

journal_effects uncovered_effects(const std::string& data_dir, const std::map<unsigned, std::uint64_t>& covered) {
  journal_effects out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir, ec)) {
    const auto shard = journal_shard(entry.path().filename().string());
    if (!shard || !entry.is_directory()) continue;
    const auto position = covered.find(*shard);
    const std::uint64_t after = position == covered.end() ? 0 : position->second;
    std::string error;
    const bool read = postino::spool::read_journal(entry.path().string(), [&](postino::spool::record& r) {
      if (r.sequence > after) out.visit(r);
    }, error);
    if (!read) fail(exit_usage, "cannot read the journal: " + error);
  }
  return out;
}

spendable stored_spendable(const options& o, const std::string& db, const std::vector<stored_account>& accounts) {
  index_reader reader(db);
  const auto deltas = checkpoint_deltas(reader);
  const journal_effects journals = uncovered_effects(data_dir_of(o), checkpoint_positions(reader));
  spendable out;
  out.source = journals.records > 0 ? credit_source::journal : credit_source::checkpoint;
  out.uncovered_records = journals.records;
  for (const auto& a : accounts) {
    const auto id = a.settings.id;
    const auto delta = deltas.find(id);
    const auto effect = journals.effect.find(id);
    // Summed and cut to 0..max_balance exactly as the gateway's start-up does.
    out.credit[id] = postino::credit::resolve_start_balance(id, a.credit_checkpoint,
                                                            delta == deltas.end() ? 0 : delta->second,
                                                            effect == journals.effect.end() ? 0 : effect->second)
                         .balance;
  }
  return out;
}

spendable spendable_credit(const options& o, const std::string& db, const std::vector<stored_account>& accounts) {
  if (lock_is_held(db)) {
    if (auto e = find_endpoint(o)) {
      spendable out;
      out.source = credit_source::live;
      for (const auto& a : accounts)
        out.credit[a.settings.id] = live_balance(admin_call(o, *e, "GET", "/accounts/" + std::to_string(a.settings.id)));
      return out;
    }
    std::fprintf(stderr, "postino-ctl: the gateway is running but no admin endpoint is known (use --admin or -c); "
                         "CREDIT is read from the store and the journals\n");
  }
  return stored_spendable(o, db, accounts);
}

std::string utc_time(long long unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  char buf[32];
  if (gmtime_r(&t, &tm) == nullptr || std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    return std::to_string(unix_ms) + "ms";
  return buf;
}

postino::message_state known_state(const std::string& name) {
  // A name this version does not know is shown as the worst, never as done.
  return postino::parse_state_name(name).value_or(postino::message_state::rejected);
}

struct segment_row {
  long long recipient = 0, segment = 0;
  std::string e164, state, smsc, smsc_id;
  long long error = 0, refund = 0;
};

// A message's row of checkpoint_message.
struct indexed_message {
  long long account = 0, accepted_ms = 0, price = 0, recipient_count = 0, segments = 1;
  std::vector<std::string> recipients;  // E.164, in RCPT order; may be empty
  // What was sent (issue 13); absent from rows written before it.
  bool content_known = false;           // the row has the columns and was written with them
  std::string originator;
  std::optional<std::string> text;      // nullopt: cleared by the retention sweep, or never stored
  bool text_cleared = false;
  long long data_coding = -1;
  std::vector<std::string> parts;       // an MMS: "<type> <bytes>"
  std::vector<std::string> unit_prices; // per recipient, when they differ
};

std::vector<std::string> split_lines(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto end = list.find('\n', start);
    out.push_back(list.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

indexed_message read_message(index_reader& db, const std::string& queue_id) {
  const std::string not_found =
      "no message " + queue_id + " (not in the message index yet; it is written every checkpoint_interval_s)";
  if (!db.has_table("checkpoint_message")) fail(exit_usage, not_found);
  // Databases the gateway has not opened since delivery came lack the new columns.
  const bool shaped = db.has_column("checkpoint_message", "segments");
  index_reader::query m(db, std::string("SELECT account, accepted_ms, price, recipients, ") +
                                (shaped ? "segments, recipient_list" : "1, NULL") +
                                " FROM checkpoint_message WHERE queue_id = ?1");
  m.bind(1, queue_id);
  if (!m.next()) fail(exit_usage, not_found);
  indexed_message out;
  out.account = m.integer(0);
  out.accepted_ms = m.integer(1);
  out.price = m.integer(2);
  out.recipient_count = m.integer(3);
  out.segments = std::max(1LL, m.integer(4));
  if (!m.null(5)) out.recipients = split_lines(m.text(5));
  return out;
}

// The content columns of a row, when the database has them.
void read_content(index_reader& db, const std::string& queue_id, indexed_message& out) {
  if (!db.has_column("checkpoint_message", "text_cleared") || !db.has_column("checkpoint_message", "unit_prices"))
    return;
  index_reader::query q(db, "SELECT originator, text, text_cleared, data_coding, parts, unit_prices "
                            "FROM checkpoint_message WHERE queue_id = ?1");
  q.bind(1, queue_id);
  if (!q.next()) return;
  // A row written before the columns existed has neither an originator nor a text.
  out.content_known = !q.null(0) || !q.null(1) || q.integer(2) != 0;
  out.originator = q.text(0);
  if (!q.null(1)) out.text = q.text(1);
  out.text_cleared = q.integer(2) != 0;
  out.data_coding = q.null(3) ? -1 : q.integer(3);
  if (!q.null(4)) out.parts = split_lines(q.text(4));
  if (!q.null(5)) out.unit_prices = split_lines(q.text(5));
}

std::string username_of(index_reader& db, long long account) {
  if (!db.has_table("accounts")) return "?";
  index_reader::query a(db, "SELECT username FROM accounts WHERE id = ?1");
  a.bind(1, account);
  return a.next() ? a.text(0) : "?";
}

std::vector<segment_row> read_segments(index_reader& db, const std::string& queue_id) {
  std::vector<segment_row> rows;
  if (!db.has_table("checkpoint_delivery")) return rows;
  index_reader::query d(db,
                        "SELECT recipient_index, segment, coalesce(recipient, ''), state, coalesce(smsc, ''), "
                        "coalesce(smsc_message_id, ''), error, refund FROM checkpoint_delivery "
                        "WHERE queue_id = ?1 ORDER BY recipient_index, segment");
  d.bind(1, queue_id);
  while (d.next())
    rows.push_back({d.integer(0), d.integer(1), d.text(2), d.text(3), d.text(4), d.text(5), d.integer(6),
                    d.integer(7)});
  return rows;
}

// One recipient as message show prints it: its number, the worst state of
// its segments and what was refunded for it.
struct recipient_summary {
  std::string e164;
  postino::message_state state = postino::message_state::delivered;
  long long refunded = 0;
};

// Recipients the rows name beyond the stored count are shown too; a segment
// without a row is still queued.
std::vector<recipient_summary> summarize(const indexed_message& m, const std::vector<segment_row>& rows) {
  long long shown = std::max<long long>(m.recipient_count, static_cast<long long>(m.recipients.size()));
  for (const auto& r : rows) shown = std::max(shown, r.recipient + 1);
  std::vector<recipient_summary> out(static_cast<std::size_t>(shown));
  for (std::size_t i = 0; i < m.recipients.size(); ++i) out[i].e164 = m.recipients[i];
  for (long long i = 0; i < shown; ++i) {
    auto& who = out[static_cast<std::size_t>(i)];
    std::vector<bool> seen(static_cast<std::size_t>(m.segments), false);
    for (const auto& r : rows) {
      if (r.recipient != i) continue;
      if (r.segment >= 0 && r.segment < m.segments) seen[static_cast<std::size_t>(r.segment)] = true;
      who.state = postino::worse(who.state, known_state(r.state));
      who.refunded += r.refund;
      if (who.e164.empty()) who.e164 = r.e164;
    }
    if (std::find(seen.begin(), seen.end(), false) != seen.end())
      who.state = postino::worse(who.state, postino::message_state::queued);
  }
  return out;
}

// Queued until a delivery row exists; then the worst of the recipients.
postino::message_state overall_state(const std::vector<recipient_summary>& recipients, bool any_rows) {
  if (!any_rows) return postino::message_state::queued;
  auto overall = postino::message_state::delivered;
  for (const auto& r : recipients) overall = postino::worse(overall, r.state);
  return overall;
}

std::string one_line(const std::string& text);

// The message's content lines: originator, text (or why there is none), its
// encoding, an MMS's parts. A row from before the index kept content says so.
void print_content(const indexed_message& m) {
  if (!m.content_known) {
    std::printf("text: (not in the index: accepted before it kept texts)\n");
    return;
  }
  std::printf("originator: %s\n", m.originator.empty() ? "(none)" : m.originator.c_str());
  if (m.text)
    std::printf("text: %s\n", one_line(*m.text).c_str());
  else
    std::printf("text: (cleared: past the index's text retention, [index] text_retention_days)\n");
  if (m.parts.empty() && m.data_coding >= 0)
    std::printf("encoding: %s\n", m.data_coding == 8 ? "UCS-2" : m.data_coding == 0 ? "GSM 03.38" : "other");
  if (!m.parts.empty()) {
    std::printf("parts: %zu\n", m.parts.size());
    for (std::size_t i = 0; i < m.parts.size(); ++i) {
      const auto space = m.parts[i].rfind(' ');
      const std::string type = space == std::string::npos ? m.parts[i] : m.parts[i].substr(0, space);
      const std::string bytes = space == std::string::npos ? "?" : m.parts[i].substr(space + 1);
      std::printf("  part %zu %s %s bytes\n", i, type.c_str(), bytes.c_str());
    }
  }
}

// "price per recipient: +39333... 2, +44... 5" when prefix prices made them
// differ (the index stores per-segment prices then).
void print_recipient_prices(const indexed_message& m) {
  if (m.unit_prices.empty()) return;
  std::string line;
  for (std::size_t i = 0; i < m.unit_prices.size(); ++i) {
    long long unit = 0;
    const std::string& p = m.unit_prices[i];
    std::from_chars(p.data(), p.data() + p.size(), unit);
    const std::string who = i < m.recipients.size() ? m.recipients[i] : "#" + std::to_string(i);
    line += (line.empty() ? "" : ", ") + who + " " + std::to_string(unit * m.segments);
  }
  std::printf("price per recipient: %s\n", line.c_str());
}

int message_show(const options& o) {
  index_reader db(database_path(o));
  indexed_message m = read_message(db, o.queue_id);
  read_content(db, o.queue_id, m);
  const std::string username = username_of(db, m.account);
  const std::vector<segment_row> rows = read_segments(db, o.queue_id);
  const std::vector<recipient_summary> recipients = summarize(m, rows);

  std::printf("queue_id: %s\n", o.queue_id.c_str());
  std::printf("account: %s (%lld)\n", username.c_str(), m.account);
  std::printf("accepted: %s\n", utc_time(m.accepted_ms).c_str());
  print_content(m);
  std::printf("price: %lld\n", m.price);
  print_recipient_prices(m);
  std::printf("segments: %lld\n", m.segments);
  std::printf("state: %s\n", postino::state_name(overall_state(recipients, !rows.empty())));
  for (std::size_t i = 0; i < recipients.size(); ++i) {
    const auto& who = recipients[i];
    std::printf("recipient %zu %s %s", i, who.e164.empty() ? "?" : who.e164.c_str(), postino::state_name(who.state));
    if (who.refunded > 0) std::printf(" refunded %lld", who.refunded);
    std::printf("\n");
    for (const auto& r : rows) {
      if (r.recipient != static_cast<long long>(i)) continue;
      std::printf("  segment %lld %s smsc=%s id=%s error=%lld\n", r.segment, r.state.c_str(),
                  r.smsc.empty() ? "-" : r.smsc.c_str(), r.smsc_id.empty() ? "-" : r.smsc_id.c_str(), r.error);
    }
  }
  return exit_ok;
}

// One line per message: a newline or carriage return in the text is shown
// escaped so it cannot start a line of its own.
std::string one_line(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else
      out += c;
  }
  return out;
}

int inbound_list(const options& o) {
  index_reader db(database_path(o));
  if (!db.has_table("checkpoint_inbound")) return exit_ok;
  // The newest `limit`, shown oldest first so the newest ends the output.
  index_reader::query q(db,
                        "SELECT received_ms, smsc, source, destination, text FROM ("
                        " SELECT received_ms, smsc, source, destination, text, shard, sequence"
                        " FROM checkpoint_inbound ORDER BY received_ms DESC, shard DESC, sequence DESC"
                        " LIMIT ?1) ORDER BY received_ms, shard, sequence");
  q.bind(1, static_cast<long long>(o.limit));
  while (q.next())
    std::printf("%s %s from %s to %s: %s\n", utc_time(q.integer(0)).c_str(), q.text(1).c_str(),
                q.text(2).c_str(), q.text(3).c_str(), one_line(q.text(4)).c_str());
  return exit_ok;
}

// ---- The command line ----

// Where an argument's value goes.
using option_field = std::variant<std::string options::*, unsigned options::*, long long options::*,
                                  unsigned long long options::*, bool options::*>;

// One argument of a command: a positional (a name without '-') or an option.
struct argument {
  const char* name;
  option_field field;
  const char* help;
  bool required = false;
  std::optional<CLI::Validator> check = {};
};

constexpr bool required = true;

// The settings options of `account add` and `account set`, in --help order.
const argument setting_options[] = {
    {"--default-originator", &options::default_originator, "sender used when the message names none ('' for none)"},
    {"--allowed-originators", &options::allowed_originators,
     "comma-separated senders the account may use ('' for any)"},
    {"--max-recipients", &options::max_recipients, "recipients per message (default 1000)", false,
     CLI::Range(1u, 1000000u)},
    {"--default-country", &options::default_country,
     "ISO 3166 alpha-2 country for national numbers, e.g. IT ('' for none)"},
    {"--unit-price", &options::unit_price, "credit per SMS segment where no prefix price applies (default 1)", false,
     CLI::NonNegativeNumber},
    {"--content-mode", &options::content_mode, "how DATA is read: auto (detect e-mail), raw, email (default auto)"},
    {"--max-segments", &options::max_segments, "most SMS segments per message, 1-255 (default 1)", false,
     CLI::Range(1u, 255u)},
    {"--subject-prefix", &options::subject_prefix, "yes|no: e-mail Subject starts the SMS (default no)"},
    {"--strip-signature", &options::strip_signature, "yes|no: cut an e-mail's '-- ' signature (default yes)"},
    {"--strip-quoted-reply", &options::strip_quoted_reply,
     "yes|no: cut a reply's '>' quoted original and its 'On ... wrote:' line (default yes)"},
    {"--subject-as-text", &options::subject_as_text,
     "yes|no: an e-mail with an empty body sends its Subject as the text (default yes)"},
    {"--transliterate", &options::transliterate,
     "yes|no: map curly quotes, dashes... to GSM when that avoids UCS-2 (default no)"},
    {"--mms-enabled", &options::mms_enabled, "yes|no: accept MMS (MM4 and mails with media) (default no)"},
    {"--max-mms-bytes", &options::max_mms_bytes, "largest MMS, raw MIME bytes (default 1048576)", false,
     CLI::Range(1ull, 1ull << 40)},
    {"--mms-price", &options::mms_price, "credit per MMS recipient (default 3)", false, CLI::NonNegativeNumber},
    {"--relay-networks", &options::relay_networks,
     "comma-separated client networks (CIDR) an auth = \"relay\" listener accepts ('' for none)"},
    {"--relay-domains", &options::relay_domains, "comma-separated envelope-sender domains relayed ('' for none)"},
};

// A settings option also records that it was given (without its dashes), so
// `account set` changes only those; `account add` takes all of them,
// defaults included.
void add_argument(CLI::App& cmd, options& o, const argument& a, bool records_given) {
  std::visit(
      [&](auto field) {
        using value = std::remove_reference_t<decltype(o.*field)>;
        CLI::Option* opt =
            records_given ? cmd.add_option_function<value>(
                                a.name,
                                [&o, field, given = a.name + 2](const value& v) {
                                  o.*field = v;
                                  o.given.emplace_back(given);
                                },
                                a.help)
                          : cmd.add_option(a.name, o.*field, a.help);
        if (a.required) opt->required();
        if (a.check) opt->check(*a.check);
      },
      a.field);
}

const argument account_argument{"account", &options::account, "username or id", required};
const argument price_table_option{"--account", &options::price_account,
                                   "the account's table (default: the global one)"};

// One row per command of a group: its name, help line, arguments (then the
// settings options where `settings` says so) and what runs it, in --help order.
struct ctl_command {
  const char* name;
  const char* help;
  std::vector<argument> arguments;
  bool settings;
  int (*run)(const options& o);
};

const ctl_command account_commands[] = {
    {"add", "create an account",
     {{"user", &options::account, "username", required},
      {"--password", &options::password, "password ('-' reads one line from stdin)", required},
      {"--credit", &options::credit, "initial credit", false, CLI::NonNegativeNumber}},
     true, account_add},
    {"set", "change an account's settings (only those given)", {account_argument}, true, account_set},
    {"list", "list accounts", {}, false, account_list},
    {"show", "show one account (credit: the spendable credit)", {account_argument}, false, account_show},
    {"password", "change an account's password",
     {account_argument, {"--password", &options::password, "new password ('-' reads one line from stdin)", required}},
     false, account_password},
    {"suspend", "suspend an account", {account_argument}, false,
     [](const options& o) { return account_set_status(o, account_status::suspended); }},
    {"resume", "resume a suspended account", {account_argument}, false,
     [](const options& o) { return account_set_status(o, account_status::active); }},
};

const ctl_command credit_commands[] = {
    {"add", "add credit to an account",
     {account_argument, {"amount", &options::amount, "credit to add (positive)", required}}, false, credit_add},
};

const ctl_command price_commands[] = {
    {"set", "set the price per segment for a destination prefix",
     {price_table_option,
      {"prefix", &options::prefix, "destination prefix, e.g. +39 or +39333", required},
      {"price", &options::price, "credit per SMS segment", required, CLI::NonNegativeNumber}},
     false, price_set},
    {"list", "list a price table", {price_table_option}, false, price_list},
    {"delete", "delete a destination prefix price",
     {price_table_option, {"prefix", &options::prefix, "destination prefix", required}}, false, price_delete},
};

const ctl_command message_commands[] = {
    {"show",
     "what was sent (originator, text or MMS parts, segments, price) and the state per recipient and segment "
     "(the index is written every checkpoint_interval_s)",
     {{"queue-id", &options::queue_id, "the queue id of the 250 reply", required}}, false, message_show},
};

const ctl_command inbound_commands[] = {
    {"list", "the newest inbound messages, newest last",
     {{"--limit", &options::limit, "how many (default 100)", false, CLI::Range(1u, 100000000u)}}, false,
     inbound_list},
};

// `postino-ctl <group> <command>`: the groups in --help order, each with its
// commands.
struct command_group {
  const char* name;
  const char* help;
  std::span<const ctl_command> commands;
};
const command_group command_groups[] = {
    {"account", "add, list, show and change accounts", account_commands},
    {"credit", "change an account's credit", credit_commands},
    {"price", "destination prefix prices (per account, else global)", price_commands},
    {"message", "a message's delivery, from the message index", message_commands},
    {"inbound", "messages handsets sent (SMPP deliver_sm)", inbound_commands},
};

void add_global_options(CLI::App& app, options& o) {
  auto* o_db = app.add_option("--database", o.database, "SQLite database (default ./postino-data/postino.db)");
  auto* o_dir = app.add_option("--data-dir", o.data_dir, "gateway data directory (uses DIR/postino.db)");
  o_db->excludes(o_dir);
  app.add_option("-c,--config", o.config,
                 "read data_dir/database (and the admin endpoint) from the gateway's TOML file");
  app.add_option("--admin", o.admin,
                 "the running gateway's admin endpoint HOST:PORT (default: from -c's ports file or [admin])");
  app.add_option("--admin-ca", o.admin_ca,
                 "speak HTTPS to the admin endpoint, trusting this PEM CA or certificate (default with -c: "
                 "[admin] certificate, when set)");
}

// Every group and its commands; `chosen` is set to the row the command line names.
void add_commands(CLI::App& app, options& o, const ctl_command*& chosen) {
  for (const command_group& g : command_groups) {
    CLI::App* group = app.add_subcommand(g.name, g.help);
    group->require_subcommand(1);
    for (const ctl_command& c : g.commands) {
      CLI::App* cmd = group->add_subcommand(c.name, c.help);
      for (const argument& a : c.arguments) add_argument(*cmd, o, a, false);
      if (c.settings)
        for (const argument& a : setting_options) add_argument(*cmd, o, a, true);
      cmd->callback([&chosen, &c] { chosen = &c; });
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"postino-ctl: manage postino accounts and credit, follow messages", "postino-ctl"};
  app.require_subcommand(1);
  app.fallthrough();
  add_global_options(app, o);
  const ctl_command* chosen = nullptr;
  add_commands(app, o, chosen);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "postino-ctl: %s\nRun with --help for more information.\n", e.what());
    return exit_usage;
  }
  try {
    if (chosen == nullptr) fail(exit_usage, "no command given (try --help)");
    return chosen->run(o);
  } catch (const ctl_error& e) {
    std::fprintf(stderr, "postino-ctl: %s\n", e.message.c_str());
    return e.code;
  }
}
