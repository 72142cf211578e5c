#!/usr/bin/env bash
# tcp_throughput.sh - single-flow TCP throughput, usock against the kernel,
# measured in one run on this machine (a benchmark: it prints figures and
# never fails on them).
#
#   usock -> kernel   over a TAP: `usock nc` sends, kernel `nc -l` receives
#   kernel -> usock   over a TAP: kernel `nc` sends, `usock nc -l` receives
#   kernel -> kernel  over a veth pair between two namespaces
#
# CPU cost: each usock process runs under /usr/bin/time, and its user +
# system CPU time gives the bytes it moved per CPU-second (the kernel's CPU
# for the same flow is spread over softirqs no process is charged for, so
# no kernel figure is given).
#
# Every host lives in a network namespace made here (198.18.0.0/15 only) and
# removed on exit.  Usage: bench/tcp_throughput.sh [USOCK_BINARY] [MEGABYTES]
# Needs root.  Prints a table; with --json prints JSON instead.
set -euo pipefail
cd "$(dirname "$0")/.."

JSON=0
ARGS=()
for argument in "$@"; do
    if [[ $argument == --json ]]; then JSON=1; else ARGS+=("$argument"); fi
done
USOCK=${ARGS[0]:-./build/usock}
MEGABYTES=${ARGS[1]:-200}
BYTES=$((MEGABYTES * 1000000))
if [[ ! -x $USOCK ]]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" --target usock >/dev/null
fi
USOCK=$(realpath "$USOCK")
command -v nc >/dev/null || { apt-get update -qq && apt-get install -y -qq netcat-openbsd >/dev/null; }
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
[[ -x /usr/bin/time ]] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }

TAG=usk-bench-$$
WORK=$(mktemp -d)
# The measurements run in subshells ($(...)), so clean up by name: every
# namespace starting with this run's tag, and every process inside it.
cleanup() {
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-" || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

make_namespace() {
    ip netns add "$1"
    ip netns exec "$1" ip link set lo up
}

wait_for_device() { # namespace device
    for _ in $(seq 100); do
        ip netns exec "$1" ip link show "$2" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "device $2 never appeared" >&2
    return 1
}

wait_for_size() { # file bytes
    for _ in $(seq 6000); do
        [[ $(stat -c %s "$1" 2>/dev/null || echo 0) -ge $2 ]] && return 0
        sleep 0.01
    done
    return 1
}

now() { date +%s.%N; }
# bc prints ".5" for 0.5, which JSON does not take: printf gives "0.5".
rate() { printf '%.1f' "$(echo "$1 / 1000000 / ($3 - $2)" | bc -l)"; }

# cpu_rate FILE: MB per CPU-second from /usr/bin/time's "USER SYSTEM" in
# FILE, waiting up to 10 s for the process to exit and write it ("-" if it
# never does).
cpu_rate() {
    for _ in $(seq 200); do
        [[ -s $1 ]] && break
        sleep 0.05
    done
    local used
    used=$(awk 'END { print $1 + $2 }' "$1" 2>/dev/null)
    if [[ -z $used ]] || [[ $(echo "$used <= 0" | bc -l) -eq 1 ]]; then
        echo "-"
    else
        printf '%.1f' "$(echo "$BYTES / 1000000 / $used" | bc -l)"
    fi
}

# usock -> kernel over TAP
usock_to_kernel() {
    local ns=$TAG-a
    make_namespace "$ns"
    ip netns exec "$ns" bash -c "nc -l 5001 > $WORK/a.out" &
    ip netns exec "$ns" bash -c "(sleep 1.5; date +%s.%N > $WORK/a.start; head -c $BYTES /dev/zero) | \
        /usr/bin/time -f '%U %S' -o $WORK/a.cpu.tmp \
        $USOCK nc --link tap:ub0 --addr 198.18.0.2/24 198.18.0.1 5001; mv $WORK/a.cpu.tmp $WORK/a.cpu" &
    wait_for_device "$ns" ub0
    ip netns exec "$ns" ip addr add 198.18.0.1/24 dev ub0
    ip netns exec "$ns" ip link set ub0 up
    wait_for_size "$WORK/a.out" "$BYTES"
    local end
    end=$(now)
    echo "$(rate "$BYTES" "$(cat "$WORK/a.start")" "$end") $(cpu_rate "$WORK/a.cpu")"
}

# kernel -> usock over TAP
kernel_to_usock() {
    local ns=$TAG-b
    make_namespace "$ns"
    ip netns exec "$ns" bash -c "/usr/bin/time -f '%U %S' -o $WORK/b.cpu.tmp \
        $USOCK nc -l -p 5002 --link tap:ub1 --addr 198.18.0.2/24 > $WORK/b.out; \
        mv $WORK/b.cpu.tmp $WORK/b.cpu" &
    wait_for_device "$ns" ub1
    ip netns exec "$ns" ip addr add 198.18.0.1/24 dev ub1
    ip netns exec "$ns" ip link set ub1 up
    sleep 0.5
    local start end
    start=$(now)
    ip netns exec "$ns" bash -c "head -c $BYTES /dev/zero | nc -N 198.18.0.2 5002"
    wait_for_size "$WORK/b.out" "$BYTES"
    end=$(now)
    echo "$(rate "$BYTES" "$start" "$end") $(cpu_rate "$WORK/b.cpu")"
}

# kernel -> kernel over veth
kernel_to_kernel() {
    local sender=$TAG-c receiver=$TAG-d
    make_namespace "$sender"
    make_namespace "$receiver"
    ip link add ub2 netns "$sender" type veth peer name ub3 netns "$receiver"
    ip netns exec "$sender" ip addr add 198.18.1.1/24 dev ub2
    ip netns exec "$receiver" ip addr add 198.18.1.2/24 dev ub3
    ip netns exec "$sender" ip link set ub2 up
    ip netns exec "$receiver" ip link set ub3 up
    ip netns exec "$receiver" bash -c "nc -l 5003 > $WORK/c.out" &
    sleep 0.5
    local start end
    start=$(now)
    ip netns exec "$sender" bash -c "head -c $BYTES /dev/zero | nc -N 198.18.1.2 5003"
    wait_for_size "$WORK/c.out" "$BYTES"
    end=$(now)
    rate "$BYTES" "$start" "$end"
}

read -r u2k u2k_cpu <<<"$(usock_to_kernel)"
read -r k2u k2u_cpu <<<"$(kernel_to_usock)"
k2k=$(kernel_to_kernel)
ratio() { printf '%.3f' "$(echo "$1 / $2" | bc -l)"; }
json_number() { [[ $1 == - ]] && echo null || echo "$1"; }
if [[ $JSON -eq 1 ]]; then
    printf '{"megabytes": %s, "usock_to_kernel_MBps": %s, "kernel_to_usock_MBps": %s, "kernel_to_kernel_MBps": %s, "usock_to_kernel_ratio": %s, "kernel_to_usock_ratio": %s, "usock_to_kernel_MB_per_cpu_second": %s, "kernel_to_usock_MB_per_cpu_second": %s}\n' \
        "$MEGABYTES" "$u2k" "$k2u" "$k2k" "$(ratio "$u2k" "$k2k")" "$(ratio "$k2u" "$k2k")" \
        "$(json_number "$u2k_cpu")" "$(json_number "$k2u_cpu")"
else
    echo "single-flow TCP throughput, $MEGABYTES MB per flow ($(nproc) cores, $(uname -r))"
    printf '%-34s %10s %8s %18s\n' "flow" "MB/s" "ratio" "usock MB/CPU-s"
    printf '%-34s %10s %8s %18s\n' "kernel -> kernel (veth)" "$k2k" "1.000" "-"
    printf '%-34s %10s %8s %18s\n' "usock -> kernel (tap)" "$u2k" "$(ratio "$u2k" "$k2k")" "$u2k_cpu"
    printf '%-34s %10s %8s %18s\n' "kernel -> usock (tap)" "$k2u" "$(ratio "$k2u" "$k2k")" "$k2u_cpu"
fi
