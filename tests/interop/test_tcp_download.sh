#!/bin/bash
# test_tcp_download.sh - the kernel's curl downloads 100 MB from usock's http
# service (`usock up --serve http`) over a clean link, then 100 MB over an
# impaired path, and the SHA-256 of what arrives matches the file's.  The
# file is /bytes/100000000, whose content is deterministic (bytes 4k..4k+3
# hold k, big-endian), so the test makes the same 100 MB here and compares;
# /bytes/N is its first N bytes.
#
# The impaired path is impaired on both sides, both ways:
#   - the kernel's side: nftables in the test's namespace drops 2% of the
#     packets the kernel sends to usock (output chain) and 2% of those it
#     receives from usock (input chain);
#   - usock's side: --impair reorders 2%, duplicates 1% and corrupts 0.1% of
#     the frames in each direction, and delays each by 1 ms + up to 1 ms of
#     jitter (which reorders frames too).
# Durations are printed, not judged.
#
# The impaired path is slow for usock as sender (NewReno with limited
# transmit, no SACK or loss probe yet; 200 ms minimum RTO; jitter-made
# reordering sets off spurious fast retransmits): 100 MB takes about 100 s
# here, so interop tests get a 600 s ctest timeout.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24             (namespace 1)
#   kernel 198.18.0.1/24 --usk1 (TAP)-- usock --impair ... 198.18.0.2/24 (namespace 2)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need curl curl
need nft nftables
need python3 python3
need sha256sum coreutils

SIZE=100000000
IMPAIRED_SIZE=100000000
IMPAIRMENT=reorder=2%,dup=1%,corrupt=0.1%,delay=1ms,jitter=1ms,seed=11

step http_bytes_pattern "$SIZE" >"$WORK/file" || fail "cannot make the file"
step sha256sum "$WORK/file"

# fetch NS LABEL BYTES SECONDS: curl gets /bytes/BYTES into $WORK/LABEL
# within SECONDS, says how long it took, and fails the test unless the
# SHA-256 is that of the file's first BYTES bytes.
fetch() {
    local ns=$1 label=$2 bytes=$3 seconds=$4 out code size took expected
    expected=$(head -c "$bytes" "$WORK/file" | sha256sum | cut -d' ' -f1)
    out=$(step ip netns exec "$ns" curl -sS --max-time "$seconds" -o "$WORK/$label" \
        -w '%{http_code} %{size_download} %{time_total}' "http://198.18.0.2:8080/bytes/$bytes") ||
        fail "curl ($label) exited $? after $(stat -c %s "$WORK/$label" 2>/dev/null || echo 0) bytes"
    read -r code size took <<<"$out"
    say "$label: HTTP $code, $size bytes in $took s"
    [ "$code" = 200 ] || fail "$label: HTTP status $code, expected 200"
    step sha256sum "$WORK/$label"
    [ "$size" -eq "$bytes" ] || fail "$label: got $size bytes, expected $bytes"
    [ "$(sha "$WORK/$label")" = "$expected" ] ||
        fail "$label: the SHA-256 differs from that of the file's first $bytes bytes ($expected; first difference: $(cmp "$WORK/file" "$WORK/$label" | head -n 1))"
    say "$label: the SHA-256 matches the file's first $bytes bytes"
    rm -f "$WORK/$label"
}

# ---- 1: a clean link ------------------------------------------------------

make_namespace NS dl
usock_tap_up "$NS" tcpdl usock-up --serve http:8080

say "curl downloads the 100 MB file over a clean link"
fetch "$NS" clean "$SIZE" 60
for c in TcpOutSegs TcpRetransSegs; do
    show_counter tcpdl "$c"
done
usock_stop "$USOCK_PID" tcpdl

# ---- 2: an impaired path --------------------------------------------------

make_namespace NS2 dli
say "nftables drops 2% of the kernel's packets to usock and 2% of usock's to the kernel"
must ip netns exec "$NS2" nft add table inet loss
must ip netns exec "$NS2" nft add chain inet loss out '{ type filter hook output priority 0 ; }'
must ip netns exec "$NS2" nft add rule inet loss out ip daddr 198.18.0.2 numgen random mod 100 '<' 2 \
    counter drop
must ip netns exec "$NS2" nft add chain inet loss in '{ type filter hook input priority 0 ; }'
must ip netns exec "$NS2" nft add rule inet loss in ip saddr 198.18.0.2 numgen random mod 100 '<' 2 \
    counter drop

say "and usock reorders, duplicates, corrupts and delays its frames both ways"
start usock-impaired ip netns exec "$NS2" usock up --link tap:usk1 --addr 198.18.0.2/24 \
    --name tcpdli --impair "$IMPAIRMENT" --serve http:8080
IMPAIRED_PID=$LAST_PID
wait_for_link "$NS2" usk1
wait_for_control tcpdli "$IMPAIRED_PID"
must ip -n "$NS2" addr add 198.18.0.1/24 dev usk1
must ip -n "$NS2" link set usk1 up

say "curl downloads 100 MB of the file over the impaired path"
fetch "$NS2" impaired "$IMPAIRED_SIZE" 450

step ip netns exec "$NS2" nft list table inet loss | tee "$WORK/nft"
[ "$(grep -c 'packets [1-9].* drop' "$WORK/nft")" -eq 2 ] ||
    fail "nftables did not drop packets in both directions"
for c in TcpRetransSegs TcpFastRetrans TcpRecoveries TcpTimeouts TcpInCsumErrors IpInCsumErrors; do
    show_counter tcpdli "$c"
done
expect_counter_at_least tcpdli TcpRetransSegs 1
say "usock threw away the frames its own impairment corrupted (on the way in)"
[ $(($(counter tcpdli TcpInCsumErrors) + $(counter tcpdli IpInCsumErrors))) -ge 1 ] ||
    fail "usock counted no checksum errors, though 0.1% of the frames it received were corrupted"

usock_stop "$IMPAIRED_PID" tcpdli
pass
