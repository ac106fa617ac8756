#!/usr/bin/env bash
# Benchmark of the image_build module (the imagebuilder.images collection), two pairs:
#
# Local: the wall time of an image_build task in check mode (a git source, two variants;
# everything checked, nothing built) against a `command: true` task, both in one play on
# localhost (playbooks/tests/bench.yml), as ansible-core's junit callback records them; the median
# of each over RUNS runs (default 7, at least 5; one more warm-up run is not counted).
#
# SSH: the same against a remote host, the loopback sshd of the test environment
# (127.0.0.1:2222): per run, a play of 5 consecutive `command: true` tasks and a play of 5
# consecutive check-mode image_build tasks with an empty module cache on the host (the first task
# copies the binary), over one ssh master connection (ansible's default ssh arguments, -C
# included, with a ControlPath of the bench's own). Prints the median time of a task (image_build
# after the first, and the first alone), the ratio to `command: true`, and the bytes per task:
# the ssh client's TCP connection counters (ss -ti: bytes_sent + bytes_received of the master's
# socket) read before and after each play, so the bytes are what crosses the network, after ssh's
# compression. SSH runs: max(3, RUNS/2).
#
# Usage: scripts/bench-ansible.sh [RUNS]. Needs the test environment (scripts/testenv.sh up).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-7}
if (( runs < 5 )); then echo "RUNS must be at least 5" >&2; exit 2; fi
ssh_runs=$(( runs / 2 > 3 ? runs / 2 : 3 ))

eval "$(scripts/testenv.sh env)"
bin=${IMAGEBUILDER_TEST_ANSIBLE_BIN:?run scripts/testenv.sh up first}

work=$(mktemp -d)
master=
cleanup() {
  if [[ -n $master ]]; then ssh -o ControlPath="$work/cm" -O exit "$IMAGEBUILDER_TEST_SSH_USER@$IMAGEBUILDER_TEST_SSH_HOST" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
ANSIBLE_GALAXY=$bin/ansible-galaxy scripts/build-collection.sh "$work/build" >/dev/null
export ANSIBLE_COLLECTIONS_PATH=$work/build/collection
binary=$work/build/collection/ansible_collections/imagebuilder/images/binaries/linux_amd64/image_build

mkdir "$work/repo"
cp -r examples/demo/app/. "$work/repo/"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=bench -c user.email=bench@example.invalid commit -q -m bench
vars=(-e repo_url="file://$work/repo" -e registry="$IMAGEBUILDER_TEST_REGISTRY" -e builder_endpoint="$IMAGEBUILDER_TEST_BUILDKIT")

for i in $(seq 0 "$runs"); do
  ANSIBLE_CONFIG=playbooks/ansible.cfg ANSIBLE_CALLBACKS_ENABLED=junit JUNIT_OUTPUT_DIR="$work/junit/$i" \
    JUNIT_TASK_CLASS=true ANSIBLE_NOCOLOR=1 \
    "$bin/ansible-playbook" playbooks/tests/bench.yml "${vars[@]}" \
      -e imagebuilder_module_cache="$work/local-cache" >"$work/run-$i.log" 2>&1 \
    || { cat "$work/run-$i.log" >&2; exit 1; }
done

# --- SSH ---------------------------------------------------------------------------------------
host=$IMAGEBUILDER_TEST_SSH_HOST port=$IMAGEBUILDER_TEST_SSH_PORT user=$IMAGEBUILDER_TEST_SSH_USER
ssh_args="-C -o ControlMaster=auto -o ControlPersist=600s"   # ansible's default, longer persistence
printf 'remote ansible_host=%s ansible_port=%s ansible_user=%s ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3\n' \
  "$host" "$port" "$user" "$IMAGEBUILDER_TEST_SSH_KEY" >"$work/inventory.ini"
# shellcheck disable=SC2086 # ssh_args are words
ssh $ssh_args -o ControlPath="$work/cm" -o UserKnownHostsFile="$IMAGEBUILDER_TEST_SSH_KNOWN_HOSTS" -i "$IMAGEBUILDER_TEST_SSH_KEY" \
  -p "$port" -fN "$user@$host"
master=$(ssh -o ControlPath="$work/cm" -O check "$user@$host" 2>&1 | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
[[ -n $master ]] || { echo "the ssh master connection did not start" >&2; exit 1; }

# conn_bytes: bytes_sent + bytes_received of the master's TCP socket to the sshd.
conn_bytes() {
  ss -tinpH state established "( dport = :$port )" | awk -v pid="pid=$master," '
    index($0, pid) { inconn = 1; next }
    inconn { s = 0; r = 0
      if (match($0, /bytes_sent:[0-9]+/)) s = substr($0, RSTART + 11, RLENGTH - 11)
      if (match($0, /bytes_received:[0-9]+/)) r = substr($0, RSTART + 15, RLENGTH - 15)
      print s + r; exit }'
}
ssh_play() { # LABEL RUN CACHE (LABEL: command, image_build or image_build_warm)
  local label=$1 kind=${1%_warm} i=$2 cache=$3 before after
  before=$(conn_bytes)
  ANSIBLE_CONFIG=playbooks/ansible.cfg ANSIBLE_CALLBACKS_ENABLED=junit JUNIT_OUTPUT_DIR="$work/junit-ssh/$label-$i" \
    JUNIT_TASK_CLASS=true ANSIBLE_NOCOLOR=1 ANSIBLE_SSH_ARGS="$ssh_args" ANSIBLE_SSH_CONTROL_PATH="$work/cm" \
    ANSIBLE_HOST_KEY_CHECKING=False \
    "$bin/ansible-playbook" -i "$work/inventory.ini" playbooks/tests/bench-ssh.yml "${vars[@]}" \
      -e bench_kind="$kind" -e imagebuilder_module_cache="$cache" >"$work/ssh-$label-$i.log" 2>&1 \
    || { cat "$work/ssh-$label-$i.log" >&2; exit 1; }
  after=$(conn_bytes)
  echo "$label $i $((after - before))" >>"$work/bytes"
}
: >"$work/bytes"
ssh_play command 0 "$work/warmup-cache"   # warm-up, not counted
for i in $(seq 1 "$ssh_runs"); do
  ssh_play command "$i" "$work/remote-cache-$i"
  ssh_play image_build "$i" "$work/remote-cache-$i"       # empty cache: the first task copies
  ssh_play image_build_warm "$i" "$work/remote-cache-$i"  # the same cache again: no copy
done

"$bin/python3" - "$work" "$runs" "$ssh_runs" "$binary" <<'PY'
import glob, os, re, statistics, sys
import xml.etree.ElementTree as ET

work, runs, ssh_runs, binary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def cases(directory, host):
    out = []
    for f in glob.glob(os.path.join(directory, "*.xml")):
        for case in ET.parse(f).getroot().iter("testcase"):
            m = re.match(r"\[%s\] [^:]*: (Command true|Image_build check mode)(?: (\d))?( |$)" % host, case.get("name", ""))
            if m and not case.findall("skipped"):
                out.append((m.group(1), int(m.group(2) or 0), float(case.get("time"))))
    return out

times = {"Command true": [], "Image_build check mode": []}
for i in range(1, runs + 1):  # run 0 is the warm-up
    for name, _, t in cases(os.path.join(work, "junit", str(i)), "localhost"):
        times[name].append(t)
for name, ts in times.items():
    if len(ts) != runs:
        sys.exit("expected %d timings of %r, got %d" % (runs, name, len(ts)))
cmd, mod = statistics.median(times["Command true"]), statistics.median(times["Image_build check mode"])
print("local (one play on localhost, %d runs plus one warm-up)" % runs)
print("  command: true        median   %.3f s   (%s)" % (cmd, " ".join("%.3f" % t for t in times["Command true"])))
print("  image_build --check  median   %.3f s   (%s)" % (mod, " ".join("%.3f" % t for t in times["Image_build check mode"])))
print("  ratio image_build / command:  %.2f" % (mod / cmd))

cmd_t, first_t, later_t, warm_t = [], [], [], []
for i in range(1, ssh_runs + 1):
    cmd_t += [t for _, _, t in cases(os.path.join(work, "junit-ssh", "command-%d" % i), "remote")]
    for _, n, t in cases(os.path.join(work, "junit-ssh", "image_build-%d" % i), "remote"):
        (first_t if n == 1 else later_t).append(t)
    warm_t += [t for _, _, t in cases(os.path.join(work, "junit-ssh", "image_build_warm-%d" % i), "remote")]
if len(cmd_t) != 5 * ssh_runs or len(first_t) != ssh_runs or len(later_t) != 4 * ssh_runs or len(warm_t) != 5 * ssh_runs:
    sys.exit("SSH timings missing: %d command, %d first, %d later, %d warm" % (len(cmd_t), len(first_t), len(later_t), len(warm_t)))
nbytes = {}
for line in open(os.path.join(work, "bytes")):
    kind, i, n = line.split()
    if i != "0":
        nbytes.setdefault(kind, []).append(int(n))
c, f, l, w = (statistics.median(x) for x in (cmd_t, first_t, later_t + warm_t, warm_t))
print("ssh (loopback sshd, 5 consecutive tasks per play, %d runs; empty module cache at each run's first image_build)" % ssh_runs)
print("  command: true              median   %.3f s" % c)
print("  image_build --check first  median   %.3f s   (copies the binary into the cache)" % f)
print("  image_build --check after  median   %.3f s   (tasks 2-5, and a second play of 5)" % l)
print("  ratio image_build / command, after the first task:  %.2f" % (l / c))
print("  ratio image_build / command, first task:            %.2f" % (f / c))
per = lambda k: statistics.median(nbytes[k]) / 5
cold = statistics.median(nbytes["image_build"])
print("  bytes per task (ssh client TCP counters, -C): command %.0f; image_build after the first %.0f (%.1f KiB); "
      "first image_build about %.1f MiB" % (per("command"), per("image_build_warm"), per("image_build_warm") / 1024,
                                            (cold - 4 * per("image_build_warm")) / 2**20))
print("module binary size:           %d bytes (%.1f MiB) %s" % (os.path.getsize(binary), os.path.getsize(binary) / 2**20, os.path.basename(binary)))
PY
