# zcnic: `make run` (the main job) and `make test` (everything CI checks) are the two commands
# that matter on a fresh machine; both install what is missing first.
.PHONY: all setup build test unit bench run images fuzz clean

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

bench: build
	@node dist/bench/run.js $(BENCH_ARGS)

images: build
	@node dist/images/cli.js $(IMAGE_ARGS)

run: build
	@node dist/cli/zcnic.js run $(RUN_ARGS)


clean:
	rm -rf dist packages/vfio-user-ts/dist packages/vfio-user-ts/build *.tsbuildinfo
