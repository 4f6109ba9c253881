// Executions, schedule state and in-flight markers: apply semantics of
// StartExecutions / FinishExecutions / RedispatchExecutions /
// PruneExecutions, DeleteJob's cleanup, and the read methods over them.

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "model/command.h"
#include "model/concurrency.h"
#include "model/execution.h"
#include "store/keys.h"
#include "store/store.h"
#include "store/tests/store_fixture.h"

namespace chronos::store {
namespace {

using model::DeleteJob;
using model::Execution;
using model::ExecutionResult;
using model::ExecutionStatus;
using model::FinishExecutions;
using model::PruneExecutions;
using model::RedispatchExecutions;
using model::ScheduleAdvance;
using model::StartExecutions;
using test_support::exec_id;
using test_support::kT0;
using test_support::make_exec;
using test_support::make_job;
using test_support::StoreTest;
using test_support::TempDir;

ExecutionResult success_of(const Execution& e, absl::Duration took = absl::Seconds(1)) {
  return ExecutionResult{e.job_id, e.id, ExecutionStatus::kSuccess, e.attempts, 200, "ok",
                         "",       "n1", e.started_at + took};
}

std::vector<std::string> ids_of(const std::vector<Execution>& executions) {
  std::vector<std::string> out;
  for (const Execution& e : executions) out.push_back(e.id);
  return out;
}

class ExecutionStoreTest : public StoreTest {
 protected:
  // Fixture jobs allow concurrent runs, so tests can hold several running
  // executions; the concurrency tests below make their own forbid job.
  static model::Job allowing(model::Job job) {
    job.concurrency = model::Concurrency::kAllow;
    return job;
  }

  void SetUp() override {
    StoreTest::SetUp();
    create(allowing(make_job("job-a", "a")));
    create(allowing(make_job("job-b", "b")));
  }

  // The per-item statuses of an execution command's effect.
  static std::vector<Status> items_of(const Result<CommandEffect>& r) {
    CHRONOS_CHECK(r.ok()) << r.error().message;
    return std::get<ItemResults>(*r).items;
  }

  std::vector<Status> start(std::vector<Execution> executions,
                            std::vector<ScheduleAdvance> schedule = {}) {
    return items_of(apply_one(StartExecutions{std::move(executions), std::move(schedule)}));
  }

  std::vector<Status> finish(std::vector<ExecutionResult> results) {
    return items_of(apply_one(FinishExecutions{std::move(results)}));
  }

  void start_ok(std::vector<Execution> executions) {
    for (const Status& s : start(std::move(executions))) {
      CHRONOS_CHECK(s.ok()) << s.error().message;
    }
  }

  std::vector<std::string> running_of(const std::string& job_id) {
    return store_->get_schedule_state(job_id)->running;
  }

  std::vector<std::string> in_flight() { return ids_of(*store_->list_in_flight("", 1000)); }

  Execution get(const std::string& job_id, int n) {
    Result<Execution> e = store_->get_execution(job_id, exec_id(n));
    CHRONOS_CHECK(e.ok()) << e.error().message;
    return std::move(e).value();
  }
};

ErrorCode code(const Status& s) { return s.ok() ? ErrorCode::kInternal : s.error().code; }

// --- StartExecutions ---

TEST_F(ExecutionStoreTest, RunningStartIsStoredInFlightAndInTheRunningSet) {
  const Execution e = make_exec("job-a", 1);
  std::vector<Status> items = start({e});
  ASSERT_EQ(items.size(), 1u);
  EXPECT_TRUE(items[0].ok());
  EXPECT_EQ(get("job-a", 1), e);
  EXPECT_EQ(running_of("job-a"), std::vector<std::string>{exec_id(1)});
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(1)});
}

TEST_F(ExecutionStoreTest, PendingStartIsInFlightToo) {
  start_ok({make_exec("job-a", 1, ExecutionStatus::kPending)});
  EXPECT_EQ(running_of("job-a"), std::vector<std::string>{exec_id(1)});
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(1)});
}

TEST_F(ExecutionStoreTest, SkippedStartIsTerminalAndNotInFlight) {
  Execution skipped = make_exec("job-a", 1, ExecutionStatus::kSkipped);
  skipped.error = "previous run still active";
  start_ok({skipped});
  EXPECT_EQ(get("job-a", 1), skipped);
  EXPECT_TRUE(running_of("job-a").empty());
  EXPECT_TRUE(in_flight().empty());
}

TEST_F(ExecutionStoreTest, DuplicateStartIdIsRejectedAndNotDuplicated) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  Execution again = e;
  again.attempts = 9;  // a re-proposal must not overwrite either
  std::vector<Status> items = start({again});
  EXPECT_EQ(code(items[0]), ErrorCode::kAlreadyExists);
  EXPECT_EQ(get("job-a", 1), e);
  EXPECT_EQ(running_of("job-a"), std::vector<std::string>{exec_id(1)});
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(1)});
}

TEST_F(ExecutionStoreTest, DuplicateIdWithinOneCommandIsRejectedOnce) {
  std::vector<Status> items = start({make_exec("job-a", 1), make_exec("job-a", 1)});
  EXPECT_TRUE(items[0].ok());
  EXPECT_EQ(code(items[1]), ErrorCode::kAlreadyExists);
  EXPECT_EQ(running_of("job-a").size(), 1u);
}

TEST_F(ExecutionStoreTest, StartIdInFlightUnderAnotherJobIsRejected) {
  start_ok({make_exec("job-a", 1)});
  std::vector<Status> items = start({make_exec("job-b", 1)});
  EXPECT_EQ(code(items[0]), ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->get_execution("job-b", exec_id(1)).error().code, ErrorCode::kNotFound);
}

TEST_F(ExecutionStoreTest, StartForMissingJobFailsOnlyThatItem) {
  std::vector<Status> items = start({make_exec("gone", 1), make_exec("job-a", 2)});
  EXPECT_EQ(code(items[0]), ErrorCode::kNotFound);
  EXPECT_TRUE(items[1].ok());
  EXPECT_EQ(store_->get_execution("gone", exec_id(1)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(2)});
}

TEST_F(ExecutionStoreTest, StartWithSlashInIdIsAValidationError) {
  Execution e = make_exec("job-a", 1);
  e.id = "a/b";
  EXPECT_EQ(code(start({e})[0]), ErrorCode::kValidation);
  EXPECT_TRUE(in_flight().empty());
}

TEST_F(ExecutionStoreTest, StartWithTimeOutsideRfc3339YearsIsAValidationError) {
  Execution e = make_exec("job-a", 1);
  e.scheduled_time = absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  std::vector<Status> items = start({e});
  ASSERT_EQ(code(items[0]), ErrorCode::kValidation);
  EXPECT_EQ(items[0].error().field, "scheduled_time");
}

TEST_F(ExecutionStoreTest, StartTruncatesOversizedExcerpts) {
  Execution e = make_exec("job-a", 1, ExecutionStatus::kSkipped);
  e.error = std::string(model::kMaxErrorBytes + 10, 'e');
  start_ok({e});
  EXPECT_EQ(get("job-a", 1).error.size(), model::kMaxErrorBytes);
}

TEST_F(ExecutionStoreTest, RunningSetKeepsStartOrder) {
  start_ok({make_exec("job-a", 3)});
  start_ok({make_exec("job-a", 1), make_exec("job-a", 2)});
  EXPECT_EQ(running_of("job-a"), (std::vector<std::string>{exec_id(3), exec_id(1), exec_id(2)}));
  finish({success_of(make_exec("job-a", 1))});
  EXPECT_EQ(running_of("job-a"), (std::vector<std::string>{exec_id(3), exec_id(2)}));
}

// --- schedule state ---

TEST_F(ExecutionStoreTest, ScheduleStateIsDefaultWhenNeverScheduled) {
  EXPECT_EQ(*store_->get_schedule_state("job-a"), ScheduleState{});
  EXPECT_EQ(*store_->get_schedule_state("no-such-job"), ScheduleState{});
  EXPECT_EQ(*store_->get_schedule_state("a/b"), ScheduleState{});
}

TEST_F(ExecutionStoreTest, LastScheduledAdvances) {
  start({}, {ScheduleAdvance{"job-a", kT0}});
  EXPECT_EQ(store_->get_schedule_state("job-a")->last_scheduled, kT0);
  start({}, {ScheduleAdvance{"job-a", kT0 + absl::Minutes(1)}});
  EXPECT_EQ(store_->get_schedule_state("job-a")->last_scheduled, kT0 + absl::Minutes(1));
}

TEST_F(ExecutionStoreTest, LastScheduledNeverGoesBackwards) {
  start({}, {ScheduleAdvance{"job-a", kT0 + absl::Minutes(5)}});
  start({}, {ScheduleAdvance{"job-a", kT0}, ScheduleAdvance{"job-a", absl::InfinitePast()}});
  EXPECT_EQ(store_->get_schedule_state("job-a")->last_scheduled, kT0 + absl::Minutes(5));
}

TEST_F(ExecutionStoreTest, ScheduleAdvanceForMissingJobIsIgnored) {
  Result<CommandEffect> r = apply_one(StartExecutions{{}, {ScheduleAdvance{"gone", kT0}}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::get<ItemResults>(*r).items.empty());
  EXPECT_EQ(*store_->get_schedule_state("gone"), ScheduleState{});
}

TEST_F(ExecutionStoreTest, ScheduleAdvanceWithUnstorableTimeFailsTheWholeCommand) {
  Result<CommandEffect> r = apply_one(
      StartExecutions{{make_exec("job-a", 1)}, {ScheduleAdvance{"job-a", absl::InfiniteFuture()}}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kValidation);
  EXPECT_EQ(r.error().field, "schedule[0].last_scheduled");
  EXPECT_TRUE(in_flight().empty());
}

TEST_F(ExecutionStoreTest, StartAndAdvanceOfOneJobShareItsState) {
  start({make_exec("job-a", 1)}, {ScheduleAdvance{"job-a", kT0 + absl::Seconds(1)}});
  const ScheduleState state = *store_->get_schedule_state("job-a");
  EXPECT_EQ(state.last_scheduled, kT0 + absl::Seconds(1));
  EXPECT_EQ(state.running, std::vector<std::string>{exec_id(1)});
}

// --- FinishExecutions ---

TEST_F(ExecutionStoreTest, StartThenFinishRecordsTheResultAndLeavesFlight) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  ExecutionResult result = success_of(e);
  result.attempts = 2;
  result.response = R"({"ok":true})";
  result.node_id = "n2";
  std::vector<Status> items = finish({result});
  ASSERT_TRUE(items[0].ok()) << items[0].error().message;

  Execution expected = e;
  expected.status = ExecutionStatus::kSuccess;
  expected.attempts = 2;
  expected.status_code = 200;
  expected.response = R"({"ok":true})";
  expected.node_id = "n2";
  expected.completed_at = result.completed_at;
  EXPECT_EQ(get("job-a", 1), expected);
  EXPECT_TRUE(running_of("job-a").empty());
  EXPECT_TRUE(in_flight().empty());
}

TEST_F(ExecutionStoreTest, SecondFinishIsAConflictAndDoesNotOverwrite) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  ASSERT_TRUE(finish({success_of(e)})[0].ok());
  const Execution first = get("job-a", 1);
  ExecutionResult late = success_of(e, absl::Seconds(30));
  late.status = ExecutionStatus::kFailed;
  late.error = "timeout";
  std::vector<Status> items = finish({late});
  EXPECT_EQ(code(items[0]), ErrorCode::kConflict);
  EXPECT_EQ(get("job-a", 1), first);
}

TEST_F(ExecutionStoreTest, FinishOfMissingExecutionIsNotFound) {
  EXPECT_EQ(code(finish({success_of(make_exec("job-a", 1))})[0]), ErrorCode::kNotFound);
  EXPECT_EQ(code(finish({success_of(make_exec("gone", 1))})[0]), ErrorCode::kNotFound);
}

TEST_F(ExecutionStoreTest, FinishWithNonTerminalStatusIsAValidationError) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  ExecutionResult r = success_of(e);
  r.status = ExecutionStatus::kRunning;
  std::vector<Status> items = finish({r});
  EXPECT_EQ(code(items[0]), ErrorCode::kValidation);
  EXPECT_EQ(get("job-a", 1), e);
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(1)});
}

TEST_F(ExecutionStoreTest, FinishOfSkippedExecutionIsAConflict) {
  start_ok({make_exec("job-a", 1, ExecutionStatus::kSkipped)});
  EXPECT_EQ(code(finish({success_of(make_exec("job-a", 1))})[0]), ErrorCode::kConflict);
}

TEST_F(ExecutionStoreTest, FinishCapsResponseWithoutSplittingACodePoint) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  ExecutionResult r = success_of(e);
  // 'x' then euros: the cap falls inside a 3-byte sequence.
  r.response = "x";
  while (r.response.size() < model::kMaxResponseBytes + 10) r.response += "\xe2\x82\xac";
  r.error = std::string(model::kMaxErrorBytes * 2, 'e');
  ASSERT_TRUE(finish({r})[0].ok());
  const Execution stored = get("job-a", 1);
  EXPECT_LE(stored.response.size(), model::kMaxResponseBytes);
  EXPECT_GE(stored.response.size(), model::kMaxResponseBytes - 3);
  EXPECT_EQ((stored.response.size() - 1) % 3, 0u);  // whole euros only
  EXPECT_EQ(stored.error.size(), model::kMaxErrorBytes);
}

TEST_F(ExecutionStoreTest, FinishKeepsBinaryResponseBytes) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  ExecutionResult r = success_of(e);
  r.response = std::string("\x00\xff\xfe", 3);
  ASSERT_TRUE(finish({r})[0].ok());
  EXPECT_EQ(get("job-a", 1).response, r.response);
}

TEST_F(ExecutionStoreTest, FinishNeverLowersAttemptsAndKeepsNodeWhenNoneGiven) {
  Execution e = make_exec("job-a", 1);
  e.attempts = 3;
  e.node_id = "n7";
  start_ok({e});
  ExecutionResult cancel{e.job_id,
                         e.id,
                         ExecutionStatus::kCancelled,
                         0,
                         0,
                         "",
                         "cancelled by user",
                         "",
                         kT0 + absl::Minutes(1)};
  ASSERT_TRUE(finish({cancel})[0].ok());
  EXPECT_EQ(get("job-a", 1).attempts, 3);
  EXPECT_EQ(get("job-a", 1).node_id, "n7");
  EXPECT_EQ(get("job-a", 1).status, ExecutionStatus::kCancelled);
}

TEST_F(ExecutionStoreTest, StartAndFinishInOneBatchSeeEachOther) {
  const Execution e = make_exec("job-a", 1);
  std::vector<Result<CommandEffect>> results =
      apply({StartExecutions{{e}, {}}, FinishExecutions{{success_of(e)}}});
  EXPECT_TRUE(std::get<ItemResults>(*results[0]).items[0].ok());
  EXPECT_TRUE(std::get<ItemResults>(*results[1]).items[0].ok());
  EXPECT_EQ(get("job-a", 1).status, ExecutionStatus::kSuccess);
  EXPECT_TRUE(running_of("job-a").empty());
  EXPECT_TRUE(in_flight().empty());
}

// --- RedispatchExecutions ---

TEST_F(ExecutionStoreTest, RedispatchSetsAttemptsAndNodeAndStaysInFlight) {
  start_ok({make_exec("job-a", 1, ExecutionStatus::kPending), make_exec("job-b", 2)});
  Result<CommandEffect> r =
      apply_one(RedispatchExecutions{{"job-a", "job-b"}, {exec_id(1), exec_id(2)}, {2, 4}, "n9"});
  for (const Status& s : items_of(r)) EXPECT_TRUE(s.ok());
  EXPECT_EQ(get("job-a", 1).attempts, 2);
  EXPECT_EQ(get("job-a", 1).node_id, "n9");
  EXPECT_EQ(get("job-a", 1).status, ExecutionStatus::kRunning);
  EXPECT_EQ(get("job-b", 2).attempts, 4);
  EXPECT_EQ(in_flight(), (std::vector<std::string>{exec_id(1), exec_id(2)}));
}

TEST_F(ExecutionStoreTest, RedispatchOfFinishedOrMissingExecutionFails) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  finish({success_of(e)});
  std::vector<Status> items = items_of(
      apply_one(RedispatchExecutions{{"job-a", "job-a"}, {exec_id(1), exec_id(2)}, {2, 2}, "n9"}));
  EXPECT_EQ(code(items[0]), ErrorCode::kConflict);
  EXPECT_EQ(code(items[1]), ErrorCode::kNotFound);
  EXPECT_EQ(get("job-a", 1).attempts, 1);
}

TEST_F(ExecutionStoreTest, RedispatchWithShortParallelListsFailsTheUnmatchedItems) {
  start_ok({make_exec("job-a", 1), make_exec("job-a", 2)});
  std::vector<Status> items =
      items_of(apply_one(RedispatchExecutions{{"job-a"}, {exec_id(1), exec_id(2)}, {5, 5}, "n9"}));
  EXPECT_TRUE(items[0].ok());
  EXPECT_EQ(code(items[1]), ErrorCode::kValidation);
  EXPECT_EQ(get("job-a", 2).attempts, 1);
}

// --- PruneExecutions ---

TEST_F(ExecutionStoreTest, PruneDeletesOnlyTerminalExecutions) {
  const Execution done = make_exec("job-a", 1);
  start_ok({done, make_exec("job-a", 2), make_exec("job-a", 3, ExecutionStatus::kSkipped)});
  finish({success_of(done)});
  Result<CommandEffect> r =
      apply_one(PruneExecutions{"job-a", {exec_id(1), exec_id(2), exec_id(3), exec_id(99)}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(std::holds_alternative<std::monostate>(*r));
  EXPECT_EQ(store_->get_execution("job-a", exec_id(1)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->get_execution("job-a", exec_id(3)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(get("job-a", 2).status, ExecutionStatus::kRunning);
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(2)});
}

// --- DeleteJob ---

TEST_F(ExecutionStoreTest, DeleteJobRemovesStateExecutionsAndInFlightMarkers) {
  const Execution done = make_exec("job-a", 1);
  start({done, make_exec("job-a", 2), make_exec("job-b", 3)},
        {ScheduleAdvance{"job-a", kT0}, ScheduleAdvance{"job-b", kT0}});
  finish({success_of(done)});
  ASSERT_TRUE(apply_one(DeleteJob{"job-a", 0}).ok());

  EXPECT_EQ(*store_->get_schedule_state("job-a"), ScheduleState{});
  EXPECT_EQ(store_->get_execution("job-a", exec_id(1)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->get_execution("job-a", exec_id(2)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(3)});
  // The other job is untouched.
  EXPECT_EQ(store_->get_schedule_state("job-b")->last_scheduled, kT0);
  EXPECT_EQ(get("job-b", 3).status, ExecutionStatus::kRunning);
  // Nothing of job-a is left in the keyspace.
  const std::string image = *store_->serialize_snapshot();
  EXPECT_EQ(image.find("job-a"), std::string::npos);
}

TEST_F(ExecutionStoreTest, LateResultForDeletedJobIsNotFound) {
  const Execution e = make_exec("job-a", 1);
  start_ok({e});
  ASSERT_TRUE(apply_one(DeleteJob{"job-a", 0}).ok());
  EXPECT_EQ(code(finish({success_of(e)})[0]), ErrorCode::kNotFound);
  EXPECT_TRUE(in_flight().empty());
}

TEST_F(ExecutionStoreTest, DeleteJobKeepsExecutionsOfAJobWhoseIdExtendsIt) {
  create(ExecutionStoreTest::allowing(make_job("job-a-2", "a2")));
  start_ok({make_exec("job-a-2", 1)});
  ASSERT_TRUE(apply_one(DeleteJob{"job-a", 0}).ok());
  EXPECT_EQ(get("job-a-2", 1).status, ExecutionStatus::kRunning);
  EXPECT_EQ(running_of("job-a-2"), std::vector<std::string>{exec_id(1)});
}

// --- list_executions ---

class ExecutionListTest : public ExecutionStoreTest {
 protected:
  // job-a: executions 1..7; even ones succeeded, odd ones are running.
  void SetUp() override {
    ExecutionStoreTest::SetUp();
    std::vector<Execution> all;
    for (int n = 1; n <= 7; ++n) all.push_back(make_exec("job-a", n));
    start_ok(all);
    std::vector<ExecutionResult> done;
    for (int n = 2; n <= 7; n += 2) done.push_back(success_of(make_exec("job-a", n)));
    finish(done);
    start_ok({make_exec("job-b", 100)});
  }

  // Every page of `query`, as the exec numbers of each page.
  std::vector<std::vector<std::string>> pages(ExecutionQuery query) {
    std::vector<std::vector<std::string>> out;
    for (int guard = 0; guard < 20; ++guard) {
      Result<ExecutionPage> page = store_->list_executions(query);
      CHRONOS_CHECK(page.ok()) << page.error().message;
      out.push_back(ids_of(page->executions));
      if (page->next_cursor.empty()) break;
      query.cursor = page->next_cursor;
    }
    return out;
  }
};

TEST_F(ExecutionListTest, ListsNewestFirst) {
  Result<ExecutionPage> page = store_->list_executions({.job_id = "job-a"});
  ASSERT_TRUE(page.ok());
  std::vector<std::string> expected;
  for (int n = 7; n >= 1; --n) expected.push_back(exec_id(n));
  EXPECT_EQ(ids_of(page->executions), expected);
  EXPECT_EQ(page->next_cursor, "");
}

TEST_F(ExecutionListTest, PagesNewestFirstAcrossPages) {
  EXPECT_EQ(pages({.job_id = "job-a", .limit = 3}),
            (std::vector<std::vector<std::string>>{{exec_id(7), exec_id(6), exec_id(5)},
                                                   {exec_id(4), exec_id(3), exec_id(2)},
                                                   {exec_id(1)}}));
}

TEST_F(ExecutionListTest, PagesWithStatusFilterAcrossPages) {
  EXPECT_EQ(
      pages({.job_id = "job-a", .status = ExecutionStatus::kRunning, .limit = 2}),
      (std::vector<std::vector<std::string>>{{exec_id(7), exec_id(5)}, {exec_id(3), exec_id(1)}}));
  EXPECT_EQ(pages({.job_id = "job-a", .status = ExecutionStatus::kSuccess, .limit = 2}),
            (std::vector<std::vector<std::string>>{{exec_id(6), exec_id(4)}, {exec_id(2)}}));
  EXPECT_EQ(pages({.job_id = "job-a", .status = ExecutionStatus::kFailed}),
            (std::vector<std::vector<std::string>>{{}}));
}

TEST_F(ExecutionListTest, LastFullPageHasNoCursor) {
  Result<ExecutionPage> page = store_->list_executions({.job_id = "job-a", .limit = 7});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->executions.size(), 7u);
  EXPECT_EQ(page->next_cursor, "");
  page =
      store_->list_executions({.job_id = "job-a", .status = ExecutionStatus::kRunning, .limit = 4});
  EXPECT_EQ(page->executions.size(), 4u);
  EXPECT_EQ(page->next_cursor, "");
}

TEST_F(ExecutionListTest, StaysWithinItsJob) {
  EXPECT_EQ(pages({.job_id = "job-b"}), (std::vector<std::vector<std::string>>{{exec_id(100)}}));
}

TEST_F(ExecutionListTest, LimitIsClampedAndZeroMeansDefault) {
  EXPECT_EQ(store_->list_executions({.job_id = "job-a", .limit = 0})->executions.size(), 7u);
  EXPECT_EQ(store_->list_executions({.job_id = "job-a", .limit = 5000})->executions.size(), 7u);
}

TEST_F(ExecutionListTest, MalformedCursorIsAValidationError) {
  for (const std::string& cursor :
       std::vector<std::string>{"zz", "abc", keys::encode_execution_cursor("a/b")}) {
    Result<ExecutionPage> page = store_->list_executions({.job_id = "job-a", .cursor = cursor});
    ASSERT_FALSE(page.ok()) << cursor;
    EXPECT_EQ(page.error().code, ErrorCode::kValidation);
    EXPECT_EQ(page.error().field, "cursor");
  }
}

TEST_F(ExecutionListTest, MissingJobIsNotFound) {
  EXPECT_EQ(store_->list_executions({.job_id = "gone"}).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->list_executions({.job_id = ""}).error().code, ErrorCode::kNotFound);
}

// --- list_in_flight ---

TEST_F(ExecutionStoreTest, InFlightIsOldestFirstAcrossJobs) {
  start_ok({make_exec("job-b", 4)});
  start_ok({make_exec("job-a", 2), make_exec("job-b", 1)});
  start_ok({make_exec("job-a", 3, ExecutionStatus::kSkipped)});
  EXPECT_EQ(in_flight(), (std::vector<std::string>{exec_id(1), exec_id(2), exec_id(4)}));
  const std::vector<Execution> loaded = *store_->list_in_flight("", 10);
  EXPECT_EQ(loaded[0], make_exec("job-b", 1));
}

TEST_F(ExecutionStoreTest, InFlightPagesAfterAnId) {
  start_ok({make_exec("job-a", 1), make_exec("job-b", 2), make_exec("job-a", 3)});
  EXPECT_EQ(ids_of(*store_->list_in_flight("", 2)),
            (std::vector<std::string>{exec_id(1), exec_id(2)}));
  EXPECT_EQ(ids_of(*store_->list_in_flight(exec_id(2), 2)), std::vector<std::string>{exec_id(3)});
  EXPECT_TRUE(store_->list_in_flight(exec_id(3), 2)->empty());
}

// --- for_each_job ---

TEST_F(ExecutionStoreTest, ForEachJobVisitsJobsInIdOrderWithTheirState) {
  create(allowing(make_job("job-0", "zero")));
  start({make_exec("job-b", 1)}, {ScheduleAdvance{"job-b", kT0}});
  std::vector<std::string> ids;
  std::vector<ScheduleState> states;
  ASSERT_TRUE(store_
                  ->for_each_job([&](const model::Job& job, const ScheduleState& state) {
                    ids.push_back(job.id);
                    states.push_back(state);
                    return true;
                  })
                  .ok());
  EXPECT_EQ(ids, (std::vector<std::string>{"job-0", "job-a", "job-b"}));
  EXPECT_EQ(states[0], ScheduleState{});
  EXPECT_EQ(states[1], ScheduleState{});
  EXPECT_EQ(states[2], (ScheduleState{kT0, {exec_id(1)}}));
}

TEST_F(ExecutionStoreTest, ForEachJobStopsWhenTheCallbackSaysSo) {
  int calls = 0;
  ASSERT_TRUE(store_
                  ->for_each_job([&](const model::Job&, const ScheduleState&) {
                    ++calls;
                    return false;
                  })
                  .ok());
  EXPECT_EQ(calls, 1);
}

// --- executions_to_prune ---

class RetentionTest : public ExecutionStoreTest {
 protected:
  // job-a: 1..6 finished (completed at kT0 + n min + 1 s), 7 running.
  void SetUp() override {
    ExecutionStoreTest::SetUp();
    std::vector<Execution> all;
    std::vector<ExecutionResult> done;
    for (int n = 1; n <= 7; ++n) {
      Execution e = make_exec("job-a", n);
      e.started_at = kT0 + absl::Minutes(n);
      all.push_back(e);
      if (n <= 6) done.push_back(success_of(e));
    }
    start_ok(all);
    finish(done);
  }

  std::vector<std::string> to_prune(size_t keep, absl::Time before, size_t limit = 100) {
    Result<std::vector<std::string>> ids =
        store_->executions_to_prune("job-a", keep, before, limit);
    CHRONOS_CHECK(ids.ok()) << ids.error().message;
    return *ids;
  }
};

TEST_F(RetentionTest, KeepsTheNewestAndSelectsOlderTerminalOnesOldestFirst) {
  // Newest 3 are 7 (running), 6, 5: the rest go.
  EXPECT_EQ(to_prune(3, absl::InfinitePast()),
            (std::vector<std::string>{exec_id(1), exec_id(2), exec_id(3), exec_id(4)}));
}

TEST_F(RetentionTest, NothingWhenWithinTheCount) {
  EXPECT_TRUE(to_prune(7, absl::InfinitePast()).empty());
  EXPECT_TRUE(to_prune(100, absl::InfinitePast()).empty());
}

TEST_F(RetentionTest, SelectsTerminalOnesCompletedBeforeTheAgeBound) {
  // Completed at kT0 + n min + 1 s: 1, 2 and 3 completed before kT0 + 3m30s.
  EXPECT_EQ(to_prune(100, kT0 + absl::Minutes(3) + absl::Seconds(30)),
            (std::vector<std::string>{exec_id(1), exec_id(2), exec_id(3)}));
}

TEST_F(RetentionTest, NeverSelectsRunningExecutions) {
  EXPECT_EQ(to_prune(0, kT0 + absl::Hours(1)).size(), 6u);
}

TEST_F(RetentionTest, CombinesCountAndAgeAndRespectsTheLimit) {
  EXPECT_EQ(to_prune(5, kT0 + absl::Minutes(3) + absl::Seconds(30)),
            (std::vector<std::string>{exec_id(1), exec_id(2), exec_id(3)}));
  EXPECT_EQ(to_prune(0, absl::InfinitePast(), 2),
            (std::vector<std::string>{exec_id(1), exec_id(2)}));
}

TEST_F(RetentionTest, SkippedRunWithoutCompletionAgesByItsScheduledTime) {
  Execution skipped = make_exec("job-a", 8, ExecutionStatus::kSkipped);
  skipped.started_at = absl::InfinitePast();
  skipped.completed_at = absl::InfinitePast();
  start_ok({skipped});  // scheduled at kT0 + 8 s
  EXPECT_EQ(to_prune(100, kT0 + absl::Seconds(30)), std::vector<std::string>{exec_id(8)});
}

TEST_F(RetentionTest, PruningTheSelectionLeavesTheNewest) {
  std::vector<std::string> ids = to_prune(2, absl::InfinitePast());
  ASSERT_TRUE(apply_one(PruneExecutions{"job-a", ids}).ok());
  EXPECT_EQ(ids_of(store_->list_executions({.job_id = "job-a"})->executions),
            (std::vector<std::string>{exec_id(7), exec_id(6)}));
}

// --- determinism, snapshots, reopen ---

// The same batches on two stores give the same effects and the same reads.
TEST(ExecutionDeterminism, TwoStoresApplyingTheSameBatchesAgree) {
  std::vector<model::CommandBatch> log;
  log.push_back(
      {{model::PutJob{make_job("job-a", "a"), 0}, model::PutJob{make_job("job-b", "b"), 0}}});
  log.push_back(
      {{StartExecutions{{make_exec("job-a", 1), make_exec("job-b", 2),
                         make_exec("job-a", 3, ExecutionStatus::kSkipped), make_exec("gone", 4)},
                        {ScheduleAdvance{"job-a", kT0}}}}});
  log.push_back(
      {{FinishExecutions{{success_of(make_exec("job-a", 1)), success_of(make_exec("job-a", 1))}},
        RedispatchExecutions{{"job-b"}, {exec_id(2)}, {2}, "n2"}}});
  log.push_back({{StartExecutions{{make_exec("job-a", 5)}, {}},
                  PruneExecutions{"job-a", {exec_id(1), exec_id(5)}}, DeleteJob{"job-b", 0}}});

  TempDir dir;
  std::unique_ptr<Store> a = std::move(Store::open(dir.path("a"))).value();
  std::unique_ptr<Store> b = std::move(Store::open(dir.path("b"))).value();
  for (size_t i = 0; i < log.size(); ++i) {
    Result<ApplyOutcome> ra = a->apply(i + 1, log[i]);
    Result<ApplyOutcome> rb = b->apply(i + 1, log[i]);
    ASSERT_TRUE(ra.ok() && rb.ok());
    ASSERT_EQ(ra->results.size(), rb->results.size());
    for (size_t k = 0; k < ra->results.size(); ++k) {
      ASSERT_EQ(ra->results[k].ok(), rb->results[k].ok());
      if (!ra->results[k].ok()) continue;
      ASSERT_EQ(ra->results[k]->index(), rb->results[k]->index());
      if (const auto* items = std::get_if<ItemResults>(&*ra->results[k])) {
        const auto& other = std::get<ItemResults>(*rb->results[k]).items;
        ASSERT_EQ(items->items.size(), other.size());
        for (size_t j = 0; j < other.size(); ++j) {
          EXPECT_EQ(items->items[j].ok(), other[j].ok());
          if (!other[j].ok()) {
            EXPECT_EQ(items->items[j].error(), other[j].error());
          }
        }
      }
    }
  }
  EXPECT_EQ(*a->serialize_snapshot(), *b->serialize_snapshot());
  EXPECT_EQ(a->list_executions({.job_id = "job-a"})->executions,
            b->list_executions({.job_id = "job-a"})->executions);
  EXPECT_EQ(*a->list_in_flight("", 100), *b->list_in_flight("", 100));
  EXPECT_EQ(*a->get_schedule_state("job-a"), *b->get_schedule_state("job-a"));
}

TEST_F(ExecutionStoreTest, ExecutionsStateAndInFlightSurviveSnapshotAndRestore) {
  const Execution done = make_exec("job-a", 1);
  start({done, make_exec("job-a", 2), make_exec("job-b", 3)}, {ScheduleAdvance{"job-a", kT0}});
  finish({success_of(done)});
  const std::string image = *store_->serialize_snapshot();

  std::unique_ptr<Store> other = open_store(dir_.path("restored"));
  ASSERT_TRUE(other->restore_snapshot(image).ok());
  EXPECT_EQ(other->applied_index(), store_->applied_index());
  EXPECT_EQ(*other->get_schedule_state("job-a"), *store_->get_schedule_state("job-a"));
  EXPECT_EQ(*other->get_execution("job-a", exec_id(1)), get("job-a", 1));
  EXPECT_EQ(other->list_executions({.job_id = "job-a"})->executions,
            store_->list_executions({.job_id = "job-a"})->executions);
  EXPECT_EQ(ids_of(*other->list_in_flight("", 100)),
            (std::vector<std::string>{exec_id(2), exec_id(3)}));
}

TEST_F(ExecutionStoreTest, ExecutionsSurviveReopen) {
  start_ok({make_exec("job-a", 1)});
  store_.reset();
  store_ = open_store(dir_.path());
  EXPECT_EQ(get("job-a", 1), make_exec("job-a", 1));
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(1)});
}

// --- keys ---

TEST(StoreKeys, ExecutionCursorRoundTrips) {
  const std::string id = exec_id(42);
  EXPECT_EQ(keys::decode_execution_cursor(keys::encode_execution_cursor(id)), id);
  EXPECT_EQ(keys::decode_execution_cursor(""), std::nullopt);
  EXPECT_EQ(keys::decode_execution_cursor("0"), std::nullopt);
}

TEST(StoreKeys, ExecutionKeysOfAJobShareItsPrefixOnly) {
  EXPECT_TRUE(keys::execution("a", "x").starts_with(keys::executions_prefix("a")));
  EXPECT_FALSE(keys::execution("a-b", "x").starts_with(keys::executions_prefix("a")));
  EXPECT_EQ(keys::running("x"), "r/x");
  EXPECT_EQ(keys::schedule("a"), "s/a");
}

TEST_F(ExecutionStoreTest, ForbidSkipsASecondStartAtApplyTime) {
  model::Job forbid = make_job("job-f", "f");
  forbid.concurrency = model::Concurrency::kForbid;
  create(forbid);
  auto items = start({make_exec("job-f", 1), make_exec("job-f", 2)});
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[0].ok());
  ASSERT_FALSE(items[1].ok());
  EXPECT_EQ(items[1].error().code, ErrorCode::kConflict);
  auto second = store_->get_execution("job-f", exec_id(2));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->status, ExecutionStatus::kSkipped);
  EXPECT_EQ(running_of("job-f"), std::vector<std::string>{exec_id(1)});
}

TEST_F(ExecutionStoreTest, ForcedStartRunsDespiteForbid) {
  model::Job forbid = make_job("job-f", "f");
  forbid.concurrency = model::Concurrency::kForbid;
  create(forbid);
  start_ok({make_exec("job-f", 1)});
  StartExecutions forced{{make_exec("job-f", 2)}, {}};
  forced.force = true;
  auto items = items_of(apply_one(forced));
  ASSERT_EQ(items.size(), 1u);
  EXPECT_TRUE(items[0].ok());
  EXPECT_EQ(running_of("job-f").size(), 2u);
}

// ---- the overlap rule's waiting line (model/concurrency.h) ----

class WaitingLineTest : public ExecutionStoreTest {
 protected:
  void SetUp() override {
    ExecutionStoreTest::SetUp();
    model::Job b1 = make_job("job-q", "q");
    b1.concurrency = model::Concurrency::kBufferOne;
    create(b1);
    model::Job f = make_job("job-f", "f");
    f.concurrency = model::Concurrency::kForbid;
    create(f);
  }

  ItemResults start_items(std::vector<Execution> executions) {
    auto r = apply_one(StartExecutions{std::move(executions), {}});
    CHRONOS_CHECK(r.ok()) << r.error().message;
    return std::get<ItemResults>(*r);
  }

  ItemResults finish_items(std::vector<ExecutionResult> results) {
    auto r = apply_one(FinishExecutions{std::move(results)});
    CHRONOS_CHECK(r.ok()) << r.error().message;
    return std::get<ItemResults>(*r);
  }

  ScheduleState state_of(const std::string& job_id) { return *store_->get_schedule_state(job_id); }

  // Run n of `job_id`, started `late` after its scheduled time.
  static Execution late_exec(const std::string& job_id, int n, absl::Duration late) {
    Execution e = make_exec(job_id, n);
    e.started_at = e.scheduled_time + late;
    return e;
  }
};

TEST_F(WaitingLineTest, BufferOneLetsTheNextRunWaitAndStartsItWhenTheActiveOneEnds) {
  ItemResults first = start_items({make_exec("job-q", 1)});
  EXPECT_EQ(ids_of(first.started), std::vector<std::string>{exec_id(1)});
  ItemResults second = start_items({make_exec("job-q", 2)});
  ASSERT_TRUE(second.items[0].ok());
  EXPECT_TRUE(second.started.empty());
  EXPECT_EQ(get("job-q", 2).status, ExecutionStatus::kPending);
  EXPECT_EQ(state_of("job-q").waiting, std::vector<std::string>{exec_id(2)});
  // Waiting is not in flight: a new leader does not dispatch it.
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(1)});

  ExecutionResult done = success_of(get("job-q", 1));
  ItemResults finished = finish_items({done});
  ASSERT_EQ(finished.started.size(), 1u);
  EXPECT_EQ(finished.started[0].id, exec_id(2));
  EXPECT_EQ(finished.started[0].status, ExecutionStatus::kRunning);
  EXPECT_EQ(finished.started[0].started_at, done.completed_at);
  EXPECT_EQ(get("job-q", 2).status, ExecutionStatus::kRunning);
  EXPECT_EQ(running_of("job-q"), std::vector<std::string>{exec_id(2)});
  EXPECT_TRUE(state_of("job-q").waiting.empty());
  EXPECT_EQ(in_flight(), std::vector<std::string>{exec_id(2)});
}

TEST_F(WaitingLineTest, BufferOneSkipsARunWhenOneAlreadyWaits) {
  start_ok({make_exec("job-q", 1), make_exec("job-q", 2)});
  auto items = start({make_exec("job-q", 3)});
  ASSERT_FALSE(items[0].ok());
  EXPECT_EQ(items[0].error().code, ErrorCode::kConflict);
  EXPECT_EQ(get("job-q", 3).status, ExecutionStatus::kSkipped);
  EXPECT_EQ(state_of("job-q").waiting, std::vector<std::string>{exec_id(2)});
}

TEST_F(WaitingLineTest, ARedispatchedRunMakesTheNextOneWaitInsteadOfBeingSkipped) {
  start_ok({make_exec("job-f", 1)});
  auto items = items_of(apply_one(RedispatchExecutions{{"job-f"}, {exec_id(1)}, {1}, "n2"}));
  ASSERT_TRUE(items[0].ok());
  EXPECT_EQ(state_of("job-f").delayed, std::vector<std::string>{exec_id(1)});
  // Under forbid, with the active run delayed by a failover, the next ones
  // wait (bounded) and then run one after another.
  start_ok({make_exec("job-f", 2), make_exec("job-f", 3)});
  EXPECT_EQ(state_of("job-f").waiting, (std::vector<std::string>{exec_id(2), exec_id(3)}));
  ItemResults a = finish_items({success_of(get("job-f", 1))});
  EXPECT_EQ(ids_of(a.started), std::vector<std::string>{exec_id(2)});
  ItemResults b = finish_items({success_of(get("job-f", 2))});
  EXPECT_EQ(ids_of(b.started), std::vector<std::string>{exec_id(3)});
  ItemResults c = finish_items({success_of(get("job-f", 3))});
  EXPECT_TRUE(c.started.empty());
  EXPECT_EQ(state_of("job-f"), (ScheduleState{absl::InfinitePast(), {}, {}, {}}));
}

TEST_F(WaitingLineTest, ARetryDoesNotMarkTheRunDelayed) {
  start_ok({make_exec("job-f", 1)});
  RedispatchExecutions retry{{"job-f"}, {exec_id(1)}, {1}, "n1"};
  retry.retry = true;
  ASSERT_TRUE(items_of(apply_one(retry))[0].ok());
  EXPECT_TRUE(state_of("job-f").delayed.empty());
  auto items = start({make_exec("job-f", 2)});
  EXPECT_EQ(items[0].error().code, ErrorCode::kConflict);
}

TEST_F(WaitingLineTest, ALateStartWaitsBehindAnOnTimeRunUnderForbid) {
  start_ok({make_exec("job-f", 1)});
  ItemResults late = start_items({late_exec("job-f", 2, absl::Seconds(2))});
  ASSERT_TRUE(late.items[0].ok());
  EXPECT_EQ(get("job-f", 2).status, ExecutionStatus::kPending);
  EXPECT_EQ(state_of("job-f").delayed, std::vector<std::string>{exec_id(2)});
}

TEST_F(WaitingLineTest, TheWaitingLineIsBounded) {
  start_ok({late_exec("job-f", 1, absl::Seconds(5))});
  std::vector<Execution> more;
  for (int n = 2; n <= static_cast<int>(model::kMaxWaitingRuns) + 2; ++n) {
    more.push_back(make_exec("job-f", n));
  }
  auto items = start(std::move(more));
  size_t skipped = 0;
  for (const Status& s : items) skipped += !s.ok();
  EXPECT_EQ(skipped, 1u);
  EXPECT_EQ(state_of("job-f").waiting.size(), model::kMaxWaitingRuns);
}

TEST_F(WaitingLineTest, CancellingAWaitingRunTakesItOutOfTheLine) {
  start_ok({make_exec("job-q", 1), make_exec("job-q", 2)});
  ExecutionResult cancel{"job-q", exec_id(2), ExecutionStatus::kCancelled, 0, 0, "",
                         "",      "n1",       kT0 + absl::Seconds(9)};
  ItemResults r = finish_items({cancel});
  ASSERT_TRUE(r.items[0].ok());
  EXPECT_TRUE(r.started.empty());
  EXPECT_TRUE(state_of("job-q").waiting.empty());
  EXPECT_EQ(running_of("job-q"), std::vector<std::string>{exec_id(1)});
  // A waiting run cannot be re-dispatched: it was never started.
  start_ok({make_exec("job-q", 3)});
  auto items = items_of(apply_one(RedispatchExecutions{{"job-q"}, {exec_id(3)}, {1}, "n2"}));
  EXPECT_EQ(items[0].error().code, ErrorCode::kConflict);
}

TEST_F(WaitingLineTest, DeletingTheJobDropsItsWaitingLine) {
  start_ok({make_exec("job-q", 1), make_exec("job-q", 2)});
  ASSERT_TRUE(apply_one(DeleteJob{"job-q", 0}).ok());
  EXPECT_EQ(state_of("job-q"), ScheduleState{});
  EXPECT_FALSE(store_->get_execution("job-q", exec_id(2)).ok());
}

}  // namespace
}  // namespace chronos::store
