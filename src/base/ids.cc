#include "base/ids.h"

#include <array>
#include <cstdint>
#include <mutex>
#include <random>

namespace chronos {
namespace {

std::mutex g_mu;

std::mt19937_64& rng() {
  // Seeded once from the OS; guarded by g_mu.
  static std::mt19937_64 gen([] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }());
  return gen;
}

std::string format_uuid(const std::array<uint8_t, 16>& b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 0xf]);
  }
  return out;
}

void fill_random(std::array<uint8_t, 16>& b, size_t from) {
  std::lock_guard lock(g_mu);
  for (size_t i = from; i < 16; i += 8) {
    uint64_t r = rng()();
    for (size_t j = 0; j < 8 && i + j < 16; ++j) b[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
}

}  // namespace

std::string new_uuid_v4() {
  std::array<uint8_t, 16> b{};
  fill_random(b, 0);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  return format_uuid(b);
}

std::string new_uuid_v7(absl::Time now) {
  // 48-bit ms timestamp + 12-bit counter (rand_a) keeps ids strictly
  // increasing within the process even when the clock stalls.
  static uint64_t last_ms = 0;
  static uint16_t counter = 0;
  uint64_t ms = static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixMillis(now)));
  uint16_t seq;
  {
    std::lock_guard lock(g_mu);
    if (ms <= last_ms) {
      ms = last_ms;
      if (++counter > 0x0fff) {
        counter = 0;
        ms = ++last_ms;
      }
    } else {
      last_ms = ms;
      counter = 0;
    }
    seq = counter;
  }
  std::array<uint8_t, 16> b{};
  fill_random(b, 8);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  b[6] = static_cast<uint8_t>(0x70 | ((seq >> 8) & 0x0f));
  b[7] = static_cast<uint8_t>(seq & 0xff);
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
  return format_uuid(b);
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace chronos
