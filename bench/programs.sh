#!/usr/bin/env bash
# programs.sh - unmodified programs on usock (`usock run`) against the same
# programs on the kernel, measured in one run on this machine (issue 8).  A
# benchmark: it prints figures and never fails on them.  A program that
# fails on usock gets a row saying "failed" and why, and the run goes on;
# the script exits nonzero only when the set-up breaks or a kernel baseline
# cannot run.
#
#   1. iperf3 (TCP, one flow, Gbit/s the receiver counted): the kernel's
#      client -> server across a veth pair (the baseline); iperf3 -c on usock
#      -> a kernel iperf3 -s over the TAP; a kernel iperf3 -c -> iperf3 -s on
#      usock.
#   2. redis (SET and GET requests/s, redis-benchmark -c 10): the kernel's
#      redis-benchmark -> redis-server across the veth; the kernel's
#      redis-benchmark -> redis-server on usock; redis-benchmark on usock ->
#      a kernel redis-server.
#   3. nginx + wrk (wrk -t 2 -c 10): requests/s and MB/s of a 1 KiB and a
#      1 MiB file on keep-alive connections, and requests/s of the 1 KiB file
#      on a new connection per request (Connection: close): kernel nginx ->
#      kernel wrk across the veth; nginx on usock -> kernel wrk over the TAP.
#      Both nginx run the same private config (see NGINX_* below).
#
# The kernel column is always kernel -> kernel across the veth; the ratio is
# usock/kernel (> 1: usock better).
#
#   baseline:  $TAG-kc 198.18.2.1/24 ==veth== 198.18.2.2/24 $TAG-ks
#   usock:     $TAG-SECTION: kernel 198.18.0.1/24 --usp0 (TAP)-- usock up 198.18.0.2/24
#              (one namespace and one stack, named after it, per section, so a
#              stack a program broke does not spoil the next section)
#
# Usage: bench/programs.sh [--quick] [--json] [--usock PATH]
#   --quick   shorter runs (iperf3 2 s, redis 10000 requests, wrk 2 s)
#   --json    one JSON document on stdout instead of the table
#   --usock   the usock binary (default build/usock, built when missing);
#             libusock_preload.so must be beside it
# Needs root (namespaces, TAP devices).  Installs iperf3, redis, nginx and wrk
# when missing (apt-get; services kept from starting by policy-rc.d).  Every
# host lives in a network namespace made here, with addresses from
# 198.18.0.0/15, all removed on exit, even on failure.  About a minute (--quick:
# half a minute) on 2 CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
JSON=0
USOCK=./build/usock
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --json) JSON=1 ;;
        --usock) USOCK=$2; shift ;;
        *) echo "usage: bench/programs.sh [--quick] [--json] [--usock PATH]" >&2; exit 2 ;;
    esac
    shift
done

# nginx as it ships: a master process forking its worker (which shares the
# master's listening socket, on usock as on the kernel) and sendfile.  Both
# can be turned off for one run (NGINX_MASTER_PROCESS=off, NGINX_SENDFILE=off
# in the environment); the kernel's nginx runs the same config, so the two
# rows stay comparable.
NGINX_MASTER_PROCESS=${NGINX_MASTER_PROCESS:-on}
NGINX_SENDFILE=${NGINX_SENDFILE:-on}
for setting in NGINX_MASTER_PROCESS NGINX_SENDFILE; do
    [[ ${!setting} == on || ${!setting} == off ]] || { echo "$setting must be on or off" >&2; exit 2; }
done

if [[ $QUICK -eq 1 ]]; then
    IPERF_SECONDS=2
    REDIS_REQUESTS=10000
    WRK_SECONDS=2
else
    IPERF_SECONDS=5
    REDIS_REQUESTS=50000
    WRK_SECONDS=5
fi
REDIS_CLIENTS=10
WRK_THREADS=2
WRK_CONNECTIONS=10
SMALL_FILE=1024
LARGE_FILE=1048576

log() { echo "# $*" >&2; }

# Python snippets run under the system interpreter, as the tests' do.
PYTHON=python3
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3

# ---- set-up ------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || { echo "bench/programs.sh needs root (namespaces, TAP devices)" >&2; exit 1; }

APT_UPDATED=
need() { # command package...
    local command=$1
    shift
    command -v "$command" >/dev/null 2>&1 && return 0
    log "$command is missing; installing $*"
    if [[ -z $APT_UPDATED ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    command -v "$command" >/dev/null 2>&1 || { echo "$command still missing after installing $*" >&2; exit 1; }
}

REMOVE_POLICY=
WORK=$(mktemp -d /tmp/usock-programs.XXXXXX)
# nginx's worker (once master_process is on) runs as nobody: let it in.
chmod 755 "$WORK"
TAG=usk-prog-$$
PIDS=()
# Everything this run started: its processes by pid, then whatever still runs
# in its namespaces (all of it ours), then the namespaces themselves.
cleanup() {
    local status=$? pid ns
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    [[ -z $REMOVE_POLICY ]] || rm -f /usr/sbin/policy-rc.d
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need iperf3 iperf3
need wrk wrk
need ss iproute2
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1 ||
    ! command -v nginx >/dev/null 2>&1; then
    # Installing redis-server or nginx starts its service where there is an
    # init script; policy-rc.d (the Debian way) says no, and goes after (the
    # EXIT trap removes it should the install fail).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        REMOVE_POLICY=1
    fi
    need redis-server redis-server redis-tools
    need redis-benchmark redis-tools
    need nginx nginx
    if [[ -n $REMOVE_POLICY ]]; then
        rm -f /usr/sbin/policy-rc.d
        REMOVE_POLICY=
    fi
fi
NGINX=$(command -v nginx)

if [[ ! -x $USOCK ]] || [[ ! -f $(dirname "$USOCK")/libusock_preload.so ]]; then
    log "building usock and its preload library (build/, RelWithDebInfo)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" --target usock usock_preload >/dev/null
    USOCK=./build/usock
fi
USOCK=$(realpath "$USOCK")
if grep -qa __asan_init "$USOCK"; then
    echo "$USOCK is built with AddressSanitizer: its preload library cannot go into" \
        "uninstrumented programs; build without sanitizers for this benchmark" >&2
    exit 1
fi
export USOCK_RUNDIR=$WORK/run

# The figures come out of the programs' own reports through this.
cat >"$WORK/parse.py" <<'PY'
import json, sys

def fail(why):
    print("error: " + " ".join(str(why).split())[:200])
    sys.exit(0)

kind, path = sys.argv[1], sys.argv[2]
if kind == "iperf3":                      # iperf3 -J: what the receiver got
    try:
        report = json.load(open(path))
    except (OSError, ValueError):
        fail("iperf3 printed no JSON report")
    if report.get("error"):
        fail(report["error"])
    try:
        print("%.3f" % (report["end"]["sum_received"]["bits_per_second"] / 1e9))
    except (KeyError, TypeError):
        fail("iperf3's report has no receiver summary")
elif kind == "redis":                     # redis-benchmark --csv: SET and GET rps
    rates = {}
    for line in open(path):
        fields = [f.strip('"') for f in line.strip().split(",")]
        if len(fields) >= 2 and fields[0] in ("SET", "GET"):
            try:
                rates[fields[0]] = float(fields[1])
            except ValueError:
                pass
    if "SET" not in rates or "GET" not in rates:
        fail("redis-benchmark printed no SET and GET figures")
    print("%.0f %.0f" % (rates["SET"], rates["GET"]))
elif kind == "wrk":                       # the line summary.lua writes
    size, connections, keep_alive = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
    summary = None
    for line in open(path):
        if line.startswith("wrk-summary "):
            summary = dict(f.split("=") for f in line.split()[1:])
    if summary is None:
        fail("wrk printed no summary")
    s = {k: int(v) for k, v in summary.items()}
    errors = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    if s["requests"] == 0:
        fail("wrk completed no request (errors: connect %d, read %d, write %d, status %d, "
             "timeout %d)" % (s["connect"], s["read"], s["write"], s["status"], s["timeout"]))
    if s["bytes"] < s["requests"] * size:
        fail("responses shorter than the %d-byte file (%d bytes for %d requests)"
             % (size, s["bytes"], s["requests"]))
    seconds = s["duration_us"] / 1e6
    # A working server answers each connection many times in the run;
    # fewer than two answers a connection means they sat idle for seconds.
    if keep_alive and s["requests"] < 2 * connections:
        fail("stalled: %d responses in %.1f s over %d keep-alive connections (fewer than two a "
             "connection)" % (s["requests"], seconds, connections))
    note = ""
    if errors:
        note = "errors: connect %d, read %d, write %d, status %d, timeout %d" % (
            s["connect"], s["read"], s["write"], s["status"], s["timeout"])
    print("%.0f %.1f %s" % (s["requests"] / seconds, s["bytes"] / 1e6 / seconds, note))
PY
parse() { "$PYTHON" "$WORK/parse.py" "$@" 2>/dev/null || echo "error: cannot read $(basename "$2")"; }

# wrk prints its figures rounded and in binary units; this prints them exact.
cat >"$WORK/summary.lua" <<'LUA'
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "wrk-summary requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
        e.timeout))
end
LUA

# ---- processes ---------------------------------------------------------------

# start LOG CMD...: runs CMD in the background, output to $WORK/LOG.log, and
# sets LAST_PID (the program's own pid: ip netns exec and usock run exec it).
start() {
    local log=$WORK/$1.log
    shift
    "$@" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ -n $stat ]] && [[ ${stat%% *} != Z ]]
}

# stop PID: SIGTERM, up to 3 s to go, then SIGKILL; then PID is forgotten
# (so the EXIT trap never signals a pid the system gave to another process).
stop() {
    local pid=$1 kept=() p
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 30); do
            alive "$pid" || break
            sleep 0.1
        done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do
        [[ $p == "$pid" ]] || kept+=("$p")
    done
    PIDS=("${kept[@]}")
}

# last_line FILE...: the last line of the files that tells of an error, or
# else their last nonempty line; on one line, short.
last_line() {
    local lines line
    lines=$(cat "$@" 2>/dev/null | tr -d '\r' | tr '\t' ' ' | grep -v '^[[:space:]]*$') || true
    line=$(grep -iE 'error|fail|emerg|refused|denied|cannot|unable' <<<"$lines" | tail -n 1) || true
    [[ -n $line ]] || line=$(tail -n 1 <<<"$lines")
    line=${line:0:200}
    echo "${line:-no output}"
}

# cmd WHO NS PROGRAM ARGS...: sets CMD to run PROGRAM in namespace NS on the
# kernel's sockets (WHO=kernel) or on the stack of NS (WHO=usock, usock run).
cmd() {
    local who=$1 ns=$2
    shift 2
    CMD=(ip netns exec "$ns")
    [[ $who == usock ]] && CMD+=("$USOCK" run --name "$ns" --)
    CMD+=("$@")
}

# listening WHO NS ADDRESS PORT: true when a TCP socket listens on
# ADDRESS:PORT, the kernel's in NS or the stack's of NS.
listening() {
    if [[ $1 == usock ]]; then
        "$USOCK" ss -t -l -n --name "$2" 2>/dev/null | grep -qE "(^| )${3//./\\.}:$4( |$)"
    else
        [[ -n $(ip netns exec "$2" ss -Hltn "src $3 and sport = :$4") ]]
    fi
}

# wait_listening WHO NS ADDRESS PORT PID: up to 10 s for the server PID to
# listen; false at once if it exits.
wait_listening() {
    for _ in $(seq 200); do
        listening "$1" "$2" "$3" "$4" && return 0
        alive "$5" || return 1
        sleep 0.05
    done
    return 1
}

# ---- namespaces ----------------------------------------------------------------

make_namespace() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
}

# The baseline: two namespaces across a veth pair, offloads as Linux ships.
KC=$TAG-kc
KS=$TAG-ks
KERNEL_CLIENT=198.18.2.1
KERNEL_SERVER=198.18.2.2
make_namespace "$KC"
make_namespace "$KS"
ip link add usp1 netns "$KC" type veth peer name usp2 netns "$KS"
ip -n "$KC" addr add "$KERNEL_CLIENT/24" dev usp1
ip -n "$KS" addr add "$KERNEL_SERVER/24" dev usp2
ip -n "$KC" link set usp1 up
ip -n "$KS" link set usp2 up

KERNEL_ON_TAP=198.18.0.1
USOCK_ON_TAP=198.18.0.2
STACK_PID=
STACK_FAILED=
# stack_up NS: makes namespace NS, runs `usock up --name NS` on a TAP usp0 in
# it (198.18.0.2/24, the kernel 198.18.0.1/24).  When the stack does not come
# up, sets STACK_FAILED to why (every usock row of the section says so).
stack_up() {
    local ns=$1
    STACK_FAILED=
    make_namespace "$ns"
    start "$ns-usock-up" ip netns exec "$ns" "$USOCK" up --link tap:usp0 \
        --addr "$USOCK_ON_TAP/24" --name "$ns"
    STACK_PID=$LAST_PID
    for _ in $(seq 100); do
        if [[ -S $USOCK_RUNDIR/$ns.api ]] && "$USOCK" stats --name "$ns" >/dev/null 2>&1; then
            ip -n "$ns" addr add "$KERNEL_ON_TAP/24" dev usp0
            ip -n "$ns" link set usp0 up
            return 0
        fi
        alive "$STACK_PID" || break
        sleep 0.05
    done
    STACK_FAILED="usock up did not come up: $(last_line "$WORK/$ns-usock-up.log")"
    stop "$STACK_PID"
}

# stack_check NS: after a usock row, a stack that died says so in FAILED.
stack_check() {
    if [[ -z $FAILED ]] && ! alive "$STACK_PID"; then
        FAILED="usock up exited: $(last_line "$WORK/$1-usock-up.log")"
    fi
    if [[ -n $FAILED ]] && ! alive "$STACK_PID" && [[ $FAILED != usock\ up* ]]; then
        FAILED="$FAILED (and usock up exited: $(last_line "$WORK/$1-usock-up.log"))"
    fi
    return 0
}

# active_opens NS: the stack's TcpActiveOpens (empty when it cannot say).
active_opens() {
    "$USOCK" stats --name "$1" 2>/dev/null | awk '$1 == "TcpActiveOpens" { print $2 }' || true
}

# over_stack NS BEFORE: a client on usock talks to a kernel server whose
# address is the namespace's own, so were the preload library not in it,
# it would reach the server through the kernel's loopback and its figure
# would be the kernel's.  Sets FAILED unless the stack opened connections
# since BEFORE.
over_stack() {
    local after
    after=$(active_opens "$1")
    if [[ -z $FAILED ]] && { [[ -z $2 ]] || [[ -z $after ]] || [[ $after -le $2 ]]; }; then
        FAILED="the program's connections did not go over the stack (TcpActiveOpens ${2:-?} -> ${after:-?})"
    fi
    return 0
}

# ---- the rows ------------------------------------------------------------------

# record SECTION WORKLOAD UNIT KERNEL USOCK [KERNEL_FAILED] [USOCK_FAILED] [NOTE]
RESULTS=$WORK/results.tsv
: >"$RESULTS"
KERNEL_BROKEN=0
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" "${7:-}" "${8:-}" >>"$RESULTS"
    [[ -z ${6:-} ]] || KERNEL_BROKEN=1
}

# ---- 1: iperf3 -------------------------------------------------------------

# iperf3_flow LABEL CLIENT_WHO CLIENT_NS SERVER_WHO SERVER_NS ADDRESS PORT:
# one iperf3 test of IPERF_SECONDS; sets FIGURE (Gbit/s the receiver
# counted), or FAILED (why).
iperf3_flow() {
    local label=$1 client_who=$2 client_ns=$3 server_who=$4 server_ns=$5 address=$6 port=$7
    local server parsed status=0 opens=""
    FIGURE="" FAILED=""
    cmd "$server_who" "$server_ns" iperf3 -s -B "$address" -p "$port" -1
    start "$label-server" "${CMD[@]}"
    server=$LAST_PID
    if ! wait_listening "$server_who" "$server_ns" "$address" "$port" "$server"; then
        FAILED="iperf3 -s did not listen: $(last_line "$WORK/$label-server.log")"
        stop "$server"
        return 0
    fi
    [[ $client_who == usock ]] && opens=$(active_opens "$client_ns")
    cmd "$client_who" "$client_ns" iperf3 -c "$address" -p "$port" -t "$IPERF_SECONDS" -J
    timeout $((IPERF_SECONDS + 30)) "${CMD[@]}" >"$WORK/$label-client.json" \
        2>"$WORK/$label-client.err" || status=$?
    parsed=$(parse iperf3 "$WORK/$label-client.json")
    if [[ $parsed == error:* ]]; then
        FAILED="${parsed#error: } (client exit $status; $(last_line "$WORK/$label-client.err" "$WORK/$label-server.log"))"
        [[ $status -eq 124 ]] && FAILED="timed out after $((IPERF_SECONDS + 30)) s; ${parsed#error: }"
    else
        FIGURE=$parsed
    fi
    if [[ $client_who == usock ]]; then
        over_stack "$client_ns" "$opens"
        [[ -z $FAILED ]] || FIGURE=""
    fi
    stop "$server"
}

log "1. iperf3, $IPERF_SECONDS s a flow: kernel over veth, then usock as client and as server over TAP"
iperf3_flow iperf3-kernel kernel "$KC" kernel "$KS" "$KERNEL_SERVER" 5201
IPERF_KERNEL=$FIGURE IPERF_KERNEL_FAILED=$FAILED
NS=$TAG-iperf3
stack_up "$NS"
for role in client server; do
    if [[ -n $STACK_FAILED ]]; then
        FIGURE="" FAILED=$STACK_FAILED
    elif [[ $role == client ]]; then
        iperf3_flow iperf3-usock-client usock "$NS" kernel "$NS" "$KERNEL_ON_TAP" 5202
        stack_check "$NS"
    else
        iperf3_flow iperf3-usock-server kernel "$NS" usock "$NS" "$USOCK_ON_TAP" 5203
        stack_check "$NS"
    fi
    if [[ $role == client ]]; then
        name="iperf3: usock client -> kernel server"
    else
        name="iperf3: kernel client -> usock server"
    fi
    record iperf3 "$name" Gbit/s "$IPERF_KERNEL" "$FIGURE" "$IPERF_KERNEL_FAILED" "$FAILED"
done
[[ -z $STACK_FAILED ]] && stop "$STACK_PID"

# ---- 2: redis ----------------------------------------------------------------

# redis_run LABEL CLIENT_WHO CLIENT_NS SERVER_WHO SERVER_NS ADDRESS PORT:
# redis-benchmark SET and GET against a fresh redis-server; sets SET_RATE
# and GET_RATE (requests/s), or FAILED (why).
redis_run() {
    local label=$1 client_who=$2 client_ns=$3 server_who=$4 server_ns=$5 address=$6 port=$7
    local server parsed status=0 limit=60 opens=""
    SET_RATE="" GET_RATE="" FAILED=""
    cmd "$server_who" "$server_ns" redis-server --bind "$address" --port "$port" --save "" \
        --appendonly no --protected-mode no --dir "$WORK"
    start "$label-server" "${CMD[@]}"
    server=$LAST_PID
    if ! wait_listening "$server_who" "$server_ns" "$address" "$port" "$server"; then
        FAILED="redis-server did not listen: $(last_line "$WORK/$label-server.log")"
        stop "$server"
        return 0
    fi
    [[ $client_who == usock ]] && opens=$(active_opens "$client_ns")
    cmd "$client_who" "$client_ns" redis-benchmark -h "$address" -p "$port" -n "$REDIS_REQUESTS" \
        -c "$REDIS_CLIENTS" -t set,get --csv
    timeout "$limit" "${CMD[@]}" >"$WORK/$label-client.csv" 2>"$WORK/$label-client.err" || status=$?
    parsed=$(parse redis "$WORK/$label-client.csv")
    if [[ $parsed == error:* ]]; then
        FAILED="${parsed#error: } (redis-benchmark exit $status; $(last_line "$WORK/$label-client.err" "$WORK/$label-client.csv"))"
        [[ $status -eq 124 ]] && FAILED="redis-benchmark timed out after $limit s ($(last_line "$WORK/$label-client.csv"))"
        alive "$server" || FAILED="$FAILED; redis-server exited: $(last_line "$WORK/$label-server.log")"
    else
        read -r SET_RATE GET_RATE <<<"$parsed"
    fi
    if [[ $client_who == usock ]]; then
        over_stack "$client_ns" "$opens"
        [[ -z $FAILED ]] || SET_RATE="" GET_RATE=""
    fi
    stop "$server"
}

log "2. redis-benchmark SET and GET, $REDIS_REQUESTS requests each, $REDIS_CLIENTS clients"
redis_run redis-kernel kernel "$KC" kernel "$KS" "$KERNEL_SERVER" 6379
REDIS_SET=$SET_RATE REDIS_GET=$GET_RATE REDIS_KERNEL_FAILED=$FAILED
NS=$TAG-redis
stack_up "$NS"
for role in server client; do
    if [[ -n $STACK_FAILED ]]; then
        SET_RATE="" GET_RATE="" FAILED=$STACK_FAILED
    elif [[ $role == server ]]; then
        redis_run redis-usock-server kernel "$NS" usock "$NS" "$USOCK_ON_TAP" 6380
        stack_check "$NS"
    else
        redis_run redis-usock-client usock "$NS" kernel "$NS" "$KERNEL_ON_TAP" 6381
        stack_check "$NS"
    fi
    if [[ $role == server ]]; then
        name="kernel redis-benchmark -> usock redis-server"
    else
        name="usock redis-benchmark -> kernel redis-server"
    fi
    record redis "redis SET: $name" requests/s "$REDIS_SET" "$SET_RATE" "$REDIS_KERNEL_FAILED" "$FAILED"
    record redis "redis GET: $name" requests/s "$REDIS_GET" "$GET_RATE" "$REDIS_KERNEL_FAILED" "$FAILED"
done
[[ -z $STACK_FAILED ]] && stop "$STACK_PID"

# ---- 3: nginx + wrk --------------------------------------------------------

mkdir -p "$WORK/www"
head -c "$SMALL_FILE" /dev/urandom >"$WORK/www/small"
head -c "$LARGE_FILE" /dev/urandom >"$WORK/www/large"
chmod 755 "$WORK/www"
chmod 644 "$WORK/www/small" "$WORK/www/large"

# nginx_config DIR ADDRESS PORT: a private nginx in DIR (config, pid, logs,
# temporary files), serving $WORK/www on ADDRESS:PORT.
nginx_config() {
    local dir=$1 address=$2 port=$3
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
# written by bench/programs.sh
daemon off;
master_process $NGINX_MASTER_PROCESS;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    default_type application/octet-stream;
    sendfile $NGINX_SENDFILE;
    server {
        listen $address:$port;
        root $WORK/www;
    }
}
CONF
}

# What wrk asks for: keep-alive connections (as wrk does by default) for
# the 1 KiB and the 1 MiB file, then the 1 KiB file on a new connection per
# request (Connection: close), which also measures connection set-up.
NGINX_CASES=(small large close)
declare -A CASE_FILE=([small]=small [large]=large [close]=small)
declare -A CASE_SIZE=([small]=$SMALL_FILE [large]=$LARGE_FILE [close]=$SMALL_FILE)
declare -A CASE_NAME=([small]="nginx 1 KiB, keep-alive" [large]="nginx 1 MiB, keep-alive"
    [close]="nginx 1 KiB, connection per request")
# RESULT[LABEL/CASE/rps|mbps|failed|note]
declare -A RESULT

# wrk_run LABEL CASE NS ADDRESS PORT SERVER_PID: kernel wrk in NS for
# WRK_SECONDS against nginx (pid SERVER_PID, logs under LABEL); fills
# RESULT[LABEL/CASE/...].  The note keeps socket errors wrk counted in a run
# that still moved data.
wrk_run() {
    local label=$1 case=$2 ns=$3 address=$4 port=$5 server=$6
    local parsed status=0 limit=$((WRK_SECONDS + 30)) rps="" mbps="" failed="" note=""
    local out=$WORK/$label-$case.wrk keep_alive=1 header=()
    if [[ $case == close ]]; then
        keep_alive=0
        header=(-H "Connection: close")
    fi
    timeout "$limit" ip netns exec "$ns" wrk -t "$WRK_THREADS" -c "$WRK_CONNECTIONS" \
        -d "${WRK_SECONDS}s" --timeout 5s "${header[@]}" -s "$WORK/summary.lua" \
        "http://$address:$port/${CASE_FILE[$case]}" >"$out" 2>&1 || status=$?
    parsed=$(parse wrk "$out" "${CASE_SIZE[$case]}" "$WRK_CONNECTIONS" "$keep_alive")
    if [[ $parsed == error:* ]]; then
        failed=${parsed#error: }
        [[ $status -eq 0 ]] || failed="$failed (wrk exit $status)"
        [[ $status -eq 124 ]] && failed="wrk timed out after $limit s"
    else
        read -r rps mbps note <<<"$parsed"
    fi
    if ! alive "$server"; then
        failed="nginx exited: $(last_line "$WORK/$label-nginx.log" "$WORK/$label/error.log")${failed:+; $failed}"
        rps="" mbps=""
    fi
    RESULT[$label/$case/rps]=$rps
    RESULT[$label/$case/mbps]=$mbps
    RESULT[$label/$case/failed]=$failed
    RESULT[$label/$case/note]=$note
}

# nginx_serve LABEL WHO NS ADDRESS CLIENT_NS: nginx in NS (on the kernel or
# on usock) on ADDRESS:8080, and kernel wrk from CLIENT_NS for each case.
nginx_serve() {
    local label=$1 who=$2 ns=$3 address=$4 client_ns=$5 dir=$WORK/$1 server case why=""
    nginx_config "$dir" "$address" 8080
    cmd "$who" "$ns" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    start "$label-nginx" "${CMD[@]}"
    server=$LAST_PID
    if ! wait_listening "$who" "$ns" "$address" 8080 "$server"; then
        why="nginx did not listen: $(last_line "$WORK/$label-nginx.log" "$dir/error.log")"
    fi
    for case in "${NGINX_CASES[@]}"; do
        if [[ -z $why ]] && ! alive "$server"; then
            why="not run: nginx exited: $(last_line "$WORK/$label-nginx.log" "$dir/error.log")"
        fi
        if [[ -n $why ]]; then
            RESULT[$label/$case/failed]=$why
            continue
        fi
        wrk_run "$label" "$case" "$client_ns" "$address" 8080 "$server"
    done
    stop "$server"
}

log "3. nginx (master_process $NGINX_MASTER_PROCESS, sendfile $NGINX_SENDFILE) and wrk" \
    "-t $WRK_THREADS -c $WRK_CONNECTIONS -d ${WRK_SECONDS}s: 1 KiB and 1 MiB files, keep-alive;" \
    "1 KiB a connection per request"
nginx_serve nginx-kernel kernel "$KS" "$KERNEL_SERVER" "$KC"
NS=$TAG-nginx
stack_up "$NS"
if [[ -n $STACK_FAILED ]]; then
    for case in "${NGINX_CASES[@]}"; do
        RESULT[nginx-usock/$case/failed]=$STACK_FAILED
    done
else
    nginx_serve nginx-usock usock "$NS" "$USOCK_ON_TAP" "$NS"
    for case in "${NGINX_CASES[@]}"; do
        FAILED=${RESULT[nginx-usock/$case/failed]:-}
        stack_check "$NS"
        RESULT[nginx-usock/$case/failed]=$FAILED
    done
    stop "$STACK_PID"
fi
for case in "${NGINX_CASES[@]}"; do
    for figure in rps mbps; do
        [[ $case == close && $figure == mbps ]] && continue
        unit=requests/s
        [[ $figure == mbps ]] && unit=MB/s
        record nginx "${CASE_NAME[$case]}: kernel wrk -> usock nginx" "$unit" \
            "${RESULT[nginx-kernel/$case/$figure]:-}" "${RESULT[nginx-usock/$case/$figure]:-}" \
            "${RESULT[nginx-kernel/$case/failed]:-}" "${RESULT[nginx-usock/$case/failed]:-}" \
            "${RESULT[nginx-usock/$case/note]:-}"
    done
done

# ---- the report --------------------------------------------------------------
"$PYTHON" - "$RESULTS" "$JSON" "$QUICK" "$IPERF_SECONDS" "$REDIS_REQUESTS" "$REDIS_CLIENTS" \
    "$WRK_SECONDS" "$WRK_THREADS" "$WRK_CONNECTIONS" "$NGINX_MASTER_PROCESS" "$NGINX_SENDFILE" \
    "$(iperf3 --version 2>/dev/null | head -n 1)" "$(redis-server --version 2>/dev/null)" \
    "$("$NGINX" -v 2>&1)" "$(wrk -v 2>&1 | head -n 1)" <<'PY'
import json, os, platform, sys

(results, as_json, quick, iperf_seconds, redis_requests, redis_clients, wrk_seconds,
 wrk_threads, wrk_connections, master_process, sendfile) = sys.argv[1:12]
versions = dict(zip(("iperf3", "redis", "nginx", "wrk"), (v.strip() for v in sys.argv[12:16])))

def number(text):
    return float(text) if text else None

figures = []
for line in open(results):
    section, workload, unit, kernel, usock, kernel_failed, usock_failed, note = \
        line.rstrip("\n").split("\t")
    kernel, usock = number(kernel), number(usock)
    ratio = usock / kernel if usock is not None and kernel else None
    figures.append({"section": section, "workload": workload, "unit": unit,
                    "kernel": kernel, "usock": usock, "ratio": ratio, "ratio_is": "usock/kernel",
                    "kernel_failed": kernel_failed or None, "usock_failed": usock_failed or None,
                    "note": note or None})

def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"

machine = {"cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release()}
settings = {
    "iperf3_seconds": int(iperf_seconds), "redis_requests": int(redis_requests),
    "redis_clients": int(redis_clients), "wrk_seconds": int(wrk_seconds),
    "wrk_threads": int(wrk_threads), "wrk_connections": int(wrk_connections),
    "nginx_master_process": master_process, "nginx_sendfile": sendfile,
    "small_file_bytes": 1024, "large_file_bytes": 1048576,
}
if as_json == "1":
    print(json.dumps({"machine": machine, "quick": quick == "1", "settings": settings,
                      "versions": versions,
                      "kernel_is": "the same programs, kernel to kernel across a veth pair",
                      "figures": figures}, indent=1))
    sys.exit(0)

def fmt(value, failed):
    if failed:
        return "failed"
    if value is None:
        return "-"
    return "%.2f" % value if value < 100 else "%.0f" % value

print("unmodified programs on usock (usock run) against the kernel, one run (%s; %d CPUs; Linux %s)%s"
      % (machine["cpu"], machine["cpus"], machine["kernel"], " [--quick]" if quick == "1" else ""))
print("usock PROGRAM: PROGRAM run on usock (usock run) over a TAP; kernel column: the same "
      "programs kernel -> kernel across a veth pair")
print("ratio usock/kernel (> 1: usock better)")
print("iperf3 %s s a flow; redis-benchmark -n %s -c %s -t set,get; wrk -t %s -c %s -d %ss;"
      " nginx master_process %s, sendfile %s\n"
      % (iperf_seconds, redis_requests, redis_clients, wrk_threads, wrk_connections, wrk_seconds,
         master_process, sendfile))
print("%-64s %10s %10s %8s  %s" % ("workload", "kernel", "usock", "ratio", "unit"))
for f in figures:
    print("%-64s %10s %10s %8s  %s" % (
        f["workload"], fmt(f["kernel"], f["kernel_failed"]), fmt(f["usock"], f["usock_failed"]),
        "-" if f["ratio"] is None else "%.2f" % f["ratio"], f["unit"]))
    if f["kernel_failed"]:
        print("    kernel failed: " + f["kernel_failed"])
    if f["usock_failed"]:
        print("    usock failed: " + f["usock_failed"])
    if f["note"]:
        print("    usock note: " + f["note"])
PY
if [[ $KERNEL_BROKEN -eq 1 ]]; then
    echo "bench/programs.sh: a kernel baseline could not run (see its row)" >&2
    exit 1
fi
