#include "cron/cron_spec.h"

#include <algorithm>
#include <array>
#include <bit>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "base/strings.h"

namespace chronos::cron::internal {
namespace {

// Searches never start before this year (an InfinitePast input would
// otherwise walk forever).
constexpr int64_t kMinYear = 1;

enum class Field { kSecond, kMinute, kHour, kDayOfMonth, kMonth, kDayOfWeek };

struct FieldInfo {
  const char* name;
  int min;
  int max;  // day-of-week accepts 7 (Sunday) on input
};

constexpr std::array<FieldInfo, 6> kFields = {{
    {"second", 0, 59},
    {"minute", 0, 59},
    {"hour", 0, 23},
    {"day-of-month", 1, 31},
    {"month", 1, 12},
    {"day-of-week", 0, 7},
}};

constexpr std::array<const char*, 12> kMonthNames = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 12> kMonthFullNames = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};
constexpr std::array<const char*, 7> kDayNames = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

const FieldInfo& info(Field f) { return kFields[static_cast<size_t>(f)]; }

Error schedule_error(std::string message) {
  return Error::validation("schedule", std::move(message));
}

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int64_t y, int m) {
  static constexpr std::array<int, 13> kDays = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[static_cast<size_t>(m)];
}

// Longest a month can be in any year (February: 29).
int max_days_in_month(int m) { return m == 2 ? 29 : days_in_month(2001, m); }

// Index of the lowest set bit >= `from`, or -1.
int next_bit(uint64_t mask, int from) {
  if (from >= 64) return -1;
  uint64_t m = mask & (~uint64_t{0} << from);
  return m == 0 ? -1 : std::countr_zero(m);
}

// Bits 1..last set (last <= 31).
uint32_t day_bits(int last) { return static_cast<uint32_t>((uint64_t{1} << (last + 1)) - 2); }

uint64_t range_bits(int lo, int hi, int step) {
  uint64_t bits = 0;
  for (int v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;
  return bits;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool all_alpha(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalpha(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Parses one field of one expression; collects what the matcher and the
// Vixie/fixed-interval rules need.
class FieldParser {
 public:
  FieldParser(Field field, std::string_view text, CronSpec* spec)
      : field_(field), text_(text), spec_(spec) {}

  // Value bits of plain values/ranges (seconds..day-of-week).
  uint64_t bits() const { return bits_; }
  bool unrestricted() const { return text_ == "*" || text_ == "?" || text_ == "*/1"; }
  bool star_or_star_step() const { return text_ == "*" || text_.starts_with("*/"); }
  bool single_value() const { return all_digits(text_); }

  Status parse() {
    if (text_.empty()) return schedule_error(str_cat(info(field_).name, " field is empty"));
    for (size_t start = 0; start <= text_.size();) {
      size_t end = std::min(text_.find(',', start), text_.size());
      std::string_view term = text_.substr(start, end - start);
      start = end + 1;
      if (term.empty()) {
        return schedule_error(
            str_cat("empty list element in ", info(field_).name, " field \"", text_, "\""));
      }
      CHRONOS_RETURN_IF_ERROR(parse_term(term));
    }
    return ok_status();
  }

 private:
  const char* name() const { return info(field_).name; }

  // A value: digits, or a month/day name in the fields that have names.
  Result<int> parse_value(std::string_view s, std::string_view term) const {
    const FieldInfo& fi = info(field_);
    if (s.empty()) {
      return schedule_error(str_cat("missing ", name(), " value in \"", term, "\""));
    }
    if (all_digits(s)) {
      if (s.size() > 6) {
        return schedule_error(
            str_cat(name(), " value ", s, " is out of range ", fi.min, "-", fi.max));
      }
      int v = 0;
      for (char c : s) v = v * 10 + (c - '0');
      if (v < fi.min || v > fi.max) {
        return schedule_error(
            str_cat(name(), " value ", v, " is out of range ", fi.min, "-", fi.max));
      }
      return v;
    }
    if (all_alpha(s) && (field_ == Field::kMonth || field_ == Field::kDayOfWeek)) {
      if (field_ == Field::kMonth) {
        for (size_t i = 0; i < kMonthNames.size(); ++i) {
          if (equals_ignore_case(s, kMonthNames[i])) return static_cast<int>(i) + 1;
        }
        return schedule_error(str_cat("unknown month name \"", s, "\" (expected JAN-DEC or 1-12)"));
      }
      for (size_t i = 0; i < kDayNames.size(); ++i) {
        if (equals_ignore_case(s, kDayNames[i])) return static_cast<int>(i);
      }
      return schedule_error(
          str_cat("unknown day-of-week name \"", s, "\" (expected SUN-SAT or 0-7)"));
    }
    return schedule_error(str_cat(name(), " value \"", s, "\" in \"", term, "\" is not a number"));
  }

  Status parse_term(std::string_view term) {
    const FieldInfo& fi = info(field_);
    std::string_view base = term;
    std::optional<int> step;
    if (size_t slash = term.find('/'); slash != std::string_view::npos) {
      base = term.substr(0, slash);
      std::string_view step_text = term.substr(slash + 1);
      if (!all_digits(step_text)) {
        return schedule_error(
            str_cat("step must be a positive number in \"", term, "\" (", name(), " field)"));
      }
      int span = field_ == Field::kDayOfWeek ? 7 : fi.max - fi.min + 1;
      if (step_text.size() > 6) {
        return schedule_error(str_cat("step ", step_text, " in \"", term, "\" is larger than the ",
                                      name(), " range ", fi.min, "-", fi.max));
      }
      int n = 0;
      for (char c : step_text) n = n * 10 + (c - '0');
      if (n < 1) {
        return schedule_error(
            str_cat("step must be \xe2\x89\xa5 1 in \"", term, "\" (", name(), " field)"));
      }
      if (n > span) {
        return schedule_error(str_cat("step ", n, " in \"", term, "\" is larger than the ", name(),
                                      " range ", fi.min, "-", fi.max));
      }
      step = n;
    }

    if (base == "*" || base == "?") {
      if (base == "?" && field_ != Field::kDayOfMonth && field_ != Field::kDayOfWeek) {
        return schedule_error(
            str_cat("'?' is only allowed in day-of-month and day-of-week, "
                    "not in the ",
                    name(), " field"));
      }
      int hi = field_ == Field::kDayOfWeek ? 6 : fi.max;
      bits_ |= range_bits(fi.min, hi, step.value_or(1));
      return ok_status();
    }

    if (field_ == Field::kDayOfMonth) {
      bool special = false;
      CHRONOS_RETURN_IF_ERROR(parse_dom_special(base, term, step.has_value(), &special));
      if (special) return ok_status();
    }
    if (field_ == Field::kDayOfWeek) {
      bool special = false;
      CHRONOS_RETURN_IF_ERROR(parse_dow_special(base, term, step.has_value(), &special));
      if (special) return ok_status();
    }

    int lo = 0;
    int hi = 0;
    if (size_t dash = base.find('-'); dash != std::string_view::npos) {
      CHRONOS_ASSIGN_OR_RETURN(lo, parse_value(base.substr(0, dash), term));
      CHRONOS_ASSIGN_OR_RETURN(hi, parse_value(base.substr(dash + 1), term));
      if (lo > hi) {
        return schedule_error(str_cat("range start ", lo, " is greater than its end ", hi, " in \"",
                                      term, "\" (", name(), " ranges do not wrap around)"));
      }
    } else {
      CHRONOS_ASSIGN_OR_RETURN(lo, parse_value(base, term));
      // `a/n` means from a to the field's maximum.
      hi = step.has_value() ? (field_ == Field::kDayOfWeek ? 6 : fi.max) : lo;
      if (hi < lo) hi = lo;  // "7/2" in day-of-week: just Sunday
    }
    uint64_t b = range_bits(lo, hi, step.value_or(1));
    if (field_ == Field::kDayOfWeek && (b & (uint64_t{1} << 7))) {
      b = (b & ~(uint64_t{1} << 7)) | 1;  // 7 is Sunday, as 0
    }
    bits_ |= b;
    return ok_status();
  }

  // L, L-n, LW, nW. Sets *special when `base` was one of them.
  Status parse_dom_special(std::string_view base, std::string_view term, bool has_step,
                           bool* special) {
    bool has_l = !base.empty() && (base[0] == 'L' || base[0] == 'l');
    bool has_w = !base.empty() && (base.back() == 'W' || base.back() == 'w');
    if (!has_l && !has_w) return ok_status();
    *special = true;
    if (has_step) {
      return schedule_error(
          str_cat("a step is not allowed with \"", base, "\" in day-of-month (\"", term, "\")"));
    }
    if (base.size() == 1 && has_l) {
      spec_->dom_last_offsets |= 1;
      return ok_status();
    }
    if (base.size() == 2 && has_l && has_w) {
      spec_->dom_last_weekday = true;
      return ok_status();
    }
    if (has_l) {
      if (base.size() < 3 || base[1] != '-' || !all_digits(base.substr(2))) {
        return schedule_error(str_cat("invalid day-of-month \"", term,
                                      "\": L must stand alone or be written L-n or LW"));
      }
      std::string_view n_text = base.substr(2);
      int n = n_text.size() > 3 ? 99 : 0;
      if (n == 0) {
        for (char c : n_text) n = n * 10 + (c - '0');
      }
      if (n > 30) {
        return schedule_error(
            str_cat("day-of-month offset ", n_text, " in \"", term, "\" is out of range 0-30"));
      }
      spec_->dom_last_offsets |= uint32_t{1} << n;
      return ok_status();
    }
    // nW
    std::string_view n_text = base.substr(0, base.size() - 1);
    if (!all_digits(n_text)) {
      return schedule_error(
          str_cat("invalid day-of-month \"", term, "\": W must follow a day number, e.g. 15W"));
    }
    CHRONOS_ASSIGN_OR_RETURN(int n, parse_value(n_text, term));
    spec_->dom_weekday_near |= uint32_t{1} << n;
    return ok_status();
  }

  // d#n and dL. Sets *special when `base` was one of them.
  Status parse_dow_special(std::string_view base, std::string_view term, bool has_step,
                           bool* special) {
    size_t hash = base.find('#');
    // No weekday name ends in L, so a trailing L always means "last".
    bool last = !base.empty() && (base.back() == 'L' || base.back() == 'l');
    if (hash == std::string_view::npos && !last) return ok_status();
    *special = true;
    if (has_step) {
      return schedule_error(
          str_cat("a step is not allowed with \"", base, "\" in day-of-week (\"", term, "\")"));
    }
    if (hash != std::string_view::npos) {
      CHRONOS_ASSIGN_OR_RETURN(int d, parse_value(base.substr(0, hash), term));
      std::string_view n_text = base.substr(hash + 1);
      if (!all_digits(n_text)) {
        return schedule_error(str_cat("invalid day-of-week \"", term,
                                      "\": expected weekday#n with n 1-5, e.g. MON#2"));
      }
      int n = n_text.size() > 2 ? 99 : 0;
      if (n == 0) {
        for (char c : n_text) n = n * 10 + (c - '0');
      }
      if (n < 1 || n > 5) {
        return schedule_error(
            str_cat("day-of-week occurrence ", n_text, " in \"", term, "\" is out of range 1-5"));
      }
      spec_->dow_nth[d % 7] |= uint32_t{1} << n;
      return ok_status();
    }
    if (base.size() == 1) {
      return schedule_error(
          str_cat("invalid day-of-week \"", term, "\": L must follow a weekday, e.g. 5L or FRIL"));
    }
    CHRONOS_ASSIGN_OR_RETURN(int d, parse_value(base.substr(0, base.size() - 1), term));
    spec_->dow_last |= uint32_t{1} << (d % 7);
    return ok_status();
  }

  Field field_;
  std::string_view text_;
  CronSpec* spec_;
  uint64_t bits_ = 0;
};

// Rejects day-of-month sets that no month of the month field can ever have
// (SPEC §2: impossible schedules fail at create time). Only relevant when the
// day-of-week field cannot rescue the day through the Vixie OR rule.
Status check_possible(const CronSpec& s, std::string_view dom_text) {
  if (s.dom_unrestricted || !s.dow_unrestricted) return ok_status();
  if (s.dom_last_weekday || (s.dom_last_offsets & 1)) return ok_status();
  std::vector<std::string> months;
  for (int m = 1; m <= 12; ++m) {
    if (!(s.months & (uint32_t{1} << m))) continue;
    int max_days = max_days_in_month(m);
    uint32_t days_that_exist = day_bits(max_days);
    uint32_t offsets_that_exist = (uint32_t{1} << max_days) - 1;  // L-n, n <= max_days-1
    if ((s.dom_days & days_that_exist) || (s.dom_weekday_near & days_that_exist) ||
        (s.dom_last_offsets & offsets_that_exist)) {
      return ok_status();
    }
    months.push_back(kMonthFullNames[static_cast<size_t>(m - 1)]);
  }
  std::string where = months.back();
  if (months.size() > 1) {
    months.pop_back();
    std::string list;
    for (const std::string& m : months) list = list.empty() ? m : str_cat(list, ", ", m);
    where = str_cat(list, " or ", where);
  }
  if (all_digits(dom_text)) {
    return schedule_error(
        str_cat("schedule never runs: day ", dom_text, " does not exist in ", where));
  }
  return schedule_error(
      str_cat("schedule never runs: no day of day-of-month \"", dom_text, "\" exists in ", where));
}

}  // namespace

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) !=
        absl::ascii_tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view strip_whitespace(std::string_view s) {
  auto space = [](char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_whitespace(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

uint32_t CronSpec::day_mask(int64_t year, int month) const {
  const int last = days_in_month(year, month);
  const uint32_t month_days = day_bits(last);
  if (dom_unrestricted && dow_unrestricted) return month_days;

  uint32_t dom = dom_days & month_days;
  for (uint32_t offsets = dom_last_offsets; offsets != 0; offsets &= offsets - 1) {
    int day = last - std::countr_zero(offsets);
    if (day >= 1) dom |= uint32_t{1} << day;
  }
  // absl: Monday = 0 ... Sunday = 6; cron: Sunday = 0.
  const int first_wd = (static_cast<int>(absl::GetWeekday(absl::CivilDay(year, month, 1))) + 1) % 7;
  auto weekday = [&](int day) { return (first_wd + day - 1) % 7; };
  // nW (Quartz): the weekday nearest to day n, never leaving the month.
  for (uint32_t near = dom_weekday_near; near != 0; near &= near - 1) {
    int day = std::countr_zero(near);
    if (day > last) continue;
    int wd = weekday(day);
    if (wd == 6) {
      day = day == 1 ? 3 : day - 1;
    } else if (wd == 0) {
      day = day == last ? day - 2 : day + 1;
    }
    dom |= uint32_t{1} << day;
  }
  if (dom_last_weekday) {
    int day = last;
    int wd = weekday(day);
    if (wd == 6) day -= 1;
    if (wd == 0) day -= 2;
    dom |= uint32_t{1} << day;
  }

  uint32_t dow = 0;
  for (int day = 1; day <= last; ++day) {
    int wd = weekday(day);
    bool match = (dow_days & (uint32_t{1} << wd)) ||
                 (dow_nth[wd] & (uint32_t{1} << ((day - 1) / 7 + 1))) ||
                 ((dow_last & (uint32_t{1} << wd)) && day + 7 > last);
    if (match) dow |= uint32_t{1} << day;
  }

  if (dom_unrestricted) return dow;
  if (dow_unrestricted) return dom;
  return dom | dow;  // Vixie: both restricted, either may match
}

bool CronSpec::day_matches(int64_t year, int month, int day) const {
  return (months & (uint32_t{1} << month)) && (day_mask(year, month) & (uint32_t{1} << day));
}

std::optional<absl::CivilSecond> CronSpec::next_match(absl::CivilSecond from) const {
  if (from.year() < kMinYear) from = absl::CivilSecond(kMinYear, 1, 1, 0, 0, 0);
  int64_t y = from.year();
  int mo = from.month();
  int d = from.day();
  int h = from.hour();
  int mi = from.minute();
  int s = from.second();
  int64_t mask_year = -1;
  int mask_month = -1;
  uint32_t mask = 0;
  // Each step either finds the next candidate of a field within its parent
  // or carries into the parent, so whole months/days/hours that cannot match
  // are skipped at once.
  while (y <= kMaxYear) {
    int nm = next_bit(months, mo);
    if (nm < 0) {
      ++y;
      mo = 1;
      d = 1;
      h = mi = s = 0;
      continue;
    }
    if (nm != mo) {
      mo = nm;
      d = 1;
      h = mi = s = 0;
    }
    if (y != mask_year || mo != mask_month) {
      mask = day_mask(y, mo);
      mask_year = y;
      mask_month = mo;
    }
    int nd = next_bit(mask, d);
    if (nd < 0) {
      if (++mo > 12) {
        ++y;
        mo = 1;
      }
      d = 1;
      h = mi = s = 0;
      continue;
    }
    if (nd != d) {
      d = nd;
      h = mi = s = 0;
    }
    int nh = next_bit(hours, h);
    if (nh < 0) {
      ++d;
      h = mi = s = 0;
      continue;
    }
    if (nh != h) {
      h = nh;
      mi = s = 0;
    }
    int nmi = next_bit(minutes, mi);
    if (nmi < 0) {
      ++h;
      mi = s = 0;
      continue;
    }
    if (nmi != mi) {
      mi = nmi;
      s = 0;
    }
    int ns = next_bit(seconds, s);
    if (ns < 0) {
      ++mi;
      s = 0;
      continue;
    }
    return absl::CivilSecond(y, mo, d, h, mi, ns);
  }
  return std::nullopt;
}

Result<CronSpec> parse_cron_spec(std::string_view expr) {
  std::vector<std::string_view> parts = split_whitespace(expr);
  if (parts.size() != 5 && parts.size() != 6) {
    return schedule_error(str_cat("expected 5 or 6 fields, got ", parts.size(),
                                  " (minute hour day-of-month month day-of-week, "
                                  "optionally preceded by second)"));
  }
  std::string_view second_text = parts.size() == 6 ? parts[0] : "0";
  if (parts.size() == 6) parts.erase(parts.begin());

  CronSpec spec;
  FieldParser second(Field::kSecond, second_text, &spec);
  FieldParser minute(Field::kMinute, parts[0], &spec);
  FieldParser hour(Field::kHour, parts[1], &spec);
  FieldParser dom(Field::kDayOfMonth, parts[2], &spec);
  FieldParser month(Field::kMonth, parts[3], &spec);
  FieldParser dow(Field::kDayOfWeek, parts[4], &spec);
  for (FieldParser* p : {&second, &minute, &hour, &dom, &month, &dow}) {
    CHRONOS_RETURN_IF_ERROR(p->parse());
  }
  spec.seconds = second.bits();
  spec.minutes = minute.bits();
  spec.hours = static_cast<uint32_t>(hour.bits());
  spec.months = static_cast<uint32_t>(month.bits());
  spec.dom_days = static_cast<uint32_t>(dom.bits());
  spec.dow_days = static_cast<uint32_t>(dow.bits());
  spec.dom_unrestricted = dom.unrestricted();
  spec.dow_unrestricted = dow.unrestricted();
  spec.fixed_interval = hour.unrestricted() && minute.star_or_star_step() &&
                        (second.star_or_star_step() || second.single_value());
  CHRONOS_RETURN_IF_ERROR(check_possible(spec, parts[2]));
  return spec;
}

}  // namespace chronos::cron::internal
