#include "cron/schedule.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "cron/cron_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chronos::cron {
namespace {

using ::testing::HasSubstr;

absl::Time T(std::string_view rfc3339) {
  absl::Time t;
  std::string err;
  CHRONOS_CHECK(absl::ParseTime(absl::RFC3339_full, std::string(rfc3339), &t, &err))
      << rfc3339 << ": " << err;
  return t;
}

// UTC rendering, so expected and actual compare as text with readable diffs.
std::string F(absl::Time t) { return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone()); }

Schedule must_parse(std::string_view expr, std::string_view tz = "",
                    absl::Time anchor = absl::UnixEpoch()) {
  Result<Schedule> s = Schedule::parse(expr, tz, anchor);
  CHRONOS_CHECK(s.ok()) << expr << " in " << tz << ": " << s.error().message;
  return *s;
}

// ---------------------------------------------------------------------------
// Next runs: each row is one behaviour. `runs` are the successive results of
// next_after starting at `from`; when `ends` is set the schedule must have no
// run after the last one.

struct NextRunsCase {
  std::string name;
  std::string expr;
  std::string tz;
  std::string from;
  std::vector<std::string> runs;
  bool ends = false;
  std::string anchor = "1970-01-01T00:00:00Z";
};

std::ostream& operator<<(std::ostream& os, const NextRunsCase& c) { return os << c.name; }

class NextRuns : public ::testing::TestWithParam<NextRunsCase> {};

TEST_P(NextRuns, Match) {
  const NextRunsCase& c = GetParam();
  Schedule s = must_parse(c.expr, c.tz, T(c.anchor));
  std::vector<std::string> want;
  for (const std::string& r : c.runs) want.push_back(F(T(r)));
  std::vector<std::string> got;
  absl::Time t = T(c.from);
  for (size_t i = 0; i < c.runs.size(); ++i) {
    std::optional<absl::Time> next = s.next_after(t);
    if (!next) break;
    ASSERT_GT(*next, t) << c.expr;
    got.push_back(F(*next));
    t = *next;
  }
  EXPECT_EQ(got, want) << c.expr << " in " << c.tz << " from " << c.from;
  if (c.ends && got.size() == want.size()) {
    std::optional<absl::Time> extra = s.next_after(t);
    EXPECT_FALSE(extra.has_value()) << "unexpected run at " << F(*extra);
  }
}

const NextRunsCase kNextRunsCases[] = {
    // --- Syntax -------------------------------------------------------------
    {"EveryMinuteWithFiveFields",
     "* * * * *",
     "UTC",
     "2024-01-01T00:00:30Z",
     {"2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"}},
    {"SixFieldsPutSecondsFirst",
     "*/20 * * * * *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-01T00:00:20Z", "2024-01-01T00:00:40Z", "2024-01-01T00:01:00Z"}},
    {"FractionalInputRoundsToNextWholeSecond",
     "* * * * * *",
     "UTC",
     "2024-01-01T00:00:00.5Z",
     {"2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z"}},
    {"SingleValues",
     "30 14 * * *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-01T14:30:00Z", "2024-01-02T14:30:00Z"}},
    {"RangeOfHours",
     "0 9-11 * * *",
     "UTC",
     "2024-01-01T10:30:00Z",
     {"2024-01-01T11:00:00Z", "2024-01-02T09:00:00Z", "2024-01-02T10:00:00Z"}},
    {"ListOfMinutes",
     "5,10,50 * * * *",
     "UTC",
     "2024-01-01T00:07:00Z",
     {"2024-01-01T00:10:00Z", "2024-01-01T00:50:00Z", "2024-01-01T01:05:00Z"}},
    {"StepOverRange",
     "0 8-18/4 * * *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-01T08:00:00Z", "2024-01-01T12:00:00Z", "2024-01-01T16:00:00Z",
      "2024-01-02T08:00:00Z"}},
    {"StepFromValueRunsToFieldMaximum",
     "0 20/2 * * *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-01T20:00:00Z", "2024-01-01T22:00:00Z", "2024-01-02T20:00:00Z"}},
    {"StarStepMinutes",
     "*/15 * * * *",
     "UTC",
     "2024-01-01T00:50:00Z",
     {"2024-01-01T01:00:00Z", "2024-01-01T01:15:00Z", "2024-01-01T01:30:00Z"}},
    {"MonthNamesAreCaseInsensitive",
     "0 0 1 JAN,jul *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"}},
    {"MonthNameRange",
     "0 0 1 MAR-may *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z", "2024-05-01T00:00:00Z",
      "2025-03-01T00:00:00Z"}},
    {"DayNames",
     "0 12 * * MON,wed",
     "UTC",
     "2024-01-01T13:00:00Z",  // a Monday
     {"2024-01-03T12:00:00Z", "2024-01-08T12:00:00Z"}},
    {"DayNameRange",
     "0 12 * * MON-FRI",
     "UTC",
     "2024-01-05T13:00:00Z",  // a Friday
     {"2024-01-08T12:00:00Z", "2024-01-09T12:00:00Z"}},
    {"DayOfWeekSevenIsSunday",
     "0 0 * * 7",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"}},
    {"DayOfWeekZeroIsSunday",
     "0 0 * * 0",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"}},
    {"DayOfWeekRangeEndingInSeven",
     "0 0 * * 5-7",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z",
      "2024-01-12T00:00:00Z"}},
    {"QuestionMarkInDayOfMonthMeansAny",
     "0 0 ? * MON",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-08T00:00:00Z", "2024-01-15T00:00:00Z"}},
    {"QuestionMarkInDayOfWeekMeansAny",
     "0 0 1 * ?",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"}},
    {"LastDayOfMonth",
     "0 0 L * *",
     "UTC",
     "2024-01-15T00:00:00Z",
     {"2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z",
      "2024-04-30T00:00:00Z"}},
    {"LastDayOfFebruaryInCommonYears",
     "0 0 L 2 *",
     "UTC",
     "2025-01-01T00:00:00Z",
     {"2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z", "2027-02-28T00:00:00Z",
      "2028-02-29T00:00:00Z"}},
    {"LastDayOfFebruaryInLeapYear",
     "0 0 L 2 *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-02-29T00:00:00Z", "2025-02-28T00:00:00Z"}},
    {"LastDayMinusOffset",
     "0 0 L-2 * *",
     "UTC",
     "2024-02-01T00:00:00Z",
     {"2024-02-27T00:00:00Z", "2024-03-29T00:00:00Z", "2024-04-28T00:00:00Z"}},
    {"NearestWeekdayMovesSaturdayToFriday",
     "0 0 15W 6 *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-06-14T00:00:00Z"}},  // 2024-06-15 is a Saturday
    {"NearestWeekdayMovesSundayToMonday",
     "0 0 15W 9 *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-09-16T00:00:00Z"}},  // 2024-09-15 is a Sunday
    {"NearestWeekdayKeepsWeekday",
     "0 0 15W 1 *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-15T00:00:00Z"}},
    {"NearestWeekdayOfFirstStaysInMonth",
     "0 0 1W 6 *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-06-03T00:00:00Z"}},  // Sat 1st -> Mon 3rd, not Fri 31 May
    {"NearestWeekdayOfLastDayStaysInMonth",
     "0 0 31W 3 *",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-03-29T00:00:00Z"}},  // Sun 31st -> Fri 29th, not Mon 1 April
    {"NearestWeekdaySkipsMonthsWithoutTheDay",
     "0 0 31W * *",
     "UTC",
     "2024-04-01T00:00:00Z",
     {"2024-05-31T00:00:00Z", "2024-07-31T00:00:00Z"}},
    {"LastWeekdayOfMonth",
     "0 0 LW * *",
     "UTC",
     "2024-03-01T00:00:00Z",
     {"2024-03-29T00:00:00Z", "2024-04-30T00:00:00Z", "2024-05-31T00:00:00Z",
      "2024-06-28T00:00:00Z"}},
    {"NthWeekdayOfMonth",
     "0 0 * * 1#2",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-08T00:00:00Z", "2024-02-12T00:00:00Z", "2024-03-11T00:00:00Z"}},
    {"FifthWeekdaySkipsMonthsWithFour",
     "0 0 * * FRI#5",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-03-29T00:00:00Z", "2024-05-31T00:00:00Z", "2024-08-30T00:00:00Z",
      "2024-11-29T00:00:00Z"}},
    {"LastGivenWeekdayOfMonth",
     "0 0 * * 5L",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-26T00:00:00Z", "2024-02-23T00:00:00Z", "2024-03-29T00:00:00Z"}},

    // --- Vixie rule ------------------------------------------------------------
    {"BothDayFieldsRestrictedMatchEither",
     "0 0 13 * 5",
     "UTC",
     "2024-09-01T00:00:00Z",
     {"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z",
      "2024-09-27T00:00:00Z", "2024-10-04T00:00:00Z", "2024-10-11T00:00:00Z",
      "2024-10-13T00:00:00Z", "2024-10-18T00:00:00Z"}},
    {"OnlyDayOfMonthRestrictedIgnoresWeekday",
     "0 0 13 * *",
     "UTC",
     "2024-09-01T00:00:00Z",
     {"2024-09-13T00:00:00Z", "2024-10-13T00:00:00Z"}},
    {"OnlyDayOfWeekRestrictedIgnoresDayOfMonth",
     "0 0 * * 5",
     "UTC",
     "2024-09-01T00:00:00Z",
     {"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"}},
    {"StarStepOneCountsAsUnrestricted",
     "0 0 */1 * 5",
     "UTC",
     "2024-09-01T00:00:00Z",
     {"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"}},
    {"EitherRuleAppliesToSpecialForms",
     "0 0 L * MON#1",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-31T00:00:00Z", "2024-02-05T00:00:00Z", "2024-02-29T00:00:00Z",
      "2024-03-04T00:00:00Z"}},
    {"FifthMondayOrThirtyFirst",
     "0 0 31 * 1#5",
     "UTC",
     "2024-04-01T00:00:00Z",
     {"2024-04-29T00:00:00Z", "2024-05-31T00:00:00Z", "2024-07-29T00:00:00Z",
      "2024-07-31T00:00:00Z"}},

    // --- Macros ----------------------------------------------------------------
    {"Yearly",
     "@yearly",
     "UTC",
     "2024-03-01T00:00:00Z",
     {"2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}},
    {"AnnuallyIsYearly", "@annually", "UTC", "2024-03-01T00:00:00Z", {"2025-01-01T00:00:00Z"}},
    {"Monthly",
     "@monthly",
     "UTC",
     "2024-03-15T00:00:00Z",
     {"2024-04-01T00:00:00Z", "2024-05-01T00:00:00Z"}},
    {"WeeklyRunsSundayMidnight",
     "@weekly",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z"}},
    {"Daily",
     "@daily",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"}},
    {"MidnightIsDaily", "@midnight", "UTC", "2024-01-01T12:00:00Z", {"2024-01-02T00:00:00Z"}},
    {"Hourly",
     "@hourly",
     "UTC",
     "2024-01-01T00:30:00Z",
     {"2024-01-01T01:00:00Z", "2024-01-01T02:00:00Z"}},
    {"MacrosAreCaseInsensitive", "@DAILY", "UTC", "2024-01-01T00:00:00Z", {"2024-01-02T00:00:00Z"}},
    {"MacrosFollowTheZone",
     "@daily",
     "Asia/Tokyo",
     "2024-01-01T00:00:00Z",
     {"2024-01-02T00:00:00+09:00"}},

    // --- @every ----------------------------------------------------------------
    {"EveryIsAnchoredAtCreation",
     "@every 90m",
     "UTC",
     "2024-01-01T05:00:00Z",
     {"2024-01-01T06:10:00Z", "2024-01-01T07:40:00Z", "2024-01-01T09:10:00Z"},
     false,
     "2024-01-01T00:10:00Z"},
    {"EveryFromExactRunTimeGivesNextRun",
     "@every 1h",
     "UTC",
     "2024-01-01T02:10:00Z",
     {"2024-01-01T03:10:00Z"},
     false,
     "2024-01-01T00:10:00Z"},
    {"EveryLatticeExtendsBeforeAnchor",
     "@every 1h",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-01T00:10:00Z", "2024-01-01T01:10:00Z"},
     false,
     "2024-01-01T05:10:00Z"},
    {"EveryAcceptsFractionalSeconds",
     "@every 1.5s",
     "UTC",
     "2024-01-01T00:00:00Z",
     {"2024-01-01T00:00:01.5Z", "2024-01-01T00:00:03Z"},
     false,
     "2024-01-01T00:00:00Z"},
    {"EveryCountsElapsedTimeThroughFallBack",
     "@every 1h",
     "America/New_York",
     "2024-11-03T00:30:00-04:00",
     {"2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"},
     false,
     "2024-11-01T00:00:00-04:00"},
    {"EveryCountsElapsedTimeThroughSpringForward",
     "@every 1h",
     "America/New_York",
     "2024-03-10T00:30:00-05:00",
     {"2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"},
     false,
     "2024-03-01T00:00:00-05:00"},

    // --- @at ---------------------------------------------------------------------
    {"AtRunsOnceAtItsInstant",
     "@at 2025-06-01T12:00:00+02:00",
     "UTC",
     "2025-01-01T00:00:00Z",
     {"2025-06-01T10:00:00Z"},
     true},
    {"AtAcceptsZuluAndFraction",
     "@at 2025-06-01t12:00:00.25z",
     "Europe/London",
     "2025-01-01T00:00:00Z",
     {"2025-06-01T12:00:00.25Z"},
     true},
    {"AtInThePastHasNoRun", "@at 2020-01-01T00:00:00Z", "UTC", "2025-01-01T00:00:00Z", {}, true},
    {"AtIsNotStrictlyAfterItself",
     "@at 2025-01-01T00:00:00Z",
     "UTC",
     "2025-01-01T00:00:00Z",
     {},
     true},

    // --- America/New_York: spring forward 2024-03-10 02:00 EST -> 03:00 EDT ----------
    {"SpringForwardShiftsSkippedWallTimeByGap",
     "30 2 * * *",
     "America/New_York",
     "2024-03-09T12:00:00-05:00",
     {"2024-03-10T03:30:00-04:00", "2024-03-11T02:30:00-04:00"}},
    {"SpringForwardShiftedRunDoesNotDuplicateRealTime",
     "30 2,3 * * *",
     "America/New_York",
     "2024-03-10T00:00:00-05:00",
     {"2024-03-10T03:30:00-04:00", "2024-03-11T02:30:00-04:00", "2024-03-11T03:30:00-04:00"}},
    {"SpringForwardAfterShiftedRunMovesToNextDay",
     "30 2 * * *",
     "America/New_York",
     "2024-03-10T03:30:00-04:00",
     {"2024-03-11T02:30:00-04:00"}},
    {"SpringForwardShiftedRunFoundFromJustAfterGap",
     "45 2 * * *",
     "America/New_York",
     "2024-03-10T03:10:00-04:00",
     {"2024-03-10T03:45:00-04:00", "2024-03-11T02:45:00-04:00"}},
    {"SpringForwardMergesShiftedAndRealTimesInOrder",
     "0,30 2,3 * * *",
     "America/New_York",
     "2024-03-10T01:45:00-05:00",
     {"2024-03-10T03:00:00-04:00", "2024-03-10T03:30:00-04:00", "2024-03-11T02:00:00-04:00"}},
    {"HourlyRunsOnceAtGapEndOnSpringForward",
     "0 * * * *",
     "America/New_York",
     "2024-03-10T00:30:00-05:00",
     {"2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"}},
    {"SpringForwardLeavesOtherTimesAlone",
     "0 1,4 * * *",
     "America/New_York",
     "2024-03-10T00:00:00-05:00",
     {"2024-03-10T01:00:00-05:00", "2024-03-10T04:00:00-04:00"}},
    {"FixedIntervalKeepsFiringThroughSpringForward",
     "*/15 * * * *",
     "America/New_York",
     "2024-03-10T01:30:00-05:00",
     {"2024-03-10T01:45:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T03:15:00-04:00"}},

    // --- America/New_York: fall back 2024-11-03 02:00 EDT -> 01:00 EST -------------
    {"FallBackRunsRepeatedWallTimeOnceAtFirstOccurrence",
     "30 1 * * *",
     "America/New_York",
     "2024-11-03T00:00:00-04:00",
     {"2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"}},
    {"FallBackFromSecondPassWaitsForNextDay",
     "30 1 * * *",
     "America/New_York",
     "2024-11-03T01:10:00-05:00",
     {"2024-11-04T01:30:00-05:00"}},
    {"FallBackFromBetweenPassesWaitsForNextDay",
     "30 1 * * *",
     "America/New_York",
     "2024-11-03T01:45:00-04:00",
     {"2024-11-04T01:30:00-05:00"}},
    {"HourlyRunsOnceInRepeatedHour",
     "0 * * * *",
     "America/New_York",
     "2024-11-03T00:30:00-04:00",
     {"2024-11-03T01:00:00-04:00", "2024-11-03T02:00:00-05:00", "2024-11-03T03:00:00-05:00"}},
    {"FixedIntervalRunsInBothPassesOfRepeatedHour",
     "*/30 * * * *",
     "America/New_York",
     "2024-11-03T00:45:00-04:00",
     {"2024-11-03T01:00:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-03T01:00:00-05:00",
      "2024-11-03T01:30:00-05:00", "2024-11-03T02:00:00-05:00"}},
    {"FixedIntervalSecondsRunThroughFallBack",
     "*/20 * * * * *",
     "America/New_York",
     "2024-11-03T01:59:30-04:00",
     {"2024-11-03T01:59:40-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T01:00:20-05:00"}},
    {"EverySecondRunsThroughFallBack",
     "* * * * * *",
     "America/New_York",
     "2024-11-03T01:59:58-04:00",
     {"2024-11-03T01:59:59-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T01:00:01-05:00"}},

    // --- Europe/London: 2024-03-31 01:00 GMT -> 02:00 BST; 2024-10-27 02:00 BST -> 01:00 GMT
    {"LondonSpringForwardShiftsSkippedWallTime",
     "30 1 * * *",
     "Europe/London",
     "2024-03-30T12:00:00Z",
     {"2024-03-31T02:30:00+01:00", "2024-04-01T01:30:00+01:00"}},
    {"LondonFallBackRunsOnceAtFirstOccurrence",
     "30 1 * * *",
     "Europe/London",
     "2024-10-26T12:00:00+01:00",
     {"2024-10-27T01:30:00+01:00", "2024-10-28T01:30:00Z"}},
    {"LondonFixedIntervalRunsInBothPasses",
     "*/30 * * * *",
     "Europe/London",
     "2024-10-27T00:45:00+01:00",
     {"2024-10-27T01:00:00+01:00", "2024-10-27T01:30:00+01:00", "2024-10-27T01:00:00Z",
      "2024-10-27T01:30:00Z", "2024-10-27T02:00:00Z"}},
    {"LondonDailyUnaffectedByDst",
     "0 9 * * *",
     "Europe/London",
     "2024-03-30T12:00:00Z",
     {"2024-03-31T09:00:00+01:00", "2024-04-01T09:00:00+01:00"}},

    // --- Australia/Lord_Howe: 30-minute DST. 2024-04-07 02:00 (+11) -> 01:30 (+10:30);
    //     2024-10-06 02:00 (+10:30) -> 02:30 (+11).
    {"LordHoweSpringForwardShiftsByThirtyMinutes",
     "15 2 * * *",
     "Australia/Lord_Howe",
     "2024-10-05T12:00:00+10:30",
     {"2024-10-06T02:45:00+11:00", "2024-10-07T02:15:00+11:00"}},
    {"LordHoweShiftedRunMergesWithRealTime",
     "0,15,45 2 * * *",
     "Australia/Lord_Howe",
     "2024-10-06T00:00:00+10:30",
     {"2024-10-06T02:30:00+11:00", "2024-10-06T02:45:00+11:00", "2024-10-07T02:00:00+11:00"}},
    {"LordHoweFallBackRunsOnceAtFirstOccurrence",
     "45 1 * * *",
     "Australia/Lord_Howe",
     "2024-04-06T12:00:00+11:00",
     {"2024-04-07T01:45:00+11:00", "2024-04-08T01:45:00+10:30"}},
    {"LordHoweFixedIntervalRunsThroughFallBack",
     "*/15 * * * *",
     "Australia/Lord_Howe",
     "2024-04-07T01:40:00+11:00",
     {"2024-04-07T01:45:00+11:00", "2024-04-07T01:30:00+10:30", "2024-04-07T01:45:00+10:30",
      "2024-04-07T02:00:00+10:30"}},
    {"LordHoweFixedIntervalRunsThroughSpringForward",
     "*/15 * * * *",
     "Australia/Lord_Howe",
     "2024-10-06T01:40:00+10:30",
     {"2024-10-06T01:45:00+10:30", "2024-10-06T02:30:00+11:00", "2024-10-06T02:45:00+11:00"}},

    // --- Zones without DST -------------------------------------------------------
    {"TokyoHasNoTransitions",
     "0 9 * * *",
     "Asia/Tokyo",
     "2024-03-09T12:00:00Z",
     {"2024-03-10T09:00:00+09:00", "2024-03-11T09:00:00+09:00"}},
    {"KolkataHalfHourOffsetRunsOnLocalHour",
     "0 * * * *",
     "Asia/Kolkata",
     "2024-01-01T00:00:00Z",
     {"2024-01-01T06:00:00+05:30", "2024-01-01T07:00:00+05:30"}},
    {"KolkataFixedIntervalFollowsLocalMinutes",
     "*/45 * * * *",
     "Asia/Kolkata",
     "2024-01-01T00:00:00+05:30",
     {"2024-01-01T00:45:00+05:30", "2024-01-01T01:00:00+05:30", "2024-01-01T01:45:00+05:30"}},
    {"EmptyZoneIsUtc", "0 9 * * *", "", "2024-03-09T12:00:00Z", {"2024-03-10T09:00:00Z"}},

    // --- Leap days and horizon ----------------------------------------------------
    {"LeapDayWaitsForNextLeapYear",
     "0 0 29 2 *",
     "UTC",
     "2024-03-01T00:00:00Z",
     {"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
    {"LeapDaySkipsCenturyYears",
     "0 0 29 2 *",
     "UTC",
     "2096-03-01T00:00:00Z",
     {"2104-02-29T00:00:00Z"}},
    {"GivesUpBeyondYear2200", "0 0 29 2 *", "UTC", "2196-03-01T00:00:00Z", {}, true},
    {"LastRunBeforeHorizon",
     "59 23 31 12 *",
     "UTC",
     "2199-06-01T00:00:00Z",
     {"2199-12-31T23:59:00Z", "2200-12-31T23:59:00Z"},
     true},
    {"InputsLongAgoFindFirstRun",
     "0 0 1 1 *",
     "UTC",
     "1850-06-01T00:00:00Z",
     {"1851-01-01T00:00:00Z"}},
};

INSTANTIATE_TEST_SUITE_P(Cron, NextRuns, ::testing::ValuesIn(kNextRunsCases),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Rejected expressions: the error names the field at fault and the rule.

struct BadCase {
  std::string name;
  std::string expr;
  std::string tz;
  std::string field;
  std::string message;  // substring
};

std::ostream& operator<<(std::ostream& os, const BadCase& c) { return os << c.name; }

class Rejects : public ::testing::TestWithParam<BadCase> {};

TEST_P(Rejects, WithPreciseMessage) {
  const BadCase& c = GetParam();
  Result<Schedule> s = Schedule::parse(c.expr, c.tz);
  ASSERT_FALSE(s.ok()) << c.expr << " parsed";
  EXPECT_EQ(s.error().code, ErrorCode::kValidation);
  EXPECT_EQ(s.error().field, c.field);
  EXPECT_THAT(s.error().message, HasSubstr(c.message));
}

const BadCase kBadCases[] = {
    {"Empty", "", "", "schedule", "schedule is empty"},
    {"OnlyWhitespace", "  \t ", "", "schedule", "schedule is empty"},
    {"FourFields", "* * * *", "", "schedule", "expected 5 or 6 fields, got 4"},
    {"SevenFields", "* * * * * * *", "", "schedule", "expected 5 or 6 fields, got 7"},
    {"SecondOutOfRange", "60 * * * * *", "", "schedule", "second value 60 is out of range 0-59"},
    {"MinuteOutOfRange", "60 * * * *", "", "schedule", "minute value 60 is out of range 0-59"},
    {"HourOutOfRange", "0 24 * * *", "", "schedule", "hour value 24 is out of range 0-23"},
    {"DayOfMonthAboveRange", "0 0 32 * *", "", "schedule",
     "day-of-month value 32 is out of range 1-31"},
    {"DayOfMonthZero", "0 0 0 * *", "", "schedule", "day-of-month value 0 is out of range 1-31"},
    {"MonthAboveRange", "0 0 1 13 *", "", "schedule", "month value 13 is out of range 1-12"},
    {"MonthZero", "0 0 1 0 *", "", "schedule", "month value 0 is out of range 1-12"},
    {"DayOfWeekAboveRange", "0 0 * * 8", "", "schedule", "day-of-week value 8 is out of range 0-7"},
    {"HugeNumber", "99999999999 * * * *", "", "schedule",
     "minute value 99999999999 is out of range"},
    {"StepZero", "*/0 * * * *", "", "schedule", "step must be \xe2\x89\xa5 1 in \"*/0\""},
    {"StepNotANumber", "*/x * * * *", "", "schedule", "step must be a positive number in \"*/x\""},
    {"DoubleStep", "*/5/2 * * * *", "", "schedule", "step must be a positive number in \"*/5/2\""},
    {"StepLargerThanRange", "*/61 * * * *", "", "schedule",
     "step 61 in \"*/61\" is larger than the minute range 0-59"},
    {"UnknownMonthName", "0 0 1 FOO *", "", "schedule", "unknown month name \"FOO\""},
    {"UnknownDayName", "0 0 * * FUNDAY", "", "schedule", "unknown day-of-week name \"FUNDAY\""},
    {"NameInNumericField", "abc * * * *", "", "schedule",
     "minute value \"abc\" in \"abc\" is not a number"},
    {"MonthNameInDayOfWeek", "0 0 * * JAN", "", "schedule", "unknown day-of-week name \"JAN\""},
    {"ReversedRange", "5-2 * * * *", "", "schedule",
     "range start 5 is greater than its end 2 in \"5-2\""},
    {"EmptyListElement", "1,,2 * * * *", "", "schedule",
     "empty list element in minute field \"1,,2\""},
    {"TrailingComma", "0 1, * * *", "", "schedule", "empty list element in hour field \"1,\""},
    {"OpenRange", "1- * * * *", "", "schedule", "missing minute value in \"1-\""},
    {"TripleRange", "1-2-3 * * * *", "", "schedule",
     "minute value \"2-3\" in \"1-2-3\" is not a number"},
    {"QuestionMarkInMinute", "? * * * *", "", "schedule",
     "'?' is only allowed in day-of-month and day-of-week, not in the minute field"},
    {"StepOnLastDay", "0 0 L/2 * *", "", "schedule", "a step is not allowed with \"L\""},
    {"GarbageAfterL", "0 0 LX * *", "", "schedule", "L must stand alone or be written L-n or LW"},
    {"LastDayOffsetOutOfRange", "0 0 L-31 * *", "", "schedule",
     "day-of-month offset 31 in \"L-31\" is out of range 0-30"},
    {"NearestWeekdayDayOutOfRange", "0 0 32W * *", "", "schedule",
     "day-of-month value 32 is out of range 1-31"},
    {"BareW", "0 0 W * *", "", "schedule", "W must follow a day number"},
    {"NthWeekdayOccurrenceTooLarge", "0 0 * * MON#6", "", "schedule",
     "day-of-week occurrence 6 in \"MON#6\" is out of range 1-5"},
    {"NthWeekdayOccurrenceZero", "0 0 * * 1#0", "", "schedule",
     "day-of-week occurrence 0 in \"1#0\" is out of range 1-5"},
    {"NthWeekdayBadDay", "0 0 * * 8#1", "", "schedule", "day-of-week value 8 is out of range 0-7"},
    {"BareLInDayOfWeek", "0 0 * * L", "", "schedule", "L must follow a weekday"},
    {"ImpossibleThirtiethOfFebruary", "0 0 30 2 *", "", "schedule",
     "schedule never runs: day 30 does not exist in February"},
    {"ImpossibleThirtyFirstInShortMonths", "0 0 31 4,6,9,11 *", "", "schedule",
     "schedule never runs: day 31 does not exist in April, June, September or November"},
    {"ImpossibleWithQuestionMarkWeekday", "0 0 31 2 ?", "", "schedule",
     "schedule never runs: day 31 does not exist in February"},
    {"ImpossibleDayList", "0 0 30,31 FEB *", "", "schedule",
     "schedule never runs: no day of day-of-month \"30,31\" exists in February"},
    {"ImpossibleNearestWeekday", "0 0 30W 2 *", "", "schedule", "schedule never runs"},
    {"EveryWithoutDuration", "@every", "", "schedule", "@every needs a duration"},
    {"EveryBelowOneSecond", "@every 500ms", "", "schedule", "@every interval must be at least 1s"},
    {"EveryZero", "@every 0", "", "schedule", "@every interval must be at least 1s"},
    {"EveryWithWords", "@every 5 minutes", "", "schedule", "@every: invalid duration"},
    {"EveryNegative", "@every -5m", "", "schedule", "@every: invalid duration"},
    {"AtNotATime", "@at tomorrow", "", "schedule", "@at needs an RFC 3339 time"},
    {"AtWithoutOffset", "@at 2025-01-02T15:04:05", "", "schedule", "@at needs an RFC 3339 time"},
    {"AtWithoutTime", "@at", "", "schedule", "@at needs an RFC 3339 time"},
    {"UnknownMacro", "@fortnightly", "", "schedule", "unknown macro \"@fortnightly\""},
    {"MacroWithArgument", "@daily 5", "", "schedule", "@daily takes no argument"},
    {"TooLong", std::string(2000, '1'), "", "schedule", "longer than 1024 characters"},
    {"UnknownZone", "* * * * *", "Mars/Olympus", "timezone", "unknown time zone \"Mars/Olympus\""},
    {"LocaltimeZoneDependsOnHost", "* * * * *", "localtime", "timezone",
     "unknown time zone \"localtime\""},
    {"ZonePathEscape", "* * * * *", "../../etc/passwd", "timezone", "unknown time zone"},
};

INSTANTIATE_TEST_SUITE_P(Cron, Rejects, ::testing::ValuesIn(kBadCases),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Properties over DST days: next_after never returns a time <= t, never
// skips a run (any t' in [t, next) gives the same next), and wall-clock
// schedules match a brute-force enumeration of the civil times.

struct ZoneDay {
  const char* tz;
  const char* from;
  const char* to;
};

const ZoneDay kTransitionDays[] = {
    {"America/New_York", "2024-03-09T00:00:00Z", "2024-03-12T00:00:00Z"},
    {"America/New_York", "2024-11-02T00:00:00Z", "2024-11-05T00:00:00Z"},
    {"Europe/London", "2024-03-30T00:00:00Z", "2024-04-02T00:00:00Z"},
    {"Europe/London", "2024-10-26T00:00:00Z", "2024-10-29T00:00:00Z"},
    {"Australia/Lord_Howe", "2024-04-05T00:00:00Z", "2024-04-08T00:00:00Z"},
    {"Australia/Lord_Howe", "2024-10-04T00:00:00Z", "2024-10-07T00:00:00Z"},
};

const char* const kPropertyExprs[] = {
    "30 2 * * *",  "0,30 2,3 * * *", "15,45 1,2 * * *", "0 * * * *",       "*/15 * * * *",
    "*/7 * * * *", "10 */2 * * *",   "5 1-3 * * *",     "0 30 1 * * *",    "@daily",
    "45 2 * * 0",  "0 0,2 * * *",    "*/45 * * * *",    "15,45 0-4 * * *",
};

TEST(Cron, NextAfterIsStrictlyIncreasingAndSkipsNoRunAcrossDst) {
  for (const ZoneDay& day : kTransitionDays) {
    for (const char* expr : kPropertyExprs) {
      Schedule s = must_parse(expr, day.tz);
      for (absl::Time t = T(day.from); t < T(day.to); t += absl::Seconds(7 * 60 + 13)) {
        std::optional<absl::Time> next = s.next_after(t);
        ASSERT_TRUE(next.has_value()) << expr << " " << day.tz << " " << F(t);
        ASSERT_GT(*next, t) << expr << " " << day.tz << " " << F(t);
        std::optional<absl::Time> again = s.next_after(*next - absl::Nanoseconds(1));
        ASSERT_TRUE(again.has_value());
        ASSERT_EQ(F(*again), F(*next)) << expr << " " << day.tz << " from " << F(t);
      }
    }
  }
}

// Brute force for wall-clock schedules: every matching civil minute in the
// window, mapped by the SPEC rule (skipped: shifted by the gap, repeated:
// first occurrence), de-duplicated and sorted.
TEST(Cron, WallClockScheduleMatchesBruteForceAcrossDst) {
  for (const ZoneDay& day : kTransitionDays) {
    for (const char* expr : kPropertyExprs) {
      Result<internal::CronSpec> spec = internal::parse_cron_spec(expr);
      if (!spec.ok() || spec->fixed_interval) continue;  // macros and fixed ones elsewhere
      Schedule s = must_parse(expr, day.tz);
      absl::TimeZone tz = *load_time_zone(day.tz);
      std::vector<absl::Time> want;
      absl::CivilSecond begin = absl::ToCivilSecond(T(day.from), tz) - 86400;
      absl::CivilSecond end = absl::ToCivilSecond(T(day.to), tz) + 86400;
      for (absl::CivilSecond c = begin; c < end; c += 60) {
        if (spec->next_match(c) != c) continue;
        absl::Time run = tz.At(c).pre;
        if (run > T(day.from) && run < T(day.to)) want.push_back(run);
      }
      std::sort(want.begin(), want.end());
      want.erase(std::unique(want.begin(), want.end()), want.end());
      std::vector<std::string> want_text;
      for (absl::Time w : want) want_text.push_back(F(w));
      std::vector<std::string> got_text;
      for (std::optional<absl::Time> n = s.next_after(T(day.from)); n && *n < T(day.to);
           n = s.next_after(*n)) {
        got_text.push_back(F(*n));
      }
      EXPECT_EQ(got_text, want_text) << expr << " in " << day.tz;
    }
  }
}

// ---------------------------------------------------------------------------
// Single behaviours.

TEST(Cron, SparseSchedulesAnswerQuickly) {
  const char* const exprs[] = {"0 0 29 2 *", "0 0 31 * 1#5", "0 0 * 2 MON#5", "0 0 29 2 1#5",
                               "59 59 23 31 12 *"};
  auto start = std::chrono::steady_clock::now();
  int calls = 0;
  for (const char* expr : exprs) {
    Schedule s = must_parse(expr, "America/New_York");
    absl::Time t = T("2024-03-01T00:00:00Z");
    for (int i = 0; i < 200; ++i) {
      std::optional<absl::Time> next = s.next_after(t);
      ++calls;
      if (!next) break;
      t = *next;
    }
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  // Stepping minute by minute would take seconds per call; a debug build
  // with sanitizers does these in well under a millisecond each.
  EXPECT_LT(elapsed / calls, std::chrono::milliseconds(5));
}

TEST(Cron, FifthMondayInFebruaryIsRareButFound) {
  Schedule s = must_parse("0 0 * 2 MON#5");
  EXPECT_EQ(F(*s.next_after(T("2024-03-01T00:00:00Z"))), "2044-02-29T00:00:00+00:00");
}

TEST(Cron, CopiesShareTheParsedForm) {
  Schedule a = must_parse("*/5 * * * *", "Europe/London");
  Schedule b = a;
  EXPECT_EQ(&a.expression(), &b.expression());
  EXPECT_EQ(a.next_after(T("2024-01-01T00:01:00Z")), b.next_after(T("2024-01-01T00:01:00Z")));
}

TEST(Cron, KeepsExpressionAndZoneAsGiven) {
  Schedule s = must_parse(" @daily ", "Europe/London");
  EXPECT_EQ(s.expression(), " @daily ");
  EXPECT_EQ(s.timezone(), "Europe/London");
}

TEST(Cron, OnlyAtIsOneOff) {
  EXPECT_TRUE(must_parse("@at 2030-01-01T00:00:00Z").is_one_off());
  EXPECT_FALSE(must_parse("@every 5m").is_one_off());
  EXPECT_FALSE(must_parse("0 0 * * *").is_one_off());
}

TEST(Cron, AtInThePastStillParses) {
  EXPECT_TRUE(Schedule::parse("@at 1999-12-31T23:59:59Z", "UTC").ok());
}

TEST(Cron, EmptyAndUtcZoneNamesLoadUtc) {
  EXPECT_EQ(load_time_zone("")->name(), "UTC");
  EXPECT_EQ(load_time_zone("UTC")->name(), "UTC");
  EXPECT_EQ(load_time_zone("Asia/Tokyo")->name(), "Asia/Tokyo");
}

TEST(Cron, UnknownZoneErrorNamesTheZone) {
  Result<absl::TimeZone> tz = load_time_zone("Europe/Atlantis");
  ASSERT_FALSE(tz.ok());
  EXPECT_EQ(tz.error().field, "timezone");
  EXPECT_THAT(tz.error().message, HasSubstr("\"Europe/Atlantis\""));
}

TEST(Cron, ExtremeInputTimesAreSafe) {
  for (const char* expr : {"* * * * *", "0 0 1 1 *", "@every 1h", "@at 2030-01-01T00:00:00Z"}) {
    Schedule s = must_parse(expr, "America/New_York");
    EXPECT_FALSE(s.next_after(absl::InfiniteFuture()).has_value()) << expr;
    std::optional<absl::Time> first = s.next_after(absl::InfinitePast());
    ASSERT_TRUE(first.has_value()) << expr;
    EXPECT_GT(*first, absl::InfinitePast());
  }
}

TEST(ScheduleParser, SharesEqualSchedulesAndKeepsEachAnchor) {
  ScheduleParser parser(/*max_entries=*/2);
  auto a = parser.parse("*/5 * * * *", "Europe/Berlin", T("2025-01-01T00:00:00Z"));
  auto b = parser.parse("*/5 * * * *", "Europe/Berlin", T("2025-06-01T00:00:00Z"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(&a->expression(), &b->expression()) << "one parsed schedule, shared";
  // The same expression in another zone is another schedule.
  auto utc = parser.parse("0 9 * * *", "", T("2025-01-01T00:00:00Z"));
  auto ny = parser.parse("0 9 * * *", "America/New_York", T("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(utc.ok() && ny.ok());
  EXPECT_EQ(F(*utc->next_after(T("2025-03-03T00:00:00Z"))), "2025-03-03T09:00:00+00:00");
  EXPECT_EQ(F(*ny->next_after(T("2025-03-03T00:00:00Z"))), "2025-03-03T14:00:00+00:00");
  // @every keeps each job's own phase.
  auto e1 = parser.parse("@every 1h", "", T("2025-01-01T00:10:00Z"));
  auto e2 = parser.parse("@every 1h", "", T("2025-01-01T00:20:00Z"));
  ASSERT_TRUE(e1.ok() && e2.ok());
  EXPECT_EQ(F(*e1->next_after(T("2025-01-02T00:00:00Z"))), "2025-01-02T00:10:00+00:00");
  EXPECT_EQ(F(*e2->next_after(T("2025-01-02T00:00:00Z"))), "2025-01-02T00:20:00+00:00");
  // Errors are not remembered, and past max_entries it still parses.
  EXPECT_FALSE(parser.parse("61 * * * *", "", T("2025-01-01T00:00:00Z")).ok());
  auto late = parser.parse("0 0 1 * *", "", T("2025-01-01T00:00:00Z"));
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(F(*late->next_after(T("2025-01-05T00:00:00Z"))), "2025-02-01T00:00:00+00:00");
}

}  // namespace
}  // namespace chronos::cron
