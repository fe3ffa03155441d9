// The listening sockets of every (shard, listener) pair and each shard's
// server: its provided-buffer ring, acceptors and connections, run as a
// service of the shard (include/io/postino/io.h). The listener set owns the
// sockets until a server takes its own; a server owns its buffer ring, its
// acceptors and every connection it adopted (deleted after the batch in
// which they retire). Runs on the shard's thread, except listener_set's
// constructor and bind() (main thread, before the runtime starts).
#include <liburing.h>
#include <unistd.h>

#include <stdexcept>

#include "postino/io.h"

namespace postino::io {

listener_set::listener_set(std::vector<listener_spec> specs, unsigned shards, server_options options)
    : specs_(std::move(specs)),
      shards_(shards),
      options_(options),
      fds_(std::size_t(shards) * specs_.size(), -1),
      ports_(specs_.size(), 0) {}

listener_set::~listener_set() {
  for (int fd : fds_)
    if (fd >= 0) close(fd);
}

bool listener_set::bind(std::string& error) {
  for (std::size_t l = 0; l < specs_.size(); ++l) {
    std::uint16_t port = specs_[l].port;
    if (port != 0 && !port_is_free(specs_[l].address, port, error)) return false;
    for (unsigned s = 0; s < shards_; ++s) {
      // Port 0: the first socket picks the port, the others share it.
      int fd = open_listener(specs_[l].address, port, static_cast<int>(options_.listen_backlog), error);
      if (fd < 0) return false;
      fds_[s * specs_.size() + l] = fd;
      if (port == 0) port = local_port(fd);
    }
    ports_[l] = port;
  }
  return true;
}

int listener_set::take_fd(unsigned shard, std::size_t listener) {
  if (shard >= shards_) return -1;
  int& fd = fds_[shard * specs_.size() + listener];
  const int taken = fd;
  fd = -1;
  return taken;
}

server::server(core::shard& shard, listener_set& listeners, request_handler& handler)
    : shard_(shard), listeners_(listeners), handler_(handler) {
  const server_options& o = listeners.options();
  const int rc = buffers_.init(shard.ring(), o.buffer_count, o.buffer_size, 0);
  if (rc < 0)
    throw std::runtime_error(core::errno_text("provided-buffer ring (" + std::to_string(o.buffer_count) + " x " +
                                                  std::to_string(o.buffer_size) + ")",
                                              -rc));
  slot_margin_ = std::max(1u, std::min(256u, shard.fixed_files() / 8));
  for (std::size_t l = 0; l < listeners.size(); ++l)
    if (listeners.spec(l).tls_start != tls_mode::none) tls_scratch_ = std::make_unique<char[]>(tls_scratch_size);
  for (std::size_t l = 0; l < listeners.size(); ++l) {
    acceptors_.push_back(std::make_unique<acceptor>(*this, l, listeners.take_fd(shard.id(), l)));
    acceptors_.back()->arm();
  }
}

// By now every connection has retired (the shard exits only once drained);
// a shard that failed to start may still hold some.
server::~server() {
  acceptors_.clear();
  for (connection* c : graveyard_) delete c;
}

// Buffers are recycled only while CQEs are dispatched, so one commit after
// the batch hands them all back; freeing connections recycles none.
void server::after_batch() {
  buffers_.commit();
  for (connection* c : graveyard_) {
    std::size_t i = c->index;
    connections_[i] = connections_.back();
    connections_[i]->index = i;
    connections_.pop_back();
    delete c;
  }
  graveyard_.clear();
}

void server::begin_shutdown() {
  stopping_ = true;
  for (auto& a : acceptors_) a->stop();
  // A copy: a session that closes at once retires, which edits the list only
  // at the end of the batch, but be safe against any reordering.
  std::vector<connection*> live = connections_;
  for (connection* c : live) c->server_shutdown();
}

void server::grace_expired() {
  std::vector<connection*> live = connections_;
  for (connection* c : live) c->force_close();
}

bool server::drained() const {
  if (!connections_.empty() || !graveyard_.empty()) return false;
  for (const auto& a : acceptors_)
    if (a->active()) return false;
  return true;
}

void server::adopt(connection* c) {
  c->index = connections_.size();
  connections_.push_back(c);
}

void server::retire(connection* c) { graveyard_.push_back(c); }

void server::slot_released() {
  --slots_used_;
  for (auto& a : acceptors_) a->slot_freed();
}

}  // namespace postino::io
