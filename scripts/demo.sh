#!/usr/bin/env bash
# The main job on the embedded default: bring up the test environment, make a local git repository
# from examples/demo/app, build two variants for linux/amd64 and linux/arm64, push them to the
# local registry and print the facts. Usage: scripts/demo.sh [--builder ENDPOINT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/testenv.sh up >&2
eval "$(scripts/testenv.sh env)"
make -s build >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r examples/demo/app "$work/repo"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "demo app"
sed "s|REPO_URL|file://$work/repo|" examples/demo/params.yaml > "$work/params.yaml"

echo "building examples/demo/params.yaml from file://$work/repo" >&2
bin/imagebuilder build -f "$work/params.yaml" --progress plain "$@"
