#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

typedef struct ZSTD_CCtx_s ZSTD_CCtx;  // zstd.h, kept out of this header

// The store's snapshot image format (README.md "Snapshot format"), kept
// apart from RocksDB so it can be tested and fuzzed on its own.
//
// Version 2 (written): the pairs in key order, cut into frames of about
// kSnapshotFrameBytes and each compressed with zstd, so an image is a
// fraction of the store's size and is read one frame at a time:
//
//   "CHRS" | u32 format version (2) | u64 applied index
//   | frame* | u32 0 | u64 pair count | u64 raw bytes (every frame's raw length)
//   | u32 CRC-32 of the header, every frame head and the trailer before it
//   frame = u32 raw length (> 0) | u32 compressed length | u32 CRC-32 of the
//           compressed bytes | compressed bytes (zstd; the raw bytes are
//           (u32 key length, key, u32 value length, value)*)
//
// Version 1 (read only: images and backups written before 2026-12): the
// header, the pairs uncompressed, and a u32 CRC-32 of every byte before it.
//
// Integers are big-endian. Pure value code; no threading concerns.
namespace chronos::store {

inline constexpr std::string_view kSnapshotMagic = "CHRS";
inline constexpr uint32_t kSnapshotFormatVersion = 2;
// Raw bytes per frame: what a reader holds decompressed at once.
inline constexpr size_t kSnapshotFrameBytes = 1u << 20;

// Builds an image pair by pair, compressing each frame as it fills. The
// image is kept as a list of chunks (the header with the first frame, then
// one chunk per frame, then the trailer), so its largest single allocation
// is one compressed frame. Single use: one finish call.
class SnapshotImageWriter {
 public:
  explicit SnapshotImageWriter(uint64_t applied_index);
  void add(std::string_view key, std::string_view value);
  // The image as chunks; concatenated in order they are the image.
  std::vector<std::string> finish_chunks() &&;
  // The image's size uncompressed (its frames' raw bytes): the measure of
  // the work of cutting or restoring it.
  uint64_t raw_bytes() const { return raw_total_ + raw_.size(); }
  // The image as one string (backups, tests).
  std::string finish() &&;

 private:
  void flush_frame();

  std::vector<std::string> chunks_;
  std::string raw_;         // the frame being filled
  std::string scratch_;     // compression output, reused
  struct FreeCCtx {
    void operator()(ZSTD_CCtx* c) const;
  };
  std::unique_ptr<ZSTD_CCtx, FreeCCtx> cctx_;  // reused across frames
  std::string frame_heads_;  // header and every frame's head, for the trailer's CRC
  uint64_t pairs_ = 0;
  uint64_t raw_total_ = 0;  // raw bytes of the frames flushed
};

// The chunks of an image as one string; each chunk is freed once copied.
std::string join_chunks(std::vector<std::string> chunks);

// Calls `fn` for every pair of a version 1 or 2 image, in order, holding at
// most one decompressed frame; the views are valid during the call only. A
// corrupt image (magic, version, framing, a CRC, a frame that does not
// decompress to its length, a missing or wrong trailer) is a kValidation
// error (field "snapshot"); pairs before the damage may have been visited,
// so a caller that must not act on part of an image checks it first with a
// visit that stores nothing. An error `fn` returns stops the visit and is
// returned.
using SnapshotPairFn = std::function<Status(std::string_view key, std::string_view value)>;
Status for_each_snapshot_pair(std::string_view image, const SnapshotPairFn& fn);

// A parsed image (tests and small tools: it holds every pair decompressed).
struct SnapshotImage {
  uint64_t applied_index = 0;
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  // Owns the decompressed frames the views point into (unique_ptr: a moved
  // short string would move its bytes).
  std::vector<std::unique_ptr<std::string>> storage;
};
Result<SnapshotImage> parse_snapshot_image(std::string_view image);

// Reads only the header (magic, version, applied index); no CRC check.
Result<uint64_t> read_snapshot_applied_index(std::string_view image);

// The raw bytes a version 2 image's trailer records (unchecked), or the
// image's size for anything else.
uint64_t snapshot_raw_bytes(std::string_view image);

// CRC-32 (IEEE 802.3, as zlib's crc32).
uint32_t crc32(std::string_view bytes);

}  // namespace chronos::store
