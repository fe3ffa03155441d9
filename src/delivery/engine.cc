// The per-shard delivery engine (include/postino/delivery.h). On the shard
// that accepted a message it routes each recipient (longest destination
// prefix, first SMSC of the route that is up) and posts the segments to the
// shard owning that SMSC account. On the owning shard each SMSC account has
// its binds, a fair queue (round robin over customer accounts, one segment
// per turn, so a million-message campaign never starves a one-message
// sender), the submits in flight by token, the submitted segments waiting
// for their receipt by SMSC message id, and the receipts that came before
// their submit_sm_resp. Journal records: `submitted` when an SMSC confirms a
// segment, `delivery_final` (with its refund) when a segment ends; a receipt
// is acknowledged to the SMSC only once its final record is durable, so a
// crash never loses one. Buffers: segments share their message (shared_ptr);
// the engine owns its queues, maps and the waiters it gives the journal
// (each deletes itself when told); the binds own their sockets and buffers.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <queue>
#include <unordered_map>

#include "postino/delivery.h"
#include "postino/runtime.h"
#include "postino/smpp.h"
#include "smpp_bind.h"

namespace postino::delivery {
namespace {

// Delivery counters have one writer each, like the shard's own.
void bump(std::atomic<std::uint64_t>& counter, std::int64_t delta = 1) { core::shard_metrics::bump(counter, delta); }

// One segment of one recipient of one message.
struct segment_ref {
  std::shared_ptr<const outbound_message> message;
  std::uint32_t recipient = 0;
  std::uint32_t segment = 0;
  std::uint32_t attempts = 0;  // temporary failures so far

  spool::delivery_key key() const {
    spool::delivery_key k = message->key;
    k.recipient = recipient;
    k.segment = segment;
    return k;
  }
  account_id account() const { return message->source->account; }
  credit_units unit_price() const { return message->unit_prices[recipient]; }
  const std::string& number() const { return message->source->recipients[recipient]; }
};

// Segments handed from one shard to another through a mailbox.
struct handoff {
  shared_state* shared = nullptr;
  int smsc = -1;
  std::vector<segment_ref> segments;
};

std::string_view digits_of(const std::string& e164) {
  std::string_view d = e164;
  if (!d.empty() && d.front() == '+') d.remove_prefix(1);
  return d;
}

}  // namespace

unsigned smsc_home_shard(const smsc_config& smsc, unsigned shards) {
  if (smsc.shard >= 0) return static_cast<unsigned>(smsc.shard) % shards;
  // FNV-1a: stable across runs and builds, unlike std::hash.
  std::uint32_t h = 2166136261u;
  for (unsigned char c : smsc.name) h = (h ^ c) * 16777619u;
  return h % shards;
}

std::shared_ptr<shared_state> make_shared_state(const gateway_config& config, unsigned shards) {
  auto s = std::make_shared<shared_state>();
  s->config = &config;
  for (const auto& smsc : config.smscs) s->smsc_shard.push_back(smsc_home_shard(smsc, shards));
  // All 0 ("up") until the owning shard starts the account's binds.
  s->smsc_down_since_ms = std::make_unique<std::atomic<std::uint64_t>[]>(config.smscs.size());
  s->metrics = std::make_unique<delivery_metrics[]>(shards);
  s->recovered.resize(shards);
  s->engines.assign(shards, nullptr);
  return s;
}

// ---------------------------------------------------------------------------
struct engine::impl {
  struct smsc_runtime;

  // Told when a delivery record's group is durable or failed.
  struct record_waiter final : spool::append_waiter {
    impl* self = nullptr;
    smsc_runtime* smsc = nullptr;
    spool::record_type type = spool::record_type::submitted;
    segment_ref seg;
    std::string smsc_message_id;
    message_state state = message_state::submitted;
    std::uint32_t error = 0;
    credit_units refund = 0;
    smpp_bind* ack_bind = nullptr;  // a receipt waiting for its deliver_sm_resp
    deliver_ticket ack_ticket = 0;
    credit::journal_delta::inbound inbound;
    void on_durable(bool ok) override {
      std::unique_ptr<record_waiter> owned(this);
      self->record_durable(*this, ok);
    }
  };

  struct smsc_runtime final : bind_listener {
    impl* self = nullptr;
    int index = 0;
    const smsc_config* config = nullptr;
    std::vector<std::unique_ptr<smpp_bind>> binds;
    std::vector<const smpp_bind*> up;  // binds bound now
    // The fair queue: per customer account a FIFO; `rotation` lists the
    // accounts whose FIFO is not empty, each once.
    std::unordered_map<account_id, std::deque<segment_ref>> queues;
    std::deque<account_id> rotation;
    std::size_t queued = 0;
    std::unordered_map<std::uint64_t, segment_ref> in_flight;  // by token
    struct awaiting {
      segment_ref seg;
      std::string smsc_message_id;
    };
    std::unordered_map<std::string, awaiting> by_id;  // canonical SMSC message id
    struct held {
      smpp::receipt receipt;
      std::uint64_t until_ms = 0;
    };
    std::unordered_map<std::string, held> early;  // receipts before their submit_sm_resp

    void push(segment_ref seg, bool front) {
      auto& q = queues[seg.account()];
      if (q.empty()) rotation.push_back(seg.account());
      front ? q.push_front(std::move(seg)) : q.push_back(std::move(seg));
      ++queued;
    }
    bool pop(segment_ref& out) {
      while (!rotation.empty()) {
        const account_id a = rotation.front();
        rotation.pop_front();
        auto it = queues.find(a);
        if (it == queues.end() || it->second.empty()) continue;
        out = std::move(it->second.front());
        it->second.pop_front();
        --queued;
        if (it->second.empty())
          queues.erase(it);
        else
          rotation.push_back(a);
        return true;
      }
      return false;
    }

    void on_bound(smpp_bind& b) override { self->bind_up(*this, b); }
    void on_unbound(smpp_bind& b, std::vector<std::uint64_t> outstanding) override {
      self->bind_lost(*this, b, std::move(outstanding));
    }
    void on_submit_resp(smpp_bind&, std::uint64_t token, std::uint32_t status, std::string_view id) override {
      self->submit_answered(*this, token, status, id);
    }
    void on_deliver_sm(smpp_bind& b, deliver_ticket ticket, const smpp::short_message_pdu& pdu) override {
      self->deliver_sm(*this, b, ticket, pdu);
    }
    void on_ready(smpp_bind&) override { self->pump(*this); }
  };

  struct retry {
    std::uint64_t due_ms = 0;
    int smsc = 0;
    segment_ref seg;
    bool operator>(const retry& o) const { return due_ms > o.due_ms; }
  };

  struct tick_timer final : core::timer_node {
    impl* self = nullptr;
    void on_timer() override { self->tick(); }
  };

  core::shard& shard;
  std::shared_ptr<shared_state> shared;
  host& gateway;
  const gateway_config& config;
  delivery_metrics& metrics;
  std::vector<std::unique_ptr<smsc_runtime>> smscs;  // indexed like config.smscs; null when another shard owns it
  std::priority_queue<retry, std::vector<retry>, std::greater<>> retries;
  std::uint64_t next_token = 0;
  tick_timer timer;
  bool stopping = false;
  // Routes, longest prefix first, with SMSC names resolved to indexes.
  struct route {
    std::string prefix;
    std::vector<int> smscs;
  };
  std::vector<route> routes;

  impl(core::shard& s, std::shared_ptr<shared_state> sh, host& h)
      : shard(s), shared(std::move(sh)), gateway(h), config(*shared->config), metrics(shared->metrics[s.id()]) {
    timer.self = this;
    build_routes();
    smscs.resize(config.smscs.size());
    for (std::size_t i = 0; i < config.smscs.size(); ++i)
      if (shared->smsc_shard[i] == shard.id()) start_smsc(static_cast<int>(i));
    take_recovered();
    arm_tick();
  }

  ~impl() {
    if (timer.armed()) shard.timers().cancel(timer);
  }

  void build_routes() {
    std::unordered_map<std::string, int> index;
    for (std::size_t i = 0; i < config.smscs.size(); ++i) index[config.smscs[i].name] = static_cast<int>(i);
    for (const auto& r : config.routes) {
      route out{r.prefix, {}};
      for (const auto& name : r.smscs) out.smscs.push_back(index.at(name));
      routes.push_back(std::move(out));
    }
    if (routes.empty()) {
      route all{"", {}};
      for (std::size_t i = 0; i < config.smscs.size(); ++i) all.smscs.push_back(static_cast<int>(i));
      routes.push_back(std::move(all));
    }
    std::stable_sort(routes.begin(), routes.end(),
                     [](const route& a, const route& b) { return a.prefix.size() > b.prefix.size(); });
  }

  void start_smsc(int i) {
    auto s = std::make_unique<smsc_runtime>();
    s->self = this;
    s->index = i;
    s->config = &config.smscs[i];
    bind_env env{&shard.ring(), &shard.timers(), [this] { return core::monotonic_ms(); }};
    for (unsigned b = 0; b < s->config->binds; ++b)
      s->binds.push_back(std::make_unique<smpp_bind>(env, *s->config, b, *s));
    smsc_runtime& ref = *s;
    smscs[i] = std::move(s);
    // Counted down from start: failover waits failover_after_s for a first bind.
    // (monotonic_ms: the shard's clock is not running yet during set-up.)
    shared->smsc_down_since_ms[i].store(std::max<std::uint64_t>(1, core::monotonic_ms()), std::memory_order_relaxed);
    for (auto& b : ref.binds) b->start();
  }

  void take_recovered() {
    std::vector<recovered_segment> work = std::move(shared->recovered[shard.id()]);
    std::vector<segment_ref> to_route;
    for (auto& r : work) {
      segment_ref seg{std::move(r.message), r.recipient, r.segment, 0};
      if (r.smsc >= 0 && smscs[r.smsc]) {
        smsc_runtime& s = *smscs[r.smsc];
        s.by_id[index_key(s, r.smsc_message_id)] = {std::move(seg), r.smsc_message_id};
      } else {
        to_route.push_back(std::move(seg));
      }
    }
    route_segments(std::move(to_route));
  }

  // --- routing (on any shard) -------------------------------------------
  const route* route_for(const std::string& e164) const {
    const std::string_view d = digits_of(e164);
    for (const auto& r : routes)
      if (d.substr(0, r.prefix.size()) == r.prefix) return &r;
    return nullptr;
  }

  bool smsc_up(int i) const {
    return shared->smsc_down_since_ms[i].load(std::memory_order_relaxed) == 0;
  }

  // The first SMSC of the route that is up, else the route's first. -1: no route.
  int choose(const std::string& e164, int avoid = -1) const {
    const route* r = route_for(e164);
    if (r == nullptr) return -1;
    for (int i : r->smscs)
      if (i != avoid && smsc_up(i)) return i;
    return avoid >= 0 ? -1 : r->smscs.front();
  }

  // Some route lists SMSC `i` and another SMSC that is up.
  bool alternative_up(int i) const {
    for (const auto& r : routes)
      if (std::find(r.smscs.begin(), r.smscs.end(), i) != r.smscs.end())
        for (int other : r.smscs)
          if (other != i && smsc_up(other)) return true;
    return false;
  }

  void route_segments(std::vector<segment_ref> segments) {
    std::unordered_map<int, std::vector<segment_ref>> by_smsc;
    for (auto& seg : segments) {
      const int i = choose(seg.number());
      if (i < 0) {
        // Routes are configured and none covers this number: nothing will
        // ever take it. A permanent failure, refunded.
        bump(metrics.permanent_errors);
        finalize(nullptr, std::move(seg), {}, message_state::rejected, smpp::status::invalid_dest_address, nullptr, 0);
        continue;
      }
      by_smsc[i].push_back(std::move(seg));
    }
    for (auto& [i, list] : by_smsc) post_segments(i, std::move(list));
  }

  void post_segments(int smsc, std::vector<segment_ref> segments) {
    auto* h = new handoff{shared.get(), smsc, std::move(segments)};
    core::message m;
    m.run = &impl::handoff_arrived;
    m.target = h;
    shard.post(shared->smsc_shard[smsc], m);
  }

  static void handoff_arrived(core::shard& at, const core::message& m) {
    std::unique_ptr<handoff> h(static_cast<handoff*>(m.target));
    engine* e = h->shared->engines[at.id()];
    if (e == nullptr) return;  // shutting down: the journal still has them
    e->impl_->enqueue(h->smsc, std::move(h->segments));
  }

  void enqueue(int i, std::vector<segment_ref> segments) {
    smsc_runtime& s = *smscs[i];
    shared->backlog.fetch_add(static_cast<std::int64_t>(segments.size()), std::memory_order_relaxed);
    for (auto& seg : segments) s.push(std::move(seg), false);
    pump(s);
  }

  // --- submitting ---------------------------------------------------------
  void pump(smsc_runtime& s) {
    if (stopping) return;
    for (auto& b : s.binds) {
      while (s.queued > 0 && b->can_submit()) {
        segment_ref seg;
        if (!s.pop(seg)) break;
        if (core::unix_ms() >= seg.message->expires_unix_ms) {
          expire(&s, std::move(seg));
          continue;
        }
        const std::uint64_t token = ++next_token;
        const smpp::short_message_pdu pdu = build_pdu(*s.config, seg);
        s.in_flight.emplace(token, std::move(seg));
        b->submit(pdu, token);
        bump(metrics.submits);
      }
    }
  }

  smpp::short_message_pdu build_pdu(const smsc_config& c, const segment_ref& seg) const {
    const outbound_message& m = *seg.message;
    const message& accepted = *m.source;
    smpp::short_message_pdu p;
    p.source.value = accepted.originator;
    switch (accepted.originator_type) {
      case originator_kind::alphanumeric:
        p.source.ton = c.alphanumeric_ton;
        p.source.npi = c.alphanumeric_npi;
        break;
      case originator_kind::numeric:
        p.source.ton = c.numeric_ton;
        p.source.npi = c.numeric_npi;
        break;
      case originator_kind::numeric_long:
        p.source.ton = c.long_numeric_ton;
        p.source.npi = c.long_numeric_npi;
        break;
    }
    if (accepted.originator_type != originator_kind::alphanumeric && !p.source.value.empty() &&
        p.source.value.front() == '+')
      p.source.value.erase(0, 1);
    p.destination = {c.destination_ton, c.destination_npi, std::string(digits_of(seg.number()))};
    const bool concatenated = m.segments.size() > 1;
    p.esm_class = concatenated ? smpp::esm::udh_indicator : 0;
    p.registered_delivery = 1;
    const std::uint64_t now = core::unix_ms();
    const std::uint64_t left_s = m.expires_unix_ms > now ? (m.expires_unix_ms - now + 999) / 1000 : 1;
    p.validity_period = smpp::relative_time(left_s);
    const std::string& sm = m.segments[seg.segment];
    if (m.encoding == sms::sms_encoding::ucs2) {
      p.data_coding = 0x08;
      p.short_message = sm;
    } else if (c.gsm_data_coding == 0x03 && latin1_segment(sm, concatenated, p.short_message)) {
      p.data_coding = 0x03;
    } else {
      p.data_coding = 0x00;
      p.short_message = sm;
    }
    return p;
  }

  // A GSM segment as Latin-1 octets (the UDH, when there is one, unchanged);
  // false when a character has no Latin-1 form: it then goes as GSM.
  static bool latin1_segment(const std::string& sm, bool has_udh, std::string& out) {
    const std::size_t udh = has_udh && !sm.empty() ? static_cast<unsigned char>(sm[0]) + 1u : 0;
    std::string text;
    if (!sms::gsm7_to_latin1(std::string_view(sm).substr(std::min(udh, sm.size())), text)) return false;
    out = sm.substr(0, udh) + text;
    return true;
  }

  void submit_answered(smsc_runtime& s, std::uint64_t token, std::uint32_t status, std::string_view id) {
    auto node = s.in_flight.extract(token);
    if (node.empty()) return;
    segment_ref seg = std::move(node.mapped());
    switch (smpp::classify(status)) {
      case smpp::error_class::ok:
        bump(metrics.submitted_ok);
        shared->backlog.fetch_sub(1, std::memory_order_relaxed);
        submitted(s, std::move(seg), std::string(id));
        break;
      case smpp::error_class::throttled:
        // The bind has slowed down already; the segment keeps its turn.
        bump(metrics.throttled);
        s.push(std::move(seg), true);
        break;
      case smpp::error_class::temporary:
        bump(metrics.temporary_errors);
        retry_later(s.index, std::move(seg));
        break;
      case smpp::error_class::permanent:
        bump(metrics.permanent_errors);
        shared->backlog.fetch_sub(1, std::memory_order_relaxed);
        finalize(&s, std::move(seg), {}, message_state::rejected, status, nullptr, 0);
        break;
    }
    pump(s);
  }

  void retry_later(int smsc, segment_ref seg) {
    const std::uint64_t now = core::unix_ms();
    const unsigned shift = std::min<std::uint32_t>(seg.attempts, 20);
    const std::uint64_t delay =
        std::min<std::uint64_t>(std::uint64_t{config.delivery.retry_min_ms} << shift, config.delivery.retry_max_ms);
    ++seg.attempts;
    if (now + delay >= seg.message->expires_unix_ms) return expire(smscs[smsc].get(), std::move(seg));
    retries.push({shard.now_ms() + delay, smsc, std::move(seg)});
    arm_tick();
  }

  void expire(smsc_runtime* s, segment_ref seg) {
    shared->backlog.fetch_sub(1, std::memory_order_relaxed);
    bump(metrics.expired);
    finalize(s, std::move(seg), {}, message_state::expired, 0, nullptr, 0);
  }

  void submitted(smsc_runtime& s, segment_ref seg, std::string id) {
    auto* w = new record_waiter;
    w->self = this;
    w->smsc = &s;
    w->type = spool::record_type::submitted;
    w->seg = seg;
    w->smsc_message_id = id;
    append(*w);
    if (id.empty()) {
      std::fprintf(stderr, "postino: smsc %s: submit_sm_resp without a message id for %s: no receipt can match\n",
                   s.config->name.c_str(), seg.message->queue_id.c_str());
      return;
    }
    // A receipt that came first is applied now; the final record follows
    // the submitted one in the same journal, so it is never durable alone.
    if (auto early = s.early.find(index_key(s, id)); early != s.early.end()) {
      const smpp::receipt r = std::move(early->second.receipt);
      s.early.erase(early);
      bump(metrics.receipts_matched);
      finalize(&s, std::move(seg), id, r.state, receipt_error(r), nullptr, 0);
      return;
    }
    // (The key first: the right side of an assignment is evaluated first.)
    std::string key = index_key(s, id);
    s.by_id[std::move(key)] = {std::move(seg), std::move(id)};
  }

  // Submitted ids are indexed under receipt_key() (the canonical id, or its
  // hex/decimal form when the SMSC's receipts are configured to print that);
  // receipts, and the early receipts, are keyed by their canonical id. No
  // guessing: with many receipts in flight, "1a" read as hex may be exactly
  // another segment's decimal id, and a wrong match finalizes the wrong
  // segment; an SMSC that mixes bases is configured (receipt_ids).
  static std::string index_key(const smsc_runtime& s, std::string_view id) {
    return smpp::receipt_key(id, s.config->receipt_ids);
  }

  // An error that is not a 32-bit number (an SMSC's junk) is recorded as 0,
  // never wrapped into some other code.
  static std::uint32_t receipt_error(const smpp::receipt& r) { return smpp::receipt_error_code(r.error).value_or(0); }

  // --- binds coming and going -----------------------------------------------
  void bind_up(smsc_runtime& s, const smpp_bind& b) {
    s.up.push_back(&b);
    bump(metrics.binds_up);
    shared->smsc_down_since_ms[s.index].store(0, std::memory_order_relaxed);
    pump(s);
  }

  void bind_lost(smsc_runtime& s, smpp_bind& b, std::vector<std::uint64_t> outstanding) {
    auto was_up = std::find(s.up.begin(), s.up.end(), &b);
    if (was_up != s.up.end()) {
      s.up.erase(was_up);
      bump(metrics.binds_up, -1);
    }
    if (s.up.empty() && smsc_up(s.index))
      shared->smsc_down_since_ms[s.index].store(std::max<std::uint64_t>(1, shard.now_ms()), std::memory_order_relaxed);
    std::size_t again = 0;
    // Newest first onto the front, so they go out again in their old order.
    for (auto it = outstanding.rbegin(); it != outstanding.rend(); ++it) {
      auto node = s.in_flight.extract(*it);
      if (node.empty()) continue;
      s.push(std::move(node.mapped()), true);
      ++again;
    }
    if (again > 0) {
      bump(metrics.resubmitted, again);
      std::fprintf(stderr,
                   "postino: smsc %s: %zu submit(s) were unanswered when the bind was lost; they are submitted "
                   "again and may reach the SMSC twice\n",
                   b.name().c_str(), again);
    }
    pump(s);
  }

  // --- receipts and handset messages --------------------------------------------
  void deliver_sm(smsc_runtime& s, smpp_bind& b, deliver_ticket ticket, const smpp::short_message_pdu& pdu) {
    if (!smpp::is_receipt(pdu)) return store_inbound(s, b, ticket, pdu);
    bump(metrics.receipts);
    smpp::receipt r;
    if (!smpp::parse_receipt(pdu, r)) {
      std::fprintf(stderr, "postino: smsc %s: a receipt without an id or state: acknowledged and ignored\n",
                   b.name().c_str());
      bump(metrics.receipts_unmatched);
      return b.ack_deliver(ticket, smpp::status::ok);
    }
    if (!r.final) return b.ack_deliver(ticket, smpp::status::ok);
    if (auto it = s.by_id.find(smpp::canonical_id(r.message_id)); it != s.by_id.end()) {
      auto a = std::move(it->second);
      s.by_id.erase(it);
      bump(metrics.receipts_matched);
      // Acknowledged once its final record is durable: the SMSC keeps it until then.
      finalize(&s, std::move(a.seg), std::move(a.smsc_message_id), r.state, receipt_error(r), &b, ticket);
      return;
    }
    // Before its submit_sm_resp (or for a segment this process does not
    // know). Acknowledging it now is safe: a segment whose submitted record
    // is not durable is submitted again after a crash, and the SMSC sends a
    // receipt for that one.
    bump(metrics.receipts_held);
    std::string key = smpp::canonical_id(r.message_id);
    s.early[std::move(key)] = {std::move(r), shard.now_ms() + config.delivery.receipt_hold_s * 1000ull};
    b.ack_deliver(ticket, smpp::status::ok);
  }

  void store_inbound(smsc_runtime& s, smpp_bind& b, deliver_ticket ticket, const smpp::short_message_pdu& pdu) {
    auto* w = new record_waiter;
    w->self = this;
    w->smsc = &s;
    w->type = spool::record_type::inbound;
    w->ack_bind = &b;
    w->ack_ticket = ticket;
    w->inbound.smsc = s.config->name;
    w->inbound.source = pdu.source.value;
    w->inbound.destination = pdu.destination.value;
    w->inbound.text = inbound_text(pdu);
    append(*w);
  }

  static std::string inbound_text(const smpp::short_message_pdu& pdu) {
    std::string_view sm = pdu.short_message;
    if ((pdu.esm_class & smpp::esm::udh_indicator) != 0 && !sm.empty())
      sm.remove_prefix(std::min<std::size_t>(sm.size(), static_cast<unsigned char>(sm[0]) + 1u));
    switch (pdu.data_coding) {
      case 0x00: return sms::gsm7_to_utf8(sm);
      case 0x03: return sms::latin1_to_utf8(sm);
      case 0x08: return sms::utf16be_to_utf8(sm);
      default: return sms::is_valid_utf8(sm) ? std::string(sm) : sms::latin1_to_utf8(sm);
    }
  }

  // --- final states ---------------------------------------------------------
  // `s` may be null (no SMSC took it: no route). `ack_bind`: a receipt to
  // acknowledge once the record is durable.
  void finalize(smsc_runtime* s, segment_ref seg, std::string smsc_message_id, message_state state,
                std::uint32_t error, smpp_bind* ack_bind, deliver_ticket ack_ticket) {
    auto* w = new record_waiter;
    w->self = this;
    w->smsc = s;
    w->type = spool::record_type::delivery_final;
    w->state = state;
    w->error = error;
    w->refund = is_refunded(state) ? seg.unit_price() : 0;
    w->smsc_message_id = std::move(smsc_message_id);
    w->seg = std::move(seg);
    w->ack_bind = ack_bind;
    w->ack_ticket = ack_ticket;
    append(*w);
  }

  void append(record_waiter& w) {
    spool::record r;
    if (w.type == spool::record_type::inbound) {
      r.inbound.smsc = w.inbound.smsc;
      r.inbound.source = w.inbound.source;
      r.inbound.destination = w.inbound.destination;
      r.inbound.text = w.inbound.text;
    } else {
      r.delivery.key = w.seg.key();
      r.delivery.recipient = w.seg.number();
      r.delivery.smsc = w.smsc != nullptr ? w.smsc->config->name : std::string();
      r.delivery.smsc_message_id = w.smsc_message_id;
      r.delivery.state = w.type == spool::record_type::submitted ? message_state::submitted : w.state;
      r.delivery.error = w.error;
      r.delivery.account = w.seg.account();
      r.delivery.refund = w.refund;
    }
    spool::journal* j = gateway.journal();
    if (j == nullptr) return w.on_durable(false);
    j->append_delivery(w.type, r, &w);
  }

  void record_durable(record_waiter& w, bool ok) {
    if (w.type == spool::record_type::inbound) {
      if (ok) {
        bump(metrics.inbound);
        w.inbound.unix_ms = core::unix_ms();
        gateway.delta().inbound_messages.push_back(std::move(w.inbound));
      }
      // Not durable: the SMSC is told to try again.
      w.ack_bind->ack_deliver(w.ack_ticket, ok ? smpp::status::ok : smpp::status::system_error);
      return;
    }
    if (!ok) return record_failed(w);
    credit::journal_delta::delivery row;
    row.queue_id = w.seg.message->queue_id;
    row.recipient_index = w.seg.recipient;
    row.segment = w.seg.segment;
    row.recipient = w.seg.number();
    row.state = w.type == spool::record_type::submitted ? message_state::submitted : w.state;
    row.smsc = w.smsc != nullptr ? w.smsc->config->name : std::string();
    row.smsc_message_id = w.smsc_message_id;
    row.error = w.error;
    row.refund = w.refund;
    row.unix_ms = core::unix_ms();
    gateway.delta().deliveries.push_back(std::move(row));
    if (w.type == spool::record_type::submitted) return;
    bump(metrics.finals);
    if (w.refund > 0) {
      bump(metrics.refunds);
      bump(metrics.refunded_units, w.refund);
      gateway.refund_durable(w.seg.account(), w.refund);
    }
    if (w.ack_bind != nullptr) w.ack_bind->ack_deliver(w.ack_ticket, smpp::status::ok);
  }

  // The journal could not make a delivery record durable. A submitted
  // record lost only means a resubmission after a restart. A final one is
  // undone: a receipt is refused (the SMSC sends it again) and waits again;
  // any other final is retried later.
  void record_failed(record_waiter& w) {
    if (w.type == spool::record_type::submitted) return;
    if (w.ack_bind != nullptr) {
      w.ack_bind->ack_deliver(w.ack_ticket, smpp::status::system_error);
      if (w.smsc != nullptr) {
        std::string key = index_key(*w.smsc, w.smsc_message_id);
        w.smsc->by_id[std::move(key)] = {std::move(w.seg), std::move(w.smsc_message_id)};
      }
      return;
    }
    if (w.smsc == nullptr) {
      // No route: tried again later, never counted in the backlog.
      retries.push({shard.now_ms() + config.delivery.retry_min_ms, -1, std::move(w.seg)});
      return arm_tick();
    }
    shared->backlog.fetch_add(1, std::memory_order_relaxed);
    retry_later(w.smsc->index, std::move(w.seg));
  }

  // --- the periodic tick: retries, held receipts, failover --------------------
  static constexpr std::uint64_t tick_ms = 500;

  void arm_tick() {
    if (stopping) return;
    std::uint64_t delay = tick_ms;
    if (!retries.empty()) {
      const std::uint64_t due = retries.top().due_ms;
      delay = due > shard.now_ms() ? std::min(delay, due - shard.now_ms()) : 1;
    }
    if (timer.armed()) shard.timers().cancel(timer);
    shard.timers().schedule(timer, shard.now_ms(), delay);
  }

  void tick() {
    const std::uint64_t now = shard.now_ms();
    while (!retries.empty() && retries.top().due_ms <= now) {
      retry r = retries.top();
      retries.pop();
      if (r.smsc >= 0 && smscs[r.smsc]) {
        smscs[r.smsc]->push(std::move(r.seg), false);
      } else {
        std::vector<segment_ref> again;
        again.push_back(std::move(r.seg));
        route_segments(std::move(again));
      }
    }
    for (auto& s : smscs) {
      if (!s) continue;
      for (auto it = s->early.begin(); it != s->early.end();) {
        if (it->second.until_ms > now) {
          ++it;
          continue;
        }
        bump(metrics.receipts_unmatched);
        std::fprintf(stderr, "postino: smsc %s: receipt for unknown message id %s dropped after %u s\n",
                     s->config->name.c_str(), it->second.receipt.message_id.c_str(), config.delivery.receipt_hold_s);
        it = s->early.erase(it);
      }
      fail_over(*s, now);
      pump(*s);
    }
    arm_tick();
  }

  // An SMSC down for failover_after_s: its queued segments move to the next
  // SMSC of their route that is up (in-flight ones came back at the loss).
  void fail_over(smsc_runtime& s, std::uint64_t now) {
    const std::uint64_t since = shared->smsc_down_since_ms[s.index].load(std::memory_order_relaxed);
    if (since == 0 || s.queued == 0 || now - since < config.delivery.failover_after_s * 1000ull) return;
    // Without an SMSC to move to, the queue is not walked every tick.
    if (!alternative_up(s.index)) return;
    std::unordered_map<int, std::vector<segment_ref>> moved;
    segment_ref seg;
    std::size_t count = 0;
    std::deque<segment_ref> stay;
    while (s.pop(seg)) {
      const int to = choose(seg.number(), s.index);
      if (to < 0) {
        stay.push_back(std::move(seg));
        continue;
      }
      moved[to].push_back(std::move(seg));
      ++count;
    }
    for (auto& x : stay) s.push(std::move(x), false);
    if (count == 0) return;
    bump(metrics.failovers, count);
    shared->backlog.fetch_sub(static_cast<std::int64_t>(count), std::memory_order_relaxed);
    std::fprintf(stderr, "postino: smsc %s: down for %llu s, %zu segment(s) moved to the next route\n",
                 s.config->name.c_str(), static_cast<unsigned long long>((now - since) / 1000), count);
    for (auto& [to, list] : moved) post_segments(to, std::move(list));
  }

  // --- shutdown ------------------------------------------------------------------
  void stop() {
    if (stopping) return;
    stopping = true;
    if (timer.armed()) shard.timers().cancel(timer);
    for (auto& s : smscs)
      if (s)
        for (auto& b : s->binds) b->stop();
  }

  bool drained() const {
    for (const auto& s : smscs)
      if (s)
        for (const auto& b : s->binds)
          if (!b->stopped()) return false;
    return true;
  }
};

engine::engine(core::shard& shard, std::shared_ptr<shared_state> shared, host& h) {
  shared->engines[shard.id()] = this;
  impl_ = std::make_unique<impl>(shard, std::move(shared), h);
}

engine::~engine() {
  impl_->shared->engines[impl_->shard.id()] = nullptr;
}

void engine::hand_off(std::shared_ptr<const outbound_message> message) {
  std::vector<segment_ref> segments;
  const std::size_t recipients = message->source->recipients.size();
  segments.reserve(recipients * message->segments.size());
  for (std::uint32_t r = 0; r < recipients; ++r)
    for (std::uint32_t s = 0; s < message->segments.size(); ++s) segments.push_back({message, r, s, 0});
  impl_->route_segments(std::move(segments));
}

void engine::stop() { impl_->stop(); }
bool engine::drained() const { return impl_->drained(); }

}  // namespace postino::delivery
