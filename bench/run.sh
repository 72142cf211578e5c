#!/usr/bin/env bash
# run.sh - every benchmark of usock against the Linux kernel, measured in one
# run on this machine, printed as one table (or, with --json, one JSON
# document).  Benchmarks print figures and never fail on them; this script
# exits nonzero only when a transfer broke or a tool could not run.
#
#   1. single-flow TCP throughput over TAP, usock -> kernel and kernel ->
#      usock, beside kernel -> kernel over a veth pair (bench/tcp_throughput.sh;
#      the veth keeps the offloads Linux ships with)
#   2. single-flow throughput between two usock stacks on the in-memory wire
#      (one core) beside kernel loopback in a namespace (bench_stack_bench)
#   3. connection rate (connect, 1-byte request, 1-byte reply, close), one at
#      a time and 100 in flight, in memory beside kernel loopback
#   4. 1-byte request/response latency in memory beside kernel loopback
#      (bench_stack_bench), and over TAP beside veth (bench_tcp_rr: a kernel
#      client against usock's tcp-echo service on a TAP, run with
#      --busy-poll 50, and against a kernel echo server across a veth pair)
#   5. memory per idle established connection (bench_stack_bench), and the
#      most concurrent established connections one process holds, with its
#      RSS (bench_connections_max; no kernel figure: its socket memory is in
#      no process's RSS)
#   6. CPU cost: bytes moved per CPU-second of the usock process (TAP flows,
#      and the in-memory run), where the kernel figure is not comparable
#   7. unmodified programs on usock (`usock run`) beside the same programs
#      kernel -> kernel across a veth pair: iperf3 throughput, redis-benchmark
#      SET and GET requests/s, nginx served to wrk (bench/programs.sh; a
#      program that fails on usock gets a row saying so, and why)
#   and throughput against write size (64 B .. 256 KiB) in memory beside
#   kernel loopback, the data of scripts/performance_chart.py.
#
# Usage: bench/run.sh [--quick] [--json] [--save FILE]
#   --quick   a run of about two minutes instead of ten
#   --json    one JSON document on stdout instead of the table (the input of
#             scripts/performance_chart.py, which draws the write-size chart)
#   --save    also write that JSON document to FILE (with the table printed)
# Needs root (namespaces, TAP devices).  Every host lives in a network
# namespace made here, with addresses from 198.18.0.0/15, all removed on
# exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
JSON=0
SAVE=
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --json) JSON=1 ;;
        --save) SAVE=$2; shift ;;
        *) echo "usage: bench/run.sh [--quick] [--json] [--save FILE]" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "# $*" >&2; }

# ---- set-up ------------------------------------------------------------------
APT_UPDATED=
need() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    if [[ -z $APT_UPDATED ]]; then
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need cmake cmake
need nc netcat-openbsd
need bc bc
need /usr/bin/time time
need python3 python3
log "building (build/, RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target usock bench_stack_bench bench_tcp_rr \
    bench_connections_max >/dev/null
USOCK=$(realpath build/usock)
RR=$(realpath build/bench_tcp_rr)

if [[ $QUICK -eq 1 ]]; then
    TAP_MEGABYTES=100
    STACK_OPTIONS=(--quick)
    ROUND_TRIPS=5000
    CONNECTIONS_MAX=100000
    SWEEP_MEGABYTES=50
else
    TAP_MEGABYTES=500
    STACK_OPTIONS=()
    ROUND_TRIPS=50000
    CONNECTIONS_MAX=1000000
    SWEEP_MEGABYTES=300
fi
WRITE_SIZES=(64 256 1024 4096 16384 65536 262144)

WORK=$(mktemp -d)
TAG=usk-run-$$
cleanup() {
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-" || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- 1: TAP throughput -------------------------------------------------------
log "1. TCP throughput over TAP and veth, $TAP_MEGABYTES MB per flow"
bash bench/tcp_throughput.sh "$USOCK" "$TAP_MEGABYTES" --json >"$WORK/tap.json"

# ---- 2-5: in memory ----------------------------------------------------------
log "2-5. in memory: throughput, connection rate, latency, memory (bench_stack_bench)"
./build/bench_stack_bench "${STACK_OPTIONS[@]}" --json >"$WORK/stack.json"

log "5. the most concurrent established connections: $CONNECTIONS_MAX"
./build/bench_connections_max --connections "$CONNECTIONS_MAX" --json >"$WORK/max.json" || true

# ---- 4: latency over TAP and veth --------------------------------------------
log "4. 1-byte round trips over TAP (usock tcp-echo) and veth (kernel echo), $ROUND_TRIPS each"
ns=$TAG-rr
ip netns add "$ns"
ip -n "$ns" link set lo up
ip netns exec "$ns" "$USOCK" up --link tap:urr0 --addr 198.18.0.2/24 --name "$TAG" \
    --busy-poll 50 --serve tcp-echo:7 >"$WORK/rr-usock.log" 2>&1 &
for _ in $(seq 100); do ip -n "$ns" link show urr0 >/dev/null 2>&1 && break; sleep 0.05; done
ip -n "$ns" addr add 198.18.0.1/24 dev urr0
ip -n "$ns" link set urr0 up
sleep 0.5
ip netns exec "$ns" "$RR" client 198.18.0.2 7 "$ROUND_TRIPS" --json >"$WORK/rr-tap.json"
client=$TAG-rrc
server=$TAG-rrs
ip netns add "$client"
ip netns add "$server"
ip link add urr1 netns "$client" type veth peer name urr2 netns "$server"
ip -n "$client" addr add 198.18.2.1/24 dev urr1
ip -n "$server" addr add 198.18.2.2/24 dev urr2
ip -n "$client" link set urr1 up
ip -n "$server" link set urr2 up
ip -n "$server" link set lo up
ip netns exec "$server" "$RR" server 7007 &
sleep 0.5
ip netns exec "$client" "$RR" client 198.18.2.2 7007 "$ROUND_TRIPS" --json >"$WORK/rr-veth.json"

# ---- the write-size sweep ----------------------------------------------------
log "throughput against write size, in memory and kernel loopback, $SWEEP_MEGABYTES MB each"
for size in "${WRITE_SIZES[@]}"; do
    megabytes=$SWEEP_MEGABYTES
    # Tiny writes cost a call each: fewer bytes keep the run short.
    if [[ $size -lt 1024 ]]; then megabytes=$((SWEEP_MEGABYTES / 10)); fi
    ./build/bench_stack_bench --throughput-only --megabytes "$megabytes" --write-size "$size" \
        --json >"$WORK/sweep-$size.json"
done

# ---- 7: unmodified programs ---------------------------------------------------
log "7. iperf3, redis and nginx + wrk on usock (usock run) and on the kernel (bench/programs.sh)"
PROGRAMS_OPTIONS=(--usock "$USOCK" --json)
[[ $QUICK -eq 1 ]] && PROGRAMS_OPTIONS+=(--quick)
PROGRAMS_STATUS=0
bash bench/programs.sh "${PROGRAMS_OPTIONS[@]}" >"$WORK/programs.json" || PROGRAMS_STATUS=$?

# ---- the report --------------------------------------------------------------
python3 - "$WORK" "$JSON" "$QUICK" "${WRITE_SIZES[*]}" "$SAVE" <<'PY'
import json, os, platform, sys

work, as_json, quick, sizes = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4].split()
save = sys.argv[5]
load = lambda name: json.load(open(os.path.join(work, name)))
tap, stack, rr_tap, rr_veth = load("tap.json"), load("stack.json"), load("rr-tap.json"), load("rr-veth.json")
try:
    biggest = load("max.json")
except (OSError, ValueError):
    biggest = None
try:
    programs = load("programs.json")
except (OSError, ValueError):
    programs = None
by_key = {w["key"]: w for w in stack["workloads"]}

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"

rows = []  # (section, workload, unit, usock, kernel, ratio, ratio_is)
def ratio(usock, kernel, lower_is_better=False):
    if usock is None or kernel is None or usock <= 0 or kernel <= 0:
        return None
    return kernel / usock if lower_is_better else usock / kernel

rows.append(("1", "TCP throughput usock -> kernel over TAP (kernel: veth)", "MB/s",
             tap["usock_to_kernel_MBps"], tap["kernel_to_kernel_MBps"],
             ratio(tap["usock_to_kernel_MBps"], tap["kernel_to_kernel_MBps"]), "usock/kernel"))
rows.append(("1", "TCP throughput kernel -> usock over TAP (kernel: veth)", "MB/s",
             tap["kernel_to_usock_MBps"], tap["kernel_to_kernel_MBps"],
             ratio(tap["kernel_to_usock_MBps"], tap["kernel_to_kernel_MBps"]), "usock/kernel"))
def stack_row(section, key, name):
    w = by_key[key]
    lower = w["ratio_is"] == "kernel/usock"
    rows.append((section, name, w["unit"], w["usock"], w["kernel"],
                 ratio(w["usock"], w["kernel"], lower), w["ratio_is"]))
stack_row("2", "throughput", "TCP throughput in memory, one core (kernel: loopback)")
stack_row("3", "connections_sequential", "connections, one at a time, in memory (kernel: loopback)")
stack_row("3", "connections_in_flight", "connections, 100 in flight, in memory (kernel: loopback)")
stack_row("4", "round_trip_mean", "1-byte round trip, mean, in memory (kernel: loopback)")
stack_row("4", "round_trip_p99", "1-byte round trip, p99, in memory (kernel: loopback)")
rows.append(("4", "1-byte round trip, mean, over TAP (kernel: veth)", "us", rr_tap["mean_us"],
             rr_veth["mean_us"], ratio(rr_tap["mean_us"], rr_veth["mean_us"], True), "kernel/usock"))
rows.append(("4", "1-byte round trip, p99, over TAP (kernel: veth)", "us", rr_tap["p99_us"],
             rr_veth["p99_us"], ratio(rr_tap["p99_us"], rr_veth["p99_us"], True), "kernel/usock"))
stack_row("5", "memory_per_connection", "memory per idle established connection")
if biggest:
    rows.append(("5", "concurrent established connections held (both ends in one process)",
                 "connections", biggest["connections_established"], None, None, "-"))
    rows.append(("5", "  ... process RSS with them", "MiB", biggest["rss_bytes"] / 1048576,
                 None, None, "-"))
rows.append(("6", "usock CPU cost, usock -> kernel over TAP", "MB/CPU-s",
             tap.get("usock_to_kernel_MB_per_cpu_second"), None, None, "-"))
rows.append(("6", "usock CPU cost, kernel -> usock over TAP", "MB/CPU-s",
             tap.get("kernel_to_usock_MB_per_cpu_second"), None, None, "-"))
stack_row("6", "bytes_per_cpu_second", "usock CPU cost, in memory (both stacks)")
failed = {}  # row index -> why the program failed on usock
for f in (programs or {}).get("figures", []):
    if f["usock_failed"]:
        failed[len(rows)] = f["usock_failed"]
    rows.append(("7", f["workload"], f["unit"], f["usock"], f["kernel"], f["ratio"], f["ratio_is"]))

sweep = []
for size in sizes:
    w = {x["key"]: x for x in load("sweep-%s.json" % size)["workloads"]}["throughput"]
    sweep.append({"write_size": int(size), "usock_MBps": w["usock"], "kernel_MBps": w["kernel"]})

machine = {
    "cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
}
document = json.dumps({
    "machine": machine, "quick": quick,
    "ratio_meaning": "> 1 means usock is better: usock/kernel for rates, kernel/usock for times and memory",
    "figures": [dict(zip(("section", "workload", "unit", "usock", "kernel", "ratio", "ratio_is"), r),
                     **({"usock_failed": failed[i]} if i in failed else {}))
                for i, r in enumerate(rows)],
    "write_size_sweep": sweep,
    "details": {"tap": tap, "stack": stack, "connections_max": biggest,
                "round_trip_tap": rr_tap, "round_trip_veth": rr_veth, "programs": programs},
}, indent=1)
if save:
    with open(save, "w") as out:
        out.write(document + "\n")
if as_json:
    print(document)
    sys.exit(0)

fmt = lambda v: "-" if v is None else ("%.2f" % v if v < 100 else "%.0f" % v)
print("usock against the Linux kernel, measured in one run (%s; %d CPUs; Linux %s)%s" %
      (machine["cpu"], machine["cpus"], machine["kernel"], " [--quick]" if quick else ""))
print("ratio > 1 means usock is better: usock/kernel for rates, kernel/usock for times and memory\n")
print("%-2s %-68s %10s %10s %8s  %s" % ("#", "workload", "usock", "kernel", "ratio", "unit"))
for i, (section, name, unit, usock, kernel, r, _) in enumerate(rows):
    print("%-2s %-68s %10s %10s %8s  %s" % (section, name, "failed" if i in failed else fmt(usock),
                                            fmt(kernel), fmt(r), unit))
print("\nthroughput against write size, in memory (kernel: loopback), MB/s")
print("%10s %10s %10s %8s" % ("write", "usock", "kernel", "ratio"))
for s in sweep:
    print("%10d %10.1f %10.1f %8s" % (s["write_size"], s["usock_MBps"], s["kernel_MBps"] or 0,
                                      fmt(ratio(s["usock_MBps"], s["kernel_MBps"]))))
print("\nnotes from bench_stack_bench:")
for note in stack["notes"]:
    print(" - " + note)
if biggest and biggest.get("stopped_by"):
    print(" - bench_connections_max stopped by: " + biggest["stopped_by"])
if programs:
    print("\nsection 7: usock PROGRAM is PROGRAM run on usock (usock run) over a TAP; the kernel"
          " column runs the same programs kernel -> kernel across a veth pair")
if programs is None:
    print("\nno figures from bench/programs.sh (section 7): see its messages above")
elif failed:
    print("\nfailed on usock (section 7):")
    for name, why in dict.fromkeys((rows[i][1], failed[i]) for i in sorted(failed)):
        print(" - %s: %s" % (name, why))
PY
if [[ $PROGRAMS_STATUS -ne 0 ]]; then
    log "bench/programs.sh exited $PROGRAMS_STATUS: its set-up or a kernel baseline failed"
    exit "$PROGRAMS_STATUS"
fi
