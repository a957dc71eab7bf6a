# zcnic: `make run` (the main job) and `make test` (everything CI checks) are the two commands
# that matter on a fresh machine; both install what is missing first.
.PHONY: all setup build test unit bench run images clean

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

bench: build
	@node dist/bench/run.js $(BENCH_ARGS)

images: build
	@node dist/images/cli.js $(IMAGE_ARGS)

run: build
	@node dist/cli/zcnic.js run $(RUN_ARGS)

clean:
	rm -rf dist packages/vfio-user-ts/dist packages/vfio-user-ts/build *.tsbuildinfo
