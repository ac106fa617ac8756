#!/usr/bin/env bash
# Benchmarks of issue 11, each a ratio against a baseline measured in the same run:
#   noop      a no-op `family build` of a 30-image family (every image skip: a manifest and a
#             config fetch each) against rebuilding the same family through BuildKit's cache
#             (--rebuild), one image at a time as Kolla and CORD do (--jobs 1), and 4 at a time.
#             Targets: no-op <= 1 s, rebuild / no-op >= 20.
#   parallel  a family whose RUN steps sleep 2 s, in 3 levels of widths 1, 4, 2 (critical path
#             3 sleeps), built with --jobs 4, against its critical path (3 x one image's build).
#             Target: family / critical path <= 1.1.
#   variants  a build-params request of 4 variants whose RUN sleeps 3 s, against one variant.
#             Target: 4 variants / 1 variant <= 1.3.
# Usage: scripts/bench-family.sh [noop parallel variants]  (needs `scripts/testenv.sh up`).
set -euo pipefail
which=${*:-noop parallel variants}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
eval "$(scripts/testenv.sh env)"
make -s build
ib=$root/bin/imagebuilder
bk=$IMAGEBUILDER_TEST_BUILDKIT
reg=$IMAGEBUILDER_TEST_REGISTRY
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
ns=bench-$(date +%s)

# family DIR NAME PARENT... writes DIR/NAME/Dockerfile (FROM the first parent, or the base).
image() {
	local dir=$1 name=$2 from=$3 run=$4
	mkdir -p "$dir/$name"
	printf 'FROM %s\nRUN %s\n' "$from" "$run" >"$dir/$name/Dockerfile"
	echo "  - {name: $name, source: main, context: $name}" >>"$dir/family.yaml"
}
header() { # header DIR
	mkdir -p "$1"
	printf 'registry: {url: %s}\nnamespace: %s\ntag: latest\nplatforms: [linux/amd64]\nsources: {main: {local: {path: %s}}}\nimages:\n' "$reg" "$ns-$(basename "$1")" "$1" >"$1/family.yaml"
}

if [[ " $which " == *" noop "* ]]; then
	d=$work/noop
	header "$d"
	image "$d" root "$IMAGEBUILDER_TEST_BASE" "echo root > /root.txt"
	for i in $(seq 1 29); do
		image "$d" "img$i" "$reg/$ns-noop/root:latest" "echo $i > /img.txt"
	done
	"$ib" family build -f "$d/family.yaml" --builder "$bk" --progress quiet --jobs 4 >/dev/null # first build
	"$ib" family build -f "$d/family.yaml" --builder "$bk" --progress quiet >/dev/null        # warm
	noop=() seq=() par=()
	for _ in 1 2 3 4 5; do
		t0=$(now)
		"$ib" family build -f "$d/family.yaml" --builder "$bk" --progress quiet >/dev/null
		t1=$(now)
		"$ib" family build -f "$d/family.yaml" --builder "$bk" --progress quiet --rebuild --jobs 1 >/dev/null
		t2=$(now)
		"$ib" family build -f "$d/family.yaml" --builder "$bk" --progress quiet --rebuild --jobs 4 >/dev/null
		t3=$(now)
		noop+=("$(ms "$t0" "$t1")") seq+=("$(ms "$t1" "$t2")") par+=("$(ms "$t2" "$t3")")
	done
	median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
	n=$(median "${noop[@]}") s1=$(median "${seq[@]}") s4=$(median "${par[@]}")
	echo "noop: 30-image no-op family build ${n} ms (target <= 1000)"
	echo "noop: cached rebuild --jobs 1 ${s1} ms: rebuild/noop $(ratio "$s1" "$n"); --jobs 4 ${s4} ms: rebuild/noop $(ratio "$s4" "$n") (target >= 20)"
fi

if [[ " $which " == *" parallel "* ]]; then
	d=$work/parallel
	header "$d"
	nonce=$(date +%s%N)
	image "$d" top "$IMAGEBUILDER_TEST_BASE" "sleep 2 && echo $nonce > /top"
	for i in 1 2 3 4; do image "$d" "mid$i" "$reg/$ns-parallel/top:latest" "sleep 2 && echo $nonce $i > /mid"; done
	for i in 1 2; do image "$d" "leaf$i" "$reg/$ns-parallel/mid$i:latest" "sleep 2 && echo $nonce $i > /leaf"; done
	one=$work/one
	header "$one"
	image "$one" single "$IMAGEBUILDER_TEST_BASE" "sleep 2 && echo $nonce > /single"
	t0=$(now)
	"$ib" family build -f "$one/family.yaml" --builder "$bk" --progress quiet >/dev/null
	t1=$(now)
	"$ib" family build -f "$d/family.yaml" --builder "$bk" --progress quiet --jobs 4 >/dev/null
	t2=$(now)
	single=$(ms "$t0" "$t1") fam=$(ms "$t1" "$t2")
	echo "parallel: 7 images in levels 1/4/2 with --jobs 4: ${fam} ms; critical path 3 x ${single} ms; family/critical $(ratio "$fam" $((3 * single))) (target <= 1.1)"
fi

if [[ " $which " == *" variants "* ]]; then
	mkdir -p "$work/ctx"
	nonce=$(date +%s%N)
	printf 'ARG BASE=%s\nFROM ${BASE}\nARG V\nRUN sleep 3 && echo %s $V > /v\n' "$IMAGEBUILDER_TEST_BASE" "$nonce" >"$work/ctx/Dockerfile"
	params() { # params FILE N
		{
			printf 'source: {local: {path: %s}}\ntarget:\n  registry: {url: %s}\n  images:\n' "$work/ctx" "$reg"
			for i in $(seq 1 "$2"); do
				printf '    - {image: %s/variants, tag: v%s, platforms: [linux/amd64], build_args: {V: "%s"}}\n' "$ns" "$i-$2" "$i-$2"
			done
		} >"$1"
	}
	params "$work/one.yaml" 1
	params "$work/four.yaml" 4
	t0=$(now)
	"$ib" build -f "$work/one.yaml" --builder "$bk" --progress quiet >/dev/null
	t1=$(now)
	"$ib" build -f "$work/four.yaml" --builder "$bk" --progress quiet >/dev/null
	t2=$(now)
	one_ms=$(ms "$t0" "$t1") four_ms=$(ms "$t1" "$t2")
	echo "variants: 4 variants ${four_ms} ms, 1 variant ${one_ms} ms; 4/1 $(ratio "$four_ms" "$one_ms") (target <= 1.3)"
fi
