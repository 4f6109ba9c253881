#pragma once

#include <memory>

#include "base/result.h"
#include "node/config.h"

namespace chronos::node {

// One running Chronos node: store, Raft member and HTTP API wired together.
//
// Lifecycle: start() opens everything (or fails without leaving threads
// behind); stop() shuts down in dependency order — HTTP accept loop, then
// Raft (pending proposals fail with UNAVAILABLE), then the store. Not
// thread-safe: start/stop from the controlling thread.
class Node {
 public:
  virtual ~Node() = default;
  static Result<std::unique_ptr<Node>> start(const NodeConfig& config);
  // The HTTP URL the API is served on ("http://127.0.0.1:8080").
  virtual std::string url() const = 0;
  virtual void stop() = 0;
};

}  // namespace chronos::node
