#!/bin/bash
# test_tcp_options_capture.sh - what usock's TCP options look like on the
# wire, read from captures taken on the kernel's side of the TAP (dumpcap)
# and decoded by tshark's TCP dissector:
#   1. the kernel's curl fetches /bytes/N from `usock up --serve http`: the
#      kernel's SYN and usock's SYN-ACK both carry MSS, window scale,
#      SACK-permitted and timestamps; usock's SYN-ACK echoes the SYN's TSval,
#      says MSS 1460 (MTU 1500) and window scale 7;
#   2. `usock nc` connects to a kernel `nc -l`: usock's SYN and the kernel's
#      SYN-ACK both carry the four options, with the same checks on usock's;
#   3. over a lossy link (`usock up --impair loss=5%,seed=N`, which drops 5%
#      of the frames each way): curl downloads 4 MB from the http service
#      and arrives with the right SHA-256, and the kernel's nc sends 2 MB to
#      tcp-discard; the capture shows SACK blocks (tcp.options.sack_le and
#      sack_re) in segments from the kernel (out-of-order data of the
#      download) and from usock (out-of-order data of the upload), and every
#      block is valid (RFC 2018, RFC 2883): left edge below right edge, above
#      the cumulative ACK of its segment, except that a first block may be a
#      D-SACK, entirely below the ACK or inside the second block;
#   4. over the same link the kernel's nc sends 2 MB to tcp-echo and reads
#      them back within 20 s, with the right SHA-256, and the SACK blocks of
#      both sides are valid.  Here usock's receive buffer fills (the echo
#      can only take what it can send back), which the download and the
#      discard upload never make it do.
# The captures keep only the first 128 bytes of each frame (headers and
# options are all tshark needs).
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock up 198.18.0.2/24                 (namespace 1)
#   kernel 198.18.0.1/24 --usk1 (TAP)-- usock nc 198.18.0.2/24                 (namespace 2)
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock up --impair loss 198.18.0.2/24   (namespace 3)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need curl curl
need nc netcat-openbsd
need tshark tshark
need dumpcap wireshark-common
need python3 python3
need sha256sum coreutils

LOSS_SIZE=4000000
UPLOAD_SIZE=2000000
ECHO_SECONDS=20
IMPAIRMENT=loss=5%,seed=5


# capture_start NS DEV LABEL: dumpcap on DEV in NS into $WORK/LABEL.pcapng
# (128 bytes of each frame); waits until it captures.  Sets CAPTURE_PID.
capture_start() {
    start "$3-capture" ip netns exec "$1" dumpcap -q -i "$2" -s 128 -w "$WORK/$3.pcapng"
    CAPTURE_PID=$LAST_PID
    wait_for_log "$3-capture" "Capturing on"
}

# captured PCAP FILTER MIN: true once $WORK/PCAP, which dumpcap is still
# writing, holds at least MIN frames that FILTER matches.
# shellcheck disable=SC2317 # called through wait_until
captured() {
    [ "$(tshark -n -r "$WORK/$1" -Y "$2" 2>/dev/null | wc -l)" -ge "$3" ]
}

# capture_stop PCAP FILTER MIN: waits up to 10 s for the capture to hold MIN
# frames matching FILTER (the kernel hands dumpcap frames in blocks, and
# dumpcap stopped at once would lose the last ones), then ends dumpcap.
capture_stop() {
    say "waiting for $3 frames matching '$2' in $1"
    wait_until 10 "$3 frames matching '$2' in $1" captured "$1" "$2" "$3"
    step kill -INT "$CAPTURE_PID"
    wait_exit "$CAPTURE_PID" dumpcap 10
}

# fields PCAP FILTER FIELD...: tshark prints FIELDs, '|'-separated, of each
# frame of $WORK/PCAP that FILTER matches.
fields() {
    local pcap=$1 filter=$2 args=() field
    shift 2
    for field in "$@"; do
        args+=(-e "$field")
    done
    tshark -n -r "$WORK/$pcap" -Y "$filter" -T fields -E separator='|' "${args[@]}" \
        2>"$WORK/tshark.err" ||
        fail "tshark -r $pcap exited $?: $(grep -v 'as user "root"' "$WORK/tshark.err")"
}

# check_handshake PCAP PORT CLIENT SERVER USOCK: the SYN from CLIENT and
# the SYN-ACK from SERVER on PORT (and any retransmission of them) all carry
# MSS, window scale, SACK-permitted and timestamps; the SYN-ACK echoes the
# SYN's TSval; the side at address USOCK says MSS 1460 and window scale 7.
check_handshake() {
    local pcap=$1 port=$2 client=$3 server=$4 usock=$5 problems
    echo "\$ tshark -r $pcap -Y 'tcp.flags.syn == 1 && tcp.port == $port' -T fields" \
        "-e ip.src -e tcp.flags.ack -e tcp.options.mss_val -e tcp.options.wscale.shift" \
        "-e tcp.options.sack_perm -e tcp.options.timestamp.tsval -e tcp.options.timestamp.tsecr" >&3
    fields "$pcap" "tcp.flags.syn == 1 && tcp.port == $port" ip.src tcp.flags.ack \
        tcp.options.mss_val tcp.options.wscale.shift tcp.options.sack_perm \
        tcp.options.timestamp.tsval tcp.options.timestamp.tsecr >"$WORK/$pcap.$port.syn"
    cat "$WORK/$pcap.$port.syn" >&3
    problems=$(awk -F'|' -v client="$client" -v server="$server" -v usock="$usock" '
        function problem(text) { print text; bad = 1 }
        {
            what = ($2 == 1 || $2 == "True") ? "SYN-ACK" : "SYN"
            who = what " from " $1
            if (what == "SYN" && $1 == client) syns++
            else if (what == "SYN-ACK" && $1 == server) { synacks++; if ($7 != "") echoed[$7] = 1 }
            else problem("unexpected " who)
            if ($3 == "") problem(who " has no MSS option")
            if ($4 == "") problem(who " has no window scale option")
            if ($5 == "") problem(who " has no SACK-permitted option")
            if ($6 == "") problem(who " has no timestamps option")
            if (what == "SYN" && $6 != "") tsval[$6] = 1
            if ($1 == usock && $3 != "" && $3 != 1460) problem(who " says MSS " $3 ", expected 1460")
            if ($1 == usock && $4 != "" && $4 != 7) problem(who " says window scale " $4 ", expected 7")
        }
        END {
            if (!syns) problem("no SYN from " client)
            if (!synacks) problem("no SYN-ACK from " server)
            for (t in echoed) if (!(t in tsval)) problem("the SYN-ACK echoes TSecr " t ", which no SYN sent")
            exit bad
        }' "$WORK/$pcap.$port.syn") ||
        fail "handshake on port $port in $pcap: $(echo "$problems" | paste -sd';' | sed 's/;/; /g')"
    say "port $port: SYN from $client and SYN-ACK from $server carry MSS, window scale, SACK-permitted and timestamps"
}

# ---- 1: usock's SYN-ACK (kernel curl -> usock --serve http) ---------------

make_namespace NS1 topt
usock_tap_up "$NS1" topt usock-up --serve http:8080
capture_start "$NS1" usk0 synack

say "curl fetches 100 kB from usock's http service"
step http_bytes_pattern 100000 >"$WORK/small.expected" || fail "cannot make the pattern"
step ip netns exec "$NS1" curl -sS --max-time 10 -o "$WORK/small" "http://198.18.0.2:8080/bytes/100000" ||
    fail "curl from usock's http service exited $?"
[ "$(sha "$WORK/small")" = "$(sha "$WORK/small.expected")" ] ||
    fail "the 100 kB from /bytes/100000 differ from the pattern"
capture_stop synack.pcapng "tcp.port == 8080 && tcp.flags.fin == 1" 2
check_handshake synack.pcapng 8080 198.18.0.1 198.18.0.2 198.18.0.2
usock_stop "$USOCK_PID" topt

# ---- 2: usock's SYN (usock nc -> kernel nc -l) ----------------------------

make_namespace NS2 topc
tap_device "$NS2" usk1
capture_start "$NS2" usk1 syn

say "the kernel's nc listens; usock nc connects, sends a line and half-closes"
: >"$WORK/empty"
start_io empty kernel.out kernel-nc timeout 20 ip netns exec "$NS2" nc -l -N 198.18.0.1 5000
KERNEL_PID=$LAST_PID
wait_until 5 "the kernel's nc to listen on port 5000" kernel_listening "$NS2" 5000
echo "options on the wire" >"$WORK/line"
start_io line usock.out usock-nc timeout 20 ip netns exec "$NS2" usock nc -v --link tap:usk1 \
    --addr 198.18.0.2/24 198.18.0.1 5000
NC_PID=$LAST_PID
wait_exit "$KERNEL_PID" "the kernel's nc -l" 20
wait_exit "$NC_PID" "usock nc" 20
diff -u "$WORK/line" "$WORK/kernel.out" || fail "the kernel's nc -l did not get usock nc's line"
capture_stop syn.pcapng "tcp.port == 5000 && tcp.flags.fin == 1" 2
check_handshake syn.pcapng 5000 198.18.0.2 198.18.0.1 198.18.0.2

# check_sacks PCAP WHO ADDRESS PORT REQUIRED: the SACK blocks in segments
# from ADDRESS (WHO) on PORT in $WORK/PCAP are all valid (see the top);
# with REQUIRED=yes there must be some.
check_sacks() {
    local pcap=$1 who=$2 address=$3 port=$4 required=$5 filter count dsacks bad
    filter="ip.src == $address && tcp.port == $port && tcp.options.sack_le"
    echo "\$ tshark -r $pcap -Y '$filter' -T fields -e tcp.srcport -e tcp.ack" \
        "-e tcp.options.sack_le -e tcp.options.sack_re | head -n 3" >&3
    fields "$pcap" "$filter" tcp.srcport tcp.ack tcp.options.sack_le tcp.options.sack_re \
        >"$WORK/$pcap.$who.sack"
    head -n 3 "$WORK/$pcap.$who.sack" >&3
    count=$(wc -l <"$WORK/$pcap.$who.sack")
    dsacks=$(awk -F'|' '{ split($4, right, ","); if (right[1] + 0 <= $2 + 0) n++ } END { print n + 0 }' \
        "$WORK/$pcap.$who.sack")
    say "$count segments from $who ($address) on port $port carry SACK blocks, $dsacks of them led by a D-SACK below the ACK"
    [ "$count" -gt 0 ] || [ "$required" != yes ] ||
        fail "no segment from $who ($address) on port $port carries a SACK block under 5% loss"
    bad=$(awk -F'|' '{
            n = split($3, left, ","); split($4, right, ","); ack = $2 + 0
            for (i = 1; i <= n; i++) {
                le = left[i] + 0; re = right[i] + 0
                if (le >= re) why = "its left edge is not below its right edge"
                else if (le > ack) continue
                else if (i == 1 && re <= ack) continue
                else if (i == 1 && n > 1 && le >= left[2] + 0 && re <= right[2] + 0) continue
                else why = "it covers the ACK or bytes below it, and it is not a D-SACK"
                printf "port %s ACKs %d with SACK block %d-%d: %s\n", $1, ack, le, re, why
                exit
            }
        }' "$WORK/$pcap.$who.sack")
    [ -z "$bad" ] || fail "a SACK block from $who is invalid (the first one shown): $bad"
}

# ---- 3: SACK blocks both ways over a lossy link ---------------------------

make_namespace NS3 tops
say "usock drops 5% of the frames it sends and 5% of those it receives"
usock_tap_up "$NS3" tops usock-lossy --impair "$IMPAIRMENT" --serve http:8080 \
    --serve tcp-discard:9 --serve tcp-echo:7
capture_start "$NS3" usk0 sack

say "curl downloads $LOSS_SIZE bytes over the lossy link"
step http_bytes_pattern "$LOSS_SIZE" >"$WORK/download.expected" || fail "cannot make the pattern"
start_ns=$(date +%s%N)
step ip netns exec "$NS3" curl -sS --max-time 60 -o "$WORK/download" \
    "http://198.18.0.2:8080/bytes/$LOSS_SIZE" ||
    fail "curl over the lossy link exited $? after $(stat -c %s "$WORK/download" 2>/dev/null || echo 0) bytes"
say "downloaded in $(elapsed_ms "$start_ns") ms"
step sha256sum "$WORK/download.expected" "$WORK/download"
[ "$(sha "$WORK/download")" = "$(sha "$WORK/download.expected")" ] ||
    fail "the $LOSS_SIZE bytes downloaded over the lossy link differ from the pattern"

say "the kernel's nc sends $UPLOAD_SIZE random bytes to tcp-discard"
must head -c "$UPLOAD_SIZE" /dev/urandom >"$WORK/upload"
start_ns=$(date +%s%N)
step timeout 30 ip netns exec "$NS3" nc -N 198.18.0.2 9 <"$WORK/upload" ||
    fail "nc to tcp-discard over the lossy link exited $?"
say "uploaded in $(elapsed_ms "$start_ns") ms"
capture_stop sack.pcapng "(tcp.port == 8080 || tcp.port == 9) && tcp.flags.fin == 1" 4
for c in TcpRetransSegs TcpSackRecoveries TcpSackBlocksSent TcpDsackSent TcpOutOfOrderQueued; do
    show_counter tops "$c"
done
check_sacks sack.pcapng kernel 198.18.0.1 8080 yes
check_sacks sack.pcapng usock 198.18.0.2 9 yes

# ---- 4: an echo over the lossy link ---------------------------------------

capture_start "$NS3" usk0 echo
say "the kernel's nc sends $UPLOAD_SIZE random bytes to tcp-echo and reads them back"
start_ns=$(date +%s%N)
start_io upload echoed echo-nc ip netns exec "$NS3" nc -N 198.18.0.2 7
ECHO_PID=$LAST_PID
for _ in $(seq $((ECHO_SECONDS * 20))); do
    alive "$ECHO_PID" || break
    sleep 0.05
done
if alive "$ECHO_PID"; then
    echo_status="still running after $ECHO_SECONDS s"
    say "the echo is not done after $ECHO_SECONDS s: $(wc -c <"$WORK/echoed") bytes back; both ends say"
    step usock ss -ti --name tops | tee "$WORK/ss.usock"
    step ip netns exec "$NS3" ss -tin dst 198.18.0.2 | tee "$WORK/ss.kernel"
    stop_process "$ECHO_PID"
    forget "$ECHO_PID"
    # Judge the SACK blocks captured so far (a bad one explains a stall
    # best), then fail.  dumpcap gets a moment to write what it has.
    sleep 1
    step kill -INT "$CAPTURE_PID"
    wait_exit "$CAPTURE_PID" dumpcap 10
else
    wait "$ECHO_PID"
    echo_status=$?
    forget "$ECHO_PID"
    say "nc exited with status $echo_status after $(elapsed_ms "$start_ns") ms"
    [ "$echo_status" -eq 0 ] && capture_stop echo.pcapng "tcp.port == 7 && tcp.flags.fin == 1" 2
fi
check_sacks echo.pcapng usock 198.18.0.2 7 no
check_sacks echo.pcapng kernel 198.18.0.1 7 no
[ "$echo_status" = 0 ] ||
    fail "nc to tcp-echo over the lossy link: $echo_status, with $(wc -c <"$WORK/echoed") of $UPLOAD_SIZE bytes back"
step sha256sum "$WORK/upload" "$WORK/echoed"
[ "$(sha "$WORK/upload")" = "$(sha "$WORK/echoed")" ] ||
    fail "tcp-echo over the lossy link returned $(wc -c <"$WORK/echoed") bytes that differ from the $UPLOAD_SIZE sent"

usock_stop "$USOCK_PID" tops
pass
