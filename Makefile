# zcnic: `make run` (the main job) and `make test` (everything CI checks) are the two commands
# that matter on a fresh machine; both install what is missing first.
.PHONY: all setup build test unit bench bench-tap run images fuzz selftests clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@npx tsc -b

# Every layer (unit, integration with DPDK and QEMU, guest suites) ends in one line
# "N passed, N failed, N skipped" that totals them all.
test: build
	@node dist/test/run-all.js

# Unit tests only (seconds; no QEMU, no DPDK).
unit: build
	@npx uvu dist/test '\.test\.js$$' -i integration

# A hostile vhost-user frontend against a zcnic device it starts itself: FUZZ_SECONDS (default
# 600), FUZZ_ARGS (e.g. --seed 7). Prints cases run, error kinds reached, crashes (must be 0).
fuzz: build
	@node dist/cli/zcnic.js fuzz --seconds $(or $(FUZZ_SECONDS),600) $(FUZZ_ARGS)

# The kernel's own network selftests, drivers/net and drivers/net/hw, on two zcnic NICs and on
# QEMU's virtio-net side by side (zcnic selftests --help): SELFTESTS_ARGS (e.g. --kernel
# debian:6.12, --tests ping.py,xdp.py, --results FILE.json).
selftests: build
	@node dist/cli/zcnic.js selftests --targets drivers/net,drivers/net/hw $(SELFTESTS_ARGS)

bench: build
	@node dist/bench/run.js $(BENCH_ARGS)

# Guest TCP throughput (iperf3) through zcnic's tap port against QEMU's own -netdev tap, in one
# run with the rounds alternating (bench/tap-throughput.ts; BENCH_ARGS e.g. --rounds 5).
bench-tap: build
	@node dist/bench/tap-throughput.js $(BENCH_ARGS)

images: build
	@node dist/images/cli.js $(IMAGE_ARGS)

run: build
	@node dist/cli/zcnic.js run $(RUN_ARGS)


clean:
	rm -rf dist packages/vfio-user-ts/dist packages/vfio-user-ts/build *.tsbuildinfo
