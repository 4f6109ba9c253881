#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

// The store's keyspace (DESIGN.md "Keyspace"): one ASCII letter and '/' per
// record kind, big-endian integers so numeric parts sort. Ids, namespaces
// and names never contain '/' (the proposer validates them; apply refuses
// them), so a prefix `x/<id>/` never matches another id's keys.
//
//   j/<job_id>                    current job
//   n/<namespace>/<name>          job id (name index)
//   v/<job_id>/<u64 BE version>   job at each version
//   s/<job_id>                    schedule state (last_scheduled, running ids)
//   e/<job_id>/<exec_id>          execution; exec ids are UUIDv7 (time-ordered)
//   r/<exec_id>                   job id of an in-flight execution
//   c/<job_id>                    the job's timing record (timing_record.h)
//   m/applied_index, m/schema_version
//   m/timing_index                the applied index the c/ records match
//   m/member/<u64 BE raft id>     node registry record (name, addresses)
//
// Pure functions; no RocksDB types, so tests and other modules can use them.
namespace chronos::store::keys {

inline constexpr std::string_view kJobPrefix = "j/";
inline constexpr std::string_view kNamePrefix = "n/";
inline constexpr std::string_view kVersionPrefix = "v/";
inline constexpr std::string_view kSchedulePrefix = "s/";
inline constexpr std::string_view kExecutionPrefix = "e/";
inline constexpr std::string_view kRunningPrefix = "r/";
inline constexpr std::string_view kTimingPrefix = "c/";
inline constexpr std::string_view kAppliedIndex = "m/applied_index";
inline constexpr std::string_view kSchemaVersion = "m/schema_version";
inline constexpr std::string_view kTimingIndex = "m/timing_index";
// The number of jobs, so that opening a store does not count a million
// name keys: u64 applied index, then u64 count. Apply writes it with
// m/applied_index; a value whose index is not the applied index (written
// by a build without it, or applied to by one since) is recounted at open.
inline constexpr std::string_view kJobCount = "m/job_count";
// Present while a snapshot restore or a backup import is being written
// (Store::restore_snapshot); its value is the image's applied index.
inline constexpr std::string_view kRestoring = "m/restoring";
inline constexpr uint64_t kCurrentSchemaVersion = 1;
inline constexpr std::string_view kMemberPrefix = "m/member/";

// True when `part` can be one segment of a key: not empty, no '/'.
bool is_key_segment(std::string_view part);

std::string job(std::string_view job_id);
std::string name(std::string_view ns, std::string_view name);
// `n/<namespace>/`: every name key of one namespace.
std::string namespace_prefix(std::string_view ns);
// `v/<job_id>/`: every version key of one job.
std::string versions_prefix(std::string_view job_id);
std::string version(std::string_view job_id, uint64_t version);

std::string schedule(std::string_view job_id);
// `e/<job_id>/`: every execution key of one job, oldest first.
std::string executions_prefix(std::string_view job_id);
std::string execution(std::string_view job_id, std::string_view execution_id);
std::string running(std::string_view execution_id);
std::string timing(std::string_view job_id);
std::string member(uint64_t raft_id);

// The smallest key greater than every key starting with `prefix` (its last
// byte incremented; prefixes here end in '/', so no carry is needed).
std::string prefix_end(std::string_view prefix);

std::string encode_u64(uint64_t v);                          // 8 bytes, big-endian
std::optional<uint64_t> decode_u64(std::string_view bytes);  // nullopt unless 8 bytes

// List cursors: the hex of a name key. Opaque to clients; decode_cursor
// rejects anything that is not the hex of a well-formed `n/<ns>/<name>` key.
std::string encode_cursor(std::string_view name_key);
std::optional<std::string> decode_cursor(std::string_view cursor);
// Execution list cursors: the hex of the last returned execution id.
// decode_execution_cursor rejects anything that is not the hex of a key
// segment.
std::string encode_execution_cursor(std::string_view execution_id);
std::optional<std::string> decode_execution_cursor(std::string_view cursor);

// The namespace segment of a well-formed name key.
std::string_view namespace_of_name_key(std::string_view name_key);

}  // namespace chronos::store::keys
