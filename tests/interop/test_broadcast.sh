#!/bin/bash
# test_broadcast.sh - usock takes UDP sent to the subnet's directed broadcast
# (198.18.0.255) and to the limited broadcast (255.255.255.255): a kernel
# socket with SO_BROADCAST sends one of each to usock's udp-discard on port 9,
# and UdpInDatagrams grows by exactly 2.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24, in one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need python3 python3

make_namespace NS bcast
usock_tap_up "$NS" bcast usock-up --serve udp-discard:9

# The kernel sends to 255.255.255.255 only on an interface it can choose:
# binding the socket to 198.18.0.1 picks usk0.
cat >"$WORK/broadcast.py" <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("198.18.0.1", 0))
for address in ("198.18.0.255", "255.255.255.255"):
    s.sendto(b"to everyone\n", (address, 9))
    print("sent to", address)
PY

say "before: what usock has counted so far"
before=$(counter bcast UdpInDatagrams) || exit 1
show_counter bcast UdpInDatagrams
must ip netns exec "$NS" "$PYTHON" "$WORK/broadcast.py"

say "after: both broadcasts reached the discard service"
expect_counter_at_least bcast UdpInDatagrams $((before + 2))
sleep 0.2 # a third datagram from nowhere would show up by now
after=$(counter bcast UdpInDatagrams) || exit 1
[ "$after" -eq $((before + 2)) ] ||
    fail "UdpInDatagrams went from $before to $after, expected $((before + 2))"
no_ports=$(counter bcast UdpNoPorts) || exit 1
[ "$no_ports" -eq 0 ] || fail "UdpNoPorts is $no_ports: a broadcast missed the discard socket"

say "a broadcast to a port nobody has draws no ICMP error (RFC 1122 3.2.2)"
cat >"$WORK/broadcast-closed.py" <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("198.18.0.1", 0))
s.sendto(b"anyone?\n", ("198.18.0.255", 5555))
print("sent to 198.18.0.255 port 5555")
PY
unreachables=$(counter bcast IcmpOutDestUnreachs) || exit 1
must ip netns exec "$NS" "$PYTHON" "$WORK/broadcast-closed.py"
expect_counter_at_least bcast UdpNoPorts 1
after=$(counter bcast IcmpOutDestUnreachs) || exit 1
[ "$after" -eq "$unreachables" ] ||
    fail "usock sent ICMP destination unreachable for a broadcast datagram"

usock_stop "$USOCK_PID" bcast
pass
