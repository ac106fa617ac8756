# imagebuilder — see README.md.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Fuzz targets run briefly by `make test` (package:target:executions). Budgets are counts, not
# durations: Go 1.26's coordinator can fail a duration-bounded run with a bare "context deadline
# exceeded" at the deadline (golang/go#75804, fixed in 1.27); a count has no deadline to race.
# Each count is about 10 s on the CI machine. FUZZTIME=30s (or 1000x) overrides them all.
FUZZTIME ?=
FUZZ_TARGETS := ./internal/params:FuzzLoad:150000x ./internal/dockerfile:FuzzInject:25000x ./internal/source:FuzzExtract:5000x ./internal/registry:FuzzRegistryHost:40000x ./internal/builder:FuzzParseEndpoint:40000x ./internal/ansible:FuzzParseArgs:100000x ./internal/family:FuzzLoadFamily:50000x ./internal/sweep:FuzzParseAge:100000x ./internal/regserve:FuzzParseUpstream:15000x ./internal/builder/buildah:FuzzOutputParser:40000x ./internal/seal:FuzzParseKey:150000x ./internal/service:FuzzParseDatabaseURL:20000x ./internal/service:FuzzCursor:40000x ./internal/api:FuzzDecodeSubmit:20000x

.PHONY: all build test unit fuzz schema generate lint testenv testenv-down demo clean dist dist-check ansible-gates

all: build

## build: the helper command into bin/imagebuilder, and beside it the buildah builder plugin
## bin/imagebuilder-builder-buildah (found there by --builder plugin:buildah) and the daemons'
## program bin/imagebuilder-server (imagebuilder serve and registry serve run it)
build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/imagebuilder ./cmd/imagebuilder
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/imagebuilder-server ./cmd/imagebuilder-server
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/imagebuilder-builder-buildah ./cmd/imagebuilder-builder-buildah

## test: every test against the real services (started by scripts/testenv.sh), Ansible's own gates
## on the collection (scripts/ansible-gates.sh: ansible-test sanity, ansible-lint, galaxy-importer),
## then brief fuzzing. Integration tests fail instead of skipping here (IMAGEBUILDER_REQUIRE_INTEGRATION=1).
test: lint testenv
	eval "$$(scripts/testenv.sh env)" && IMAGEBUILDER_REQUIRE_INTEGRATION=1 $(GO) test -count=1 -timeout 40m ./...
	scripts/ansible-gates.sh
	$(MAKE) fuzz
	$(MAKE) dist dist-check

## unit: the tests that need no services (integration tests skip)
unit:
	$(GO) test ./...

## fuzz: run each fuzz target for its budget (or FUZZTIME)
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  IFS=: read -r pkg name budget <<< "$$t"; budget=$(if $(FUZZTIME),$(FUZZTIME),$$budget); \
	  if [ -d "$$pkg" ]; then echo "fuzz $$name ($$budget)"; \
	    $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime "$$budget" "$$pkg"; fi; \
	done

## schema: regenerate schema/*.json (the JSON Schemas and the service's OpenAPI document), the README's params reference and the modules' generated
## documentation (collection/plugins/modules/*.py) from the Go types
schema:
	$(GO) generate ./...

## generate: regenerate the builder plugin contract's Go code (internal/builder/plugin/pluginpb)
## from its .proto: Debian's protobuf-compiler, protoc-gen-go and protoc-gen-go-grpc from the Go proxy
generate:
	GO=$(GO) scripts/generate-proto.sh

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## testenv: install (first time) and start buildkitd, dockerd, registries, binfmt and base images
testenv:
	scripts/testenv.sh up

## demo: the main job on the embedded default (examples/demo): two variants, two platforms, pushed
demo:
	scripts/demo.sh

testenv-down:
	scripts/testenv.sh down

## dist: release archives in dist/: imagebuilder for linux/amd64 and linux/arm64
## (imagebuilder_VERSION_linux_ARCH.tar.gz), the collection, the CSAR, and SHA256SUMS
dist:
	VERSION=$(VERSION) GO=$(GO) MAKE="$(MAKE)" scripts/dist.sh dist

## dist-check: checks make dist's output (archives, checksums, versions, architectures)
dist-check:
	VERSION=$(VERSION) scripts/check-dist.sh dist

clean:
	rm -rf bin dist playbooks/library tosca/library

## --- Ansible modules and collection -------------------------------------------------------
# Every directory under modules/ is one module: a main package plus docs.yml, the prose of its
# documentation (the options come from the schema).
MODULES := $(notdir $(patsubst %/,%,$(wildcard modules/*/)))

.PHONY: modules collection

# The JSON Schemas each module's options come from (gendoc's -schema and -options), as in the
# module's go:generate line.
DOC_SCHEMAS_image_build := -schema schema/build-params.schema.json -options modules/image_build/options.schema.json
DOC_SCHEMAS_image_family := -schema schema/family.schema.json -options modules/image_family/options.schema.json
DOC_SCHEMAS_image_promote := -schema modules/image_promote/options.schema.json
DOC_SCHEMAS_image_manifest := -schema modules/image_manifest/options.schema.json

## modules: every Ansible module into playbooks/library/ (static, stripped) with its sidecar docs
## (generated from the schema and the module's docs.yml)
modules:
	@mkdir -p playbooks/library
	@set -e; $(foreach m,$(MODULES), \
	  $(if $(DOC_SCHEMAS_$(m)),,echo "Makefile: set DOC_SCHEMAS_$(m)" >&2; exit 1;) \
	  CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o playbooks/library/$(m) ./modules/$(m); \
	  $(GO) run ./internal/ansible/gendoc -name $(m) $(DOC_SCHEMAS_$(m)) -prose modules/$(m)/docs.yml -sidecar playbooks/library/$(m).yml; \
	  echo "playbooks/library/$(m): $$(stat -c %s playbooks/library/$(m)) bytes";)

## ansible-gates: ansible-test sanity, ansible-lint and galaxy-importer on the built collection
ansible-gates:
	scripts/ansible-gates.sh

## collection: the imagebuilder.images collection (linux/amd64 + linux/arm64) as dist/imagebuilder-images-VERSION.tar.gz
collection:
	scripts/build-collection.sh dist

## --- TOSCA / xOpera ---------------------------------------------------------------------------
.PHONY: csar

## csar: the TOSCA CSAR dist/imagebuilder.csar (staged in dist/csar/): service template, types,
## playbooks, examples, the module binaries and the buildah builder plugin. The binaries are also copied into tosca/library/,
## so tosca/service.yaml deploys from the checkout.
csar: modules
	rm -rf tosca/library && mkdir -p tosca/library && cp playbooks/library/* tosca/library/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o tosca/library/imagebuilder-builder-buildah ./cmd/imagebuilder-builder-buildah
	tosca/build-csar.sh tosca tosca/library dist/csar dist/imagebuilder.csar
