// The gateway's configuration: a TOML file (toml++) overridden by command-line
// flags (CLI11). Loaded once at start-up on the main thread; shards keep
// read-only references. A bad file is reported with its key and line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "postino/account.h"

namespace postino {

// What a listener's SMTP sessions are told (the app makes an
// smtp::session_config of it: configuration knows no protocol part's types).
struct listener_session_config {
  std::string hostname = "localhost";
  std::uint64_t max_message_size = 10485760;  // advertised as SIZE
  bare_newline_policy bare_newline = bare_newline_policy::normalize;
  unsigned max_errors = 10;             // counted errors, then 421
  unsigned max_auth_failures = 3;       // per connection, then 421
  std::size_t max_pending_output = 16 * 1024;  // from [limits]
  std::uint32_t mime_max_parts = 1000;  // from [limits]
  std::uint32_t mime_max_depth = 20;    // from [limits]
};

// A listener's TLS (PROTOCOL.md 5a). The files are read at start-up and on
// SIGHUP; an unreadable one stops start-up naming it.
enum class listener_tls : std::uint8_t { none, starttls, implicit };

struct listener_tls_config {
  listener_tls mode = listener_tls::none;
  std::string certificate;             // PEM, the chain after the certificate
  std::string private_key;             // PEM
  std::string min_version = "1.2";     // "1.1" (also security level 0) | "1.2" | "1.3"
  // AUTH only inside TLS; default on for listeners not bound to loopback.
  bool require_for_auth = false;
};

struct listener_config {
  std::string address = "127.0.0.1";
  std::uint16_t port = 2525;
  bool auth_required = true;          // auth = "required" | "none" | "relay"
  bool relay = false;                 // auth = "relay": no AUTH, accounts by relay rule (PROTOCOL.md 5a)
  std::string account;                // with auth = "none": the account used
  listener_session_config session;    // hostname, size, bare newline, limits
  listener_tls_config tls;
};

// One SMSC account (issue 7, PROTOCOL.md 6): where its binds connect and how
// they behave. All binds of one account live on one shard.
struct smsc_config {
  std::string name;                   // unique; routes name it
  std::string host = "127.0.0.1";
  std::uint16_t port = 2775;
  std::string system_id;              // at most 15 characters
  std::string password;               // at most 8 characters
  std::string system_type;            // at most 12 characters
  unsigned binds = 1;                 // bind_transceiver connections, 1..64
  unsigned window = 10;               // outstanding submit_sm per bind, 1..1000
  unsigned max_submits_per_second = 100;  // per bind; 0: no limit
  // data_coding sent for GSM text: 0 (SMSC default alphabet, unpacked
  // septets) or 3 (Latin-1, for SMSCs that read 0 as Latin-1: the text is
  // then sent as Latin-1 octets; GSM characters Latin-1 lacks go as UCS-2).
  std::uint8_t gsm_data_coding = 0;
  std::uint8_t alphanumeric_ton = 5, alphanumeric_npi = 0;  // text originators
  std::uint8_t numeric_ton = 1, numeric_npi = 1;            // E.164 originators up to 15 digits
  std::uint8_t long_numeric_ton = 0, long_numeric_npi = 1;  // over 15 digits
  std::uint8_t destination_ton = 1, destination_npi = 1;
  // How receipts print the ids submit_sm_resp gave (FIELD-NOTES: SMSCs mix
  // hex and decimal): "same" matches only as given (letter case and leading
  // zeros aside); "hex" (receipts print in hex the decimal ids of
  // submit_sm_resp) and "decimal" (the reverse) convert. "auto", the
  // default, is "same": the other base is never tried on its own, because
  // an id read in the other base is often exactly another segment's id
  // (receipt 26 is 0x26 and 0x1A's decimal reading), and a wrong match
  // finalizes and refunds the wrong segment (src/delivery/receipt_matcher.h).
  std::string receipt_ids = "auto";
  unsigned enquire_link_s = 30;       // keep-alive interval
  unsigned response_timeout_s = 10;   // a response (bind, enquire_link, submit) later than this drops the bind
  unsigned reconnect_min_ms = 500;    // back-off doubles from here ...
  unsigned reconnect_max_ms = 30000;  // ... up to here
  int shard = -1;                     // -1: chosen from the name
};

// Destination prefix (digits of the E.164 number without '+'; "" matches
// every number) -> SMSC accounts in failover order. The longest matching
// prefix wins.
struct route_config {
  std::string prefix;
  std::vector<std::string> smscs;
};

struct delivery_config {
  unsigned validity_s = 172800;          // validity period sent and kept: then EXPIRED, refunded
  unsigned retry_min_ms = 1000;          // temporary submit errors: back-off doubles from here ...
  unsigned retry_max_ms = 300000;        // ... up to here
  std::uint64_t queue_limit = 1000000;   // segments waiting for an SMSC; above it MAIL gets 452 4.3.1
  unsigned receipt_hold_s = 600;         // a receipt before its submit_sm_resp is held this long
  unsigned failover_after_s = 10;        // an SMSC down this long: its queue moves to the next route
};

// [limits] (PROTOCOL.md section 5): what one client may cost the gateway.
struct limits_config {
  std::uint32_t auth_failures_per_minute = 30;  // failed AUTH per source address, across shards
  std::uint32_t mime_max_parts = 1000;          // e-mail mode: MIME entities per message
  std::uint32_t mime_max_depth = 20;            // e-mail mode: nesting levels
  unsigned content_workers = 2;                 // threads for the content step of e-mails and big bodies
  std::size_t content_queue = 4096;             // content steps queued before 451 4.3.0
  std::size_t max_pending_output = 16384;       // unread reply bytes before a session stops reading
  // Concurrent connections, across shards (421 4.7.0 Too many connections); 0 = off.
  std::uint32_t connections_per_ip = 50;        // per IPv4 address, per IPv6 /64
  std::uint32_t connections_per_account = 0;    // checked at AUTH
  // CIDR blocks the per-IP count skips (as Postfix's $mynetworks); validated.
  std::vector<std::string> connection_limit_exempt = {"127.0.0.0/8", "::1/128"};
  unsigned data_total_timeout_s = 600;          // DATA from its 354 to the end, besides data_timeout; 0 = off
  std::uint64_t max_body_memory = 256ull << 20; // bytes reserved by unfinished DATA bodies, whole process; 0 = off
};

// How much the gateway says on stderr: debug adds each SMTP session's phase
// changes (smtp::session_config::trace).
enum class verbosity : std::uint8_t { info, debug };

struct gateway_config {
  std::string hostname = "localhost";
  verbosity log_level = verbosity::info;  // log_level = "info" | "debug"; --log-level
  unsigned shards = 0;                // 0: one per core
  unsigned node_id = 0;
  std::string data_dir = "./postino-data";
  std::string database;               // default: <data_dir>/postino.db
  unsigned idle_timeout_s = 300;
  unsigned data_timeout_s = 180;
  unsigned shutdown_grace_s = 30;
  unsigned auth_workers = 2;
  std::size_t auth_queue = 4096;
  std::uint64_t journal_segment_bytes = 64u << 20;
  // 0: no periodic checkpoint. Every second, so each fold is small: at
  // 30 s one fold of ~1.5M messages held a shard's core for seconds under
  // sustained load (open-loop W1 fell from 52k to 17k msgs/s while it ran),
  // and the message index lagged by as much.
  unsigned checkpoint_interval_s = 1;
  // [index] text_retention_days: the message index keeps a message's text
  // (or an MMS's text part) this long after acceptance, then the checkpoint
  // thread clears it; states, originator, price and MMS part sizes stay.
  // 0: cleared at the next sweep (within a checkpoint interval or so).
  unsigned index_text_retention_days = 7;
  bool create_demo_account = true;    // on an empty database
  std::string admin_address = "127.0.0.1";  // loopback (127.0.0.0/8, ::1, localhost) unless TLS (checked)
  std::string admin_certificate;       // PEM; with admin_private_key: HTTPS, and any address
  std::string admin_private_key;
  std::uint16_t admin_port = 0;        // 0: no admin endpoint
  std::string ports_file;              // if set, bound ports are written here
  std::vector<listener_config> listeners;
  std::vector<smsc_config> smscs;      // [[smsc]]; none: messages stay queued
  std::vector<route_config> routes;    // [[route]]; none: every number to every SMSC, in file order
  delivery_config delivery;            // [delivery]
  limits_config limits;                // [limits]
};

// Parses `path` (may be empty: defaults) and applies the command line.
// On error returns nullopt and sets `error` to "<file>:<line>: <key>: <what>"
// (or the flag at fault); `exit_code` tells main what to return (0 for --help).
std::optional<gateway_config> load_config(int argc, char** argv, std::string& error,
                                          int& exit_code);
// The same from a TOML string (tests).
std::optional<gateway_config> parse_config_text(const std::string& toml_text,
                                                const std::string& source_name,
                                                std::string& error);

}  // namespace postino
