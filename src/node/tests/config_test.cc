#include "node/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace chronos::node {
namespace {

std::string write_temp(const std::string& text) {
  char path[] = "/tmp/chronos-config-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(Config, DefaultsMatchSpec) {
  auto c = load_config({}, {});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->data_dir, "./chronos-data");
  EXPECT_EQ(c->http_address, "127.0.0.1:8080");
  EXPECT_EQ(c->raft_address, "127.0.0.1:7000");
  EXPECT_TRUE(c->raft_peers.empty());
}

TEST(Config, FlagsBeatEnvBeatFileBeatDefaults) {
  std::string file = write_temp(
      "cluster:\n  node_id: from-file\n  data_dir: /tmp/file-dir\n  raft:\n    address: "
      "127.0.0.1:7100\nserver:\n  http:\n    address: 127.0.0.1:8100\n");
  ConfigFlags flags;
  flags.config_file = file;
  flags.http_address = "127.0.0.1:8300";
  std::map<std::string, std::string> env = {{"CHRONOS_DATA_DIR", "/tmp/env-dir"},
                                            {"CHRONOS_HTTP_ADDRESS", "127.0.0.1:8200"}};
  auto c = load_config(flags, env);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->node_id, "from-file");
  EXPECT_EQ(c->data_dir, "/tmp/env-dir");
  EXPECT_EQ(c->raft_address, "127.0.0.1:7100");
  EXPECT_EQ(c->http_address, "127.0.0.1:8300");
  std::remove(file.c_str());
}

TEST(Config, ExpandsVariablesAndNamesUnsetOnes) {
  std::string file = write_temp("cluster:\n  node_id: ${NODE}\n");
  ConfigFlags flags;
  flags.config_file = file;
  auto c = load_config(flags, {{"NODE", "n7"}});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->node_id, "n7");
  auto bad = load_config(flags, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("NODE"), std::string::npos);
  std::remove(file.c_str());
}

TEST(Config, RejectsUnknownKeysAndBadValuesNamingTheKey) {
  std::string file = write_temp("cluster:\n  raft:\n    snapshot_threshold: many\n");
  ConfigFlags flags;
  flags.config_file = file;
  auto c = load_config(flags, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().field, "cluster.raft.snapshot_threshold");
  std::remove(file.c_str());

  file = write_temp("clustr:\n  node_id: x\n");
  flags.config_file = file;
  c = load_config(flags, {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().field, "clustr.node_id");
  std::remove(file.c_str());
}

TEST(Config, LookaheadDefaultsToHalfASecondAndIsAtMostOne) {
  auto c = load_config({}, {});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->lookahead, absl::Milliseconds(500));
  for (const char* value : {"0s", "1s"}) {
    std::string file = write_temp(std::string("scheduler:\n  lookahead: ") + value + "\n");
    ConfigFlags flags;
    flags.config_file = file;
    EXPECT_TRUE(load_config(flags, {}).ok()) << value;
    std::remove(file.c_str());
  }
  std::string file = write_temp("scheduler:\n  lookahead: 2s\n");
  ConfigFlags flags;
  flags.config_file = file;
  auto bad = load_config(flags, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().field, "scheduler.lookahead");
  std::remove(file.c_str());
}

TEST(Config, PeersFromEnvAreSplitOnCommas) {
  auto c = load_config({}, {{"CHRONOS_RAFT_PEERS", "a@127.0.0.1:7001, b@127.0.0.1:7002"}});
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->raft_peers.size(), 2u);
  EXPECT_EQ(c->raft_peers[1], "b@127.0.0.1:7002");
}

}  // namespace
}  // namespace chronos::node
