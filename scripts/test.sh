#!/usr/bin/env bash
# Builds usock twice (a normal build with -Werror, and an ASan+UBSan build)
# and runs every test in both: unit, simulation, API behaviour (against the
# kernel and usock) and, as root, interop tests in network namespaces the
# tests make themselves.  Installs missing Debian packages when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need_packages=()
command -v cmake >/dev/null || need_packages+=(cmake)
command -v gcc >/dev/null || need_packages+=(gcc)
command -v ip >/dev/null || need_packages+=(iproute2)
command -v ping >/dev/null || need_packages+=(iputils-ping)
command -v nc >/dev/null || need_packages+=(netcat-openbsd)
command -v tshark >/dev/null || need_packages+=(tshark)
command -v socat >/dev/null || need_packages+=(socat)
command -v nft >/dev/null || need_packages+=(nftables)
command -v hping3 >/dev/null || need_packages+=(hping3)
command -v setpriv >/dev/null || need_packages+=(util-linux)
/usr/bin/python3 -c 'import scapy' 2>/dev/null || need_packages+=(python3-scapy)
if [ "${#need_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${need_packages[*]}"
        export DEBIAN_FRONTEND=noninteractive
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
        apt-get update -qq
        apt-get install -y -qq "${need_packages[@]}" >/dev/null
    else
        echo "missing packages (run as root to install): ${need_packages[*]}" >&2
    fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
status=0

echo "== build (gcc, -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUSOCK_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests"
(cd build && ctest --output-on-failure -j"$jobs") || status=1

echo "== build (ASan + UBSan)"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DUSOCK_SANITIZE=ON >/dev/null
cmake --build build-sanitize -j"$jobs"
echo "== tests under ASan + UBSan"
(cd build-sanitize && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs") || status=1

echo "== fuzzing (clang libFuzzer): corpora replayed, 30 s per target, fixed seed"
bash fuzz/run.sh --seconds 30 --seed 1 || status=1

if [ "$status" -eq 0 ]; then
    echo "all tests passed"
else
    echo "some tests failed" >&2
fi
exit "$status"
