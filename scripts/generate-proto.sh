#!/usr/bin/env bash
# Regenerates the Go code of the builder plugin contract (internal/builder/plugin/pluginpb) from
# its .proto: protoc from Debian's protobuf-compiler, protoc-gen-go at the version go.mod pins
# for google.golang.org/protobuf and protoc-gen-go-grpc at PROTOC_GEN_GO_GRPC, both built from
# the Go module proxy. With an argument, writes the generated files into that directory instead
# of beside the .proto (the drift test compares them).
set -euo pipefail
PROTOC_GEN_GO_GRPC=v1.5.1
cd "$(dirname "$0")/.."
dir=internal/builder/plugin/pluginpb
out=${1:-$dir}
command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GO=${GO:-go}
GOBIN=$bin $GO install google.golang.org/protobuf/cmd/protoc-gen-go
GOBIN=$bin $GO install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
mkdir -p "$out"
PATH=$bin:$PATH protoc -I "$dir" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	"$dir/builder.proto"
