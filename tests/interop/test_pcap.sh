#!/bin/bash
# test_pcap.sh - `usock up --pcap FILE` writes a capture that Wireshark's
# dissectors read without complaint: ARP, ICMP echo request and reply, and
# UDP all appear, and no frame is malformed.  Stopping usock with Ctrl-C
# flushes the file and exits 0.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24, in one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need ping iputils-ping
need nc netcat-openbsd
need tshark tshark

# tshark, run as root, warns about it on stderr; keep that out of the transcript.
tshark_read() {
    step tshark -n -r "$@" 2>"$WORK/tshark.err"
    local status=$?
    [ "$status" -eq 0 ] || fail "tshark -r $* exited $status: $(grep -v 'as user "root"' "$WORK/tshark.err")"
}

PCAP="$WORK/usock.pcap"

make_namespace NS pcap
usock_tap_up "$NS" pcap usock-up --pcap "$PCAP" --serve udp-echo:7

say "some traffic to capture: pings and a UDP echo"
must ip netns exec "$NS" ping -q -c 5 -i 0.05 -W 1 198.18.0.2
step ip netns exec "$NS" nc -u -w 1 198.18.0.2 7 <<<"captured line" | tee "$WORK/echoed"
[ "$(cat "$WORK/echoed")" = "captured line" ] || fail "udp-echo did not answer through the pcap link"

say "Ctrl-C: usock flushes the capture and exits 0"
usock_stop "$USOCK_PID" pcap
[ -s "$PCAP" ] || fail "$PCAP is missing or empty"

tshark_read "$PCAP" | tee "$WORK/all.txt"
grep -q 'Echo (ping) request' "$WORK/all.txt" || fail "tshark shows no ICMP echo request"
grep -q 'Echo (ping) reply' "$WORK/all.txt" || fail "tshark shows no ICMP echo reply"

say "both directions of the UDP exchange are there"
tshark_read "$PCAP" -Y 'udp && ip.src == 198.18.0.1 && ip.dst == 198.18.0.2' | tee "$WORK/udp.in"
[ -s "$WORK/udp.in" ] || fail "no UDP datagram from 198.18.0.1 to 198.18.0.2 in the capture"
tshark_read "$PCAP" -Y 'udp && ip.src == 198.18.0.2 && ip.dst == 198.18.0.1' | tee "$WORK/udp.out"
[ -s "$WORK/udp.out" ] || fail "no UDP datagram from 198.18.0.2 to 198.18.0.1 in the capture"

say "usock resolved the kernel's address (or answered its question) with ARP"
tshark_read "$PCAP" -Y arp | tee "$WORK/arp.txt"
[ -s "$WORK/arp.txt" ] || fail "tshark -Y arp shows no ARP frame"

say "no frame is malformed: the filter prints nothing"
tshark_read "$PCAP" -Y _ws.malformed | tee "$WORK/malformed.txt"
[ ! -s "$WORK/malformed.txt" ] || fail "tshark finds malformed frames"
say "and every checksum is right (tshark checks them only when asked)"
tshark_read "$PCAP" -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE \
    -Y 'ip.checksum.status == "Bad" || udp.checksum.status == "Bad" || icmp.checksum.status == "Bad"' |
    tee "$WORK/bad-checksums.txt"
[ ! -s "$WORK/bad-checksums.txt" ] || fail "tshark finds bad checksums in the capture"
tshark_read "$PCAP" -Y '_ws.expert.severity >= error' | tee "$WORK/expert.txt"
[ ! -s "$WORK/expert.txt" ] || fail "tshark's expert info reports errors in the capture"

pass
