#!/usr/bin/env bash
# The main job: installs missing packages, builds weft, and runs `weft demo`: the whole mesh
# (control plane, collector and UI, gateway, bookinfo with sidecars, traffic) in the foreground;
# Ctrl-C stops it all. Extra arguments go to weft demo, e.g. scripts/run.sh --port 20002
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build weft
exec build/weft demo "$@"
