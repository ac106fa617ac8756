#!/usr/bin/env bash
# Benchmark: a fully cached build of one Dockerfile, imagebuilder against the native tools on
# the same engine, all pushing to the test registry:
#   buildkit pair  `imagebuilder build --builder $BUILDKIT_HOST`  vs  `buildctl build` (push=true)
#   docker pair    `imagebuilder build --builder docker`          vs  `docker build` + `docker push`
#   buildah pair   `imagebuilder build --builder plugin:buildah`  vs  `buildah build` + `buildah push`
#                  (the same vfs storage directory for both)
# Runs alternate within each pair (ours, theirs, ours, ...) after one warm-up each; the ratio is
# the median of the per-pair ratios (ours/theirs), which cancels the machine's drift.
# Usage: scripts/bench-build.sh [RUNS] [PAIRS]  (default 9, "buildkit docker buildah"; needs
# `scripts/testenv.sh up`). Targets: buildkit <= 1.05, docker <= 1.00 (issue 9), buildah <= 1.10
# (issue 13).
set -euo pipefail
runs=${1:-9}
pairs=${2:-buildkit docker buildah}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
eval "$(scripts/testenv.sh env)"
make -s build
docker_cli=/usr/bin/docker # Debian's CLI: it matches the daemon and builds with BuildKit itself
[[ -x $docker_cli ]] || docker_cli=docker

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ctx"
cat >"$work/ctx/Dockerfile" <<DOCKERFILE
FROM $IMAGEBUILDER_TEST_BASE
COPY hello.txt /hello.txt
RUN echo cached > /cached
DOCKERFILE
echo hello >"$work/ctx/hello.txt"
params() { # params ENGINE
	cat >"$work/params-$1.yaml" <<PARAMS
source:
  local: {path: $work/ctx}
target:
  images: [{image: bench/ib-$1, tag: latest, platforms: [linux/amd64]}]
  registry: {url: $IMAGEBUILDER_TEST_REGISTRY}
PARAMS
}
params buildkit
params docker
params buildah

ib_buildkit() {
	bin/imagebuilder build -f "$work/params-buildkit.yaml" --builder "$IMAGEBUILDER_TEST_BUILDKIT" --progress quiet >/dev/null
}
native_buildkit() {
	buildctl --addr "$IMAGEBUILDER_TEST_BUILDKIT" build --progress quiet --frontend dockerfile.v0 \
		--local context="$work/ctx" --local dockerfile="$work/ctx" --opt platform=linux/amd64 \
		--output "type=image,name=$IMAGEBUILDER_TEST_REGISTRY/bench/buildctl:latest,push=true" >/dev/null
}
ib_docker() {
	bin/imagebuilder build -f "$work/params-docker.yaml" --builder docker --progress quiet >/dev/null
}
native_docker() {
	DOCKER_BUILDKIT=1 DOCKER_HOST=$IMAGEBUILDER_TEST_DOCKER "$docker_cli" build -q --network host --platform linux/amd64 \
		-t "$IMAGEBUILDER_TEST_REGISTRY/bench/docker:latest" "$work/ctx" >/dev/null
	DOCKER_HOST=$IMAGEBUILDER_TEST_DOCKER "$docker_cli" push -q "$IMAGEBUILDER_TEST_REGISTRY/bench/docker:latest" >/dev/null
}
# Both sides of the buildah pair use one storage directory (vfs), so both are fully cached.
buildah_dir=$work/buildah
buildah_native() { buildah --root "$buildah_dir/storage" --runroot "$buildah_dir/run" --storage-driver vfs "$@"; }
ib_buildah() {
	bin/imagebuilder build -f "$work/params-buildah.yaml" --builder "plugin:buildah?root=$buildah_dir" --progress quiet >/dev/null
}
native_buildah() {
	# --tls-verify=false reaches the loopback registry over plain HTTP, as imagebuilder does: without
	# it buildah's check for a newer base fails and it quietly takes the stored one.
	buildah_native build -q --layers --tls-verify=false --platform linux/amd64 -t "$IMAGEBUILDER_TEST_REGISTRY/bench/buildah:latest" "$work/ctx" >/dev/null
	buildah_native push -q --tls-verify=false "$IMAGEBUILDER_TEST_REGISTRY/bench/buildah:latest" \
		"docker://$IMAGEBUILDER_TEST_REGISTRY/bench/buildah:latest" >/dev/null
}
now() { date +%s%N; }

for pair in $pairs; do
	"ib_$pair"
	"native_$pair" # warm-up: fill the cache and the registry
	ours=() theirs=()
	for ((i = 0; i < runs; i++)); do
		t0=$(now)
		"ib_$pair"
		t1=$(now)
		"native_$pair"
		t2=$(now)
		ours+=($(((t1 - t0) / 1000)))
		theirs+=($(((t2 - t1) / 1000)))
	done
	awk -v pair="$pair" -v ours="${ours[*]}" -v theirs="${theirs[*]}" "$(<scripts/lib/median.awk)"'
	BEGIN {
		n = split(ours, o, " "); split(theirs, t, " ")
		line1 = line2 = ""
		for (i = 1; i <= n; i++) { r[i] = o[i] / t[i]; oo[i] = o[i]; tt[i] = t[i]
			line1 = line1 sprintf(" %.1f", o[i] / 1000); line2 = line2 sprintf(" %.1f", t[i] / 1000) }
		native = pair == "buildkit" ? "buildctl build" : pair == "docker" ? "docker build + push" : "buildah build + push"
		target = pair == "buildkit" ? "<= 1.05" : pair == "docker" ? "<= 1.00" : "<= 1.10"
		printf "%s pair (ms)\n  imagebuilder:%s\n  %s:%s\n", pair, line1, native, line2
		printf "  median imagebuilder %.1f ms, %s %.1f ms; median of pair ratios %.3f (target %s)\n",
			median(oo, n) / 1000, native, median(tt, n) / 1000, median(r, n), target
	}'
done
