#!/usr/bin/env bash
# Builds the imagebuilder.images Ansible collection: stages collection/ with every module of
# modules/ compiled for linux/amd64 (plugins/modules/NAME) and linux/arm64
# (plugins/modules/linux_arm64/NAME), each with its sidecar documentation, then runs
# `ansible-galaxy collection build`. Usage: scripts/build-collection.sh [OUTDIR] (default dist).
# Prints the path of the collection tarball on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
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

cd "$root"
for dir in modules/*/; do
  m=$(basename "$dir")
  for arch in amd64 arm64; do
    if [[ $arch == amd64 ]]; then dest=$stage/plugins/modules; else dest=$stage/plugins/modules/linux_$arch; fi
    mkdir -p "$dest"
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch "$GO" build -trimpath -ldflags "-s -w" -o "$dest/$m" "./modules/$m"
    if [[ $arch == amd64 ]]; then
      cp "modules/$m/$m.yml" "$dest/$m.yml"
    else
      # The per-platform copy is found by ansible-doc -l too: say what it is.
      sed "s|^  short_description: .*|  short_description: $m for linux/$arch hosts (run by imagebuilder.images.$m, which picks the binary)|" \
        "modules/$m/$m.yml" > "$dest/$m.yml"
    fi
    echo "$dest/$m: $(stat -c %s "$dest/$m") bytes" >&2
  done
done

"$galaxy" collection build --force --output-path "$out" "$stage" >&2
version=$(sed -n 's/^version: *//p' "$root/collection/galaxy.yml")
echo "$out/imagebuilder-images-$version.tar.gz"
