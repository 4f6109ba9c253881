#include "store/timing_record.h"

#include <cstdint>

namespace chronos::store {
namespace {

constexpr uint8_t kFormat = 1;
constexpr uint8_t kEnabled = 1;

void put_be(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads big-endian integers and length-prefixed strings off the front of a
// view; any read past its end sets `ok` to false and yields zeros.
struct Reader {
  std::string_view rest;
  bool ok = true;

  uint64_t u(int bytes) {
    if (rest.size() < static_cast<size_t>(bytes)) {
      ok = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(rest[i]);
    rest.remove_prefix(static_cast<size_t>(bytes));
    return v;
  }
  std::string str() {
    const uint64_t n = u(4);
    if (!ok || rest.size() < n) {
      ok = false;
      return {};
    }
    std::string s(rest.substr(0, n));
    rest.remove_prefix(n);
    return s;
  }
};

}  // namespace

std::string encode_timing_record(const model::JobTiming& t) {
  std::string out;
  out.reserve(38 + t.schedule.size() + t.timezone.size());
  out.push_back(static_cast<char>(kFormat));
  out.push_back(static_cast<char>(t.enabled ? kEnabled : 0));
  put_be(&out, static_cast<uint64_t>(t.version), 8);
  const int64_t seconds = absl::ToUnixSeconds(t.created_at);
  put_be(&out, static_cast<uint64_t>(seconds), 8);
  put_be(&out,
         static_cast<uint64_t>(
             absl::ToInt64Nanoseconds(t.created_at - absl::FromUnixSeconds(seconds))),
         4);
  put_be(&out, static_cast<uint64_t>(absl::ToInt64Nanoseconds(t.jitter)), 8);
  put_be(&out, t.schedule.size(), 4);
  out += t.schedule;
  put_be(&out, t.timezone.size(), 4);
  out += t.timezone;
  return out;
}

Result<model::JobTiming> decode_timing_record(std::string_view job_id, std::string_view bytes) {
  auto corrupt = [&](std::string_view what) {
    return Error::internal("corrupt timing record of job " + std::string(job_id) + ": " +
                           std::string(what));
  };
  Reader r{bytes};
  if (r.u(1) != kFormat) return corrupt("unknown format");
  const uint64_t flags = r.u(1);
  if ((flags & ~uint64_t{kEnabled}) != 0) return corrupt("unknown flags");
  model::JobTiming t;
  t.id = std::string(job_id);
  t.enabled = (flags & kEnabled) != 0;
  t.version = static_cast<int64_t>(r.u(8));
  const auto seconds = static_cast<int64_t>(r.u(8));
  const uint64_t nanos = r.u(4);
  if (nanos >= 1'000'000'000) return corrupt("created_at nanoseconds out of range");
  t.created_at = absl::FromUnixSeconds(seconds) + absl::Nanoseconds(static_cast<int64_t>(nanos));
  t.jitter = absl::Nanoseconds(static_cast<int64_t>(r.u(8)));
  t.schedule = r.str();
  t.timezone = r.str();
  if (!r.ok) return corrupt("truncated");
  if (!r.rest.empty()) return corrupt("trailing bytes");
  return t;
}

}  // namespace chronos::store
