#!/usr/bin/env python3
"""Mutation check of the simulation (tests/sim/README.md "Mutants"): breaks
the scheduler in one way at a time, rebuilds sim_test and runs seeds until
one fails. A mutant no seed catches is a hole in the simulation's checks.

    python3 tests/sim/mutants.py [--build-dir build] [--seeds 400] [name ...]

Each mutant edits one source file in place, and the file is restored
whatever happens (also on Ctrl-C), then sim_test is rebuilt once more
unmutated. Not part of `make test`: every mutant is a rebuild (about a
minute) plus up to --seeds seeds.
"""

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# name: (file, text to replace, replacement, what it breaks); the text and
# replacement may be tuples of several edits of the same file.
MUTANTS = {
    "no-barrier": (
        "src/sched/driver.cc",
        "if (!lead.leader || !lead.caught_up) {",
        "if (!lead.leader) {",
        "a new leader schedules before its term's barrier is applied"),
    "no-redispatch": (
        "src/sched/driver.cc",
        "void Driver::redispatch_in_flight() {\n",
        "void Driver::redispatch_in_flight() {\n  return;\n",
        "a new leader does not re-dispatch what the old one left in flight"),
    "dispatch-before-commit": (
        "src/sched/driver.cc",
        "      pending->execution_ids.push_back(e.id);\n",
        "      pending->execution_ids.push_back(e.id);\n"
        "      fly(e, *job, std::max(now, e.scheduled_time + jitter_offset(*job)));\n",
        "scheduled runs are sent without waiting for their start to commit"),
    "skip-after-failover": (
        "src/model/concurrency.cc",
        "  if (delayed || active.any_delayed) {",
        "  if (false && (delayed || active.any_delayed)) {",
        "a run made late by a failover makes the next one be skipped"),
    "send-without-lease": (
        "src/sched/driver.cc",
        ("bool Driver::lease_valid() const { return ports_.clock->monotonic() < lease_until_; }",
         "TargetPort::Attempt{f.exec, f.job, attempt, lease_until_}"),
        ("bool Driver::lease_valid() const { return true; }",
         "TargetPort::Attempt{f.exec, f.job, attempt, absl::InfiniteDuration()}"),
        "a leader sends without holding the leadership lease (nor gives targets a send_by)"),
}


def build(build_dir):
    p = subprocess.run(["cmake", "--build", build_dir, "--target", "sim_test"], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit("building sim_test failed:\n" + p.stdout.decode("utf-8", "replace")[-3000:])


def run_seeds(build_dir, seeds, timeout_s):
    env = dict(os.environ, CHRONOS_SIM_SEEDS=str(seeds))
    t0 = time.monotonic()
    try:
        p = subprocess.run([os.path.join(build_dir, "tests", "sim", "sim_test")], cwd=ROOT,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, "timed out", time.monotonic() - t0
    out = p.stdout.decode("utf-8", "replace")
    first = ""
    for line in out.splitlines():
        if line.startswith("seed ") or "FAILED check" in line or "crashed in seed" in line:
            first += line.strip() + "\n"
            if first.count("\n") >= 2:
                break
    return p.returncode != 0, first.strip(), time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seeds", type=int, default=400)
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    args = ap.parse_args()
    names = args.names or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        sys.exit("unknown mutant(s): %s (known: %s)" % (", ".join(unknown), ", ".join(MUTANTS)))
    survived = []
    for name in names:
        rel, old, new, what = MUTANTS[name]
        path = os.path.join(ROOT, rel)
        with open(path) as f:
            original = f.read()
        olds = old if isinstance(old, tuple) else (old,)
        news = new if isinstance(new, tuple) else (new,)
        mutated = original
        for o, n in zip(olds, news):
            if original.count(o) != 1:
                sys.exit("mutant %s: %r is not found exactly once in %s" % (name, o, rel))
            mutated = mutated.replace(o, n)
        try:
            with open(path, "w") as f:
                f.write(mutated)
            build(args.build_dir)
            caught, first, took = run_seeds(args.build_dir, args.seeds, 3600)
        finally:
            with open(path, "w") as f:
                f.write(original)
        verdict = "caught" if caught else ("TIMED OUT" if caught is None else "SURVIVED")
        print("%-24s %-9s %6.0fs  %s" % (name, verdict, took, what))
        if first:
            print("    " + first.replace("\n", "\n    "))
        if not caught:
            survived.append(name)
    build(args.build_dir)
    if survived:
        sys.exit("mutants no seed caught: %s" % ", ".join(survived))


if __name__ == "__main__":
    main()
