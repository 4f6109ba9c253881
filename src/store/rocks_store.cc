// RocksDB implementation of Store. RocksDB headers stay in this file so the
// rest of the project compiles without them.

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "base/strings.h"
#include "model/concurrency.h"
#include "model/execution_codec.h"
#include "model/job_codec.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "store/keys.h"
#include "store/snapshot_image.h"
#include "store/store.h"
#include "store/timing_record.h"

namespace chronos::store {

namespace {

// keys::kJobCount's value: the applied index it is current at, then the count.
std::string job_count_value(uint64_t applied_index, uint64_t count) {
  return keys::encode_u64(applied_index) + keys::encode_u64(count);
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

rocksdb::Slice to_slice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// RocksDB failures are I/O (disk full, corruption on read): the caller cannot
// fix them by changing its request.
Error io_error(std::string_view what, const rocksdb::Status& s) {
  return Error{ErrorCode::kUnavailable, "store: " + std::string(what) + ": " + s.ToString(), {}};
}

Error already_exists(std::string field, std::string message) {
  return Error{ErrorCode::kAlreadyExists, std::move(message), std::move(field)};
}

Error name_taken(const model::Job& job) {
  return already_exists("name", "a job named \"" + job.name + "\" already exists in namespace \"" +
                                    job.namespace_ + "\"");
}

Error version_conflict(int64_t stored, int64_t expected) {
  return Error{ErrorCode::kConflict,
               "version mismatch: job is at version " + std::to_string(stored) + ", expected " +
                   std::to_string(expected),
               "version"};
}

Error job_not_found(std::string_view id) {
  return Error::not_found("job " + std::string(id) + " not found");
}

// Job values are MessagePack of the internal JSON form (lossless, secrets
// kept). nlohmann throws; this is the edge where that becomes a Result.
Result<std::string> encode_job(const model::Job& job) {
  try {
    std::string out;
    nlohmann::json::to_msgpack(model::job_to_internal_json(job), out);
    return out;
  } catch (const nlohmann::json::exception& e) {
    return Error::internal(std::string("cannot encode job ") + job.id + ": " + e.what());
  }
}

// A stored value that does not decode means the store is corrupt: kInternal.
Result<model::Job> decode_job(std::string_view bytes) {
  try {
    const nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end());
    Result<model::Job> job = model::job_from_internal_json(j);
    if (!job.ok()) return Error::internal("stored job is corrupt: " + job.error().message);
    return job;
  } catch (const nlohmann::json::exception& e) {
    return Error::internal(std::string("stored job is corrupt: ") + e.what());
  }
}

// Execution values: MessagePack of the execution's internal JSON form.
Result<std::string> encode_execution(const model::Execution& e) {
  try {
    std::string out;
    nlohmann::json::to_msgpack(model::execution_to_internal_json(e), out);
    return out;
  } catch (const nlohmann::json::exception& ex) {
    return Error::internal("cannot encode execution " + e.id + ": " + ex.what());
  }
}

Result<model::Execution> decode_execution(std::string_view bytes) {
  try {
    const nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end());
    Result<model::Execution> e = model::execution_from_internal_json(j);
    if (!e.ok()) return Error::internal("stored execution is corrupt: " + e.error().message);
    return e;
  } catch (const nlohmann::json::exception& ex) {
    return Error::internal(std::string("stored execution is corrupt: ") + ex.what());
  }
}

// Schedule state values: MessagePack of
// {"last_scheduled": RFC 3339 | null, "running": [exec id, ...]} plus, only
// when non-empty, "waiting" and "delayed" (id lists), so a job that never
// had a waiting line keeps the encoding of stores written before them.
Result<std::string> encode_schedule_state(const ScheduleState& state) {
  try {
    nlohmann::json j = nlohmann::json::object();
    j["last_scheduled"] = state.last_scheduled == absl::InfinitePast()
                              ? nlohmann::json(nullptr)
                              : nlohmann::json(model::format_time(state.last_scheduled));
    j["running"] = state.running;
    if (!state.waiting.empty()) j["waiting"] = state.waiting;
    if (!state.delayed.empty()) j["delayed"] = state.delayed;
    std::string out;
    nlohmann::json::to_msgpack(j, out);
    return out;
  } catch (const nlohmann::json::exception& ex) {
    return Error::internal(std::string("cannot encode schedule state: ") + ex.what());
  }
}

Result<ScheduleState> decode_schedule_state(std::string_view bytes) {
  auto corrupt = [](std::string_view what) {
    return Error::internal("stored schedule state is corrupt: " + std::string(what));
  };
  try {
    const nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end());
    if (!j.is_object() || !j.contains("last_scheduled") || !j.contains("running") ||
        j.size() != 2 + j.count("waiting") + j.count("delayed")) {
      return corrupt("not {last_scheduled, running[, waiting][, delayed]}");
    }
    ScheduleState state;
    const nlohmann::json& last = j["last_scheduled"];
    if (last.is_string()) {
      Result<absl::Time> t = model::parse_time(last.get_ref<const std::string&>());
      if (!t.ok()) return corrupt(t.error().message);
      state.last_scheduled = *t;
    } else if (!last.is_null()) {
      return corrupt("last_scheduled is not a time");
    }
    for (auto [key, ids] :
         {std::pair{"running", &state.running}, std::pair{"waiting", &state.waiting},
          std::pair{"delayed", &state.delayed}}) {
      if (!j.contains(key)) continue;
      const nlohmann::json& list = j[key];
      if (!list.is_array()) return corrupt(std::string(key) + " is not an array");
      for (const nlohmann::json& id : list) {
        if (!id.is_string()) return corrupt(std::string(key) + " holds a non-string");
        ids->push_back(id.get<std::string>());
      }
    }
    return state;
  } catch (const nlohmann::json::exception& ex) {
    return corrupt(ex.what());
  }
}

// Times stored as RFC 3339 text must have a four-digit UTC year; unset
// (InfinitePast) is stored as null.
bool storable_time(absl::Time t) { return t == absl::InfinitePast() || model::in_rfc3339_range(t); }

Error execution_not_found(std::string_view job_id, std::string_view execution_id) {
  return Error::not_found("execution " + std::string(execution_id) + " of job " +
                          std::string(job_id) + " not found");
}

Result<uint64_t> decode_u64_value(std::string_view key, std::string_view value) {
  std::optional<uint64_t> v = keys::decode_u64(value);
  if (!v) return Error::internal("store: " + std::string(key) + " is not an 8-byte integer");
  return *v;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool matches(const model::Job& job, const ListQuery& query, std::string_view q_lower) {
  if (query.enabled && job.enabled != *query.enabled) return false;
  for (const auto& [key, value] : query.tags) {
    auto it = job.tags.find(key);
    if (it == job.tags.end() || it->second != value) return false;
  }
  if (!q_lower.empty() && ascii_lower(job.name).find(q_lower) == std::string::npos &&
      ascii_lower(job.description).find(q_lower) == std::string::npos) {
    return false;
  }
  return true;
}

// Point reads at one RocksDB snapshot, so a read method that touches several
// keys sees one state. Lives for one read call.
class ReadView {
 public:
  explicit ReadView(rocksdb::DB* db) : db_(db), snapshot_(db) {
    options_.snapshot = snapshot_.snapshot();
  }

  const rocksdb::ReadOptions& options() const { return options_; }

  // nullopt when the key is absent.
  Result<std::optional<std::string>> get(std::string_view key) const {
    std::string value;
    const rocksdb::Status s = db_->Get(options_, to_slice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return io_error("read", s);
    return std::optional<std::string>(std::move(value));
  }

  Result<std::optional<model::Job>> get_job(std::string_view key) const {
    CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> value, get(key));
    if (!value) return std::optional<model::Job>();
    CHRONOS_ASSIGN_OR_RETURN(model::Job job, decode_job(*value));
    return std::optional<model::Job>(std::move(job));
  }

  Result<std::optional<model::Execution>> get_execution(std::string_view key) const {
    CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> value, get(key));
    if (!value) return std::optional<model::Execution>();
    CHRONOS_ASSIGN_OR_RETURN(model::Execution e, decode_execution(*value));
    return std::optional<model::Execution>(std::move(e));
  }

  // The default state when s/<job_id> is absent.
  Result<ScheduleState> get_schedule_state(std::string_view job_id) const {
    CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> value, get(keys::schedule(job_id)));
    if (!value) return ScheduleState{};
    return decode_schedule_state(*value);
  }

  // An iterator over the keys in [lower, upper) at this view's snapshot.
  // The bounds must outlive the iterator.
  std::unique_ptr<rocksdb::Iterator> range(rocksdb::DB* db, const rocksdb::Slice* lower,
                                           const rocksdb::Slice* upper) const {
    rocksdb::ReadOptions options = options_;
    options.iterate_lower_bound = lower;
    options.iterate_upper_bound = upper;
    return std::unique_ptr<rocksdb::Iterator>(db->NewIterator(options));
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ManagedSnapshot snapshot_;
  rocksdb::ReadOptions options_;
};

// The writes of one log entry, readable before they are written: reads see
// the DB plus every earlier write of the same batch, so command k of a batch
// is evaluated against the state left by commands 0..k-1.
//
// An I/O or corruption failure is recorded as `fatal` (the whole entry must
// then fail without writing); reads then return "absent" so the command
// handler can run to its end, and apply() discards its result.
class ApplyTxn {
 public:
  explicit ApplyTxn(rocksdb::DB* db)
      : db_(db), batch_(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true) {}

  bool failed() const { return fatal_.has_value(); }
  const Error& fatal() const { return *fatal_; }
  rocksdb::WriteBatch* write_batch() { return batch_.GetWriteBatch(); }

  std::optional<std::string> get(std::string_view key) {
    std::string value;
    const rocksdb::Status s =
        batch_.GetFromBatchAndDB(db_, rocksdb::ReadOptions(), to_slice(key), &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) {
      fail(io_error("read", s));
      return std::nullopt;
    }
    return value;
  }

  std::optional<model::Job> get_job(std::string_view key) {
    std::optional<std::string> value = get(key);
    if (!value) return std::nullopt;
    Result<model::Job> job = decode_job(*value);
    if (!job.ok()) {
      fail(std::move(job).error());
      return std::nullopt;
    }
    return std::move(job).value();
  }

  std::optional<model::Execution> get_execution(std::string_view key) {
    std::optional<std::string> value = get(key);
    if (!value) return std::nullopt;
    Result<model::Execution> e = decode_execution(*value);
    if (!e.ok()) {
      fail(std::move(e).error());
      return std::nullopt;
    }
    return std::move(e).value();
  }

  // The default state when s/<job_id> is absent.
  ScheduleState get_schedule_state(std::string_view job_id) {
    std::optional<std::string> value = get(keys::schedule(job_id));
    if (!value) return ScheduleState{};
    Result<ScheduleState> state = decode_schedule_state(*value);
    if (!state.ok()) {
      fail(std::move(state).error());
      return ScheduleState{};
    }
    return std::move(state).value();
  }

  void put_execution(const model::Execution& e) {
    Result<std::string> value = encode_execution(e);
    if (!value.ok()) return fail(std::move(value).error());
    put(keys::execution(e.job_id, e.id), *value);
  }

  void put_schedule_state(std::string_view job_id, const ScheduleState& state) {
    Result<std::string> value = encode_schedule_state(state);
    if (!value.ok()) return fail(std::move(value).error());
    put(keys::schedule(job_id), *value);
  }

  // Every key (batch and DB) that starts with `prefix`, in order.
  std::vector<std::string> keys_with_prefix(std::string_view prefix) {
    std::vector<std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(batch_.NewIteratorWithBase(
        db_->DefaultColumnFamily(), db_->NewIterator(rocksdb::ReadOptions())));
    for (it->Seek(to_slice(prefix)); it->Valid() && it->key().starts_with(to_slice(prefix));
         it->Next()) {
      out.push_back(it->key().ToString());
    }
    if (!it->status().ok()) fail(io_error("scan", it->status()));
    return out;
  }

  void put(std::string_view key, std::string_view value) {
    const rocksdb::Status s = batch_.Put(to_slice(key), to_slice(value));
    if (!s.ok()) fail(io_error("batch put", s));
  }

  void del(std::string_view key) {
    const rocksdb::Status s = batch_.Delete(to_slice(key));
    if (!s.ok()) fail(io_error("batch delete", s));
  }

 private:
  void fail(Error e) {
    if (!fatal_) fatal_ = std::move(e);
  }

  rocksdb::DB* db_;
  rocksdb::WriteBatchWithIndex batch_;
  std::optional<Error> fatal_;
};

// Every handler checks all of its preconditions before its first write, so a
// command that fails leaves the batch (and so the state) untouched.
Result<CommandEffect> apply_put(ApplyTxn& txn, const model::PutJob& cmd, int64_t* job_delta) {
  const model::Job& job = cmd.job;
  // The proposer validates these; refusing here keeps a bad entry from
  // corrupting the keyspace (a '/' would alias another record's keys).
  if (!keys::is_key_segment(job.id)) {
    return Error::validation("id", "must be non-empty and must not contain '/'");
  }
  if (!keys::is_key_segment(job.namespace_)) {
    return Error::validation("namespace", "must be non-empty and must not contain '/'");
  }
  if (!keys::is_key_segment(job.name)) {
    return Error::validation("name", "must be non-empty and must not contain '/'");
  }
  // The version is the proposer's too (create: >= 1; update: expected + 1).
  // A committed entry that breaks it is refused like any bad field, never
  // CHECKed: a crash here would repeat on every replica at every restart.
  if (cmd.expected_version == 0 && job.version < 1) {
    return Error::validation(
        "version", "must be at least 1 for a new job, got " + std::to_string(job.version));
  }
  // Compared as job.version - 1 (evaluated only when job.version >= 1):
  // expected_version + 1 could overflow.
  if (cmd.expected_version != 0 && (job.version < 1 || job.version - 1 != cmd.expected_version)) {
    return Error::validation("version", "must be expected_version + 1 (expected_version is " +
                                            std::to_string(cmd.expected_version) + "), got " +
                                            std::to_string(job.version));
  }
  // Stored times are RFC 3339 text, which has four-digit years only: a time
  // outside them would be stored as a value that does not decode.
  if (!model::in_rfc3339_range(job.created_at)) {
    return Error::validation("created_at", "must be in the years 0001..9999 (UTC)");
  }
  if (!model::in_rfc3339_range(job.updated_at)) {
    return Error::validation("updated_at", "must be in the years 0001..9999 (UTC)");
  }
  CHRONOS_ASSIGN_OR_RETURN(const std::string value, encode_job(job));
  const std::string job_key = keys::job(job.id);
  const std::string name_key = keys::name(job.namespace_, job.name);
  const std::optional<model::Job> stored = txn.get_job(job_key);

  if (cmd.expected_version == 0) {  // create
    if (stored) return already_exists("id", "job " + job.id + " already exists");
    if (txn.get(name_key)) return name_taken(job);
    txn.put(job_key, value);
    txn.put(name_key, job.id);
    txn.put(keys::version(job.id, static_cast<uint64_t>(job.version)), value);
    txn.put(keys::timing(job.id), encode_timing_record(model::timing_of(job)));
    ++*job_delta;
    return CommandEffect(job);
  }

  // update
  if (!stored) return job_not_found(job.id);
  if (stored->version != cmd.expected_version) {
    return version_conflict(stored->version, cmd.expected_version);
  }
  if (stored->namespace_ != job.namespace_ || stored->name != job.name) {
    const std::optional<std::string> owner = txn.get(name_key);
    if (owner && *owner != job.id) return name_taken(job);
    txn.del(keys::name(stored->namespace_, stored->name));
    txn.put(name_key, job.id);
  }
  txn.put(job_key, value);
  txn.put(keys::version(job.id, static_cast<uint64_t>(job.version)), value);
  txn.put(keys::timing(job.id), encode_timing_record(model::timing_of(job)));
  return CommandEffect(job);
}

Result<CommandEffect> apply_delete(ApplyTxn& txn, const model::DeleteJob& cmd, int64_t* job_delta) {
  if (!keys::is_key_segment(cmd.job_id)) return job_not_found(cmd.job_id);
  const std::string job_key = keys::job(cmd.job_id);
  std::optional<model::Job> stored = txn.get_job(job_key);
  if (!stored) return job_not_found(cmd.job_id);
  if (cmd.expected_version != 0 && stored->version != cmd.expected_version) {
    return version_conflict(stored->version, cmd.expected_version);
  }
  txn.del(job_key);
  const std::string name_key = keys::name(stored->namespace_, stored->name);
  const std::optional<std::string> owner = txn.get(name_key);
  CHRONOS_CHECK(txn.failed() || owner == cmd.job_id)
      << "name index " << name_key << " does not point at job " << cmd.job_id;
  txn.del(name_key);
  for (const std::string& key : txn.keys_with_prefix(keys::versions_prefix(cmd.job_id))) {
    txn.del(key);
  }
  // Scheduling state and history go with the job. The in-flight markers of
  // its running executions are exactly the ids in its running set.
  const ScheduleState state = txn.get_schedule_state(cmd.job_id);
  for (const std::string& exec_id : state.running) {
    const std::string marker = keys::running(exec_id);
    if (txn.get(marker) == cmd.job_id) txn.del(marker);
  }
  txn.del(keys::schedule(cmd.job_id));
  txn.del(keys::timing(cmd.job_id));
  for (const std::string& key : txn.keys_with_prefix(keys::executions_prefix(cmd.job_id))) {
    txn.del(key);
  }
  --*job_delta;
  return CommandEffect(std::move(*stored));
}

// Response and error excerpts are capped when stored, whatever the proposer
// sent (a cut never splits a UTF-8 sequence).
void cap_excerpts(std::string* response, std::string* error) {
  if (response->size() > model::kMaxResponseBytes) {
    *response = std::string(model::truncate_utf8(*response, model::kMaxResponseBytes));
  }
  if (error->size() > model::kMaxErrorBytes) {
    *error = std::string(model::truncate_utf8(*error, model::kMaxErrorBytes));
  }
}

// Removes `id` from `ids` if present; true when it was there.
bool erase_id(std::vector<std::string>* ids, std::string_view id) {
  auto it = std::find(ids->begin(), ids->end(), id);
  if (it == ids->end()) return false;
  ids->erase(it);
  return true;
}

bool contains_id(const std::vector<std::string>& ids, std::string_view id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// Makes a stored execution running: r/<exec_id> and the job's running set.
void mark_running(ApplyTxn& txn, ScheduleState* state, const model::Execution& e) {
  txn.put(keys::running(e.id), e.job_id);
  state->running.push_back(e.id);
}

std::string skip_reason(model::Concurrency policy) {
  return policy == model::Concurrency::kBufferOne
             ? "skipped: a run of this job is running and another is already waiting "
               "(concurrency: buffer_one)"
             : "skipped: another execution of this job is running (concurrency: " +
                   std::string(model::to_string(policy)) + ")";
}

// One execution of a StartExecutions. Checks everything before writing. One
// that wants to start goes through the job's overlap rule against the state
// of this moment (SPEC §3, "enforced cluster-wide"): two starts planned from
// the same stale state cannot both run. A skipped one is stored `skipped`
// and its item reports kConflict, so its proposer does not dispatch it; one
// that runs is added to `started`.
Status start_one(ApplyTxn& txn, const model::Execution& e, bool force,
                 std::vector<model::Execution>* started) {
  if (!keys::is_key_segment(e.job_id)) return job_not_found(e.job_id);
  if (!keys::is_key_segment(e.id)) {
    return Error::validation("id", "must be non-empty and must not contain '/'");
  }
  if (!storable_time(e.scheduled_time)) {
    return Error::validation("scheduled_time", "must be unset or in the years 0001..9999 (UTC)");
  }
  if (!storable_time(e.started_at)) {
    return Error::validation("started_at", "must be unset or in the years 0001..9999 (UTC)");
  }
  if (!storable_time(e.completed_at)) {
    return Error::validation("completed_at", "must be unset or in the years 0001..9999 (UTC)");
  }
  std::optional<model::Job> job = txn.get_job(keys::job(e.job_id));
  if (!job) return job_not_found(e.job_id);
  const std::string key = keys::execution(e.job_id, e.id);
  if (txn.get(key) || txn.get(keys::running(e.id))) {
    return already_exists("id", "execution " + e.id + " already exists");
  }
  model::Execution stored = e;
  cap_excerpts(&stored.response, &stored.error);
  if (model::is_terminal(stored.status)) {
    txn.put_execution(stored);
    return ok_status();
  }
  ScheduleState state = txn.get_schedule_state(stored.job_id);
  const absl::Duration offset = model::jitter_offset(*job);
  model::ActiveRuns active{state.running.size(), state.waiting.size(), false};
  for (const std::string& id : state.delayed) {
    std::optional<model::Execution> d = txn.get_execution(keys::execution(stored.job_id, id));
    if (d && model::delayed_run_shelters(*d, offset, stored.started_at)) {
      active.any_delayed = true;
      break;
    }
  }
  const bool delayed = model::is_delayed_start(stored, offset);
  switch (model::admit(job->concurrency, active, delayed, force)) {
    case model::Admission::kSkip:
      stored.status = model::ExecutionStatus::kSkipped;
      stored.completed_at = stored.started_at;
      stored.error = skip_reason(job->concurrency);
      txn.put_execution(stored);
      return Error{ErrorCode::kConflict, stored.error, "concurrency"};
    case model::Admission::kWait:
      stored.status = model::ExecutionStatus::kPending;
      txn.put_execution(stored);
      state.waiting.push_back(stored.id);
      // Behind a delayed run it is made late by the same failover.
      if (delayed || active.any_delayed) state.delayed.push_back(stored.id);
      txn.put_schedule_state(stored.job_id, state);
      return ok_status();
    case model::Admission::kRun:
      stored.status = model::ExecutionStatus::kRunning;
      txn.put_execution(stored);
      mark_running(txn, &state, stored);
      if (delayed) state.delayed.push_back(stored.id);
      txn.put_schedule_state(stored.job_id, state);
      started->push_back(std::move(stored));
      return ok_status();
  }
  return Error::internal("unknown admission");
}

// StartExecutions: per-execution results; schedule advances are applied
// after the executions, for jobs that exist, never moving backwards. A
// malformed advance (a time without an RFC 3339 form) fails the whole
// command before anything is written.
Result<CommandEffect> apply_start(ApplyTxn& txn, const model::StartExecutions& cmd) {
  for (size_t i = 0; i < cmd.schedule.size(); ++i) {
    if (!storable_time(cmd.schedule[i].last_scheduled)) {
      return Error::validation("schedule[" + std::to_string(i) + "].last_scheduled",
                               "must be unset or in the years 0001..9999 (UTC)");
    }
  }
  ItemResults results;
  results.items.reserve(cmd.executions.size());
  for (const model::Execution& e : cmd.executions) {
    results.items.push_back(start_one(txn, e, cmd.force, &results.started));
  }
  for (const model::ScheduleAdvance& advance : cmd.schedule) {
    if (!keys::is_key_segment(advance.job_id) || !txn.get(keys::job(advance.job_id))) continue;
    ScheduleState state = txn.get_schedule_state(advance.job_id);
    if (advance.last_scheduled <= state.last_scheduled) continue;
    state.last_scheduled = advance.last_scheduled;
    txn.put_schedule_state(advance.job_id, state);
  }
  return CommandEffect(std::move(results));
}

// Takes execution `exec_id` (ended by `r`) out of its job's running set or
// waiting line and drops its in-flight marker. When that leaves nothing
// running, the head of the waiting line starts now (`r.completed_at`, on
// `r.node_id`), and is added to `started`.
void mark_ended(ApplyTxn& txn, const model::ExecutionResult& r,
                std::vector<model::Execution>* started) {
  txn.del(keys::running(r.execution_id));
  ScheduleState state = txn.get_schedule_state(r.job_id);
  bool changed = erase_id(&state.running, r.execution_id);
  changed |= erase_id(&state.waiting, r.execution_id);
  changed |= erase_id(&state.delayed, r.execution_id);
  while (state.running.empty() && !state.waiting.empty()) {
    const std::string next = state.waiting.front();
    state.waiting.erase(state.waiting.begin());
    changed = true;
    std::optional<model::Execution> e = txn.get_execution(keys::execution(r.job_id, next));
    if (!e || model::is_terminal(e->status)) {
      erase_id(&state.delayed, next);
      continue;  // not a live waiting run: nothing to start
    }
    e->status = model::ExecutionStatus::kRunning;
    e->started_at = r.completed_at;
    if (!r.node_id.empty()) e->node_id = r.node_id;
    txn.put_execution(*e);
    mark_running(txn, &state, *e);
    started->push_back(std::move(*e));
  }
  if (changed) txn.put_schedule_state(r.job_id, state);
}

Status finish_one(ApplyTxn& txn, const model::ExecutionResult& r,
                  std::vector<model::Execution>* started) {
  if (!model::is_terminal(r.status)) {
    return Error::validation("status",
                             "must be a terminal status (success, failed, skipped, "
                             "cancelled), got " +
                                 std::string(model::to_string(r.status)));
  }
  if (!storable_time(r.completed_at)) {
    return Error::validation("completed_at", "must be unset or in the years 0001..9999 (UTC)");
  }
  if (!keys::is_key_segment(r.job_id) || !keys::is_key_segment(r.execution_id)) {
    return execution_not_found(r.job_id, r.execution_id);
  }
  std::optional<model::Execution> stored =
      txn.get_execution(keys::execution(r.job_id, r.execution_id));
  if (!stored) return execution_not_found(r.job_id, r.execution_id);
  if (model::is_terminal(stored->status)) {
    return Error{ErrorCode::kConflict,
                 "execution " + r.execution_id + " is already " +
                     std::string(model::to_string(stored->status)),
                 "status"};
  }
  stored->status = r.status;
  stored->attempts = std::max(stored->attempts, r.attempts);
  stored->status_code = r.status_code;
  stored->response = r.response;
  stored->error = r.error;
  cap_excerpts(&stored->response, &stored->error);
  if (!r.node_id.empty()) stored->node_id = r.node_id;
  stored->completed_at = r.completed_at;
  stored->next_attempt_at = absl::InfinitePast();
  txn.put_execution(*stored);
  mark_ended(txn, r, started);
  return ok_status();
}

Result<CommandEffect> apply_finish(ApplyTxn& txn, const model::FinishExecutions& cmd) {
  ItemResults results;
  results.items.reserve(cmd.results.size());
  for (const model::ExecutionResult& r : cmd.results) {
    results.items.push_back(finish_one(txn, r, &results.started));
  }
  return CommandEffect(std::move(results));
}

Result<CommandEffect> apply_redispatch(ApplyTxn& txn, const model::RedispatchExecutions& cmd) {
  ItemResults results;
  results.items.reserve(cmd.execution_ids.size());
  for (size_t i = 0; i < cmd.execution_ids.size(); ++i) {
    const std::string& exec_id = cmd.execution_ids[i];
    if (i >= cmd.job_ids.size() || i >= cmd.attempts.size()) {
      results.items.push_back(Error::validation(
          "execution_ids", "job_ids, execution_ids and attempts must have the same length"));
      continue;
    }
    const std::string& job_id = cmd.job_ids[i];
    if (!keys::is_key_segment(job_id) || !keys::is_key_segment(exec_id)) {
      results.items.push_back(execution_not_found(job_id, exec_id));
      continue;
    }
    std::optional<model::Execution> stored = txn.get_execution(keys::execution(job_id, exec_id));
    if (!stored) {
      results.items.push_back(execution_not_found(job_id, exec_id));
      continue;
    }
    if (stored->status != model::ExecutionStatus::kRunning) {
      results.items.push_back(Error{ErrorCode::kConflict,
                                    "execution " + exec_id + " is " +
                                        std::string(model::to_string(stored->status)) +
                                        ", not running",
                                    "status"});
      continue;
    }
    const absl::Time next_at =
        i < cmd.next_attempt_at.size() ? cmd.next_attempt_at[i] : absl::InfinitePast();
    if (!storable_time(next_at)) {
      results.items.push_back(
          Error::validation("next_attempt_at", "must be unset or in the years 0001..9999 (UTC)"));
      continue;
    }
    stored->attempts = std::max(stored->attempts, cmd.attempts[i]);
    stored->next_attempt_at = next_at;
    if (!cmd.node_id.empty()) stored->node_id = cmd.node_id;
    txn.put_execution(*stored);
    if (!cmd.retry) {
      ScheduleState state = txn.get_schedule_state(job_id);
      if (contains_id(state.running, exec_id) && !contains_id(state.delayed, exec_id)) {
        state.delayed.push_back(exec_id);
        txn.put_schedule_state(job_id, state);
      }
    }
    results.items.push_back(ok_status());
  }
  return CommandEffect(std::move(results));
}

Result<CommandEffect> apply_prune(ApplyTxn& txn, const model::PruneExecutions& cmd) {
  if (!keys::is_key_segment(cmd.job_id)) return CommandEffect();
  for (const std::string& exec_id : cmd.execution_ids) {
    if (!keys::is_key_segment(exec_id)) continue;
    const std::string key = keys::execution(cmd.job_id, exec_id);
    std::optional<model::Execution> stored = txn.get_execution(key);
    if (stored && model::is_terminal(stored->status)) txn.del(key);
  }
  return CommandEffect();
}

// The registry value is the record minus its raft id (the key holds it).
Result<CommandEffect> apply_put_member(ApplyTxn& txn, const model::PutMember& cmd) {
  const std::string key = keys::member(cmd.raft_id);
  if (cmd.name.empty()) {
    txn.del(key);
    return CommandEffect();
  }
  std::vector<uint8_t> out;
  nlohmann::json::to_msgpack(nlohmann::json{{"name", cmd.name},
                                            {"raft_address", cmd.raft_address},
                                            {"http_address", cmd.http_address}},
                             out);
  txn.put(key, std::string_view(reinterpret_cast<const char*>(out.data()), out.size()));
  return CommandEffect();
}

// Owns the DB. Mutations (apply, restore) come from one thread; reads from
// any thread, each at its own RocksDB snapshot. The counters are atomics
// written only by the mutating thread after its write succeeded.
struct ImageCheck;

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, uint64_t applied_index, uint64_t job_count)
      : db_(std::move(db)), applied_index_(applied_index), job_count_(job_count) {}

  uint64_t applied_index() const override { return applied_index_.load(); }
  uint64_t job_count() const override { return job_count_.load(); }

  Result<ApplyOutcome> apply(uint64_t index, const model::CommandBatch& batch) override;
  Result<model::Job> get_job(std::string_view id) const override;
  Result<model::Job> find_job(std::string_view ns, std::string_view name) const override;
  Result<model::Job> get_job_version(std::string_view id, int64_t version) const override;
  Result<std::vector<VersionInfo>> list_versions(std::string_view id, int64_t before_version,
                                                 size_t limit) const override;
  Result<ListPage> list_jobs(const ListQuery& query) const override;
  Result<ScheduleState> get_schedule_state(std::string_view job_id) const override;
  Result<model::Execution> get_execution(std::string_view job_id,
                                         std::string_view execution_id) const override;
  Result<ExecutionPage> list_executions(const ExecutionQuery& query) const override;
  Result<std::vector<model::Execution>> list_in_flight(std::string_view after_id,
                                                       size_t limit) const override;
  Status for_each_job(
      const std::function<bool(const model::Job&, const ScheduleState&)>& fn) const override;
  Status for_each_timing(
      std::string_view after_id,
      const std::function<bool(const model::JobTiming&, const ScheduleState&)>& fn) const override;
  Result<std::vector<std::string>> executions_to_prune(std::string_view job_id, size_t keep_newest,
                                                       absl::Time completed_before,
                                                       size_t limit) const override;
  Result<std::vector<MemberRecord>> list_members() const override;
  Result<SnapshotChunks> serialize_snapshot_chunks() const override;
  Status restore_snapshot(std::string_view image) override;
  Status import_backup(std::string_view image) override;
  bool restoring() const override { return restoring_.load(); }

 private:
  // Writes a checked image's pairs that `keep` accepts in bounded batches:
  // the first deletes the whole keyspace and sets m/restoring, the last
  // (synced) puts `meta` and deletes the marker.
  Status write_image(std::string_view image, const ImageCheck& check,
                     const std::function<bool(std::string_view)>& keep,
                     const std::vector<std::pair<std::string_view, std::string>>& meta);

  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> applied_index_;
  std::atomic<uint64_t> job_count_;
  std::atomic<bool> restoring_{false};  // write_image is writing
};

Result<ApplyOutcome> RocksStore::apply(uint64_t index, const model::CommandBatch& batch) {
  ApplyOutcome outcome;
  outcome.index = index;
  if (index <= applied_index_.load()) {
    outcome.skipped = true;
    return outcome;
  }
  ApplyTxn txn(db_.get());
  int64_t job_delta = 0;
  outcome.results.reserve(batch.commands.size());
  for (const model::Command& command : batch.commands) {
    Result<CommandEffect> result = std::visit(
        Overloaded{
            [&](const model::PutJob& c) { return apply_put(txn, c, &job_delta); },
            [&](const model::DeleteJob& c) { return apply_delete(txn, c, &job_delta); },
            [](const model::Noop&) { return Result<CommandEffect>(CommandEffect()); },
            [&](const model::StartExecutions& c) { return apply_start(txn, c); },
            [&](const model::FinishExecutions& c) { return apply_finish(txn, c); },
            [&](const model::RedispatchExecutions& c) { return apply_redispatch(txn, c); },
            [&](const model::PruneExecutions& c) { return apply_prune(txn, c); },
            [&](const model::PutMember& c) { return apply_put_member(txn, c); },
        },
        command);
    if (txn.failed()) return txn.fatal();
    outcome.results.push_back(std::move(result));
  }
  const auto job_count =
      static_cast<uint64_t>(static_cast<int64_t>(job_count_.load()) + job_delta);
  txn.put(keys::kAppliedIndex, keys::encode_u64(index));
  // The c/ records and the count are in step with this index (see open()).
  txn.put(keys::kTimingIndex, keys::encode_u64(index));
  txn.put(keys::kJobCount, job_count_value(index, job_count));
  if (txn.failed()) return txn.fatal();

  // sync=false: the Raft log is the durable record. A crash may lose the
  // last applies; the stored applied index then lags and Raft replays the
  // entries above it (README "Durability").
  rocksdb::WriteOptions write_options;
  write_options.sync = false;
  const rocksdb::Status s = db_->Write(write_options, txn.write_batch());
  if (!s.ok()) return io_error("apply write", s);

  job_count_.store(job_count);
  applied_index_.store(index);
  return outcome;
}

Result<model::Job> RocksStore::get_job(std::string_view id) const {
  if (!keys::is_key_segment(id)) return job_not_found(id);
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<model::Job> job, view.get_job(keys::job(id)));
  if (!job) return job_not_found(id);
  return std::move(*job);
}

Result<model::Job> RocksStore::find_job(std::string_view ns, std::string_view name) const {
  auto not_found = [&] {
    return Error::not_found("no job named \"" + std::string(name) + "\" in namespace \"" +
                            std::string(ns) + "\"");
  };
  if (!keys::is_key_segment(ns) || !keys::is_key_segment(name)) return not_found();
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> id, view.get(keys::name(ns, name)));
  if (!id) return not_found();
  CHRONOS_ASSIGN_OR_RETURN(std::optional<model::Job> job, view.get_job(keys::job(*id)));
  if (!job) {
    return Error::internal("store: name index " + keys::name(ns, name) + " points at missing job " +
                           *id);
  }
  return std::move(*job);
}

Result<model::Job> RocksStore::get_job_version(std::string_view id, int64_t version) const {
  auto not_found = [&] {
    return Error::not_found("job " + std::string(id) + " has no version " +
                            std::to_string(version));
  };
  if (!keys::is_key_segment(id) || version <= 0) return not_found();
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<model::Job> job,
                           view.get_job(keys::version(id, static_cast<uint64_t>(version))));
  if (!job) return not_found();
  return std::move(*job);
}

// Cost: one Get, then one reverse seek and at most `limit` keys decoded.
Result<std::vector<VersionInfo>> RocksStore::list_versions(std::string_view id,
                                                           int64_t before_version,
                                                           size_t limit) const {
  limit = limit == 0 ? 100 : std::min<size_t>(limit, 1000);
  if (!keys::is_key_segment(id)) return job_not_found(id);
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> current, view.get(keys::job(id)));
  if (!current) return job_not_found(id);
  std::vector<VersionInfo> out;
  if (before_version < 0) return out;  // no version is below a negative bound

  // Versions are big-endian in the key, so key order is version order and
  // the exclusive upper bound v/<id>/<before_version> keeps exactly the
  // versions below it; SeekToLast then starts at the newest of those.
  const std::string lower = keys::versions_prefix(id);
  const std::string upper = before_version == 0
                                ? keys::prefix_end(lower)
                                : keys::version(id, static_cast<uint64_t>(before_version));
  const rocksdb::Slice lower_slice(lower);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions options = view.options();
  options.iterate_lower_bound = &lower_slice;
  options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));

  for (it->SeekToLast(); it->Valid() && out.size() < limit; it->Prev()) {
    CHRONOS_ASSIGN_OR_RETURN(model::Job job, decode_job(it->value().ToStringView()));
    out.push_back(VersionInfo{job.version, job.updated_at});
  }
  if (!it->status().ok()) return io_error("scan versions", it->status());
  return out;
}

// Cost: walks the name index from the cursor and decodes each job until
// limit + 1 matches. Without tags/enabled/q filters that is limit + 1 keys;
// with a selective filter it may scan the whole (namespace's) index. Fine
// at SPEC scale on a snapshot; a secondary index is the fix if it is not.
Result<ListPage> RocksStore::list_jobs(const ListQuery& query) const {
  const size_t limit = query.limit == 0 ? 100 : std::min<size_t>(query.limit, 1000);
  ListPage page;
  if (query.namespace_ && !keys::is_key_segment(*query.namespace_)) return page;
  const std::string prefix =
      query.namespace_ ? keys::namespace_prefix(*query.namespace_) : std::string(keys::kNamePrefix);

  std::optional<std::string> cursor_key;
  if (!query.cursor.empty()) {
    cursor_key = keys::decode_cursor(query.cursor);
    // A cursor belongs to the namespace it was issued for.
    if (!cursor_key ||
        (query.namespace_ && keys::namespace_of_name_key(*cursor_key) != *query.namespace_)) {
      return Error::validation("cursor", "is not a valid cursor");
    }
  }
  const std::string q_lower = ascii_lower(query.q);
  const bool filtered = query.enabled.has_value() || !query.tags.empty() || !q_lower.empty();

  ReadView view(db_.get());
  const std::string upper = keys::prefix_end(prefix);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions options = view.options();
  options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));

  it->Seek(cursor_key ? rocksdb::Slice(*cursor_key) : rocksdb::Slice(prefix));
  if (cursor_key && it->Valid() && it->key() == rocksdb::Slice(*cursor_key)) it->Next();
  std::string last_key;
  for (; it->Valid(); it->Next()) {
    const bool full = page.jobs.size() == limit;
    if (full && !filtered) {  // any further key is a further match
      page.next_cursor = keys::encode_cursor(last_key);
      break;
    }
    const std::string id = it->value().ToString();
    CHRONOS_ASSIGN_OR_RETURN(std::optional<model::Job> job, view.get_job(keys::job(id)));
    if (!job) {
      return Error::internal("store: name index " + it->key().ToString() +
                             " points at missing job " + id);
    }
    if (!matches(*job, query, q_lower)) continue;
    if (full) {  // peeked one match past the page: there is a next page
      page.next_cursor = keys::encode_cursor(last_key);
      break;
    }
    page.jobs.push_back(std::move(*job));
    last_key = it->key().ToString();
  }
  if (!it->status().ok()) return io_error("scan names", it->status());
  return page;
}

Result<ScheduleState> RocksStore::get_schedule_state(std::string_view job_id) const {
  if (!keys::is_key_segment(job_id)) return ScheduleState{};
  ReadView view(db_.get());
  return view.get_schedule_state(job_id);
}

Result<model::Execution> RocksStore::get_execution(std::string_view job_id,
                                                   std::string_view execution_id) const {
  if (!keys::is_key_segment(job_id) || !keys::is_key_segment(execution_id)) {
    return execution_not_found(job_id, execution_id);
  }
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<model::Execution> e,
                           view.get_execution(keys::execution(job_id, execution_id)));
  if (!e) return execution_not_found(job_id, execution_id);
  return std::move(*e);
}

// Cost: one Get (the job), one reverse seek, then one key per execution
// returned (+1 to peek) without a status filter; with one, every execution
// walked is decoded, so a rare status may scan the job's whole history
// (bounded by retention).
Result<ExecutionPage> RocksStore::list_executions(const ExecutionQuery& query) const {
  const size_t limit = query.limit == 0 ? 100 : std::min<size_t>(query.limit, 1000);
  if (!keys::is_key_segment(query.job_id)) return job_not_found(query.job_id);
  std::optional<std::string> cursor_id;
  if (!query.cursor.empty()) {
    cursor_id = keys::decode_execution_cursor(query.cursor);
    if (!cursor_id) return Error::validation("cursor", "is not a valid cursor");
  }
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> job, view.get(keys::job(query.job_id)));
  if (!job) return job_not_found(query.job_id);

  // Exec ids sort by creation, so walking e/<job_id>/ backwards from the
  // cursor (an exclusive upper bound) lists newest first.
  const std::string lower = keys::executions_prefix(query.job_id);
  const std::string upper =
      cursor_id ? keys::execution(query.job_id, *cursor_id) : keys::prefix_end(lower);
  const rocksdb::Slice lower_slice(lower);
  const rocksdb::Slice upper_slice(upper);
  std::unique_ptr<rocksdb::Iterator> it = view.range(db_.get(), &lower_slice, &upper_slice);

  ExecutionPage page;
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    const bool full = page.executions.size() == limit;
    if (full && !query.status) {  // any further key is a further match
      page.next_cursor = keys::encode_execution_cursor(page.executions.back().id);
      break;
    }
    CHRONOS_ASSIGN_OR_RETURN(model::Execution e, decode_execution(it->value().ToStringView()));
    if (query.status && e.status != *query.status) continue;
    if (full) {  // peeked one match past the page: there is a next page
      page.next_cursor = keys::encode_execution_cursor(page.executions.back().id);
      break;
    }
    page.executions.push_back(std::move(e));
  }
  if (!it->status().ok()) return io_error("scan executions", it->status());
  return page;
}

// Cost: one seek over r/, then one Get + decode per execution returned.
Result<std::vector<model::Execution>> RocksStore::list_in_flight(std::string_view after_id,
                                                                 size_t limit) const {
  if (limit == 0) limit = 100;
  const std::string lower =
      after_id.empty() ? std::string(keys::kRunningPrefix) : keys::running(after_id);
  const std::string upper = keys::prefix_end(keys::kRunningPrefix);
  const rocksdb::Slice lower_slice(lower);
  const rocksdb::Slice upper_slice(upper);
  ReadView view(db_.get());
  std::unique_ptr<rocksdb::Iterator> it = view.range(db_.get(), &lower_slice, &upper_slice);

  std::vector<model::Execution> out;
  it->SeekToFirst();
  if (!after_id.empty() && it->Valid() && it->key() == lower_slice) it->Next();
  for (; it->Valid() && out.size() < limit; it->Next()) {
    const std::string_view exec_id = it->key().ToStringView().substr(keys::kRunningPrefix.size());
    const std::string_view job_id = it->value().ToStringView();
    CHRONOS_ASSIGN_OR_RETURN(std::optional<model::Execution> e,
                             view.get_execution(keys::execution(job_id, exec_id)));
    if (!e) {
      return Error::internal("store: in-flight marker " + it->key().ToString() +
                             " points at missing execution of job " + std::string(job_id));
    }
    out.push_back(std::move(*e));
  }
  if (!it->status().ok()) return io_error("scan in-flight", it->status());
  return out;
}

Result<std::vector<MemberRecord>> RocksStore::list_members() const {
  const std::string upper = keys::prefix_end(keys::kMemberPrefix);
  const rocksdb::Slice lower_slice = to_slice(keys::kMemberPrefix);
  const rocksdb::Slice upper_slice(upper);
  ReadView view(db_.get());
  std::unique_ptr<rocksdb::Iterator> it = view.range(db_.get(), &lower_slice, &upper_slice);
  std::vector<MemberRecord> out;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::optional<uint64_t> id =
        keys::decode_u64(it->key().ToStringView().substr(keys::kMemberPrefix.size()));
    if (!id) return Error::internal("store: malformed member key " + it->key().ToString());
    const std::string_view v = it->value().ToStringView();
    try {
      const nlohmann::json j = nlohmann::json::from_msgpack(v.begin(), v.end());
      out.push_back({*id, j.at("name").get<std::string>(), j.at("raft_address").get<std::string>(),
                     j.at("http_address").get<std::string>()});
    } catch (const nlohmann::json::exception& e) {
      return Error::internal(std::string("store: malformed member record: ") + e.what());
    }
  }
  if (!it->status().ok()) return io_error("scan members", it->status());
  return out;
}

// Cost: one pass over j/ and one over s/ side by side (both are in job id
// order), decoding every job: O(jobs), for the leader's rebuild.
// Walks the records under `prefix` (one per job, keyed by job id) with each
// job's schedule state, at one snapshot; `decode(job_id, value)` turns a
// record into what `fn` takes.
template <typename T>
Status walk_with_states(rocksdb::DB* db, std::string_view prefix, std::string_view after_id,
                        const std::function<Result<T>(std::string_view, std::string_view)>& decode,
                        const std::function<bool(const T&, const ScheduleState&)>& fn) {
  const std::string upper = keys::prefix_end(prefix);
  const std::string state_upper = keys::prefix_end(keys::kSchedulePrefix);
  const rocksdb::Slice lower_slice = to_slice(prefix);
  const rocksdb::Slice upper_slice(upper);
  const rocksdb::Slice state_lower_slice = to_slice(keys::kSchedulePrefix);
  const rocksdb::Slice state_upper_slice(state_upper);
  ReadView view(db);
  std::unique_ptr<rocksdb::Iterator> records = view.range(db, &lower_slice, &upper_slice);
  std::unique_ptr<rocksdb::Iterator> states =
      view.range(db, &state_lower_slice, &state_upper_slice);

  if (after_id.empty()) {
    records->SeekToFirst();
    states->SeekToFirst();
  } else {
    const std::string from = str_cat(prefix, after_id);
    records->Seek(from);
    if (records->Valid() && records->key() == rocksdb::Slice(from)) records->Next();
    states->Seek(str_cat(keys::kSchedulePrefix, after_id));
  }
  for (; records->Valid(); records->Next()) {
    const std::string_view job_id = records->key().ToStringView().substr(prefix.size());
    CHRONOS_ASSIGN_OR_RETURN(T record, decode(job_id, records->value().ToStringView()));
    // Skip states of ids below this one (none exist while the store is
    // consistent: a state is deleted with its job).
    while (states->Valid() &&
           states->key().ToStringView().substr(keys::kSchedulePrefix.size()) < job_id) {
      states->Next();
    }
    ScheduleState state;
    if (states->Valid() &&
        states->key().ToStringView().substr(keys::kSchedulePrefix.size()) == job_id) {
      CHRONOS_ASSIGN_OR_RETURN(state, decode_schedule_state(states->value().ToStringView()));
    }
    if (!fn(record, state)) break;
  }
  if (!records->status().ok()) return io_error("scan jobs", records->status());
  if (!states->status().ok()) return io_error("scan schedule states", states->status());
  return ok_status();
}

Status RocksStore::for_each_job(
    const std::function<bool(const model::Job&, const ScheduleState&)>& fn) const {
  return walk_with_states<model::Job>(
      db_.get(), keys::kJobPrefix, "",
      [](std::string_view, std::string_view value) { return decode_job(value); }, fn);
}

Status RocksStore::for_each_timing(
    std::string_view after_id,
    const std::function<bool(const model::JobTiming&, const ScheduleState&)>& fn) const {
  return walk_with_states<model::JobTiming>(db_.get(), keys::kTimingPrefix, after_id,
                                            decode_timing_record, fn);
}

// Cost: one key-only pass over the job's executions to count them, then a
// forward pass decoding from the oldest until `limit` ids are found (or,
// without an age bound, until the newest `keep_newest` are reached).
Result<std::vector<std::string>> RocksStore::executions_to_prune(std::string_view job_id,
                                                                 size_t keep_newest,
                                                                 absl::Time completed_before,
                                                                 size_t limit) const {
  limit = limit == 0 ? 100 : std::min<size_t>(limit, 1000);
  std::vector<std::string> out;
  if (!keys::is_key_segment(job_id)) return out;
  const std::string lower = keys::executions_prefix(job_id);
  const std::string upper = keys::prefix_end(lower);
  const rocksdb::Slice lower_slice(lower);
  const rocksdb::Slice upper_slice(upper);
  ReadView view(db_.get());

  size_t total = 0;
  {
    std::unique_ptr<rocksdb::Iterator> it = view.range(db_.get(), &lower_slice, &upper_slice);
    for (it->SeekToFirst(); it->Valid(); it->Next()) ++total;
    if (!it->status().ok()) return io_error("count executions", it->status());
  }
  const bool age_bound = completed_before != absl::InfinitePast();
  std::unique_ptr<rocksdb::Iterator> it = view.range(db_.get(), &lower_slice, &upper_slice);
  size_t position = 0;  // from the oldest
  for (it->SeekToFirst(); it->Valid() && out.size() < limit; it->Next(), ++position) {
    const bool beyond_newest = total - position > keep_newest;
    if (!beyond_newest && !age_bound) break;  // the rest are all kept
    CHRONOS_ASSIGN_OR_RETURN(model::Execution e, decode_execution(it->value().ToStringView()));
    if (!model::is_terminal(e.status)) continue;
    // Age: completion time, else start, else scheduled time (a skipped run
    // may have no completion time); an execution with none has no age.
    absl::Time when = e.completed_at;
    if (when == absl::InfinitePast()) when = e.started_at;
    if (when == absl::InfinitePast()) when = e.scheduled_time;
    const bool too_old = when != absl::InfinitePast() && when < completed_before;
    if (beyond_newest || too_old) out.push_back(std::move(e.id));
  }
  if (!it->status().ok()) return io_error("scan executions", it->status());
  return out;
}

Result<Store::SnapshotChunks> RocksStore::serialize_snapshot_chunks() const {
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> applied, view.get(keys::kAppliedIndex));
  uint64_t applied_index = 0;
  if (applied) {
    CHRONOS_ASSIGN_OR_RETURN(applied_index, decode_u64_value(keys::kAppliedIndex, *applied));
  }
  CHRONOS_ASSIGN_OR_RETURN(const std::optional<std::string> restoring, view.get(keys::kRestoring));
  if (restoring) {
    return Error{ErrorCode::kUnavailable,
                 "this node is restoring a snapshot; its store holds part of it", {}};
  }
  SnapshotImageWriter writer(applied_index);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    writer.add(it->key().ToStringView(), it->value().ToStringView());
  }
  if (!it->status().ok()) return io_error("scan for snapshot", it->status());
  SnapshotChunks out;
  out.raw_bytes = writer.raw_bytes();
  out.chunks = std::move(writer).finish_chunks();
  return out;
}

// Every key of the store sorts below this (all start with an ASCII letter),
// so DeleteRange("", kKeyspaceEnd) clears the whole keyspace.
constexpr std::string_view kKeyspaceEnd = "\xff";

// RocksDB's block cache (uncompressed data blocks); part of a node's RSS.
constexpr size_t kBlockCacheBytes = 32u << 20;

// c/ records are derived from j/ (timing_record.h). Apply keeps them in step
// and records the index they match in m/timing_index; a store or image whose
// marker differs from its applied index (written before c/ existed, or
// applied to by such a build since) has them rebuilt from its jobs.
Status put_timing_record(rocksdb::WriteBatch* batch, std::string_view job_key,
                         std::string_view job_value) {
  CHRONOS_ASSIGN_OR_RETURN(const model::Job job, decode_job(job_value));
  const rocksdb::Status s =
      batch->Put(to_slice(keys::timing(job_key.substr(keys::kJobPrefix.size()))),
                 encode_timing_record(model::timing_of(job)));
  if (!s.ok()) return io_error("batch put", s);
  return ok_status();
}

// What a whole-image check learns before anything is written (restore and
// backup import): every key inside the keyspace, the body's applied index
// equal to the header's, schema version 1; the number of jobs (name-index
// keys); whether its c/ records match its jobs (see put_timing_record).
struct ImageCheck {
  uint64_t applied_index = 0;
  uint64_t name_keys = 0;
  bool timing_current = false;
};

Result<ImageCheck> check_image(std::string_view image) {
  ImageCheck check;
  CHRONOS_ASSIGN_OR_RETURN(check.applied_index, read_snapshot_applied_index(image));
  CHRONOS_RETURN_IF_ERROR(
      for_each_snapshot_pair(image, [&check](std::string_view key, std::string_view value) -> Status {
        if (key.empty() || key >= kKeyspaceEnd) {
          return Error::validation("snapshot", "holds a key outside the store's keyspace");
        }
        if (key == keys::kAppliedIndex && keys::decode_u64(value) != check.applied_index) {
          return Error::validation("snapshot", "applied index in header and body disagree");
        }
        if (key == keys::kSchemaVersion && keys::decode_u64(value) != keys::kCurrentSchemaVersion) {
          return Error::validation("snapshot", "has an unsupported schema version");
        }
        if (key == keys::kRestoring) {
          return Error::validation("snapshot", "was cut from a store part way through a restore");
        }
        if (key == keys::kTimingIndex) check.timing_current = keys::decode_u64(value) == check.applied_index;
        if (key.starts_with(keys::kNamePrefix)) ++check.name_keys;
        return ok_status();
      }));
  return check;
}

// A restore's or import's WriteBatch is written once it holds this much:
// the store is rewritten a few MiB at a time instead of in one batch the
// size of the store (which was a second copy of the image in memory).
constexpr size_t kRestoreBatchBytes = 8u << 20;

Status RocksStore::write_image(std::string_view image, const ImageCheck& check,
                               const std::function<bool(std::string_view)>& keep,
                               const std::vector<std::pair<std::string_view, std::string>>& meta) {
  rocksdb::WriteBatch batch;
  rocksdb::Status s =
      batch.DeleteRange(db_->DefaultColumnFamily(), rocksdb::Slice(), to_slice(kKeyspaceEnd));
  if (s.ok()) s = batch.Put(to_slice(keys::kRestoring), keys::encode_u64(check.applied_index));
  if (!s.ok()) return io_error("build restore batch", s);
  // Not synced until the last batch: the marker makes a crash before then
  // harmless, and the last synced write makes every earlier one durable
  // (one WAL, written in order).
  const rocksdb::WriteOptions unsynced;
  restoring_.store(true);
  s = db_->Write(unsynced, &batch);
  if (!s.ok()) {
    restoring_.store(false);
    return io_error("restore write", s);
  }
  batch.Clear();
  // From here the store holds part of the image. A failure cannot be
  // returned (the caller would go on with a store that claims its old
  // state): the process ends, and at its restart open() empties the store
  // and libraft restores its stored image again.
  auto must = [](const Status& st) {
    CHRONOS_CHECK(st.ok()) << "snapshot restore failed part way: " << st.error().message
                           << " (the store is emptied at restart and the image restored again)";
  };
  must(for_each_snapshot_pair(image, [&](std::string_view key, std::string_view value) -> Status {
    if (!keep(key) || key == keys::kRestoring) return ok_status();
    if (!check.timing_current) {
      if (key.starts_with(keys::kTimingPrefix) || key == keys::kTimingIndex) return ok_status();
      if (key.starts_with(keys::kJobPrefix)) {
        CHRONOS_RETURN_IF_ERROR(put_timing_record(&batch, key, value));
      }
    }
    rocksdb::Status st = batch.Put(to_slice(key), to_slice(value));
    if (!st.ok()) return io_error("batch put", st);
    if (batch.GetDataSize() >= kRestoreBatchBytes) {
      st = db_->Write(unsynced, &batch);
      if (!st.ok()) return io_error("restore write", st);
      batch.Clear();
    }
    return ok_status();
  }));
  for (const auto& [key, value] : meta) {
    s = batch.Put(to_slice(key), value);
    if (!s.ok()) must(io_error("build restore batch", s));
  }
  s = batch.Delete(to_slice(keys::kRestoring));
  if (!s.ok()) must(io_error("build restore batch", s));
  rocksdb::WriteOptions synced;
  synced.sync = true;
  s = db_->Write(synced, &batch);
  if (!s.ok()) must(io_error("restore write", s));
  restoring_.store(false);
  return ok_status();
}

Status RocksStore::restore_snapshot(std::string_view image) {
  CHRONOS_ASSIGN_OR_RETURN(const ImageCheck check, check_image(image));
  // The meta keys exist after a restore even if the image (an empty store's)
  // lacked them. sync on the last batch: a restore replaces state the Raft
  // log no longer holds (it was compacted into the snapshot), so it must be
  // on disk before we go on.
  CHRONOS_RETURN_IF_ERROR(write_image(
      image, check, [](std::string_view) { return true; },
      {{keys::kAppliedIndex, keys::encode_u64(check.applied_index)},
       {keys::kTimingIndex, keys::encode_u64(check.applied_index)},
       {keys::kJobCount, job_count_value(check.applied_index, check.name_keys)},
       {keys::kSchemaVersion, keys::encode_u64(keys::kCurrentSchemaVersion)}}));
  job_count_.store(check.name_keys);
  applied_index_.store(check.applied_index);
  return ok_status();
}

// Meta keys: the state machine's and the cluster's bookkeeping (applied
// index, schema version, node registry m/member/), never data. A backup
// import carries none of them into the new cluster.
constexpr std::string_view kMetaPrefix = "m/";

Status RocksStore::import_backup(std::string_view image) {
  CHRONOS_ASSIGN_OR_RETURN(const ImageCheck check, check_image(image));

  // Empty means what open() leaves in a new directory: the schema version,
  // the timing index and at most an applied index of 0. Anything else is
  // some cluster's state, which an import must not mix with another's;
  // except the remains of an import cut short (m/restoring), which this
  // one replaces.
  auto not_empty = [](std::string why) {
    return Error{ErrorCode::kAlreadyExists,
                 "a backup can only be imported into an empty store; this one " + why, "store"};
  };
  if (applied_index_.load() != 0) {
    return not_empty("has applied log index " + std::to_string(applied_index_.load()));
  }
  {
    ReadView view(db_.get());
    CHRONOS_ASSIGN_OR_RETURN(const std::optional<std::string> restoring, view.get(keys::kRestoring));
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options()));
    for (it->SeekToFirst(); !restoring && it->Valid(); it->Next()) {
      if (it->key() != to_slice(keys::kSchemaVersion) &&
          it->key() != to_slice(keys::kAppliedIndex) &&
          it->key() != to_slice(keys::kTimingIndex) && it->key() != to_slice(keys::kJobCount)) {
        // Named by its kind only: the rest of a key may be binary.
        const std::string_view key = it->key().ToStringView();
        return not_empty("holds data (a key under " + std::string(key.substr(0, 2)) + ")");
      }
    }
    if (!it->status().ok()) return io_error("scan before import", it->status());
  }

  // Applied index 0: the new cluster's Raft log starts empty, and its first
  // entries must apply here (an index the store claims to have applied would
  // be skipped, and Raft refuses to start a store ahead of its log). The
  // last batch is synced: no log will ever replay this state.
  CHRONOS_RETURN_IF_ERROR(write_image(
      image, check, [](std::string_view key) { return !key.starts_with(kMetaPrefix); },
      {{keys::kAppliedIndex, keys::encode_u64(0)},
       {keys::kTimingIndex, keys::encode_u64(0)},
       {keys::kJobCount, job_count_value(0, check.name_keys)},
       {keys::kSchemaVersion, keys::encode_u64(keys::kCurrentSchemaVersion)}}));
  job_count_.store(check.name_keys);
  return ok_status();
}

// Rebuilds every c/ record from the jobs when m/timing_index is not the
// applied index (see put_timing_record): once after an upgrade from a
// build without them, O(jobs).
Status ensure_timing_records(rocksdb::DB* db, uint64_t applied_index) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), to_slice(keys::kTimingIndex), &value);
  if (s.ok() && keys::decode_u64(value) == applied_index) return ok_status();
  if (!s.ok() && !s.IsNotFound()) return io_error("read timing index", s);
  const std::string timing_upper = keys::prefix_end(keys::kTimingPrefix);
  const std::string job_upper = keys::prefix_end(keys::kJobPrefix);
  rocksdb::WriteBatch batch;
  s = batch.DeleteRange(db->DefaultColumnFamily(), to_slice(keys::kTimingPrefix),
                        rocksdb::Slice(timing_upper));
  if (!s.ok()) return io_error("build timing rebuild", s);
  const rocksdb::Slice upper_slice(job_upper);
  rocksdb::ReadOptions options;
  options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(options));
  uint64_t jobs = 0;
  for (it->Seek(to_slice(keys::kJobPrefix)); it->Valid(); it->Next(), ++jobs) {
    CHRONOS_RETURN_IF_ERROR(
        put_timing_record(&batch, it->key().ToStringView(), it->value().ToStringView()));
  }
  if (!it->status().ok()) return io_error("scan jobs", it->status());
  s = batch.Put(to_slice(keys::kTimingIndex), keys::encode_u64(applied_index));
  if (!s.ok()) return io_error("build timing rebuild", s);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  s = db->Write(write_options, &batch);
  if (!s.ok()) return io_error("write timing records", s);
  if (jobs > 0) spdlog::info("store: timing records rebuilt for {} job(s)", jobs);
  return ok_status();
}

// Counts jobs by their name-index keys (short values; cheaper than j/).
Result<uint64_t> count_jobs(rocksdb::DB* db) {
  const std::string upper = keys::prefix_end(keys::kNamePrefix);
  const rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions options;
  options.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(options));
  uint64_t count = 0;
  for (it->Seek(to_slice(keys::kNamePrefix)); it->Valid(); it->Next()) ++count;
  if (!it->status().ok()) return io_error("count jobs", it->status());
  return count;
}

// The stored job count when it is current (keys::kJobCount), else the
// name keys counted (O(jobs), once: the count is written back).
Result<uint64_t> job_count_at_open(rocksdb::DB* db, uint64_t applied_index) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), to_slice(keys::kJobCount), &value);
  if (!s.ok() && !s.IsNotFound()) return io_error("read job count", s);
  if (s.ok() && value.size() == 16 &&
      keys::decode_u64(std::string_view(value).substr(0, 8)) == applied_index) {
    if (auto n = keys::decode_u64(std::string_view(value).substr(8))) return *n;
  }
  CHRONOS_ASSIGN_OR_RETURN(const uint64_t count, count_jobs(db));
  s = db->Put(rocksdb::WriteOptions(), to_slice(keys::kJobCount),
              job_count_value(applied_index, count));
  if (!s.ok()) return io_error("write job count", s);
  return count;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Error{ErrorCode::kUnavailable, "store: cannot create " + dir + ": " + ec.message(), {}};
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  // Most applies look up keys that do not exist yet (a new job's id and
  // name, a new execution): whole-key Bloom filters in the tables and the
  // memtable answer those without reading and decompressing a block, which
  // was the largest part of applying a create on a store of 100k+ jobs.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.block_cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.memtable_whole_key_filtering = true;
  options.memtable_prefix_bloom_size_ratio = 0.02;
  // After a crash the WAL is replayed into memtables and left there (the
  // WAL is kept until they are flushed as usual) instead of written out as
  // level-0 tables before the node can start.
  options.avoid_flush_during_recovery = true;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return io_error("open " + dir, s);
  std::unique_ptr<rocksdb::DB> db(raw);

  std::string value;
  s = db->Get(rocksdb::ReadOptions(), to_slice(keys::kSchemaVersion), &value);
  if (s.IsNotFound()) {
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    s = db->Put(write_options, to_slice(keys::kSchemaVersion),
                keys::encode_u64(keys::kCurrentSchemaVersion));
    if (!s.ok()) return io_error("write schema version", s);
  } else if (!s.ok()) {
    return io_error("read schema version", s);
  } else {
    CHRONOS_ASSIGN_OR_RETURN(const uint64_t schema, decode_u64_value(keys::kSchemaVersion, value));
    if (schema != keys::kCurrentSchemaVersion) {
      return Error::internal("store: schema version " + std::to_string(schema) + " in " + dir +
                             " is not supported (this build reads version " +
                             std::to_string(keys::kCurrentSchemaVersion) + ")");
    }
  }

  uint64_t applied_index = 0;
  s = db->Get(rocksdb::ReadOptions(), to_slice(keys::kAppliedIndex), &value);
  if (s.ok()) {
    CHRONOS_ASSIGN_OR_RETURN(applied_index, decode_u64_value(keys::kAppliedIndex, value));
  } else if (!s.IsNotFound()) {
    return io_error("read applied index", s);
  }
  s = db->Get(rocksdb::ReadOptions(), to_slice(keys::kRestoring), &value);
  if (s.ok()) {
    // A restore or import cut short: what is here is part of an image.
    // Emptied, so the store claims nothing and holds nothing stale: libraft
    // restores its stored image again (or `chronos restore` imports again,
    // or a new member is sent the leader's).
    spdlog::warn("store: a snapshot restore into {} was interrupted; the store is emptied and "
                 "the image restored again",
                 dir);
    rocksdb::WriteBatch batch;
    s = batch.DeleteRange(db->DefaultColumnFamily(), rocksdb::Slice(), to_slice(kKeyspaceEnd));
    if (s.ok()) {
      s = batch.Put(to_slice(keys::kSchemaVersion), keys::encode_u64(keys::kCurrentSchemaVersion));
    }
    rocksdb::WriteOptions write_options;
    write_options.sync = true;
    if (s.ok()) s = db->Write(write_options, &batch);
    if (!s.ok()) return io_error("empty an interrupted restore", s);
    return std::unique_ptr<Store>(std::make_unique<RocksStore>(std::move(db), 0, 0));
  }
  if (!s.IsNotFound()) return io_error("read restore marker", s);
  CHRONOS_RETURN_IF_ERROR(ensure_timing_records(db.get(), applied_index));
  CHRONOS_ASSIGN_OR_RETURN(const uint64_t job_count, job_count_at_open(db.get(), applied_index));
  return std::unique_ptr<Store>(
      std::make_unique<RocksStore>(std::move(db), applied_index, job_count));
}

Result<std::string> Store::serialize_snapshot() const {
  CHRONOS_ASSIGN_OR_RETURN(SnapshotChunks image, serialize_snapshot_chunks());
  return join_chunks(std::move(image.chunks));
}

Result<uint64_t> Store::snapshot_applied_index(std::string_view image) {
  return read_snapshot_applied_index(image);
}

}  // namespace chronos::store
