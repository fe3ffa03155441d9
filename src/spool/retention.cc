// Retention's view of a journal (include/spool/postino/spool.h): segment
// names and a reader of one older segment, used by the checkpoint thread
// to decide which segments to delete and which records to carry forward.
// The reader maps its segment read-only (the mapping is the reader's,
// dropped with it) and copies out only the queue ids and offsets it lists
// and the payloads asked for. Nothing here writes.
#include <algorithm>
#include <filesystem>
#include <system_error>

#include "postino/spool.h"
#include "record_codec.h"
#include "segment_file.h"

namespace postino::spool {
namespace {

namespace fs = std::filesystem;

class reader_impl final : public segment_reader {
 public:
  reader_impl(unsigned node, unsigned shard)
      : node_(static_cast<std::uint8_t>(node)), shard_(static_cast<std::uint8_t>(shard)) {}

  bool load(const std::string& path, std::optional<std::uint64_t> limit, std::string& error) {
    if (!file_.map(path, error)) return false;
    const std::uint64_t end = std::min<std::uint64_t>(limit.value_or(file_.size()), file_.size());
    std::uint64_t off = 0;
    while (off < end) {
      codec::header h;
      const auto c = codec::check_record(file_.data() + off, end - off, h);
      if (c == codec::check_result::zero) break;
      if (c != codec::check_result::ok) {
        error = path + ": offset " + std::to_string(off) + ": " + codec::describe(c);
        return false;
      }
      if (!list(h, off, path, error)) return false;
      max_sequence_ = std::max(max_sequence_, h.sequence);
      off += codec::header_size + h.length;
    }
    used_ = off;
    return true;
  }

  std::uint64_t used_bytes() const override { return used_; }
  std::uint64_t max_sequence() const override { return max_sequence_; }
  const std::vector<stored_message>& messages() const override { return messages_; }
  const std::vector<queue_id>& deliveries() const override { return deliveries_; }

  std::string carried_payload(const stored_message& m) const override {
    codec::header h;
    if (m.offset + m.bytes > used_ ||
        codec::check_record(file_.data() + m.offset, m.bytes, h) != codec::check_result::ok)
      return {};
    return codec::carried_payload(h, file_.data() + m.offset, node_, shard_);
  }

 private:
  // Lists a message, carried or delivery record by the message it names,
  // read without decoding the rest (the CRC was checked).
  bool list(const codec::header& h, std::uint64_t off, const std::string& path, std::string& error) {
    const auto type = static_cast<record_type>(h.type);
    const std::uint64_t bytes = codec::header_size + h.length;
    if (type == record_type::message) {
      messages_.push_back({queue_id{node_, shard_, h.sequence}, off, bytes});
      return true;
    }
    queue_id id;
    if (!codec::named_message(h, file_.data() + off + codec::header_size, id.node, id.shard, id.sequence)) {
      if (type != record_type::carried && type != record_type::submitted && type != record_type::delivery_final)
        return true;
      error = path + ": offset " + std::to_string(off) + ": payload shorter than its fields";
      return false;
    }
    if (type == record_type::carried)
      messages_.push_back({id, off, bytes});
    else
      deliveries_.push_back(id);
    return true;
  }

  std::uint8_t node_, shard_;
  files::mapped_file file_;
  std::uint64_t used_ = 0;
  std::uint64_t max_sequence_ = 0;
  std::vector<stored_message> messages_;
  std::vector<queue_id> deliveries_;
};

}  // namespace

std::vector<std::uint64_t> segment_names(const std::string& dir, std::string& error) {
  std::vector<std::uint64_t> names;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    auto name = files::parse_segment_name(entry.path().filename().string());
    if (name) names.push_back(*name);
  }
  if (ec) {
    error = dir + ": " + ec.message();
    return {};
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string segment_path(const std::string& dir, std::uint64_t name) { return files::segment_path(dir, name); }

std::unique_ptr<segment_reader> segment_reader::open(const std::string& dir, std::uint64_t name,
                                                     std::optional<std::uint64_t> limit, unsigned node,
                                                     unsigned shard, std::string& error) {
  auto r = std::make_unique<reader_impl>(node, shard);
  if (!r->load(files::segment_path(dir, name), limit, error)) return nullptr;
  return r;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> segment_reader::first_seal(const std::string& dir,
                                                                                   std::uint64_t name) {
  files::mapped_file file;
  std::string error;
  if (!file.map(files::segment_path(dir, name), error)) return std::nullopt;
  codec::header h;
  if (codec::check_record(file.data(), file.size(), h) != codec::check_result::ok ||
      h.type != static_cast<std::uint8_t>(record_type::seal))
    return std::nullopt;
  record r;
  std::string what;
  if (!codec::decode_record(h, file.data() + codec::header_size, r, what)) return std::nullopt;
  return std::make_pair(r.sealed_segment, r.offset);
}

}  // namespace postino::spool
