// format_time / parse_time / in_rfc3339_range (declared in model/job_codec.h).

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/strings.h"
#include "model/job_codec.h"

namespace chronos::model {

namespace {

// The years we read and write: RFC 3339's four-digit date-fullyear, without
// year 0000.
constexpr int64_t kMinYear = 1;
constexpr int64_t kMaxYear = 9999;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool in_rfc3339_range(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return false;
  const int64_t year = absl::ToCivilYear(t, absl::UTCTimeZone()).year();
  return year >= kMinYear && year <= kMaxYear;
}

std::string format_time(absl::Time t) {
  // %4Y pads years below 1000 to four digits ("0004-02-29T..."); a year
  // outside 0001..9999 cannot be written in RFC 3339 at all and comes out
  // with a sign or a fifth digit (callers keep to in_rfc3339_range).
  // %E*S prints the full sub-second precision with trailing zeros trimmed, so
  // the text round-trips through parse_time exactly.
  return absl::FormatTime("%4Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

Result<absl::Time> parse_time(std::string_view text) {
  constexpr std::string_view kRule =
      "must be an RFC 3339 time like 2024-03-10T07:30:00Z or 2024-03-10T08:30:00.5+01:00";
  // absl::ParseTime skips surrounding whitespace; RFC 3339 does not allow it.
  if (text.empty() || text.size() > 64 || text.front() == ' ' || text.back() == ' ' ||
      text.find_first_of("\t\n\r\v\f") != std::string_view::npos) {
    return Error::validation("", std::string(kRule));
  }
  // absl's %Y takes any number of digits and a sign (and this abseil cannot
  // parse %4Y), so the four-digit year is checked by hand.
  if (text.size() < 5 || !is_digit(text[0]) || !is_digit(text[1]) || !is_digit(text[2]) ||
      !is_digit(text[3]) || text[4] != '-') {
    return Error::validation("", str_cat(kRule, " (the year must have four digits)"));
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", std::string(text), absl::UTCTimeZone(), &t,
                       &err)) {
    return Error::validation("", str_cat(kRule, " (", err, ")"));
  }
  // Checked in UTC, the form we store and print: "0001-01-01T00:30:00+01:00"
  // is year 0 in UTC and could not be written back.
  if (!in_rfc3339_range(t)) {
    return Error::validation("",
                             str_cat(kRule, " (the year must be between 0001 and 9999 in UTC)"));
  }
  return t;
}

}  // namespace chronos::model
