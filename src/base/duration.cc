#include "base/duration.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>

#include "base/strings.h"

namespace chronos {
namespace {

struct Unit {
  std::string_view name;
  int64_t ns;
};

// Largest first; the parser requires this order so every value has one
// spelling family ("1h30m", not "30m1h").
constexpr std::array<Unit, 7> kUnits = {{
    {"d", 86'400'000'000'000},
    {"h", 3'600'000'000'000},
    {"m", 60'000'000'000},
    {"s", 1'000'000'000},
    {"ms", 1'000'000},
    {"us", 1'000},
    {"ns", 1},
}};

}  // namespace

Result<absl::Duration> parse_duration(std::string_view text) {
  if (text.empty()) return Error::validation("", "duration is empty");
  if (text == "0") return absl::ZeroDuration();
  // Accumulate in nanoseconds as long double for the fraction, bounded to
  // ~292 years so int64 cannot overflow.
  constexpr long double kMaxNs = 9.2e18L;
  long double total_ns = 0;
  size_t last_unit = 0;
  bool any = false;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    long double value = 0;
    bool digits = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      value = value * 10 + (text[i] - '0');
      digits = true;
      ++i;
      if (value > kMaxNs) return Error::validation("", "duration is too large");
    }
    if (i < text.size() && text[i] == '.') {
      ++i;
      long double scale = 0.1L;
      bool frac_digits = false;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        value += (text[i] - '0') * scale;
        scale /= 10;
        frac_digits = true;
        ++i;
      }
      if (!frac_digits) {
        return Error::validation(
            "", str_cat("invalid duration \"", text, "\": expected digits after '.'"));
      }
      digits = true;
    }
    if (!digits) {
      return Error::validation(
          "", str_cat("invalid duration \"", text, "\": expected a number at position ", start + 1,
                      " (format like 1d2h3m4.5s, 500ms)"));
    }
    size_t unit_start = i;
    while (i < text.size() &&
           ((text[i] >= 'a' && text[i] <= 'z') || text[i] == '\xc2' || text[i] == '\xb5')) {
      ++i;
    }
    std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit == "\xc2\xb5s") unit = "us";
    size_t idx = kUnits.size();
    for (size_t u = 0; u < kUnits.size(); ++u) {
      if (kUnits[u].name == unit) idx = u;
    }
    if (idx == kUnits.size()) {
      return Error::validation("", unit.empty()
                                       ? str_cat("invalid duration \"", text,
                                                 "\": missing unit (one of d, h, m, s, ms, us, ns)")
                                       : str_cat("invalid duration \"", text, "\": unknown unit \"",
                                                 unit, "\" (one of d, h, m, s, ms, us, ns)"));
    }
    if (any && idx <= last_unit) {
      return Error::validation(
          "", str_cat("invalid duration \"", text, "\": units must appear once, largest first"));
    }
    last_unit = idx;
    any = true;
    total_ns += value * kUnits[idx].ns;
    if (total_ns > kMaxNs) return Error::validation("", "duration is too large");
  }
  return absl::Nanoseconds(static_cast<int64_t>(std::llround(total_ns)));
}

std::string format_duration(absl::Duration d) {
  if (d == absl::ZeroDuration()) return "0s";
  std::string out;
  if (d < absl::ZeroDuration()) {
    out = "-";
    d = -d;
  }
  int64_t ns = absl::ToInt64Nanoseconds(d);
  int64_t days = ns / kUnits[0].ns;
  ns %= kUnits[0].ns;
  int64_t hours = ns / kUnits[1].ns;
  ns %= kUnits[1].ns;
  int64_t minutes = ns / kUnits[2].ns;
  ns %= kUnits[2].ns;
  if (days) out += str_cat(days, "d");
  if (hours) out += str_cat(hours, "h");
  if (minutes) out += str_cat(minutes, "m");
  if (ns == 0) return out;
  if (ns % 1'000'000'000 == 0 || ns >= 1'000'000'000 || !out.empty()) {
    // Seconds with a trimmed fraction: "4.5s", "30s".
    int64_t secs = ns / 1'000'000'000;
    int64_t frac = ns % 1'000'000'000;
    out += str_cat(secs);
    if (frac) {
      std::string f = str_cat(1'000'000'000 + frac).substr(1);
      while (!f.empty() && f.back() == '0') f.pop_back();
      out += str_cat(".", f);
    }
    out += str_cat("s");
    return out;
  }
  // Below a second: the largest unit with a trimmed fraction, as Go's
  // time.Duration prints ("2.169829ms", "7us", "3ns").
  auto with_fraction = [&out](int64_t value, int64_t unit_ns, const char* unit) {
    std::string frac = str_cat(unit_ns + value % unit_ns).substr(1);
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    return str_cat(out, value / unit_ns, frac.empty() ? "" : ".", frac, unit);
  };
  if (ns >= 1'000'000) return with_fraction(ns, 1'000'000, "ms");
  if (ns >= 1'000) return with_fraction(ns, 1'000, "us");
  return str_cat(out, ns, "ns");
}

}  // namespace chronos
