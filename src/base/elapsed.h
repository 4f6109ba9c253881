#pragma once

#include <chrono>
#include <cstdint>

namespace chronos {

// Real milliseconds elapsed since `start`, for log lines that report how
// long a step took (never for decisions, which go through a Clock).
inline int64_t ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

}  // namespace chronos
