#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"
#include "model/execution.h"
#include "model/job.h"

namespace chronos::model {

// Raft commands (DESIGN "The replicated log"). Everything non-deterministic
// (ids, timestamps, versions) is decided by the proposer and carried here,
// so apply on every node computes the same state.
//
// Preconditions (`expected_version`, name uniqueness, existence) are checked
// at apply time against the state of that moment; a command whose
// precondition fails changes nothing and reports the error to the proposer.

// Creates a job (expected_version == 0: it must not exist, and its
// namespace/name must be free) or replaces it (expected_version == the
// stored version; job.version must be expected_version + 1). Every version
// is kept for history and rollback.
struct PutJob {
  Job job;
  int64_t expected_version = 0;
  bool operator==(const PutJob&) const = default;
};

// Deletes a job, its versions and name index entry.
// expected_version 0 = any version.
struct DeleteJob {
  std::string job_id;
  int64_t expected_version = 0;
  bool operator==(const DeleteJob&) const = default;
};

// Does nothing; used as a barrier / leadership confirmation.
struct Noop {
  bool operator==(const Noop&) const = default;
};

// Starts executions (scheduled, catch-up, manual, replay) and records what
// the scheduler consumed, in one entry (DESIGN "Key algorithms"). For each
// execution: writes e/<job_id>/<exec_id>. One proposed kRunning (or
// kPending) goes through the job's overlap rule (model/concurrency.h) at
// apply: run (stored kRunning, r/<exec_id> in flight, added to s/<job_id>'s
// running set), wait (stored kPending in s/<job_id>'s waiting line) or skip
// (stored kSkipped, its item fails with kConflict). One proposed kSkipped
// is stored terminal at once. A
// job that no longer exists makes that execution fail with kNotFound and
// nothing is written for it; an id that already exists (a re-proposal) is
// kAlreadyExists and changes nothing. `schedule` moves
// s/<job_id>.last_scheduled forward (never backwards; jobs that no longer
// exist are ignored; a time without an RFC 3339 form fails the whole
// command with kValidation). The proposer bounds the size of one command
// (apply does work proportional to it).
struct ScheduleAdvance {
  std::string job_id;
  absl::Time last_scheduled = absl::InfinitePast();  // latest scheduled time consumed
  bool operator==(const ScheduleAdvance&) const = default;
};
struct StartExecutions {
  std::vector<Execution> executions;
  std::vector<ScheduleAdvance> schedule;
  // `force` (a manual ?force=true) exempts the whole command from the
  // overlap rule: its executions run.
  bool force = false;
  bool operator==(const StartExecutions&) const = default;
};

// Finishes executions: status (terminal, else kValidation), attempts,
// code, response excerpt, error, node_id, completed_at. Removes
// r/<exec_id> and the id from s/<job_id>'s running set (or waiting line);
// when the last running one ends, the head of the waiting line starts
// (kRunning, started_at = this result's completed_at, r/ written) and is
// reported in ItemResults::started. Finishing an
// execution that is missing or already terminal is a no-op reported as
// kNotFound / kConflict (a late duplicate result after failover must not
// overwrite the first). Stored attempts never decrease (max of stored and
// given); an empty node_id keeps the stored one; response and error are
// capped at kMaxResponseBytes / kMaxErrorBytes (never splitting a UTF-8
// sequence) and may hold any bytes.
struct ExecutionResult {
  std::string job_id;
  std::string execution_id;
  ExecutionStatus status = ExecutionStatus::kSuccess;
  int attempts = 0;
  int status_code = 0;
  std::string response;
  std::string error;
  std::string node_id;
  absl::Time completed_at = absl::InfinitePast();
  bool operator==(const ExecutionResult&) const = default;
};
struct FinishExecutions {
  std::vector<ExecutionResult> results;
  bool operator==(const FinishExecutions&) const = default;
};

// Records, before it is sent, that another attempt of running executions
// is about to be made: by a new leader re-dispatching what an earlier one
// left in flight, or by the leader retrying a failed attempt (`retry`).
// Sets attempts (never lowered: the attempts that may already have been
// sent) and node_id of each; the status stays kRunning. Committing this
// before the next attempt is what keeps the attempt numbers a target sees
// increasing across leader changes. A re-dispatch (not `retry`) marks the
// execution delayed for the overlap rule (model/concurrency.h). Per item:
// kNotFound when missing, kConflict when already terminal or still waiting
// in its job's line (pending), kValidation when the parallel lists are
// shorter than execution_ids (decode_batch refuses unequal lengths).
struct RedispatchExecutions {
  std::vector<std::string> job_ids;  // parallel to execution_ids
  std::vector<std::string> execution_ids;
  std::vector<int> attempts;
  std::string node_id;
  bool retry = false;
  // Parallel to execution_ids, or empty: when each next attempt is due
  // (Execution::next_attempt_at; unset clears it).
  std::vector<absl::Time> next_attempt_at;
  bool operator==(const RedispatchExecutions&) const = default;
};

// Deletes terminal executions of one job (history retention: newest
// history.max_per_job kept, older than history.max_age dropped). Ids that
// are missing or not terminal are ignored.
struct PruneExecutions {
  std::string job_id;
  std::vector<std::string> execution_ids;
  bool operator==(const PruneExecutions&) const = default;
};

// Records one cluster member in the node registry (m/member/<raft_id>):
// its configured name and the addresses clients and peers use. Raft itself
// knows members only by numeric id and Raft address; forwarding needs the
// leader's HTTP address and status pages need names. Replaces any earlier
// record of the same raft id. An empty `name` removes the record (a member
// removed from the Raft configuration).
struct PutMember {
  uint64_t raft_id = 0;
  std::string name;
  std::string raft_address;
  std::string http_address;  // host:port of its API
  bool operator==(const PutMember&) const = default;
};

using Command = std::variant<PutJob, DeleteJob, Noop, StartExecutions, FinishExecutions,
                             RedispatchExecutions, PruneExecutions, PutMember>;

// One Raft log entry: a batch of commands applied atomically in order.
struct CommandBatch {
  std::vector<Command> commands;
  bool operator==(const CommandBatch&) const = default;
};

// Binary codec of a batch: a 4-byte magic "CHRB", a format version byte, a
// u32 count, then per command a u8 type tag, a u32 length and a payload
// (MessagePack of the command's internal JSON form). Integers little-endian.
// decode rejects unknown versions / tags and truncated input with an error
// (never crashes): a corrupted entry must be detected, not applied.
std::string encode_batch(const CommandBatch& batch);
Result<CommandBatch> decode_batch(std::string_view bytes);

// Group commit: one encoded batch holding the commands of `parts` (each
// from encode_batch) in order, without decoding them. Applying it has the
// effects of applying the parts one after another.
std::string concat_encoded_batches(const std::vector<std::string_view>& parts);

}  // namespace chronos::model
