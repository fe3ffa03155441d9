// Relay accounts on the shards (see relays.h). relay_source runs on the main
// thread and its poller; relay_resolver on its shard's thread.
#include "relays.h"

#include <cstdio>

#include "postino/smtp.h"
#include "smtp_endpoint.h"

namespace postino::app {

bool relay_source::load(std::string& error) {
  std::lock_guard<std::mutex> lock(refresh_mutex_);
  return reload(error);
}

// Under refresh_mutex_.
bool relay_source::reload(std::string& error) {
  if (!store_) store_ = credit::account_store::open(database_, error);
  if (!store_) return false;
  const auto version = store_->data_version();
  auto directory = credit::relay_directory::load(*store_, error);
  if (!directory || !version) {
    if (error.empty()) error = store_->last_error();
    store_.reset();  // reopen next time
    return false;
  }
  data_version_ = *version;
  {
    std::lock_guard<std::mutex> lock(current_mutex_);
    current_ = std::move(directory);
  }
  generation_.fetch_add(1, std::memory_order_release);
  return true;
}

void relay_source::refresh(bool forced) {
  std::lock_guard<std::mutex> lock(refresh_mutex_);
  std::string error;
  if (!forced && store_) {
    const auto version = store_->data_version();
    if (version && *version == data_version_) return;
  }
  if (!reload(error)) std::fprintf(stderr, "postino: relay rules not reloaded, keeping the current ones: %s\n",
                                   error.c_str());
}

void relay_source::start_polling(std::chrono::milliseconds every) {
  poller_ = std::thread([this, every] {
    std::unique_lock<std::mutex> lock(stop_mutex_);
    while (!stop_cv_.wait_for(lock, every, [this] { return stopping_; })) {
      lock.unlock();
      refresh();
      lock.lock();
    }
  });
}

void relay_source::stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

std::shared_ptr<const credit::relay_directory> relay_source::current() const {
  std::lock_guard<std::mutex> lock(current_mutex_);
  return current_;
}

// One relaxed check per MAIL; the directory is taken again only after a
// reload. The account is copied by the session during resolve.
void relay_resolver::lookup(io::connection& c) {
  smtp::session& s = smtp_of(c);
  if (source_ && source_->generation() != generation_) {
    generation_ = source_->generation();
    mine_ = source_->current();
  }
  const smtp::relay_request& req = s.pending_relay();
  const account_settings* account = mine_ ? mine_->find(req.client_ip, req.sender_domain) : nullptr;
  s.resolve(smtp::relay_result{account});
  c.complete();
}

}  // namespace postino::app
