#pragma once

#include <string>

#include "absl/time/time.h"

namespace chronos {

// Random UUIDv4 in canonical lowercase form ("xxxxxxxx-xxxx-4xxx-yxxx-...").
// Thread-safe.
std::string new_uuid_v4();

// Time-ordered UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits.
// Ids made later sort after earlier ones as strings (to the millisecond;
// within one process a counter keeps them strictly increasing), so a
// reverse key scan lists executions newest first. Thread-safe.
std::string new_uuid_v7(absl::Time now);

// True when `s` is a canonical lowercase UUID of any version.
bool is_uuid(std::string_view s);

}  // namespace chronos
