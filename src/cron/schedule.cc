#include "cron/schedule.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/time/civil_time.h"
#include "base/duration.h"
#include "base/strings.h"
#include "cron/cron_spec.h"

namespace chronos::cron {
namespace {

// Longer input is not a schedule anyone means; keeps error messages and
// fuzzing bounded.
constexpr size_t kMaxExpressionBytes = 1024;

Error schedule_error(std::string message) {
  return Error::validation("schedule", std::move(message));
}

// Beyond the end of internal::kMaxYear nothing is searched. @every and @at are
// exact arithmetic and not bound by it.
absl::Time horizon() {
  static const absl::Time kHorizon = absl::FromCivil(
      absl::CivilSecond(internal::kMaxYear + 1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  return kHorizon;
}

// Inputs before this (0001-01-01 UTC, e.g. InfinitePast) are treated as it,
// which keeps the arithmetic finite.
absl::Time earliest() {
  static const absl::Time kEarliest =
      absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  return kEarliest;
}

struct Macro {
  std::string_view name;
  std::string_view cron;
};

constexpr Macro kMacros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

bool valid_zone_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.front() == '/' || name == "localtime" ||
      name.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '_' && c != '-' &&
        c != '+') {
      return false;
    }
  }
  return true;
}

}  // namespace

// The parsed form, built once by parse() and then shared read-only by every
// copy of the Schedule (hence safe from any thread).
struct Schedule::Impl {
  enum class Kind { kCron, kEvery, kAt };

  Kind kind = Kind::kCron;
  std::string expression;
  std::string tz_name;
  absl::TimeZone tz;
  internal::CronSpec cron;  // kCron
  absl::Duration every;     // kEvery
  absl::Time anchor;        // kEvery: runs at anchor + k * every
  absl::Time at;            // kAt

  std::optional<absl::Time> next_every(absl::Time t) const;
  std::optional<absl::Time> next_wall(absl::Time t) const;
  std::optional<absl::Time> next_fixed(absl::Time t) const;
};

Result<absl::TimeZone> load_time_zone(std::string_view name) {
  if (name.empty() || name == "UTC") return absl::UTCTimeZone();
  absl::TimeZone tz;
  // "localtime" and paths would make results depend on the host.
  if (!valid_zone_name(name) || !absl::LoadTimeZone(std::string(name), &tz)) {
    return Error::validation("timezone", str_cat("unknown time zone \"", name,
                                                 "\" (expected an IANA name such as "
                                                 "Europe/London)"));
  }
  return tz;
}

Schedule::Schedule(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Result<Schedule> Schedule::parse(std::string_view expr, std::string_view tz_name,
                                 absl::Time anchor) {
  CHRONOS_ASSIGN_OR_RETURN(absl::TimeZone tz, load_time_zone(tz_name));
  auto impl = std::make_shared<Impl>();
  impl->expression = std::string(expr);
  impl->tz_name = std::string(tz_name);
  impl->tz = tz;

  if (expr.size() > kMaxExpressionBytes) {
    return schedule_error(str_cat("schedule is longer than ", kMaxExpressionBytes, " characters"));
  }
  std::string_view text = internal::strip_whitespace(expr);
  if (text.empty()) return schedule_error("schedule is empty");

  if (text.front() != '@') {
    CHRONOS_ASSIGN_OR_RETURN(impl->cron, internal::parse_cron_spec(text));
    return Schedule(std::move(impl));
  }

  size_t space = text.find_first_of(" \t");
  std::string_view word = text.substr(0, space);
  std::string_view arg =
      space == std::string_view::npos ? "" : internal::strip_whitespace(text.substr(space));

  for (const Macro& m : kMacros) {
    if (!internal::equals_ignore_case(word, m.name)) continue;
    if (!arg.empty()) {
      return schedule_error(str_cat(m.name, " takes no argument, got \"", arg, "\""));
    }
    CHRONOS_ASSIGN_OR_RETURN(impl->cron, internal::parse_cron_spec(m.cron));
    return Schedule(std::move(impl));
  }

  if (internal::equals_ignore_case(word, "@every")) {
    if (arg.empty()) return schedule_error("@every needs a duration, e.g. \"@every 5m\"");
    Result<absl::Duration> d = parse_duration(arg);
    if (!d.ok()) return schedule_error(str_cat("@every: ", d.error().message));
    if (*d < absl::Seconds(1)) {
      return schedule_error(str_cat("@every interval must be at least 1s, got \"", arg, "\""));
    }
    if (anchor == absl::InfinitePast() || anchor == absl::InfiniteFuture()) {
      return Error::internal("@every anchor must be a finite time");
    }
    impl->kind = Impl::Kind::kEvery;
    impl->every = *d;
    impl->anchor = anchor;
    return Schedule(std::move(impl));
  }

  if (internal::equals_ignore_case(word, "@at")) {
    std::string err;
    if (arg.empty() ||
        !absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", std::string(arg), &impl->at, &err) ||
        impl->at == absl::InfinitePast() || impl->at == absl::InfiniteFuture()) {
      return schedule_error(
          str_cat("@at needs an RFC 3339 time such as 2025-01-02T15:04:05Z, got \"", arg, "\""));
    }
    impl->kind = Impl::Kind::kAt;
    return Schedule(std::move(impl));
  }

  return schedule_error(str_cat("unknown macro \"", word,
                                "\" (expected @yearly, @annually, @monthly, @weekly, "
                                "@daily, @midnight, @hourly, @every or @at)"));
}

std::optional<absl::Time> Schedule::next_after(absl::Time t) const {
  const Impl& s = *impl_;
  switch (s.kind) {
    case Impl::Kind::kAt:
      if (s.at > t) return s.at;
      return std::nullopt;
    case Impl::Kind::kEvery:
      return s.next_every(t);
    case Impl::Kind::kCron:
      break;
  }
  if (t >= horizon()) return std::nullopt;
  if (t < earliest()) t = earliest();
  return s.cron.fixed_interval ? s.next_fixed(t) : s.next_wall(t);
}

std::optional<absl::Time> Schedule::Impl::next_every(absl::Time t) const {
  if (t == absl::InfiniteFuture()) return std::nullopt;
  if (t < earliest()) t = earliest();
  // The smallest k with anchor + k*every > t: k = floor((t - anchor) / every) + 1.
  absl::Duration rem;
  int64_t k = absl::IDivDuration(t - anchor, every, &rem);
  if (rem < absl::ZeroDuration()) --k;
  absl::Time next = anchor + (k + 1) * every;
  if (next <= t) next += every;  // guard against rounding at the edges
  if (next == absl::InfiniteFuture()) return std::nullopt;
  return next;
}

// Wall-clock semantics: every matching civil time c runs at tz.At(c).pre.
// That is the first occurrence for a repeated time and, for a skipped time,
// the instant computed with the offset before the gap, i.e. c shifted forward
// by the gap's length. The mapping is monotonic except that shifted times can
// land up to one gap later than civil times just after the gap, so the search
// starts early enough to see shifted candidates and keeps the smallest.
std::optional<absl::Time> Schedule::Impl::next_wall(absl::Time t) const {
  absl::CivilSecond start = tz.At(t).cs;
  absl::TimeZone::CivilTransition tr;
  if (tz.PrevTransition(t + absl::Seconds(1), &tr) && tr.to > tr.from) {
    // A forward gap ended recently: skipped times in it may run after t.
    absl::Time gap_end = tz.At(tr.to).pre;
    absl::Duration gap = absl::Seconds(tr.to - tr.from);
    if (t < gap_end + gap && tr.from < start) start = tr.from;
  }

  std::optional<absl::Time> best;
  absl::CivilSecond limit;  // no civil time after this maps before *best
  for (absl::CivilSecond c = start;;) {
    std::optional<absl::CivilSecond> m = cron.next_match(c);
    if (!m || (best && *m > limit)) break;
    absl::Time run = tz.At(*m).pre;
    if (run > t && (!best || run < *best)) {
      best = run;
      limit = tz.At(run).cs;
    }
    c = *m + 1;
  }
  return best;
}

// Elapsed-time semantics: an instant runs when its own wall time matches, so
// both passes through a repeated hour run and skipped wall times simply do
// not occur. Within a span of constant UTC offset wall time is a shift of
// real time; search one span at a time.
std::optional<absl::Time> Schedule::Impl::next_fixed(absl::Time t) const {
  absl::Time from = absl::FromUnixSeconds(absl::ToUnixSeconds(t)) + absl::Seconds(1);
  for (;;) {
    absl::CivilSecond wall = tz.At(from).cs;
    std::optional<absl::CivilSecond> m = cron.next_match(wall);
    if (!m) return std::nullopt;
    absl::Time run = from + absl::Seconds(*m - wall);
    absl::TimeZone::CivilTransition tr;
    if (!tz.NextTransition(from, &tr)) return run;
    absl::Time span_end = tz.At(tr.to).trans;
    if (run < span_end || span_end <= from) return run;
    from = span_end;
  }
}

bool Schedule::is_one_off() const { return impl_->kind == Impl::Kind::kAt; }

bool Schedule::uses_anchor() const { return impl_->kind == Impl::Kind::kEvery; }

Result<Schedule> ScheduleParser::parse(std::string_view expr, std::string_view tz_name,
                                       absl::Time anchor) {
  std::string key;
  key.reserve(tz_name.size() + 1 + expr.size());
  key.append(tz_name).append(1, '\n').append(expr);
  if (auto it = memo_.find(key); it != memo_.end()) return it->second;
  Result<Schedule> parsed = Schedule::parse(expr, tz_name, anchor);
  if (parsed.ok() && !parsed->uses_anchor() && memo_.size() < max_entries_) {
    memo_.emplace(std::move(key), *parsed);
  }
  return parsed;
}

const std::string& Schedule::expression() const { return impl_->expression; }

const std::string& Schedule::timezone() const { return impl_->tz_name; }

}  // namespace chronos::cron
