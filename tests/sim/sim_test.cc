// The deterministic cluster simulation (tests/sim/README.md): a fixed range
// of seeds, each a whole cluster run with faults and the end-of-run checks.
// A failing seed prints its configuration, what failed and an excerpt of
// its event log; CHRONOS_SIM_SEED replays it alone with the whole log.
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <future>
#include <iostream>
#include <string>

#include "base/strings.h"
#include "gtest/gtest.h"
#include "sim/world.h"
#include "spdlog/spdlog.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace chronos::sim {
namespace {

#if defined(__SANITIZE_ADDRESS__)
// ASan+UBSan (a Debug build) simulate about ten times slower, mostly in the
// store's apply path; 200 seeds would take over four minutes there. The
// release build runs the whole range; seeds are the same in both.
constexpr uint64_t kDefaultSeeds = 64;
#else
constexpr uint64_t kDefaultSeeds = 200;
#endif

// Stop after this many failing seeds: the first few say what is wrong.
constexpr int kMaxReportedFailures = 5;

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  uint64_t out = 0;
  if (v == nullptr || !parse_int(std::string_view(v), &out)) return fallback;
  return out;
}

// The seed being simulated. A CHRONOS_CHECK failure, an assertion inside
// libraft's fixture (it aborts on two leaders in one term) or a sanitizer
// report ends the process before the test can report, so the seed is
// printed from there.
std::atomic<uint64_t> g_seed{0};

void print_crashed_seed() {
  char digits[24];
  size_t n = 0;
  uint64_t v = g_seed.load();
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < sizeof digits);
  char buf[160];
  size_t len = 0;
  auto put = [&](const char* s, size_t k) {
    for (size_t i = 0; i < k && len < sizeof buf; ++i) buf[len++] = s[i];
  };
  auto put_seed = [&] {
    for (size_t i = n; i > 0; --i) put(&digits[i - 1], 1);
  };
  const char kHead[] = "\nsimulation: crashed in seed ";
  const char kMid[] = "; replay with CHRONOS_SIM_SEED=";
  put(kHead, sizeof kHead - 1);
  put_seed();
  put(kMid, sizeof kMid - 1);
  put_seed();
  put("\n", 1);
  ssize_t unused = write(STDERR_FILENO, buf, len);
  (void)unused;
}

extern "C" void on_fatal_signal(int sig) {
  print_crashed_seed();
  signal(sig, SIG_DFL);
  raise(sig);
}

// Installs the crash report for the duration of the test.
class CrashReport {
 public:
  CrashReport() {
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(&print_crashed_seed);
    // ASan reports SIGSEGV/SIGBUS itself (and then runs the callback).
    const int kSignals[] = {SIGABRT, SIGFPE, SIGILL};
#else
    const int kSignals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#endif
    struct sigaction sa {};
    sa.sa_handler = &on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : kSignals) {
      struct sigaction old {};
      sigaction(sig, &sa, &old);
      saved_.push_back({sig, old});
    }
  }
  ~CrashReport() {
    for (auto& [sig, old] : saved_) sigaction(sig, &old, nullptr);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(nullptr);
#endif
  }
  CrashReport(const CrashReport&) = delete;
  CrashReport& operator=(const CrashReport&) = delete;

 private:
  std::vector<std::pair<int, struct sigaction>> saved_;
};

// Opening RocksDB costs tens of milliseconds per store, most of it waiting
// on the file system, and removing a seed's directory as much again: both
// happen on helper threads (the next seed's stores open while a seed runs;
// a finished seed's directory is removed while the next one runs), so the
// test's own thread only simulates. Every seed still gets fresh stores.
// The destructor waits for both helpers and removes what is left.
class SeedPipeline {
 public:
  SeedPipeline(uint64_t first, uint64_t end) : end_(end) { open(first); }
  ~SeedPipeline() {
    if (next_.valid()) {
      auto left = next_.get();
      if (left.ok()) {
        const std::string dir = left->dir;
        left->stores.clear();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      }
    }
    if (removing_.valid()) removing_.get();
  }
  SeedPipeline(const SeedPipeline&) = delete;
  SeedPipeline& operator=(const SeedPipeline&) = delete;

  // The stores of `seed` (the one after the previous call), and starts
  // opening the next seed's.
  Result<SeedStores> take(uint64_t seed) {
    auto stores = next_.get();
    if (seed + 1 < end_) open(seed + 1);
    return stores;
  }
  // `dir` is no longer used.
  void remove(std::string dir) {
    if (removing_.valid()) removing_.get();
    removing_ = std::async(std::launch::async, [dir = std::move(dir)] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
  }

 private:
  void open(uint64_t seed) {
    next_ = std::async(std::launch::async,
                       [seed] { return open_seed_stores(SeedConfig::from_seed(seed)); });
  }

  uint64_t end_;
  std::future<Result<SeedStores>> next_;
  std::future<void> removing_;
};

TEST(Simulation, SeededClusterRunsLoseNoJobMissNoRunStartNoRunTwiceAndConverge) {
  const bool single = getenv("CHRONOS_SIM_SEED") != nullptr;
  const uint64_t first =
      single ? env_u64("CHRONOS_SIM_SEED", 1) : env_u64("CHRONOS_SIM_FIRST_SEED", 1);
  const uint64_t count = single ? 1 : env_u64("CHRONOS_SIM_SEEDS", kDefaultSeeds);
  const bool verbose = single || getenv("CHRONOS_SIM_VERBOSE") != nullptr;
  const bool full_logs = single || getenv("CHRONOS_SIM_LOG") != nullptr;
  // The drivers' own log lines (activation, dropped results) are in each
  // seed's event log already; on stderr they would bury the report.
  spdlog::set_level(spdlog::level::err);
  // Runs dropped by a missed-run policy while a majority was up fail the
  // seed (README "Runs dropped while a majority was up");
  // CHRONOS_SIM_LENIENT=1 counts them instead.
  const bool strict = getenv("CHRONOS_SIM_LENIENT") == nullptr;

  CrashReport crash_report;
  SeedPipeline pipeline(first, first + count);
  int failed = 0;
  uint64_t ran = 0;
  uint64_t dropping = 0;  // seeds where a failover outlasted late_grace
  uint64_t first_dropping = 0;
  absl::Duration max_lateness = absl::ZeroDuration();
  for (uint64_t seed = first; seed < first + count; ++seed) {
    g_seed = seed;
    auto stores = pipeline.take(seed);
    ASSERT_TRUE(stores.ok()) << "seed " << seed << ": " << stores.error().message;
    const std::string dir = stores->dir;
    SeedReport r;
    {
      SeedConfig config = SeedConfig::from_seed(seed);
      config.strict = strict;
      World world(config, std::move(stores).value(), full_logs);
      r = world.run();
    }
    pipeline.remove(dir);
    ++ran;
    max_lateness = std::max(max_lateness, r.max_lateness);
    if (r.dropped_under_majority > 0 && dropping++ == 0) first_dropping = seed;
    if (verbose) std::cout << r.config << "\n  " << r.stats << std::endl;
    if (full_logs) std::cout << r.full_log;
    if (r.failures.empty()) continue;
    std::string msg = str_cat(r.config, "\n  ", r.stats, "\n");
    for (const auto& f : r.failures) msg += str_cat("  FAILED ", f, "\n");
    msg += r.failure_log;
    msg +=
        str_cat("replay: CHRONOS_SIM_SEED=", seed, " ", ::testing::internal::GetArgvs()[0], "\n");
    ADD_FAILURE() << msg;
    if (++failed >= kMaxReportedFailures) break;
  }
  std::cout << "simulation: " << ran << " seed(s) from " << first << ", " << failed
            << " failed; largest lateness under the deadline "
            << absl::ToInt64Milliseconds(max_lateness) << "ms; " << dropping
            << " seed(s) dropped a run by missed-run policy while a majority was up";
  if (dropping > 0) std::cout << " (first: seed " << first_dropping << ")";
  std::cout << std::endl;
}

}  // namespace
}  // namespace chronos::sim
