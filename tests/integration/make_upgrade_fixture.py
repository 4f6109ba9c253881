"""Writes the data directory test_upgrade.py starts from: what a build of
an earlier commit leaves behind. Run once per fixture with that build:

    CHRONOS_BIN=/path/to/old/chronos python3 make_upgrade_fixture.py OUT.tar.gz

One node (id n1) with three jobs: an every-second job whose webhook points
at a closed port (its runs fail, so it has executions), a disabled daily job
and a daily job with jitter; it runs ~3 s, then stops gracefully. The
archive holds the data directory as `data/`.
"""

import os
import sys
import tarfile
import time

import chronos_harness as h


def main():
    out = os.path.abspath(sys.argv[1])
    node = h.Node().start_ready()
    try:
        closed = "http://127.0.0.1:%d/hook" % h.free_port()
        for body in (
                {"name": "every-second", "schedule": "* * * * * *",
                 "webhook": {"url": closed},
                 "retry_policy": {"max_attempts": 1}},
                {"name": "paused-daily", "schedule": "0 3 * * *",
                 "enabled": False, "webhook": {"url": closed}},
                {"name": "jittered-daily", "schedule": "30 4 * * *",
                 "jitter": "10m", "timezone": "Europe/Berlin",
                 "webhook": {"url": closed}}):
            r = node.api("POST", "/api/v1/jobs", body)
            assert r.status == 201, r
        time.sleep(3)
    finally:
        node.stop()
    with tarfile.open(out, "w:gz") as tar:
        tar.add(node.data_dir, arcname="data")
    print("wrote", out)


if __name__ == "__main__":
    main()
