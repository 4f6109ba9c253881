#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "base/result.h"
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

using Command = std::variant<PutJob, DeleteJob, Noop>;

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

}  // namespace chronos::model
