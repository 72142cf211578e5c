#!/usr/bin/env bash
# tcp_impaired.sh - single-flow TCP goodput across a long, lossy path: 20 ms
# of delay and 1% loss each way, made by usock's own impairment (--impair),
# usock against the kernel, measured in one run on this machine (a
# benchmark: it prints figures and never fails on them).
#
#   usock -> kernel   over a TAP: `usock nc --impair` sends, kernel `nc -l` receives
#   kernel -> usock   over a TAP: kernel `nc` sends, `usock nc -l --impair` receives
#   kernel -> kernel  kernel `nc` sends to kernel `nc -l` in another namespace,
#                     through `usock relay --impair` between two veth pairs:
#     A: a0 198.18.1.1/24 --veth-- a1 [R: usock relay packet:a1 packet:b1] b1 --veth-- b0 198.18.1.2/24 :B
#
# An impairment acts on each direction by itself (src/link/impair.c: one
# random stream and one delay queue per direction), so the one spec
# delay=20ms,loss=1% gives all three paths a 40 ms round trip and 1% loss
# each way.  The relay impairs only its first link, so a frame is impaired
# once whichever way it crosses; in the usock flows the impairment sits
# between usock's stack and its TAP.
#
# Each flow moves the same MEGABYTES of random bytes; the goodput is the
# bytes over the time from starting the sender to the receiver's exit (which
# follows the last byte and the sender's FIN), and what arrived must have the
# file's SHA-256.  The ratios are the usock flows' goodput over kernel ->
# kernel's.  Loss makes the figures vary from run to run more than
# tcp_throughput.sh's do.
#
# The kernel's congestion control is CUBIC on every route of every
# namespace made here (`ip route ... congctl cubic`), as usock's default is,
# whatever the host's default: at 1% random loss the algorithm decides the
# goodput (BBR, which does not take loss for congestion, moved sixty times
# more than CUBIC here), so comparing usock's CUBIC with a kernel running BBR
# would measure the algorithms, not the stacks.  --kernel-cc=NAME picks
# another the kernel has (bbr, reno); --kernel-cc=default leaves the
# namespaces' default (which a namespace takes from the host, and which it
# may only change to one of net.ipv4.tcp_allowed_congestion_control: a
# route may name any).
#
# Every host lives in a network namespace made here (198.18.0.0/15 only);
# every process started and every namespace made is removed on exit, even
# on failure or Ctrl-C.  Every wait is a poll with a deadline.
#
# Usage: bench/tcp_impaired.sh [USOCK_BINARY] [MEGABYTES, default 50] [--json]
#                              [--kernel-cc=NAME, default cubic]
# Needs root.  Prints a table; with --json prints JSON instead.  Exits 1 only
# when a transfer did not complete or arrived corrupted.  At 50 MB with
# CUBIC each flow takes about two minutes (0.4 MB/s).
set -euo pipefail
cd "$(dirname "$0")/.."

JSON=0
KERNEL_CC=cubic
ARGS=()
for argument in "$@"; do
    case $argument in
        --json) JSON=1 ;;
        --kernel-cc=*) KERNEL_CC=${argument#--kernel-cc=} ;;
        *) ARGS+=("$argument") ;;
    esac
done
USOCK=${ARGS[0]:-./build/usock}
MEGABYTES=${ARGS[1]:-50}
if ! [[ $MEGABYTES =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bench/tcp_impaired.sh [USOCK_BINARY] [MEGABYTES] [--json] [--kernel-cc=NAME]" >&2
    exit 2
fi
BYTES=$((MEGABYTES * 1000000))
if [[ $KERNEL_CC == default ]]; then
    CONGCTL=()
    KERNEL_CC="$(cat /proc/sys/net/ipv4/tcp_congestion_control) (default)"
else
    if ! grep -qw -- "$KERNEL_CC" /proc/sys/net/ipv4/tcp_available_congestion_control; then
        modprobe "tcp_$KERNEL_CC" 2>/dev/null || true
        grep -qw -- "$KERNEL_CC" /proc/sys/net/ipv4/tcp_available_congestion_control || {
            echo "the kernel has no congestion control '$KERNEL_CC' ($(cat /proc/sys/net/ipv4/tcp_available_congestion_control))" >&2
            exit 2
        }
    fi
    CONGCTL=(congctl "$KERNEL_CC")
fi
IMPAIRMENT=delay=20ms,loss=1%
# Seconds a flow may take before it counts as not completed: generous (a
# stall, not slowness, is what it catches): 0.05 MB/s plus a minute.
DEADLINE=$((60 + MEGABYTES * 20))

if [[ ! -x $USOCK ]]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" --target usock >/dev/null
fi
USOCK=$(realpath "$USOCK")
nc -h 2>&1 | grep -q -- '-N' || { apt-get update -qq && apt-get install -y -qq netcat-openbsd >/dev/null; }
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }

TAG=usk-imp-$$
WORK=$(mktemp -d /tmp/usock-bench-impaired.XXXXXX)
PIDS=()
NAMESPACES=()

# alive PID: true while PID runs (an exited child not yet waited for is a
# zombie, which kill -0 would still find).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ -n $stat && ${stat%% *} != Z ]]
}

# Everything started or made here goes, whether the run passed or not: the
# processes by pid (SIGTERM, then SIGKILL after 3 s), then whatever still
# runs in our namespaces, then the namespaces, then the scratch directory.
cleanup() {
    local status=$? pid ns
    trap - EXIT INT TERM
    set +e
    for pid in "${PIDS[@]}"; do
        alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 30); do
            alive "$pid" || break
            sleep 0.1
        done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

make_namespace() { # name
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
}

# address NS DEV A.B.C.D/N: gives DEV in NS the address, brings it up, and
# sets the congestion control of the connected route (see the top).
address() {
    ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" link set "$2" up
    ip -n "$1" route replace "$(prefix_of "$3")" dev "$2" proto kernel scope link \
        src "${3%/*}" "${CONGCTL[@]}"
}

prefix_of() { # A.B.C.D/24 -> A.B.C.0/24 (the /24s used here)
    local address=${1%/*}
    echo "${address%.*}.0/${1#*/}"
}

# start IN OUT LOG CMD...: runs CMD in the background with stdin from
# $WORK/IN, stdout to $WORK/OUT and stderr to $WORK/LOG; sets LAST_PID.
start() {
    local in=$1 out=$2 log=$3
    shift 3
    "$@" <"$WORK/$in" >"$WORK/$out" 2>"$WORK/$log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# poll SECONDS CMD...: runs CMD every 50 ms until it succeeds (0) or
# SECONDS pass (1).
poll() {
    local deadline=$(($(date +%s%N) + $1 * 1000000000))
    shift
    until "$@" >/dev/null 2>&1; do
        (($(date +%s%N) < deadline)) || return 1
        sleep 0.05
    done
}

exited() { ! alive "$1"; }
listening() { [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2") ]]; }

# finish LABEL T0 RECEIVER SENDER: waits up to DEADLINE for the receiver to
# exit, takes the time, waits up to 10 s more for the sender, and checks
# what arrived in $WORK/LABEL.out.  Sets MBPS[LABEL] and SECONDS_TAKEN[LABEL]
# on success; says why and sets FAILED otherwise.
declare -A MBPS SECONDS_TAKEN NANOSECONDS
FAILED=0
finish() {
    local label=$1 t0=$2 receiver=$3 sender=$4 end got pid log
    if ! poll "$DEADLINE" exited "$receiver"; then
        echo "$label: not complete after $DEADLINE s ($(stat -c %s "$WORK/$label.out") of $BYTES bytes)" >&2
        for pid in "$sender" "$receiver"; do
            kill -TERM "$pid" 2>/dev/null || true
        done
        fail_logs "$label"
        return 0
    fi
    end=$(date +%s%N)
    poll 10 exited "$sender" ||
        echo "$label: the sender was still running 10 s after the receiver exited" >&2
    got=$(stat -c %s "$WORK/$label.out")
    if [[ $got -ne $BYTES ]]; then
        echo "$label: $got of $BYTES bytes arrived" >&2
        fail_logs "$label"
    elif [[ $(sha256sum <"$WORK/$label.out" | cut -d' ' -f1) != "$EXPECTED" ]]; then
        echo "$label: the SHA-256 differs from the file's ($(cmp "$WORK/file" "$WORK/$label.out" | head -n 1))" >&2
        fail_logs "$label"
    else
        NANOSECONDS[$label]=$((end - t0))
        SECONDS_TAKEN[$label]=$(echo "scale=1; ($end - $t0) / 1000000000" | bc -l | sed 's/^\./0./')
        MBPS[$label]=$(echo "scale=2; $BYTES * 1000 / ($end - $t0)" | bc -l | sed 's/^\./0./')
    fi
    rm -f "$WORK/$label.out"
}

# fail_logs LABEL: marks the run failed and shows the end of LABEL's logs.
fail_logs() {
    local log
    FAILED=1
    for log in "$WORK/$1"-*.log; do
        if [[ -s $log ]]; then
            echo "---- $(basename "$log")" >&2
            tail -n 5 "$log" >&2
        fi
    done
}

# usock -> kernel over a TAP: the kernel's nc -l receives, usock nc sends.
usock_to_kernel() {
    local ns=$TAG-u2k receiver t0
    make_namespace "$ns"
    ip -n "$ns" tuntap add dev usk0 mode tap
    address "$ns" usk0 198.18.0.1/24
    start empty u2k.out u2k-kernel.log ip netns exec "$ns" nc -l 198.18.0.1 5001
    receiver=$LAST_PID
    poll 10 listening "$ns" 5001 || { echo "u2k: the kernel never listened" >&2; FAILED=1; return 0; }
    t0=$(date +%s%N)
    start file u2k.back u2k-usock.log ip netns exec "$ns" "$USOCK" nc --link tap:usk0 \
        --addr 198.18.0.2/24 --impair "$IMPAIRMENT" 198.18.0.1 5001
    finish u2k "$t0" "$receiver" "$LAST_PID"
}

# kernel -> usock over a TAP: usock nc -l receives, the kernel's nc sends.
kernel_to_usock() {
    local ns=$TAG-k2u receiver t0
    make_namespace "$ns"
    ip -n "$ns" tuntap add dev usk1 mode tap
    address "$ns" usk1 198.18.0.1/24
    start empty k2u.out k2u-usock.log ip netns exec "$ns" "$USOCK" nc -l -v -p 5002 \
        --link tap:usk1 --addr 198.18.0.2/24 --impair "$IMPAIRMENT"
    receiver=$LAST_PID
    poll 10 grep -q listening "$WORK/k2u-usock.log" ||
        { echo "k2u: usock nc never listened" >&2; FAILED=1; return 0; }
    t0=$(date +%s%N)
    start file k2u.back k2u-kernel.log ip netns exec "$ns" nc -N -w "$DEADLINE" 198.18.0.2 5002
    finish k2u "$t0" "$receiver" "$LAST_PID"
}

# kernel -> kernel through usock relay: B's nc -l receives, A's nc sends.
kernel_to_kernel() {
    local a=$TAG-a b=$TAG-b r=$TAG-r receiver t0
    make_namespace "$a"
    make_namespace "$b"
    make_namespace "$r"
    ip -n "$r" link add a1 type veth peer name a0 netns "$a"
    ip -n "$r" link add b1 type veth peer name b0 netns "$b"
    address "$a" a0 198.18.1.1/24
    address "$b" b0 198.18.1.2/24
    ip -n "$r" link set a1 up
    ip -n "$r" link set b1 up
    start empty k2k.relay k2k-relay.log ip netns exec "$r" "$USOCK" relay packet:a1 packet:b1 \
        --impair "$IMPAIRMENT"
    poll 10 grep -q relaying "$WORK/k2k-relay.log" ||
        { echo "k2k: usock relay never started" >&2; FAILED=1; return 0; }
    start empty k2k.out k2k-kernel-b.log ip netns exec "$b" nc -l 198.18.1.2 5003
    receiver=$LAST_PID
    poll 10 listening "$b" 5003 || { echo "k2k: kernel B never listened" >&2; FAILED=1; return 0; }
    t0=$(date +%s%N)
    start file k2k.back k2k-kernel-a.log ip netns exec "$a" nc -N -w "$DEADLINE" 198.18.1.2 5003
    finish k2k "$t0" "$receiver" "$LAST_PID"
}

head -c "$BYTES" /dev/urandom >"$WORK/file"
: >"$WORK/empty"
EXPECTED=$(sha256sum <"$WORK/file" | cut -d' ' -f1)

[[ $JSON -eq 1 ]] || echo "# $MEGABYTES MB per flow, --impair $IMPAIRMENT; this takes a while" >&2
kernel_to_kernel
usock_to_kernel
kernel_to_usock

ratio() { # label: its goodput over kernel -> kernel's (the same bytes: the
    # inverse ratio of the times), or "-" when either is missing
    if [[ -n ${NANOSECONDS[$1]:-} && -n ${NANOSECONDS[k2k]:-} ]]; then
        echo "scale=3; ${NANOSECONDS[k2k]} / ${NANOSECONDS[$1]}" | bc -l | sed 's/^\./0./'
    else
        echo -
    fi
}
figure() { echo "${MBPS[$1]:-${2:--}}"; }
json() { local v; v=$(ratio "$1"); [[ $v == - ]] && echo null || echo "$v"; }

if [[ $JSON -eq 1 ]]; then
    printf '{"megabytes": %s, "impairment": "%s", "kernel_congestion_control": "%s", "usock_to_kernel_MBps": %s, "kernel_to_usock_MBps": %s, "kernel_to_kernel_MBps": %s, "usock_to_kernel_ratio": %s, "kernel_to_usock_ratio": %s}\n' \
        "$MEGABYTES" "$IMPAIRMENT" "$KERNEL_CC" "$(figure u2k null)" "$(figure k2u null)" "$(figure k2k null)" \
        "$(json u2k)" "$(json k2u)"
else
    echo "single-flow TCP goodput, $MEGABYTES MB per flow, --impair $IMPAIRMENT each way, kernel $KERNEL_CC ($(nproc) cores, $(uname -r))"
    printf '%-34s %10s %8s %10s\n' "flow" "MB/s" "ratio" "seconds"
    printf '%-34s %10s %8s %10s\n' "kernel -> kernel (usock relay)" "$(figure k2k failed)" \
        "$([[ -n ${MBPS[k2k]:-} ]] && echo 1.000 || echo -)" "${SECONDS_TAKEN[k2k]:--}"
    printf '%-34s %10s %8s %10s\n' "usock -> kernel (tap)" "$(figure u2k failed)" "$(ratio u2k)" \
        "${SECONDS_TAKEN[u2k]:--}"
    printf '%-34s %10s %8s %10s\n' "kernel -> usock (tap)" "$(figure k2u failed)" "$(ratio k2u)" \
        "${SECONDS_TAKEN[k2u]:--}"
fi
exit "$FAILED"
