# The long soak run (issue 7): a real ipykernel behind the proxy, three
# clients, random cells, interrupts, restarts and os._exits for minutes.
# `make test` runs a 60 s version (tests/test_soak.py); this one is not in
# CI's default run. Included by the Makefile.
#
#   make soak                       10 minutes
#   make soak SOAK_SECONDS=1800     longer; SOAK_SEED=N repeats a run
#
# The report (cells, restarts, exits, interrupts, proxy RSS after warm-up and
# at the end, per proxy process) is printed and kept in $(SOAK_REPORT).

SOAK_SECONDS ?= 600
SOAK_SEED    ?=
SOAK_REPORT  ?= target/soak-report.json

.PHONY: soak
soak: build venv
	@mkdir -p $(dir $(SOAK_REPORT))
	$(VENV)/bin/python tests/soak.py --seconds $(SOAK_SECONDS) \
	  $(if $(SOAK_SEED),--seed $(SOAK_SEED)) --json $(SOAK_REPORT)
