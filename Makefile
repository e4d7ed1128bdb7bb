# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

NODE_MODULES := node_modules/.package-lock.json

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps build test demo clean typecheck

deps: $(NODE_MODULES)
	sh scripts/bootstrap.sh

build: deps
	npx tsc -p tsconfig.json
	chmod +x scripts/airgap scripts/airgap-setup

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

test: build
	npx tap

demo: build
	bash scripts/demo.sh

clean:
	rm -rf dist .tap test/output demo
