#!/bin/bash
# test_traceroute.sh - traceroute's UDP probes to usock: each probe to a port
# nobody has (33434 and up), whatever its TTL, even 1 (usock is the first
# hop and the destination), draws an ICMP port unreachable from 198.18.0.2
# that quotes the probe as it arrived, so the kernel hands the error to the
# probing socket (IP_RECVERR: ECONNREFUSED, origin ICMP, type 3 code 3,
# offender 198.18.0.2); traceroute itself finds usock at hop 1; and a burst
# of probes is rate-limited as Linux limits it (icmp_ratelimit 1 s, burst
# 6), each error either sent or counted in IcmpOutRateLimited.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock up 198.18.0.2/24, one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need python3 python3
need tshark tshark
need traceroute traceroute

make_namespace NS trace
usock_tap_up "$NS" trace usock-up --pcap "$WORK/trace.pcap"

# probe.py ttl T...: one probe per TTL T, to ports 33434, 33435, ...
# probe.py burst N: N probes with TTL 64 at once, to ports 33434...
# Either way it prints, per probe, the ICMP error the kernel queued for it
# (or that none came within 2 s), and the number of errors last.
cat >"$WORK/probe.py" <<'PY'
import select, socket, struct, sys, time

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
SO_EE_ORIGIN_ICMP = 2
mode, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
ttls = args if mode == "ttl" else [64] * args[0]

# One socket per probe, as traceroute does: a queued error also sets the
# socket's pending error, which the next send on it would return.
sockets, sent = {}, {}
for i, ttl in enumerate(ttls):
    port = 33434 + i
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    s.bind(("198.18.0.1", 0))
    sockets[s.fileno()] = (s, port)
    s.sendto(b"traceroute probe %02d" % i, ("198.18.0.2", port))
    sent[port] = (ttl, time.monotonic())

errors = {}
deadline = time.monotonic() + 2
poller = select.poll()
for fd in sockets:
    poller.register(fd, select.POLLERR)  # a queued error shows as POLLERR
while len(errors) < len(sent) and time.monotonic() < deadline:
    for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
        s, port = sockets[fd]
        try:
            data, ancillary, flags, address = s.recvmsg(512, 512,
                                                        socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        poller.unregister(fd)
        for level, kind, payload in ancillary:
            if level != socket.IPPROTO_IP or kind != IP_RECVERR:
                continue
            errno_, origin, icmp_type, icmp_code = struct.unpack("=IBBB", payload[:7])
            offender = socket.inet_ntoa(payload[16 + 4:16 + 8])
            errors[address[1]] = (errno_, origin, icmp_type, icmp_code, offender,
                                  time.monotonic() - sent[address[1]][1], data)

good = 0
for port, (ttl, _) in sorted(sent.items()):
    if port not in errors:
        print("ttl %2d port %d: no ICMP error" % (ttl, port))
        continue
    errno_, origin, icmp_type, icmp_code, offender, rtt, data = errors[port]
    ok = (errno_ == 111 and origin == SO_EE_ORIGIN_ICMP and icmp_type == 3 and icmp_code == 3
          and offender == "198.18.0.2" and data == b"traceroute probe %02d" % (port - 33434))
    good += ok
    print("ttl %2d port %d: %s, ICMP type %d code %d from %s in %.3f ms%s"
          % (ttl, port, "port unreachable" if ok else "UNEXPECTED errno %d origin %d" % (errno_, origin),
             icmp_type, icmp_code, offender, rtt * 1000, "" if ok else " data %r" % data))
print("%d of %d probes drew a port unreachable" % (good, len(sent)))
PY

# ---- 1: one probe each with TTL 1, 2, 3 ------------------------------------

unreachables=$(counter trace IcmpOutDestUnreachs) || exit 1
no_ports=$(counter trace UdpNoPorts) || exit 1
say "probes with TTL 1, 2 and 3 to closed ports: each gets a port unreachable from 198.18.0.2"
step ip netns exec "$NS" "$PYTHON" "$WORK/probe.py" ttl 1 2 3 >"$WORK/ttl.out" 2>&1
cat "$WORK/ttl.out"
grep -qx '3 of 3 probes drew a port unreachable' "$WORK/ttl.out" ||
    fail "not every probe drew a port unreachable from 198.18.0.2"
expect_counter_at_least trace UdpNoPorts $((no_ports + 3))
expect_counter_at_least trace IcmpOutDestUnreachs $((unreachables + 3))

# ---- 2: traceroute -------------------------------------------------------

say "traceroute finds usock at the first hop and stops there"
step ip netns exec "$NS" traceroute -n -q 1 -N 1 -w 2 198.18.0.2 >"$WORK/traceroute.out" 2>&1
status=$?
cat "$WORK/traceroute.out"
[ "$status" -eq 0 ] || fail "traceroute exited $status"
[ "$(grep -c '^ *[0-9]' "$WORK/traceroute.out")" -eq 1 ] ||
    fail "traceroute printed more than one hop"
grep -Eq '^ 1  198\.18\.0\.2  [0-9.]+ ms$' "$WORK/traceroute.out" ||
    fail "traceroute's hop 1 is not '198.18.0.2  N ms' (no '!' flag)"

# ---- 3: the errors on the wire ----------------------------------------------

say "in usock's capture, each error quotes its probe's IP header (TTL as it arrived) and UDP header"
step tshark -n -r "$WORK/trace.pcap" -Y 'icmp.type == 3 && icmp.code == 3' -T fields \
    -e ip.src -e ip.dst -e ip.ttl -e udp.srcport -e udp.dstport -e icmp.checksum.status \
    >"$WORK/errors.txt" 2>"$WORK/tshark.err" || fail "tshark failed: $(cat "$WORK/tshark.err")"
cat "$WORK/errors.txt"
# ip.src and ip.ttl hold the outer, then the quoted header's value.
for ttl in 1 2 3; do
    grep -Eq "^198\.18\.0\.2,198\.18\.0\.1	198\.18\.0\.1,198\.18\.0\.2	64,$ttl	[0-9]+	$((33433 + ttl))	1\$" \
        "$WORK/errors.txt" ||
        fail "no port unreachable quoting the TTL $ttl probe to port $((33433 + ttl))"
done
step tshark -n -r "$WORK/trace.pcap" -Y '_ws.malformed || _ws.expert.severity >= "error"' \
    >"$WORK/malformed.txt" 2>"$WORK/tshark.err" || fail "tshark failed: $(cat "$WORK/tshark.err")"
cat "$WORK/malformed.txt"
[ ! -s "$WORK/malformed.txt" ] || fail "tshark found malformed or erroneous frames"

# ---- 4: a burst is rate-limited ----------------------------------------------

# At most 6 errors per second of credit go to one host; what the first steps
# spent has been partly refilled, so of 12 probes at once between 1 and 7 are
# answered, and every one of the others is counted as rate-limited.
say "12 probes at once: the burst limit answers some, IcmpOutRateLimited counts the rest"
unreachables=$(counter trace IcmpOutDestUnreachs) || exit 1
limited=$(counter trace IcmpOutRateLimited) || exit 1
step ip netns exec "$NS" "$PYTHON" "$WORK/probe.py" burst 12 >"$WORK/burst.out" 2>&1
cat "$WORK/burst.out"
answered=$(sed -n 's/^\([0-9]*\) of 12 probes drew a port unreachable$/\1/p' "$WORK/burst.out")
[ -n "$answered" ] || fail "probe.py did not finish"
if [ "$answered" -lt 1 ] || [ "$answered" -gt 7 ]; then
    fail "$answered of 12 probes answered, expected between 1 and 7"
fi
expect_counter_at_least trace IcmpOutRateLimited $((limited + 12 - answered))
show_counter trace IcmpOutDestUnreachs
[ "$(counter trace IcmpOutDestUnreachs)" -eq $((unreachables + answered)) ] ||
    fail "IcmpOutDestUnreachs does not match the $answered errors the kernel got"
[ "$(counter trace IcmpOutRateLimited)" -eq $((limited + 12 - answered)) ] ||
    fail "IcmpOutRateLimited does not count exactly the $((12 - answered)) unanswered probes"

usock_stop "$USOCK_PID" trace
pass
