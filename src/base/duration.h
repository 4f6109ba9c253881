#pragma once

#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "base/result.h"

namespace chronos {

// Parses a duration as written in job definitions: a sequence of
// <number><unit> with units d, h, m, s, ms, us (also µs), ns, e.g. "1d2h3m4.5s",
// "500ms", "90s". Numbers may have a fraction. "0" alone is zero. No sign,
// no spaces, no repeated or out-of-order units are required to be rejected
// beyond what makes the value ambiguous: each unit may appear once, largest
// first. The error message says what is wrong; the caller adds the field.
Result<absl::Duration> parse_duration(std::string_view text);

// Canonical form: largest units first, zero parts left out ("1m30s",
// "1d2h", "500ms", "4.5s", "0s"). Days are 24 h. parse_duration(format(d)) == d.
std::string format_duration(absl::Duration d);

}  // namespace chronos
