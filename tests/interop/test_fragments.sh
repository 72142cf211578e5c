#!/bin/bash
# test_fragments.sh - IPv4 fragmentation both ways against the kernel: a
# 4000-byte ping goes out in fragments, usock reassembles it and answers with
# a reply it fragments itself, which the kernel reassembles; the largest ping
# there is (65507 bytes of data, a 65535-byte IP packet, 45 fragments) is
# answered; a 30000-byte UDP datagram to udp-echo comes back intact; and
# `usock stats` shows the reassemblies and the fragments usock made.
#
#   kernel 198.18.0.1/24 --usk0 (TAP, MTU 1500)-- usock 198.18.0.2/24, in one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need ping iputils-ping
need python3 python3

make_namespace NS frag
usock_tap_up "$NS" frag usock-up --serve udp-echo:7

reasm_before=$(counter frag IpReasmOKs) || exit 1
created_before=$(counter frag IpFragCreates) || exit 1

say "a 4000-byte ping (4028-byte IP packets) leaves the kernel in 3 fragments;"
say "usock reassembles each, answers, and fragments the reply on the way out"
step ip netns exec "$NS" ping -c 5 -i 0.2 -W 2 -s 4000 198.18.0.2 | tee "$WORK/ping4000.out"
status=$?
[ "$status" -eq 0 ] || fail "ping -s 4000 exited $status"
grep -q '5 packets transmitted, 5 received' "$WORK/ping4000.out" ||
    fail "ping -s 4000: expected 5 received, got: $(grep transmitted "$WORK/ping4000.out")"
[ "$(grep -c '^4008 bytes from 198.18.0.2' "$WORK/ping4000.out")" -eq 5 ] ||
    fail "ping -s 4000: expected 5 replies of 4008 bytes"
expect_counter_at_least frag IpReasmOKs $((reasm_before + 5))
expect_counter_at_least frag IpFragCreates $((created_before + 15))

say "the largest ping there is: 65507 bytes of data, 65535 bytes of IP, 45 fragments each way"
step ip netns exec "$NS" ping -c 2 -i 0.5 -W 3 -s 65507 198.18.0.2 | tee "$WORK/ping65507.out"
status=$?
[ "$status" -eq 0 ] || fail "ping -s 65507 exited $status"
grep -q '2 packets transmitted, 2 received' "$WORK/ping65507.out" ||
    fail "ping -s 65507: expected 2 received, got: $(grep transmitted "$WORK/ping65507.out")"
grep -q '^65515 bytes from 198.18.0.2' "$WORK/ping65507.out" ||
    fail "ping -s 65507: expected replies of 65515 bytes"

say "a 30000-byte UDP datagram to udp-echo comes back whole and unchanged"
cat >"$WORK/udp30000.py" <<'PY'
import os, socket
data = os.urandom(30000)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(data, ("198.18.0.2", 7))
try:
    echoed, source = s.recvfrom(65535)
except socket.timeout:
    print("no echo within 3 s")
    raise SystemExit(1)
print("sent %d bytes, got %d bytes back from %s:%d" % (len(data), len(echoed), *source))
if echoed != data:
    print("the echo differs from what was sent")
    raise SystemExit(1)
PY
step ip netns exec "$NS" "$PYTHON" "$WORK/udp30000.py" ||
    fail "a 30000-byte UDP datagram did not come back intact from udp-echo"

say "usock counted the datagrams it reassembled and the fragments it made"
# 5 + 2 pings and 1 datagram reassembled; 5 x 3 + 2 x 45 + 21 fragments made.
expect_counter_at_least frag IpReasmOKs $((reasm_before + 8))
expect_counter_at_least frag IpFragCreates $((created_before + 126))
show_counter frag IpReasmFails
[ "$(counter frag IpReasmFails)" -eq 0 ] || fail "usock failed to reassemble something"

usock_stop "$USOCK_PID" frag
pass
