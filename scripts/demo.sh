#!/usr/bin/env bash
# demo.sh - the README's demo: the kernel talks to a usock stack over a TAP.
#
# usage: scripts/demo.sh [PATH_TO_USOCK]     (no argument: build ./build/usock first)
#
# As root: makes a network namespace of its own, starts
#   usock up --link tap:usock0 --addr 198.18.0.2/24 --serve udp-echo:7 --name demo
# inside it, gives the kernel's side of the TAP 198.18.0.1/24, then pings the
# stack, sends a UDP datagram through its echo service, shows its socket
# table and counters, and stops it with SIGINT.  Each step is echoed as a
# transcript ("$ ping -c 3 198.18.0.2").  The namespace, the stack and the
# temporary control directory are removed on exit, whether the demo passed
# or failed.  Missing tools (ping, nc, ip) are installed with apt-get.
#
# Not root: runs the same story in one process between two stacks on an
# in-memory wire (`usock demo-mem`).
#
# Exit status 0 when every step worked.
set -euo pipefail

if [[ $# -gt 0 && -e $1 ]]; then
    set -- "$(realpath "$1")"
fi
cd "$(dirname "$0")/.."
if [[ $# -eq 0 ]]; then
    # The README's command: build first (quietly), then run.
    command -v cmake >/dev/null || { [[ $(id -u) -eq 0 ]] && apt-get update -qq && apt-get install -y -qq cmake gcc >/dev/null; }
    echo "# building usock"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target usock >/dev/null
fi
USOCK=${1:-./build/usock}
if [[ ! -x $USOCK ]]; then
    echo "demo: no usock binary at '$USOCK' (build it first, or pass its path)" >&2
    exit 1
fi
USOCK=$(realpath "$USOCK")

STACK_ADDRESS=198.18.0.2
KERNEL_ADDRESS=198.18.0.1
TAP=usock0
NAME=demo

if [[ $(id -u) -ne 0 ]]; then
    echo "# not root: the same demo between two stacks in one process"
    echo "\$ usock demo-mem"
    exec "$USOCK" demo-mem
fi

# say STEP...: prints a step of the transcript.
say() {
    echo
    echo "\$ $*"
}

# ensure_tools: installs what the demo runs, when it is missing.
ensure_tools() {
    local missing=()
    command -v ping >/dev/null || missing+=(iputils-ping)
    command -v ip >/dev/null || missing+=(iproute2)
    # The demo needs OpenBSD netcat's -u and -w; other netcats differ.
    if ! command -v nc >/dev/null || ! nc -h 2>&1 | grep -qi openbsd; then
        missing+=(netcat-openbsd)
    fi
    if ((${#missing[@]} > 0)); then
        echo "# installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

NAMESPACE=usock-demo-$$
RUNDIR=$(mktemp -d /tmp/usock-demo.XXXXXX)
USOCK_PID=
export USOCK_RUNDIR=$RUNDIR

# cleanup: stops usock if it still runs, removes the namespace and rundir.
cleanup() {
    local status=$?
    if [[ -n $USOCK_PID ]] && kill -0 "$USOCK_PID" 2>/dev/null; then
        kill -INT "$USOCK_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$USOCK_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$USOCK_PID" 2>/dev/null || true
        wait "$USOCK_PID" 2>/dev/null || true
    fi
    ip netns delete "$NAMESPACE" 2>/dev/null || true
    rm -rf "$RUNDIR"
    if ((status != 0)); then
        echo "# demo FAILED (status $status)" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# in_namespace COMMAND...: runs COMMAND in the demo's namespace.
in_namespace() {
    ip netns exec "$NAMESPACE" "$@"
}

# wait_for WHAT COMMAND...: retries COMMAND for up to 5 s while usock lives.
wait_for() {
    local what=$1
    shift
    for _ in $(seq 50); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if ! kill -0 "$USOCK_PID" 2>/dev/null; then
            echo "demo: usock exited before $what" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "demo: timed out waiting for $what" >&2
    return 1
}

ensure_tools

echo "# a network namespace of our own: $NAMESPACE"
ip netns add "$NAMESPACE"
in_namespace ip link set lo up

say usock up --link tap:$TAP --addr $STACK_ADDRESS/24 --serve udp-echo:7 --name $NAME "&"
# Not through in_namespace: a function would run in a subshell, and $! would
# be that subshell.  ip netns exec execs usock, so $! is usock itself.
ip netns exec "$NAMESPACE" "$USOCK" up --link tap:$TAP --addr $STACK_ADDRESS/24 --serve udp-echo:7 \
    --name $NAME &
USOCK_PID=$!
wait_for "the TAP device $TAP" in_namespace ip link show dev $TAP
wait_for "the control endpoint" test -S "$RUNDIR/$NAME.sock"

say ip addr add $KERNEL_ADDRESS/24 dev $TAP
in_namespace ip addr add $KERNEL_ADDRESS/24 dev $TAP
say ip link set $TAP up
in_namespace ip link set $TAP up

say ping -c 3 $STACK_ADDRESS
in_namespace ping -c 3 -W 2 $STACK_ADDRESS

say "echo hello | nc -u -w1 $STACK_ADDRESS 7"
reply=$(echo hello | in_namespace nc -u -w1 $STACK_ADDRESS 7)
echo "$reply"
if [[ $reply != hello ]]; then
    echo "demo: the echo service answered '$reply', not 'hello'" >&2
    exit 1
fi

say usock ss -ua --name $NAME
in_namespace "$USOCK" ss -ua --name $NAME

say usock stats --name $NAME
in_namespace "$USOCK" stats --name $NAME

say kill -INT "$USOCK_PID"
kill -INT "$USOCK_PID"
usock_status=0
wait "$USOCK_PID" || usock_status=$?
USOCK_PID=
echo "# usock exited with status $usock_status"
if ((usock_status != 0)); then
    exit 1
fi
if [[ -e $RUNDIR/$NAME.sock ]]; then
    echo "demo: usock left its control endpoint behind" >&2
    exit 1
fi
echo
echo "# demo passed"
