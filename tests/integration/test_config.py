"""Configuration sources and their precedence: flags > env > file > defaults
(SPEC §7), `${VAR}` expansion, and refusal of bad values."""

import os
import unittest

import chronos_harness as h
from chronos_harness import assert_ok

HOST = h.HOST


def addr(port):
    return "%s:%d" % (HOST, port)


@h.require_binary
class ConfigTest(unittest.TestCase):

    def setUp(self):
        self.work = h.make_temp_dir("chronos-cfg-")
        self.addCleanup(h.remove_temp_dir, self.work)

    def write_config(self, text, name="chronos.yaml"):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, **kwargs):
        return h.new_node(self, **kwargs)

    def status(self, node):
        return assert_ok(self, node.api("GET", "/api/v1/cluster/status"))

    def full_config(self, node_id, data_dir, http_port, raft_port, extra=""):
        return ("cluster:\n"
                "  node_id: %s\n"
                "  data_dir: %s\n"
                "  raft:\n"
                "    address: \"%s\"\n"
                "%s"
                "server:\n"
                "  http:\n"
                "    address: \"%s\"\n"
                "logging:\n"
                "  level: info\n" % (node_id, data_dir, addr(raft_port), extra,
                                     addr(http_port)))

    # --- environment -------------------------------------------------------
    def test_env_vars_configure_node_without_flags(self):
        data = os.path.join(self.work, "env-data")
        hp, rp = h.free_port(), h.free_port()
        node = self.start(use_flags=False, http_port=hp, raft_port=rp, env={
            "CHRONOS_NODE_ID": "envnode", "CHRONOS_DATA_DIR": data,
            "CHRONOS_HTTP_ADDRESS": addr(hp), "CHRONOS_RAFT_ADDRESS": addr(rp),
            "CHRONOS_LOG_LEVEL": "info"})
        st = self.status(node)
        self.assertEqual(st["node_id"], "envnode")
        self.assertEqual(st["nodes"][0]["address"], addr(rp))
        self.assertTrue(os.path.isdir(data) and os.listdir(data),
                        "data dir from CHRONOS_DATA_DIR not used")

    def test_flags_beat_env(self):
        env_hp, flag_hp = h.free_port(), h.free_port()
        rp = h.free_port()
        data = os.path.join(self.work, "flag-data")
        node = self.start(
            use_flags=False, http_port=flag_hp, raft_port=rp,
            env={"CHRONOS_NODE_ID": "envnode",
                 "CHRONOS_HTTP_ADDRESS": addr(env_hp),
                 "CHRONOS_DATA_DIR": os.path.join(self.work, "env-data"),
                 "CHRONOS_RAFT_ADDRESS": addr(rp)},
            extra_args=["--node-id", "flagnode", "--http-address",
                        addr(flag_hp), "--data-dir", data])
        self.assertEqual(self.status(node)["node_id"], "flagnode")
        self.assertFalse(h.port_is_listening(env_hp),
                         "also listening on the env address")
        self.assertTrue(os.path.isdir(data) and os.listdir(data))
        self.assertFalse(os.path.exists(os.path.join(self.work, "env-data")),
                         "env data dir used although --data-dir was given")

    def test_env_beats_config_file(self):
        file_hp, env_hp, rp = h.free_port(), h.free_port(), h.free_port()
        cfg = self.write_config(self.full_config(
            "filenode", os.path.join(self.work, "file-data"), file_hp, rp))
        node = self.start(use_flags=False, http_port=env_hp, raft_port=rp,
                          env={"CHRONOS_NODE_ID": "envnode",
                               "CHRONOS_HTTP_ADDRESS": addr(env_hp)},
                          extra_args=["--config", cfg])
        st = self.status(node)
        self.assertEqual(st["node_id"], "envnode")
        self.assertFalse(h.port_is_listening(file_hp))
        # Keys the env did not override still come from the file.
        self.assertTrue(os.listdir(os.path.join(self.work, "file-data")))

    def test_chronos_config_env_names_the_config_file(self):
        hp, rp = h.free_port(), h.free_port()
        cfg = self.write_config(self.full_config(
            "cfgenv", os.path.join(self.work, "d"), hp, rp))
        node = self.start(use_flags=False, http_port=hp, raft_port=rp,
                          env={"CHRONOS_CONFIG": cfg})
        self.assertEqual(self.status(node)["node_id"], "cfgenv")

    # --- config file -------------------------------------------------------
    def test_config_file_alone_configures_node(self):
        hp, rp = h.free_port(), h.free_port()
        data = os.path.join(self.work, "file-only")
        cfg = self.write_config(self.full_config("fileonly", data, hp, rp))
        node = self.start(use_flags=False, http_port=hp, raft_port=rp,
                          extra_args=["--config", cfg])
        st = self.status(node)
        self.assertEqual(st["node_id"], "fileonly")
        self.assertEqual(st["nodes"][0]["address"], addr(rp))
        self.assertTrue(os.listdir(data))

    def test_config_file_expands_env_vars(self):
        hp, rp = h.free_port(), h.free_port()
        cfg = self.write_config(
            "cluster:\n"
            "  node_id: ${CHRONOS_TEST_NODE}\n"
            "  data_dir: ${CHRONOS_TEST_DIR}/expanded\n"
            "  raft:\n"
            "    address: \"127.0.0.1:${CHRONOS_TEST_RAFT_PORT}\"\n"
            "server:\n"
            "  http:\n"
            "    address: \"127.0.0.1:${CHRONOS_TEST_HTTP_PORT}\"\n")
        node = self.start(use_flags=False, http_port=hp, raft_port=rp,
                          env={"CHRONOS_TEST_NODE": "expanded-node",
                               "CHRONOS_TEST_DIR": self.work,
                               "CHRONOS_TEST_RAFT_PORT": str(rp),
                               "CHRONOS_TEST_HTTP_PORT": str(hp)},
                          extra_args=["--config", cfg])
        self.assertEqual(self.status(node)["node_id"], "expanded-node")
        self.assertTrue(os.listdir(os.path.join(self.work, "expanded")))

    def test_flags_beat_config_file(self):
        file_hp, rp = h.free_port(), h.free_port()
        cfg = self.write_config(self.full_config(
            "filenode", os.path.join(self.work, "fd"), file_hp, rp))
        node = self.start(node_id="flagnode", raft_port=rp,
                          extra_args=["--config", cfg])
        self.assertEqual(self.status(node)["node_id"], "flagnode")
        self.assertFalse(h.port_is_listening(file_hp))

    # --- bad configuration --------------------------------------------------
    def assert_refused(self, cfg_text, key, extra_env=None):
        hp, rp = h.free_port(), h.free_port()
        cfg = self.write_config(cfg_text)
        rc, out = h.run_chronos(
            ["serve", "--node-id", "bad", "--data-dir",
             os.path.join(self.work, "bad-data"), "--http-address", addr(hp),
             "--raft-address", addr(rp), "--config", cfg],
            env=extra_env, cwd=self.work, timeout=30)
        self.assertIsNotNone(rc, "chronos kept running with a bad config:\n"
                             + out[-3000:])
        self.assertNotEqual(rc, 0, "exit code 0 with a bad config:\n" +
                            out[-3000:])
        self.assertIn(key, out, "error does not name %s:\n%s" % (key,
                                                                 out[-3000:]))
        self.assertFalse(h.port_is_listening(hp))

    def test_non_integer_snapshot_threshold_is_refused_naming_key(self):
        self.assert_refused(
            "cluster:\n  raft:\n    snapshot_threshold: lots\n",
            "cluster.raft.snapshot_threshold")

    def test_negative_snapshot_threshold_is_refused_naming_key(self):
        self.assert_refused(
            "cluster:\n  raft:\n    snapshot_threshold: -5\n",
            "cluster.raft.snapshot_threshold")

    def test_unknown_log_level_is_refused_naming_key(self):
        self.assert_refused("logging:\n  level: shouty\n", "logging.level")

    def test_bad_snapshot_interval_is_refused_naming_key(self):
        self.assert_refused(
            "cluster:\n  raft:\n    snapshot_interval: soon\n",
            "cluster.raft.snapshot_interval")

    def test_bad_log_level_env_is_refused(self):
        hp, rp = h.free_port(), h.free_port()
        rc, out = h.run_chronos(
            ["serve", "--node-id", "bad", "--data-dir",
             os.path.join(self.work, "bad-data"), "--http-address", addr(hp),
             "--raft-address", addr(rp)],
            env={"CHRONOS_LOG_LEVEL": "shouty"}, cwd=self.work, timeout=30)
        self.assertIsNotNone(rc, "kept running:\n" + out[-3000:])
        self.assertNotEqual(rc, 0, out[-3000:])
        self.assertTrue("CHRONOS_LOG_LEVEL" in out or "logging.level" in out,
                        "error names neither CHRONOS_LOG_LEVEL nor "
                        "logging.level:\n" + out[-3000:])

    def test_missing_config_file_is_refused(self):
        hp, rp = h.free_port(), h.free_port()
        missing = os.path.join(self.work, "nope.yaml")
        rc, out = h.run_chronos(
            ["serve", "--node-id", "bad", "--data-dir",
             os.path.join(self.work, "bad-data"), "--http-address", addr(hp),
             "--raft-address", addr(rp), "--config", missing],
            cwd=self.work, timeout=30)
        self.assertIsNotNone(rc, "kept running:\n" + out[-3000:])
        self.assertNotEqual(rc, 0, out[-3000:])
        self.assertIn("nope.yaml", out)

    def test_broken_yaml_is_refused(self):
        hp, rp = h.free_port(), h.free_port()
        cfg = self.write_config("cluster: [unclosed\n")
        rc, out = h.run_chronos(
            ["serve", "--node-id", "bad", "--data-dir",
             os.path.join(self.work, "bad-data"), "--http-address", addr(hp),
             "--raft-address", addr(rp), "--config", cfg],
            cwd=self.work, timeout=30)
        self.assertIsNotNone(rc, "kept running:\n" + out[-3000:])
        self.assertNotEqual(rc, 0, out[-3000:])


if __name__ == "__main__":
    unittest.main()
