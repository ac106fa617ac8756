#!/usr/bin/env bash
# Assemble the imagebuilder CSAR (TOSCA Cloud Service Archive, TOSCA-Meta-File-Version 1.1):
# the service templates (service.yaml, the entry, family.yaml, release.yaml and serve.yaml), their definitions, the
# playbooks, the example inputs and the Ansible module binaries, staged in STAGE and zipped into OUT.
#
# Usage: tosca/build-csar.sh SRC LIBRARY STAGE OUT
#   SRC      the tosca/ directory (service.yaml, family.yaml, release.yaml, serve.yaml, TOSCA-Metadata/, definitions/, playbooks/, examples/)
#   LIBRARY  directory holding the module binaries (make modules builds them into playbooks/library)
#   STAGE    staging directory, emptied first; it is the CSAR root (opera can deploy it unzipped too)
#   OUT      the CSAR file to write
set -euo pipefail

[[ $# -eq 4 ]] || { echo "usage: $0 SRC LIBRARY STAGE OUT" >&2; exit 2; }
src=$1 library=$2 stage=$3 out=$4

# What goes into the CSAR, relative to SRC (Go tests, this script and build output stay out).
contents=(TOSCA-Metadata service.yaml family.yaml release.yaml serve.yaml definitions playbooks examples)

for c in "${contents[@]}"; do
	[[ -e $src/$c ]] || { echo "$0: $src/$c is missing" >&2; exit 1; }
done
shopt -s nullglob
modules=()
for f in "$library"/*; do
	[[ -f $f && -x $f ]] && modules+=("$f")
done
((${#modules[@]} > 0)) || { echo "$0: no module binaries in $library (run make modules)" >&2; exit 1; }

rm -rf "$stage"
mkdir -p "$stage/library" "$(dirname "$out")"
for c in "${contents[@]}"; do
	cp -R "$src/$c" "$stage/"
done
# The binaries, and their sidecar documentation when present.
cp "${modules[@]}" "$stage/library/"
for f in "${modules[@]}"; do
	[[ -f $f.yml ]] && cp "$f.yml" "$stage/library/"
done

out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$out_abs"
if command -v zip >/dev/null; then
	(cd "$stage" && zip -qrX "$out_abs" .)
else
	(cd "$stage" && python3 -m zipfile -c "$out_abs" ./*)
fi
echo "$out: $(stat -c %s "$out_abs") bytes"
