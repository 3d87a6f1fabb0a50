# jupyter-lineage JupyterLab extension: build, unit tests, UI tests, UI bench.
# Included from the top-level Makefile, which defines VENV, BIN and the
# `build` (cargo) and `venv` targets; paths here are expanded late, so the
# include may sit anywhere in the Makefile.
#
#   make labextension   npm ci + tsc + prebuilt extension into
#                       labextension/jupyter_lineage_labextension, linked into
#                       .venv/share/jupyter/labextensions/jupyter-lineage
#   make labext-unit    unit tests of the model and formatters (node --test)
#   make labext-lint    eslint (@jupyter/eslint-plugin), prettier and
#                       stylelint over the extension and the UI tests' TS
#   make ui-test        galata + @playwright/test in Debian's chromium with the
#                       real lineage kernel (screenshots in ui-tests/artifacts)
#   make ui-bench       panel open time with 10,000 runs, added start time
#
# Node 20 and npm come from the machine; chromium from apt (no browser
# downloads: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 everywhere).

LABEXT_DIR      := labextension
LABEXT_OUT      := $(LABEXT_DIR)/jupyter_lineage_labextension
LABEXT_INSTALL  = $(VENV)/share/jupyter/labextensions/jupyter-lineage
LABEXT_STAMP    := $(LABEXT_DIR)/node_modules/.install.stamp
UITEST_DIR      := ui-tests
UITEST_STAMP    := $(UITEST_DIR)/node_modules/.install.stamp
LAB_OVERRIDES   = $(VENV)/share/jupyter/lab/settings/overrides.json
CHROMIUM        ?= /usr/bin/chromium

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: labextension labext-deps labext-unit labext-lint ui-deps ui-env ui-test ui-bench chromium labext-clean

$(LABEXT_STAMP): $(LABEXT_DIR)/package.json $(LABEXT_DIR)/package-lock.json
	cd $(LABEXT_DIR) && npm ci --no-audit --no-fund
	touch $@

labext-deps: $(LABEXT_STAMP)

# jupyter-builder (from jupyterlab in the venv) runs the rspack build.
labextension: $(LABEXT_STAMP) venv
	cd $(LABEXT_DIR) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH npm run build
	@mkdir -p $(dir $(LABEXT_INSTALL))
	@if [ ! -L $(LABEXT_INSTALL) ]; then rm -rf $(LABEXT_INSTALL); fi
	ln -sfn $(CURDIR)/$(LABEXT_OUT) $(LABEXT_INSTALL)
	$(VENV)/bin/jupyter labextension list 2>&1 | grep -F jupyter-lineage

labext-unit: $(LABEXT_STAMP)
	cd $(LABEXT_DIR) && npm test

# The UI tests use the extension's linters and configs (one set of rules).
labext-lint: $(LABEXT_STAMP)
	cd $(LABEXT_DIR) && npm run lint:check
	cd $(UITEST_DIR) && ../$(LABEXT_DIR)/node_modules/.bin/eslint --max-warnings 0 .
	cd $(UITEST_DIR) && ../$(LABEXT_DIR)/node_modules/.bin/prettier \
	  --config ../$(LABEXT_DIR)/.prettierrc.json --check 'tests/**/*.ts' 'bench/**/*.ts'

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi
	@$(CHROMIUM) --version 2>/dev/null || true

$(UITEST_STAMP): $(UITEST_DIR)/package.json $(UITEST_DIR)/package-lock.json
	cd $(UITEST_DIR) && npm ci --no-audit --no-fund
	touch $@

ui-deps: $(UITEST_STAMP) chromium

# The lineage kernelspec and JupyterLab's settings overrides (no news pop-up),
# all inside the venv.
ui-env: build labextension
	JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter $(BIN) install --wrap python3 --prefix $(VENV)
	@mkdir -p $(dir $(LAB_OVERRIDES))
	@echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
	  > $(LAB_OVERRIDES)

ui-test: ui-deps ui-env
	cd $(UITEST_DIR) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx playwright test
	cd $(UITEST_DIR) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx playwright test --config playwright.provisioner.config.js

ui-bench: ui-deps ui-env
	cd $(UITEST_DIR) && PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx playwright test --config playwright.bench.config.js

labext-clean:
	rm -rf $(LABEXT_DIR)/lib $(LABEXT_DIR)/build-test $(LABEXT_OUT) \
	  $(LABEXT_DIR)/tsconfig.tsbuildinfo $(UITEST_DIR)/artifacts $(UITEST_DIR)/test-results \
	  $(UITEST_DIR)/playwright-report
	rm -f $(LABEXT_INSTALL)
