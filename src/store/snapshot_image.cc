#include "store/snapshot_image.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>

#include "base/bytes.h"
#include "base/check.h"

namespace chronos::store {

namespace {

constexpr size_t kHeaderSize = 4 + 4 + 8;
constexpr size_t kCrcSize = 4;
constexpr size_t kFrameHeadSize = 4 + 4 + 4;
constexpr size_t kTrailerSize = 4 + 8 + 8 + 4;
// Level 1: a large store's image is cut every few hundred MiB of log, on a
// thread that shares two cores with the Raft loop; JSON jobs still shrink
// several times over.
constexpr int kZstdLevel = 1;
// The largest pair the writer takes (far above any job's or execution's
// encoding). A frame is at most such a pair plus the frame filled before it;
// a reader allocates a frame's stated raw length before decompressing it, so
// it refuses more than that.
constexpr size_t kMaxPairBytes = 256u << 20;
constexpr uint32_t kMaxFrameRawBytes = kMaxPairBytes + kSnapshotFrameBytes + 16;

Error corrupt(std::string_view why) {
  return Error::validation("snapshot", "is not a valid snapshot image: " + std::string(why));
}

struct Header {
  uint32_t version = 0;
  uint64_t applied_index = 0;
};

// Magic, a known version, and room for that version's fixed parts; nothing
// past the header is checked.
Result<Header> read_header(std::string_view image) {
  ByteReader in(image);
  std::string_view magic;
  Header h;
  if (!in.bytes(kSnapshotMagic.size(), &magic) || !in.u32_be(&h.version) ||
      !in.u64_be(&h.applied_index)) {
    return corrupt("too short");
  }
  if (magic != kSnapshotMagic) return corrupt("bad magic");
  if (h.version != 1 && h.version != kSnapshotFormatVersion) {
    return corrupt("unsupported format version " + std::to_string(h.version));
  }
  const size_t fixed = h.version == 1 ? kHeaderSize + kCrcSize : kHeaderSize + kTrailerSize;
  if (image.size() < fixed) return corrupt("too short");
  return h;
}

// Calls `fn` with the raw (decompressed) pair bytes of each frame in turn.
Status for_each_frame(std::string_view image,
                      const std::function<Status(std::string_view raw)>& fn,
                      uint64_t* pair_count) {
  CHRONOS_ASSIGN_OR_RETURN(const Header header, read_header(image));
  // Positions below are offsets into the whole image (frame heads are
  // checksummed in place), so the reader starts past the checked header.
  ByteReader in(image);
  std::string_view header_bytes;
  in.bytes(kHeaderSize, &header_bytes);
  if (header.version == 1) {
    const std::string_view body = image.substr(0, image.size() - kCrcSize);
    if (crc32(body) != get_u32_be(image.data() + body.size())) return corrupt("checksum mismatch");
    *pair_count = UINT64_MAX;  // version 1 does not record it
    return fn(body.substr(kHeaderSize));
  }
  uLong heads_crc = ::crc32_z(0L, reinterpret_cast<const Bytef*>(image.data()), kHeaderSize);
  std::string raw;
  uint64_t raw_sum = 0;
  for (;;) {
    const size_t head_at = in.position();
    uint32_t raw_len = 0;
    if (!in.u32_be(&raw_len)) return corrupt("truncated (no trailer)");
    if (raw_len == 0) break;
    uint32_t compressed_len = 0;
    uint32_t frame_crc = 0;
    std::string_view compressed;
    if (!in.u32_be(&compressed_len) || !in.u32_be(&frame_crc) ||
        !in.bytes(compressed_len, &compressed)) {
      return corrupt("truncated frame");
    }
    heads_crc = ::crc32_z(heads_crc, reinterpret_cast<const Bytef*>(image.data() + head_at),
                          kFrameHeadSize);
    if (crc32(compressed) != frame_crc) return corrupt("frame checksum mismatch");
    if (raw_len > kMaxFrameRawBytes) return corrupt("frame length out of range");
    raw.resize(raw_len);
    const size_t got =
        ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
    if (ZSTD_isError(got) || got != raw_len) return corrupt("frame does not decompress");
    raw_sum += raw_len;
    CHRONOS_RETURN_IF_ERROR(fn(raw));
  }
  uint64_t pairs = 0;
  uint64_t raw_bytes = 0;
  uint32_t trailer_crc = 0;
  const size_t trailer_at = in.position() - 4;
  if (!in.u64_be(&pairs) || !in.u64_be(&raw_bytes) || !in.u32_be(&trailer_crc)) {
    return corrupt("truncated trailer");
  }
  heads_crc = ::crc32_z(heads_crc, reinterpret_cast<const Bytef*>(image.data() + trailer_at),
                        kTrailerSize - 4);
  if (static_cast<uint32_t>(heads_crc) != trailer_crc) return corrupt("trailer checksum mismatch");
  if (in.remaining() != 0) return corrupt("bytes after the trailer");
  if (raw_bytes != raw_sum) return corrupt("raw length mismatch");
  *pair_count = pairs;
  return ok_status();
}

// Splits raw frame bytes into pairs. Every length is checked against what is
// left before it is used, so a bad length can neither overrun nor allocate.
Status for_each_raw_pair(std::string_view raw, uint64_t* pairs, const SnapshotPairFn& fn) {
  ByteReader in(raw);
  auto take = [&in](std::string_view* field) {
    uint32_t len = 0;
    return in.u32_be(&len) && in.bytes(len, field);
  };
  while (in.remaining() > 0) {
    std::string_view key;
    std::string_view value;
    if (!take(&key) || !take(&value)) return corrupt("truncated pair");
    ++*pairs;
    CHRONOS_RETURN_IF_ERROR(fn(key, value));
  }
  return ok_status();
}

// Visits every frame's raw bytes; `on_frame` splits them into pairs itself
// (counting them in `seen`), which is checked against the trailer's count.
Status visit(std::string_view image,
             const std::function<Status(std::string_view raw, uint64_t* seen)>& on_frame) {
  uint64_t seen = 0;
  uint64_t recorded = 0;
  CHRONOS_RETURN_IF_ERROR(for_each_frame(
      image, [&](std::string_view raw) { return on_frame(raw, &seen); }, &recorded));
  if (recorded != UINT64_MAX && recorded != seen) return corrupt("pair count mismatch");
  return ok_status();
}

}  // namespace

// zlib's CRC-32 is the same function as boost::crc_32_type (which images
// were first written with) and several times faster.
uint32_t crc32(std::string_view bytes) {
  return static_cast<uint32_t>(
      ::crc32_z(::crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()),
                bytes.size()));
}

void SnapshotImageWriter::FreeCCtx::operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }

SnapshotImageWriter::SnapshotImageWriter(uint64_t applied_index) {
  std::string header;
  header.append(kSnapshotMagic);
  put_u32_be(header, kSnapshotFormatVersion);
  put_u64_be(header, applied_index);
  frame_heads_ = header;
  chunks_.push_back(std::move(header));
  raw_.reserve(kSnapshotFrameBytes + 4096);
}

void SnapshotImageWriter::add(std::string_view key, std::string_view value) {
  CHRONOS_CHECK(key.size() + value.size() + 8 <= kMaxPairBytes)
      << "snapshot pair too large for a frame";
  put_u32_be(raw_, static_cast<uint32_t>(key.size()));
  raw_.append(key);
  put_u32_be(raw_, static_cast<uint32_t>(value.size()));
  raw_.append(value);
  ++pairs_;
  if (raw_.size() >= kSnapshotFrameBytes) flush_frame();
}

void SnapshotImageWriter::flush_frame() {
  if (raw_.empty()) return;
  // Compressed into a scratch buffer and copied out at its size: a frame
  // string allocated at the compress bound and resized down would keep the
  // whole raw frame's capacity, as much memory as the uncompressed image.
  scratch_.resize(ZSTD_compressBound(raw_.size()));
  if (!cctx_) cctx_.reset(ZSTD_createCCtx());
  CHRONOS_CHECK(cctx_ != nullptr) << "zstd: cannot allocate a compression context";
  const size_t n = ZSTD_compressCCtx(cctx_.get(), scratch_.data(), scratch_.size(), raw_.data(),
                                     raw_.size(), kZstdLevel);
  CHRONOS_CHECK(!ZSTD_isError(n)) << "zstd: " << ZSTD_getErrorName(n);
  const std::string_view compressed(scratch_.data(), n);
  std::string head;
  put_u32_be(head, static_cast<uint32_t>(raw_.size()));
  put_u32_be(head, static_cast<uint32_t>(n));
  put_u32_be(head, crc32(compressed));
  frame_heads_ += head;
  raw_total_ += raw_.size();
  // The header is tiny: it rides with the first frame.
  std::string* frame = &chunks_.back();
  if (chunks_.size() > 1 || frame->size() != kHeaderSize) frame = &chunks_.emplace_back();
  frame->reserve(frame->size() + head.size() + n);
  frame->append(head);
  frame->append(compressed);
  raw_.clear();
}

std::vector<std::string> SnapshotImageWriter::finish_chunks() && {
  flush_frame();
  std::string trailer;
  put_u32_be(trailer, 0);
  put_u64_be(trailer, pairs_);
  put_u64_be(trailer, raw_total_);
  frame_heads_ += trailer;
  put_u32_be(trailer, crc32(frame_heads_));
  chunks_.push_back(std::move(trailer));
  return std::move(chunks_);
}

std::string SnapshotImageWriter::finish() && { return join_chunks(std::move(*this).finish_chunks()); }

std::string join_chunks(std::vector<std::string> chunks) {
  size_t total = 0;
  for (const std::string& c : chunks) total += c.size();
  std::string out;
  out.reserve(total);
  for (std::string& c : chunks) {
    out += c;
    std::string().swap(c);  // freed as it is copied: the peak is one image and one chunk
  }
  return out;
}

Result<uint64_t> read_snapshot_applied_index(std::string_view image) {
  CHRONOS_ASSIGN_OR_RETURN(const Header header, read_header(image));
  return header.applied_index;
}

uint64_t snapshot_raw_bytes(std::string_view image) {
  if (image.size() < kHeaderSize + kTrailerSize || image.substr(0, 4) != kSnapshotMagic ||
      get_u32_be(image.data() + 4) != kSnapshotFormatVersion) {
    return image.size();
  }
  return get_u64_be(image.data() + image.size() - 4 - 8);
}

Status for_each_snapshot_pair(std::string_view image, const SnapshotPairFn& fn) {
  if (auto header = read_snapshot_applied_index(image); !header.ok()) return header.error();
  return visit(image,
               [&](std::string_view raw, uint64_t* seen) { return for_each_raw_pair(raw, seen, fn); });
}

Result<SnapshotImage> parse_snapshot_image(std::string_view image) {
  CHRONOS_ASSIGN_OR_RETURN(const uint64_t applied_index, read_snapshot_applied_index(image));
  SnapshotImage parsed;
  parsed.applied_index = applied_index;
  CHRONOS_RETURN_IF_ERROR(visit(image, [&](std::string_view raw, uint64_t* seen) {
    parsed.storage.push_back(std::make_unique<std::string>(raw));
    return for_each_raw_pair(*parsed.storage.back(), seen,
                             [&](std::string_view key, std::string_view value) {
                               parsed.pairs.emplace_back(key, value);
                               return ok_status();
                             });
  }));
  return parsed;
}

}  // namespace chronos::store
