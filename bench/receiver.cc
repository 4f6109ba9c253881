// chronos_bench_receiver: the local webhook target of `make bench`'s
// schedule-lag and dispatch-ceiling rows (bench/lag.py).
//
//   chronos_bench_receiver <port> [--ring-seconds N] [--max-samples-per-second N]
//
// A single-threaded Boost.Beast HTTP/1.1 server on 127.0.0.1:<port> (0 = any
// free port; the bound port is printed on stdout as "listening 127.0.0.1:<port>").
// Every POST is answered 200 with an empty body at once, over keep-alive, and
// recorded as (scheduled second, lag, execution id), where
//
//   lag = arrival time (CLOCK_REALTIME, µs) - X-Chronos-Scheduled-Time
//
// `GET /stats?from=<unix s>&to=<unix s>[&expected=<n>]` answers JSON about
// the requests whose scheduled time lies in [from, to): requests, distinct
// executions (X-Chronos-Execution-ID; a retry or a re-dispatch repeats the
// id), lag p50/p99/max (ms) of each execution's first arrival, and counts
// per scheduled second and per arrival second. With `expected`, percentiles
// are ranked among `expected` runs, the missing ones counting as later than
// any arrival: a percentile that falls among them is null ("not delivered").
//
// Why C++ and one thread: the tests' Python receiver (a thread per request,
// under the GIL) would itself be the bottleneck at thousands of requests a
// second. One asio thread answers ~100 000 empty 200s a second on one core,
// leaves the other cycles to the cluster, and needs no locks.

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Boost 1.74's Beast has its own string_view.
std::string_view sv(beast::string_view s) { return {s.data(), s.size()}; }

int64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

template <typename T>
bool parse_number(std::string_view s, T* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// RFC 3339 -> µs since the epoch. Chronos sends UTC with 'Z' and a fraction
// only when non-zero, trailing zeros trimmed (model::format_time: e.g.
// 2026-11-27T18:00:01Z, 2026-11-27T18:00:01.25Z); offsets and any number of
// fraction digits are accepted too.
std::optional<int64_t> parse_rfc3339_us(std::string_view s) {
  auto num = [&](size_t pos, size_t len, int* out) {
    return pos + len <= s.size() && all_digits(s.substr(pos, len)) &&
           parse_number(s.substr(pos, len), out);
  };
  int y, mo, d, hh, mm, ss;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':' || !num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) ||
      !num(11, 2, &hh) || !num(14, 2, &mm) || !num(17, 2, &ss)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{unsigned(mo)},
                                        std::chrono::day{unsigned(d)}};
  if (!ymd.ok() || hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  const int64_t days = std::chrono::sys_days{ymd}.time_since_epoch().count();
  int64_t us = (days * 86400 + hh * 3600 + mm * 60 + ss) * int64_t{1'000'000};
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    int64_t frac = 0, scale = 1'000'000;
    size_t digits = 0;
    for (++pos; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++digits) {
      if (scale > 1) {  // digits below the µs are dropped
        scale /= 10;
        frac += (s[pos] - '0') * scale;
      }
    }
    if (digits == 0) return std::nullopt;
    us += frac;
  }
  if (pos == s.size() - 1 && (s[pos] == 'Z' || s[pos] == 'z')) return us;
  int oh, om;
  if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':' &&
      num(pos + 1, 2, &oh) && num(pos + 4, 2, &om)) {
    const int64_t off = (oh * 3600 + om * 60) * int64_t{1'000'000};
    return s[pos] == '+' ? us - off : us + off;
  }
  return std::nullopt;
}

// What the receiver saw, by scheduled second. Memory is bounded: a ring of
// `ring_seconds` slots indexed by second modulo the ring size, each keeping
// at most `max_samples` samples (requests beyond that are counted, not
// stored). A request scheduled further back than the ring reaches is
// counted in `too_old` only. Single-threaded (the io_context's thread).
class Recorder {
 public:
  Recorder(size_t ring_seconds, size_t max_samples)
      : slots_(ring_seconds), arrivals_(ring_seconds), max_samples_(max_samples) {}

  void record(int64_t scheduled_us, int64_t arrival_us, std::string_view execution_id) {
    ++total_;
    ArrivalSlot& a = arrival_slot(floor_div(arrival_us, 1'000'000));
    ++a.requests;
    Slot* slot = slot_for(floor_div(scheduled_us, 1'000'000));
    if (slot == nullptr) {
      ++too_old_;
      return;
    }
    ++slot->requests;
    if (slot->samples.size() >= max_samples_) {
      ++slot->unsampled;
      return;
    }
    // A 64-bit hash stands for the id: collisions among a few million ids are
    // about 1e-7 likely, and 16 bytes a sample keep 10 000 runs/s x 600 s in
    // about 100 MB.
    slot->samples.push_back(
        {arrival_us - scheduled_us, std::hash<std::string_view>{}(execution_id)});
  }

  void bad_request() { ++bad_; }

  std::string stats_json(int64_t from, int64_t to, std::optional<uint64_t> expected) const {
    // First arrival of each execution (min lag per id) per second; distinct
    // counts add up over seconds because an execution has one scheduled time.
    std::vector<int64_t> first_lags;
    std::string per_second;
    uint64_t requests = 0, unsampled = 0;
    for (int64_t sec = from; sec < to; ++sec) {
      const Slot* slot = find_slot(sec);
      if (slot == nullptr) continue;
      std::vector<Sample> v = slot->samples;
      std::sort(v.begin(), v.end(), [](const Sample& a, const Sample& b) {
        return a.id != b.id ? a.id < b.id : a.lag_us < b.lag_us;
      });
      uint64_t executions = 0;
      for (size_t i = 0; i < v.size(); ++i) {
        if (i == 0 || v[i].id != v[i - 1].id) {
          first_lags.push_back(v[i].lag_us);
          ++executions;
        }
      }
      requests += slot->requests;
      unsampled += slot->unsampled;
      append(&per_second, per_second.empty() ? "" : ",", "{\"t\":", sec,
             ",\"requests\":", slot->requests, ",\"executions\":", executions, "}");
    }
    std::sort(first_lags.begin(), first_lags.end());
    const uint64_t n = first_lags.size();
    const uint64_t population = expected ? std::max<uint64_t>(*expected, n) : n;
    // Nearest rank among `population`; ranks past the arrivals are runs not
    // delivered (yet), later than every arrival: no value.
    auto pct = [&](double p) -> std::string {
      if (population == 0) return "null";
      uint64_t rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(population)));
      rank = std::clamp<uint64_t>(rank, 1, population);
      return rank <= n ? ms(first_lags[rank - 1]) : "null";
    };
    std::string arrivals;
    for (int64_t sec = from; sec < to; ++sec) {
      const ArrivalSlot& a = arrivals_[index(sec)];
      if (a.second != sec || a.requests == 0) continue;
      append(&arrivals, arrivals.empty() ? "" : ",", "{\"t\":", sec, ",\"requests\":", a.requests,
             "}");
    }
    std::string out;
    append(&out, "{\"from\":", from, ",\"to\":", to, ",\"requests\":", requests,
           ",\"executions\":", n, ",\"duplicates\":", requests - unsampled - n,
           ",\"unsampled\":", unsampled, ",\"expected\":");
    append(&out, expected ? std::to_string(*expected) : std::string("null"),
           ",\"lag_ms\":{\"p50\":", pct(0.50), ",\"p99\":", pct(0.99),
           ",\"max\":", n == population && n > 0 ? ms(first_lags.back()) : std::string("null"),
           ",\"max_delivered\":", n > 0 ? ms(first_lags.back()) : std::string("null"),
           ",\"min\":", n > 0 ? ms(first_lags.front()) : std::string("null"), "}");
    append(&out, ",\"per_second\":[", per_second, "],\"arrivals_per_second\":[", arrivals,
           "],\"total_requests\":", total_, ",\"too_old\":", too_old_, ",\"bad_requests\":", bad_,
           ",\"now_ms\":", ms(now_us()), "}\n");
    return out;
  }

 private:
  struct Sample {
    int64_t lag_us;
    uint64_t id;
  };
  struct Slot {
    int64_t second = INT64_MIN;
    uint64_t requests = 0;
    uint64_t unsampled = 0;
    std::vector<Sample> samples;
  };
  struct ArrivalSlot {
    int64_t second = INT64_MIN;
    uint64_t requests = 0;
  };

  size_t index(int64_t sec) const {
    const auto n = static_cast<int64_t>(slots_.size());
    return static_cast<size_t>((sec % n + n) % n);
  }

  // The slot of `sec`, recycled when it held an older second; nullptr when
  // it holds a newer one (sec is older than the ring reaches).
  Slot* slot_for(int64_t sec) {
    Slot& s = slots_[index(sec)];
    if (s.second == sec) return &s;
    if (s.second > sec) return nullptr;
    s.second = sec;
    s.requests = s.unsampled = 0;
    s.samples.clear();
    return &s;
  }

  const Slot* find_slot(int64_t sec) const {
    const Slot& s = slots_[index(sec)];
    return s.second == sec ? &s : nullptr;
  }

  ArrivalSlot& arrival_slot(int64_t sec) {
    ArrivalSlot& a = arrivals_[index(sec)];
    if (a.second != sec) a = {sec, 0};
    return a;
  }

  static std::string ms(int64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(us) / 1000.0);
    return buf;
  }

  template <typename... Args>
  static void append(std::string* out, const Args&... args) {
    auto one = [out](const auto& a) {
      if constexpr (std::is_arithmetic_v<std::decay_t<decltype(a)>>) {
        out->append(std::to_string(a));
      } else {
        out->append(a);
      }
    };
    (one(args), ...);
  }

  std::vector<Slot> slots_;
  std::vector<ArrivalSlot> arrivals_;
  size_t max_samples_;
  uint64_t total_ = 0, too_old_ = 0, bad_ = 0;
};

// ?a=1&b=2 -> the value of `name`, if present.
std::optional<std::string_view> query_param(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// One keep-alive connection: read a request, answer, repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Recorder* recorder)
      : stream_(std::move(socket)), recorder_(recorder) {}

  void start() { read(); }

 private:
  void read() {
    req_ = {};
    http::async_read(stream_, buffer_, req_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       // The arrival time is taken as soon as the whole
                       // request is in, before any other work.
                       if (!ec) self->handle(now_us());
                     });
  }

  void handle(int64_t arrival_us) {
    res_ = {};
    res_.version(req_.version());
    res_.keep_alive(req_.keep_alive());
    res_.result(http::status::ok);
    const std::string_view target = sv(req_.target());
    if (req_.method() == http::verb::post) {
      const auto sched = req_.find("X-Chronos-Scheduled-Time");
      const auto id = req_.find("X-Chronos-Execution-ID");
      std::optional<int64_t> sched_us;
      if (sched != req_.end()) sched_us = parse_rfc3339_us(sv(sched->value()));
      if (sched_us && id != req_.end()) {
        recorder_->record(*sched_us, arrival_us, sv(id->value()));
      } else {
        recorder_->bad_request();
      }
    } else if (req_.method() == http::verb::get && target.starts_with("/stats")) {
      int64_t from = INT64_MIN / 2, to = INT64_MAX / 2;
      uint64_t expected = 0;
      auto f = query_param(target, "from");
      auto t = query_param(target, "to");
      auto e = query_param(target, "expected");
      if ((f && !parse_number(*f, &from)) || (t && !parse_number(*t, &to)) ||
          (e && !parse_number(*e, &expected)) || !f || !t || to - from > 100'000) {
        res_.result(http::status::bad_request);
        res_.body() = "{\"error\":\"from and to (unix seconds, to - from <= 100000) required\"}\n";
      } else {
        res_.set(http::field::content_type, "application/json");
        res_.body() = recorder_->stats_json(
            from, to, e ? std::optional<uint64_t>(expected) : std::optional<uint64_t>());
      }
    } else if (!(req_.method() == http::verb::get && target == "/health")) {
      res_.result(http::status::not_found);
    }
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec && self->res_.keep_alive()) self->read();
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  Recorder* recorder_;
};

void accept(tcp::acceptor* acceptor, Recorder* recorder) {
  acceptor->async_accept([acceptor, recorder](beast::error_code ec, tcp::socket socket) {
    if (!ec) {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(socket), recorder)->start();
    }
    accept(acceptor, recorder);
  });
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: chronos_bench_receiver <port> [--ring-seconds N] "
               "[--max-samples-per-second N]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  uint16_t port = 0;
  // 600 s covers a whole `make bench` lag run; 200 000 samples a second is
  // 20x the highest rate measured.
  size_t ring_seconds = 600, max_samples = 200'000;
  if (!parse_number(std::string_view(argv[1]), &port)) usage();
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i], value = argv[i + 1];
    size_t* dst = nullptr;
    if (flag == "--ring-seconds") dst = &ring_seconds;
    if (flag == "--max-samples-per-second") dst = &max_samples;
    if (dst == nullptr || !parse_number(value, dst) || *dst == 0) usage();
  }
  if (argc % 2 != 0) usage();

  // Each node's dispatcher keeps up to 256 connections to one host:port
  // open, and a new leader opens its own: allow as many files as we may.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }

  asio::io_context ioc{1};
  Recorder recorder(ring_seconds, max_samples);
  tcp::acceptor acceptor(ioc);
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
  beast::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "chronos_bench_receiver: 127.0.0.1:%u: %s\n", unsigned{port},
                 ec.message().c_str());
    return 1;
  }
  accept(&acceptor, &recorder);
  asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&ioc](beast::error_code, int) { ioc.stop(); });
  std::printf("listening 127.0.0.1:%u\n", unsigned{acceptor.local_endpoint().port()});
  std::fflush(stdout);
  ioc.run();
  return 0;
}
