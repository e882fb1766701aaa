#!/usr/bin/env bash
# Fails when any C source of the project differs from what clang-format (.clang-format) makes.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^build' || true)
bad=0
for f in $files; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f (run: clang-format -i $f)"
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    exit 1
fi
echo "format: $(echo "$files" | wc -w) files checked"
