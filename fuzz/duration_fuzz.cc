// libFuzzer target for the duration parser (SPEC §1: "500ms", "1m30s", "1d").
//
// Input: the text to parse. Every duration that parses must be non-negative,
// and its canonical form (format_duration) must parse back to the same value
// and be a fixed point of parse-then-format.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "base/check.h"
#include "base/duration.h"
#include "base/result.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  chronos::Result<absl::Duration> d = chronos::parse_duration(text);
  if (!d.ok()) {
    CHRONOS_CHECK(!d.error().message.empty()) << "error without a message";
    return 0;
  }
  CHRONOS_CHECK(*d >= absl::ZeroDuration()) << "negative duration from \"" << text << "\"";
  CHRONOS_CHECK(*d != absl::InfiniteDuration()) << "infinite duration from \"" << text << "\"";

  std::string canonical = chronos::format_duration(*d);
  chronos::Result<absl::Duration> again = chronos::parse_duration(canonical);
  CHRONOS_CHECK(again.ok()) << "canonical form \"" << canonical << "\" of \"" << text
                            << "\" does not parse: " << again.error().message;
  CHRONOS_CHECK(*again == *d) << "\"" << text << "\" -> " << absl::ToInt64Nanoseconds(*d)
                              << "ns -> \"" << canonical << "\" -> "
                              << absl::ToInt64Nanoseconds(*again) << "ns";
  CHRONOS_CHECK(chronos::format_duration(*again) == canonical)
      << "format is not canonical for \"" << canonical << "\"";
  return 0;
}
