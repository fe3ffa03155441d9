// The content step dispatch (see content.h): the session reads small raw
// texts itself; what it asks for here goes to the content pool, and the
// session waits as it waits for the journal. The connection outlives the
// request, gone or not.
#include "content.h"

#include <cstdio>
#include <exception>
#include <memory>

#include "postino/mime.h"
#include "smtp_endpoint.h"

namespace postino::app {
namespace {

// The content step could not run (its queue was full, or it failed): the
// client may send the message again later (the session words it, a 451).
mime::content_result content_failed() {
  mime::content_result r;
  r.refusal.kind = mime::refusal_kind::not_run;
  return r;
}

}  // namespace

void run_content_step(core::shard& shard, credit::hash_pool* pool, io::connection& c) {
  const smtp::content_request& req = smtp_of(c).pending_content();
  if (pool == nullptr) {
    smtp_of(c).resolve(mime::read_content(*req.body, *req.account, req.limits));
    return c.complete();
  }
  core::shard* home = &shard;
  io::connection* conn = &c;
  const bool queued = pool->submit([home, conn, req] {
    auto result = std::make_shared<mime::content_result>();
    try {
      *result = mime::read_content(*req.body, *req.account, req.limits);
    } catch (const std::exception& e) {
      // Always answer, or the session would wait for ever.
      std::fprintf(stderr, "postino: content worker: %s\n", e.what());
      *result = content_failed();
    }
    home->post_from_any_thread([conn, result] {
      if (!conn->gone()) smtp_of(*conn).resolve(std::move(*result));
      conn->complete();
    });
  });
  if (queued) return;
  smtp_of(c).resolve(content_failed());  // the pool's queue is full
  c.complete();
}

}  // namespace postino::app
