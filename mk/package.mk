# Packaging: the wheel users `pip install`, and the tests that install it.
# Included from the Makefile; uses its VENV / PY / PIP.
#
#   make wheel       dist/jupyter_lineage-*.whl: binary + shim + kernelspec +
#                    prebuilt labextension (built first with `make labextension`)
#   make test-wheel  tests/test_wheel.py: the wheel in a fresh venv, no Node
#   make test-hub    tests/test_hub.py: a real JupyterHub with real Unix users
#                    (root only; reuses /opt/jupyter-lineage-hub-venv)

VENV ?= .venv
PY   ?= $(VENV)/bin/python
PIP  ?= $(VENV)/bin/pip

MATURIN        := $(VENV)/bin/maturin
MATURIN_STAMP  := $(VENV)/.maturin.stamp
WHEEL_DIR      := dist
WHEEL_DATA     := build/wheel-data
WHEEL_STAMP    := $(WHEEL_DIR)/.wheel.stamp
# Where `jupyter labextension build` writes (labextension/package.json
# "jupyterlab.outputDir").
LABEXT_OUT     ?= labextension/jupyter_lineage_labextension
# PyPI rejects wheels over 100 MB; we promise 15.
WHEEL_MAX_BYTES := 15000000

# Everything the wheel is made of; a change in any of these rebuilds it.
WHEEL_INPUTS := pyproject.toml Cargo.toml Cargo.lock kernel/Cargo.toml README.md \
                $(shell find kernel/src python kernelspec -type f \
                          -not -name '*.pyc' -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: wheel test-wheel test-hub

$(MATURIN_STAMP): | $(PY)
	$(PIP) install --quiet 'maturin>=1.9,<2'
	touch $@

# The labextension is built by its own target when a makefile defines one;
# without it the wheel is built from whatever $(LABEXT_OUT) holds (maybe
# nothing) and says so loudly.
wheel:
	@if grep -qsE '^labextension[[:space:]]*:' $(MAKEFILE_LIST); then \
	  $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) labextension; \
	else \
	  echo "warning: no 'labextension' make target yet; the wheel holds only what is in $(LABEXT_OUT)" >&2; \
	fi
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $(WHEEL_STAMP)

# Sub-make, so the labextension's files are listed after it was built.
$(WHEEL_STAMP): $(WHEEL_INPUTS) $(shell find $(LABEXT_OUT) -type f 2>/dev/null) | $(MATURIN_STAMP)
	rm -rf $(WHEEL_DATA)
	mkdir -p $(WHEEL_DATA)/data/share/jupyter/kernels $(WHEEL_DATA)/data/share/jupyter/labextensions
	@# Kernelspecs, with ipykernel's logos (the kernel they wrap).
	for spec in kernelspec/*/; do \
	  name=$$(basename "$$spec"); \
	  cp -r "$$spec" $(WHEEL_DATA)/data/share/jupyter/kernels/$$name; \
	  $(PY) -c 'import ipykernel, pathlib, shutil, sys; \
	    res = pathlib.Path(ipykernel.__file__).parent / "resources"; \
	    [shutil.copy(res / f, sys.argv[1]) for f in ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg") if (res / f).is_file()]' \
	    $(WHEEL_DATA)/data/share/jupyter/kernels/$$name; \
	done
	@if [ -f $(LABEXT_OUT)/package.json ]; then \
	  cp -r $(LABEXT_OUT) $(WHEEL_DATA)/data/share/jupyter/labextensions/jupyter-lineage; \
	  printf '%s\n' '{"packageManager": "python", "packageName": "jupyter-lineage",' \
	    ' "uninstallInstructions": "Use your Python package manager (pip, conda, etc.) to uninstall the package jupyter-lineage"}' \
	    > $(WHEEL_DATA)/data/share/jupyter/labextensions/jupyter-lineage/install.json; \
	  echo "labextension: $(LABEXT_OUT) -> share/jupyter/labextensions/jupyter-lineage"; \
	else \
	  echo "warning: $(LABEXT_OUT)/package.json is missing: the wheel has NO labextension" >&2; \
	fi
	rm -f $(WHEEL_DIR)/jupyter_lineage-*.whl
	$(MATURIN) build --release --quiet --out $(WHEEL_DIR)
	@whl=$$(ls $(WHEEL_DIR)/jupyter_lineage-*.whl); size=$$(stat -c %s "$$whl"); \
	echo "built $$whl: $$size bytes (limit $(WHEEL_MAX_BYTES))"; \
	if [ "$$size" -gt $(WHEEL_MAX_BYTES) ]; then echo "error: wheel larger than $(WHEEL_MAX_BYTES) bytes" >&2; exit 1; fi
	touch $@

test-wheel: wheel venv
	$(VENV)/bin/pytest tests/test_wheel.py -v

test-hub: wheel venv
	$(VENV)/bin/pytest tests/test_hub.py -v

# Kernel start through the wheel's kernelspec vs plain python3, and the
# wheel's size (not a test: prints a table).
.PHONY: bench-wheel
bench-wheel: wheel venv
	$(PY) bench/bench_wheel.py
