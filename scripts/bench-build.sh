#!/usr/bin/env bash
# Benchmark: `imagebuilder build` against `buildctl build` of the same fully cached Dockerfile on
# the same buildkitd, both pushing to the test registry. Runs alternate (ib, buildctl, ib, ...)
# after one warm-up each; prints every time, the medians and the ratio imagebuilder/buildctl.
# Usage: scripts/bench-build.sh [RUNS]   (default 7; needs `scripts/testenv.sh up`)
set -euo pipefail
runs=${1:-7}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
eval "$(scripts/testenv.sh env)"
make -s build

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<DOCKERFILE
FROM $IMAGEBUILDER_TEST_BASE
COPY hello.txt /hello.txt
RUN echo cached > /cached
DOCKERFILE
echo hello > "$work/ctx/hello.txt"
cat > "$work/params.yaml" <<PARAMS
source:
  local: {path: $work/ctx}
target:
  images: [{image: bench/ib, tag: latest, platforms: [linux/amd64]}]
  registry: {url: $IMAGEBUILDER_TEST_REGISTRY}
PARAMS

ib() {
	bin/imagebuilder build -f "$work/params.yaml" --builder "$IMAGEBUILDER_TEST_BUILDKIT" --progress quiet >/dev/null
}
bc() {
	buildctl --addr "$IMAGEBUILDER_TEST_BUILDKIT" build --progress quiet --frontend dockerfile.v0 \
		--local context="$work/ctx" --local dockerfile="$work/ctx" --opt platform=linux/amd64 \
		--output "type=image,name=$IMAGEBUILDER_TEST_REGISTRY/bench/buildctl:latest,push=true,registry.insecure=true" >/dev/null
}
now() { date +%s.%N; }

ib; bc # warm-up: fill the cache and the registry
ib_times=() bc_times=()
for ((i = 0; i < runs; i++)); do
	t0=$(now); ib; t1=$(now); bc; t2=$(now)
	ib_times+=("$(python3 -c "print($t1 - $t0)")")
	bc_times+=("$(python3 -c "print($t2 - $t1)")")
done
python3 - "${ib_times[*]}" "${bc_times[*]}" <<'PY'
import statistics, sys
ib = [float(x) for x in sys.argv[1].split()]
bc = [float(x) for x in sys.argv[2].split()]
print("imagebuilder build:", " ".join(f"{x:.3f}" for x in ib))
print("buildctl build:    ", " ".join(f"{x:.3f}" for x in bc))
mi, mb = statistics.median(ib), statistics.median(bc)
print(f"median imagebuilder {mi:.3f}s, buildctl {mb:.3f}s, ratio {mi / mb:.3f} (target <= 1.05)")
PY
