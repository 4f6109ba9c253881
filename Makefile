# The two set-up commands of the README:
#   make run   installs what is missing, builds, starts one node with defaults
#   make test  installs what is missing, builds, runs every test
# Other targets: build, build-asan, fuzz, clean.

SHELL := /bin/bash
JOBS ?= $(shell nproc)
BUILD_TYPE ?= RelWithDebInfo
WERROR ?= $(if $(CI),ON,ON)
FUZZ_SECONDS ?= 30

BUILD_DIR := build
ASAN_DIR := build-asan
FUZZ_DIR := build-fuzz

.PHONY: all deps build build-asan run test unit-test asan-test integration-test fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCHRONOS_WERROR=$(WERROR)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

$(ASAN_DIR)/build.ninja:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCHRONOS_WERROR=$(WERROR) \
	  -DCHRONOS_SANITIZE=ON -DCHRONOS_UNIT_ONLY=ON

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

unit-test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 -L unit

integration-test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L integration

fuzz: deps $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS)
	@mkdir -p fuzz/corpus-run/cron
	./$(FUZZ_DIR)/fuzz/cron_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	  fuzz/corpus-run/cron fuzz/corpus/cron

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(FUZZ_DIR) fuzz/corpus-run
