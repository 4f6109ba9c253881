#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/time/time.h"
#include "base/result.h"

namespace chronos::cron {

// A parsed schedule (SPEC §2) bound to a time zone: cron with 5 fields
// (minute hour dom month dow) or 6 (second first), the macros @yearly
// @annually @monthly @weekly @daily @midnight @hourly, `@every <duration>`
// and `@at <RFC 3339 time>`.
//
// Immutable value; cheap to copy (shares its parsed form); safe to use from
// any number of threads.
class Schedule {
 public:
  // Parses `expr` for the IANA zone `tz_name` ("" means UTC). `anchor` is the
  // phase of `@every` (the job's creation time): runs are at anchor + k*every.
  // Errors are kValidation with field "schedule" or "timezone" and a message
  // that names the part of the expression at fault and the rule, e.g.
  //   schedule: day-of-month value 32 is out of range 1-31
  // Impossible schedules (no run ever, such as "0 0 30 2 *") are rejected.
  static Result<Schedule> parse(std::string_view expr, std::string_view tz_name,
                                absl::Time anchor = absl::UnixEpoch());

  // The first run time strictly after `t`, or nullopt when there is none
  // (an @at time already passed; a cron that has no more matches before
  // year 2200). DST rules of SPEC §2: a wall time skipped by a spring-forward
  // gap runs shifted forward by the gap's length; a wall time that occurs
  // twice runs once, at its first occurrence. Fixed-interval fields (@every,
  // and seconds/minutes steps */n when hours are '*') follow elapsed time.
  std::optional<absl::Time> next_after(absl::Time t) const;

  // True for `@at`: one run, after which the job disables itself.
  bool is_one_off() const;
  // True for `@every`, whose runs depend on the anchor given to parse().
  bool uses_anchor() const;

  const std::string& expression() const;
  const std::string& timezone() const;

 private:
  struct Impl;
  explicit Schedule(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;
};

// Loads an IANA time zone ("" and "UTC" are UTC). Error field "timezone".
Result<absl::TimeZone> load_time_zone(std::string_view name);

// Parses many schedules, sharing one parsed Schedule between jobs with the
// same expression and zone: a store of a million jobs typically holds a few
// thousand distinct schedules, and parsing each job's anew was most of the
// time a new leader took to load its jobs (and a copy per job in memory).
// `@every` schedules, which depend on their anchor, are parsed every time.
// Remembers at most `max_entries` schedules; past that it parses without
// remembering. Not thread-safe: one owner.
class ScheduleParser {
 public:
  explicit ScheduleParser(size_t max_entries = 65536) : max_entries_(max_entries) {}
  Result<Schedule> parse(std::string_view expr, std::string_view tz_name, absl::Time anchor);
  void clear() { memo_.clear(); }

 private:
  size_t max_entries_;
  std::unordered_map<std::string, Schedule> memo_;  // key: tz_name '\n' expr
};

}  // namespace chronos::cron
