#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

// Fixed-width integer encoding for binary formats (log entries, snapshot
// images, store keys). Little-endian for wire/file formats; big-endian where
// byte order must equal numeric order (RocksDB keys).

namespace chronos {

inline void put_u32_le(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_u64_le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_u32_be(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}
inline void put_u64_be(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// Readers take at least 4 (8) bytes at `p`; bounds are the caller's to check.
inline uint32_t get_u32_le(const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(b[i]) << (8 * i);
  return v;
}
inline uint64_t get_u64_le(const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
  return v;
}
inline uint32_t get_u32_be(const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | b[i];
  return v;
}
inline uint64_t get_u64_be(const void* p) {
  const auto* b = static_cast<const uint8_t*>(p);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | b[i];
  return v;
}

// A bounds-checked cursor over a byte string for decoders of untrusted or
// possibly corrupt input: every read reports failure instead of reading past
// the end.
class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}
  bool u32_le(uint32_t* v) { return fixed(4, [&](const char* p) { *v = get_u32_le(p); }); }
  bool u64_le(uint64_t* v) { return fixed(8, [&](const char* p) { *v = get_u64_le(p); }); }
  bool u32_be(uint32_t* v) { return fixed(4, [&](const char* p) { *v = get_u32_be(p); }); }
  bool u64_be(uint64_t* v) { return fixed(8, [&](const char* p) { *v = get_u64_be(p); }); }
  bool bytes(size_t n, std::string_view* out) {
    if (remaining() < n) return false;
    *out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  template <typename F>
  bool fixed(size_t n, F&& read) {
    if (remaining() < n) return false;
    read(data_.data() + pos_);
    pos_ += n;
    return true;
  }
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace chronos
