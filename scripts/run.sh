#!/usr/bin/env bash
# The main job: installs missing packages, builds weft, and runs the collector with its
# embedded store in the foreground (Ctrl-C stops it cleanly). Extra arguments go to the
# collector, e.g. scripts/run.sh --data-dir /var/lib/weft --listen 127.0.0.1:20001
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build weft
exec build/weft collector "$@"
