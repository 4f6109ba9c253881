#pragma once

// Shared fixtures for the store tests: a temporary directory, job builders
// and a fixture that applies commands as consecutive log entries.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/check.h"
#include "model/command.h"
#include "model/job.h"
#include "store/store.h"

namespace chronos::store::test_support {

using model::CommandBatch;
using model::Job;
using model::PutJob;

// A fresh directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "store_test.XXXXXX").string();
    CHRONOS_CHECK(mkdtemp(templ.data()) != nullptr) << "mkdtemp failed";
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path(std::string_view sub = "db") const { return (path_ / sub).string(); }

 private:
  std::filesystem::path path_;
};

inline Job make_job(std::string id, std::string name, std::string ns = "default",
                    int64_t version = 1) {
  Job job;
  job.id = std::move(id);
  job.name = std::move(name);
  job.namespace_ = std::move(ns);
  job.schedule = "*/5 * * * *";
  job.description = "job " + job.name;
  job.created_at = absl::FromUnixSeconds(1700000000);
  job.updated_at = absl::FromUnixSeconds(1700000000 + version);
  job.version = version;
  return job;
}

// The next version of `job` as a proposer would build it.
inline Job next_version(Job job) {
  ++job.version;
  job.updated_at += absl::Seconds(1);
  return job;
}

inline const absl::Time kT0 = absl::FromUnixSeconds(1710000000);

// A UUIDv7-shaped id (36 chars) whose order is the order of `n`, as real
// time-ordered ids are.
inline std::string exec_id(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "018e0000-0000-7000-8000-%012d", n);
  return buf;
}

// Execution `n` of a job, scheduled at kT0 + n s, started 3 ms later.
inline model::Execution make_exec(const std::string& job_id, int n,
                                  model::ExecutionStatus status = model::ExecutionStatus::kRunning,
                                  std::string node_id = "n1") {
  model::Execution e;
  e.id = exec_id(n);
  e.job_id = job_id;
  e.job_name = "name-" + job_id;
  e.namespace_ = "default";
  e.job_version = 1;
  e.scheduled_time = kT0 + absl::Seconds(n);
  e.status = status;
  e.attempts = status == model::ExecutionStatus::kSkipped ? 0 : 1;
  e.started_at = kT0 + absl::Seconds(n) + absl::Milliseconds(3);
  if (model::is_terminal(status)) e.completed_at = e.started_at;
  e.node_id = std::move(node_id);
  return e;
}

inline CommandBatch batch_of(std::vector<model::Command> commands) {
  return CommandBatch{std::move(commands)};
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = open_store(dir_.path()); }

  static std::unique_ptr<Store> open_store(const std::string& path) {
    Result<std::unique_ptr<Store>> store = Store::open(path);
    CHRONOS_CHECK(store.ok()) << store.error().message;
    return std::move(store).value();
  }

  // Applies `commands` as the next log entry; returns the per-command results.
  std::vector<Result<CommandEffect>> apply(std::vector<model::Command> commands) {
    Result<ApplyOutcome> outcome = store_->apply(++index_, batch_of(std::move(commands)));
    CHRONOS_CHECK(outcome.ok()) << outcome.error().message;
    CHRONOS_CHECK(!outcome->skipped);
    return std::move(outcome).value().results;
  }

  Result<CommandEffect> apply_one(model::Command command) {
    std::vector<Result<CommandEffect>> results = apply({std::move(command)});
    CHRONOS_CHECK(results.size() == 1);
    return std::move(results[0]);
  }

  void create(const Job& job) {
    Result<CommandEffect> r = apply_one(PutJob{job, 0});
    CHRONOS_CHECK(r.ok()) << r.error().message;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  uint64_t index_ = 0;
};

}  // namespace chronos::store::test_support
