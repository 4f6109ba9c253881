#include "store/snapshot_image.h"

#include <zlib.h>

#include <algorithm>

#include "base/bytes.h"

namespace chronos::store {

namespace {

constexpr size_t kHeaderSize = 4 + 4 + 8;
constexpr size_t kCrcSize = 4;

Error corrupt(std::string_view why) {
  return Error::validation("snapshot", "is not a valid snapshot image: " + std::string(why));
}

}  // namespace

// zlib's CRC-32 is the same function as boost::crc_32_type (which images
// were first written with) and several times faster: a snapshot of a large
// store is checksummed on every node every few thousand entries.
uint32_t crc32(std::string_view bytes) {
  return static_cast<uint32_t>(
      ::crc32_z(::crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()),
                bytes.size()));
}

SnapshotImageWriter::SnapshotImageWriter(uint64_t applied_index, size_t size_hint) {
  out_.reserve(std::max(size_hint, kHeaderSize + kCrcSize));
  out_.append(kSnapshotMagic);
  put_u32_be(out_, kSnapshotFormatVersion);
  put_u64_be(out_, applied_index);
}

void SnapshotImageWriter::add(std::string_view key, std::string_view value) {
  CHRONOS_CHECK(key.size() <= UINT32_MAX && value.size() <= UINT32_MAX)
      << "snapshot pair too large for u32 framing";
  put_u32_be(out_, static_cast<uint32_t>(key.size()));
  out_.append(key);
  put_u32_be(out_, static_cast<uint32_t>(value.size()));
  out_.append(value);
}

std::string SnapshotImageWriter::finish() && {
  put_u32_be(out_, crc32(out_));
  return std::move(out_);
}

Result<uint64_t> read_snapshot_applied_index(std::string_view image) {
  ByteReader in(image);
  std::string_view magic;
  uint32_t version = 0;
  uint64_t applied_index = 0;
  if (image.size() < kHeaderSize + kCrcSize || !in.bytes(kSnapshotMagic.size(), &magic) ||
      !in.u32_be(&version) || !in.u64_be(&applied_index)) {
    return corrupt("too short");
  }
  if (magic != kSnapshotMagic) return corrupt("bad magic");
  if (version != kSnapshotFormatVersion) {
    return corrupt("unsupported format version " + std::to_string(version));
  }
  return applied_index;
}

Result<SnapshotImage> parse_snapshot_image(std::string_view image) {
  CHRONOS_ASSIGN_OR_RETURN(const uint64_t applied_index, read_snapshot_applied_index(image));
  const std::string_view body = image.substr(0, image.size() - kCrcSize);
  if (crc32(body) != get_u32_be(image.data() + body.size())) return corrupt("checksum mismatch");

  SnapshotImage parsed;
  parsed.applied_index = applied_index;
  // Every length is checked against what is left before it is used, so a bad
  // length can neither overrun nor allocate (the CRC makes this belt and
  // braces, but the parser must be safe on any input).
  ByteReader in(body.substr(kHeaderSize));
  auto take = [&in](std::string_view* field) {
    uint32_t len = 0;
    return in.u32_be(&len) && in.bytes(len, field);
  };
  while (in.remaining() > 0) {
    std::string_view key;
    std::string_view value;
    if (!take(&key) || !take(&value)) return corrupt("truncated pair");
    parsed.pairs.emplace_back(key, value);
  }
  return parsed;
}

}  // namespace chronos::store
