#!/usr/bin/env bash
# Benchmark of the image_build module: the wall time of an image_build task in check mode (a git
# source, two variants; everything checked, nothing built) against a `command: true` task, both
# in one play on localhost (playbooks/tests/bench.yml), as ansible-core's junit callback records
# them. Prints the median of each over RUNS runs (default 7, at least 5; one more warm-up run is
# not counted), their ratio, and the size of the module binary.
# Usage: scripts/bench-ansible.sh [RUNS]. Needs the test environment (scripts/testenv.sh up).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-7}
if (( runs < 5 )); then echo "RUNS must be at least 5" >&2; exit 2; fi

eval "$(scripts/testenv.sh env)"
bin=${IMAGEBUILDER_TEST_ANSIBLE_BIN:?run scripts/testenv.sh up first}
make -s modules >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/repo"
cp -r examples/demo/app/. "$work/repo/"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=bench -c user.email=bench@example.invalid commit -q -m bench

for i in $(seq 0 "$runs"); do
  ANSIBLE_CONFIG=playbooks/ansible.cfg ANSIBLE_CALLBACKS_ENABLED=junit JUNIT_OUTPUT_DIR="$work/junit/$i" \
    JUNIT_TASK_CLASS=true ANSIBLE_NOCOLOR=1 \
    "$bin/ansible-playbook" playbooks/tests/bench.yml \
      -e repo_url="file://$work/repo" -e registry="$IMAGEBUILDER_TEST_REGISTRY" \
      -e builder_endpoint="$IMAGEBUILDER_TEST_BUILDKIT" >"$work/run-$i.log" 2>&1 \
    || { cat "$work/run-$i.log" >&2; exit 1; }
done

"$bin/python3" - "$work/junit" "$runs" "$root/playbooks/library/image_build" <<'PY'
import glob, os, re, statistics, sys
import xml.etree.ElementTree as ET

junit_dir, runs, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
times = {"command true": [], "image_build check mode": []}
for i in range(1, runs + 1):  # run 0 is the warm-up
    for f in glob.glob(os.path.join(junit_dir, str(i), "*.xml")):
        for case in ET.parse(f).getroot().iter("testcase"):
            # "[host] PLAY: TASK ARGS..."
            m = re.match(r"\[localhost\] [^:]*: (command true|image_build check mode)( |$)", case.get("name", ""))
            if m:
                times[m.group(1)].append(float(case.get("time")))
for name, ts in times.items():
    if len(ts) != runs:
        sys.exit("expected %d timings of %r, got %d" % (runs, name, len(ts)))
cmd, mod = statistics.median(times["command true"]), statistics.median(times["image_build check mode"])
print("runs:                         %d (plus one warm-up)" % runs)
print("command: true        median   %.3f s   (%s)" % (cmd, " ".join("%.3f" % t for t in times["command true"])))
print("image_build --check  median   %.3f s   (%s)" % (mod, " ".join("%.3f" % t for t in times["image_build check mode"])))
print("ratio image_build / command:  %.2f" % (mod / cmd))
print("module binary size:           %d bytes (%.1f MiB) %s" % (os.path.getsize(binary), os.path.getsize(binary) / 2**20, binary))
PY
