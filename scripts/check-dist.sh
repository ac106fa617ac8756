#!/usr/bin/env bash
# Checks what `make dist` produced in DIST (default dist/): every archive is there, the checksums
# verify, both imagebuilder binaries report VERSION (the linux/arm64 one under qemu-user when the
# host is not arm64), the archives, the collection and the CSAR hold the buildah builder plugin, the
# collection holds every module's binaries and its manifest, the CSAR is a zip with its TOSCA
# metadata. Usage: VERSION=... scripts/check-dist.sh [DIST]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist=$(cd "${1:-$root/dist}" && pwd)
cd "$root"
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
fail() { echo "check-dist: $*" >&2; exit 1; }

[[ -f $dist/SHA256SUMS ]] || fail "no $dist/SHA256SUMS (run make dist)"
(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || fail "checksums do not verify"
listed() { awk '{print $2}' "$dist/SHA256SUMS"; }
collection_version=$(sed -n 's/^version: *//p' collection/galaxy.yml)
for want in "imagebuilder_${VERSION}_linux_amd64.tar.gz" "imagebuilder_${VERSION}_linux_arm64.tar.gz" \
	"imagebuilder-images-$collection_version.tar.gz" imagebuilder.csar; do
	listed | grep -qxF "$want" || fail "$want is not in SHA256SUMS"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
host=$(uname -m)
for arch in amd64 arm64; do
	mkdir "$tmp/$arch"
	tar -xzf "$dist/imagebuilder_${VERSION}_linux_$arch.tar.gz" -C "$tmp/$arch"
	bin=$tmp/$arch/imagebuilder
	[[ -x $bin && -f $tmp/$arch/README.md ]] || fail "linux/$arch archive lacks imagebuilder or README.md"
	[[ -x $tmp/$arch/imagebuilder-builder-buildah ]] || fail "linux/$arch archive lacks imagebuilder-builder-buildah"
	[[ -x $tmp/$arch/imagebuilder-server ]] || fail "linux/$arch archive lacks imagebuilder-server"
	case $arch in amd64) machine=x86_64 ;; arm64) machine=aarch64 ;; esac
	if [[ $host == "$machine" ]]; then
		got=$("$bin" --version)
	else
		# binfmt (qemu-user-static + binfmt-support) runs it directly; else qemu-user by name.
		got=$("$bin" --version 2>/dev/null || "qemu-$machine-static" "$bin" --version)
	fi
	[[ $got == "imagebuilder version $VERSION" ]] || fail "linux/$arch binary says \"$got\", want \"imagebuilder version $VERSION\""
	file_arch=$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' \n') # ELF e_machine, little endian
	case $arch:$file_arch in amd64:3e00 | arm64:b700) ;; *) fail "linux/$arch binary has ELF machine $file_arch" ;; esac
	echo "linux/$arch: $got" >&2
done

contents=$(tar -tzf "$dist/imagebuilder-images-$collection_version.tar.gz")
for f in MANIFEST.json LICENSE plugins/plugin_utils/binary_module.py binaries/SHA256SUMS; do
	grep -qxF "$f" <<<"$contents" || fail "the collection lacks $f"
done
for m in image_build image_family image_promote image_manifest; do
	for f in plugins/modules/$m.py plugins/action/$m.py binaries/linux_amd64/$m binaries/linux_arm64/$m; do
		grep -qxF "$f" <<<"$contents" || fail "the collection lacks $f"
	done
done
for f in binaries/linux_amd64/imagebuilder-builder-buildah binaries/linux_arm64/imagebuilder-builder-buildah; do
	grep -qxF "$f" <<<"$contents" || fail "the collection lacks $f"
done
[[ $(head -c 4 "$dist/imagebuilder.csar" | od -An -tx1 | tr -d ' \n') == 504b0304 ]] || fail "imagebuilder.csar is not a zip"
grep -aqF TOSCA-Metadata/TOSCA.meta "$dist/imagebuilder.csar" || fail "imagebuilder.csar lacks TOSCA-Metadata/TOSCA.meta"
grep -aqF library/imagebuilder-builder-buildah "$dist/imagebuilder.csar" || fail "imagebuilder.csar lacks library/imagebuilder-builder-buildah"
echo "check-dist: $dist is complete ($(listed | wc -l) archives, checksums verify, version $VERSION)" >&2
