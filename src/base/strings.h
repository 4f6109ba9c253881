#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fmt/format.h"

// Small string helpers on std::string_view. Debian's abseil is built with
// its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), so
// absl::StrCat / SimpleAtoi / StrSplit do not take std::string_view; these
// do.

namespace chronos {

namespace internal {
inline void str_append_one(std::string& out, std::string_view s) { out.append(s); }
inline void str_append_one(std::string& out, const char* s) { out.append(s); }
inline void str_append_one(std::string& out, const std::string& s) { out.append(s); }
inline void str_append_one(std::string& out, char c) { out.push_back(c); }
template <typename T>
requires std::is_arithmetic_v<T>
void str_append_one(std::string& out, T v) { fmt::format_to(std::back_inserter(out), "{}", v); }
}  // namespace internal

// Concatenates strings, string views, characters and numbers.
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::string out;
  (internal::str_append_one(out, args), ...);
  return out;
}

// Parses a whole decimal integer (optional leading '-' for signed types);
// false on anything else, including overflow and surrounding spaces.
template <typename T>
requires std::is_integral_v<T>
bool parse_int(std::string_view s, T* out) {
  if (s.empty()) return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

// Splits on `sep`, dropping empty pieces. The views point into `s`.
inline std::vector<std::string_view> split_skip_empty(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// ASCII case-insensitive equality (HTTP header names).
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// `s` without leading and trailing spaces, tabs, CR and LF.
inline std::string_view trim_whitespace(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace chronos
