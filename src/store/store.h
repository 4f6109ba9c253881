#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "model/command.h"
#include "model/execution.h"
#include "model/job.h"

namespace chronos::store {

// A file in the store directory written by `chronos restore`: the store's
// state came from a backup, not from the Raft log next to it. The node
// removes it once its first snapshot covers that state.
inline constexpr std::string_view kRestoredMarker = "CHRONOS_RESTORED";

// Per-item outcome of a command that carries many items (StartExecutions,
// FinishExecutions, RedispatchExecutions), in the command's item order. A
// failed item changed nothing; the others applied.
struct ItemResults {
  std::vector<Status> items;
  // The executions this command made running, as stored: for
  // StartExecutions those the overlap rule let run (not those that wait or
  // were skipped), for FinishExecutions the heads of waiting lines it
  // started. What the leader dispatches.
  std::vector<model::Execution> started;
};

// What applying one command did, reported back to its proposer.
//   PutJob    -> the job as stored (Job)
//   DeleteJob -> the job as it was before deletion (Job)
//   StartExecutions, FinishExecutions, RedispatchExecutions -> ItemResults
//   Noop, PruneExecutions, PutMember -> std::monostate
using CommandEffect = std::variant<std::monostate, model::Job, ItemResults>;

struct ApplyOutcome {
  uint64_t index = 0;
  // True when the entry was at or below the applied index and was skipped
  // (replay after restart); `results` is then empty.
  bool skipped = false;
  // One per command, in batch order. A failed precondition (kNotFound,
  // kAlreadyExists, kConflict) or a malformed command (kValidation: a '/' in
  // a key part, a version the proposer got wrong) leaves the state unchanged
  // for that command; later commands of the batch still apply.
  std::vector<Result<CommandEffect>> results;
};

struct ListQuery {
  std::optional<std::string> namespace_;
  std::map<std::string, std::string> tags;  // all must match
  std::optional<bool> enabled;
  std::string q;       // substring of name or description, case-insensitive
  std::string cursor;  // opaque; from ListPage::next_cursor
  size_t limit = 100;  // 1..1000
};

struct ListPage {
  std::vector<model::Job> jobs;  // ordered by (namespace, name)
  std::string next_cursor;       // empty when this is the last page
};

struct VersionInfo {
  int64_t version = 0;
  absl::Time updated_at;
};

// Replicated per-job scheduling state (s/<job_id>). A job that has never
// been scheduled has the default state.
struct ScheduleState {
  // The latest scheduled time the scheduler has consumed (started, skipped
  // or deliberately missed); runs after it are still due. InfinitePast when
  // never scheduled.
  absl::Time last_scheduled = absl::InfinitePast();
  // Executions started and not finished, oldest first (concurrency policy).
  std::vector<std::string> running;
  // Executions waiting for the running ones to end (status pending), in the
  // order they start (model/concurrency.h). Non-empty only while `running`
  // is; at most model::kMaxWaitingRuns.
  std::vector<std::string> waiting;
  // The ids among running and waiting made late by the scheduler itself
  // (a failover, an outage): the overlap rule lets the next run wait
  // behind them instead of skipping it.
  std::vector<std::string> delayed;
  bool operator==(const ScheduleState&) const = default;
};

// One node registry record (model::PutMember as applied).
struct MemberRecord {
  uint64_t raft_id = 0;
  std::string name;
  std::string raft_address;
  std::string http_address;
  bool operator==(const MemberRecord&) const = default;
};

struct ExecutionQuery {
  std::string job_id;  // required
  std::optional<model::ExecutionStatus> status;
  std::string cursor;  // opaque; from ExecutionPage::next_cursor
  size_t limit = 100;  // 1..1000
};

struct ExecutionPage {
  std::vector<model::Execution> executions;  // newest first
  std::string next_cursor;                   // empty on the last page
};

// The replicated state machine's materialised view in RocksDB (keyspace in
// DESIGN.md). Owns the RocksDB instance in `dir`.
//
// Thread safety: apply() and restore_snapshot() are called from one thread
// only (the Raft loop). All read methods are safe from any thread
// concurrently with apply; each read sees a consistent state (a RocksDB
// snapshot), either before or after any given apply.
class Store {
 public:
  virtual ~Store() = default;

  // Opens or creates the store in `dir` (created if missing).
  static Result<std::unique_ptr<Store>> open(const std::string& dir);

  // Highest log index applied (0 for a new store). Persisted atomically with
  // the effects of that entry.
  virtual uint64_t applied_index() const = 0;

  // Applies `batch` as log entry `index` in ONE RocksDB WriteBatch that also
  // records `index` as the applied index. Entries with index <= applied_index()
  // are skipped (idempotent replay). Deterministic: the same state and batch
  // give the same result on every node. An I/O error is returned as Error
  // (the caller must stop: state would diverge).
  virtual Result<ApplyOutcome> apply(uint64_t index, const model::CommandBatch& batch) = 0;

  // --- reads ---
  virtual Result<model::Job> get_job(std::string_view id) const = 0;  // kNotFound
  virtual Result<model::Job> find_job(std::string_view ns, std::string_view name) const = 0;
  virtual Result<model::Job> get_job_version(std::string_view id, int64_t version) const = 0;
  // One page of the job's versions, newest first: those strictly below
  // `before_version` (0 = no bound: start at the newest; negative = none),
  // at most `limit` of them (clamped to 1..1000; 0 means 100). The next page
  // is before_version = the last returned version; an empty or short page is
  // the last. kNotFound when the job does not exist.
  virtual Result<std::vector<VersionInfo>> list_versions(std::string_view id,
                                                         int64_t before_version,
                                                         size_t limit) const = 0;
  // kValidation (field "cursor") for a malformed cursor.
  virtual Result<ListPage> list_jobs(const ListQuery& query) const = 0;
  virtual uint64_t job_count() const = 0;

  // --- scheduling and executions ---
  // The default state when s/<job_id> is absent (also for a missing job).
  virtual Result<ScheduleState> get_schedule_state(std::string_view job_id) const = 0;
  // kNotFound when missing.
  virtual Result<model::Execution> get_execution(std::string_view job_id,
                                                 std::string_view execution_id) const = 0;
  // Newest first; kValidation (field "cursor") for a malformed cursor;
  // kNotFound when the job does not exist (checked at the same snapshot).
  // Limit clamped to 1..1000, 0 means 100.
  virtual Result<ExecutionPage> list_executions(const ExecutionQuery& query) const = 0;
  // Executions started and not finished (r/), cluster-wide, oldest first,
  // at most `limit` (0 means 100; not clamped) after `after_id` ("" = from
  // the start). The next page starts after the last id returned; a page
  // shorter than `limit` is the last.
  virtual Result<std::vector<model::Execution>> list_in_flight(std::string_view after_id,
                                                               size_t limit) const = 0;
  // Calls `fn` for every job with its schedule state, in job id order, at
  // one consistent snapshot; stops early when `fn` returns false. For the
  // scheduler's rebuild on gaining leadership (O(jobs), off the hot path).
  virtual Status for_each_job(
      const std::function<bool(const model::Job&, const ScheduleState&)>& fn) const = 0;
  // The same over the jobs' timing records (c/, kept by apply), from the
  // first job id after `after_id` ("" = from the start): what the
  // scheduler loads, without decoding whole jobs. A new leader reads them
  // a slice at a time (each slice at its own snapshot), resuming after the
  // last id it saw.
  virtual Status for_each_timing(
      std::string_view after_id,
      const std::function<bool(const model::JobTiming&, const ScheduleState&)>& fn) const = 0;
  // Terminal executions of a job, oldest first, beyond which retention
  // applies: everything except the newest `keep_newest`, plus those that
  // completed before `completed_before` (InfinitePast = no age bound; an
  // execution without completed_at ages by started_at, else by
  // scheduled_time). At most `limit` ids (clamped to 1..1000, 0 means 100);
  // an empty list for a missing job.
  virtual Result<std::vector<std::string>> executions_to_prune(std::string_view job_id,
                                                               size_t keep_newest,
                                                               absl::Time completed_before,
                                                               size_t limit) const = 0;

  // --- cluster ---
  // The node registry (m/member/), in raft id order. At most a handful of
  // records (one per member ever recorded and not removed).
  virtual Result<std::vector<MemberRecord>> list_members() const = 0;

  // --- snapshots (Raft FSM snapshot / restore, backup) ---
  // A consistent image of the whole keyspace, including the applied index
  // (snapshot_image.h: format version 2, compressed frames), as chunks that
  // concatenated in order are the image; no allocation holds more than one
  // compressed frame.
  struct SnapshotChunks {
    std::vector<std::string> chunks;
    uint64_t raw_bytes = 0;  // the image's size uncompressed
  };
  virtual Result<SnapshotChunks> serialize_snapshot_chunks() const = 0;
  // The same image as one string (backups, tests).
  Result<std::string> serialize_snapshot() const;
  // The applied index recorded in a snapshot image, without restoring it.
  static Result<uint64_t> snapshot_applied_index(std::string_view image);
  // Replaces the whole keyspace with `image` (version 1 or 2). The image is
  // checked whole first (every frame decompressed and checked, nothing
  // kept), so a corrupt one changes nothing. It is then written in batches
  // of a few MiB, not one WriteBatch of the whole store, under the marker
  // m/restoring: a crash part way leaves the marker, and open() empties a
  // store that holds it, so libraft restores the snapshot again at start-up
  // (it stores an image before it restores it). A write that fails part way
  // ends the process with the reason, for the same restart: the store
  // would otherwise claim state it no longer holds. Meanwhile restoring()
  // is true.
  virtual Status restore_snapshot(std::string_view image) = 0;
  // True while restore_snapshot or import_backup is writing: the keyspace
  // is then part of an image, so reads outside the log's order (a
  // follower's local GET, a backup) must not be served from it.
  virtual bool restoring() const { return false; }

  // --- backup import (`chronos restore`) ---
  // Seeds this empty store from a backup (an image from serialize_snapshot,
  // as GET /cluster/backup serves it) so it can start a NEW cluster. Keeps
  // the data: jobs, versions, name index, schedule state, executions and
  // in-flight markers (the new leader re-dispatches those). Drops the old
  // cluster's bookkeeping, every m/ key (its applied index, which counts a
  // log this store will never see, and the node registry m/member/), and
  // leaves the applied index at 0 so a fresh Raft log applies from its
  // start. Written in batches under m/restoring like restore_snapshot; a
  // store an import left part-written counts as empty for the next try.
  // kValidation (field "snapshot") for a corrupt or truncated image (same
  // checks as restore_snapshot); kAlreadyExists (field "store") unless the
  // store is empty (applied index 0, no key but the m/ meta of a fresh
  // store). Either way nothing is changed. Same thread rule as apply: call it
  // before the store is handed to Raft.
  virtual Status import_backup(std::string_view image) = 0;
};

}  // namespace chronos::store
