#!/bin/bash
# test_ping.sh - the kernel pings usock over a TAP device: 100 quick echoes
# all come back, a 1400-byte echo comes back, and usock's ICMP counters
# agree.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24, in one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need ping iputils-ping

make_namespace NS ping
usock_tap_up "$NS" ping usock-up

say "100 echoes, 10 ms apart: every one answered"
step ip netns exec "$NS" ping -q -c 100 -i 0.01 -W 1 198.18.0.2 | tee "$WORK/ping.out"
status=$?
[ "$status" -eq 0 ] || fail "ping exited $status"
grep -q '100 packets transmitted, 100 received, 0% packet loss' "$WORK/ping.out" ||
    fail "expected '100 received, 0% packet loss', got: $(grep transmitted "$WORK/ping.out")"

say "a large echo (1400 bytes of data, 1428-byte IP packet) comes back whole"
step ip netns exec "$NS" ping -c 3 -i 0.2 -W 1 -s 1400 198.18.0.2 | tee "$WORK/big.out"
status=$?
[ "$status" -eq 0 ] || fail "ping -s 1400 exited $status"
grep -q '3 packets transmitted, 3 received' "$WORK/big.out" ||
    fail "ping -s 1400: expected 3 received, got: $(grep transmitted "$WORK/big.out")"
grep -q '^1408 bytes from 198.18.0.2' "$WORK/big.out" ||
    fail "ping -s 1400: expected replies of 1408 bytes"

say "usock counted what it saw"
expect_counter_at_least ping IcmpInEchos 103
expect_counter_at_least ping IcmpOutEchoReps 103

say "Ctrl-C stops usock cleanly and takes the TAP device with it"
usock_stop "$USOCK_PID" ping
wait_for_link_gone "$NS" usk0

pass
