#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "model/job.h"

// The value of `c/<job_id>` (README "Keyspace"): a job's model::JobTiming in
// a fixed binary layout, so a new leader reads a million of them in well
// under a second (a job's full MessagePack costs ~14 µs to decode). The id
// is the key's, not stored again. Layout, integers big-endian:
//
//   u8  format (1)          u8  flags (bit 0: enabled)
//   i64 version             i64 created_at, Unix seconds (floor)
//   u32 created_at, ns past that second
//   i64 jitter, ns          u32 length + schedule bytes
//   u32 length + timezone bytes
//
// Pure functions; no RocksDB types.
namespace chronos::store {

std::string encode_timing_record(const model::JobTiming& timing);
// kInternal ("corrupt timing record ...") for anything encode did not write.
Result<model::JobTiming> decode_timing_record(std::string_view job_id, std::string_view bytes);

}  // namespace chronos::store
