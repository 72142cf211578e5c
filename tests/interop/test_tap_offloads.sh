#!/bin/bash
# test_tap_offloads.sh - usock on a TAP takes the kernel's offloads (virtio
# net header, TUNSETOFFLOAD): the kernel hands it TCP super-segments of up
# to 64 KiB with checksums it never computed, and usock hands the kernel the
# same.  20 MB of random bytes go through usock's TCP echo service and back
# (kernel nc -> usock -> kernel nc) and must come back byte for byte; then
# usock's counters must show super-segments both ways and checksums left to
# the link:
#   LinkInSuperSegments      frames the kernel segmented for us (GSO in)
#   LinkInChecksumOffloaded  frames whose checksum the kernel vouched for
#   LinkOutSuperSegments     super-segments usock asked the kernel to cut (TSO)
# Then the same with nftables dropping 2% of the packets each way on the
# kernel's side (whole super-segments, as the kernel sees them): loss
# recovery over super-segments must still bring every byte back.  Then with
# --no-offload: the bytes still come back, and the three counters stay at
# zero (the kernel segments and checksums everything).
#
#   kernel nc 198.18.0.1/24 --usk0 (TAP)-- usock up --serve tcp-echo:7 198.18.0.2/24
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nc netcat-openbsd
need nft nftables
need sha256sum coreutils

must head -c 20000000 /dev/urandom >"$WORK/random"

# echo_through NS LABEL: sends the file through usock's echo port and checks
# what comes back.
echo_through() {
    local ns=$1 label=$2
    step timeout 60 ip netns exec "$ns" nc -N 198.18.0.2 7 <"$WORK/random" >"$WORK/$label" ||
        fail "$label: nc to the echo port exited $?"
    step sha256sum "$WORK/random" "$WORK/$label"
    [ "$(sha "$WORK/$label")" = "$(sha "$WORK/random")" ] ||
        fail "$label: $(stat -c %s "$WORK/$label") bytes came back, not the 20000000 sent (first difference: $(cmp "$WORK/random" "$WORK/$label" | head -n 1))"
    say "$label: 20 MB came back byte for byte"
    rm -f "$WORK/$label"
}

# ---- 1: offloads on (the default) -----------------------------------------

make_namespace NS offload
usock_tap_up "$NS" tapoffload usock-up --serve tcp-echo:7
say "20 MB through usock's echo port with offloads on"
echo_through "$NS" offloaded
expect_counter_at_least tapoffload LinkInSuperSegments 1
expect_counter_at_least tapoffload LinkInChecksumOffloaded 1
expect_counter_at_least tapoffload LinkOutSuperSegments 1
for c in TcpInCsumErrors TcpRetransSegs LinkOutErrors; do
    show_counter tapoffload "$c"
done
[ "$(counter tapoffload TcpInCsumErrors)" -eq 0 ] ||
    fail "TcpInCsumErrors is $(counter tapoffload TcpInCsumErrors) with the checksums offloaded"
usock_stop "$USOCK_PID" tapoffload

# ---- 2: offloads on, with loss ----------------------------------------------

make_namespace NS3 offloadloss
usock_tap_up "$NS3" taploss usock-loss --serve tcp-echo:7
say "nftables drops 2% of the kernel's packets to usock and 2% of usock's to the kernel"
must ip netns exec "$NS3" nft add table inet loss
must ip netns exec "$NS3" nft add chain inet loss out '{ type filter hook output priority 0 ; }'
must ip netns exec "$NS3" nft add rule inet loss out ip daddr 198.18.0.2 numgen random mod 100 '<' 2 counter drop
must ip netns exec "$NS3" nft add chain inet loss in '{ type filter hook input priority 0 ; }'
must ip netns exec "$NS3" nft add rule inet loss in ip saddr 198.18.0.2 numgen random mod 100 '<' 2 counter drop
say "20 MB through usock's echo port with offloads on and loss both ways"
echo_through "$NS3" lossy
step ip netns exec "$NS3" nft list table inet loss
expect_counter_at_least taploss LinkOutSuperSegments 1
expect_counter_at_least taploss TcpRetransSegs 1
show_counter taploss TcpSackRecoveries
usock_stop "$USOCK_PID" taploss

# ---- 3: --no-offload --------------------------------------------------------

make_namespace NS2 nooffload
usock_tap_up "$NS2" tapplain usock-plain --no-offload --serve tcp-echo:7
say "20 MB through usock's echo port with --no-offload"
echo_through "$NS2" plain
for c in LinkInSuperSegments LinkInChecksumOffloaded LinkOutSuperSegments; do
    show_counter tapplain "$c"
    [ "$(counter tapplain "$c")" -eq 0 ] || fail "$c is $(counter tapplain "$c") with --no-offload"
done
usock_stop "$USOCK_PID" tapplain

pass
