// Strict base64 (RFC 4648 section 4) for SASL responses (RFC 4954). The input
// view belongs to the caller; the decoded bytes are written into a string the
// caller owns. Strict means: only the base64 alphabet, a length that is a
// multiple of four, and at most two '=' only at the very end. Whitespace is not
// skipped: an AUTH response is one token, so anything else is a decode error.
#pragma once

#include <string>
#include <string_view>

namespace postino::smtp {

// Replaces `out` with the decoded bytes. Returns false (and leaves `out`
// unspecified) when `in` is not strict base64. An empty input decodes to empty.
bool decode_base64(std::string_view in, std::string& out);

// Encodes `in`; used by tests and by nothing on the hot path.
std::string encode_base64(std::string_view in);

}  // namespace postino::smtp
