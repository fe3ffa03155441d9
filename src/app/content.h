// The content step of a message (MIME parsing with GMime, big texts) for a
// session on a shard: run on the shard, or on the content pool when the
// gateway has one, so one costly message never stalls its shard's
// sessions. Buffers: the pool job reads the body and account in the
// session, which leaves them alone while the request is pending; the
// result is handed back to the shard by value.
#pragma once

#include "postino/credit.h"
#include "postino/io.h"
#include "postino/runtime.h"

namespace postino::app {

// Answers the connection's pending content request, now or from `pool`
// (null: on the shard).
void run_content_step(core::shard& shard, credit::hash_pool* pool, io::connection& c);

}  // namespace postino::app
