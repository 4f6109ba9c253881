# The two set-up commands of the README:
#   make run   installs what is missing, builds, starts one node with defaults
#   make test  installs what is missing, builds, runs every test
# Other targets: build, build-asan, fuzz, clean, and
#   make bench  installs etcd and wrk too, builds, runs bench/run.py
#               (BENCH_QUICK=1 make bench: the ~2 minute version)

SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD_TYPE ?= RelWithDebInfo
WERROR ?= $(if $(CI),ON,ON)
# Seconds per fuzz target; `make fuzz` runs four targets one after another.
FUZZ_SECONDS ?= 15

BUILD_DIR := build
ASAN_DIR := build-asan
FUZZ_DIR := build-fuzz

.PHONY: all deps bench-deps build build-asan run test unit-test asan-test integration-test fuzz \
  bench clean

all: build

deps:
	@bash scripts/install-deps.sh

bench-deps:
	@bash scripts/install-deps.sh --bench

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCHRONOS_WERROR=$(WERROR)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

$(ASAN_DIR)/build.ninja:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHRONOS_WERROR=$(WERROR) \
	  -DCHRONOS_SANITIZE=ON -DCHRONOS_UNIT_ONLY=ON \
	  -DCHRONOS_RAFT_PREFIX=/opt/chronos-deps/raft-0.22.1-asan

build-asan: deps $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)

$(FUZZ_DIR)/build.ninja:
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCHRONOS_FUZZ=ON -DCHRONOS_WERROR=$(WERROR)

run: build
	./$(BUILD_DIR)/src/main/chronos serve

# Every test: unit + integration on the release build, the unit tests again
# under ASan+UBSan, and a short fuzz run of each parser.
test: build build-asan
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 600
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j 2 -L unit --timeout 600
	$(MAKE) fuzz

# The figures of docs/performance.md (not part of `make test`). bench-deps
# first: `build` then finds nothing missing. The lag rows' receiver
# (bench/receiver.cc) is EXCLUDE_FROM_ALL, so it is built here by name.
bench: bench-deps
	$(MAKE) build
	cmake --build $(BUILD_DIR) -j $(JOBS) --target chronos_bench_receiver
	CHRONOS_BENCH_RECEIVER=$(CURDIR)/$(BUILD_DIR)/bench/chronos_bench_receiver python3 bench/run.py

unit-test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 -L unit

integration-test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L integration

# Each target fuzzes $(FUZZ_SECONDS) s from a scratch corpus (gitignored) plus
# its committed seeds. job_json and batch run with -entropic=0: each of their
# inputs covers ~100k features and libFuzzer 14's entropic bookkeeping then
# takes over 90% of the time (20-500 exec/s instead of 2-6k).
fuzz: deps $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS)
	@mkdir -p fuzz/corpus-run/cron fuzz/corpus-run/duration fuzz/corpus-run/job_json \
	  fuzz/corpus-run/batch
	./$(FUZZ_DIR)/fuzz/cron_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=fuzz/corpus-run/ \
	  fuzz/corpus-run/cron fuzz/corpus/cron
	./$(FUZZ_DIR)/fuzz/duration_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=fuzz/corpus-run/ \
	  fuzz/corpus-run/duration fuzz/corpus/duration
	./$(FUZZ_DIR)/fuzz/job_json_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=fuzz/corpus-run/ -entropic=0 \
	  -dict=fuzz/job_json.dict fuzz/corpus-run/job_json fuzz/corpus/job_json
	./$(FUZZ_DIR)/fuzz/batch_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -artifact_prefix=fuzz/corpus-run/ -entropic=0 \
	  fuzz/corpus-run/batch fuzz/corpus/batch

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR) fuzz/corpus-run
