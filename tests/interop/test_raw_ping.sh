#!/bin/bash
# test_raw_ping.sh - `usock ping` (a raw ICMP socket on a stack of its own)
# pings the kernel over a TAP device and prints what iputils ping prints:
# five echoes all answered; an address nobody has gives 100% loss and exit
# 1; a 3000-byte ping is fragmented both ways (the kernel reassembles the
# request and fragments its reply, usock reassembles that); -t sets the TTL
# of the requests; SIGINT ends an endless ping with its statistics; bad
# arguments exit 2 with one line.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock ping 198.18.0.2/24, one namespace
#
# The TAP device is made and configured before usock ping starts (it attaches
# to an existing device), so even its first request finds the kernel ready.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need python3 python3

make_namespace NS rawping
must ip -n "$NS" tuntap add dev usk0 mode tap
must ip -n "$NS" addr add 198.18.0.1/24 dev usk0
must ip -n "$NS" link set usk0 up

STACK=(--link tap:usk0 --addr 198.18.0.2/24)

# kernel_ip_counter NAME: the kernel's Ip NAME counter in the namespace.
kernel_ip_counter() {
    # shellcheck disable=SC2016 # awk's own $i
    ip netns exec "$NS" awk -v c="$1" '
        $1 == "Ip:" && !header { for (i = 2; i <= NF; i++) name[i] = $i; header = 1; next }
        $1 == "Ip:" && header { for (i = 2; i <= NF; i++) if (name[i] == c) print $i }
    ' /proc/net/snmp
}

# expect_line FILE REGEX WHAT: fails unless some line of FILE matches REGEX.
expect_line() {
    grep -Eq -- "$2" "$1" || fail "no line like '$3' in $(basename "$1"): $(cat "$1")"
}

# ---- 1: five echoes, iputils' format -------------------------------------

say "five echoes 0.2 s apart: every one answered, printed as iputils prints them"
step ip netns exec "$NS" usock ping -c 5 -i 0.2 "${STACK[@]}" 198.18.0.1 \
    >"$WORK/ping.out" 2>"$WORK/ping.err"
status=$?
cat "$WORK/ping.out" "$WORK/ping.err"
say "exit status $status"
[ "$status" -eq 0 ] || fail "usock ping exited $status, expected 0"
[ ! -s "$WORK/ping.err" ] || fail "usock ping wrote to stderr"
head -n 1 "$WORK/ping.out" | grep -Eq '^PING 198\.18\.0\.1 \(198\.18\.0\.1\) 56\(84\) bytes of data\.$' ||
    fail "the first line is not iputils' 'PING ... 56(84) bytes of data.'"
REPLY_RE='^64 bytes from 198\.18\.0\.1: icmp_seq=[0-9]+ ttl=64 time=[0-9]+(\.[0-9]+)? ms$'
replies=$(grep -Ec "$REPLY_RE" "$WORK/ping.out")
[ "$replies" -eq 5 ] || fail "expected 5 reply lines like iputils', got $replies"
for seq in 1 2 3 4 5; do
    grep -q "icmp_seq=$seq " "$WORK/ping.out" || fail "no reply line for icmp_seq=$seq"
done
expect_line "$WORK/ping.out" '^--- 198\.18\.0\.1 ping statistics ---$' "--- HOST ping statistics ---"
expect_line "$WORK/ping.out" '^5 packets transmitted, 5 received, 0% packet loss, time [0-9]+ms$' \
    "5 packets transmitted, 5 received, 0% packet loss, time Nms"
expect_line "$WORK/ping.out" \
    '^rtt min/avg/max/mdev = [0-9]+\.[0-9]{3}/[0-9]+\.[0-9]{3}/[0-9]+\.[0-9]{3}/[0-9]+\.[0-9]{3} ms$' \
    "rtt min/avg/max/mdev = a/b/c/d ms"
# Every line is one of those, or the blank line before the statistics.
others=$(grep -Evc -e "$REPLY_RE" -e '^PING ' -e '^--- ' -e ' packets transmitted, ' \
    -e '^rtt ' -e '^$' "$WORK/ping.out")
[ "$others" -eq 0 ] || fail "usock ping printed $others lines iputils would not"
time_ms=$(sed -nE 's/.*packet loss, time ([0-9]+)ms$/\1/p' "$WORK/ping.out")
if [ "$time_ms" -lt 750 ] || [ "$time_ms" -gt 1500 ]; then
    fail "time ${time_ms}ms for 5 requests 0.2 s apart, expected about 800ms"
fi

# ---- 2: nobody there ------------------------------------------------------

say "198.18.0.99 answers nobody's ARP: no replies, 100% packet loss, exit 1"
step ip netns exec "$NS" usock ping -c 2 -i 0.2 -W 1 "${STACK[@]}" 198.18.0.99 \
    >"$WORK/lost.out" 2>"$WORK/lost.err"
status=$?
cat "$WORK/lost.out" "$WORK/lost.err"
say "exit status $status"
[ "$status" -eq 1 ] || fail "usock ping of 198.18.0.99 exited $status, expected 1"
expect_line "$WORK/lost.out" '^2 packets transmitted, 0 received, 100% packet loss, time [0-9]+ms$' \
    "2 packets transmitted, 0 received, 100% packet loss"
grep -q ' bytes from ' "$WORK/lost.out" && fail "a reply from nobody?"
grep -q '^rtt ' "$WORK/lost.out" && fail "an rtt line without replies"

# ---- 3: fragments both ways -----------------------------------------------

say "-s 3000: a 3028-byte request leaves in fragments, the reply comes back in fragments"
reasm_before=$(kernel_ip_counter ReasmOKs)
frag_before=$(kernel_ip_counter FragOKs)
step ip netns exec "$NS" usock ping -c 3 -i 0.2 -s 3000 "${STACK[@]}" 198.18.0.1 \
    >"$WORK/big.out" 2>"$WORK/big.err"
status=$?
cat "$WORK/big.out" "$WORK/big.err"
say "exit status $status"
[ "$status" -eq 0 ] || fail "usock ping -s 3000 exited $status, expected 0"
head -n 1 "$WORK/big.out" | grep -q '^PING 198.18.0.1 (198.18.0.1) 3000(3028) bytes of data.$' ||
    fail "ping -s 3000: the first line should say 3000(3028)"
[ "$(grep -Ec '^3008 bytes from 198\.18\.0\.1: icmp_seq=[1-3] ttl=64 time=' "$WORK/big.out")" -eq 3 ] ||
    fail "ping -s 3000: expected 3 replies of 3008 bytes"
expect_line "$WORK/big.out" '^3 packets transmitted, 3 received, 0% packet loss' "3 received"
reasm_after=$(kernel_ip_counter ReasmOKs)
frag_after=$(kernel_ip_counter FragOKs)
say "the kernel reassembled $((reasm_after - reasm_before)) requests and fragmented $((frag_after - frag_before)) replies"
[ $((reasm_after - reasm_before)) -ge 3 ] || fail "the kernel did not reassemble 3 requests"
[ $((frag_after - frag_before)) -ge 3 ] || fail "the kernel did not fragment 3 replies"

# ---- 4: -t sets the TTL of the requests -----------------------------------

say "-t 7: the requests leave with TTL 7 (read back from --pcap)"
step ip netns exec "$NS" usock ping -c 1 -t 7 --pcap "$WORK/ttl.pcap" "${STACK[@]}" 198.18.0.1 \
    >"$WORK/ttl.out" 2>&1
status=$?
cat "$WORK/ttl.out"
[ "$status" -eq 0 ] || fail "usock ping -t 7 exited $status, expected 0"
cat >"$WORK/ttl.py" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
at, ttls = 24, []
while at + 16 <= len(data):
    length = struct.unpack("<I", data[at + 8:at + 12])[0]
    frame = data[at + 16:at + 16 + length]
    at += 16 + length
    # IPv4 (0x0800), ICMP, echo request, from 198.18.0.2
    if frame[12:14] == b"\x08\x00" and frame[23] == 1 and frame[34] == 8 and \
            frame[26:30] == bytes([198, 18, 0, 2]):
        ttls.append(frame[22])
print("echo request TTLs:", ttls)
sys.exit(0 if ttls == [7] else 1)
PY
step "$PYTHON" "$WORK/ttl.py" "$WORK/ttl.pcap" || fail "the echo request did not carry TTL 7"

# ---- 5: SIGINT ------------------------------------------------------------

say "without -c usock ping runs until Ctrl-C, then prints its statistics and exits 0"
start endless ip netns exec "$NS" usock ping -i 0.2 "${STACK[@]}" 198.18.0.1
ENDLESS_PID=$LAST_PID
wait_for_log endless "icmp_seq=2 "
interrupt "$ENDLESS_PID" "usock ping"
step cat "$WORK/endless.log"
expect_line "$WORK/endless.log" '^--- 198\.18\.0\.1 ping statistics ---$' "the statistics"
expect_line "$WORK/endless.log" '^[0-9]+ packets transmitted, [0-9]+ received, ' \
    "N packets transmitted, M received"

# ---- 6: mistakes ------------------------------------------------------------

say "bad arguments: one line on stderr, status 2; --help: usage, status 0"
for args in "-c 0 ${STACK[*]} 198.18.0.1" "-i 0.001 ${STACK[*]} 198.18.0.1" \
    "-s 65508 ${STACK[*]} 198.18.0.1" "-t 0 ${STACK[*]} 198.18.0.1" "${STACK[*]}" \
    "--link tap:usk0 198.18.0.1" "${STACK[*]} 198.18.0.x"; do
    # shellcheck disable=SC2086
    step usock ping $args >"$WORK/out" 2>"$WORK/err"
    status=$?
    cat "$WORK/err"
    [ "$status" -eq 2 ] || fail "usock ping $args exited $status, expected 2"
    [ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "usock ping $args: expected one line on stderr"
    grep -q '^usock: ' "$WORK/err" || fail "the error does not start with 'usock: '"
done
step usock ping --help >"$WORK/out" 2>"$WORK/err"
status=$?
head -n 1 "$WORK/out"
[ "$status" -eq 0 ] || fail "usock ping --help exited $status, expected 0"
grep -q '^usage: usock ping' "$WORK/out" || fail "usock ping --help printed no usage"
[ ! -s "$WORK/err" ] || fail "usock ping --help printed to stderr"

pass
