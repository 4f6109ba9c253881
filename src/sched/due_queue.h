#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/time/time.h"

namespace chronos::sched {

// The leader's due queue (DESIGN "Key algorithms"): at most one entry per job,
// keyed by its next fire time. An indexed binary min-heap: each job id is
// interned once into a slot (a stable std::deque element, reused through a
// free list), the heap holds 16-byte {fire_ns, slot} nodes and every slot
// knows its heap position, so insert / update / remove are O(log n) with no
// lazy deletion and no garbage. Per job: one heap node (16 B), one slot
// (std::string + position, 40 B, plus the id's heap buffer when it exceeds
// the SSO size, e.g. 48 B for a 36-char UUID) and one hash-map node
// (string_view key, ~40-56 B) — about 150-170 B per job, well under the
// 1 KiB/job budget (measured in due_queue_test: MemoryPerJobIsBounded).
//
// Times are stored as int64 Unix nanoseconds (saturating: InfinitePast and
// InfiniteFuture sort first and last), exact for the cron horizon (2200).
// Ties pop in job id order, so pop order is deterministic.
//
// Ownership: a plain value owned by the scheduler driver. Not thread-safe:
// confine it to the scheduler thread.
class DueQueue {
 public:
  struct Entry {
    std::string job_id;
    absl::Time fire_time;
    bool operator==(const Entry&) const = default;
  };

  // Inserts the job or moves it to `fire_time`. O(log n).
  void upsert(std::string_view job_id, absl::Time fire_time);
  // Removes the job; false when it was not queued. O(log n).
  bool remove(std::string_view job_id);
  bool contains(std::string_view job_id) const;
  std::optional<absl::Time> fire_time(std::string_view job_id) const;

  // The earliest fire time (for the driver's wait_until), nullopt when empty.
  std::optional<absl::Time> earliest() const;
  // Removes and returns every entry with fire_time <= now (at most `max`),
  // earliest first, ties by job id. O(k log n).
  std::vector<Entry> pop_due(absl::Time now, size_t max = std::numeric_limits<size_t>::max());

  // Room for `n` jobs without rehashing or regrowing (a rebuild of a
  // million-job queue spent a fifth of its time doing either).
  void reserve(size_t n);

  size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }
  void clear();

  // Bytes of the fixed-size parts per queued job (heap node + slot), for the
  // memory budget; excludes id buffers and the hash map's nodes.
  static constexpr size_t kFixedBytesPerJob();

 private:
  static constexpr uint32_t kNoPos = std::numeric_limits<uint32_t>::max();
  struct Node {
    int64_t fire_ns;
    uint32_t slot;
  };
  struct Slot {
    std::string id;
    uint32_t pos = kNoPos;  // index in heap_, kNoPos when the slot is free
  };

  bool less(const Node& a, const Node& b) const;
  void place(uint32_t pos, Node n);
  void sift_up(uint32_t pos);
  void sift_down(uint32_t pos);
  void remove_at(uint32_t pos);

  std::vector<Node> heap_;
  std::deque<Slot> slots_;  // stable addresses: index_ keys view into them
  std::vector<uint32_t> free_slots_;
  std::unordered_map<std::string_view, uint32_t> index_;  // job id -> slot
};

constexpr size_t DueQueue::kFixedBytesPerJob() { return sizeof(Node) + sizeof(Slot); }

}  // namespace chronos::sched
