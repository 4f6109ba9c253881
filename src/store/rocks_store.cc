// RocksDB implementation of Store. RocksDB headers stay in this file so the
// rest of the project compiles without them.

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/utilities/write_batch_with_index.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "model/job_codec.h"
#include "nlohmann/json.hpp"
#include "store/keys.h"
#include "store/snapshot_image.h"
#include "store/store.h"

namespace chronos::store {

namespace {

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
  --*job_delta;
  return CommandEffect(std::move(*stored));
}

// Owns the DB. Mutations (apply, restore) come from one thread; reads from
// any thread, each at its own RocksDB snapshot. The counters are atomics
// written only by the mutating thread after its write succeeded.
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
  Result<std::string> serialize_snapshot() const override;
  Status restore_snapshot(std::string_view image) override;

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> applied_index_;
  std::atomic<uint64_t> job_count_;
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
    Result<CommandEffect> result =
        std::visit(Overloaded{
                       [&](const model::PutJob& c) { return apply_put(txn, c, &job_delta); },
                       [&](const model::DeleteJob& c) { return apply_delete(txn, c, &job_delta); },
                       [](const model::Noop&) { return Result<CommandEffect>(CommandEffect()); },
                   },
                   command);
    if (txn.failed()) return txn.fatal();
    outcome.results.push_back(std::move(result));
  }
  txn.put(keys::kAppliedIndex, keys::encode_u64(index));
  if (txn.failed()) return txn.fatal();

  // sync=false: the Raft log is the durable record. A crash may lose the
  // last applies; the stored applied index then lags and Raft replays the
  // entries above it (README "Durability").
  rocksdb::WriteOptions write_options;
  write_options.sync = false;
  const rocksdb::Status s = db_->Write(write_options, txn.write_batch());
  if (!s.ok()) return io_error("apply write", s);

  job_count_.store(static_cast<uint64_t>(static_cast<int64_t>(job_count_.load()) + job_delta));
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

Result<std::string> RocksStore::serialize_snapshot() const {
  ReadView view(db_.get());
  CHRONOS_ASSIGN_OR_RETURN(std::optional<std::string> applied, view.get(keys::kAppliedIndex));
  uint64_t applied_index = 0;
  if (applied) {
    CHRONOS_ASSIGN_OR_RETURN(applied_index, decode_u64_value(keys::kAppliedIndex, *applied));
  }
  SnapshotImageWriter writer(applied_index);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(view.options()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    writer.add(it->key().ToStringView(), it->value().ToStringView());
  }
  if (!it->status().ok()) return io_error("scan for snapshot", it->status());
  return std::move(writer).finish();
}

// Every key of the store sorts below this (all start with an ASCII letter),
// so DeleteRange("", kKeyspaceEnd) clears the whole keyspace.
constexpr std::string_view kKeyspaceEnd = "\xff";

Status RocksStore::restore_snapshot(std::string_view image) {
  CHRONOS_ASSIGN_OR_RETURN(const SnapshotImage parsed, parse_snapshot_image(image));
  uint64_t name_keys = 0;
  for (const auto& [key, value] : parsed.pairs) {
    if (key.empty() || key >= kKeyspaceEnd) {
      return Error::validation("snapshot", "holds a key outside the store's keyspace");
    }
    if (key == keys::kAppliedIndex && keys::decode_u64(value) != parsed.applied_index) {
      return Error::validation("snapshot", "applied index in header and body disagree");
    }
    if (key == keys::kSchemaVersion && keys::decode_u64(value) != keys::kCurrentSchemaVersion) {
      return Error::validation("snapshot", "has an unsupported schema version");
    }
    if (key.starts_with(keys::kNamePrefix)) ++name_keys;
  }

  rocksdb::WriteBatch batch;
  rocksdb::Status s =
      batch.DeleteRange(db_->DefaultColumnFamily(), rocksdb::Slice(), to_slice(kKeyspaceEnd));
  for (const auto& [key, value] : parsed.pairs) {
    if (s.ok()) s = batch.Put(to_slice(key), to_slice(value));
  }
  // Both meta keys exist after a restore even if the image (an empty store's)
  // lacked them.
  if (s.ok()) s = batch.Put(to_slice(keys::kAppliedIndex), keys::encode_u64(parsed.applied_index));
  if (s.ok()) {
    s = batch.Put(to_slice(keys::kSchemaVersion), keys::encode_u64(keys::kCurrentSchemaVersion));
  }
  if (!s.ok()) return io_error("build restore batch", s);

  // sync=true: a restore replaces state the Raft log no longer holds (it was
  // compacted into the snapshot), so it must be on disk before we go on.
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  s = db_->Write(write_options, &batch);
  if (!s.ok()) return io_error("restore write", s);

  job_count_.store(name_keys);
  applied_index_.store(parsed.applied_index);
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

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Error{ErrorCode::kUnavailable, "store: cannot create " + dir + ": " + ec.message(), {}};
  }
  rocksdb::Options options;
  options.create_if_missing = true;
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
  CHRONOS_ASSIGN_OR_RETURN(const uint64_t job_count, count_jobs(db.get()));
  return std::unique_ptr<Store>(
      std::make_unique<RocksStore>(std::move(db), applied_index, job_count));
}

Result<uint64_t> Store::snapshot_applied_index(std::string_view image) {
  return read_snapshot_applied_index(image);
}

}  // namespace chronos::store
