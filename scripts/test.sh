#!/usr/bin/env bash
# The whole test suite: installs missing packages, then builds and runs every test (ctest)
# twice: a normal optimised gcc build, and a clang ASan+UBSan build in which the fuzz targets
# are real libFuzzer runs. The last line ctest prints for each build is its verdict.
#
#   scripts/test.sh            both builds
#   WEFT_TEST_BUILDS=normal scripts/test.sh     only the normal build (quick local runs)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The OpenTelemetry JS SDK the client tests run, exactly as tests/otel-js/package-lock.json pins
# it (from the npm registry; skipped when that lock file's packages are already installed).
# The same for playwright-core, which drives chromium in the browser tests (tests/browser).
# web/'s own packages (esbuild, the UI's libraries) are installed by the build itself.
for d in tests/otel-js tests/browser; do
    if ! cmp -s "$d/package-lock.json" "$d/node_modules/.package-lock.json.weft"; then
        (cd "$d" && npm ci --no-audit --no-fund --loglevel=error &&
            cp package-lock.json node_modules/.package-lock.json.weft)
    fi
done

jobs=$(nproc)
builds=${WEFT_TEST_BUILDS:-"normal sanitize"}
status=0
for b in $builds; do
    case "$b" in
    normal)
        dir=build
        cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_TESTS=ON >/dev/null
        ;;
    sanitize)
        dir=build-sanitize
        CC=clang cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_SANITIZE=ON \
            -DWEFT_FUZZ=ON -DWEFT_TESTS=ON >/dev/null
        ;;
    *)
        echo "unknown build '$b'" >&2
        exit 2
        ;;
    esac
    echo "=== $b build ($dir) ==="
    ninja -C "$dir" -j "$jobs"
    echo "=== $b tests ==="
    if ! (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --output-on-failure -j "$jobs"); then
        status=1
    fi
done
exit $status
