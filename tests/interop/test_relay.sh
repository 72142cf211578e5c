#!/bin/bash
# test_relay.sh - `usock relay` joins two Ethernet segments through packet
# sockets, like a two-port bridge: the kernel in one namespace pings the
# kernel in another through it, losslessly as it is, and with losses when
# asked to impair the link.
#
#   ns A: a0 198.18.1.1/24 --veth-- a1 [ns R: usock relay packet:a1 packet:b1] b1 --veth-- b0 198.18.1.2/24 :ns B
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need ping iputils-ping

make_namespace A relay-a
make_namespace B relay-b
make_namespace R relay-r

say "two veth pairs, made inside the namespaces so the host never sees them"
must ip -n "$R" link add a1 type veth peer name a0 netns "$A"
must ip -n "$R" link add b1 type veth peer name b0 netns "$B"
must ip -n "$A" addr add 198.18.1.1/24 dev a0
must ip -n "$B" addr add 198.18.1.2/24 dev b0
must ip -n "$A" link set a0 up
must ip -n "$B" link set b0 up
must ip -n "$R" link set a1 up
must ip -n "$R" link set b1 up

say "without a relay, A cannot reach B"
step ip netns exec "$A" ping -q -c 1 -W 1 198.18.1.2 &&
    fail "A reached B with no relay running: the namespaces are not isolated"

say "a relay with the impairment off: every echo gets through"
start relay ip netns exec "$R" usock relay packet:a1 packet:b1 --impair loss=0%
RELAY_PID=$LAST_PID
wait_for_log relay "relaying"
step ip netns exec "$A" ping -q -c 20 -i 0.01 -W 1 198.18.1.2 | tee "$WORK/ping.clean"
grep -q '20 packets transmitted, 20 received, 0% packet loss' "$WORK/ping.clean" ||
    fail "through 'usock relay --impair loss=0%': expected 20 of 20, got: $(grep transmitted "$WORK/ping.clean")"
interrupt "$RELAY_PID" "usock relay"

say "a relay that drops 20% each way: some echoes are lost, most are not"
start relay-lossy ip netns exec "$R" usock relay packet:a1 packet:b1 --impair loss=20%,seed=1
RELAY_PID=$LAST_PID
wait_for_log relay-lossy "relaying"
step ip netns exec "$A" ping -q -c 50 -i 0.01 -W 1 198.18.1.2 | tee "$WORK/ping.lossy"
loss=$(sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p' "$WORK/ping.lossy")
loss=${loss%%.*}
[ -n "$loss" ] || fail "cannot read the loss from ping's summary"
# Each echo crosses the relay twice: 1 - 0.8^2 = 36% expected.
if [ "$loss" -lt 1 ] || [ "$loss" -gt 60 ]; then
    fail "through 'usock relay --impair loss=20%,seed=1': expected 1% to 60% loss, got $loss%"
fi
interrupt "$RELAY_PID" "usock relay"

pass
