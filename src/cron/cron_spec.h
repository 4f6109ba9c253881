#pragma once

// Private to cron/: the parsed form of a 5- or 6-field cron expression and
// the civil-time search over it. Knows nothing about time zones; schedule.cc
// maps civil times to instants (and applies the DST rules).

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/time/civil_time.h"
#include "base/result.h"

namespace chronos::cron::internal {

// Last year the search looks at; beyond it next_after gives up (nullopt).
inline constexpr int64_t kMaxYear = 2200;

// Field sets as bit masks (bit i set = value i matches). Plain value type.
struct CronSpec {
  uint64_t seconds = 0;  // bits 0-59
  uint64_t minutes = 0;  // bits 0-59
  uint32_t hours = 0;    // bits 0-23
  uint32_t months = 0;   // bits 1-12

  // Day of month: plain days (bits 1-31) plus the special forms.
  uint32_t dom_days = 0;
  uint32_t dom_weekday_near = 0;  // nW: bit n set (1-31)
  uint32_t dom_last_offsets = 0;  // L (offset 0) and L-n: bit n set (0-30)
  bool dom_last_weekday = false;  // LW

  // Day of week (0 = Sunday): plain days (bits 0-6) plus the special forms.
  uint32_t dow_days = 0;
  uint32_t dow_nth[7] = {};  // d#n: bit n set in dow_nth[d] (1-5)
  uint32_t dow_last = 0;     // dL: bit d set

  // A field is unrestricted when written `*`, `?` or `*/1`. Vixie rule: when
  // both day fields are restricted, a day matches if EITHER matches.
  bool dom_unrestricted = true;
  bool dow_unrestricted = true;

  // See README.md "Fixed-interval schedules": hour `*`, minute `*` or `*/n`,
  // second `*`, `*/n` or one value. Evaluated on elapsed time by schedule.cc.
  bool fixed_interval = false;

  // True when day (y, m, d) matches the day-of-month/day-of-week/month fields.
  bool day_matches(int64_t year, int month, int day) const;

  // Bit d (1-31) set for every matching day of the month (month field not
  // consulted).
  uint32_t day_mask(int64_t year, int month) const;

  // Smallest civil second >= `from` matching every field, or nullopt when
  // there is none up to the end of kMaxYear.
  std::optional<absl::CivilSecond> next_match(absl::CivilSecond from) const;
};

// Text helpers on std::string_view (Debian's abseil has its own
// absl::string_view, so absl's string functions do not take ours).
bool equals_ignore_case(std::string_view a, std::string_view b);
std::string_view strip_whitespace(std::string_view s);
// Splits on spaces and tabs, dropping empty pieces.
std::vector<std::string_view> split_whitespace(std::string_view s);

// Parses the 5- or 6-field form (already split from macros). The error is a
// validation error on field "schedule".
Result<CronSpec> parse_cron_spec(std::string_view expr);

}  // namespace chronos::cron::internal
