#!/usr/bin/env bash
# Release archives into OUTDIR (default dist/):
#   imagebuilder_VERSION_linux_amd64.tar.gz, imagebuilder_VERSION_linux_arm64.tar.gz
#       the helper command (static, stripped, `imagebuilder --version` prints VERSION), beside it
#       the buildah builder plugin imagebuilder-builder-buildah, the daemons' program
#       imagebuilder-server (imagebuilder serve, registry serve), README.md and LICENSE when there is one
#   imagebuilder-images-X.Y.Z.tar.gz   the Ansible collection (scripts/build-collection.sh)
#   imagebuilder.csar                  the TOSCA CSAR (make csar)
#   SHA256SUMS                         sha256sum of the above (check: cd dist && sha256sum -c SHA256SUMS)
# Usage: VERSION=v1.2.3 scripts/dist.sh [OUTDIR]   (make dist passes the Makefile's VERSION)
# The archives are reproducible for a given commit: fixed owner, order and times (the commit time).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
GO=${GO:-go}
MAKE=${MAKE:-make}
cd "$root"
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

rm -f "$out"/imagebuilder_*_linux_*.tar.gz "$out/SHA256SUMS"
artifacts=()

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
docs=(README.md)
[[ -f LICENSE ]] && docs+=(LICENSE)
for arch in amd64 arm64; do
	dir=$stage/$arch
	mkdir -p "$dir"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
		-o "$dir/imagebuilder" ./cmd/imagebuilder
	for prog in imagebuilder-builder-buildah imagebuilder-server; do
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
			-o "$dir/$prog" ./cmd/$prog
	done
	cp "${docs[@]}" "$dir/"
	name=imagebuilder_${VERSION}_linux_$arch.tar.gz
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
		-C "$dir" -cf - imagebuilder imagebuilder-builder-buildah imagebuilder-server "${docs[@]}" | gzip -n -9 >"$out/$name"
	artifacts+=("$name")
	echo "$out/$name: $(stat -c %s "$out/$name") bytes" >&2
done

collection=$(scripts/build-collection.sh "$out")
artifacts+=("$(basename "$collection")")

"$MAKE" -s csar >&2
[[ $out/imagebuilder.csar -ef $root/dist/imagebuilder.csar ]] || cp "$root/dist/imagebuilder.csar" "$out/imagebuilder.csar"
artifacts+=(imagebuilder.csar)

(cd "$out" && sha256sum "${artifacts[@]}" >SHA256SUMS)
echo "$out/SHA256SUMS:" >&2
cat "$out/SHA256SUMS" >&2
