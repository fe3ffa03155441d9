// The gateway program: loads the configuration, takes the database lock,
// opens the account store (creating the demo account on an empty database),
// loads the last checkpoint and replays every shard journal after its
// position to rebuild balances (summed exactly, cut to 0..max_balance, every
// cut logged as "repaired: ..." and stored by the start-up checkpoint so the
// next start finds nothing to repair), binds the listeners, starts the shards,
// the checkpoint thread, the hash pool and the admin endpoint (after creating
// or loading its token, <data-dir>/admin-token), writes the ports file, and
// waits for SIGTERM/SIGINT to shut down in order. Runs on the main thread; the
// only buffers it owns are start-up strings (configuration, password file).
#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <limits>
#include <optional>
#include <string_view>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "admin.h"
#include "admin_token.h"
#include "checkpointer.h"
#include "connection_limits.h"
#include "gateway.h"
#include "relays.h"
#include "smtp_endpoint.h"
#include "postino/config.h"
#include "postino/credit.h"
#include "postino/delivery.h"
#include "postino/io.h"
#include "postino/runtime.h"
#include "postino/sms.h"
#include "postino/spool.h"

namespace fs = std::filesystem;
using namespace postino;

namespace {

void say(const std::string& line) {
  std::fprintf(stdout, "postino: %s\n", line.c_str());
  std::fflush(stdout);
}

int fail(int code, const std::string& line) {
  std::fprintf(stderr, "postino: %s\n", line.c_str());
  return code;
}

void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// glibc raises its mmap threshold after a large block is freed, up to 32
// MiB, so that later blocks of that size come from the thread's arena and
// stay in RSS once freed. An Argon2id check allocates its whole memory cost
// (19 MiB by default) on a hash worker: each worker's arena then kept ~20 MB
// for good (heaptrack: 40 MB with 2 workers). A fixed threshold keeps such
// blocks, and large message bodies, in their own mappings, returned on free.
void keep_large_blocks_mapped() { mallopt(M_MMAP_THRESHOLD, 1 << 20); }

std::string random_password() {
  static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
  std::string out;
  for (unsigned char b : bytes) out += alphabet[b % (sizeof alphabet - 1)];
  return out;
}

// Writes `text` to `path` with mode 0600 via a temporary file and rename, so
// a reader never sees half a file.
bool write_file_atomically(const std::string& path, const std::string& text, mode_t mode, std::string& error) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    error = tmp + ": " + std::strerror(errno);
    return false;
  }
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = tmp + ": " + std::strerror(errno);
      close(fd);
      return false;
    }
    off += static_cast<std::size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

// Per account: what the journals say happened since the store's checkpoint,
// credits minus debits. 128 bits: journals written before max_balance may
// hold top-ups of 9223372036854775807, whose int64 sum would overflow.
struct journal_totals {
  std::map<account_id, credit::wide_credit> effect;
  void visit(const spool::record& r) {
    switch (r.type) {
      case spool::record_type::message: effect[r.tx.account] -= r.tx.price; break;
      case spool::record_type::top_up:
      case spool::record_type::refund: effect[r.account] += r.amount; break;
      // A failed segment's refund is a credit like a refund record's.
      case spool::record_type::delivery_final:
        if (r.delivery.refund != 0) effect[r.delivery.account] += r.delivery.refund;
        break;
      case spool::record_type::seal:
      case spool::record_type::submitted:
      case spool::record_type::inbound:
      case spool::record_type::carried: break;  // its original debited
    }
  }
};

// Folds a replayed record into its journal's start-up checkpoint delta.
// The message index needs the message's fields but not its body (copied
// around, not with them); the record keeps its message for delivery's
// recovery.
void fold(credit::journal_delta& d, spool::record& r, unsigned node_id, unsigned shard) {
  switch (r.type) {
    case spool::record_type::message: {
      std::string parts = r.tx.is_mms ? app::index_parts(r.tx.body) : std::string();
      std::string body = std::move(r.tx.body);
      auto indexed = std::make_shared<const message>(r.tx);
      r.tx.body = std::move(body);
      const queue_id id{static_cast<std::uint8_t>(node_id), static_cast<std::uint8_t>(shard), r.sequence};
      d.add_message(id.format(), r.sequence, r.unix_ms, std::move(indexed));
      d.accepted.back().parts = std::move(parts);
      break;
    }
    case spool::record_type::top_up:
    case spool::record_type::refund: d.add_credit(r.account, r.amount); break;
    case spool::record_type::seal: break;
    case spool::record_type::delivery_final:
    case spool::record_type::submitted: delivery::add_delivery_row(d, r.delivery, r.unix_ms); break;
    case spool::record_type::inbound: delivery::add_inbound_row(d, r.sequence, r.inbound, r.unix_ms); break;
    case spool::record_type::carried: break;  // its original is in the index
  }
}

std::string join_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

// The shard of a "journal-<n>" directory name, as the gateway writes them:
// decimal without leading zeros, below 256 (queue ids carry the shard in
// one byte). Anything else is not a journal of ours.
std::optional<unsigned> journal_dir_shard(std::string_view name) {
  constexpr std::string_view prefix = "journal-";
  if (!name.starts_with(prefix)) return std::nullopt;
  const std::string_view digits = name.substr(prefix.size());
  if (digits.empty() || (digits.size() > 1 && digits.front() == '0')) return std::nullopt;
  unsigned index = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (ec != std::errc() || end != digits.data() + digits.size() || index > 255) return std::nullopt;
  return index;
}

// Every account's start-up balance: the store's column, the checkpoint's
// delta and the replayed journal effects, summed exactly and cut to
// 0..max_balance (each cut logged). `rows` gets what the start-up checkpoint
// stores for each account the replay touched or the cut changed.
bool start_balances(credit::account_store& store, const credit::checkpoint_store::loaded& checkpoint,
                    const journal_totals& totals, unsigned shards, app::gateway_services& services,
                    std::vector<credit::balance_row>& rows, credit_units& demo_credit, std::string& error) {
  for (const auto& account : store.list()) {
    const account_id id = account.settings.id;
    const auto delta = checkpoint.balance.find(id);
    const auto effect = totals.effect.find(id);
    const credit::start_balance b = credit::resolve_start_balance(
        id, account.credit_checkpoint, delta == checkpoint.balance.end() ? 0 : delta->second,
        effect == totals.effect.end() ? 0 : effect->second);
    for (const std::string& line : credit::describe_repairs(b, account.settings.username)) say("repaired: " + line);
    if (b.repaired() || effect != totals.effect.end()) rows.push_back(b.row());
    services.balances[credit::home_shard(id, shards)].emplace_back(id, b.balance);
    if (account.settings.username == "demo") demo_credit = b.balance;
  }
  error = store.last_error();
  return error.empty();
}

// The admin endpoint's bearer token, <data-dir>/admin-token: created at the
// first start, reused afterwards; a file others could read is set to 0600
// and that is logged. Called under the database lock, so no second gateway
// races to create it.
bool load_admin_token(const gateway_config& config, std::string& token, std::string& error) {
  std::string note;
  auto loaded = app::load_or_create_admin_token(app::admin_token_path(config.data_dir), note, error);
  if (!note.empty()) say(note);
  if (!loaded) return false;
  token = std::move(*loaded);
  return true;
}


// Everything the journals said at start-up: the effects after the
// checkpoint (balances, the start-up checkpoint's rows), the journals
// themselves (kept open for the shards), and the delivery work still to do.
struct replay_state {
  explicit replay_state(const gateway_config& config) : undelivered(config) {}
  journal_totals totals;
  std::uint64_t replayed_messages = 0;
  // What the replay found after each position goes into a checkpoint before
  // any shard starts: a shard's first periodic checkpoint moves the position
  // to its journal's end, so records replayed now must be folded by then.
  std::vector<credit::journal_delta> replayed;
  std::vector<std::unique_ptr<spool::journal>> journals;
  // Rebuilt from every record, not only those after the checkpoint: a
  // message accepted long ago may await its receipt. Without an SMSC there
  // is nothing to rebuild (messages stay queued).
  delivery::recovery undelivered;
};

// Opens journal-<index> and replays it into `st`.
std::unique_ptr<spool::journal> open_journal(const gateway_config& config, unsigned index,
                                             const credit::checkpoint_store::loaded& checkpoint, replay_state& st,
                                             std::string& error) {
  spool::journal_options options;
  options.dir = join_path(config.data_dir, "journal-" + std::to_string(index));
  options.node_id = config.node_id;
  options.shard_id = index;
  options.segment_bytes = config.journal_segment_bytes;
  const auto position = checkpoint.sequence.find(index);
  const std::uint64_t after = position == checkpoint.sequence.end() ? 0 : position->second;
  credit::journal_delta delta;
  delta.shard = index;
  delta.replayed = true;
  auto j = spool::journal::open(
      options,
      [&](spool::record& r) {
        if (r.sequence > after) {  // else in the checkpoint already
          st.totals.visit(r);
          fold(delta, r, config.node_id, index);
          st.replayed_messages += r.type == spool::record_type::message ? 1 : 0;
        }
        // Last: delivery's recovery takes the record's message.
        if (!config.smscs.empty()) st.undelivered.visit(std::move(r), config.node_id, index);
      },
      error);
  // A journal that ends before the checkpoint's position was replaced or
  // cut short: replaying it would silently mis-state every balance.
  if (j && j->durable_sequence() < after) {
    error = options.dir + ": ends at sequence " + std::to_string(j->durable_sequence()) +
            " but the checkpoint covers it up to " + std::to_string(after);
    return nullptr;
  }
  if (j) {
    delta.sequence = j->durable_sequence();
    st.replayed.push_back(std::move(delta));
  }
  return j;
}

// What the message index knows of the messages the checkpoint covers,
// which journal retention may have left without some of their records:
// delivery's recovery starts from it. Without an SMSC nothing is delivered
// (and nothing is deleted).
bool use_message_index(const gateway_config& config, credit::checkpoint_store& store,
                       const credit::checkpoint_store::loaded& checkpoint, replay_state& st, std::string& error) {
  if (config.smscs.empty()) return true;
  credit::checkpoint_store::open_messages open;
  if (!store.load_open_messages(open, error)) return false;
  st.undelivered.use_index(std::move(open), checkpoint.sequence, config.node_id);
  return true;
}

// One journal per shard, kept for the shards; directories of shards beyond
// the current count (the count was lowered) are replayed for balances too.
bool replay_journals(const gateway_config& config, unsigned shards,
                     const credit::checkpoint_store::loaded& checkpoint, replay_state& st, std::string& error) {
  for (unsigned i = 0; i < shards; ++i) {
    st.journals.push_back(open_journal(config, i, checkpoint, st, error));
    if (!st.journals.back()) {
      error = "journal-" + std::to_string(i) + ": " + error;
      return false;
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(config.data_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || !name.starts_with("journal-")) continue;
    const std::optional<unsigned> index = journal_dir_shard(name);
    if (!index) {
      say("ignoring " + join_path(config.data_dir, name) +
          ": not a shard journal (journal-<n>, n from 0 to 255 without leading zeros)");
      continue;
    }
    if (*index < shards) continue;
    if (!open_journal(config, *index, checkpoint, st, error)) {
      error = name + ": " + error;
      return false;
    }
  }
  return true;
}

// The demo account, on an empty database only; its password in the data
// directory, for the start-up line.
bool create_demo_account(const gateway_config& config, credit::account_store& store, std::string& error) {
  if (!config.create_demo_account || !store.list().empty()) return true;
  std::string password = random_password();
  if (password.empty()) {
    error = "cannot draw a random password";
    return false;
  }
  account_settings demo;
  demo.username = "demo";
  if (store.add(demo, password, 1000, error) == 0) {
    error = "cannot create the demo account: " + error;
    return false;
  }
  if (write_file_atomically(join_path(config.data_dir, "demo-password"), password + "\n", 0600, error)) return true;
  error = "cannot store the demo password: " + error;
  return false;
}

// Delivery's shared state, with the work the replay found, and its line.
void start_delivery(const gateway_config& config, unsigned shards, replay_state& st,
                    app::gateway_services& services) {
  delivery::recovery::result todo = st.undelivered.finish(shards);
  services.delivery = delivery::make_shared_state(config, shards);
  if (!services.delivery->enabled()) return say("delivery: no [[smsc]] configured: accepted messages stay queued");
  services.delivery->recovered = std::move(todo.per_shard);
  say("delivery: " + std::to_string(config.smscs.size()) + " SMSC account(s); " + std::to_string(todo.to_submit) +
      " segment(s) to submit and " + std::to_string(todo.awaiting_receipt) +
      " awaiting a receipt from the journals (those submitted without a recorded submit_sm_resp may reach "
      "the SMSC twice)" +
      (todo.mms_left_queued > 0 ? "; " + std::to_string(todo.mms_left_queued) + " MMS stay queued (no MM4 out)"
                                : std::string()));
}

// log_level = "debug": each SMTP session's phase changes, one stderr line
// each (stdio locks the stream, so shards' lines do not interleave).
void trace_to_stderr(void*, std::uint64_t connection, std::string_view line) {
  std::fprintf(stderr, "postino: smtp connection %llu: %.*s\n", static_cast<unsigned long long>(connection),
               static_cast<int>(line.size()), line.data());
}

// The SMTP listeners: each one's session settings plus the delivery queue's
// bound, and an auth = "none" listener's account, resolved once, now. The
// listener specs point into both; the sockets are io::listener_set's.
struct smtp_listeners {
  std::vector<account_settings> preauth;
  std::vector<smtp::session_config> sessions;
  std::vector<io::listener_spec> specs;
  std::vector<std::string> names;  // "listener[i] ADDR:PORT", for logs
  // PROTOCOL.md 5, shared by every listener and shard.
  std::unique_ptr<app::connection_limits> connections;
  std::unique_ptr<smtp::body_memory_budget> body_memory;
};

smtp::session_config session_config_of(const listener_session_config& l) {
  smtp::session_config session;
  session.hostname = l.hostname;
  session.max_message_size = l.max_message_size;
  session.bare_newline = l.bare_newline;
  session.max_errors = l.max_errors;
  session.max_auth_failures = l.max_auth_failures;
  session.max_pending_output = l.max_pending_output;
  session.mime_limits = {l.mime_max_parts, l.mime_max_depth};
  return session;
}

io::tls_version tls_version_of(const std::string& text) {
  return text == "1.1" ? io::tls_version::tls1_1 : text == "1.3" ? io::tls_version::tls1_3 : io::tls_version::tls1_2;
}

// A TLS listener's context (its certificate is read now: an unusable file
// stops start-up, named) and what its sessions must know of TLS.
bool attach_tls(const listener_tls_config& tls, io::listener_spec& spec, smtp::session_config& session,
                std::string& error) {
  session.require_tls_for_auth = tls.require_for_auth;
  if (tls.mode == listener_tls::none) return true;
  io::tls_settings settings{tls.certificate, tls.private_key, tls_version_of(tls.min_version)};
  spec.tls = io::tls_context::load(settings, error);
  if (!spec.tls) return false;
  spec.tls_start = tls.mode == listener_tls::implicit ? io::tls_mode::implicit : io::tls_mode::starttls;
  session.tls_available = tls.mode == listener_tls::starttls;
  session.implicit_tls = tls.mode == listener_tls::implicit;
  return true;
}

bool build_listeners(const gateway_config& config, credit::account_store& store,
                     const app::gateway_services& services, smtp_listeners& out, std::string& error) {
  out.preauth.reserve(config.listeners.size());
  out.sessions.resize(config.listeners.size());
  const app::smtp_timeouts timeouts{std::chrono::seconds(config.idle_timeout_s),
                                    std::chrono::seconds(config.data_timeout_s),
                                    std::chrono::seconds(config.limits.data_total_timeout_s)};
  out.connections = std::make_unique<app::connection_limits>(
      config.limits.connections_per_ip, config.limits.connections_per_account, config.limits.connection_limit_exempt);
  out.body_memory = std::make_unique<smtp::body_memory_budget>();
  out.body_memory->limit = static_cast<std::int64_t>(config.limits.max_body_memory);
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const listener_config& l = config.listeners[i];
    smtp::session_config& session = out.sessions[i] = session_config_of(l.session);
    if (config.log_level == verbosity::debug) session.trace = {&trace_to_stderr, nullptr};
    session.connections = out.connections.get();
    session.body_memory = out.body_memory.get();
    if (services.delivery->enabled()) {
      session.delivery_backlog = &services.delivery->backlog;
      session.delivery_backlog_limit = static_cast<std::int64_t>(config.delivery.queue_limit);
    }
    session.relay = l.relay;
    const account_settings* preauthenticated = nullptr;
    if (!l.auth_required && !l.relay) {
      auto account = store.find_by_username(l.account);
      if (!account) {
        error = "listener[" + std::to_string(i) + "]: account '" + l.account + "' does not exist" +
                (store.last_error().empty() ? "" : ": " + store.last_error());
        return false;
      }
      out.preauth.push_back(account->settings);
      preauthenticated = &out.preauth.back();
    }
    out.specs.push_back(app::smtp_listener(l.address, l.port, session, preauthenticated, timeouts));
    out.names.push_back("listener[" + std::to_string(i) + "] " + io::format_endpoint(l.address, l.port));
    if (!attach_tls(l.tls, out.specs.back(), session, error)) {
      error = out.names.back() + ": " + error;
      return false;
    }
  }
  return true;
}

core::runtime_options runtime_options_of(const gateway_config& config, unsigned shards) {
  core::runtime_options options;
  options.shards = shards;
  options.shutdown_grace = std::chrono::seconds(config.shutdown_grace_s);
  return options;
}

// The start-up lines saying where the gateway listens (and the demo
// account), and the ports file's text.
std::string announce(const gateway_config& config, const io::listener_set& listeners, core::runtime& rt,
                     const app::admin_server* admin, credit_units demo_credit) {
  std::string ports;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    std::string endpoint = io::format_endpoint(listeners.spec(i).address, listeners.bound_port(i));
    ports += "smtp " + std::to_string(i) + " " + endpoint + "\n";
    say("listening on " + endpoint + " (" + std::to_string(rt.shard_count()) + " shards)");
  }
  if (admin != nullptr) {
    std::string endpoint = io::format_endpoint(admin->address(), admin->port());
    ports += "admin " + endpoint + "\n";
    say("admin endpoint on " + endpoint + " (bearer token in " + app::admin_token_path(config.data_dir) + ")");
  }
  if (demo_credit >= 0) {
    std::string password = read_first_line(join_path(config.data_dir, "demo-password"));
    if (!password.empty())
      say("demo account: user demo, password " + password + ", credit " + std::to_string(demo_credit));
  }
  return ports;
}

// The replay's effects into the start-up balances and the start-up
// checkpoint (which must hold them before any shard's first checkpoint
// moves the positions), and its line.
bool fold_replay(credit::account_store& store, credit::checkpoint_store& checkpoints,
                 const credit::checkpoint_store::loaded& checkpoint, replay_state& replay, unsigned shards,
                 app::gateway_services& services, credit_units& demo_credit, std::string& error) {
  std::vector<credit::balance_row> balance_rows;
  if (!start_balances(store, checkpoint, replay.totals, shards, services, balance_rows, demo_credit, error)) {
    error = "cannot list accounts: " + error;
    return false;
  }
  if (!checkpoints.write(replay.replayed, balance_rows, error)) {
    error = "cannot write the start-up checkpoint: " + error;
    return false;
  }
  replay.replayed.clear();
  say("recovered: " + std::to_string(checkpoint.messages_to_deliver) + " message(s) in the checkpoint and " +
      std::to_string(replay.replayed_messages) + " replayed from the journals after it still to deliver");
  return true;
}

// The pools the shards hand slow work to: password checks and the content
// step of e-mails. They must outlive the shards.
struct worker_pools {
  std::unique_ptr<credit::hash_pool> auth;
  std::unique_ptr<credit::hash_pool> content;
};

worker_pools start_pools(const gateway_config& config, app::gateway_services& services) {
  worker_pools pools;
  pools.auth = std::make_unique<credit::hash_pool>(config.auth_workers, config.auth_queue);
  pools.content = std::make_unique<credit::hash_pool>(config.limits.content_workers, config.limits.content_queue);
  services.pool = pools.auth.get();
  services.content_pool = pools.content.get();
  services.auth_failures_per_minute = config.limits.auth_failures_per_minute;
  return pools;
}

std::unique_ptr<app::checkpointer> start_checkpointer(const gateway_config& config, core::runtime& rt,
                                                      std::unique_ptr<credit::checkpoint_store> store) {
  auto c = std::make_unique<app::checkpointer>(rt, std::move(store), std::chrono::seconds(config.checkpoint_interval_s),
                                               std::chrono::hours(24) * config.index_text_retention_days);
  // Without an SMSC nothing becomes final: segments are only counted.
  const std::uint64_t first_wait_ms = 2000ull * std::max(1u, config.checkpoint_interval_s);
  c->use_retention(std::make_unique<app::journal_retention>(rt, config.data_dir, config.node_id,
                                                            !config.smscs.empty(), first_wait_ms));
  // checkpoint_interval 0: no periodic checkpoint, only the final one at a clean stop.
  if (config.checkpoint_interval_s != 0) c->start();
  return c;
}

// Blocks every thread's SIGTERM, SIGINT and SIGHUP (threads inherit the
// mask), so that only the main thread's sigwait takes them.
sigset_t block_stop_signals() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

// SIGHUP: every TLS listener reads its certificate and key again. Sessions
// keep the context they started with; a file that does not load leaves the
// listener on its current one.
void reload_certificates(const smtp_listeners& smtp) {
  for (std::size_t i = 0; i < smtp.specs.size(); ++i) {
    if (!smtp.specs[i].tls) continue;
    std::string error;
    if (smtp.specs[i].tls->reload(error))
      say(smtp.names[i] + ": certificate reloaded from " + smtp.specs[i].tls->settings().certificate);
    else
      say(smtp.names[i] + ": certificate not reloaded, keeping the current one: " + error);
  }
}

void reload_admin_certificate(app::admin_server& admin, const gateway_config& config) {
  if (!admin.tls()) return;
  std::string error;
  if (admin.reload_tls(error))
    say("admin endpoint: certificate reloaded from " + config.admin_certificate);
  else
    say("admin endpoint: certificate not reloaded, keeping the current one: " + error);
}

// SIGTERM/SIGINT end the wait; SIGHUP reloads certificates and relay rules.
void wait_for_stop(const sigset_t& stop_signals, const smtp_listeners& smtp, app::relay_source* relays,
                   app::admin_server& admin, const gateway_config& config) {
  int signal_number = 0;
  for (;;) {
    if (sigwait(&stop_signals, &signal_number) != 0) continue;
    if (signal_number != SIGHUP) break;
    reload_certificates(smtp);
    reload_admin_certificate(admin, config);
    if (relays != nullptr) relays->refresh(true);
  }
  say(std::string("shutting down (") + strsignal(signal_number) + ")");
}

// Relay accounts (PROTOCOL.md 5a), when a listener has auth = "relay": the
// rules are read now and again whenever the database changes (postino-ctl
// writes it directly), polled every 2 s off the shards, and on SIGHUP.
bool start_relays(const gateway_config& config, app::gateway_services& services, std::string& error) {
  if (std::none_of(config.listeners.begin(), config.listeners.end(), [](const auto& l) { return l.relay; }))
    return true;
  services.relays = std::make_shared<app::relay_source>(config.database);
  if (!services.relays->load(error)) {
    error = "relay rules: " + error;
    return false;
  }
  services.relays->start_polling(std::chrono::seconds(2));
  return true;
}

bool take_database_lock(const gateway_config& config, credit::database_lock& lock, std::string& error) {
  std::error_code ec;
  fs::create_directories(config.data_dir, ec);
  if (ec) {
    error = "cannot create data directory " + config.data_dir + ": " + ec.message();
    return false;
  }
  if (lock.try_acquire(config.database)) return true;
  error = errno == EWOULDBLOCK ? "another gateway holds " + config.database + ".lock"
                               : "cannot lock " + config.database + ".lock: " + std::strerror(errno);
  return false;
}

// The checkpointer, then the shards (every session closed, every journal at
// pending() == 0), then the admin endpoint; then the final checkpoint, which
// covers every journal to its end, so the store's balances are what the
// gateway reported (postino-ctl offline).
void stop_in_order(app::checkpointer* checkpointer, core::runtime& rt, app::admin_server& admin,
                   app::gateway_services& services) {
  if (checkpointer != nullptr) checkpointer->stop();
  rt.stop();
  rt.join();
  admin.stop();
  std::string error;
  if (checkpointer != nullptr && !checkpointer->write_final(services.last_deltas->take(), error))
    say("final checkpoint: " + error + " (the next start replays the journals)");
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t stop_signals = block_stop_signals();
  std::string error;
  int exit_code = 0;
  std::optional<gateway_config> loaded = load_config(argc, argv, error, exit_code);
  if (!loaded) {
    if (!error.empty()) std::fprintf(stderr, "postino: %s\n", error.c_str());
    return exit_code;
  }
  const gateway_config& config = *loaded;
  raise_fd_limit();
  keep_large_blocks_mapped();

  credit::database_lock lock;
  if (!take_database_lock(config, lock, error)) return fail(1, error);
  std::unique_ptr<credit::account_store> store = credit::account_store::open(config.database, error);
  if (!store) return fail(1, "cannot open " + config.database + ": " + error);
  for (const std::string& note : store->migration_notes()) say("migrated: " + note);
  // admin_port 0 means no admin endpoint, except that with a ports file
  // (tests, supervisors) it listens on an ephemeral port and says where. Its
  // token is loaded or created now, under the lock.
  const bool want_admin = config.admin_port != 0 || !config.ports_file.empty();
  std::string admin_token;
  if (want_admin && !load_admin_token(config, admin_token, error)) return fail(1, "admin token: " + error);
  if (!create_demo_account(config, *store, error)) return fail(1, error);

  const unsigned shards = config.shards != 0 ? config.shards : std::max(1u, std::thread::hardware_concurrency());
  // The last checkpoint: per account the journal effects folded so far, per
  // shard the sequence they reach. Start-up replays only what comes after.
  std::unique_ptr<credit::checkpoint_store> checkpoints = credit::checkpoint_store::open(config.database, error);
  credit::checkpoint_store::loaded checkpoint;
  if (!checkpoints || !checkpoints->load(checkpoint, error)) return fail(1, "checkpoint: " + error);
  replay_state replay(config);
  if (!use_message_index(config, *checkpoints, checkpoint, replay, error)) return fail(1, "checkpoint: " + error);
  if (!replay_journals(config, shards, checkpoint, replay, error)) return fail(1, error);

  auto services = std::make_shared<app::gateway_services>();
  services->database = config.database;
  services->balances.resize(shards);
  credit_units demo_credit = -1;
  if (!fold_replay(*store, *checkpoints, checkpoint, replay, shards, *services, demo_credit, error))
    return fail(1, error);
  start_delivery(config, shards, replay, *services);

  smtp_listeners smtp;
  if (!build_listeners(config, *store, *services, smtp, error)) return fail(2, error);
  if (!start_relays(config, *services, error)) return fail(1, error);
  store.reset();  // workers open their own connections
  worker_pools pools = start_pools(config, *services);
  say(sms::prepare_recipient_validation());

  std::vector<spool::journal*> journal_ptrs;
  for (auto& j : replay.journals) journal_ptrs.push_back(j.get());
  io::listener_set listeners(smtp.specs, shards, io::server_options{});
  if (!listeners.bind(error)) return fail(1, error);
  auto rt = std::make_unique<core::runtime>(runtime_options_of(config, shards),
                                            app::make_shard_services(services, journal_ptrs, listeners));
  if (!rt->start(error)) return fail(1, error);
  std::unique_ptr<app::checkpointer> checkpointer = start_checkpointer(config, *rt, std::move(checkpoints));
  // The admin endpoint (loopback only, token required; see want_admin above).
  auto admin = std::make_unique<app::admin_server>(*rt, config.database, std::move(admin_token));
  admin->set_delivery(services->delivery);
  if (!config.admin_certificate.empty()) admin->use_tls(config.admin_certificate, config.admin_private_key);
  // From here a failure still stops the shards in order before it exits.
  std::string failed;
  if (want_admin && !admin->start(config.admin_address, config.admin_port, error)) failed = "admin endpoint: " + error;
  if (failed.empty()) {
    const std::string ports = announce(config, listeners, *rt, want_admin ? admin.get() : nullptr, demo_credit);
    if (!config.ports_file.empty() && !write_file_atomically(config.ports_file, ports, 0644, error))
      failed = "ports file: " + error;
  }
  if (failed.empty()) wait_for_stop(stop_signals, smtp, services->relays.get(), *admin, config);
  stop_in_order(checkpointer.get(), *rt, *admin, *services);
  pools = worker_pools{};  // after the shards: their jobs post to them
  rt.reset();
  replay.journals.clear();
  if (!failed.empty()) return fail(1, failed);
  say("stopped");
  return 0;
}
