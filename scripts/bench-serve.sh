#!/usr/bin/env bash
# Benchmark: the build service's overhead. The same fully cached build (nothing to build, nothing
# to push) N times (default 50):
#   cli      `imagebuilder build` N times, one after another
#   service  N builds queued at once through the API (POST /build/, SODALITE's path) on one
#            `imagebuilder serve` (SQLite, one worker, so they run one after another too; a fresh
#            server and database per round, warmed by one build), timed from the first POST until
#            the last one reads success in GET /v1/invocations (polled every 25 ms)
# Both use the test environment's BuildKit and registry; the params are the same file. Printed:
# both totals, the service's overhead per build ((service - cli) / N, in ms) and the ratio
# service / cli, per round and their medians. Target (issue 14): overhead <= 50 ms per build.
# Usage: scripts/bench-serve.sh [N] [ROUNDS]  (default 50 and 3; needs `scripts/testenv.sh up`
# and curl).
set -euo pipefail
n=${1:-50}
rounds=${2:-3}
((n >= 1 && n <= 99)) || { echo "$0: N must be 1 to 99 (the builds are counted in one page of the list)" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v curl >/dev/null || { echo "$0: needs curl" >&2; exit 1; }
eval "$(scripts/testenv.sh env)"
make -s build

work=$(mktemp -d)
server=
cleanup() {
	[[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/ctx"
cat >"$work/ctx/Dockerfile" <<DOCKERFILE
FROM $IMAGEBUILDER_TEST_BASE
COPY hello.txt /hello.txt
RUN echo cached > /cached
DOCKERFILE
echo hello >"$work/ctx/hello.txt"
# A local source, so the server runs with --allow-local (the CLI reads the same directory).
cat >"$work/params.json" <<PARAMS
{"source": {"local": {"path": "$work/ctx"}},
 "target": {"images": [{"image": "bench/serve", "tag": "latest", "platforms": ["linux/amd64"]}],
            "registry": {"url": "$IMAGEBUILDER_TEST_REGISTRY"}}}
PARAMS

ib=(bin/imagebuilder)
api() { curl -fsS -H "X-API-Key: $key" "$@"; }
count() { # count STATE: the server's invocations in STATE (one page: up to 100)
	api "$url/v1/invocations?state=$1&limit=100" | grep -o '"invocation_id"' | wc -l
}
submit() { api -H 'Content-Type: application/json' --data-binary "@$work/params.json" "$url/build/" >/dev/null; }
wait_success() { # wait_success K: until K builds succeeded (a failure ends the benchmark)
	while (($(count success) < $1)); do
		if (($(count failed) > 0)); then
			echo "$0: a build failed; the server's log:" >&2
			tail -n 20 "$work/serve.log" >&2
			exit 1
		fi
		sleep 0.025
	done
}
# start_server DIR: a fresh server on a fresh database, with one build done (warm-up).
start_server() {
	local db=sqlite://$1/serve.db i
	mkdir -p "$1"
	key=$("${ib[@]}" serve apikey create bench --database "$db")
	"${ib[@]}" serve --listen 127.0.0.1:0 --database "$db" --workers 1 --builder "$IMAGEBUILDER_TEST_BUILDKIT" \
		--allow-local --rate-limit 0 >"$1/ready" 2>"$work/serve.log" &
	server=$!
	for ((i = 0; i < 600; i++)); do
		[[ -s $1/ready ]] && break
		sleep 0.1
	done
	url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$1/ready")
	[[ -n $url ]] || { echo "$0: imagebuilder serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
	submit
	wait_success 1
}
stop_server() {
	kill "$server"
	wait "$server" 2>/dev/null || true
	server=
}
cli_build() { "${ib[@]}" build -f "$work/params.json" --builder "$IMAGEBUILDER_TEST_BUILDKIT" --progress quiet >/dev/null; }
now() { date +%s%N; }

cli_build # warm-up: the cache and the registry hold the image
clis=() services=()
for ((r = 0; r < rounds; r++)); do
	t0=$(now)
	for ((i = 0; i < n; i++)); do cli_build; done
	t1=$(now)
	start_server "$work/round-$r"
	t2=$(now)
	for ((i = 0; i < n; i++)); do submit; done
	wait_success $((n + 1))
	t3=$(now)
	stop_server
	clis+=($(((t1 - t0) / 1000000)))
	services+=($(((t3 - t2) / 1000000)))
done

awk -v n="$n" -v clis="${clis[*]}" -v services="${services[*]}" "$(<scripts/lib/median.awk)"'
BEGIN {
	k = split(clis, c, " "); split(services, s, " ")
	printf "%d fully cached builds per round, %d rounds (ms)\n", n, k
	for (i = 1; i <= k; i++) {
		o[i] = (s[i] - c[i]) / n; r[i] = s[i] / c[i]
		printf "  round %d: cli %d ms (%.1f ms/build), service %d ms (%.1f ms/build): overhead %.1f ms/build, ratio %.3f\n",
			i, c[i], c[i] / n, s[i], s[i] / n, o[i], r[i]
	}
	printf "median service overhead %.1f ms per build (target <= 50 ms), median ratio service/cli %.3f\n", median(o, k), median(r, k)
}'
