// Store::import_backup: a backup image seeds an empty store for a new
// cluster with all of the data and none of the old cluster's meta.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/command.h"
#include "model/execution.h"
#include "store/keys.h"
#include "store/snapshot_image.h"
#include "store/store.h"
#include "store/tests/store_fixture.h"

namespace chronos::store {
namespace {

using model::Execution;
using model::ExecutionResult;
using model::ExecutionStatus;
using model::FinishExecutions;
using model::Job;
using model::PutJob;
using model::ScheduleAdvance;
using model::StartExecutions;
using test_support::exec_id;
using test_support::kT0;
using test_support::make_job;
using test_support::next_version;
using test_support::StoreTest;

// Executions of the backed-up cluster ran on its node "old-n1".
Execution make_exec(const std::string& job_id, int n) {
  return test_support::make_exec(job_id, n, ExecutionStatus::kRunning, "old-n1");
}

// The image's pairs as owned strings, for comparing keyspaces.
std::vector<std::pair<std::string, std::string>> pairs_of(std::string_view image) {
  Result<SnapshotImage> parsed = parse_snapshot_image(image);
  CHRONOS_CHECK(parsed.ok()) << parsed.error().message;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : parsed->pairs) out.emplace_back(k, v);
  return out;
}

// A source store with jobs (one at version 3), executions (one finished,
// one still in flight) and schedule state, after several log entries.
class BackupTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    Job a = make_job("job-a", "a");
    create(a);
    for (int i = 0; i < 2; ++i) {
      Job next = next_version(a);
      next.description = "update " + std::to_string(i);
      ASSERT_TRUE(apply_one(PutJob{next, a.version}).ok());
      a = next;
    }
    create(make_job("job-b", "b", "ops"));
    const Execution done = make_exec("job-a", 1);
    expect_all_ok(
        apply_one(StartExecutions{{done, make_exec("job-b", 2)}, {ScheduleAdvance{"job-a", kT0}}}));
    expect_all_ok(apply_one(
        FinishExecutions{{ExecutionResult{"job-a", done.id, ExecutionStatus::kSuccess, 1, 200, "ok",
                                          "", "old-n1", done.started_at + absl::Seconds(1)}}}));
    image_ = *store_->serialize_snapshot();
    target_ = open_store(dir_.path("target"));
  }

  static void expect_all_ok(const Result<CommandEffect>& r) {
    ASSERT_TRUE(r.ok()) << r.error().message;
    for (const Status& item : std::get<ItemResults>(*r).items) {
      EXPECT_TRUE(item.ok()) << item.error().message;
    }
  }

  std::string image_;
  std::unique_ptr<Store> target_;
};

TEST_F(BackupTest, ImportKeepsJobsVersionsExecutionsAndScheduleState) {
  ASSERT_TRUE(target_->import_backup(image_).ok());

  EXPECT_EQ(target_->job_count(), 2u);
  for (const char* id : {"job-a", "job-b"}) {
    EXPECT_EQ(*target_->get_job(id), *store_->get_job(id)) << id;
    EXPECT_EQ(*target_->get_schedule_state(id), *store_->get_schedule_state(id)) << id;
    EXPECT_EQ(target_->list_executions({.job_id = id})->executions,
              store_->list_executions({.job_id = id})->executions)
        << id;
  }
  EXPECT_EQ(*target_->find_job("ops", "b"), *store_->get_job("job-b"));
  std::vector<VersionInfo> versions = *target_->list_versions("job-a", 0, 0);
  ASSERT_EQ(versions.size(), 3u);
  for (int64_t v = 1; v <= 3; ++v) {
    EXPECT_EQ(*target_->get_job_version("job-a", v), *store_->get_job_version("job-a", v));
  }
  EXPECT_EQ(*target_->list_in_flight("", 100), *store_->list_in_flight("", 100));
  ASSERT_EQ(target_->list_in_flight("", 100)->size(), 1u);
}

TEST_F(BackupTest, ImportedKeyspaceIsTheImageMinusMeta) {
  ASSERT_TRUE(target_->import_backup(image_).ok());
  const std::string after = *target_->serialize_snapshot();
  std::vector<std::pair<std::string, std::string>> expected;
  for (auto& [k, v] : pairs_of(image_)) {
    if (!k.starts_with("m/")) expected.emplace_back(k, v);
  }
  expected.emplace_back(std::string(keys::kAppliedIndex), keys::encode_u64(0));
  expected.emplace_back(std::string(keys::kJobCount), keys::encode_u64(0) + keys::encode_u64(2));
  expected.emplace_back(std::string(keys::kSchemaVersion),
                        keys::encode_u64(keys::kCurrentSchemaVersion));
  expected.emplace_back(std::string(keys::kTimingIndex), keys::encode_u64(0));
  std::sort(expected.begin(), expected.end());  // an image is in key order
  EXPECT_EQ(pairs_of(after), expected);
}

TEST_F(BackupTest, AppliedIndexIsZeroAfterImportAndTheNewLogAppliesFromOne) {
  ASSERT_GT(store_->applied_index(), 0u);
  ASSERT_TRUE(target_->import_backup(image_).ok());
  EXPECT_EQ(target_->applied_index(), 0u);
  EXPECT_EQ(*Store::snapshot_applied_index(*target_->serialize_snapshot()), 0u);

  target_.reset();
  target_ = open_store(dir_.path("target"));
  EXPECT_EQ(target_->applied_index(), 0u);
  EXPECT_EQ(target_->job_count(), 2u);
  Result<ApplyOutcome> first =
      target_->apply(1, test_support::batch_of({PutJob{make_job("job-c", "c"), 0}}));
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->skipped);
  EXPECT_EQ(target_->applied_index(), 1u);
  EXPECT_EQ(target_->job_count(), 3u);
}

TEST_F(BackupTest, OldClusterRegistryAndOtherMetaAreDropped) {
  // The old cluster's node registry (m/member/<u64 raft id>) and any other
  // m/ key, spliced into an otherwise genuine image.
  SnapshotImageWriter writer(*Store::snapshot_applied_index(image_));
  std::vector<std::pair<std::string, std::string>> pairs = pairs_of(image_);
  pairs.emplace_back(std::string("m/member/") + keys::encode_u64(7), "old member record");
  pairs.emplace_back("m/some_future_meta", "x");
  std::sort(pairs.begin(), pairs.end());
  for (const auto& [k, v] : pairs) writer.add(k, v);
  const std::string image = std::move(writer).finish();

  ASSERT_TRUE(target_->import_backup(image).ok());
  std::vector<std::string> meta;
  for (const auto& [k, v] : pairs_of(*target_->serialize_snapshot())) {
    if (k.starts_with("m/")) meta.push_back(k);
  }
  EXPECT_EQ(meta, (std::vector<std::string>{std::string(keys::kAppliedIndex),
                                            std::string(keys::kJobCount),
                                            std::string(keys::kSchemaVersion),
                                            std::string(keys::kTimingIndex)}));
  EXPECT_EQ(*target_->get_job("job-a"), *store_->get_job("job-a"));
}

TEST_F(BackupTest, CorruptOrTruncatedImageIsRefusedAndChangesNothing) {
  const std::string empty_state = *target_->serialize_snapshot();
  std::vector<std::string> bad;
  for (size_t pos : {size_t{0}, size_t{5}, size_t{12}, image_.size() / 2, image_.size() - 1}) {
    std::string flipped = image_;
    flipped[pos] = static_cast<char>(flipped[pos] ^ 0x01);
    bad.push_back(std::move(flipped));
  }
  for (size_t len : {size_t{0}, size_t{3}, size_t{16}, image_.size() / 2, image_.size() - 1}) {
    bad.push_back(image_.substr(0, len));
  }
  for (const std::string& image : bad) {
    Status s = target_->import_backup(image);
    ASSERT_FALSE(s.ok()) << "image of " << image.size() << " bytes";
    EXPECT_EQ(s.error().code, ErrorCode::kValidation);
    EXPECT_EQ(s.error().field, "snapshot");
    EXPECT_EQ(*target_->serialize_snapshot(), empty_state);
    EXPECT_EQ(target_->job_count(), 0u);
  }
  // Still empty, so a good image is accepted afterwards.
  EXPECT_TRUE(target_->import_backup(image_).ok());
}

TEST_F(BackupTest, StoreWithDataIsRefusedAndUnchanged) {
  const Job mine = make_job("t-1", "mine");
  ASSERT_TRUE(target_->apply(4, test_support::batch_of({PutJob{mine, 0}})).ok());
  const std::string before = *target_->serialize_snapshot();

  Status s = target_->import_backup(image_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.error().field, "store");
  EXPECT_EQ(*target_->serialize_snapshot(), before);
  EXPECT_EQ(target_->applied_index(), 4u);
  EXPECT_EQ(target_->job_count(), 1u);
  EXPECT_EQ(target_->get_job("job-a").error().code, ErrorCode::kNotFound);
}

TEST_F(BackupTest, StoreThatAppliedOnlyNoopsIsNotEmpty) {
  ASSERT_TRUE(target_->apply(1, test_support::batch_of({model::Noop{}})).ok());
  Status s = target_->import_backup(image_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(target_->applied_index(), 1u);
}

TEST_F(BackupTest, SecondImportIntoTheSameStoreIsRefused) {
  ASSERT_TRUE(target_->import_backup(image_).ok());
  const std::string before = *target_->serialize_snapshot();
  Status s = target_->import_backup(image_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(*target_->serialize_snapshot(), before);
}

}  // namespace
}  // namespace chronos::store
