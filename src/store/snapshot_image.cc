#include "store/snapshot_image.h"

#include <boost/crc.hpp>

#include "store/keys.h"

namespace chronos::store {

namespace {

constexpr size_t kHeaderSize = 4 + 4 + 8;
constexpr size_t kCrcSize = 4;

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

uint32_t get_u32(std::string_view bytes) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

Error corrupt(std::string_view why) {
  return Error::validation("snapshot", "is not a valid snapshot image: " + std::string(why));
}

}  // namespace

uint32_t crc32(std::string_view bytes) {
  boost::crc_32_type crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

SnapshotImageWriter::SnapshotImageWriter(uint64_t applied_index) {
  out_.append(kSnapshotMagic);
  put_u32(out_, kSnapshotFormatVersion);
  out_.append(keys::encode_u64(applied_index));
}

void SnapshotImageWriter::add(std::string_view key, std::string_view value) {
  CHRONOS_CHECK(key.size() <= UINT32_MAX && value.size() <= UINT32_MAX)
      << "snapshot pair too large for u32 framing";
  put_u32(out_, static_cast<uint32_t>(key.size()));
  out_.append(key);
  put_u32(out_, static_cast<uint32_t>(value.size()));
  out_.append(value);
}

std::string SnapshotImageWriter::finish() && {
  put_u32(out_, crc32(out_));
  return std::move(out_);
}

Result<uint64_t> read_snapshot_applied_index(std::string_view image) {
  if (image.size() < kHeaderSize + kCrcSize) return corrupt("too short");
  if (image.substr(0, 4) != kSnapshotMagic) return corrupt("bad magic");
  const uint32_t version = get_u32(image.substr(4, 4));
  if (version != kSnapshotFormatVersion) {
    return corrupt("unsupported format version " + std::to_string(version));
  }
  return *keys::decode_u64(image.substr(8, 8));
}

Result<SnapshotImage> parse_snapshot_image(std::string_view image) {
  CHRONOS_ASSIGN_OR_RETURN(const uint64_t applied_index, read_snapshot_applied_index(image));
  const std::string_view body = image.substr(0, image.size() - kCrcSize);
  if (crc32(body) != get_u32(image.substr(body.size()))) return corrupt("checksum mismatch");

  SnapshotImage parsed;
  parsed.applied_index = applied_index;
  std::string_view rest = body.substr(kHeaderSize);
  // Lengths are checked against what is left before each read, so a bad
  // length can neither overrun nor allocate (the CRC makes this belt and
  // braces, but the parser must be safe on any input).
  auto take = [&rest](std::string_view* field) {
    if (rest.size() < 4) return false;
    const uint32_t len = get_u32(rest);
    rest.remove_prefix(4);
    if (rest.size() < len) return false;
    *field = rest.substr(0, len);
    rest.remove_prefix(len);
    return true;
  };
  while (!rest.empty()) {
    std::string_view key;
    std::string_view value;
    if (!take(&key) || !take(&value)) return corrupt("truncated pair");
    parsed.pairs.emplace_back(key, value);
  }
  return parsed;
}

}  // namespace chronos::store
