#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

// The store's snapshot image format (README.md "Snapshot format"), kept
// apart from RocksDB so it can be tested and fuzzed on its own:
//
//   "CHRS" | u32 format version (1) | u64 applied index
//   | (u32 key length, key, u32 value length, value)*
//   | u32 CRC-32 (IEEE) of every byte before it
//
// Integers are big-endian. Pure value code; no threading concerns.
namespace chronos::store {

inline constexpr std::string_view kSnapshotMagic = "CHRS";
inline constexpr uint32_t kSnapshotFormatVersion = 1;

// Builds an image pair by pair. Single use: finish() once. `size_hint`
// (bytes) is reserved up front: a large image grown by doubling copies
// itself several times over.
class SnapshotImageWriter {
 public:
  explicit SnapshotImageWriter(uint64_t applied_index, size_t size_hint = 0);
  void add(std::string_view key, std::string_view value);
  std::string finish() &&;

 private:
  std::string out_;
};

// A parsed image; the views point into the image string, which must outlive it.
struct SnapshotImage {
  uint64_t applied_index = 0;
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
};

// Verifies magic, format version, framing and CRC; any mismatch is a
// kValidation error (field "snapshot") and nothing is returned.
Result<SnapshotImage> parse_snapshot_image(std::string_view image);

// Reads only the header (magic, version, applied index); no CRC check.
Result<uint64_t> read_snapshot_applied_index(std::string_view image);

// CRC-32 (IEEE 802.3, as zlib's crc32).
uint32_t crc32(std::string_view bytes);

}  // namespace chronos::store
