#!/bin/bash
# test_multicast.sh - UDP multicast and broadcast between usock nc and the
# kernel, over a TAP device:
#   1. `usock nc -u -l --join 239.1.2.3` sends an IGMPv3 join for 239.1.2.3
#      (to 224.0.0.22, TTL 1, Router Alert) before anything else, answers the
#      kernel's general query within its maximum response time, prints the
#      kernel's datagram to 239.1.2.3 but not the one to 239.9.9.9 (a group
#      it did not join), and sends a leave when it ends; tshark decodes its
#      --pcap without complaint and with good checksums;
#   2. after the kernel joins 239.4.5.6, `usock nc -u 239.4.5.6 6000` reaches
#      the kernel's socket, from 198.18.0.2, in a frame to 01:00:5e:04:05:06
#      with TTL 1 and no ARP;
#   3. with --broadcast, `usock nc -u 198.18.0.255 7000` (and, given a
#      default route, 255.255.255.255) reaches a kernel socket bound to
#      0.0.0.0:7000 in a frame to ff:ff:ff:ff:ff:ff; without --broadcast usock
#      refuses with "Permission denied" (EACCES, as Linux without
#      SO_BROADCAST) and sends nothing.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock nc 198.18.0.2/24, one namespace
#
# The TAP device is made and configured before each usock nc starts (usock
# attaches to an existing device), so nothing usock sends at start, its IGMP
# join included, is lost.  The kernel needs a route for 224.0.0.0/4 to send
# multicast out of usk0.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need python3 python3
need tshark tshark

make_namespace NS mcast
tap_device "$NS" usk0
must ip -n "$NS" route add 224.0.0.0/4 dev usk0

STACK=(--link tap:usk0 --addr 198.18.0.2/24)

# start_reading FIFO LOG CMD...: `start` with CMD's stdin read from FIFO
# (a background job is otherwise given /dev/null, and a listener that sees
# EOF on stdin would end); fd 5, which holds the fifo open, stays with the
# test.
start_reading() {
    local fifo=$1 name=$2 log="$WORK/$2.log"
    shift 2
    echo "\$ $(quote "$@") <$(basename "$fifo") >$name.log 2>&1 &" >&3
    (trap - INT; exec "$@" <"$fifo" 3>&- 5>&-) >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# interrupt_nc PID: Ctrl-C for usock nc, which ends with 128+2.
interrupt_nc() {
    local pid=$1 status
    step kill -INT "$pid"
    for _ in $(seq 100); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && fail "usock nc (pid $pid) still running 5 s after SIGINT"
    wait "$pid"
    status=$?
    forget "$pid"
    say "usock nc exited with status $status"
    [ "$status" -eq 130 ] || fail "usock nc exited $status after SIGINT, expected 130"
}

# ---- 1: usock joins 239.1.2.3; the kernel sends to it ---------------------

cat >"$WORK/send-groups.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("198.18.0.1"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
s.bind(("198.18.0.1", 0))
for group, text in (("239.9.9.9", "to 239.9.9.9, not joined"),
                    ("239.1.2.3", "to 239.1.2.3, joined")):
    s.sendto((text + "\n").encode(), (group, 5000))
    print("sent %r to %s:5000" % (text, group), flush=True)
    time.sleep(0.05)
PY

mkfifo "$WORK/listen.in"
exec 5<>"$WORK/listen.in"
say "usock nc joins 239.1.2.3 and listens on port 5000"
start_reading "$WORK/listen.in" nc-join ip netns exec "$NS" usock nc -u -l -v -p 5000 \
    --join 239.1.2.3 "${STACK[@]}" --pcap "$WORK/join.pcap"
JOIN_PID=$LAST_PID
wait_for_log nc-join "listening on 0.0.0.0 port 5000 (udp)"

cat >"$WORK/igmp-query.py" <<'PY'
# The kernel plays a multicast router: an IGMPv3 general query (max response
# time 1 s) to 224.0.0.1, TTL 1, Router Alert; then it waits up to 5 s for
# 198.18.0.2's answer, a current-state record MODE_IS_EXCLUDE for 239.1.2.3.
import socket, struct, sys, time

def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IGMP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, b"\x94\x04\x00\x00")
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("198.18.0.1"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
# Reports go to 224.0.0.22: the kernel takes them only as a member.
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton("224.0.0.22") + socket.inet_aton("198.18.0.1"))
# type, max resp code 10 (1.0 s), checksum, group 0, S=0 QRV=2, QQIC 125, 0 sources
query = struct.pack("!BBH4sBBH", 0x11, 10, 0, bytes(4), 2, 125, 0)
query = query[:2] + struct.pack("!H", checksum(query)) + query[4:]
sent = time.monotonic()
s.sendto(query, ("224.0.0.1", 0))
print("sent an IGMPv3 general query to 224.0.0.1, max response time 1.0 s", flush=True)
deadline = sent + 5
while time.monotonic() < deadline:
    s.settimeout(deadline - time.monotonic())
    try:
        packet, peer = s.recvfrom(65535)
    except socket.timeout:
        break
    igmp = packet[(packet[0] & 0x0F) * 4:]
    if peer[0] != "198.18.0.2" or igmp[0] != 0x22:
        continue
    records, at, seen = struct.unpack("!H", igmp[6:8])[0], 8, []
    for _ in range(records):
        kind, aux, sources, group = struct.unpack("!BBH4s", igmp[at:at + 8])
        at += 8 + 4 * sources + 4 * aux
        seen.append((kind, socket.inet_ntoa(group), sources))
    print("%.2f s: report from %s, records (type, group, sources) %s"
          % (time.monotonic() - sent, peer[0], seen), flush=True)
    if (2, "239.1.2.3", 0) in seen:
        sys.exit(0 if time.monotonic() - sent < 1.5 else 1)
print("no MODE_IS_EXCLUDE record for 239.1.2.3 from 198.18.0.2", flush=True)
sys.exit(1)
PY
say "a general query from the kernel is answered within its 1 s with the group usock is in"
must ip netns exec "$NS" "$PYTHON" "$WORK/igmp-query.py"

# usock nc -l takes the first datagram's sender as its peer and connects to
# it, after which (as on Linux) its socket has a local address, 198.18.0.2,
# and no longer matches datagrams to the group: one datagram per group is all
# this can show.  The one to 239.9.9.9 goes first: had usock taken it, nc
# would have printed it and made it its peer.
say "the kernel sends to 239.9.9.9, then to 239.1.2.3, from 198.18.0.1"
must ip netns exec "$NS" "$PYTHON" "$WORK/send-groups.py"
wait_for_log nc-join "to 239.1.2.3, joined"
sleep 0.2 # anything else nc would print shows up by now
step cat "$WORK/nc-join.log"
grep -q "connection from 198.18.0.1 port [0-9]* (udp)" "$WORK/nc-join.log" ||
    fail "usock nc -l -v did not name the kernel as its peer"
grep -qF "to 239.1.2.3, joined" "$WORK/nc-join.log" ||
    fail "usock nc did not print the first datagram to 239.1.2.3"
grep -qF "239.9.9.9" "$WORK/nc-join.log" &&
    fail "usock nc printed a datagram sent to 239.9.9.9, a group it did not join"
interrupt_nc "$JOIN_PID"
exec 5>&-

# tshark -n -r FILE ARG...: tshark reading usock's capture, checksums
# checked; its "running as root" warning goes to tshark.err.
read_capture() {
    local file=$1
    shift
    step tshark -n -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -r "$file" "$@" \
        2>>"$WORK/tshark.err"
}

say "what went over the wire, as tshark reads usock's capture"
read_capture "$WORK/join.pcap" -Y 'igmp || udp' >"$WORK/wire.txt" || fail "tshark failed"
cat "$WORK/wire.txt"
say "both of the kernel's datagrams reached usock (which dropped the one to 239.9.9.9)"
read_capture "$WORK/join.pcap" -Y 'udp && ip.src == 198.18.0.1' -T fields -e ip.dst \
    -e udp.dstport >"$WORK/datagrams.txt" || fail "tshark failed"
cat "$WORK/datagrams.txt"
[ "$(cat "$WORK/datagrams.txt")" = "$(printf '239.9.9.9\t5000\n239.1.2.3\t5000')" ] ||
    fail "expected the kernel's datagrams to 239.9.9.9 and 239.1.2.3 in the capture"

say "IGMPv3 reports from 198.18.0.2 to 224.0.0.22, TTL 1, Router Alert (148):"
say "a join for 239.1.2.3 (record type 4, CHANGE_TO_EXCLUDE_MODE, no sources)"
say "and, once nc closes its socket, a leave (3, CHANGE_TO_INCLUDE_MODE, no sources)"
read_capture "$WORK/join.pcap" -Y 'igmp.type == 0x22 && ip.src == 198.18.0.2' -T fields -e ip.src -e ip.dst \
    -e ip.ttl -e ip.opt.type -e igmp.version -e igmp.num_grp_recs -e igmp.record_type \
    -e igmp.num_src -e igmp.maddr >"$WORK/reports.txt" || fail "tshark failed"
cat "$WORK/reports.txt"
# report_with RECORD_TYPE: true when reports.txt has a well-formed report of
# one record of RECORD_TYPE for 239.1.2.3 with no sources.
report_with() {
    awk -F'\t' -v type="$1" '$1 == "198.18.0.2" && $2 == "224.0.0.22" && $3 == "1" &&
        $4 == "148" && $5 == "3" && $6 == "1" && $7 == type && $8 == "0" &&
        $9 == "239.1.2.3" { found = 1 } END { exit !found }' "$WORK/reports.txt"
}
report_with 4 || fail "no IGMPv3 join (CHANGE_TO_EXCLUDE_MODE) for 239.1.2.3 as described"
report_with 3 || fail "no IGMPv3 leave (CHANGE_TO_INCLUDE_MODE) for 239.1.2.3 as described"
awk -F'\t' '$9 != "239.1.2.3" { bad = 1 } END { exit bad }' "$WORK/reports.txt" ||
    fail "usock reported a group other than 239.1.2.3"
first_frame=$(read_capture "$WORK/join.pcap" -Y 'igmp || udp' -T fields -e frame.number \
    -e igmp.record_type -e ip.dst | head -n 1)
say "first IGMP or UDP frame (number, record type, destination): $first_frame"
[ "$(cut -f2 <<<"$first_frame")" = 4 ] ||
    fail "the join report was not the first thing usock sent (before any datagram arrived)"

say "tshark finds nothing malformed and no bad checksum in the capture"
read_capture "$WORK/join.pcap" -Y '_ws.malformed || _ws.expert.severity >= "error" ||
    ip.checksum.status == "Bad" || udp.checksum.status == "Bad" ||
    igmp.checksum.status == "Bad"' >"$WORK/malformed.txt" || fail "tshark failed"
cat "$WORK/malformed.txt"
[ ! -s "$WORK/malformed.txt" ] || fail "tshark found malformed or erroneous frames"
read_capture "$WORK/join.pcap" -Y 'igmp.checksum.status == "Good"' >"$WORK/good.txt" ||
    fail "tshark failed"
[ "$(wc -l <"$WORK/good.txt")" -ge 2 ] || fail "tshark did not verify the IGMP checksums"

# ---- 2: the kernel joins 239.4.5.6; usock sends to it ---------------------

cat >"$WORK/receive-group.py" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 6000))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.4.5.6"), socket.inet_aton("198.18.0.1")))
s.settimeout(10)
print("joined 239.4.5.6 on 198.18.0.1, port 6000", flush=True)
data, peer = s.recvfrom(65535)
print("got %r from %s:%d" % (data, peer[0], peer[1]), flush=True)
sys.exit(0 if data == b"hi\n" and peer[0] == "198.18.0.2" else 1)
PY

say "the kernel joins 239.4.5.6 on usk0 and waits on port 6000"
start kernel-group ip netns exec "$NS" "$PYTHON" "$WORK/receive-group.py"
KERNEL_PID=$LAST_PID
wait_for_log kernel-group "joined 239.4.5.6"
step ip -n "$NS" maddress show dev usk0 | grep -F 239.4.5.6 ||
    fail "the kernel does not list 239.4.5.6 on usk0"

say "usock nc sends one line to 239.4.5.6:6000"
echo "\$ echo hi | ip netns exec $NS usock nc -u -w 1 ${STACK[*]} --pcap send.pcap 239.4.5.6 6000" >&3
echo hi | ip netns exec "$NS" usock nc -u -w 1 "${STACK[@]}" --pcap "$WORK/send.pcap" \
    239.4.5.6 6000 >"$WORK/nc-send.out" 2>"$WORK/nc-send.err" 3>&-
status=$?
cat "$WORK/nc-send.out" "$WORK/nc-send.err"
[ "$status" -eq 0 ] || fail "usock nc to 239.4.5.6 exited $status, expected 0"
wait_exit "$KERNEL_PID" "the kernel's group member" 10
step cat "$WORK/kernel-group.log"
grep -qF "got b'hi\\n' from 198.18.0.2:" "$WORK/kernel-group.log" ||
    fail "the kernel did not get 'hi' from 198.18.0.2 on 239.4.5.6"
# (usock announces its own address with ARP at start; that one is not a question)
say "it went to 01:00:5e:04:05:06 (RFC 1112 6.4) with TTL 1, and needed no ARP"
read_capture "$WORK/send.pcap" -Y 'udp || (arp && arp.dst.proto_ipv4 != 198.18.0.2)' -T fields -e eth.dst -e ip.dst -e ip.ttl \
    -e udp.dstport -e arp.dst.proto_ipv4 >"$WORK/send.txt" || fail "tshark failed"
cat "$WORK/send.txt"
[ "$(cat "$WORK/send.txt")" = "$(printf '01:00:5e:04:05:06\t239.4.5.6\t1\t6000\t')" ] ||
    fail "expected one UDP frame to 01:00:5e:04:05:06, 239.4.5.6:6000, TTL 1, and no ARP"

# ---- 3: broadcast needs --broadcast ----------------------------------------

cat >"$WORK/receive-any.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7000))
s.settimeout(10)
print("listening on 0.0.0.0:7000", flush=True)
data, peer = s.recvfrom(65535)
print("got %r from %s:%d" % (data, peer[0], peer[1]), flush=True)
sys.exit(0 if data == b"to all\n" and peer[0] == "198.18.0.2" else 1)
PY

say "without --broadcast usock refuses to send to 198.18.0.255: Permission denied"
echo "\$ echo 'to all' | ip netns exec $NS usock nc -u -w 1 ${STACK[*]} --pcap nobcast.pcap 198.18.0.255 7000" >&3
echo "to all" | ip netns exec "$NS" usock nc -u -w 1 "${STACK[@]}" --pcap "$WORK/nobcast.pcap" \
    198.18.0.255 7000 >"$WORK/nc-nobcast.out" 2>"$WORK/nc-nobcast.err" 3>&-
status=$?
cat "$WORK/nc-nobcast.out" "$WORK/nc-nobcast.err"
say "exit status $status"
[ "$status" -eq 1 ] || fail "usock nc to 198.18.0.255 without --broadcast exited $status, expected 1"
[ "$(wc -l <"$WORK/nc-nobcast.err")" -eq 1 ] || fail "expected one line on stderr"
grep -q '^usock: nc: .*Permission denied' "$WORK/nc-nobcast.err" ||
    fail "usock nc did not say 'Permission denied'"
read_capture "$WORK/nobcast.pcap" -Y udp >"$WORK/nobcast.txt" || fail "tshark failed"
[ ! -s "$WORK/nobcast.txt" ] || fail "usock sent UDP all the same: $(cat "$WORK/nobcast.txt")"

# send_broadcast ADDRESS [OPTION...]: `usock nc -u --broadcast OPTION...`
# sends "to all" to ADDRESS:7000, capturing to bcast.pcap; its status is in
# $status.
send_broadcast() {
    local address=$1
    shift
    echo "\$ echo 'to all' | $(quote ip netns exec "$NS" usock nc -u --broadcast -w 1 "${STACK[@]}" \
        "$@" --pcap bcast.pcap "$address" 7000)" >&3
    echo "to all" | ip netns exec "$NS" usock nc -u --broadcast -w 1 "${STACK[@]}" "$@" \
        --pcap "$WORK/bcast.pcap" "$address" 7000 >"$WORK/nc-bcast.out" 2>"$WORK/nc-bcast.err" 3>&-
    status=$?
    cat "$WORK/nc-bcast.out" "$WORK/nc-bcast.err"
}

# broadcast_reaches_kernel ADDRESS [OPTION...]: send_broadcast, and the
# kernel's socket on 0.0.0.0:7000 gets it, in one frame to ff:ff:ff:ff:ff:ff.
broadcast_reaches_kernel() {
    local address=$1
    say "with --broadcast a datagram to $address reaches a kernel socket bound to 0.0.0.0:7000"
    start kernel-any ip netns exec "$NS" "$PYTHON" "$WORK/receive-any.py"
    KERNEL_PID=$LAST_PID
    wait_for_log kernel-any "listening on 0.0.0.0:7000"
    send_broadcast "$@"
    [ "$status" -eq 0 ] || fail "usock nc --broadcast to $address exited $status, expected 0"
    wait_exit "$KERNEL_PID" "the kernel's socket on 0.0.0.0:7000" 10
    step cat "$WORK/kernel-any.log"
    grep -qF "got b'to all\n' from 198.18.0.2:" "$WORK/kernel-any.log" ||
        fail "the kernel did not get 'to all' from 198.18.0.2"
    say "it went to ff:ff:ff:ff:ff:ff, and needed no ARP"
    read_capture "$WORK/bcast.pcap" -Y 'udp || (arp && arp.dst.proto_ipv4 != 198.18.0.2)' \
        -T fields -e eth.dst -e ip.dst -e udp.dstport -e arp.dst.proto_ipv4 \
        >"$WORK/bcast.txt" || fail "tshark failed"
    cat "$WORK/bcast.txt"
    [ "$(cat "$WORK/bcast.txt")" = "$(printf 'ff:ff:ff:ff:ff:ff\t%s\t7000\t' "$address")" ] ||
        fail "expected one UDP frame to ff:ff:ff:ff:ff:ff, $address:7000, and no ARP"
}

broadcast_reaches_kernel 198.18.0.255

# As on Linux, an unbound socket finds a route for 255.255.255.255 only where
# it finds one for any address: without a gateway there is none.
say "255.255.255.255 with no default route: Network is unreachable, as on Linux"
send_broadcast 255.255.255.255
say "exit status $status"
[ "$status" -eq 1 ] || fail "usock nc to 255.255.255.255 without a route exited $status, expected 1"
grep -q '^usock: nc: .*Network is unreachable' "$WORK/nc-bcast.err" ||
    fail "usock nc did not say 'Network is unreachable'"

broadcast_reaches_kernel 255.255.255.255 --gateway 198.18.0.1

pass
