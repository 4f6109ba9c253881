#include "sched/due_queue.h"

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chronos::sched {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
absl::Time at(int64_t s) { return kT0 + absl::Seconds(s); }

TEST(DueQueue, EmptyHasNoEarliest) {
  DueQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.earliest());
  EXPECT_TRUE(q.pop_due(at(100)).empty());
}

TEST(DueQueue, EarliestIsTheMinimum) {
  DueQueue q;
  q.upsert("b", at(20));
  q.upsert("a", at(10));
  q.upsert("c", at(30));
  EXPECT_EQ(q.earliest(), at(10));
  EXPECT_EQ(q.size(), 3u);
}

TEST(DueQueue, PopDueReturnsOnlyEntriesAtOrBeforeNowInOrder) {
  DueQueue q;
  q.upsert("c", at(30));
  q.upsert("a", at(10));
  q.upsert("b", at(20));
  std::vector<DueQueue::Entry> due = q.pop_due(at(20));
  EXPECT_EQ(due, (std::vector<DueQueue::Entry>{{"a", at(10)}, {"b", at(20)}}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.earliest(), at(30));
  EXPECT_FALSE(q.contains("a"));
}

TEST(DueQueue, PopDueNeverReturnsAnEntryOneNanosecondEarly) {
  DueQueue q;
  q.upsert("a", at(10));
  EXPECT_TRUE(q.pop_due(at(10) - absl::Nanoseconds(1)).empty());
  EXPECT_EQ(q.pop_due(at(10)).size(), 1u);
}

TEST(DueQueue, TiesPopInJobIdOrder) {
  DueQueue q;
  for (const char* id : {"d", "b", "a", "c"}) q.upsert(id, at(5));
  std::vector<DueQueue::Entry> due = q.pop_due(at(5));
  ASSERT_EQ(due.size(), 4u);
  EXPECT_EQ(due[0].job_id, "a");
  EXPECT_EQ(due[3].job_id, "d");
}

TEST(DueQueue, PopDueRespectsMax) {
  DueQueue q;
  for (int i = 0; i < 10; ++i) q.upsert("j" + std::to_string(i), at(i));
  EXPECT_EQ(q.pop_due(at(100), 3).size(), 3u);
  EXPECT_EQ(q.size(), 7u);
  EXPECT_EQ(q.earliest(), at(3));
}

TEST(DueQueue, UpsertMovesAnExistingJobEarlierOrLater) {
  DueQueue q;
  q.upsert("a", at(10));
  q.upsert("b", at(20));
  q.upsert("b", at(5));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.earliest(), at(5));
  EXPECT_EQ(q.fire_time("b"), at(5));
  q.upsert("b", at(50));
  EXPECT_EQ(q.earliest(), at(10));
  EXPECT_EQ(q.fire_time("b"), at(50));
}

TEST(DueQueue, RemoveDropsTheJob) {
  DueQueue q;
  q.upsert("a", at(10));
  q.upsert("b", at(20));
  EXPECT_TRUE(q.remove("a"));
  EXPECT_FALSE(q.remove("a"));
  EXPECT_FALSE(q.contains("a"));
  EXPECT_EQ(q.earliest(), at(20));
  EXPECT_EQ(q.size(), 1u);
}

TEST(DueQueue, RemovedSlotIsReusedForANewJob) {
  DueQueue q;
  q.upsert("a-long-job-id-that-is-not-sso-0000000", at(10));
  q.remove("a-long-job-id-that-is-not-sso-0000000");
  q.upsert("short", at(3));
  q.upsert("another-long-id-that-is-not-sso-11111", at(4));
  EXPECT_EQ(q.pop_due(at(10)),
            (std::vector<DueQueue::Entry>{{"short", at(3)},
                                          {"another-long-id-that-is-not-sso-11111", at(4)}}));
}

TEST(DueQueue, InfiniteTimesSortAtTheEnds) {
  DueQueue q;
  q.upsert("future", absl::InfiniteFuture());
  q.upsert("now", at(0));
  q.upsert("past", absl::InfinitePast());
  std::vector<DueQueue::Entry> due = q.pop_due(at(0));
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].job_id, "past");
  EXPECT_EQ(due[1].job_id, "now");
  EXPECT_EQ(q.size(), 1u);
}

TEST(DueQueue, ClearEmptiesEverything) {
  DueQueue q;
  q.upsert("a", at(1));
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.contains("a"));
  q.upsert("a", at(2));
  EXPECT_EQ(q.earliest(), at(2));
}

// Random inserts, moves, removes and pops against a std::map model.
TEST(DueQueue, MatchesAReferenceModelUnderRandomOperations) {
  const uint64_t seed = 0xd0e'0001;
  std::mt19937_64 rng(seed);
  DueQueue q;
  std::map<std::string, absl::Time> model;
  std::uniform_int_distribution<int> op(0, 9);
  std::uniform_int_distribution<int> id(0, 4999);
  std::uniform_int_distribution<int64_t> secs(0, 100'000);
  absl::Time now = kT0;
  for (int i = 0; i < 200'000; ++i) {
    const std::string job = "job-" + std::to_string(id(rng));
    const int o = op(rng);
    if (o < 6) {
      const absl::Time t = at(secs(rng));
      q.upsert(job, t);
      model[job] = t;
    } else if (o < 8) {
      EXPECT_EQ(q.remove(job), model.erase(job) == 1) << "seed " << seed;
    } else {
      now += absl::Seconds(secs(rng) / 50);
      std::vector<DueQueue::Entry> due = q.pop_due(now);
      std::vector<DueQueue::Entry> want;
      for (auto it = model.begin(); it != model.end();) {
        if (it->second <= now) {
          want.push_back({it->first, it->second});
          it = model.erase(it);
        } else {
          ++it;
        }
      }
      std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) {
        return a.fire_time != b.fire_time ? a.fire_time < b.fire_time : a.job_id < b.job_id;
      });
      ASSERT_EQ(due, want) << "seed " << seed << " step " << i;
    }
    ASSERT_EQ(q.size(), model.size());
    if (i % 997 == 0 && !model.empty()) {
      absl::Time min = absl::InfiniteFuture();
      for (const auto& [k, v] : model) min = std::min(min, v);
      ASSERT_EQ(q.earliest(), min) << "seed " << seed;
    }
  }
}

TEST(DueQueue, ManyEntriesPopInNonDecreasingOrder) {
  DueQueue q;
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> ms(0, 86'400'000);
  for (int i = 0; i < 100'000; ++i) {
    q.upsert("job-" + std::to_string(i), kT0 + absl::Milliseconds(ms(rng)));
  }
  std::vector<DueQueue::Entry> all = q.pop_due(kT0 + absl::Hours(25));
  ASSERT_EQ(all.size(), 100'000u);
  for (size_t i = 1; i < all.size(); ++i) ASSERT_LE(all[i - 1].fire_time, all[i].fire_time);
  EXPECT_TRUE(q.empty());
}

TEST(DueQueue, MemoryPerJobIsBounded) {
  // Fixed parts: one 16-byte heap node + one slot (std::string + position).
  EXPECT_LE(DueQueue::kFixedBytesPerJob(), 64u);
  RecordProperty("fixed_bytes_per_job", static_cast<int>(DueQueue::kFixedBytesPerJob()));
  // Plus a 36-char UUID's heap buffer (~48 B) and a hash-map node (~40-56 B
  // + bucket pointer): ~150-170 B per job in all, far under 1 KiB.
  EXPECT_LE(DueQueue::kFixedBytesPerJob() + 48 + 64, 256u);
}

}  // namespace
}  // namespace chronos::sched
