# Two commands do everything on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

NODE_MODULES := node_modules/.package-lock.json

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps build test lint demo clean typecheck package ova-smoke

deps: $(NODE_MODULES)
	sh scripts/bootstrap.sh

build: deps
	npx tsc -p tsconfig.json
	node scripts/bundle-portable.mjs
	chmod +x scripts/airgap scripts/airgap-setup

typecheck: deps
	npx tsc -p tsconfig.json --noEmit

lint: deps
	npx eslint .

test: build lint
	npx tap

demo: build
	bash scripts/demo.sh

# The appliance release for the OVA: compiled app, web/, scripts, packer provisioning
# files, production dependencies only, and this machine's Node.js (runtime/bin/node): the
# native modules are built for it, and Ubuntu/Debian archives carry an older Node.js.
package: build
	rm -rf dist/release && mkdir -p dist/release
	mkdir -p dist/release/dist dist/release/packer
	cp -r dist/src dist/portable dist/release/dist/
	cp -r web scripts package.json package-lock.json dist/release/
	cp -r packer/scripts packer/files dist/release/packer/
	cd dist/release && npm ci --omit=dev --no-audit --no-fund
	@node=$$(node -p process.execPath); if ldd "$$node" | grep -q libnode; then \
	  echo "package: $$node needs libnode.so (a distribution build); use a self-contained Node.js (nodejs.org or NodeSource)" >&2; exit 1; fi; \
	mkdir -p dist/release/runtime/bin && cp "$$node" dist/release/runtime/bin/node
	tar -C dist/release -czf dist/airgap-release.tar.gz .
	@echo "wrote dist/airgap-release.tar.gz"

# The OVA, built from Debian's packages and booted under QEMU (not part of `make test`).
ova-smoke: package
	sh scripts/ova-smoke.sh

clean:
	rm -rf dist .tap test/output demo build
