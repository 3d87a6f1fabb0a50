# jupyter-lineage — build, test, benchmark and demo.
#
#   make demo   build, install the kernelspec and the CLI into .venv, open
#               JupyterLab on a copy of examples/demo.ipynb
#   make demo-install   the same without starting JupyterLab
#   make test   everything CI runs: deps, venv, lint, unit, e2e
#
# Nothing here writes to $HOME: the venv, the kernelspec and JupyterLab's
# settings all live under .venv (JUPYTER_PATH / --prefix .venv).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

# Debian's python, not pyenv's: the venv must be readable by other Unix users
# (JupyterHub tests run kernels as real users).
PYTHON_SYS ?= /usr/bin/python3
VENV       := .venv
PY         := $(VENV)/bin/python
PIP        := $(VENV)/bin/pip
STAMP      := $(VENV)/.requirements.stamp
BIN        := target/release/jupyter-lineage

DEMO_HOST  ?= 127.0.0.1
DEMO_PORT  ?= 8888
# The demo runs a copy: the tracked examples/demo.ipynb stays as it is.
DEMO_DIR   := $(VENV)/share/jupyter-lineage-demo

# Keep jupyter's own config/data/runtime for the demo inside the venv.
JUPYTER_ENV := PATH=$(abspath $(VENV))/bin:$$PATH \
               JUPYTER_PATH=$(abspath $(VENV))/share/jupyter \
               JUPYTER_CONFIG_DIR=$(abspath $(VENV))/etc/jupyter \
               JUPYTER_DATA_DIR=$(abspath $(VENV))/share/jupyter \
               JUPYTER_RUNTIME_DIR=$(abspath $(VENV))/share/jupyter/runtime \
               JUPYTERLAB_SETTINGS_DIR=$(abspath $(VENV))/share/jupyter/lab/user-settings \
               JUPYTERLAB_WORKSPACES_DIR=$(abspath $(VENV))/share/jupyter/lab/workspaces

.PHONY: deps venv build lint unit e2e test bench demo demo-install clean

# The extension, packaging and hardening targets live in mk/.
-include mk/*.mk

# Debian packages the build needs; apt only runs when one is missing.
APT_PACKAGES := python3-venv chromium
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else \
	  echo "apt prerequisites present: $(APT_PACKAGES)"; \
	fi

$(PY):
	$(PYTHON_SYS) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): tests/requirements.txt | $(PY)
	$(PIP) install --quiet -r tests/requirements.txt
	touch $@

venv: $(STAMP)

build:
	cargo build --release

lint: labext-lint
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings

unit:
	cargo test --release

e2e: build venv wheel
	$(VENV)/bin/pytest tests -v

test: deps venv lint unit e2e labext-unit ui-test fuzz-short

bench: build venv wheel
	$(PY) bench/bench_proxy.py
	$(PY) bench/bench_store.py
	$(PY) bench/bench_wheel.py

# The kernelspec, the CLI (the binary in .venv/bin, so `jupyter lineage …`
# works wherever .venv/bin is on PATH) and the copy of the demo notebook.
# The long JUPYTER_* lines are not echoed.
demo-install: build venv
	@install -m 0755 $(BIN) $(VENV)/bin/jupyter-lineage
	@echo "installing the python3-lineage kernelspec into $(VENV)"
	@$(JUPYTER_ENV) $(VENV)/bin/jupyter-lineage install --wrap python3 --prefix $(VENV)
	@mkdir -p $(DEMO_DIR) $(VENV)/share/jupyter/lab/settings
	@if [ ! -f $(DEMO_DIR)/demo.ipynb ] || [ examples/demo.ipynb -nt $(DEMO_DIR)/demo.ipynb ]; then \
	  cp examples/demo.ipynb $(DEMO_DIR)/demo.ipynb; fi
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
	  > $(VENV)/share/jupyter/lab/settings/overrides.json
	@echo
	@echo "The CLI is $(VENV)/bin/jupyter-lineage. To use \`jupyter lineage log\` in a shell:"
	@echo
	@echo "    export PATH=\"$(abspath $(VENV))/bin:\$$PATH\""
	@echo

demo: demo-install labextension
	@echo "JupyterLab will print its URL (with token) below; it opens demo.ipynb"
	@echo "(a copy in $(DEMO_DIR)) on the kernel 'Python 3 (ipykernel) · lineage'."
	@echo
	@$(JUPYTER_ENV) $(VENV)/bin/jupyter lab --no-browser \
	  --ServerApp.ip=$(DEMO_HOST) --ServerApp.port=$(DEMO_PORT) \
	  $$( [ "$$(id -u)" = 0 ] && echo --ServerApp.allow_root=True ) \
	  --ServerApp.root_dir=$(abspath $(DEMO_DIR)) \
	  --LabApp.default_url=/lab/tree/demo.ipynb

clean: labext-clean
	cargo clean
	rm -rf $(VENV)
