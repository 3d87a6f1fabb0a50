# Hardening: fuzzing of the parsers that read what other processes send.
# Included from the top-level Makefile (`fuzz-short` is part of `make test`);
# it also works on its own: `make -f mk/hardening.mk fuzz-short`.
#
#   make fuzz-short   every target for FUZZ_SHORT_RUNS inputs from a fixed
#                     seed (part of `make test`)
#   make fuzz         every target for FUZZ_LONG_S seconds (default 600)
#   make fuzz-one FUZZ_TARGET=wire FUZZ_S=60
#
# The short run is reproducible: a fixed seed, a fixed number of inputs and a
# fresh corpus (the seeds only) each time, so `make test` gives the same
# verdict on every machine and a failure there reruns exactly. Exploration,
# where a new random seed each run may find something new, is `make fuzz`;
# what it finds is fixed, and the input goes into fuzz/seeds/<target>/ as a
# regression that every later run (short ones included) starts from.
#
# Targets (fuzz/fuzz_targets/): wire (framing, HMAC check, header parse),
# connection_file, comm_request (Service::claims + ServiceRequest::parse),
# redact (secrets redaction). Hand-written seeds are in fuzz/seeds/<target>;
# what libFuzzer finds goes to fuzz/corpus/<target> (git-ignored), a crash to
# fuzz/artifacts/<target>/ and fails the run. Logs: target/fuzz/logs/.
#
# cargo-fuzz wants a nightly compiler for its -Z flags; RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept them. No sanitizer: every target is safe
# Rust, where out-of-bounds access already panics, so ASan would only cost a
# second instrumented build and half the speed; debug assertions and overflow
# checks stay on (cargo-fuzz's default build).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

FUZZ_TARGETS      := wire connection_file comm_request redact
FUZZ_SHORT_RUNS   ?= 500000
# redact runs a dozen regexes over inputs of kilobytes: ~3k inputs/s here.
FUZZ_SHORT_RUNS_redact ?= 100000
FUZZ_SEED         ?= 1
FUZZ_LONG_S       ?= 600
CARGO_FUZZ_VERSION ?= 0.13.2
# Its own target dir: instrumented artifacts never mix with the release build.
FUZZ_TARGET_DIR   := $(CURDIR)/target/fuzz
FUZZ_LOGS         := $(FUZZ_TARGET_DIR)/logs
# cargo-fuzz is installed under target/, never into ~/.cargo/bin.
CARGO_FUZZ_ROOT   := $(CURDIR)/target/tools
FUZZ_CARGO        := RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ_ROOT)/bin/cargo-fuzz fuzz
FUZZ_BUILD_FLAGS  := --sanitizer none --target-dir $(FUZZ_TARGET_DIR)
# -timeout: one input running this long is a hang; -rss_limit_mb: a leak.
FUZZ_RUN_FLAGS    := -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1

.PHONY: cargo-fuzz fuzz-build fuzz-short fuzz fuzz-one fuzz-clean

# Installed once, into target/tools (the Makefile writes nothing to $HOME).
cargo-fuzz:
	@if [ -x $(CARGO_FUZZ_ROOT)/bin/cargo-fuzz ]; then \
	  echo "cargo-fuzz present: $$($(FUZZ_CARGO) --version)"; \
	else \
	  cargo install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) \
	    --root $(CARGO_FUZZ_ROOT); \
	fi

fuzz-build: cargo-fuzz
	$(FUZZ_CARGO) build $(FUZZ_BUILD_FLAGS)

# $(1): target, $(2): corpus dir it writes to, $(3): libFuzzer's budget
# flags. Prints libFuzzer's own count of inputs run.
define fuzz_run
	@mkdir -p $(2) $(FUZZ_LOGS)
	@echo "fuzz $(1): $(3)"
	@$(FUZZ_CARGO) run $(FUZZ_BUILD_FLAGS) $(1) \
	  $(2) $(CURDIR)/fuzz/seeds/$(1) \
	  -- $(FUZZ_RUN_FLAGS) $(3) > $(FUZZ_LOGS)/$(1).log 2>&1 \
	  || { tail -n 60 $(FUZZ_LOGS)/$(1).log; \
	       echo "fuzz $(1): FAILED; the input is in fuzz/artifacts/$(1)/"; exit 1; }
	@runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_LOGS)/$(1).log); \
	 secs=$$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' $(FUZZ_LOGS)/$(1).log); \
	 cov=$$(grep -o 'cov: [0-9]*' $(FUZZ_LOGS)/$(1).log | tail -n 1 || true); \
	 echo "fuzz $(1): $$runs inputs in $$secs s, $$cov, no crash" | tee $(FUZZ_LOGS)/$(1).summary
endef

# One rule per target and length; the summary lines come last.
fuzz-short-%: fuzz-build
	@rm -rf $(FUZZ_TARGET_DIR)/short-corpus/$*
	$(call fuzz_run,$*,$(FUZZ_TARGET_DIR)/short-corpus/$*,-seed=$(FUZZ_SEED) -runs=$(or $(FUZZ_SHORT_RUNS_$*),$(FUZZ_SHORT_RUNS)))

fuzz-long-%: fuzz-build
	$(call fuzz_run,$*,$(CURDIR)/fuzz/corpus/$*,-max_total_time=$(FUZZ_LONG_S))

fuzz-short: $(addprefix fuzz-short-,$(FUZZ_TARGETS))
	@cat $(addprefix $(FUZZ_LOGS)/,$(addsuffix .summary,$(FUZZ_TARGETS)))

fuzz: $(addprefix fuzz-long-,$(FUZZ_TARGETS))
	@cat $(addprefix $(FUZZ_LOGS)/,$(addsuffix .summary,$(FUZZ_TARGETS)))

FUZZ_TARGET ?= wire
FUZZ_S      ?= 60
fuzz-one: fuzz-build
	$(call fuzz_run,$(FUZZ_TARGET),$(CURDIR)/fuzz/corpus/$(FUZZ_TARGET),-max_total_time=$(FUZZ_S))

fuzz-clean:
	rm -rf $(FUZZ_TARGET_DIR) fuzz/corpus fuzz/artifacts
