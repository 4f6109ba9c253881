#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/forwarder.h"
#include "api/http_server.h"
#include "base/clock.h"
#include "base/metrics.h"
#include "dispatch/http_dispatcher.h"
#include "model/job.h"
#include "raft/raft_node.h"
#include "sched/scheduler.h"
#include "store/store.h"

namespace chronos::api {

struct ApiOptions {
  std::string node_id = "node-1";
  // This node's API address as other nodes reach it (host:port), recorded
  // in the node registry.
  std::string http_address;
  // On a follower: the leader's commit index as last seen (nullopt when not
  // known recently). A follower is ready only once it has applied that
  // far: its own commit index trails the leader's while it catches up.
  std::function<std::optional<uint64_t>()> leader_commit_index;
  std::string version = "0.0.0";
  model::JobDefaults job_defaults;
};

// The Chronos HTTP API (SPEC §5, shapes in docs/api.md) over a store and a
// Raft node: reads are answered from the local store, writes are proposed
// through Raft and answered after they are committed and applied.
//
// Thread safety: handle() is called concurrently from the HTTP server's I/O
// threads; it never blocks on Raft (responses to writes are sent from the
// proposal's completion). The store, raft node and clock must outlive it.
class Api {
 public:
  // Runs a function on some other thread (the HTTP server's I/O threads).
  using Executor = std::function<void(std::function<void()>)>;

  // `metrics` gets the API's own series and is rendered at /metrics;
  // `dispatcher` runs POST /webhooks/test and shows its circuit breakers;
  // `scheduler` starts manual runs and replays and cancels executions;
  // `forwarder` sends writes (and consistent reads) that reach a follower
  // to the leader (nullptr: they are refused with NO_LEADER).
  Api(ApiOptions options, store::Store* store, raft::RaftNode* raft, const Clock* clock,
      metrics::Registry* metrics, dispatch::HttpDispatcher* dispatcher, sched::Scheduler* scheduler,
      Forwarder* forwarder);

  // Where completions of Raft proposals continue, off the Raft loop and apply threads.
  // Set once, before the first request (until then they run inline).
  void set_executor(Executor executor);

  void handle(HttpRequest request, Responder respond);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace chronos::api
