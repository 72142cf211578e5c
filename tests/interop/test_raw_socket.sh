#!/bin/bash
# test_raw_socket.sh - `usock raw`: a raw socket on usock sees the kernel's
# ICMP and UDP packets with their IP headers, and an IP_HDRINCL-crafted UDP
# datagram from usock reaches the kernel's `nc -u -l`:
#   1. usock raw -p icmp -c 2 -x while the kernel pings 198.18.0.2 twice:
#      two lines "from 198.18.0.1 proto 1 ...", the hex an IPv4 header (45)
#      and an ICMP echo request (type 08);
#   2. usock raw -p udp -c 1 -x while the kernel sends a UDP datagram: its
#      UDP header and payload are in the hex;
#   3. usock raw -p raw sends a hand-built IPv4+UDP packet (total length, ID,
#      checksum and source left zero for the stack to fill in); the kernel's
#      nc -u -l receives "crafted" from 198.18.0.2;
#   4. bad arguments exit 2 with one line; --help prints the usage.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock raw 198.18.0.2/24, one namespace
#
# The TAP device is made and configured before usock raw starts (it attaches
# to an existing device); the device's carrier says when usock is there.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need python3 python3
need nc netcat-openbsd

make_namespace NS rawsock
tap_device "$NS" usk0

STACK=(--link tap:usk0 --addr 198.18.0.2/24)

# carrier: true once usock has the TAP device open.
# shellcheck disable=SC2317 # called through wait_until
carrier() {
    ip -n "$NS" link show dev usk0 | grep -q LOWER_UP
}

# fresh_neighbours: each usock run has a MAC of its own; forget the last.
fresh_neighbours() {
    ip -n "$NS" neigh flush dev usk0 2>/dev/null
    return 0
}

# expect_line FILE REGEX WHAT: fails unless some line of FILE matches REGEX.
expect_line() {
    grep -Eq -- "$2" "$1" || fail "no line like '$3' in $(basename "$1"): $(cat "$1")"
}

# hex_of LOG: the hex dump lines of LOG joined into one string of digits.
hex_of() {
    grep -E '^  [0-9a-f]{4}:' "$1" | cut -d: -f2 | tr -d ' \n'
}

# ---- 1: the kernel's pings, IP header included -----------------------------

say "usock raw -p icmp sees the kernel's two echo requests, IP header and all"
fresh_neighbours
start icmp ip netns exec "$NS" usock raw -p icmp -c 2 -x "${STACK[@]}"
ICMP_PID=$LAST_PID
wait_until 5 "usock raw to attach to usk0" carrier
step ip netns exec "$NS" ping -c 2 -i 0.2 -W 2 198.18.0.2 || fail "the kernel's ping got no replies"
wait_exit "$ICMP_PID" "usock raw -p icmp -c 2" 5
step cat "$WORK/icmp.log"
lines=$(grep -Ec '^from 198\.18\.0\.1 proto 1 ttl 64 len 84$' "$WORK/icmp.log")
[ "$lines" -eq 2 ] || fail "expected 2 lines 'from 198.18.0.1 proto 1 ttl 64 len 84', got $lines"
expect_line "$WORK/icmp.log" '^  0000: 45 00 00 54 ' "an IPv4 header (45, total length 84)"
# Byte 20, the 5th of the second dump line, is the ICMP type: 08, echo request.
[ "$(grep -Ec '^  0010: ([0-9a-f]{2} ){4}08 00 ' "$WORK/icmp.log")" -eq 2 ] ||
    fail "expected two ICMP echo requests (type 08) after the IP header"
hex=$(hex_of "$WORK/icmp.log")
[[ $hex == *c6120001c6120002* ]] || fail "no source 198.18.0.1 / destination 198.18.0.2 in the hex"

# ---- 2: a kernel UDP datagram ---------------------------------------------

say "usock raw -p udp sees a UDP datagram the kernel sends, UDP header and payload"
fresh_neighbours
start udp ip netns exec "$NS" usock raw -p udp -c 1 -x "${STACK[@]}"
UDP_PID=$LAST_PID
wait_until 5 "usock raw to attach to usk0" carrier
step ip netns exec "$NS" "$PYTHON" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 40000))
s.sendto(b"hello raw", ("198.18.0.2", 9999))
' || fail "the kernel could not send its datagram"
wait_exit "$UDP_PID" "usock raw -p udp -c 1" 5
step cat "$WORK/udp.log"
expect_line "$WORK/udp.log" '^from 198\.18\.0\.1 proto 17 ttl 64 len 37$' \
    "from 198.18.0.1 proto 17 ttl 64 len 37"
expect_line "$WORK/udp.log" '^  0000: 45 00 00 25 ' "an IPv4 header (45, total length 37)"
hex=$(hex_of "$WORK/udp.log")
say "the datagram in hex: $hex"
# UDP header: ports 40000 (9c40) -> 9999 (270f), length 17 (0011).
[ "${hex:40:12}" = 9c40270f0011 ] || fail "no UDP header 40000 -> 9999 length 17 after the IP header"
[ "${hex:56}" = "$(printf 'hello raw' | od -An -tx1 | tr -d ' \n')" ] ||
    fail "the payload 'hello raw' is not at the end of the hex"

# ---- 3: an IP_HDRINCL packet to the kernel's nc -u -l ---------------------

say "a hand-built IPv4+UDP packet from usock raw -p raw reaches the kernel's nc -u -l"
fresh_neighbours
# Version/IHL 45, total length 0, ID 0, TTL 64, protocol 17, checksum 0,
# source 0.0.0.0 (the stack fills those in), destination 198.18.0.1; UDP
# 40000 -> 9000 with checksum 0 (none) and the payload "crafted".
"$PYTHON" -c '
import socket, struct
payload = b"crafted"
udp = struct.pack("!HHHH", 40000, 9000, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 17, 0, bytes(4),
                 socket.inet_aton("198.18.0.1"))
print(" ".join("%02x" % b for b in ip + udp))
' >"$WORK/crafted.hex" || fail "python3 could not build the packet"
say "the packet: $(cat "$WORK/crafted.hex")"
start listener ip netns exec "$NS" nc -u -l -n -v 198.18.0.1 9000
LISTENER_PID=$LAST_PID
wait_until 5 "nc -u -l on port 9000" \
    bash -c "[ -n \"\$(ip netns exec '$NS' ss -Hlun 'sport = :9000')\" ]"
start_io crafted.hex sent.out sender ip netns exec "$NS" usock raw -p raw "${STACK[@]}" 198.18.0.1
SENDER_PID=$LAST_PID
wait_exit "$SENDER_PID" "usock raw -p raw" 10
wait_for_log listener crafted
stop_process "$LISTENER_PID"
forget "$LISTENER_PID"
step cat "$WORK/listener.log"
expect_line "$WORK/listener.log" 'received on 198\.18\.0\.2 40000' \
    "Connection received on 198.18.0.2 40000 (nc -v)"
[ ! -s "$WORK/sender.log" ] || fail "usock raw -p raw wrote to stderr: $(cat "$WORK/sender.log")"

# ---- 4: mistakes ------------------------------------------------------------

say "bad arguments: one line on stderr, status 2; --help: usage, status 0"
for args in "-p 0 ${STACK[*]}" "-p ospf ${STACK[*]}" "-c 0 ${STACK[*]}" "-w -1 ${STACK[*]}" \
    "-p udp" "${STACK[*]} 198.18.0.x" "${STACK[*]} 198.18.0.1 198.18.0.3"; do
    # shellcheck disable=SC2086
    step usock raw $args >"$WORK/out" 2>"$WORK/err" </dev/null
    status=$?
    cat "$WORK/err"
    [ "$status" -eq 2 ] || fail "usock raw $args exited $status, expected 2"
    [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "usock raw $args: expected one line on stderr"
    grep -q '^usock: ' "$WORK/err" || fail "the error does not start with 'usock: '"
done
step usock raw --help >"$WORK/out" 2>"$WORK/err"
status=$?
head -n 1 "$WORK/out"
[ "$status" -eq 0 ] || fail "usock raw --help exited $status, expected 0"
grep -q '^usage: usock raw' "$WORK/out" || fail "usock raw --help printed no usage"
[ ! -s "$WORK/err" ] || fail "usock raw --help printed to stderr"

pass
