#include "store/timing_record.h"

#include <cstdint>

#include "base/bytes.h"

namespace chronos::store {
namespace {

constexpr uint8_t kFormat = 1;
constexpr uint8_t kEnabled = 1;

bool read_string(ByteReader& r, std::string* out) {
  uint32_t n = 0;
  std::string_view bytes;
  if (!r.u32_be(&n) || !r.bytes(n, &bytes)) return false;
  out->assign(bytes);
  return true;
}

}  // namespace

std::string encode_timing_record(const model::JobTiming& t) {
  std::string out;
  out.reserve(38 + t.schedule.size() + t.timezone.size());
  out.push_back(static_cast<char>(kFormat));
  out.push_back(static_cast<char>(t.enabled ? kEnabled : 0));
  put_u64_be(out, static_cast<uint64_t>(t.version));
  const int64_t seconds = absl::ToUnixSeconds(t.created_at);
  put_u64_be(out, static_cast<uint64_t>(seconds));
  put_u32_be(out, static_cast<uint32_t>(
                      absl::ToInt64Nanoseconds(t.created_at - absl::FromUnixSeconds(seconds))));
  put_u64_be(out, static_cast<uint64_t>(absl::ToInt64Nanoseconds(t.jitter)));
  put_u32_be(out, static_cast<uint32_t>(t.schedule.size()));
  out += t.schedule;
  put_u32_be(out, static_cast<uint32_t>(t.timezone.size()));
  out += t.timezone;
  return out;
}

Result<model::JobTiming> decode_timing_record(std::string_view job_id, std::string_view bytes) {
  auto corrupt = [&](std::string_view what) {
    return Error::internal("corrupt timing record of job " + std::string(job_id) + ": " +
                           std::string(what));
  };
  ByteReader r(bytes);
  std::string_view head;
  if (!r.bytes(2, &head)) return corrupt("truncated");
  if (static_cast<uint8_t>(head[0]) != kFormat) return corrupt("unknown format");
  const auto flags = static_cast<uint8_t>(head[1]);
  if ((flags & ~kEnabled) != 0) return corrupt("unknown flags");
  model::JobTiming t;
  t.id = std::string(job_id);
  t.enabled = (flags & kEnabled) != 0;
  uint64_t version = 0;
  uint64_t seconds = 0;
  uint32_t nanos = 0;
  uint64_t jitter = 0;
  if (!r.u64_be(&version) || !r.u64_be(&seconds) || !r.u32_be(&nanos) || !r.u64_be(&jitter) ||
      !read_string(r, &t.schedule) || !read_string(r, &t.timezone)) {
    return corrupt("truncated");
  }
  if (r.remaining() != 0) return corrupt("trailing bytes");
  if (nanos >= 1'000'000'000) return corrupt("created_at nanoseconds out of range");
  t.version = static_cast<int64_t>(version);
  t.created_at = absl::FromUnixSeconds(static_cast<int64_t>(seconds)) + absl::Nanoseconds(nanos);
  t.jitter = absl::Nanoseconds(static_cast<int64_t>(jitter));
  return t;
}

}  // namespace chronos::store
