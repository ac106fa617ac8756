#!/usr/bin/env bash
# Builds the imagebuilder.images Ansible collection: stages collection/ (galaxy.yml, README,
# CHANGELOG, the action plugins and the generated documentation modules plugins/modules/NAME.py)
# with the repository's LICENSE and every module of modules/ compiled for linux/amd64 and
# linux/arm64 into binaries/linux_{amd64,arm64}/NAME (static, stripped), their SHA-256 in
# binaries/SHA256SUMS, with the buildah builder plugin (imagebuilder-builder-buildah) beside them,
# then runs `ansible-galaxy collection build`. The binaries live in binaries/, not in
# plugins/modules/, so they are not public module names: the action plugin NAME picks one.
# Usage: scripts/build-collection.sh [--stage-only] [OUTDIR] (default dist). Prints the tarball's
# path on stdout; the staged tree stays in OUTDIR/collection/ansible_collections/imagebuilder/images.
# With --stage-only it stops before the tarball (what runs from a collections path needs no
# tarball; compressing 100 MB of binaries is most of the time) and prints the staged tree's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
stage_only=
if [[ ${1:-} == --stage-only ]]; then stage_only=1; shift; fi
out=${1:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
GO=${GO:-go}
galaxy=${ANSIBLE_GALAXY:-$(command -v ansible-galaxy || true)}
if [[ -z $galaxy && -n ${IMAGEBUILDER_TEST_ANSIBLE_BIN:-} ]]; then galaxy=$IMAGEBUILDER_TEST_ANSIBLE_BIN/ansible-galaxy; fi
if [[ -z $galaxy ]]; then galaxy=$HOME/.cache/imagebuilder/venv-ansible/bin/ansible-galaxy; fi
[[ -x $galaxy ]] || { echo "ansible-galaxy not found: set ANSIBLE_GALAXY (scripts/testenv.sh up installs one)" >&2; exit 1; }

stage=$out/collection/ansible_collections/imagebuilder/images
rm -rf "$out/collection"
mkdir -p "$stage"
cp -r "$root/collection/." "$stage/"
cp "$root/LICENSE" "$stage/LICENSE"

cd "$root"
for dir in modules/*/; do
  m=$(basename "$dir")
  [[ -f $stage/plugins/modules/$m.py && -f $stage/plugins/action/$m.py ]] ||
    { echo "modules/$m: collection/plugins/modules/$m.py (make schema) and plugins/action/$m.py are needed" >&2; exit 1; }
  for arch in amd64 arm64; do
    dest=$stage/binaries/linux_$arch
    mkdir -p "$dest"
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "-s -w" -o "$dest/$m" "./modules/$m"
    echo "$dest/$m: $(stat -c %s "$dest/$m") bytes" >&2
  done
done
# The buildah builder plugin beside the module binaries (builder endpoint plugin:buildah).
for arch in amd64 arm64; do
  dest=$stage/binaries/linux_$arch/imagebuilder-builder-buildah
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "-s -w" -o "$dest" ./cmd/imagebuilder-builder-buildah
  echo "$dest: $(stat -c %s "$dest") bytes" >&2
done
(cd "$stage/binaries" && sha256sum -- */* >SHA256SUMS)
if [[ -n $stage_only ]]; then echo "$stage"; exit 0; fi

"$galaxy" collection build --force --output-path "$out" "$stage" >&2
version=$(sed -n 's/^version: *//p' "$root/collection/galaxy.yml")
echo "$out/imagebuilder-images-$version.tar.gz"
