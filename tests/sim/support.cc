#include "sim/support.h"

#include "fmt/format.h"

namespace chronos::sim {

std::string IdSource::execution_id(absl::Time now) {
  int64_t ms = absl::ToUnixMillis(now);
  if (ms <= last_ms_) {
    ms = last_ms_;
    ++counter_;
  } else {
    last_ms_ = ms;
    counter_ = 0;
  }
  const uint64_t tail = rng_();
  return fmt::format("{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}", static_cast<uint64_t>(ms) >> 16,
                     static_cast<uint64_t>(ms) & 0xffff, counter_ & 0xfff,
                     0x8000 | ((tail >> 48) & 0x3fff), tail & 0xffffffffffffULL);
}

std::string IdSource::job_id() {
  const uint64_t a = rng_();
  const uint64_t b = rng_();
  return fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                     0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffffULL);
}

void EventLog::add(absl::Time at, std::string_view line) {
  lines_.push_back(fmt::format("[{:>9}] {}", stamp(at), line));
  times_.push_back(at);
}

std::string EventLog::window(absl::Time from, absl::Time to,
                             const std::function<bool(std::string_view)>& keep, size_t n) const {
  std::string out;
  size_t kept = 0;
  for (size_t i = 0; i < lines_.size() && kept < n; ++i) {
    if (times_[i] < from || times_[i] > to || !keep(lines_[i])) continue;
    out += lines_[i] + "\n";
    ++kept;
  }
  return out;
}

std::string EventLog::stamp(absl::Time at) const {
  return fmt::format("{:.3f}s", absl::ToDoubleSeconds(at - epoch_));
}

std::string EventLog::tail(size_t n) const {
  std::string out;
  size_t from = lines_.size() > n ? lines_.size() - n : 0;
  for (size_t i = from; i < lines_.size(); ++i) out += lines_[i] + "\n";
  return out;
}

std::string EventLog::grep(std::string_view needle, size_t n) const {
  std::vector<const std::string*> hits;
  for (const auto& l : lines_) {
    if (l.find(needle) != std::string::npos) hits.push_back(&l);
  }
  std::string out;
  size_t from = hits.size() > n ? hits.size() - n : 0;
  for (size_t i = from; i < hits.size(); ++i) out += *hits[i] + "\n";
  return out;
}

std::string EventLog::all() const { return tail(lines_.size()); }

std::string_view short_id(std::string_view id) {
  return id.size() > 6 ? id.substr(id.size() - 6) : id;
}

}  // namespace chronos::sim
