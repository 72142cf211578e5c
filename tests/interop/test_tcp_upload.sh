#!/bin/bash
# test_tcp_upload.sh - `usock nc` uploads a 100 MB random file to the
# kernel's `nc -l` over a clean link, then 100 MB of it over an impaired path,
# and the SHA-256 of what the kernel's nc wrote matches the file's.  usock nc
# shuts down its sending side at the end of its stdin; the kernel's nc then
# sees EOF, closes, and both exit 0.
#
# The impaired path is impaired on both sides, both ways:
#   - the kernel's side: nftables in the test's namespace drops 2% of the
#     packets the kernel sends to usock (output chain) and 2% of those it
#     receives from usock (input chain);
#   - usock's side: usock nc's --impair reorders 2%, duplicates 1% and
#     corrupts 0.1% of the frames in each direction, and delays each by 1 ms
#     + up to 1 ms of jitter (which reorders frames too).
# Durations are printed, not judged.
#
# The impaired path is slow for usock as sender (NewReno with limited
# transmit, no SACK or loss probe yet; 200 ms minimum RTO; jitter-made
# reordering sets off spurious fast retransmits): 100 MB takes about 100 s
# here, so interop tests get a 600 s ctest timeout.
#
#   kernel nc -l 198.18.0.1/24 --usk0 (TAP)-- usock nc 198.18.0.2/24             (namespace 1)
#   kernel nc -l 198.18.0.1/24 --usk1 (TAP)-- usock nc --impair ... 198.18.0.2/24 (namespace 2)
#
# usock nc connects as soon as it starts, so its TAP device is made and
# configured first (ip tuntap, persistent) and usock nc attaches to it.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nc netcat-openbsd
need nft nftables
need sha256sum coreutils

SIZE=100000000
IMPAIRED_SIZE=100000000
IMPAIRMENT=reorder=2%,dup=1%,corrupt=0.1%,delay=1ms,jitter=1ms,seed=13

must head -c "$SIZE" /dev/urandom >"$WORK/file"
must head -c "$IMPAIRED_SIZE" "$WORK/file" >"$WORK/file_impaired"
: >"$WORK/empty"
step sha256sum "$WORK/file" "$WORK/file_impaired"

# upload NS DEV LABEL FILE SECONDS [OPTION...]: the kernel's nc -l takes
# one connection on 198.18.0.1:5000 in NS and writes what it receives to
# $WORK/LABEL; usock nc OPTION... on tap:DEV sends FILE to it.  Both must
# exit 0 within SECONDS, and what arrived must be FILE.
upload() {
    local ns=$1 dev=$2 label=$3 file=$4 seconds=$5 started kernel_pid nc_pid
    shift 5
    start_io empty "$label" "$label-nc-l" ip netns exec "$ns" nc -l 198.18.0.1 5000
    kernel_pid=$LAST_PID
    wait_until 5 "the kernel's nc to listen on 198.18.0.1:5000" kernel_listening "$ns" 5000
    started=$(date +%s%N)
    start_io "$file" "$label.usock-out" "$label-usock-nc" ip netns exec "$ns" usock nc -v \
        --link "tap:$dev" --addr 198.18.0.2/24 "$@" 198.18.0.1 5000
    nc_pid=$LAST_PID
    wait_exit "$kernel_pid" "the kernel's nc -l" "$seconds"
    say "$label: the kernel's nc -l had $(stat -c %s "$WORK/$label") bytes after $(elapsed_ms "$started") ms"
    wait_exit "$nc_pid" "usock nc" 10
    step cat "$WORK/$label-usock-nc.log"
    grep -q "connected to 198.18.0.1 port 5000" "$WORK/$label-usock-nc.log" ||
        fail "$label: usock nc -v did not say it connected"
    [ ! -s "$WORK/$label.usock-out" ] ||
        fail "$label: usock nc printed $(stat -c %s "$WORK/$label.usock-out") bytes, but the kernel's nc sent none"
    step sha256sum "$WORK/$file" "$WORK/$label"
    [ "$(sha "$WORK/$label")" = "$(sha "$WORK/$file")" ] ||
        fail "$label: the $(stat -c %s "$WORK/$label") bytes received differ from the $(stat -c %s "$WORK/$file") sent (first difference: $(cmp "$WORK/$file" "$WORK/$label" | head -n 1))"
    say "$label: the SHA-256 matches"
    rm -f "$WORK/$label"
}

# ---- 1: a clean link ------------------------------------------------------

make_namespace NS up
tap_device "$NS" usk0
say "usock nc uploads the 100 MB file to the kernel's nc -l over a clean link"
upload "$NS" usk0 clean file 60

# ---- 2: an impaired path --------------------------------------------------

make_namespace NS2 upi
tap_device "$NS2" usk1
say "nftables drops 2% of the kernel's packets to usock and 2% of usock's to the kernel"
must ip netns exec "$NS2" nft add table inet loss
must ip netns exec "$NS2" nft add chain inet loss out '{ type filter hook output priority 0 ; }'
must ip netns exec "$NS2" nft add rule inet loss out ip daddr 198.18.0.2 numgen random mod 100 '<' 2 \
    counter drop
must ip netns exec "$NS2" nft add chain inet loss in '{ type filter hook input priority 0 ; }'
must ip netns exec "$NS2" nft add rule inet loss in ip saddr 198.18.0.2 numgen random mod 100 '<' 2 \
    counter drop

say "usock nc reorders, duplicates, corrupts and delays its frames both ways and uploads 100 MB of the file"
upload "$NS2" usk1 impaired file_impaired 450 --impair "$IMPAIRMENT"

step ip netns exec "$NS2" nft list table inet loss | tee "$WORK/nft"
[ "$(grep -c 'packets [1-9].* drop' "$WORK/nft")" -eq 2 ] ||
    fail "nftables did not drop packets in both directions"
say "the kernel's view of the connection's repairs"
step ip netns exec "$NS2" nstat -asz TcpInSegs TcpRetransSegs TcpInCsumErrors IpExtInCsumErrors \
    TcpExtTCPOFOQueue | tee "$WORK/nstat"
say "the kernel threw away the frames usock corrupted"
awk '$1 == "TcpInCsumErrors" || $1 == "IpExtInCsumErrors" { n += $2 } END { exit !(n > 0) }' \
    "$WORK/nstat" || fail "the kernel counted no checksum errors, though usock corrupted 0.1% of its frames"

pass
