#include "raft/entry_framing.h"

#include <cstdint>
#include <cstring>

namespace chronos::raft {

struct raft_buffer frame_entry(std::string_view payload) {
  struct raft_buffer buf;
  size_t len = 4 + payload.size();
  buf.len = (len + 7) / 8 * 8;
  buf.base = raft_malloc(buf.len);
  if (buf.base == nullptr) return buf;
  auto* out = static_cast<uint8_t*>(buf.base);
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out + 4, payload.data(), payload.size());
  std::memset(out + len, 0, buf.len - len);
  return buf;
}

std::string_view unframe_entry(const struct raft_buffer& buf) {
  if (buf.len < 4) return {};
  const auto* in = static_cast<const uint8_t*>(buf.base);
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(in[i]) << (8 * i);
  if (n > buf.len - 4) return {};
  return std::string_view(reinterpret_cast<const char*>(in + 4), n);
}

}  // namespace chronos::raft
