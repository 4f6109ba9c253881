#pragma once

#include <string>

namespace chronos::cli {

// `chronos restore FILE --data-dir DIR` (docs/cluster.md "Snapshots, backup
// and restore"): checks the backup image in FILE and builds in DIR a data
// directory that `chronos serve --data-dir DIR` starts as a new single-node
// cluster. DIR must not exist or be empty. DIR only ever appears complete:
// the store is built in a staging directory and renamed into place last, and
// any failure removes the staging directory. Returns the process exit code:
// 0, or 1 after a message on stderr. Single-threaded; run it before any node
// uses DIR.
int run_restore(const std::string& file, const std::string& data_dir);

}  // namespace chronos::cli
