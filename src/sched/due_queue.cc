#include "sched/due_queue.h"

#include <algorithm>
#include <utility>

#include "base/check.h"

namespace chronos::sched {

bool DueQueue::less(const Node& a, const Node& b) const {
  if (a.fire_ns != b.fire_ns) return a.fire_ns < b.fire_ns;
  return slots_[a.slot].id < slots_[b.slot].id;
}

void DueQueue::place(uint32_t pos, Node n) {
  heap_[pos] = n;
  slots_[n.slot].pos = pos;
}

void DueQueue::sift_up(uint32_t pos) {
  Node n = heap_[pos];
  while (pos > 0) {
    uint32_t parent = (pos - 1) / 2;
    if (!less(n, heap_[parent])) break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, n);
}

void DueQueue::sift_down(uint32_t pos) {
  const uint32_t size = static_cast<uint32_t>(heap_.size());
  Node n = heap_[pos];
  while (true) {
    uint32_t child = 2 * pos + 1;
    if (child >= size) break;
    if (child + 1 < size && less(heap_[child + 1], heap_[child])) ++child;
    if (!less(heap_[child], n)) break;
    place(pos, heap_[child]);
    pos = child;
  }
  place(pos, n);
}

void DueQueue::upsert(std::string_view job_id, absl::Time fire_time) {
  const int64_t fire_ns = absl::ToUnixNanos(fire_time);
  auto it = index_.find(job_id);
  if (it != index_.end()) {
    const uint32_t pos = slots_[it->second].pos;
    const int64_t old = heap_[pos].fire_ns;
    heap_[pos].fire_ns = fire_ns;
    if (fire_ns < old) {
      sift_up(pos);
    } else {
      sift_down(pos);
    }
    return;
  }
  CHRONOS_CHECK(heap_.size() < kNoPos) << "due queue full";
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot].id.assign(job_id);
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(Slot{std::string(job_id), kNoPos});
  }
  index_.emplace(std::string_view(slots_[slot].id), slot);
  heap_.push_back(Node{fire_ns, slot});
  sift_up(static_cast<uint32_t>(heap_.size() - 1));
}

void DueQueue::remove_at(uint32_t pos) {
  const uint32_t slot = heap_[pos].slot;
  index_.erase(std::string_view(slots_[slot].id));
  slots_[slot].pos = kNoPos;
  std::string().swap(slots_[slot].id);  // release the id's buffer
  free_slots_.push_back(slot);

  const uint32_t last = static_cast<uint32_t>(heap_.size() - 1);
  if (pos != last) {
    const Node moved = heap_[last];
    heap_.pop_back();
    place(pos, moved);
    // The moved node may belong above or below its new place.
    if (pos > 0 && less(heap_[pos], heap_[(pos - 1) / 2])) {
      sift_up(pos);
    } else {
      sift_down(pos);
    }
  } else {
    heap_.pop_back();
  }
}

bool DueQueue::remove(std::string_view job_id) {
  auto it = index_.find(job_id);
  if (it == index_.end()) return false;
  remove_at(slots_[it->second].pos);
  return true;
}

bool DueQueue::contains(std::string_view job_id) const { return index_.contains(job_id); }

std::optional<absl::Time> DueQueue::fire_time(std::string_view job_id) const {
  auto it = index_.find(job_id);
  if (it == index_.end()) return std::nullopt;
  return absl::FromUnixNanos(heap_[slots_[it->second].pos].fire_ns);
}

std::optional<absl::Time> DueQueue::earliest() const {
  if (heap_.empty()) return std::nullopt;
  return absl::FromUnixNanos(heap_.front().fire_ns);
}

std::vector<DueQueue::Entry> DueQueue::pop_due(absl::Time now, size_t max) {
  const int64_t now_ns = absl::ToUnixNanos(now);
  std::vector<Entry> out;
  while (!heap_.empty() && out.size() < max && heap_.front().fire_ns <= now_ns) {
    const Node top = heap_.front();
    out.push_back(Entry{slots_[top.slot].id, absl::FromUnixNanos(top.fire_ns)});
    remove_at(0);
  }
  return out;
}

void DueQueue::reserve(size_t n) {
  heap_.reserve(n);
  index_.reserve(n);
}

void DueQueue::clear() {
  heap_.clear();
  slots_.clear();
  free_slots_.clear();
  index_.clear();
}

}  // namespace chronos::sched
