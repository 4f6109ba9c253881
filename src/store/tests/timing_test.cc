// Timing records (c/<job_id>): the codec, apply keeping them in step with
// the jobs, and their rebuild from an image of a build that had none.

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "model/command.h"
#include "store/keys.h"
#include "store/snapshot_image.h"
#include "store/store.h"
#include "store/tests/store_fixture.h"
#include "store/timing_record.h"

namespace chronos::store {
namespace {

using model::DeleteJob;
using model::Job;
using model::JobTiming;
using model::PutJob;
using model::ScheduleAdvance;
using model::StartExecutions;
using test_support::kT0;
using test_support::make_job;
using test_support::next_version;
using test_support::StoreTest;
using test_support::TempDir;

JobTiming sample() {
  JobTiming t;
  t.id = "job-1";
  t.version = 7;
  t.enabled = false;
  t.schedule = "*/5 * * * * *";
  t.timezone = "Europe/Berlin";
  t.created_at = absl::FromUnixNanos(-1);  // before 1970, not a whole second
  t.jitter = absl::Milliseconds(1500);
  return t;
}

TEST(TimingRecordTest, RoundTripsEveryField) {
  const JobTiming t = sample();
  EXPECT_EQ(*decode_timing_record("job-1", encode_timing_record(t)), t);
  JobTiming far = t;
  far.enabled = true;
  far.created_at = absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59), absl::UTCTimeZone()) +
                   absl::Nanoseconds(999'999'999);
  far.schedule.clear();
  EXPECT_EQ(*decode_timing_record("job-1", encode_timing_record(far)), far);
}

TEST(TimingRecordTest, EveryTruncationAndAnyTrailingByteIsCorruptNotACrash) {
  const std::string bytes = encode_timing_record(sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    Result<JobTiming> r = decode_timing_record("job-1", bytes.substr(0, n));
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_EQ(r.error().code, ErrorCode::kInternal);
    EXPECT_NE(r.error().message.find("job-1"), std::string::npos);
  }
  EXPECT_FALSE(decode_timing_record("job-1", bytes + "x").ok());
  std::string bad_format = bytes;
  bad_format[0] = 2;
  EXPECT_FALSE(decode_timing_record("job-1", bad_format).ok());
  std::string bad_flags = bytes;
  bad_flags[1] = 2;
  EXPECT_FALSE(decode_timing_record("job-1", bad_flags).ok());
}

// Every job's timing and state as for_each_timing gives them.
std::vector<std::pair<JobTiming, ScheduleState>> timings(const Store& store) {
  std::vector<std::pair<JobTiming, ScheduleState>> out;
  Status st = store.for_each_timing("", [&](const JobTiming& t, const ScheduleState& s) {
    out.emplace_back(t, s);
    return true;
  });
  CHRONOS_CHECK(st.ok()) << st.error().message;
  return out;
}

// The same derived from the jobs themselves (for_each_job).
std::vector<std::pair<JobTiming, ScheduleState>> timings_of_jobs(const Store& store) {
  std::vector<std::pair<JobTiming, ScheduleState>> out;
  Status st = store.for_each_job([&](const Job& j, const ScheduleState& s) {
    out.emplace_back(model::timing_of(j), s);
    return true;
  });
  CHRONOS_CHECK(st.ok()) << st.error().message;
  return out;
}

class TimingStoreTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    Job a = make_job("job-a", "a");
    create(a);
    create(make_job("job-b", "b"));
    create(make_job("job-c", "c"));
    Job changed = next_version(a);
    changed.schedule = "0 0 * * *";
    changed.timezone = "Asia/Tokyo";
    changed.jitter = absl::Seconds(30);
    changed.enabled = false;
    EXPECT_TRUE(apply_one(PutJob{changed, a.version}).ok());
    EXPECT_TRUE(apply_one(DeleteJob{"job-b", 0}).ok());
    EXPECT_TRUE(apply_one(StartExecutions{{test_support::make_exec("job-c", 1)},
                                          {ScheduleAdvance{"job-c", kT0}}})
                    .ok());
  }

  // The store's image with its c/ records and timing index taken out, or
  // replaced by `stale` ones: what a build without them (or one that
  // applied entries without keeping them) leaves.
  std::string image_without_timing(bool stale) const {
    Result<std::string> image = store_->serialize_snapshot();
    CHRONOS_CHECK(image.ok());
    Result<SnapshotImage> parsed = parse_snapshot_image(*image);
    CHRONOS_CHECK(parsed.ok());
    SnapshotImageWriter writer(parsed->applied_index);
    for (const auto& [k, v] : parsed->pairs) {
      if (k == keys::kTimingIndex) {
        if (stale) writer.add(k, keys::encode_u64(parsed->applied_index - 1));
        continue;
      }
      if (!k.starts_with(keys::kTimingPrefix)) {
        writer.add(k, v);
      } else if (stale) {
        JobTiming wrong = *decode_timing_record("x", v);
        wrong.schedule = "@yearly";
        writer.add(k, encode_timing_record(wrong));
      }
    }
    return std::move(writer).finish();
  }
};

TEST_F(TimingStoreTest, ApplyKeepsOneRecordPerJobInStepWithCreateUpdateAndDelete) {
  const auto got = timings(*store_);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got, timings_of_jobs(*store_));
  EXPECT_EQ(got[0].first.schedule, "0 0 * * *");
  EXPECT_FALSE(got[0].first.enabled);
  EXPECT_EQ(got[0].first.version, 2);
  EXPECT_EQ(got[1].second.last_scheduled, kT0);
}

TEST_F(TimingStoreTest, RestoreOfAnImageWithoutRecordsRebuildsThem) {
  for (bool stale : {false, true}) {
    SCOPED_TRACE(stale ? "stale records" : "no records");
    TempDir other;
    std::unique_ptr<Store> target = open_store(other.path());
    ASSERT_TRUE(target->restore_snapshot(image_without_timing(stale)).ok());
    EXPECT_EQ(timings(*target), timings_of_jobs(*store_));
    // And a later image of it carries them, current.
    TempDir third;
    std::unique_ptr<Store> again = open_store(third.path());
    ASSERT_TRUE(again->restore_snapshot(*target->serialize_snapshot()).ok());
    EXPECT_EQ(timings(*again), timings_of_jobs(*store_));
  }
}

TEST_F(TimingStoreTest, ImportOfABackupWithoutRecordsRebuildsThem) {
  TempDir other;
  std::unique_ptr<Store> target = open_store(other.path());
  ASSERT_TRUE(target->import_backup(image_without_timing(/*stale=*/true)).ok());
  EXPECT_EQ(timings(*target), timings_of_jobs(*store_));
  // Reopened (timing index 0 = applied index 0): kept, not rebuilt wrong.
  target.reset();
  target = open_store(other.path());
  EXPECT_EQ(timings(*target), timings_of_jobs(*store_));
}

// The count is stored with the applied index (keys::kJobCount) so that an
// open does not count a million name keys; every way a store gets its
// jobs keeps it right across a reopen.
TEST_F(TimingStoreTest, TheJobCountIsKeptAcrossReopenRestoreAndImport) {
  ASSERT_EQ(store_->job_count(), 2u);
  const std::string image = *store_->serialize_snapshot();
  store_.reset();
  store_ = open_store(dir_.path());
  EXPECT_EQ(store_->job_count(), 2u);
  ASSERT_TRUE(apply_one(DeleteJob{"job-a", 0}).ok());
  store_.reset();
  store_ = open_store(dir_.path());
  EXPECT_EQ(store_->job_count(), 1u);

  TempDir restored;
  std::unique_ptr<Store> target = open_store(restored.path());
  ASSERT_TRUE(target->restore_snapshot(image).ok());
  target.reset();
  target = open_store(restored.path());
  EXPECT_EQ(target->job_count(), 2u);

  TempDir imported;
  target = open_store(imported.path());
  ASSERT_TRUE(target->import_backup(image).ok());
  target.reset();
  target = open_store(imported.path());
  EXPECT_EQ(target->job_count(), 2u);
}

}  // namespace
}  // namespace chronos::store
