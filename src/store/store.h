#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.h"
#include "model/command.h"
#include "model/job.h"

namespace chronos::store {

// What applying one command did, reported back to its proposer.
//   PutJob    -> the job as stored (Job)
//   DeleteJob -> the job as it was before deletion (Job)
//   Noop      -> std::monostate
using CommandEffect = std::variant<std::monostate, model::Job>;

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

  // --- snapshots (Raft FSM snapshot / restore, backup) ---
  // A consistent image of the whole keyspace, including the applied index,
  // as one self-describing byte string (magic, format version, applied index,
  // then length-prefixed key/value pairs, crc32 at the end).
  virtual Result<std::string> serialize_snapshot() const = 0;
  // The applied index recorded in a snapshot image, without restoring it.
  static Result<uint64_t> snapshot_applied_index(std::string_view image);
  // Replaces the whole keyspace with `image` atomically (one WriteBatch that
  // deletes every existing key and writes the image's), so a crash leaves
  // either the old or the new state. Validates the image first (crc) and
  // changes nothing if it is corrupt.
  virtual Status restore_snapshot(std::string_view image) = 0;
};

}  // namespace chronos::store
