// The thread-per-core runtime: shards (one thread, one io_uring ring, one
// fixed-file table, its own timers and services each), the SPSC mailboxes
// that are the only way shards talk to each other (woken with
// IORING_OP_MSG_RING), and the timer wheel that lets 100k connections share
// one IORING_OP_TIMEOUT. The runtime knows no socket, journal or protocol:
// what runs on a shard (listeners and connections from src/io, the journal,
// the gateway's request handler) is a `service` the app gives each shard,
// told after every batch, at shutdown and when the grace period ends, and
// waited for until drained. Buffers: a mailbox owns the messages queued in
// it until the receiver pops them; a message carries a typed payload of plain
// values, in the message itself, and pointers whose targets the sender keeps
// alive until the answer comes back. Timer nodes are owned by whoever embeds
// them; the wheel only links them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "postino/core.h"

struct io_uring;

namespace postino::core {

inline constexpr std::size_t cache_line = 64;

// ---------------------------------------------------------------------------
// Single-producer single-consumer queue, unbounded, made of fixed-size chunks
// so that a busy receiver never makes a sender block or drop. The producer
// only touches the tail chunk, the consumer only the head chunk; a chunk is
// freed by the consumer once the producer has linked its successor (after
// which the producer never touches it again).
template <class T, std::size_t ChunkItems = 256>
class spsc_queue {
 public:
  spsc_queue() {
    head_ = tail_ = new chunk;
  }
  ~spsc_queue() {
    T item;
    while (pop(item)) {
    }
    delete head_;
  }
  spsc_queue(const spsc_queue&) = delete;
  spsc_queue& operator=(const spsc_queue&) = delete;

  // Producer thread only.
  void push(T value) {
    std::uint32_t w = tail_->written.load(std::memory_order_relaxed);
    if (w == ChunkItems) {
      chunk* next = new chunk;
      tail_->next.store(next, std::memory_order_release);
      tail_ = next;
      w = 0;
    }
    new (tail_->slot(w)) T(std::move(value));
    tail_->written.store(w + 1, std::memory_order_release);
  }

  // Consumer thread only.
  bool pop(T& out) {
    for (;;) {
      std::uint32_t n = head_->written.load(std::memory_order_acquire);
      if (read_ < n) {
        T* item = head_->slot(read_++);
        out = std::move(*item);
        item->~T();
        return true;
      }
      if (read_ < ChunkItems) return false;
      chunk* next = head_->next.load(std::memory_order_acquire);
      if (next == nullptr) return false;
      delete head_;
      head_ = next;
      read_ = 0;
    }
  }

  // Consumer thread only: true when nothing is visible yet.
  bool empty() const {
    std::uint32_t n = head_->written.load(std::memory_order_acquire);
    if (read_ < n) return false;
    if (read_ < ChunkItems) return true;
    chunk* next = head_->next.load(std::memory_order_acquire);
    return next == nullptr || next->written.load(std::memory_order_acquire) == 0;
  }

 private:
  struct chunk {
    alignas(T) unsigned char storage[sizeof(T) * ChunkItems];
    std::atomic<std::uint32_t> written{0};
    std::atomic<chunk*> next{nullptr};
    T* slot(std::uint32_t i) { return reinterpret_cast<T*>(storage) + i; }
  };

  alignas(cache_line) chunk* head_;  // consumer
  std::uint32_t read_ = 0;           // consumer
  alignas(cache_line) chunk* tail_;  // producer
};

// ---------------------------------------------------------------------------
// Hashed timing wheel. Deadlines are rounded up to the tick; a node sits in
// the slot of its due tick, and nodes of later revolutions are skipped when
// their slot comes round. Arming, re-arming and cancelling are O(1), which is
// what a connection does on every command.
class timer_node {
 public:
  timer_node() = default;
  timer_node(const timer_node&) = delete;
  timer_node& operator=(const timer_node&) = delete;
  bool armed() const { return next_ != nullptr; }
  virtual void on_timer() = 0;

 protected:
  ~timer_node() = default;

 private:
  friend class timer_wheel;
  timer_node* prev_ = nullptr;
  timer_node* next_ = nullptr;
  std::uint64_t due_ = 0;  // tick
};

class timer_wheel {
 public:
  // `tick_ms` is the resolution; `slots` is rounded up to a power of two.
  timer_wheel(std::uint64_t now_ms, std::uint32_t tick_ms = 50, std::uint32_t slots = 4096);
  ~timer_wheel();
  timer_wheel(const timer_wheel&) = delete;
  timer_wheel& operator=(const timer_wheel&) = delete;

  // (Re)arms `node` to fire `delay_ms` after `now_ms` (never earlier).
  void schedule(timer_node& node, std::uint64_t now_ms, std::uint64_t delay_ms);
  void cancel(timer_node& node);
  // Fires, in deadline order (per tick), every node due at or before now_ms.
  // A callback may arm or cancel any node, itself included.
  void advance(std::uint64_t now_ms);
  // The earliest time (ms) at which advance() may have something to fire, or
  // 0 when nothing is armed. May be early (a later revolution), never late.
  std::uint64_t next_deadline_ms() const;
  std::size_t size() const { return size_; }
  std::uint32_t tick_ms() const { return tick_ms_; }

 private:
  struct sentinel final : timer_node {
    void on_timer() override {}
  };
  void link_before(timer_node& anchor, timer_node& node);
  static void unlink(timer_node& node);
  void fire_slot(std::uint64_t tick);

  std::uint32_t tick_ms_;
  std::uint32_t mask_;
  std::uint64_t current_;  // last tick processed
  std::size_t size_ = 0;
  std::unique_ptr<sentinel[]> slots_;
};

// Milliseconds of CLOCK_MONOTONIC: the time base of every timer.
std::uint64_t monotonic_ms();

// ---------------------------------------------------------------------------
class shard;

// The payload type of a mailbox handler void (*)(shard&, const T&): T.
template <class F>
struct mail_handler_of;
template <class T>
struct mail_handler_of<void (*)(shard&, const T&)> {
  using payload = T;
};
template <auto Handler>
using payload_of = typename mail_handler_of<decltype(Handler)>::payload;

// A mailbox message: the function that runs on the receiving shard's thread
// and the payload it is given, a small trivially copyable struct stored in
// the message itself, so posting allocates nothing (the queue's chunks aside,
// one per 256 messages). The payload's type is the handler's parameter type:
// shard::post<Handler>(to, payload) builds the message, so sender and
// receiver cannot disagree on what the bytes mean, and every field has a
// name (no words packed by hand). A pointer in a payload points to an object
// whose owner keeps it alive until the exchange finishes (typically a
// connection waiting for an answer).
class message {
 public:
  static constexpr std::size_t payload_capacity = 56;  // the message is one cache line
  template <class T>
  static constexpr bool fits = std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T> &&
                               sizeof(T) <= payload_capacity && alignof(T) <= alignof(std::uint64_t);

  message() = default;

  // The message that runs Handler(at, payload) on the shard it is posted to.
  template <auto Handler>
  static message of(const payload_of<Handler>& payload) {
    using T = payload_of<Handler>;
    static_assert(fits<T>, "a mailbox payload is a small trivially copyable struct (at most 56 bytes)");
    message m;
    m.run_ = &deliver<Handler>;
    std::memcpy(m.payload_, &payload, sizeof(T));
    return m;
  }

  // On the receiving shard: runs the handler with the payload.
  void run(shard& at) const { run_(at, *this); }
  // For tests: the payload, read as the handler will read it.
  template <auto Handler>
  bool runs() const { return run_ == &deliver<Handler>; }
  template <auto Handler>
  payload_of<Handler> payload() const {
    payload_of<Handler> out;
    std::memcpy(&out, payload_, sizeof(out));
    return out;
  }

 private:
  template <auto Handler>
  static void deliver(shard& at, const message& m) {
    Handler(at, m.payload<Handler>());
  }

  void (*run_)(shard& at, const message& m) = nullptr;
  alignas(std::uint64_t) unsigned char payload_[payload_capacity];
};
static_assert(sizeof(message) == cache_line);
static_assert(std::is_trivially_copyable_v<message>);

// A part that runs on a shard. The shard creates its services on its own
// thread once the ring exists, in the order the runtime's factory gives;
// after every batch (mailboxes drained) it calls after_batch() on each in
// that order; at shutdown begin_shutdown() on each in reverse order, and
// grace_expired() when the grace period ends; it leaves its loop once every
// service is drained(), and destroys them, in reverse order, on its thread.
class service {
 public:
  virtual ~service() = default;
  virtual void after_batch() {}
  // Stop taking new work; finish what is under way.
  virtual void begin_shutdown() {}
  // The grace period is over: end what is still under way.
  virtual void grace_expired() {}
  virtual bool drained() const { return true; }
};

// Counters a shard publishes for the admin thread: relaxed atomics, written
// only by the owning shard, one cache line per shard so they never bounce.
struct alignas(cache_line) shard_metrics {
  std::atomic<std::uint64_t> sessions_active{0};
  std::atomic<std::uint64_t> connections_total{0};
  std::atomic<std::uint64_t> messages_accepted{0};
  std::atomic<std::uint64_t> journal_groups{0};
  // Retention (written by the checkpoint thread and the shard).
  std::atomic<std::uint64_t> journal_segments_deleted{0};
  std::atomic<std::uint64_t> journal_records_carried{0};
  std::atomic<std::uint64_t> journal_segments{0};  // on disk at the last retention pass
  std::atomic<std::uint64_t> credit_requests{0};  // lease requests sent to a home shard
  std::atomic<std::uint64_t> credit_recalls{0};   // leases recalled from this shard
  std::atomic<std::uint64_t> tls_handshakes{0};   // completed, full or resumed
  std::atomic<std::uint64_t> tls_resumed{0};      // of those, resumed from a ticket
  std::atomic<std::uint64_t> tls_failures{0};     // handshakes or records that failed

  static void bump(std::atomic<std::uint64_t>& counter, std::int64_t delta = 1) {
    // Single writer: a load and a store are enough and skip the locked RMW.
    counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
};

struct runtime_options {
  unsigned shards = 0;                 // 0: std::thread::hardware_concurrency()
  unsigned sq_entries = 4096;
  unsigned cq_entries = 16384;
  unsigned fixed_files = 0;            // direct-descriptor table per ring; 0: RLIMIT_NOFILE
  std::chrono::milliseconds shutdown_grace{30'000};
  bool pin_threads = true;
};

class runtime;

// One shard. Everything here runs on the shard's own thread except
// post_from_any_thread() and the atomics in metrics().
class shard {
 public:
  shard(runtime& rt, unsigned id);
  ~shard();
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;

  unsigned id() const { return id_; }
  unsigned count() const;
  runtime& owner() { return rt_; }
  io_uring& ring() { return *ring_; }
  timer_wheel& timers() { return *timers_; }
  std::uint64_t now_ms() const { return now_ms_; }
  shard_metrics& metrics();
  // Entries of the ring's fixed-file (direct descriptor) table.
  unsigned fixed_files() const { return fixed_files_; }
  // The service of type T (the first, in creation order), or nullptr.
  template <class T>
  T* find() const {
    for (const auto& s : services_)
      if (auto* found = dynamic_cast<T*>(s.get())) return found;
    return nullptr;
  }
  const runtime_options& options() const;
  bool stopping() const { return stopping_; }

  // Queues Handler(payload) for shard `to` (which may be this one); it runs
  // there soon. No allocation: the payload is copied into the queue's slot.
  template <auto Handler>
  void post(unsigned to, const payload_of<Handler>& payload) {
    post(to, message::of<Handler>(payload));
  }
  void post(unsigned to, const message& m);
  // From any thread (hash pool workers, main): `fn` runs on this shard.
  void post_from_any_thread(std::function<void()> fn);

  // Thread body; returns when every shard has drained after stop().
  void run(std::function<void(bool ok, const std::string& error)> started);

 private:
  struct wake_op final : completion {
    shard* self = nullptr;
    void on_complete(int result, std::uint32_t flags) override;
  };
  struct inbox_op final : completion {
    shard* self = nullptr;
    void on_complete(int result, std::uint32_t flags) override;
  };
  struct tick_op final : completion {
    shard* self = nullptr;
    void on_complete(int result, std::uint32_t flags) override;
  };
  struct grace_timer final : timer_node {
    shard* self = nullptr;
    void on_timer() override;
  };

  bool setup(std::string& error);
  void destroy_services();
  void drain_mailboxes();
  void arm_inbox_read();
  void run_inbox();
  void after_batch();
  void arm_tick();
  void send_wakes();
  void begin_shutdown();
  bool drained() const;

  friend class runtime;

  runtime& rt_;
  unsigned id_;
  std::unique_ptr<io_uring> ring_;
  bool ring_ready_ = false;
  std::unique_ptr<timer_wheel> timers_;
  std::vector<std::unique_ptr<service>> services_;
  std::uint64_t now_ms_ = 0;
  unsigned fixed_files_ = 0;

  wake_op wake_;
  inbox_op inbox_read_;
  tick_op tick_;
  // Read by the kernel at submission, so they cannot live on the stack.
  struct { long long tv_sec, tv_nsec; } tick_ts_[2] = {};
  grace_timer grace_;
  bool tick_armed_ = false;
  std::uint64_t tick_deadline_ms_ = 0;

  // Who this shard must wake with MSG_RING after the current batch.
  std::vector<unsigned char> wake_needed_;
  bool self_posted_ = false;
  // Set by a sender before its MSG_RING, cleared by this shard before draining.
  alignas(cache_line) std::atomic<bool> notified_{false};

  // Non-shard threads post closures here and write the eventfd.
  alignas(cache_line) std::mutex inbox_mutex_;
  std::vector<std::function<void()>> inbox_work_;
  int inbox_fd_ = -1;
  std::uint64_t inbox_counter_ = 0;

  bool stopping_ = false;
  bool reported_drained_ = false;
};

// The runtime: starts one thread per shard, stops them.
class runtime {
 public:
  // Run on each shard's thread during its set-up: appends that shard's
  // services, in order. Whatever it captures outlives join().
  using service_factory = std::function<void(shard&, std::vector<std::unique_ptr<service>>&)>;

  runtime(runtime_options options, service_factory factory);
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // Starts the shard threads; returns once all are accepting or one failed.
  bool start(std::string& error);
  // Asks every shard to stop accepting and wind its sessions down (any thread).
  void stop();
  // Waits for the shard threads (after stop(), once every shard has drained).
  void join();

  unsigned shard_count() const { return static_cast<unsigned>(shards_.size()); }
  const runtime_options& options() const { return options_; }
  shard_metrics& metrics(unsigned shard) { return metrics_[shard]; }
  shard& shard_at(unsigned i) { return *shards_[i]; }

 private:
  friend class shard;

  spsc_queue<message>& queue(unsigned from, unsigned to) {
    return *queues_[from * shards_.size() + to];
  }
  void shard_drained();

  runtime_options options_;
  service_factory factory_;
  std::vector<std::unique_ptr<shard>> shards_;
  std::unique_ptr<shard_metrics[]> metrics_;
  std::vector<std::unique_ptr<spsc_queue<message>>> queues_;
  std::vector<std::thread> threads_;
  alignas(cache_line) std::atomic<unsigned> drained_{0};
  std::atomic<unsigned> set_up_{0};  // shards past setup (ok or not)
  std::atomic<bool> stop_requested_{false};
  bool joined_ = false;
};

}  // namespace postino::core
