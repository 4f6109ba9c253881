// format_time / parse_time (declared in model/job_codec.h).

#include "absl/time/time.h"
#include "base/strings.h"
#include "model/job_codec.h"

namespace chronos::model {

std::string format_time(absl::Time t) {
  // %E*S prints the full sub-second precision with trailing zeros trimmed, so
  // the text round-trips through parse_time exactly.
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

Result<absl::Time> parse_time(std::string_view text) {
  constexpr std::string_view kRule =
      "must be an RFC 3339 time like 2024-03-10T07:30:00Z or 2024-03-10T08:30:00.5+01:00";
  // absl::ParseTime skips surrounding whitespace; RFC 3339 does not allow it.
  if (text.empty() || text.size() > 64 || text.front() == ' ' || text.back() == ' ' ||
      text.find_first_of("\t\n\r\v\f") != std::string_view::npos) {
    return Error::validation("", std::string(kRule));
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", std::string(text), absl::UTCTimeZone(), &t,
                       &err)) {
    return Error::validation("", str_cat(kRule, " (", err, ")"));
  }
  return t;
}

}  // namespace chronos::model
