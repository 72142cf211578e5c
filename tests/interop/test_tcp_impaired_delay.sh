#!/bin/bash
# test_tcp_impaired_delay.sh - TCP across a long, lossy path: 20 ms of delay
# and 1% loss each way, made by usock's own impairment (--impair).  Three
# flows each move the same 4 MB of random bytes, and what arrives must have
# the file's SHA-256, within a generous deadline:
#
#   usock -> kernel   `usock nc --impair` sends over a TAP, kernel `nc -l` receives
#   kernel -> usock   kernel `nc` sends over a TAP, `usock nc -l --impair` receives
#   kernel -> kernel  kernel `nc` sends to kernel `nc -l` in another namespace,
#                     through `usock relay --impair` between two veth pairs
#
# An impairment acts on each direction by itself (src/link/impair.c: one
# random stream and one delay queue per direction), so the one spec
# delay=20ms,loss=1% gives every path a 40 ms round trip and 1% loss each
# way; the relay impairs only its first link, so a frame is impaired once
# whichever way it crosses.  The seed is fixed, but the run is not
# reproducible: the stacks' timing decides which frame draws which die.
#
# The kernel's congestion control is CUBIC (usock's default) on the routes
# the test makes, `ip route ... congctl cubic`, whatever the host's default
# (a namespace takes that from the host, and may not change it to an
# algorithm outside net.ipv4.tcp_allowed_congestion_control; a route may
# name any).  With 1% loss, the algorithm is what sets the pace.
#
# The goodputs are printed, never judged: bench/tcp_impaired.sh measures
# them at 50 MB, with the ratios against kernel -> kernel.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock nc --impair 198.18.0.2/24             (namespace 1)
#   kernel 198.18.0.1/24 --usk1 (TAP)-- usock nc -l --impair 198.18.0.2/24          (namespace 2)
#   A: a0 198.18.1.1/24 --veth-- a1 [R: usock relay --impair] b1 --veth-- b0 198.18.1.2/24 :B
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nc netcat-openbsd
need sha256sum coreutils

SIZE=4000000
IMPAIRMENT=delay=20ms,loss=1%,seed=5
# Seconds a flow may take.  4 MB takes about 8 s here (CUBIC at 1% loss and
# 40 ms moves about 0.5 MB/s; the whole test takes about 25 s); the
# deadline is for a stall, not a judgement of speed.
DEADLINE=90

# cubic NS DEV PREFIX SRC: the connected route PREFIX on DEV uses CUBIC.
cubic() {
    must ip -n "$1" route replace "$3" dev "$2" proto kernel scope link src "$4" congctl cubic
}

step head -c "$SIZE" /dev/urandom >"$WORK/file" || fail "cannot make the file"
: >"$WORK/empty"
EXPECTED=$(sha "$WORK/file")
step sha256sum "$WORK/file"

# check LABEL: fails the test unless $WORK/LABEL.out is the file.
check() {
    local label=$1 got
    step sha256sum "$WORK/$label.out"
    got=$(stat -c %s "$WORK/$label.out")
    [ "$got" -eq "$SIZE" ] || fail "$label: $got bytes arrived, expected $SIZE"
    [ "$(sha "$WORK/$label.out")" = "$EXPECTED" ] ||
        fail "$label: the SHA-256 differs from the file's (first difference: $(cmp "$WORK/file" "$WORK/$label.out" | head -n 1))"
    say "$label: the SHA-256 matches the file's"
}

# goodput LABEL MS: says how long the flow took and its goodput.
goodput() {
    local ms=$2
    [ "$ms" -gt 0 ] || ms=1
    say "$1: $SIZE bytes in $ms ms, $((SIZE / 1000 / ms)).$((SIZE / ms % 1000 / 100)) MB/s (not judged)"
    rm -f "$WORK/$1.out"
}

# kernel_counter NS NAME: prints the kernel's counter NAME in NS, named as
# nstat names them (TcpRetransSegs, TcpExtTCPOFOQueue).
kernel_counter() {
    ip netns exec "$1" cat /proc/net/snmp /proc/net/netstat | awk -v c="$2" '
        NR % 2 == 1 { split($0, names); next }
        { sub(":", "", names[1]); for (i = 2; i <= NF; i++) if (names[1] names[i] == c) { print $i; found = 1 } }
        END { exit !found }'
}

# expect_lossy NS NAME: shows the kernel's counter NAME in NS and fails the
# test unless it is at least 1: a sign that the impairment dropped segments
# (about 28 of the 2763 a flow takes, at 1%).  For a kernel sender the sign
# is a fast retransmit, which only a hole in what the receiver got sets off
# (a retransmission on timeout could also come from the end of the flow:
# usock nc exits with its last ACKs still in the impairment's delay queue).
expect_lossy() {
    local value
    value=$(kernel_counter "$1" "$2") || fail "no kernel counter $2 in $1"
    say "the kernel in $1: $2 $value"
    [ "$value" -ge 1 ] || fail "$2 is 0 in $1: did the impairment drop nothing?"
}

# ---- 1: usock -> kernel ---------------------------------------------------

make_namespace NS1 imp-u2k
tap_device "$NS1" usk0
cubic "$NS1" usk0 198.18.0.0/24 198.18.0.1
say "the kernel listens; usock nc sends the file over the impaired TAP"
start_io empty u2k.out kernel-u2k ip netns exec "$NS1" nc -l 198.18.0.1 5001
RECEIVER=$LAST_PID
wait_until 5 "the kernel to listen on port 5001" kernel_listening "$NS1" 5001
t0=$(date +%s%N)
start_io file u2k.back usock-u2k ip netns exec "$NS1" usock nc --link tap:usk0 \
    --addr 198.18.0.2/24 --impair "$IMPAIRMENT" 198.18.0.1 5001
SENDER=$LAST_PID
wait_exit "$RECEIVER" "the kernel's nc -l" "$DEADLINE"
took=$(elapsed_ms "$t0")
wait_exit "$SENDER" "usock nc" 10
check u2k
say "segments usock sent were lost: the kernel queued some out of order"
expect_lossy "$NS1" TcpExtTCPOFOQueue
goodput u2k "$took"

# ---- 2: kernel -> usock ---------------------------------------------------

make_namespace NS2 imp-k2u
tap_device "$NS2" usk1
cubic "$NS2" usk1 198.18.0.0/24 198.18.0.1
say "usock nc listens behind the impaired TAP; the kernel's nc sends the file"
start_io empty k2u.out usock-k2u ip netns exec "$NS2" usock nc -l -v -p 5002 \
    --link tap:usk1 --addr 198.18.0.2/24 --impair "$IMPAIRMENT"
RECEIVER=$LAST_PID
wait_for_log usock-k2u "listening"
t0=$(date +%s%N)
start_io file k2u.back kernel-k2u ip netns exec "$NS2" nc -N -w "$DEADLINE" 198.18.0.2 5002
SENDER=$LAST_PID
wait_exit "$RECEIVER" "usock nc -l" "$DEADLINE"
took=$(elapsed_ms "$t0")
wait_exit "$SENDER" "the kernel's nc" 10
check k2u
say "segments the kernel sent were lost: it retransmitted some, fast"
expect_lossy "$NS2" TcpExtTCPFastRetrans
goodput k2u "$took"

# ---- 3: kernel -> kernel through usock relay ------------------------------

make_namespace A imp-a
make_namespace B imp-b
make_namespace R imp-r
must ip -n "$R" link add a1 type veth peer name a0 netns "$A"
must ip -n "$R" link add b1 type veth peer name b0 netns "$B"
must ip -n "$A" addr add 198.18.1.1/24 dev a0
must ip -n "$B" addr add 198.18.1.2/24 dev b0
must ip -n "$A" link set a0 up
must ip -n "$B" link set b0 up
must ip -n "$R" link set a1 up
must ip -n "$R" link set b1 up
cubic "$A" a0 198.18.1.0/24 198.18.1.1
cubic "$B" b0 198.18.1.0/24 198.18.1.2
say "the relay impairs both ways; kernel A sends the file to kernel B through it"
start relay ip netns exec "$R" usock relay packet:a1 packet:b1 --impair "$IMPAIRMENT"
RELAY_PID=$LAST_PID
wait_for_log relay "relaying"
start_io empty k2k.out kernel-b ip netns exec "$B" nc -l 198.18.1.2 5003
RECEIVER=$LAST_PID
wait_until 5 "kernel B to listen on port 5003" kernel_listening "$B" 5003
t0=$(date +%s%N)
start_io file k2k.back kernel-a ip netns exec "$A" nc -N -w "$DEADLINE" 198.18.1.2 5003
SENDER=$LAST_PID
wait_exit "$RECEIVER" "kernel B's nc -l" "$DEADLINE"
took=$(elapsed_ms "$t0")
wait_exit "$SENDER" "kernel A's nc" 10
check k2k
say "segments A sent were lost in the relay: A retransmitted some, fast"
expect_lossy "$A" TcpExtTCPFastRetrans
goodput k2k "$took"
interrupt "$RELAY_PID" "usock relay"
step cat "$WORK/relay.log"

pass
