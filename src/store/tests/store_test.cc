#include "store/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "rocksdb/db.h"
#include "store/keys.h"
#include "store/snapshot_image.h"
#include "store/tests/store_fixture.h"

namespace chronos::store {
namespace {

using model::CommandBatch;
using model::DeleteJob;
using model::Job;
using model::Noop;
using model::PutJob;
using test_support::batch_of;
using test_support::make_job;
using test_support::next_version;
using test_support::StoreTest;
using test_support::TempDir;

ErrorCode code_of(const Result<CommandEffect>& r) { return r.error().code; }

std::vector<std::string> names_of(const ListPage& page) {
  std::vector<std::string> out;
  for (const Job& job : page.jobs) out.push_back(job.namespace_ + "/" + job.name);
  return out;
}

// --- node registry ---

TEST_F(StoreTest, MemberRecordsAreListedInRaftIdOrderReplacedAndRemoved) {
  ASSERT_TRUE(apply_one(model::PutMember{9, "n9", "127.0.0.1:7009", "127.0.0.1:8089"}).ok());
  ASSERT_TRUE(apply_one(model::PutMember{2, "n2", "127.0.0.1:7002", "127.0.0.1:8082"}).ok());
  ASSERT_TRUE(apply_one(model::PutMember{9, "n9", "127.0.0.1:7009", "10.0.0.9:8089"}).ok());
  std::vector<MemberRecord> expected = {{2, "n2", "127.0.0.1:7002", "127.0.0.1:8082"},
                                        {9, "n9", "127.0.0.1:7009", "10.0.0.9:8089"}};
  EXPECT_EQ(*store_->list_members(), expected);

  ASSERT_TRUE(apply_one(model::PutMember{2, "", "", ""}).ok());
  expected.erase(expected.begin());
  EXPECT_EQ(*store_->list_members(), expected);
  // Registry records are not jobs.
  EXPECT_EQ(store_->job_count(), 0u);
  EXPECT_TRUE(store_->list_jobs({})->jobs.empty());
}

// --- create / get / find ---

TEST_F(StoreTest, NewStoreIsEmpty) {
  EXPECT_EQ(store_->applied_index(), 0u);
  EXPECT_EQ(store_->job_count(), 0u);
  EXPECT_EQ(store_->get_job("a").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->list_jobs({})->jobs.empty());
}

TEST_F(StoreTest, CreatedJobIsReadableByIdAndByName) {
  const Job job = make_job("id-1", "backup", "ops");
  Result<CommandEffect> r = apply_one(PutJob{job, 0});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::get<Job>(*r), job);
  EXPECT_EQ(*store_->get_job("id-1"), job);
  EXPECT_EQ(*store_->find_job("ops", "backup"), job);
  EXPECT_EQ(*store_->get_job_version("id-1", 1), job);
  EXPECT_EQ(store_->job_count(), 1u);
  EXPECT_EQ(store_->applied_index(), 1u);
}

TEST_F(StoreTest, StoredJobKeepsEveryFieldIncludingSecrets) {
  Job job = make_job("id-1", "hook");
  model::Webhook hook;
  hook.url = "https://example.com/run";
  hook.headers = {{"X-Trace", "1"}};
  hook.auth = model::WebhookAuth{.type = "basic", .username = "u", .password = "s3cret"};
  job.webhook = hook;
  job.tags = {{"team", "infra"}};
  job.timeout = absl::Seconds(90);
  create(job);
  EXPECT_EQ(*store_->get_job("id-1"), job);
  EXPECT_EQ(store_->get_job("id-1")->webhook->auth->password, "s3cret");
}

TEST_F(StoreTest, FindJobOfUnknownNameIsNotFound) {
  create(make_job("id-1", "backup", "ops"));
  EXPECT_EQ(store_->find_job("ops", "other").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->find_job("default", "backup").error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTest, CreateWithExistingIdIsRejectedAndChangesNothing) {
  const Job job = make_job("id-1", "backup");
  create(job);
  Result<CommandEffect> r = apply_one(PutJob{make_job("id-1", "other"), 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kAlreadyExists);
  EXPECT_EQ(r.error().message, "job id-1 already exists");
  EXPECT_EQ(*store_->get_job("id-1"), job);
  EXPECT_EQ(store_->find_job("default", "other").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->job_count(), 1u);
  EXPECT_EQ(store_->applied_index(), 2u);  // the entry is applied, the command failed
}

TEST_F(StoreTest, CreateWithTakenNameIsRejectedAndChangesNothing) {
  const Job job = make_job("id-1", "backup", "ops");
  create(job);
  Result<CommandEffect> r = apply_one(PutJob{make_job("id-2", "backup", "ops"), 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kAlreadyExists);
  EXPECT_EQ(r.error().field, "name");
  EXPECT_EQ(r.error().message, "a job named \"backup\" already exists in namespace \"ops\"");
  EXPECT_EQ(store_->get_job("id-2").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(*store_->find_job("ops", "backup"), job);
  EXPECT_EQ(store_->job_count(), 1u);
}

TEST_F(StoreTest, SameNameInAnotherNamespaceIsAllowed) {
  create(make_job("id-1", "backup", "ops"));
  EXPECT_TRUE(apply_one(PutJob{make_job("id-2", "backup", "dev"), 0}).ok());
  EXPECT_EQ(store_->job_count(), 2u);
}

TEST_F(StoreTest, JobWithSlashInKeyPartIsRejected) {
  Result<CommandEffect> r = apply_one(PutJob{make_job("id/1", "backup"), 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kValidation);
  EXPECT_EQ(r.error().field, "id");
  EXPECT_EQ(store_->job_count(), 0u);
}

// --- update ---

TEST_F(StoreTest, UpdateWithMatchingExpectedVersionStoresNewVersion) {
  const Job v1 = make_job("id-1", "backup");
  create(v1);
  Job v2 = next_version(v1);
  v2.description = "changed";
  Result<CommandEffect> r = apply_one(PutJob{v2, 1});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(std::get<Job>(*r), v2);
  EXPECT_EQ(*store_->get_job("id-1"), v2);
  EXPECT_EQ(*store_->get_job_version("id-1", 1), v1);
  EXPECT_EQ(*store_->get_job_version("id-1", 2), v2);
  EXPECT_EQ(store_->job_count(), 1u);
}

TEST_F(StoreTest, UpdateWithStaleExpectedVersionIsAConflict) {
  const Job v1 = make_job("id-1", "backup");
  create(v1);
  const Job v2 = next_version(v1);
  ASSERT_TRUE(apply_one(PutJob{v2, 1}).ok());
  Result<CommandEffect> r = apply_one(PutJob{v2, 1});  // someone else already wrote v2
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kConflict);
  EXPECT_EQ(r.error().field, "version");
  EXPECT_EQ(r.error().message, "version mismatch: job is at version 2, expected 1");
  EXPECT_EQ(*store_->get_job("id-1"), v2);
}

// A version the proposer got wrong is a per-command validation error, never
// a crash: the entry is committed, so a CHECK would fire on every replica at
// every restart (regression: apply CHECKed job.version).
TEST_F(StoreTest, RegressCreateWithVersionBelowOneIsAValidationError) {
  for (int64_t bad : {int64_t{0}, int64_t{-1}, INT64_MIN}) {
    Result<CommandEffect> r = apply_one(PutJob{make_job("id-1", "backup", "default", bad), 0});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(code_of(r), ErrorCode::kValidation);
    EXPECT_EQ(r.error().field, "version");
    EXPECT_EQ(r.error().message, "must be at least 1 for a new job, got " + std::to_string(bad));
  }
  EXPECT_EQ(store_->get_job("id-1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->find_job("default", "backup").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->job_count(), 0u);
  EXPECT_EQ(store_->applied_index(), 3u);
}

TEST_F(StoreTest, RegressUpdateWithVersionNotExpectedPlusOneIsAValidationError) {
  const Job v1 = make_job("id-1", "backup");
  create(v1);
  for (int64_t bad : {int64_t{1}, int64_t{3}, int64_t{0}, int64_t{-5}, INT64_MAX}) {
    Job job = next_version(v1);
    job.version = bad;
    job.name = "renamed";
    Result<CommandEffect> r = apply_one(PutJob{job, 1});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(code_of(r), ErrorCode::kValidation);
    EXPECT_EQ(r.error().field, "version");
    EXPECT_EQ(r.error().message,
              "must be expected_version + 1 (expected_version is 1), got " + std::to_string(bad));
  }
  EXPECT_EQ(*store_->get_job("id-1"), v1);
  EXPECT_EQ(store_->find_job("default", "renamed").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->list_versions("id-1", 0, 0)->size(), 1u);
  EXPECT_EQ(store_->applied_index(), 6u);
}

TEST_F(StoreTest, RegressUpdateOfJobAtLargestVersionDoesNotOverflow) {
  Job top = make_job("id-1", "backup");
  top.version = INT64_MAX;
  create(top);
  Job job = top;
  job.description = "changed";
  Result<CommandEffect> r = apply_one(PutJob{job, INT64_MAX});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kValidation);
  EXPECT_EQ(*store_->get_job("id-1"), top);
}

// A time outside RFC 3339's years would be stored as text that does not
// parse back, making the job unreadable (and every later apply that touches
// it fatal); apply refuses it like a bad version.
TEST_F(StoreTest, JobWithTimeOutsideRfc3339YearsIsAValidationError) {
  Job job = make_job("id-1", "backup");
  job.updated_at = absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  Result<CommandEffect> r = apply_one(PutJob{job, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kValidation);
  EXPECT_EQ(r.error().field, "updated_at");
  job = make_job("id-1", "backup");
  job.created_at = absl::InfinitePast();
  r = apply_one(PutJob{job, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "created_at");
  EXPECT_EQ(store_->job_count(), 0u);
  EXPECT_EQ(store_->get_job("id-1").error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTest, RegressBadVersionFailsOnlyItsCommandAndReplaysTheSame) {
  const model::CommandBatch batch = batch_of({
      PutJob{make_job("id-1", "a"), 0},
      PutJob{make_job("id-2", "b", "default", 0), 0},  // bad version
      PutJob{make_job("id-3", "c"), 0},
  });
  // Every replica applying the committed entry gets the same outcome.
  for (int replica = 0; replica < 2; ++replica) {
    TempDir dir;
    std::unique_ptr<Store> store = open_store(dir.path());
    Result<ApplyOutcome> outcome = store->apply(1, batch);
    ASSERT_TRUE(outcome.ok()) << outcome.error().message;
    ASSERT_EQ(outcome->results.size(), 3u);
    EXPECT_TRUE(outcome->results[0].ok());
    EXPECT_EQ(outcome->results[1].error().code, ErrorCode::kValidation);
    EXPECT_TRUE(outcome->results[2].ok());
    EXPECT_EQ(store->job_count(), 2u);
    EXPECT_EQ(store->get_job("id-2").error().code, ErrorCode::kNotFound);
    EXPECT_EQ(store->applied_index(), 1u);
  }
}

TEST_F(StoreTest, UpdateOfMissingJobIsNotFound) {
  Result<CommandEffect> r = apply_one(PutJob{make_job("id-1", "backup", "default", 2), 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kNotFound);
  EXPECT_EQ(store_->job_count(), 0u);
}

TEST_F(StoreTest, RenameFreesOldName) {
  const Job v1 = make_job("id-1", "backup");
  create(v1);
  Job v2 = next_version(v1);
  v2.name = "nightly";
  v2.namespace_ = "ops";
  ASSERT_TRUE(apply_one(PutJob{v2, 1}).ok());
  EXPECT_EQ(store_->find_job("default", "backup").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(*store_->find_job("ops", "nightly"), v2);
  // The old name can be taken by a new job.
  EXPECT_TRUE(apply_one(PutJob{make_job("id-2", "backup"), 0}).ok());
  EXPECT_EQ(store_->find_job("default", "backup")->id, "id-2");
  EXPECT_EQ(store_->list_jobs({})->jobs.size(), 2u);
}

TEST_F(StoreTest, RenameToTakenNameIsRejectedAndChangesNothing) {
  const Job a = make_job("id-1", "a");
  create(a);
  create(make_job("id-2", "b"));
  Job a2 = next_version(a);
  a2.name = "b";
  Result<CommandEffect> r = apply_one(PutJob{a2, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kAlreadyExists);
  EXPECT_EQ(r.error().field, "name");
  EXPECT_EQ(*store_->get_job("id-1"), a);
  EXPECT_EQ(store_->find_job("default", "a")->id, "id-1");
  EXPECT_EQ(store_->find_job("default", "b")->id, "id-2");
  EXPECT_EQ(store_->get_job_version("id-1", 2).error().code, ErrorCode::kNotFound);
}

// --- delete ---

TEST_F(StoreTest, DeleteRemovesJobNameAndVersions) {
  const Job v1 = make_job("id-1", "backup");
  create(v1);
  const Job v2 = next_version(v1);
  ASSERT_TRUE(apply_one(PutJob{v2, 1}).ok());
  Result<CommandEffect> r = apply_one(DeleteJob{"id-1", 0});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(std::get<Job>(*r), v2);  // the job as it was
  EXPECT_EQ(store_->get_job("id-1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->find_job("default", "backup").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->get_job_version("id-1", 1).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->get_job_version("id-1", 2).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->list_versions("id-1", 0, 0).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->job_count(), 0u);
  // Name and id are free again; history starts over.
  EXPECT_TRUE(apply_one(PutJob{make_job("id-1", "backup"), 0}).ok());
  EXPECT_EQ(store_->list_versions("id-1", 0, 0)->size(), 1u);
}

TEST_F(StoreTest, DeleteKeepsOtherJobsWhoseIdSharesAPrefix) {
  create(make_job("id-1", "a"));
  create(make_job("id-10", "b"));
  ASSERT_TRUE(apply_one(DeleteJob{"id-1", 0}).ok());
  EXPECT_TRUE(store_->get_job_version("id-10", 1).ok());
  EXPECT_EQ(store_->job_count(), 1u);
}

TEST_F(StoreTest, DeleteWithWrongExpectedVersionIsAConflict) {
  const Job job = make_job("id-1", "backup");
  create(job);
  Result<CommandEffect> r = apply_one(DeleteJob{"id-1", 7});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kConflict);
  EXPECT_EQ(*store_->get_job("id-1"), job);
  EXPECT_TRUE(apply_one(DeleteJob{"id-1", 1}).ok());
}

TEST_F(StoreTest, DeleteOfMissingJobIsNotFound) {
  Result<CommandEffect> r = apply_one(DeleteJob{"nope", 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(code_of(r), ErrorCode::kNotFound);
}

// --- versions ---

TEST_F(StoreTest, VersionsAreListedNewestFirst) {
  Job job = make_job("id-1", "backup");
  create(job);
  for (int i = 0; i < 3; ++i) {
    const int64_t expected = job.version;
    job = next_version(job);
    ASSERT_TRUE(apply_one(PutJob{job, expected}).ok());
  }
  Result<std::vector<VersionInfo>> versions = store_->list_versions("id-1", 0, 0);
  ASSERT_TRUE(versions.ok());
  ASSERT_EQ(versions->size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const int64_t want = 4 - static_cast<int64_t>(i);
    EXPECT_EQ((*versions)[i].version, want);
    EXPECT_EQ((*versions)[i].updated_at, absl::FromUnixSeconds(1700000000 + want));
  }
}

TEST_F(StoreTest, ListVersionsOfMissingJobIsNotFound) {
  EXPECT_EQ(store_->list_versions("nope", 0, 0).error().code, ErrorCode::kNotFound);
}

class StoreVersionsTest : public StoreTest {
 protected:
  // Creates `id` with versions 1..n in one entry.
  void create_versions(const std::string& id, const std::string& name, int64_t n) {
    std::vector<model::Command> commands;
    Job job = make_job(id, name);
    commands.push_back(PutJob{job, 0});
    for (int64_t v = 2; v <= n; ++v) {
      const int64_t expected = job.version;
      job = next_version(job);
      commands.push_back(PutJob{job, expected});
    }
    for (const Result<CommandEffect>& r : apply(std::move(commands))) {
      CHRONOS_CHECK(r.ok()) << r.error().message;
    }
  }

  std::vector<int64_t> versions(std::string_view id, int64_t before, size_t limit) {
    Result<std::vector<VersionInfo>> page = store_->list_versions(id, before, limit);
    CHRONOS_CHECK(page.ok()) << page.error().message;
    std::vector<int64_t> out;
    for (const VersionInfo& v : *page) out.push_back(v.version);
    return out;
  }
};

TEST_F(StoreVersionsTest, PagesNewestFirstStrictlyBelowTheBound) {
  create_versions("id-1", "a", 5);
  EXPECT_EQ(versions("id-1", 0, 2), (std::vector<int64_t>{5, 4}));
  EXPECT_EQ(versions("id-1", 4, 2), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(versions("id-1", 2, 2), (std::vector<int64_t>{1}));
  EXPECT_EQ(versions("id-1", 1, 2), (std::vector<int64_t>{}));
}

TEST_F(StoreVersionsTest, BoundAboveTheNewestListsFromTheNewest) {
  create_versions("id-1", "a", 3);
  EXPECT_EQ(versions("id-1", 100, 0), (std::vector<int64_t>{3, 2, 1}));
  EXPECT_EQ(versions("id-1", INT64_MAX, 0), (std::vector<int64_t>{3, 2, 1}));
}

TEST_F(StoreVersionsTest, NegativeBoundListsNothing) {
  create_versions("id-1", "a", 2);
  EXPECT_EQ(versions("id-1", -1, 0), (std::vector<int64_t>{}));
}

TEST_F(StoreVersionsTest, StaysWithinItsJobWhenAnotherIdSharesAPrefix) {
  create_versions("id-1", "a", 2);
  create_versions("id-10", "b", 3);
  create_versions("id-", "c", 1);
  EXPECT_EQ(versions("id-1", 0, 0), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(versions("id-1", 3, 0), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(versions("id-", 0, 0), (std::vector<int64_t>{1}));
}

TEST_F(StoreVersionsTest, LimitIsClampedAndZeroMeansDefault) {
  create_versions("id-1", "a", 1002);
  EXPECT_EQ(versions("id-1", 0, 0).size(), 100u);
  EXPECT_EQ(versions("id-1", 0, 1000).size(), 1000u);
  const std::vector<int64_t> page = versions("id-1", 0, 5000);
  ASSERT_EQ(page.size(), 1000u);
  EXPECT_EQ(page.front(), 1002);
  EXPECT_EQ(page.back(), 3);
  EXPECT_EQ(versions("id-1", 3, 5000), (std::vector<int64_t>{2, 1}));
}

TEST_F(StoreVersionsTest, MissingJobIsNotFoundWhateverTheBound) {
  for (int64_t before : {int64_t{0}, int64_t{5}, int64_t{-1}}) {
    EXPECT_EQ(store_->list_versions("nope", before, 10).error().code, ErrorCode::kNotFound);
  }
  EXPECT_EQ(store_->list_versions("a/b", 0, 10).error().code, ErrorCode::kNotFound);
}

// --- apply mechanics ---

TEST_F(StoreTest, EntryAtOrBelowAppliedIndexIsSkipped) {
  ASSERT_TRUE(store_->apply(5, batch_of({PutJob{make_job("id-1", "a"), 0}})).ok());
  for (uint64_t index : {3u, 5u}) {
    Result<ApplyOutcome> again = store_->apply(index, batch_of({PutJob{make_job("id-2", "b"), 0}}));
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again->skipped);
    EXPECT_EQ(again->index, index);
    EXPECT_TRUE(again->results.empty());
  }
  EXPECT_EQ(store_->get_job("id-2").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->applied_index(), 5u);
  EXPECT_EQ(store_->job_count(), 1u);
}

TEST_F(StoreTest, NoopAdvancesAppliedIndexOnly) {
  Result<CommandEffect> r = apply_one(Noop{});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::holds_alternative<std::monostate>(*r));
  EXPECT_EQ(store_->applied_index(), 1u);
  EXPECT_EQ(store_->job_count(), 0u);
}

TEST_F(StoreTest, LaterCommandSeesEarlierCommandOfSameBatch) {
  const Job v1 = make_job("id-1", "backup");
  Job v2 = next_version(v1);
  v2.name = "renamed";
  std::vector<Result<CommandEffect>> results =
      apply({PutJob{v1, 0}, PutJob{v2, 1}, PutJob{make_job("id-2", "backup"), 0}});
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*store_->get_job("id-1"), v2);
  EXPECT_EQ(store_->find_job("default", "backup")->id, "id-2");  // freed by command 2
  EXPECT_EQ(store_->list_versions("id-1", 0, 0)->size(), 2u);
  EXPECT_EQ(store_->job_count(), 2u);
}

TEST_F(StoreTest, CreateThenDeleteInOneBatchLeavesNothing) {
  std::vector<Result<CommandEffect>> results =
      apply({PutJob{make_job("id-1", "a"), 0}, DeleteJob{"id-1", 1}});
  ASSERT_TRUE(results[0].ok());
  ASSERT_TRUE(results[1].ok());
  EXPECT_EQ(store_->get_job("id-1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->get_job_version("id-1", 1).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->job_count(), 0u);
}

TEST_F(StoreTest, FailedCommandDoesNotStopTheRestOfTheBatch) {
  create(make_job("id-0", "taken"));
  std::vector<Result<CommandEffect>> results = apply({
      PutJob{make_job("id-1", "a"), 0},
      PutJob{make_job("id-2", "taken"), 0},  // name taken
      DeleteJob{"missing", 0},               // not found
      PutJob{make_job("id-3", "c"), 0},
  });
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(code_of(results[1]), ErrorCode::kAlreadyExists);
  EXPECT_EQ(code_of(results[2]), ErrorCode::kNotFound);
  EXPECT_TRUE(results[3].ok());
  EXPECT_TRUE(store_->get_job("id-1").ok());
  EXPECT_EQ(store_->get_job("id-2").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(store_->get_job("id-3").ok());
  EXPECT_EQ(store_->job_count(), 3u);
  EXPECT_EQ(store_->applied_index(), 2u);
}

TEST_F(StoreTest, AppliedIndexAndStateSurviveReopen) {
  const Job job = make_job("id-1", "backup");
  ASSERT_TRUE(store_->apply(41, batch_of({PutJob{job, 0}})).ok());
  ASSERT_TRUE(store_->apply(42, batch_of({Noop{}})).ok());
  store_.reset();
  store_ = open_store(dir_.path());
  EXPECT_EQ(store_->applied_index(), 42u);
  EXPECT_EQ(store_->job_count(), 1u);
  EXPECT_EQ(*store_->get_job("id-1"), job);
  // Replay after restart skips what is already applied.
  EXPECT_TRUE(store_->apply(42, batch_of({Noop{}}))->skipped);
}

// --- list ---

class StoreListTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    // 7 jobs over two namespaces, created out of order.
    struct Spec {
      const char* ns;
      const char* name;
      bool enabled;
      const char* team;
      const char* description;
    };
    const Spec specs[] = {
        {"ops", "rotate-logs", true, "infra", "Rotate the LOGS daily"},
        {"default", "backup", true, "infra", "nightly backup"},
        {"default", "report", false, "sales", "weekly report"},
        {"ops", "backup", false, "infra", "ops backup"},
        {"default", "cleanup", true, "infra", "remove tmp files"},
        {"default", "alpha", true, "sales", "first"},
        {"ops", "zeta", true, "sales", "last"},
    };
    int n = 0;
    for (const Spec& s : specs) {
      Job job = make_job("id-" + std::to_string(n++), s.name, s.ns);
      job.enabled = s.enabled;
      job.tags = {{"team", s.team}, {"tier", "1"}};
      job.description = s.description;
      create(job);
    }
  }

  ListPage list(ListQuery query) {
    Result<ListPage> page = store_->list_jobs(query);
    CHRONOS_CHECK(page.ok()) << page.error().message;
    return std::move(page).value();
  }
};

TEST_F(StoreListTest, ListsAllJobsOrderedByNamespaceThenName) {
  const ListPage page = list({});
  EXPECT_EQ(names_of(page), (std::vector<std::string>{
                                "default/alpha", "default/backup", "default/cleanup",
                                "default/report", "ops/backup", "ops/rotate-logs", "ops/zeta"}));
  EXPECT_TRUE(page.next_cursor.empty());
}

TEST_F(StoreListTest, FiltersByNamespace) {
  ListQuery query;
  query.namespace_ = "ops";
  EXPECT_EQ(names_of(list(query)),
            (std::vector<std::string>{"ops/backup", "ops/rotate-logs", "ops/zeta"}));
  query.namespace_ = "none";
  EXPECT_TRUE(list(query).jobs.empty());
}

TEST_F(StoreListTest, FiltersByTagsAllOfWhichMustMatch) {
  ListQuery query;
  query.tags = {{"team", "sales"}};
  EXPECT_EQ(names_of(list(query)),
            (std::vector<std::string>{"default/alpha", "default/report", "ops/zeta"}));
  query.tags = {{"team", "sales"}, {"tier", "2"}};
  EXPECT_TRUE(list(query).jobs.empty());
}

TEST_F(StoreListTest, FiltersByEnabled) {
  ListQuery query;
  query.enabled = false;
  EXPECT_EQ(names_of(list(query)), (std::vector<std::string>{"default/report", "ops/backup"}));
}

TEST_F(StoreListTest, FiltersByCaseInsensitiveSubstringOfNameOrDescription) {
  ListQuery query;
  query.q = "BACK";  // names "backup"
  EXPECT_EQ(names_of(list(query)), (std::vector<std::string>{"default/backup", "ops/backup"}));
  query.q = "logs";  // name and description ("LOGS")
  EXPECT_EQ(names_of(list(query)), (std::vector<std::string>{"ops/rotate-logs"}));
  query.q = "tmp f";  // description only
  EXPECT_EQ(names_of(list(query)), (std::vector<std::string>{"default/cleanup"}));
}

TEST_F(StoreListTest, PagesWithLimit2ReturnEachJobExactlyOnce) {
  ListQuery query;
  query.limit = 2;
  std::vector<std::string> seen;
  int pages = 0;
  do {
    const ListPage page = list(query);
    EXPECT_LE(page.jobs.size(), 2u);
    for (const std::string& name : names_of(page)) seen.push_back(name);
    query.cursor = page.next_cursor;
    ++pages;
    ASSERT_LE(pages, 10);
  } while (!query.cursor.empty());
  EXPECT_EQ(pages, 4);  // 2 + 2 + 2 + 1
  EXPECT_EQ(seen, names_of(list({})));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 7u);
}

TEST_F(StoreListTest, LastFullPageHasNoCursorWhenNothingFollows) {
  ListQuery query;
  query.namespace_ = "ops";
  query.limit = 3;
  const ListPage page = list(query);
  EXPECT_EQ(page.jobs.size(), 3u);
  EXPECT_TRUE(page.next_cursor.empty());
}

TEST_F(StoreListTest, PagesWithFilterSkipNonMatchingJobs) {
  ListQuery query;
  query.tags = {{"team", "infra"}};
  query.limit = 2;
  ListPage first = list(query);
  EXPECT_EQ(names_of(first), (std::vector<std::string>{"default/backup", "default/cleanup"}));
  ASSERT_FALSE(first.next_cursor.empty());
  query.cursor = first.next_cursor;
  ListPage second = list(query);
  EXPECT_EQ(names_of(second), (std::vector<std::string>{"ops/backup", "ops/rotate-logs"}));
  EXPECT_TRUE(second.next_cursor.empty());
}

TEST_F(StoreListTest, CursorStaysValidWhenItsJobIsDeleted) {
  ListQuery query;
  query.limit = 2;
  const ListPage first = list(query);                 // default/alpha, default/backup
  ASSERT_TRUE(apply_one(DeleteJob{"id-1", 0}).ok());  // default/backup
  query.cursor = first.next_cursor;
  EXPECT_EQ(names_of(list(query)), (std::vector<std::string>{"default/cleanup", "default/report"}));
}

TEST_F(StoreListTest, LimitIsClampedAndZeroMeansDefault) {
  ListQuery query;
  query.limit = 0;
  EXPECT_EQ(list(query).jobs.size(), 7u);
  query.limit = 100000;
  EXPECT_EQ(list(query).jobs.size(), 7u);
}

TEST_F(StoreListTest, MalformedCursorIsAValidationError) {
  const std::vector<std::string> cursors = {"zz", "abc", keys::encode_cursor("j/id-1"),
                                            keys::encode_cursor("n/default"), "6e2f"};
  for (const std::string& cursor : cursors) {
    ListQuery query;
    query.cursor = cursor;
    Result<ListPage> page = store_->list_jobs(query);
    ASSERT_FALSE(page.ok()) << cursor;
    EXPECT_EQ(page.error().code, ErrorCode::kValidation);
    EXPECT_EQ(page.error().field, "cursor");
    EXPECT_EQ(page.error().message, "is not a valid cursor");
  }
}

TEST_F(StoreListTest, CursorFromAnotherNamespaceIsRejected) {
  ListQuery query;
  query.limit = 1;
  const ListPage first = list(query);  // default/alpha
  query.namespace_ = "ops";
  query.cursor = first.next_cursor;
  EXPECT_EQ(store_->list_jobs(query).error().field, "cursor");
}

// --- snapshots ---

TEST_F(StoreListTest, RestoredSnapshotGivesIdenticalReadsAndAppliedIndex) {
  Job v2 = next_version(*store_->get_job("id-0"));
  ASSERT_TRUE(apply_one(PutJob{v2, 1}).ok());
  Result<std::string> image = store_->serialize_snapshot();
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(*Store::snapshot_applied_index(*image), store_->applied_index());

  std::unique_ptr<Store> other = open_store(dir_.path("other"));
  ASSERT_TRUE(other->apply(1, batch_of({PutJob{make_job("stale", "gone"), 0}})).ok());
  ASSERT_TRUE(other->restore_snapshot(*image).ok());

  EXPECT_EQ(other->applied_index(), store_->applied_index());
  EXPECT_EQ(other->job_count(), 7u);
  EXPECT_EQ(other->get_job("stale").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(other->find_job("default", "gone").error().code, ErrorCode::kNotFound);
  ListQuery all;
  EXPECT_EQ(other->list_jobs(all)->jobs, store_->list_jobs(all)->jobs);
  EXPECT_EQ(*other->get_job_version("id-0", 1), *store_->get_job_version("id-0", 1));
  EXPECT_EQ(other->list_versions("id-0", 0, 0)->size(), 2u);
  EXPECT_EQ(*other->find_job("ops", "zeta"), *store_->find_job("ops", "zeta"));
  // Same bytes out as in: the images match.
  EXPECT_EQ(*other->serialize_snapshot(), *image);

  // The restore is durable and the restored store keeps applying.
  other.reset();
  other = open_store(dir_.path("other"));
  EXPECT_EQ(other->applied_index(), store_->applied_index());
  EXPECT_EQ(other->job_count(), 7u);
  EXPECT_TRUE(
      other->apply(store_->applied_index() + 1, batch_of({DeleteJob{"id-0", 2}}))->results[0].ok());
}

// A restore is written in batches under m/restoring; a crash part way
// (simulated by writing what its first batches leave: the marker, no
// applied index, part of the image) makes the store claim nothing, so the
// snapshot is restored again, and a backup import may replace it.
TEST_F(StoreListTest, InterruptedRestoreClaimsNothingAndIsRedone) {
  const std::string image = *store_->serialize_snapshot();
  const std::string path = dir_.path("other");
  {
    std::unique_ptr<Store> other = open_store(path);
    ASSERT_TRUE(other->apply(3, batch_of({PutJob{make_job("stale", "gone"), 0}})).ok());
  }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put({}, std::string(keys::kRestoring), keys::encode_u64(8)).ok());
    ASSERT_TRUE(db->Delete({}, std::string(keys::kAppliedIndex)).ok());
  }
  std::unique_ptr<Store> other = open_store(path);
  EXPECT_EQ(other->applied_index(), 0u);
  EXPECT_EQ(other->job_count(), 0u);
  EXPECT_EQ(other->get_job("stale").error().code, ErrorCode::kNotFound);  // emptied at open
  EXPECT_FALSE(other->restoring());
  ASSERT_TRUE(other->restore_snapshot(image).ok());
  EXPECT_EQ(other->applied_index(), store_->applied_index());
  EXPECT_EQ(other->job_count(), 7u);
  EXPECT_EQ(*other->serialize_snapshot(), image);  // the marker is gone
  other.reset();
  other = open_store(path);
  EXPECT_EQ(other->applied_index(), store_->applied_index());
  EXPECT_EQ(other->get_job("stale").error().code, ErrorCode::kNotFound);
}

TEST_F(StoreTest, SnapshotOfEmptyStoreRestoresToEmpty) {
  Result<std::string> image = store_->serialize_snapshot();
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(*Store::snapshot_applied_index(*image), 0u);
  create(make_job("id-1", "a"));
  ASSERT_TRUE(store_->restore_snapshot(*image).ok());
  EXPECT_EQ(store_->applied_index(), 0u);
  EXPECT_EQ(store_->job_count(), 0u);
  EXPECT_EQ(store_->get_job("id-1").error().code, ErrorCode::kNotFound);
}

class StoreCorruptSnapshotTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    create(make_job("id-1", "a"));
    create(make_job("id-2", "b"));
    image_ = *store_->serialize_snapshot();
    target_ = open_store(dir_.path("target"));
    ASSERT_TRUE(target_->apply(9, batch_of({PutJob{target_job_, 0}})).ok());
  }

  void expect_rejected_and_target_unchanged(std::string_view image) {
    Status s = target_->restore_snapshot(image);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, ErrorCode::kValidation);
    EXPECT_EQ(s.error().field, "snapshot");
    EXPECT_EQ(target_->applied_index(), 9u);
    EXPECT_EQ(target_->job_count(), 1u);
    EXPECT_EQ(*target_->get_job("t-1"), target_job_);
    EXPECT_EQ(target_->get_job("id-1").error().code, ErrorCode::kNotFound);
  }

  std::string image_;
  const Job target_job_ = make_job("t-1", "mine");
  std::unique_ptr<Store> target_;
};

TEST_F(StoreCorruptSnapshotTest, FlippedByteIsRejected) {
  for (size_t pos : {size_t{0}, size_t{5}, size_t{12}, image_.size() / 2, image_.size() - 1}) {
    std::string bad = image_;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x01);
    expect_rejected_and_target_unchanged(bad);
  }
}

TEST_F(StoreCorruptSnapshotTest, TruncatedImageIsRejected) {
  for (size_t len : {size_t{0}, size_t{3}, size_t{16}, image_.size() / 2, image_.size() - 1}) {
    expect_rejected_and_target_unchanged(std::string_view(image_).substr(0, len));
  }
  EXPECT_FALSE(Store::snapshot_applied_index(std::string_view(image_).substr(0, 10)).ok());
}

// --- pure helpers ---

TEST(StoreKeys, BigEndianVersionsSortNumerically) {
  EXPECT_LT(keys::version("j", 255), keys::version("j", 256));
  EXPECT_LT(keys::version("j", 9), keys::version("j", 10));
  EXPECT_EQ(keys::decode_u64(keys::encode_u64(0x0102030405060708)), 0x0102030405060708u);
}

TEST(StoreKeys, U64IsEightBytesBigEndian) {
  EXPECT_EQ(keys::encode_u64(0x0102030405060708), std::string("\x01\x02\x03\x04\x05\x06\x07\x08"));
  EXPECT_EQ(keys::version("j", 1), std::string("v/j/\0\0\0\0\0\0\0\x01", 12));
  EXPECT_EQ(keys::decode_u64(std::string("\xff\0\0\0\0\0\0\x02", 8)), 0xff00000000000002u);
  EXPECT_EQ(keys::decode_u64("1234567"), std::nullopt);
  EXPECT_EQ(keys::decode_u64("123456789"), std::nullopt);
}

TEST(StoreKeys, CursorRoundTrips) {
  const std::string key = keys::name("ops", "backup");
  EXPECT_EQ(keys::decode_cursor(keys::encode_cursor(key)), key);
  EXPECT_EQ(keys::namespace_of_name_key(key), "ops");
}

TEST(SnapshotImage, CrcMatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);  // CRC-32/IEEE check value
}

TEST(SnapshotImage, ParsesWhatTheWriterWrote) {
  SnapshotImageWriter writer(77);
  writer.add("k1", "v1");
  writer.add("k2", "");
  const std::string image = std::move(writer).finish();
  Result<SnapshotImage> parsed = parse_snapshot_image(image);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->applied_index, 77u);
  ASSERT_EQ(parsed->pairs.size(), 2u);
  EXPECT_EQ(parsed->pairs[1].first, "k2");
  EXPECT_EQ(parsed->pairs[1].second, "");
}

// A version 1 image (written before images were compressed) is still read:
// "CHRS", u32 BE 1, u64 BE applied index, (u32 BE length, bytes)*, u32 BE
// CRC of everything before it.
std::string version1_image(uint64_t applied_index,
                           const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string image = "CHRS";
  put_u32_be(image, 1);
  put_u64_be(image, applied_index);
  for (const auto& [k, v] : pairs) {
    put_u32_be(image, static_cast<uint32_t>(k.size()));
    image += k;
    put_u32_be(image, static_cast<uint32_t>(v.size()));
    image += v;
  }
  put_u32_be(image, crc32(image));
  return image;
}

TEST(SnapshotImage, ReadsVersionOneImages) {
  const std::string image = version1_image(0x0102030405060708, {{"k", "vv"}, {"k2", ""}});
  EXPECT_EQ(*read_snapshot_applied_index(image), 0x0102030405060708u);
  Result<SnapshotImage> parsed = parse_snapshot_image(image);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed->pairs.size(), 2u);
  EXPECT_EQ(parsed->pairs[0].second, "vv");
  std::string damaged = image;
  damaged[20] ^= 1;
  EXPECT_FALSE(parse_snapshot_image(damaged).ok());
}

// Version 2's documented head and trailer: "CHRS", u32 BE 2, u64 BE applied
// index, frames, then u32 0, u64 pair count, u64 raw bytes, u32 CRC.
TEST(SnapshotImage, LayoutIsTheDocumentedBigEndianFormat) {
  SnapshotImageWriter writer(0x0102030405060708);
  writer.add("k", "vv");
  const std::string image = std::move(writer).finish();
  EXPECT_EQ(image.substr(0, 16), std::string("CHRS\0\0\0\x02\x01\x02\x03\x04\x05\x06\x07\x08", 16));
  EXPECT_EQ(get_u32_be(image.data() + 16), 11u);  // the one frame's raw length
  const std::string_view trailer = std::string_view(image).substr(image.size() - 24);
  EXPECT_EQ(get_u32_be(trailer.data()), 0u);
  EXPECT_EQ(get_u64_be(trailer.data() + 4), 1u);
  EXPECT_EQ(get_u64_be(trailer.data() + 12), 11u);
  EXPECT_EQ(snapshot_raw_bytes(image), 11u);
  EXPECT_EQ(*read_snapshot_applied_index(image), 0x0102030405060708u);
}

// A large image is many frames, each its own chunk (what libraft is lent),
// compressed, and read back pair for pair.
TEST(SnapshotImage, ManyFramesRoundTripAndCompress) {
  SnapshotImageWriter writer(5);
  std::vector<std::pair<std::string, std::string>> pairs;
  for (int i = 0; i < 20000; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "j/%08d", i);
    pairs.emplace_back(key, R"({"name":"job-)" + std::to_string(i) +
                                R"(","schedule":"*/5 * * * *","dispatch":{"type":"http","url":"http://127.0.0.1:9/"}})" +
                                std::string(100, 'x'));
    writer.add(pairs.back().first, pairs.back().second);
  }
  const uint64_t raw = writer.raw_bytes();
  std::vector<std::string> chunks = std::move(writer).finish_chunks();
  EXPECT_GT(chunks.size(), 3u);
  const std::string image = join_chunks(chunks);
  EXPECT_LT(image.size(), raw / 4);
  EXPECT_EQ(snapshot_raw_bytes(image), raw);
  size_t i = 0;
  Status st = for_each_snapshot_pair(image, [&](std::string_view k, std::string_view v) {
    EXPECT_EQ(k, pairs[i].first);
    EXPECT_EQ(v, pairs[i].second);
    ++i;
    return ok_status();
  });
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(i, pairs.size());
  // Dropping a whole frame (its chunk) is caught by the trailer.
  std::vector<std::string> without = chunks;
  without.erase(without.begin() + 1);
  EXPECT_FALSE(parse_snapshot_image(join_chunks(without)).ok());
}

// A small image of two pairs at applied index 9.
std::string two_pair_image() {
  SnapshotImageWriter writer(9);
  writer.add("key", "value");
  writer.add("k2", "v2");
  return std::move(writer).finish();
}

// Every byte is under a CRC: the header, frame heads and trailer under the
// trailer's, the compressed bytes under their frame's.
TEST(SnapshotImage, RejectsAnyFlippedByte) {
  const std::string image = two_pair_image();
  for (size_t n = 0; n < image.size(); ++n) {
    std::string damaged = image;
    damaged[n] ^= 0x20;
    Result<SnapshotImage> parsed = parse_snapshot_image(damaged);
    ASSERT_FALSE(parsed.ok()) << "byte " << n;
    EXPECT_EQ(parsed.error().field, "snapshot");
  }
}

TEST(SnapshotImage, RejectsEveryTruncation) {
  const std::string image = two_pair_image();
  for (size_t n = 0; n < image.size(); ++n) {
    Result<SnapshotImage> parsed = parse_snapshot_image(std::string_view(image).substr(0, n));
    ASSERT_FALSE(parsed.ok()) << n;
    EXPECT_EQ(parsed.error().field, "snapshot");
  }
}

}  // namespace
}  // namespace chronos::store
