# lib.sh - what the interop tests share.  Sourced, never run.
#
# Theory of operation: a test is run as `bash test_X.sh PATH_TO_USOCK` (by
# ctest, as root).  Sourcing this file
#   - takes the usock binary from $1 and a scratch directory under /tmp (which
#     is also $USOCK_RUNDIR, so control sockets never touch /run/usock);
#   - installs a trap on EXIT that kills every process the test started with
#     `start`, deletes every namespace it made with `make_namespace`, and
#     removes the scratch directory, whether the test passed or not;
# and gives the test a small vocabulary so it reads like a transcript of what
# a person would type: `step CMD...` prints "$ CMD..." and runs it;
# `fail WHY` prints why and exits 1.  Every wait is a poll with a deadline,
# never a long fixed sleep.
#
# Rules the tests keep: addresses only from 198.18.0.0/15; every interface is
# made inside a namespace the test owns; namespace names carry $$ so two runs
# never collide.

set -u
set -o pipefail

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
    echo "usage: bash $0 PATH_TO_USOCK_BINARY" >&2
    exit 2
fi
USOCK=$(readlink -f "$1")
TEST=$(basename "$0" .sh)

WORK=$(mktemp -d "/tmp/usock-$TEST.XXXXXX")
chmod 755 "$WORK"
export USOCK_RUNDIR="$WORK/run"
# The transcript says `usock`, as a person would type it.
mkdir "$WORK/bin"
ln -s "$USOCK" "$WORK/bin/usock"
export PATH="$WORK/bin:$PATH"

# Python snippets run under the system interpreter (where Debian's packages,
# scapy among them, are importable), not whatever python3 is first in PATH.
if [ -x /usr/bin/python3 ]; then
    PYTHON=/usr/bin/python3
else
    PYTHON=python3
fi

# http_bytes_pattern SIZE: writes to stdout the SIZE bytes that usock's
# http service sends for /bytes/SIZE: bytes 4k..4k+3 are k as a big-endian
# 32-bit number.
http_bytes_pattern() {
    "$PYTHON" -c '
import array, sys
size = int(sys.argv[1])
words = array.array("I", range((size + 3) // 4))
assert words.itemsize == 4
if sys.byteorder == "little":
    words.byteswap()
sys.stdout.buffer.write(words.tobytes()[:size])
' "$1"
}

NAMESPACES=()
PIDS=()

# The transcript (commands and commentary) goes to fd 3, the test's own
# stdout, so a command's output can be piped or captured without its "$ ..."
# line.  Commands run with fd 3 closed.
exec 3>&1

# ---- messages -------------------------------------------------------------

# Prints "FAIL: WHY" and the log of every process still known, and exits 1
# (the EXIT trap cleans up).
fail() {
    echo "FAIL: $TEST: $*" >&2
    local log
    for log in "$WORK"/*.log; do
        [ -s "$log" ] || continue
        echo "---- $(basename "$log") ----" >&2
        tail -n 20 "$log" >&2
    done
    exit 1
}

# Prints a line of commentary in the transcript.
say() {
    echo "# $*" >&3
}

# quote ARG...: prints the arguments as a shell command line a person could
# paste back: plain words as they are, anything else in single quotes.
quote() {
    local plain='^[A-Za-z0-9_./:=,%@+-]+$' arg out=()
    for arg in "$@"; do
        if [[ $arg =~ $plain ]]; then
            out+=("$arg")
        else
            out+=("'${arg//\'/\'\\\'\'}'")
        fi
    done
    echo "${out[*]}"
}

# Prints "$ CMD..." and runs it; returns its status.
step() {
    echo "\$ $(quote "$@")" >&3
    "$@" 3>&-
}

# Runs CMD as `step` does and fails the test when it does not succeed.
must() {
    step "$@" || fail "'$*' exited $?"
}

pass() {
    echo "PASS: $TEST"
    exit 0
}

# ---- cleanup --------------------------------------------------------------

# alive PID: true while PID runs (a child that exited but was not yet waited
# for is a zombie, which kill -0 still finds).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # the state follows "(comm) ", and comm may hold spaces
    [ -n "$stat" ] && [ "${stat%% *}" != Z ]
}

# Stops one process: SIGTERM, up to 3 s for it to go, then SIGKILL.
stop_process() {
    local pid=$1
    if ! alive "$pid"; then
        wait "$pid" 2>/dev/null
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 30); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        echo "# process $pid ignored SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    local status=$? pid ns
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        stop_process "$pid"
    done
    for ns in "${NAMESPACES[@]}"; do
        # Anything still running inside is ours (started with `start` or a
        # step that was interrupted): end it, by pid, before the namespace.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null
        done
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools ----------------------------------------------------------------

# need COMMAND PACKAGE...: installs PACKAGE(s) when COMMAND is missing.
# apt-get update runs at most once per test.
APT_UPDATED=
need() {
    local command=$1
    shift
    command -v "$command" >/dev/null 2>&1 && return 0
    say "$command is missing; installing $*"
    if [ -z "$APT_UPDATED" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || fail "apt-get update failed"
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null ||
        fail "cannot install $*"
    command -v "$command" >/dev/null 2>&1 || fail "$command still missing after installing $*"
}

# ---- namespaces and processes ---------------------------------------------

# make_namespace VAR LABEL: makes namespace "usk-LABEL-$$" with loopback up
# and IPv6 off (so the kernel's neighbour discovery does not add chatter),
# and stores its name in VAR.
make_namespace() {
    local var=$1 name="usk-$2-$$"
    must ip netns add "$name"
    NAMESPACES+=("$name")
    ip -n "$name" link set lo up
    ip netns exec "$name" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1
    printf -v "$var" '%s' "$name"
}

# start LOG CMD...: runs CMD in the background, output to $WORK/LOG.log,
# remembers it for cleanup, and sets LAST_PID.
#
# A background job of a non-interactive shell starts with SIGINT ignored;
# usock blocks SIGINT and takes it with sigwait, which still sees it, but the
# disposition is reset anyway so a test's SIGINT means what it says.
start() {
    local name=$1 log="$WORK/$1.log"
    shift
    echo "\$ $(quote "$@") >$name.log 2>&1 &" >&3
    (trap - INT; exec "$@" 3>&-) >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# forget PID: the test has waited for PID itself.
forget() {
    local pid=$1 kept=() p
    for p in "${PIDS[@]}"; do
        [ "$p" = "$pid" ] || kept+=("$p")
    done
    PIDS=("${kept[@]}")
}

# wait_until SECONDS WHAT CMD...: polls CMD every 50 ms until it succeeds;
# fails the test with WHAT when SECONDS pass first.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 20))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    "$@" >/dev/null 2>&1 || fail "timed out after ${seconds} s waiting for $what"
}

# start_io IN OUT LOG CMD...: `start` with stdin from IN and stdout to OUT
# (both under $WORK); stderr goes to LOG.log.
start_io() {
    local in=$1 out=$2 name=$3
    shift 3
    echo "\$ $(quote "$@") <$in >$out 2>$name.log &" >&3
    (trap - INT; exec "$@" <"$WORK/$in" >"$WORK/$out" 3>&-) 2>"$WORK/$name.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_exit PID WHAT SECONDS: waits for PID to exit by itself and fails the
# test unless it does within SECONDS with status 0.
wait_exit() {
    local pid=$1 what=$2 seconds=$3 status
    for _ in $(seq $((seconds * 20))); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && fail "$what (pid $pid) still running after $seconds s"
    wait "$pid"
    status=$?
    forget "$pid"
    say "$what exited with status $status"
    [ "$status" -eq 0 ] || fail "$what exited $status, expected 0"
}

# wait_for_link NS DEV: waits up to 5 s for DEV to appear in NS.
wait_for_link() {
    say "waiting for $2 to appear in $1"
    wait_until 5 "device $2 in namespace $1" ip -n "$1" link show dev "$2"
}

# wait_for_link_gone NS DEV: waits up to 5 s for DEV to leave NS.
wait_for_link_gone() {
    say "waiting for $2 to go away"
    wait_until 5 "device $2 to leave namespace $1" link_absent "$1" "$2"
}

link_absent() {
    ! ip -n "$1" link show dev "$2"
}

# wait_for_control NAME [PID]: waits up to 5 s for the control endpoint of
# stack NAME to answer `usock stats`; with PID, fails early if it exits.
wait_for_control() {
    local name=$1 pid=${2:-}
    say "waiting for the control endpoint $USOCK_RUNDIR/$name.sock"
    for _ in $(seq 100); do
        if [ -S "$USOCK_RUNDIR/$name.sock" ] && usock stats --name "$name" >/dev/null 2>&1; then
            return 0
        fi
        if [ -n "$pid" ] && ! alive "$pid"; then
            fail "usock (pid $pid) exited before its control endpoint answered"
        fi
        sleep 0.05
    done
    fail "timed out after 5 s waiting for control endpoint $USOCK_RUNDIR/$name.sock"
}

# wait_for_log LOG TEXT: waits up to 5 s for TEXT to appear in $WORK/LOG.log.
wait_for_log() {
    say "waiting for '$2' in $1.log"
    wait_until 5 "'$2' in $1.log" grep -qF -- "$2" "$WORK/$1.log"
}

# tap_device NS DEV: makes a persistent TAP device in NS with the kernel's
# address 198.18.0.1/24 on it, up (it has carrier once usock attaches).  For
# `usock nc`, which connects as soon as it starts.
tap_device() {
    must ip -n "$1" tuntap add dev "$2" mode tap
    must ip -n "$1" addr add 198.18.0.1/24 dev "$2"
    must ip -n "$1" link set "$2" up
}

# kernel_listening NS PORT: true when a kernel TCP socket listens on PORT in NS.
kernel_listening() {
    [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ]
}

# sha FILE: the file's SHA-256, alone.
sha() {
    sha256sum "$1" | cut -d' ' -f1
}

# elapsed_ms START_NS: milliseconds since START_NS (from date +%s%N).
elapsed_ms() {
    echo $((($(date +%s%N) - $1) / 1000000))
}

# ---- usock ----------------------------------------------------------------

# need_preload: for a test of `usock run`.  Passes at once (saying why) for
# a build with AddressSanitizer, whose preload library needs the ASan
# runtime loaded first, which the programs run on it are not built for;
# else fails unless libusock_preload.so is beside usock.
need_preload() {
    if grep -qa __asan_init "$USOCK"; then
        say "usock is built with AddressSanitizer: its preload library cannot go into"
        say "uninstrumented programs; usock run is not tested in this build"
        pass
    fi
    local preload
    preload="$(dirname "$USOCK")/libusock_preload.so"
    [ -f "$preload" ] || fail "no preload library beside usock at $preload"
}

# counter NAME COUNTER: prints the value of COUNTER from `usock stats`
# (fails the test when the counter is not there).
counter() {
    local value
    value=$(usock stats --name "$1" | awk -v c="$2" '$1 == c { print $2; found = 1 } END { exit !found }') ||
        fail "usock stats --name $1 has no counter $2"
    echo "$value"
}

# counter_at_least NAME COUNTER MIN: true when COUNTER >= MIN.
counter_at_least() {
    local value
    value=$(usock stats --name "$1" | awk -v c="$2" '$1 == c { print $2 }')
    [ -n "$value" ] && [ "$value" -ge "$3" ]
}

# show_counter NAME COUNTER: looks COUNTER up as a person would.
show_counter() {
    echo "\$ usock stats --name $1 | grep -w $2" >&3
    usock stats --name "$1" | grep -w -- "$2"
}

# expect_counter_at_least NAME COUNTER MIN: shows the counter as a person
# would look it up, waiting up to 5 s for it to reach MIN (counters are
# bumped by the stack's thread, a moment after the packet is answered).
expect_counter_at_least() {
    local name=$1 c=$2 minimum=$3
    for _ in $(seq 100); do
        counter_at_least "$name" "$c" "$minimum" && break
        sleep 0.05
    done
    show_counter "$name" "$c"
    counter_at_least "$name" "$c" "$minimum" ||
        fail "$c is $(counter "$name" "$c"), expected at least $minimum"
}

# usock_tap_up NS NAME LOG [OPTION...]: starts `usock up --link tap:usk0
# --addr 198.18.0.2/24 --name NAME OPTION...` inside NS, waits for the TAP
# device and the control endpoint, and gives the kernel side 198.18.0.1/24.
# Sets USOCK_PID.
usock_tap_up() {
    local ns=$1 name=$2 log=$3
    shift 3
    start "$log" ip netns exec "$ns" usock up --link tap:usk0 --addr 198.18.0.2/24 \
        --name "$name" "$@"
    USOCK_PID=$LAST_PID
    wait_for_link "$ns" usk0
    wait_for_control "$name" "$USOCK_PID"
    must ip -n "$ns" addr add 198.18.0.1/24 dev usk0
    must ip -n "$ns" link set usk0 up
}

# interrupt PID WHAT: stops a usock process as a person would, with SIGINT
# (Ctrl-C), and checks that it exits 0 within 5 s.
interrupt() {
    local pid=$1 what=$2 status
    step kill -INT "$pid"
    for _ in $(seq 100); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && fail "$what (pid $pid) still running 5 s after SIGINT"
    wait "$pid"
    status=$?
    forget "$pid"
    say "$what exited with status $status"
    [ "$status" -eq 0 ] || fail "$what exited $status after SIGINT, expected 0"
}

# usock_stop PID NAME: interrupts `usock up` and checks it leaves nothing
# behind: it exits 0 and removes its control endpoint.
usock_stop() {
    interrupt "$1" "usock up"
    [ ! -e "$USOCK_RUNDIR/$2.sock" ] ||
        fail "usock up left its control endpoint $USOCK_RUNDIR/$2.sock behind"
}
