#!/bin/bash
# test_udp_echo.sh - the kernel's nc talks UDP to usock's built-in services:
# udp-echo (RFC 862) sends each datagram back, udp-discard (RFC 863) eats
# them and counts them, a closed port answers with ICMP port unreachable,
# and `usock ss` lists the services' sockets as ss(8) would.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24, in one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nc netcat-openbsd
need python3 python3

make_namespace NS udp
usock_tap_up "$NS" udpecho usock-up --serve udp-echo:7 --serve udp-discard:9

say "three lines to the echo port, one datagram each, come back in order"
printf 'one\ntwo\nthree\n' >"$WORK/sent"
step ip netns exec "$NS" nc -u -w 1 198.18.0.2 7 \
    < <(for line in one two three; do echo "$line"; sleep 0.1; done) | tee "$WORK/echoed"
diff -u "$WORK/sent" "$WORK/echoed" || fail "udp-echo did not send back what nc sent"

say "a datagram as large as the MTU allows (1472 bytes) comes back whole"
head -c 1471 /dev/zero | tr '\0' 'x' >"$WORK/big"
echo >>"$WORK/big"
step ip netns exec "$NS" nc -u -w 1 198.18.0.2 7 <"$WORK/big" >"$WORK/big.echoed"
cmp "$WORK/big" "$WORK/big.echoed" ||
    fail "udp-echo: a 1472-byte datagram came back as $(wc -c <"$WORK/big.echoed") bytes"

say "udp-discard takes datagrams and answers nothing"
before=$(counter udpecho UdpInDatagrams) || exit 1
step ip netns exec "$NS" nc -u -w 1 198.18.0.2 9 \
    < <(for line in first second; do echo "$line"; sleep 0.1; done) | tee "$WORK/discarded"
[ ! -s "$WORK/discarded" ] || fail "udp-discard answered: $(cat "$WORK/discarded")"
expect_counter_at_least udpecho UdpInDatagrams $((before + 2))

say "a closed port draws ICMP port unreachable: the connected socket sees ECONNREFUSED"
no_ports=$(counter udpecho UdpNoPorts) || exit 1
cat >"$WORK/closed.py" <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect(("198.18.0.2", 5555))
s.send(b"anyone there?\n")
try:
    s.recv(100)
    print("got a reply from a closed port")
    raise SystemExit(1)
except ConnectionRefusedError as error:
    print(error)
except socket.timeout:
    print("no ICMP port unreachable within 2 s")
    raise SystemExit(1)
PY
step ip netns exec "$NS" "$PYTHON" "$WORK/closed.py" ||
    fail "UDP to closed port 5555 did not draw 'Connection refused'"
expect_counter_at_least udpecho UdpNoPorts $((no_ports + 1))
expect_counter_at_least udpecho IcmpOutDestUnreachs 1

say "ss shows the services as unconnected UDP sockets on every address"
step usock ss -ua --name udpecho | tee "$WORK/ss.all"
service_row() {
    awk -v port="$2" '$1 == "udp" && $2 == "UNCONN" &&
        ($5 == "0.0.0.0:" port || $5 == "*:" port) { found = 1 } END { exit !found }' "$1"
}
service_row "$WORK/ss.all" 7 || fail "usock ss -ua: no 'udp UNCONN 0.0.0.0:7' row"
service_row "$WORK/ss.all" 9 || fail "usock ss -ua: no 'udp UNCONN 0.0.0.0:9' row"
head -n 1 "$WORK/ss.all" | grep -q '^Netid  *State  *Recv-Q  *Send-Q  *Local Address:Port  *Peer Address:Port' ||
    fail "usock ss: header is not ss(8)'s"
step usock ss -ul --name udpecho | tee "$WORK/ss.listening"
service_row "$WORK/ss.listening" 7 || fail "usock ss -ul: the echo socket is not listed"
say "without -a or -l, ss hides listening sockets (unconnected UDP counts as listening)"
step usock ss -u --name udpecho | tee "$WORK/ss.default"
service_row "$WORK/ss.default" 7 && fail "usock ss -u listed the unconnected echo socket"

usock_stop "$USOCK_PID" udpecho
pass
