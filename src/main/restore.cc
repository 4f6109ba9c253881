#include "main/restore.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/strings.h"
#include "store/store.h"

// Layout built here, as node.cc expects it: <DIR>/store is the RocksDB store;
// <DIR>/raft is absent, so the first `serve` bootstraps a new one-voter Raft
// cluster whose log starts under the imported store (applied index 0).
//
//   DIR missing:  <parent>/.<name>.restore-XXXXXX/store  --rename-->  DIR
//   DIR empty:    DIR/.restore-XXXXXX/store              --rename-->  DIR/store
//
// An existing DIR is kept and only its store/ is moved in: DIR may be a
// mount point (a fresh volume), which cannot be replaced by a rename.
namespace chronos::cli {
namespace {

namespace fs = std::filesystem;

struct Restored {
  fs::path dir;
  uint64_t backup_applied_index = 0;
  uint64_t jobs = 0;
  uint64_t in_flight = 0;
};

Error failure(std::string message) {
  return Error{ErrorCode::kUnavailable, std::move(message), {}};
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// The whole backup file. Read with POSIX calls so a directory or other
// non-file is refused by name rather than read as empty.
Result<std::string> read_backup(const std::string& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failure(str_cat("cannot read backup ", file, ": ", errno_text(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return failure(str_cat("cannot read backup ", file, ": ", errno_text(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return failure(str_cat("cannot read backup ", file, ": not a regular file"));
  }
  std::string image;
  image.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return failure(str_cat("cannot read backup ", file, ": ", errno_text(err)));
    }
    image.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return image;
}

// A fresh directory `<in>/<prefix>XXXXXX` (mode 0700: the store holds job
// secrets).
Result<fs::path> make_staging_dir(const fs::path& in, const std::string& prefix) {
  std::string templ = (in / (prefix + "XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    return failure(
        str_cat("cannot create a staging directory in ", in.string(), ": ", errno_text(errno)));
  }
  return fs::path(templ);
}

// Makes a rename inside `dir` durable.
Status sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return failure(str_cat("cannot open ", dir.string(), ": ", errno_text(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return failure(str_cat("cannot sync ", dir.string(), ": ", errno_text(err)));
  return ok_status();
}

// Removes the staging directory (and whatever is left in it) on every exit
// path; after a successful move only an empty directory, or nothing, is left.
class StagingGuard {
 public:
  explicit StagingGuard(fs::path path) : path_(std::move(path)) {}
  ~StagingGuard() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  StagingGuard(const StagingGuard&) = delete;
  StagingGuard& operator=(const StagingGuard&) = delete;
  // The staging directory itself became the data directory.
  void release() { path_.clear(); }

 private:
  fs::path path_;
};

// Imports the image into a new store in `store_dir` and closes it again, so
// the directory can be moved.
Status build_store(const fs::path& store_dir, const std::string& file, const std::string& image,
                   Restored* out) {
  Result<std::unique_ptr<store::Store>> store = store::Store::open(store_dir.string());
  if (!store.ok()) return failure(str_cat("cannot create the store: ", store.error().message));
  if (Status s = (*store)->import_backup(image); !s.ok()) {
    if (s.error().code == ErrorCode::kValidation) {
      return failure(str_cat(file, " is not a valid Chronos backup: ", s.error().field, " ",
                             s.error().message));
    }
    return failure(str_cat("cannot import the backup: ", s.error().message));
  }
  out->jobs = (*store)->job_count();
  std::string after;
  for (;;) {
    Result<std::vector<model::Execution>> page = (*store)->list_in_flight(after, 1000);
    if (!page.ok()) {
      return failure(str_cat("cannot read the imported store: ", page.error().message));
    }
    out->in_flight += page->size();
    if (page->size() < 1000) break;
    after = page->back().id;
  }
  return ok_status();
}

Result<Restored> restore(const std::string& file, const std::string& data_dir) {
  Restored out;
  std::error_code ec;
  fs::path dir = fs::absolute(data_dir, ec);
  if (ec) return failure(str_cat("cannot resolve --data-dir ", data_dir, ": ", ec.message()));
  dir = dir.lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "d/" names d
  out.dir = dir;

  // status() reports a missing path as not_found (with ec set); any other
  // failure to look (permissions, I/O) as none.
  const fs::file_status status = fs::status(dir, ec);
  if (status.type() == fs::file_type::none) {
    return failure(str_cat("cannot inspect ", dir.string(), ": ", ec.message()));
  }
  const bool exists = status.type() != fs::file_type::not_found;
  if (exists) {
    if (!fs::is_directory(status)) {
      return failure(str_cat("data directory ", dir.string(), " exists and is not a directory"));
    }
    const bool empty = fs::is_empty(dir, ec);
    if (ec) return failure(str_cat("cannot inspect ", dir.string(), ": ", ec.message()));
    if (!empty) {
      return failure(str_cat("data directory ", dir.string(),
                             " is not empty; restore builds a new data directory and never "
                             "writes into a used one"));
    }
  }

  CHRONOS_ASSIGN_OR_RETURN(const std::string image, read_backup(file));
  // The header alone (no directory is created for a file that is plainly
  // not a backup); the checksum is checked by the import below.
  Result<uint64_t> index = store::Store::snapshot_applied_index(image);
  if (!index.ok()) {
    return failure(str_cat(file, " is not a valid Chronos backup: ", index.error().field, " ",
                           index.error().message));
  }
  out.backup_applied_index = *index;

  fs::path staging;
  if (exists) {
    CHRONOS_ASSIGN_OR_RETURN(staging, make_staging_dir(dir, ".restore-"));
  } else {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) {
      return failure(str_cat("cannot create ", dir.parent_path().string(), ": ", ec.message()));
    }
    CHRONOS_ASSIGN_OR_RETURN(
        staging,
        make_staging_dir(dir.parent_path(), str_cat(".", dir.filename().string(), ".restore-")));
  }
  StagingGuard guard(staging);
  CHRONOS_RETURN_IF_ERROR(build_store(staging / "store", file, image, &out));
  // Tells the node that this store is not explained by its (new) Raft log:
  // its first leadership snapshots the whole state for new members
  // (docs/cluster.md, node.cc).
  {
    const fs::path marker = staging / "store" / std::string(store::kRestoredMarker);
    std::FILE* f = std::fopen(marker.c_str(), "w");
    if (f == nullptr || std::fclose(f) != 0) {
      return failure(str_cat("cannot write ", marker.string()));
    }
  }

  // The one step that makes DIR usable; before it DIR is as it was.
  const fs::path from = exists ? staging / "store" : staging;
  const fs::path to = exists ? dir / "store" : dir;
  fs::rename(from, to, ec);
  if (ec) {
    return failure(str_cat("cannot move the restored store into ", dir.string(), ": ", ec.message(),
                           " (was the directory changed meanwhile?)"));
  }
  if (!exists) guard.release();
  if (Status s = sync_dir(to.parent_path()); !s.ok()) {
    return failure(str_cat("restored into ", dir.string(),
                           " but could not make it durable: ", s.error().message));
  }
  return out;
}

}  // namespace

int run_restore(const std::string& file, const std::string& data_dir) {
  Result<Restored> r = restore(file, data_dir);
  if (!r.ok()) {
    std::fprintf(stderr, "chronos restore: %s\n", r.error().message.c_str());
    return 1;
  }
  const std::string dir = r->dir.string();
  std::printf(
      "chronos restore: restored %s into %s\n"
      "  jobs:                 %llu\n"
      "  in-flight executions: %llu (re-dispatched by the new cluster's leader)\n"
      "  backup applied index: %llu (the new cluster starts its own Raft log)\n"
      "Start it as a new single-node cluster (without --raft-peers, so it bootstraps alone):\n"
      "  chronos serve --data-dir %s --node-id ID --raft-address HOST:PORT "
      "--http-address HOST:PORT\n"
      "then grow it with --join (docs/cluster.md).\n",
      file.c_str(), dir.c_str(), static_cast<unsigned long long>(r->jobs),
      static_cast<unsigned long long>(r->in_flight),
      static_cast<unsigned long long>(r->backup_applied_index), dir.c_str());
  return 0;
}

}  // namespace chronos::cli
