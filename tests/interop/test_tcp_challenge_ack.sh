#!/bin/bash
# test_tcp_challenge_ack.sh - RFC 5961 on the wire: a scapy script on the
# kernel's side of the TAP makes its own TCP connection to usock's tcp-echo
# service (SYN, SYN-ACK, ACK; a line sent and echoed back) and then injects
#   1. a RST whose sequence number is inside the window but not RCV.NXT:
#      usock must answer with a challenge ACK - a bare ACK carrying
#      SEQ = SND.NXT and ACK = RCV.NXT - and keep the connection;
#   2. half a second later (usock, as Linux, sends at most one challenge ACK
#      per connection per 500 ms), a SYN inside the window: again a
#      challenge ACK with the same numbers, and the connection stays;
# after which `usock stats` shows TcpChallengeAcks up by 2 and
# TcpInWindowRstsIgnored up by 1, `usock ss -t` still lists the connection
# ESTAB, and a second line is echoed.  Last, a RST with exactly SEQ =
# RCV.NXT resets it: nothing answers it, TcpEstabResets grows, `usock ss -t`
# no longer lists it, and data sent on it draws a RST.
#
# The kernel has no socket for the script's connection, so it would answer
# usock's SYN-ACK with a RST of its own; an nftables rule in the output hook
# drops those.  The script sends with packet sockets (scapy's sendp), which
# that hook does not see, and reads with a sniffer on the TAP.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24, in one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nft nftables
need ping iputils-ping
"$PYTHON" -c 'import scapy' 2>/dev/null || need scapy python3-scapy

PORT=41234 # the script's source port

make_namespace NS chal
usock_tap_up "$NS" chal usock-up --serve tcp-echo:7

say "the kernel's own RSTs for the script's port are dropped"
must ip netns exec "$NS" nft add table inet chal
must ip netns exec "$NS" nft add chain inet chal out '{ type filter hook output priority 0 ; }'
must ip netns exec "$NS" nft add rule inet chal out ip daddr 198.18.0.2 tcp sport "$PORT" \
    tcp flags '&' rst == rst counter drop

must ip netns exec "$NS" ping -q -c 1 -W 2 198.18.0.2
usock_mac=$(ip -n "$NS" neigh show 198.18.0.2 dev usk0 | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }')
[ -n "$usock_mac" ] || fail "the kernel has no neighbour entry for 198.18.0.2 after a ping"
say "usock's MAC address is $usock_mac"

cat >"$WORK/challenge.py" <<'PY'
# The script's side of the conversation; prints what it sees, and exits 1
# at the first thing that is not as it should be.
import os, random, sys, threading, time
from scapy.all import AsyncSniffer, Ether, IP, TCP, Raw, conf, get_if_hwaddr, sendp

conf.verb = 0
IFACE, USOCK_MAC, PORT, RELEASE = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
US, USOCK, SERVICE = "198.18.0.1", "198.18.0.2", 7
OUR_MAC = get_if_hwaddr(IFACE)

def from_usock(p):
    return (IP in p and TCP in p and p[IP].src == USOCK and p[TCP].sport == SERVICE
            and p[TCP].dport == PORT)

captured = []
started = threading.Event()
sniffer = AsyncSniffer(iface=IFACE, lfilter=from_usock, store=False, prn=captured.append,
                       started_callback=started.set)
sniffer.start()
if not started.wait(5):
    print("FAIL: the sniffer did not start", flush=True)
    sys.exit(1)

def packets():
    return list(captured)

def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)

def describe(p):
    t = p[TCP]
    data = len(t.payload) if t.payload else 0
    return "flags %s seq %d ack %d len %d" % (t.flags, t.seq, t.ack, data)

def send(flags, seq, ack, data=b""):
    packet = (Ether(src=OUR_MAC, dst=USOCK_MAC) / IP(src=US, dst=USOCK) /
              TCP(sport=PORT, dport=SERVICE, flags=flags, seq=seq % 2**32, ack=ack % 2**32,
                  window=65535, options=[("MSS", 1460)] if "S" in flags else []))
    if data:
        packet = packet / Raw(data)
    sendp(packet, iface=IFACE)

def wait_for(what, seen, test, seconds=2.0):
    """The first packet from usock after the first `seen` that passes test."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for p in packets()[seen:]:
            if test(p):
                return p
        time.sleep(0.01)
    fail("no %s from usock within %.1f s; it sent: %s" % (
        what, seconds, "; ".join(describe(p) for p in packets()[seen:]) or "nothing"))

def quiet(seconds=0.3):
    """Waits until usock has sent nothing for `seconds`; returns the count."""
    count = len(packets())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = len(packets())
        if now == count:
            return count
        count = now
    fail("usock kept sending for 5 s: %s" % "; ".join(describe(p) for p in packets()[-5:]))

def echo(line):
    global rcv_nxt, snd_nxt
    seen = len(packets())
    send("PA", rcv_nxt, snd_nxt, line)
    rcv_nxt += len(line)
    got = b""
    deadline = time.monotonic() + 3
    while len(got) < len(line) and time.monotonic() < deadline:
        for p in packets()[seen:]:
            t = p[TCP]
            if t.payload and t.seq % 2**32 == snd_nxt % 2**32:
                got += bytes(t.payload)
                snd_nxt += len(t.payload)
                send("A", rcv_nxt, snd_nxt)
        seen = len(packets())
        time.sleep(0.01)
    if got != line:
        fail("sent %r, got back %r" % (line, got))
    print("sent %r and got it back" % line, flush=True)

def expect_challenge_ack(what):
    seen = quiet()
    if what == "RST":
        send("R", rcv_nxt + 100, 0)
        print("sent a RST with seq RCV.NXT+100 (in the window, not exact)", flush=True)
    else:
        send("S", rcv_nxt + 200, 0)
        print("sent a SYN with seq RCV.NXT+200 (in the window)", flush=True)
    p = wait_for("answer to the " + what, seen, lambda p: True)
    t = p[TCP]
    print("usock answered: " + describe(p), flush=True)
    if str(t.flags) != "A" or t.payload:
        fail("the answer to the %s is not a bare ACK: %s" % (what, describe(p)))
    if t.seq != snd_nxt % 2**32 or t.ack != rcv_nxt % 2**32:
        fail("the challenge ACK says seq %d ack %d; SND.NXT is %d and RCV.NXT %d" % (
            t.seq, t.ack, snd_nxt % 2**32, rcv_nxt % 2**32))
    print("a challenge ACK: seq = SND.NXT %d, ack = RCV.NXT %d" % (t.seq, t.ack), flush=True)
    time.sleep(0.2)
    extra = packets()[seen + 1:]
    if extra:
        fail("more than the challenge ACK after the %s: %s" % (
            what, "; ".join(describe(p) for p in extra)))

# ---- the handshake ----
iss = random.randrange(2**32)
seen = len(packets())
send("S", iss, 0)
synack = wait_for("SYN-ACK", seen, lambda p: p[TCP].flags.S and p[TCP].flags.A, 3)
if synack[TCP].ack != (iss + 1) % 2**32:
    fail("the SYN-ACK acknowledges %d, expected %d" % (synack[TCP].ack, (iss + 1) % 2**32))
rcv_nxt, snd_nxt = iss + 1, synack[TCP].seq + 1
send("A", rcv_nxt, snd_nxt)
print("connected from %s:%d" % (US, PORT), flush=True)
echo(b"first line\n")

# ---- the challenges ----
expect_challenge_ack("RST")
time.sleep(0.6)  # past the 500 ms between two challenge ACKs of one connection
expect_challenge_ack("SYN")
echo(b"still connected\n")
print("established; waiting for the shell to look", flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(RELEASE):
    if time.monotonic() > deadline:
        fail("not released within 20 s")
    time.sleep(0.05)

# ---- an exact RST ----
seen = quiet()
send("R", rcv_nxt, 0)
print("sent a RST with seq = RCV.NXT %d" % (rcv_nxt % 2**32), flush=True)
time.sleep(0.5)
if packets()[seen:]:
    fail("usock answered the exact RST: %s" % "; ".join(describe(p) for p in packets()[seen:]))
print("no answer to the exact RST", flush=True)
print("reset; waiting for the shell to look", flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(RELEASE + ".2"):
    if time.monotonic() > deadline:
        fail("not released within 20 s")
    time.sleep(0.05)
seen = len(packets())
send("PA", rcv_nxt, snd_nxt, b"anyone there?\n")
reset = wait_for("RST", seen, lambda p: p[TCP].flags.R)
print("data on the reset connection drew: " + describe(reset), flush=True)
if reset[TCP].seq != snd_nxt % 2**32:
    fail("the RST's seq is %d, expected our ACK %d" % (reset[TCP].seq, snd_nxt % 2**32))
sniffer.stop()
print("done", flush=True)
PY

challenges=$(counter chal TcpChallengeAcks) || exit 1
ignored=$(counter chal TcpInWindowRstsIgnored) || exit 1
resets=$(counter chal TcpEstabResets) || exit 1

start script ip netns exec "$NS" "$PYTHON" "$WORK/challenge.py" usk0 "$usock_mac" "$PORT" \
    "$WORK/release"
SCRIPT_PID=$LAST_PID
say "waiting for the script's connection, both challenges and the second echo"
# script_at WORD: true once the script printed WORD (or FAIL), or ended.
# shellcheck disable=SC2317 # called through wait_until
script_at() {
    grep -qE "^($1|FAIL)" "$WORK/script.log" || ! alive "$SCRIPT_PID"
}
wait_until 20 "the script to get through both challenges (see script.log)" script_at established
step cat "$WORK/script.log"
grep -q "^established" "$WORK/script.log" || fail "the script failed: $(grep '^FAIL' "$WORK/script.log")"

say "usock counted two challenge ACKs and one in-window RST ignored"
expect_counter_at_least chal TcpChallengeAcks $((challenges + 2))
expect_counter_at_least chal TcpInWindowRstsIgnored $((ignored + 1))
[ "$(counter chal TcpEstabResets)" -eq "$resets" ] || fail "TcpEstabResets grew: usock took the in-window RST"

connection_row() {
    usock ss -t -n --name chal | awk -v peer="198.18.0.1:$PORT" \
        '$1 == "tcp" && $5 == "198.18.0.2:7" && $6 == peer { print $2 }'
}
step usock ss -t -n --name chal | tee "$WORK/ss.after"
[ "$(connection_row)" = ESTAB ] ||
    fail "usock ss -t: the script's connection 198.18.0.1:$PORT is '$(connection_row)', expected ESTAB"

say "a RST with exactly SEQ = RCV.NXT resets the connection"
touch "$WORK/release"
wait_until 10 "the exact RST (see script.log)" script_at reset
grep -q "^reset" "$WORK/script.log" || { step cat "$WORK/script.log"; fail "the script failed: $(grep '^FAIL' "$WORK/script.log")"; }
expect_counter_at_least chal TcpEstabResets $((resets + 1))
step usock ss -t -n --name chal
[ -z "$(connection_row)" ] ||
    fail "usock ss -t still lists the script's connection as '$(connection_row)' after the exact RST"
touch "$WORK/release.2"
wait_exit "$SCRIPT_PID" "the scapy script" 10
step cat "$WORK/script.log"
[ "$(counter chal TcpChallengeAcks)" -eq $((challenges + 2)) ] ||
    fail "TcpChallengeAcks is $(counter chal TcpChallengeAcks), expected $((challenges + 2)): the exact RST drew one"

say "the kernel tried to reset the script's connection, and nftables dropped it"
step ip netns exec "$NS" nft list chain inet chal out | tee "$WORK/nft"
grep -q 'packets [1-9].* drop' "$WORK/nft" || fail "nftables dropped none of the kernel's RSTs"

usock_stop "$USOCK_PID" chal
pass
