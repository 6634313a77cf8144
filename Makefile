# Build, run, debug and test the hypervisor. `make help` lists the targets.
#
# Knobs: CPU (cortex-a57|max), SMP (pCPUs), RAM, HYP_ARGS (hypervisor options, e.g.
# "vcpus=2 log=debug"), GUEST_ARGS (guest kernel command line), GDB_PORT, CMD (run/run-hvm:
# a shell command the guest runs, then powers off; make exits with its status).

TARGET      := aarch64-unknown-none-softfloat
PROFILE     := release
BUILD       := build
ELF_OUT     := target/$(TARGET)/$(PROFILE)/hypervisor
HYP_ELF     := $(BUILD)/hypervisor.elf
HYP_BIN     := $(BUILD)/hypervisor.bin
GDB_PORT    ?= 1234
SYSROOT     := $(shell rustc --print sysroot 2>/dev/null)
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
OBJCOPY     := $(SYSROOT)/lib/rustlib/$(HOST_TRIPLE)/bin/llvm-objcopy
GUEST       := $(BUILD)/guest

HRT_ELF     := $(BUILD)/hrt.elf

# CMD is taken literally (a shell command: "$$?" must reach the guest unexpanded).
override CMD := $(value CMD)

export CPU SMP RAM HYP_ARGS GUEST_ARGS CMD

.PHONY: help all build bootstrap guest run run-hvm debug debug-hvm gdb trace test unit-test bench bench-quick fuzz fuzz-hrt soak clippy fmt clean

all: build

help:
	@echo "make build   - build $(HYP_BIN) (bootable arm64 Image) and $(HYP_ELF) (symbols)"
	@echo "make run     - boot the hypervisor and Debian's kernel in QEMU (Ctrl-A X quits);"
	@echo "               CMD=\"...\" runs that command in the guest, powers off, exits with its status"
	@echo "make run-hvm - a hybrid VM: Linux on the ROS vCPUs, the HRT ($(HRT_ELF)) on the others"
	@echo "               (default 3 + 1 on 4 pCPUs; HYP_ARGS=\"ros_vcpus=.. hrt_vcpus=.. hrt_mem=..\"; CMD too)"
	@echo "make debug   - like run, halted, with a gdb server on :$(GDB_PORT)"
	@echo "make debug-hvm - like run-hvm, halted, with a gdb server"
	@echo "make gdb     - gdb-multiarch on $(HYP_ELF), connected to :$(GDB_PORT)"
	@echo "make trace   - like run, with QEMU -d int,guest_errors into $(BUILD)/qemu-trace.log"
	@echo "make test    - every test: host unit tests and QEMU integration tests"
	@echo "make bench   - boot time, disk throughput and the guest benchmark suite: plain QEMU vs"
	@echo "               under the hypervisor, medians, ratios, charts in $(BUILD)/bench/"
	@echo "make bench-quick - the micro-benchmarks and the guest suite (1vcpu, 4on4), one run each"
	@echo "make fuzz    - the guest fuzzer under the hypervisor: SEED=<n> ITER=<n> (SMP, VCPUS, CPU, HYP_ARGS)"
	@echo "make fuzz-hrt - the same fuzzer as a hybrid VM's HRT, Linux as the ROS: SEED=<n> ITER=<n> (ROS_VCPUS, HRT_VCPUS)"
	@echo "make soak    - SOAK_SECONDS (600) of load and the EL0 fuzzer on a hybrid VM (not in make test)"
	@echo "make clippy / fmt / clean"

bootstrap:
	@scripts/bootstrap.sh

build: bootstrap
	cargo build -p hypervisor --target $(TARGET) --$(PROFILE)
	@mkdir -p $(BUILD)
	cp $(ELF_OUT) $(HYP_ELF)
	$(OBJCOPY) -O binary $(HYP_ELF) $(HYP_BIN)
	@echo "built $(HYP_BIN) (Image) and $(HYP_ELF) (ELF with symbols)"
	@scripts/build-hrt.sh
	@scripts/build-hvm-ros-lib.sh

guest: bootstrap
	@scripts/fetch-guest.sh
	@scripts/build-guest-progs.sh
	@scripts/mkinitramfs.sh
	@scripts/mkdisk.sh

# The guest's disk is build/disk.img (scripts/mkdisk.sh); it keeps what the guest writes.
run: build guest
	DISK=$(BUILD)/disk.img scripts/run.sh

# The hybrid VM (issue "partitions"): hvm=on with the HRT image as a guest-loader module.
run-hvm: build guest
	DISK=$(BUILD)/disk.img HRT=$(HRT_ELF) HYP_ARGS="hvm=on $(HYP_ARGS)" scripts/run.sh

# NO_BUILD=1 skips the build (the gdb test runs this while cargo holds the build lock).
debug: $(if $(NO_BUILD),,build guest)
	@echo "QEMU halted; gdb server on :$(GDB_PORT) - run 'make gdb' in another terminal"
	scripts/qemu.sh -S -gdb tcp::$(GDB_PORT)

# The same with a hybrid VM (see run-hvm).
debug-hvm: $(if $(NO_BUILD),,build guest)
	@echo "QEMU halted; gdb server on :$(GDB_PORT) - run 'make gdb' in another terminal"
	HRT=$(HRT_ELF) HYP_ARGS="hvm=on $(HYP_ARGS)" scripts/qemu.sh -S -gdb tcp::$(GDB_PORT)

gdb:
	gdb-multiarch -q -x scripts/gdb/hyp.py $(HYP_ELF) -ex "target remote :$(GDB_PORT)"

TRACE_LOG ?= $(BUILD)/qemu-trace.log
trace: $(if $(NO_BUILD),,build guest)
	@mkdir -p $(dir $(TRACE_LOG))
	scripts/qemu.sh -d int,guest_errors -D $(TRACE_LOG)
	@echo "trace written to $(TRACE_LOG); summary: scripts/trace-summary.py $(TRACE_LOG)"

unit-test: bootstrap
	cargo test --workspace --exclude integration-tests
	cargo test -p hvm-ros-lib --features std

test: build guest
	cargo test --workspace --exclude integration-tests
	cargo test -p hvm-ros-lib --features std
	python3 scripts/test_scripts.py
	cargo test -p integration-tests -- --test-threads=2

# scripts/guest-bench.sh knobs: CONFIGS ("1vcpu 4on4 2on2 4on2"), RUNS (3), TIMEOUT, BENCHSET.
# scripts/idle-cost.py: hypervisor time of idle vCPUs (4 vCPUs idling 10 s).
# scripts/hvm-bench.sh: the hybrid VM's HRT boot and null hypercalls (EL0, EL1) next to a
# Linux process start and getppid.
# scripts/microbench.sh: exit costs measured from inside a bare-metal guest (null HVC, MMIO,
# vGIC, SGI, IPI, timer latency), plain QEMU next to the hypervisor.
bench: build guest
	scripts/boot-time.sh
	scripts/disk-bench.sh
	scripts/microbench.sh
	scripts/idle-cost.py
	scripts/guest-bench.sh
	scripts/hvm-bench.sh
	/usr/bin/python3 scripts/bench-plot.py

bench-quick: build guest
	RUNS=1 scripts/microbench.sh
	CONFIGS="1vcpu 4on4" RUNS=1 scripts/guest-bench.sh
	RUNS=1 scripts/hvm-bench.sh
	/usr/bin/python3 scripts/bench-plot.py

# The hybrid-VM soak (issue 13): SOAK_SECONDS of load and the EL0 fuzzer; not in make test.
soak: build guest
	SOAK_SECONDS=$(or $(SOAK_SECONDS),600) scripts/soak.sh

# The guest fuzzer (guest/fuzz): scripts/fuzz.sh prints how to reproduce and debug a failure.
fuzz: build
	SEED=$(or $(SEED),1) ITER=$(or $(ITER),20000) scripts/fuzz.sh

# The same fuzzer as the HRT of a hybrid VM, with Linux as the ROS (scripts/fuzz.sh MODE=hrt).
fuzz-hrt: build guest
	MODE=hrt SEED=$(or $(SEED),1) ITER=$(or $(ITER),20000) scripts/fuzz.sh

clippy: bootstrap
	cargo clippy -p hypervisor --target $(TARGET) -- -D warnings
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p hvm-ros-lib --features std --all-targets -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(BUILD)
