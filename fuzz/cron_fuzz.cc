// libFuzzer target for the schedule parser and next-run search (SPEC §2).
//
// Input: byte 0 picks a time zone and a start time; the rest is the
// expression. Every schedule that parses must give strictly increasing run
// times from next_after.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/check.h"
#include "cron/schedule.h"

namespace {

constexpr std::string_view kZones[] = {
    "UTC",          "America/New_York", "Europe/London",    "Australia/Lord_Howe",
    "Asia/Kolkata", "Pacific/Apia",     "America/Santiago", "Nope/Unknown",
};

// Start times on and around DST transitions, plus far past and the horizon.
absl::Time start_time(uint8_t selector) {
  static const absl::CivilSecond kStarts[] = {
      absl::CivilSecond(2024, 3, 10, 6, 30, 0),  absl::CivilSecond(2024, 11, 3, 5, 10, 0),
      absl::CivilSecond(2024, 3, 31, 0, 59, 59), absl::CivilSecond(2024, 10, 6, 15, 20, 0),
      absl::CivilSecond(2024, 4, 6, 14, 50, 0),  absl::CivilSecond(2011, 12, 29, 9, 0, 0),
      absl::CivilSecond(1850, 1, 1, 0, 0, 0),    absl::CivilSecond(2199, 12, 31, 23, 0, 0),
  };
  return absl::FromCivil(kStarts[selector % 8], absl::UTCTimeZone()) +
         absl::Milliseconds(selector / 8 * 125);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t selector = data[0];
  std::string_view expr(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string_view zone = kZones[selector % 8];
  absl::Time anchor = absl::FromUnixSeconds(1'700'000'000 + selector);

  chronos::Result<chronos::cron::Schedule> schedule =
      chronos::cron::Schedule::parse(expr, zone, anchor);
  if (!schedule.ok()) {
    CHRONOS_CHECK(!schedule.error().message.empty()) << "error without a message";
    CHRONOS_CHECK(schedule.error().field == "schedule" || schedule.error().field == "timezone")
        << "unexpected error field " << schedule.error().field;
    return 0;
  }
  absl::Time t = start_time(selector >> 3);
  for (int i = 0; i < 8; ++i) {
    std::optional<absl::Time> next = schedule->next_after(t);
    if (!next) break;
    CHRONOS_CHECK(*next > t) << "next_after went backwards for \"" << expr << "\" in " << zone
                             << ": " << absl::FormatTime(*next) << " <= " << absl::FormatTime(t);
    // Nothing may be skipped: asking from just before the result gives it again.
    std::optional<absl::Time> again = schedule->next_after(*next - absl::Nanoseconds(1));
    CHRONOS_CHECK(again && *again == *next) << "run skipped for \"" << expr << "\" in " << zone;
    t = *next;
  }
  return 0;
}
