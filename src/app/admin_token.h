// The admin endpoint's bearer token: `<data-dir>/admin-token`, one line,
// mode 0600, owned by the gateway's user. The gateway creates it at its first
// start (32 bytes from OpenSSL's RAND_bytes, hex) and reuses it afterwards;
// postino-ctl and the tests read it to call the endpoint. Whoever can read
// the file may add credit, suspend and resume accounts, exactly like whoever
// can read postino.db's directory may run postino-ctl offline.
// Every function returns its strings by value; no buffers are shared.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace postino::app {

// "<data_dir>/admin-token".
std::string admin_token_path(const std::string& data_dir);

// Loads the token at `path`, or creates it (atomically: a temporary file
// renamed into place) when there is none. A file that group or others may
// read or write is set back to 0600 and `note` says so (the caller logs it);
// a file of another owner, not a regular file, or not a token is refused
// with `error` naming the path. nullopt on any error.
std::optional<std::string> load_or_create_admin_token(const std::string& path, std::string& note,
                                                      std::string& error);

// Reads an existing token (postino-ctl): nullopt with `error` naming the file
// and the errno text when it is missing, unreadable or not a token.
std::optional<std::string> read_admin_token(const std::string& path, std::string& error);

// Whether `presented` is `expected`, in time independent of where they
// differ (CRYPTO_memcmp; only a length mismatch returns early, and the
// length of the gateway's tokens is public).
bool same_token(std::string_view presented, std::string_view expected);

}  // namespace postino::app
