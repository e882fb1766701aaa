#!/usr/bin/env bash
# Installs the Debian 12 packages weft needs, if any are missing. Non-interactive; works as root
# or through sudo.
#
#   scripts/install-deps.sh        everything: build, tests, benchmarks (scripts/test.sh)
#   scripts/install-deps.sh build  only what building weft takes (scripts/run.sh: a new user's
#                                  first command should not wait for chromium, clang and the
#                                  reference systems)
set -euo pipefail

profile=${1:-all}
case "$profile" in
all | build) ;;
*)
    echo "usage: scripts/install-deps.sh [build]" >&2
    exit 2
    ;;
esac

packages=(
    # build: a C compiler, CMake and Ninja (no C++, no make: build-essential would add g++ and
    # perl, seconds a new user's first command waits for). Not ca-certificates either (10 s):
    # cmake/weft_web_deps.cmake falls back to node's own root certificates.
    gcc libc6-dev cmake ninja-build pkg-config
    # libraries (found through pkg-config)
    libmicrohttpd-dev libsqlite3-dev libjansson-dev libzstd-dev libuv1-dev libssl-dev
    libyaml-dev libpcre2-dev libsnappy-dev zlib1g-dev libcurl4-openssl-dev libcrypt-dev
    libnghttp2-dev
)
test_packages=(
    # tests: unit tests, format check, sanitizer and libFuzzer builds
    build-essential git ca-certificates libcmocka-dev clang clang-format libclang-rt-14-dev curl
    # systemd-analyze checks the units of deploy/systemd (test_deploy_systemd)
    systemd
    # the browser tests of the web UI (tests/browser: playwright-core drives it)
    chromium
    # reference systems the tests and benchmarks run beside weft
    prometheus victoria-metrics
    wrk nginx-light
)
if [ "$profile" = all ]; then
    packages+=("${test_packages[@]}")
fi

# Node.js builds the web UI (web/build.mjs, run by the CMake build, which fetches its npm
# packages itself); the tests also need npm for the OpenTelemetry JS SDK (tests/otel-js) and the
# browser tests (tests/browser). A node that did not come from Debian (e.g. NodeSource's, which
# bundles npm) is used as it is.
if ! command -v node >/dev/null 2>&1; then
    packages+=(nodejs)
fi
if [ "$profile" = all ] && ! command -v npm >/dev/null 2>&1; then
    packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: missing packages (${missing[*]}) and not root, no sudo" >&2
        exit 1
    fi
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The prometheus and victoria-metrics packages start system services where systemd runs.
# weft's tests and benchmarks start their own copies on free ports, so services that this
# script brought in are stopped and disabled again; ones that were installed before are left.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for svc in prometheus victoria-metrics; do
        if printf '%s\n' "${missing[@]}" | grep -qx "$svc"; then
            $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
        fi
    done
fi
