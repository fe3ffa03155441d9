// The part list of a MIME body for the message index (postino-ctl message
// show on an MMS): GMime parses the body, which is only read during the
// call; the summaries returned are owned strings. Multipart containers and
// attached messages are walked, their leaves listed; nesting is bounded so
// a hostile body cannot recurse deeply.
#include <gmime/gmime.h>

#include "gmime_init.h"
#include "postino/ascii.h"
#include "postino/mime.h"

namespace postino::mime {
namespace {

constexpr std::uint32_t max_walk_depth = 32;

// Owns one GObject reference.
template <class T>
struct owned {
  T* p;
  ~owned() {
    if (p != nullptr) g_object_unref(p);
  }
};

std::uint64_t decoded_size(GMimePart* part) {
  GMimeDataWrapper* content = g_mime_part_get_content(part);
  if (content == nullptr) return 0;
  GMimeStream* null_stream = g_mime_stream_null_new();
  owned<GMimeStream> keep{null_stream};
  if (g_mime_data_wrapper_write_to_stream(content, null_stream) < 0) return 0;
  return static_cast<std::uint64_t>(GMIME_STREAM_NULL(null_stream)->written);
}

std::string type_of(GMimeObject* o) {
  GMimeContentType* ct = g_mime_object_get_content_type(o);
  if (ct == nullptr) return "text/plain";
  const char* type = g_mime_content_type_get_media_type(ct);
  const char* subtype = g_mime_content_type_get_media_subtype(ct);
  return to_lower(std::string(type != nullptr ? type : "text") + "/" + (subtype != nullptr ? subtype : "plain"));
}

void walk(GMimeObject* o, std::uint32_t depth, std::size_t max_parts, std::vector<mime_part_summary>& out) {
  if (o == nullptr || depth > max_walk_depth || out.size() >= max_parts) return;
  if (GMIME_IS_MULTIPART(o)) {
    auto* mp = GMIME_MULTIPART(o);
    const int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; ++i) walk(g_mime_multipart_get_part(mp, i), depth + 1, max_parts, out);
  } else if (GMIME_IS_MESSAGE_PART(o)) {
    GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
    if (inner != nullptr) walk(g_mime_message_get_mime_part(inner), depth + 1, max_parts, out);
  } else if (GMIME_IS_PART(o)) {
    out.push_back({type_of(o), decoded_size(GMIME_PART(o))});
  }
}

}  // namespace

std::vector<mime_part_summary> list_parts(std::string_view body, std::size_t max_parts) {
  detail::ensure_gmime();
  std::vector<mime_part_summary> out;
  owned<GMimeStream> stream{g_mime_stream_mem_new_with_buffer(body.data(), body.size())};
  owned<GMimeParser> parser{g_mime_parser_new_with_stream(stream.p)};
  owned<GMimeMessage> message{g_mime_parser_construct_message(parser.p, nullptr)};
  if (message.p == nullptr) return out;
  walk(g_mime_message_get_mime_part(message.p), 0, max_parts, out);
  return out;
}

}  // namespace postino::mime
