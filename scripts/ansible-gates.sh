#!/usr/bin/env bash
# Ansible's own gates on the imagebuilder.images collection, as Galaxy and a collection's CI run
# them: builds the collection (scripts/build-collection.sh), installs the tarball, and runs
#   1. ansible-doc -t module -l imagebuilder.images: lists image_build, image_family,
#      image_promote and image_manifest with their descriptions, and no per-platform binary as a
#      module;
#   2. ansible-test sanity on the installed collection (ignores in tests/sanity/ignore-*.txt);
#   3. ansible-lint on playbooks/ and on the collection (.ansible-lint), and on a playbook with a
#      misspelt option, which it must report (its args rule checks image_build's options);
#      likewise for image_family (a misspelt run option), whose tasks in playbooks/family.yml are
#      checked against its argument spec; and for image_promote (a misspelt sweep suboption) and
#      image_manifest;
#   4. galaxy-importer (the importer Galaxy runs), without its ansible-test step (2. is that)
#      and without containers; it must find the modules and their documentation.
# Every tool comes from the virtualenv scripts/testenv.sh makes (IMAGEBUILDER_TEST_GATES_BIN);
# after `scripts/testenv.sh up` nothing is downloaded. Called by `make test`.
# Usage: scripts/ansible-gates.sh [WORKDIR] (default: a temporary directory, removed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [[ -z ${IMAGEBUILDER_TEST_GATES_BIN:-} ]]; then eval "$(scripts/testenv.sh env)"; fi
gates=${IMAGEBUILDER_TEST_GATES_BIN:?run scripts/testenv.sh up first}
[[ -x $gates/ansible-test && -x $gates/ansible-lint ]] || { echo "ansible-gates: $gates lacks ansible-test or ansible-lint: run scripts/testenv.sh up" >&2; exit 1; }
export PATH=$gates:$PATH ANSIBLE_NOCOLOR=1 NO_COLOR=1 ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

if [[ -n ${1:-} ]]; then
  work=$(mkdir -p "$1" && cd "$1" && pwd)
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
step() { printf '\n=== ansible-gates: %s\n' "$*" >&2; }
fail() { echo "ansible-gates: FAILED: $*" >&2; exit 1; }

step "build and install the collection"
tarball=$(ANSIBLE_GALAXY=$gates/ansible-galaxy scripts/build-collection.sh "$work/build")
rm -rf "$work/installed"
"$gates/ansible-galaxy" collection install -p "$work/installed" "$tarball" >&2
coll=$work/installed/ansible_collections/imagebuilder/images
export ANSIBLE_COLLECTIONS_PATH=$work/installed

step "ansible-doc -t module -l imagebuilder.images"
list=$("$gates/ansible-doc" -t module -l imagebuilder.images 2>&1) || fail "ansible-doc -l: $list"
echo "$list"
grep -Eq '^imagebuilder\.images\.image_build +Build container images' <<<"$list" || fail "ansible-doc -l does not list image_build with its description"
grep -Eq '^imagebuilder\.images\.image_family +Build a family' <<<"$list" || fail "ansible-doc -l does not list image_family with its description"
grep -Eq '^imagebuilder\.images\.image_promote +Promote staged' <<<"$list" || fail "ansible-doc -l does not list image_promote with its description"
grep -Eq '^imagebuilder\.images\.image_manifest +Assemble a multi-platform' <<<"$list" || fail "ansible-doc -l does not list image_manifest with its description"
if grep -q 'linux_' <<<"$list"; then fail "ansible-doc -l lists a per-platform binary as a module"; fi

step "ansible-test sanity"
py=$("$gates/python3" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
(cd "$coll" && "$gates/ansible-test" sanity --python "$py" --color no) || fail "ansible-test sanity"

step "ansible-lint: playbooks/ and the collection"
"$gates/ansible-lint" --nocolor -c "$root/.ansible-lint" playbooks || fail "ansible-lint playbooks/"
(cd "$coll" && "$gates/ansible-lint" --nocolor -c "$root/.ansible-lint") || fail "ansible-lint on the collection"
# lint_reports MODULE PATTERN: ansible-lint reports modules/MODULE/testdata/lint-bad-args.yml's
# misspelt option (an args[module] line matching PATTERN), so it checks MODULE's argument spec.
lint_reports() {
  local bad
  bad=$(cd "$root/modules/$1/testdata" && "$gates/ansible-lint" --nocolor -c /dev/null lint-bad-args.yml 2>&1 || true)
  grep -q "args\[module\].*$2" <<<"$bad" || fail "ansible-lint did not check $1's options (no args[module] matching $2):
$bad"
  echo "ansible-lint reports a misspelt $1 option: $(grep -o 'args\[module\].*' <<<"$bad" | head -n1)"
}
lint_reports image_build platfroms
lint_reports image_family keep_goin
lint_reports image_promote 'older_than found in sweep'
lint_reports image_manifest attestation

step "galaxy-importer"
cat >"$work/galaxy-importer.cfg" <<EOF
[galaxy-importer]
RUN_ANSIBLE_TEST = False
RUN_ANSIBLE_LINT = True
LOG_LEVEL_MAIN = INFO
EOF
(cd "$work" && GALAXY_IMPORTER_CONFIG=$work/galaxy-importer.cfg "$gates/python3" -m galaxy_importer.main "$tarball") ||
  fail "galaxy-importer"
"$gates/python3" - "$work/importer_result.json" <<'PY' || fail "galaxy-importer's result"
import json, sys
result = json.load(open(sys.argv[1]))
modules = {c["name"]: c for c in result["contents"] if c["content_type"] == "module"}
docs = {c["content_name"]: c for c in result["docs_blob"]["contents"] if c["content_type"] == "module"}
problems = []
want = {"image_build", "image_family", "image_promote", "image_manifest"}
if set(modules) != want:
    problems.append("modules found: %s, want %s" % (sorted(modules), sorted(want)))
for name in sorted(want):
    if not (modules.get(name) or {}).get("description"):
        problems.append("%s has no description" % name)
    strings = (docs.get(name) or {}).get("doc_strings") or {}
    if not (strings.get("doc") or {}).get("options") or not strings.get("return"):
        problems.append("%s's documentation (options, return) not found" % name)
if problems:
    sys.exit("\n".join(problems))
print("galaxy-importer: " + ", ".join("module %s, %d options documented" % (n, len(docs[n]["doc_strings"]["doc"]["options"])) for n in sorted(want)))
PY

step "all gates passed"
