#include "raft/entry_framing.h"

#include <cstdint>
#include <cstring>

namespace chronos::raft {

cr_buffer frame_entry(std::string_view payload) {
  cr_buffer buf;
  size_t len = 4 + payload.size();
  buf.len = (len + 7) / 8 * 8;
  buf.base = cr_malloc(buf.len);
  if (buf.base == nullptr) return buf;
  auto* out = static_cast<uint8_t*>(buf.base);
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out + 4, payload.data(), payload.size());
  std::memset(out + len, 0, buf.len - len);
  return buf;
}

std::string_view unframe_entry(std::string_view framed) {
  if (framed.size() < 4) return {};
  const auto* in = reinterpret_cast<const uint8_t*>(framed.data());
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(in[i]) << (8 * i);
  if (n > framed.size() - 4) return {};
  return framed.substr(4, n);
}

std::string_view unframe_entry(const cr_buffer& buf) {
  return unframe_entry(std::string_view(static_cast<const char*>(buf.base), buf.len));
}

int image_to_snapshot_buffers(std::string_view image, cr_buffer* bufs[],
                              unsigned* n_bufs) {
  auto* arr = static_cast<cr_buffer*>(cr_malloc(sizeof(cr_buffer)));
  if (arr == nullptr) return CR_NOMEM;
  arr[0].len = image.size();
  arr[0].base = cr_malloc(arr[0].len);
  if (arr[0].base == nullptr) {
    cr_free(arr);
    return CR_NOMEM;
  }
  std::memcpy(arr[0].base, image.data(), arr[0].len);
  *bufs = arr;
  *n_bufs = 1;
  return 0;
}

void free_snapshot_buffers(cr_buffer* bufs, unsigned n) {
  for (unsigned i = 0; i < n; ++i) cr_free(bufs[i].base);
}

}  // namespace chronos::raft
