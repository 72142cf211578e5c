#!/bin/bash
# test_tcp_echo.sh - the kernel's nc talks TCP to usock's built-in services:
# tcp-echo sends back every byte until the kernel's FIN (a few lines, a 5 MB
# random file, ten clients at once), tcp-discard eats what it is sent, a
# closed port refuses the connection with a reset, and `usock ss -t` lists
# the listening sockets and an established connection as ss(8) would.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24, in one namespace
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nc netcat-openbsd
need python3 python3
need sha256sum coreutils

make_namespace NS tcpe
usock_tap_up "$NS" tcpecho usock-up --serve tcp-echo:7 --serve tcp-discard:9

passive=$(counter tcpecho TcpPassiveOpens) || exit 1

say "three lines to the echo port come back as sent; nc -N sends FIN at EOF"
printf 'one\ntwo\nthree\n' >"$WORK/lines"
step timeout 10 ip netns exec "$NS" nc -N 198.18.0.2 7 <"$WORK/lines" | tee "$WORK/lines.echoed"
diff -u "$WORK/lines" "$WORK/lines.echoed" || fail "tcp-echo did not send back the three lines"

say "a 5 MB random file comes back identical"
must head -c 5000000 /dev/urandom >"$WORK/random"
start_ns=$(date +%s%N)
step timeout 30 ip netns exec "$NS" nc -N 198.18.0.2 7 <"$WORK/random" >"$WORK/random.echoed" ||
    fail "nc to the echo port exited $? with 5 MB"
say "5 MB echoed in $((($(date +%s%N) - start_ns) / 1000000)) ms"
step sha256sum "$WORK/random" "$WORK/random.echoed"
[ "$(sha "$WORK/random")" = "$(sha "$WORK/random.echoed")" ] ||
    fail "tcp-echo returned $(wc -c <"$WORK/random.echoed") bytes that differ from the 5 MB sent"

say "ten clients at once, 1 MB each, each gets its own bytes back"
cd "$WORK" || fail "cannot enter $WORK"
clients=()
for i in $(seq 10); do
    head -c 1000000 /dev/urandom >"$WORK/client$i"
    start "client$i" sh -c "timeout 30 ip netns exec $NS nc -N 198.18.0.2 7 <client$i >client$i.echoed"
    clients+=("$LAST_PID")
done
for i in $(seq 10); do
    pid=${clients[$((i - 1))]}
    wait "$pid"
    status=$?
    forget "$pid"
    [ "$status" -eq 0 ] || fail "concurrent client $i exited $status"
    [ "$(sha "$WORK/client$i")" = "$(sha "$WORK/client$i.echoed")" ] ||
        fail "concurrent client $i got back $(wc -c <"$WORK/client$i.echoed") bytes that differ from what it sent"
done
say "all ten came back intact"
expect_counter_at_least tcpecho TcpPassiveOpens $((passive + 12))

say "tcp-discard takes 5 MB and sends nothing back"
step timeout 30 ip netns exec "$NS" nc -N 198.18.0.2 9 <"$WORK/random" >"$WORK/discarded" ||
    fail "nc to the discard port exited $?"
[ ! -s "$WORK/discarded" ] || fail "tcp-discard sent back $(wc -c <"$WORK/discarded") bytes"

say "ss -t -a shows the services listening on every address"
step usock ss -t -a --name tcpecho | tee "$WORK/ss.all"
listen_row() {
    awk -v port="$2" '$1 == "tcp" && $2 == "LISTEN" &&
        ($5 == "0.0.0.0:" port || $5 == "*:" port) { found = 1 } END { exit !found }' "$1"
}
listen_row "$WORK/ss.all" 7 || fail "usock ss -t -a: no 'tcp LISTEN 0.0.0.0:7' row"
listen_row "$WORK/ss.all" 9 || fail "usock ss -t -a: no 'tcp LISTEN 0.0.0.0:9' row"

say "while a kernel client holds a connection open, ss -t shows it ESTAB"
cat >"$WORK/hold.py" <<'PY'
import os, socket, sys, time
s = socket.create_connection(("198.18.0.2", 7), timeout=5)
s.sendall(b"still here\n")
assert s.recv(100) == b"still here\n"
print("connected from %s:%d" % s.getsockname(), flush=True)
deadline = time.time() + 20
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.05)
s.close()
PY
start hold ip netns exec "$NS" "$PYTHON" "$WORK/hold.py" "$WORK/release"
HOLD_PID=$LAST_PID
wait_for_log hold "connected from"
hold_port=$(sed -n 's/^connected from 198\.18\.0\.1:\([0-9]*\)$/\1/p' "$WORK/hold.log")
[ -n "$hold_port" ] || fail "the holding client did not say its port"
step usock ss -t --name tcpecho | tee "$WORK/ss.estab"
awk -v peer="198.18.0.1:$hold_port" '$1 == "tcp" && $2 == "ESTAB" && $5 == "198.18.0.2:7" &&
    $6 == peer { found = 1 } END { exit !found }' "$WORK/ss.estab" ||
    fail "usock ss -t: no 'tcp ESTAB 198.18.0.2:7 198.18.0.1:$hold_port' row"
listen_row "$WORK/ss.estab" 7 && fail "usock ss -t (without -a) listed the listening socket"
touch "$WORK/release"
wait "$HOLD_PID" || fail "the holding client exited $?"
forget "$HOLD_PID"

say "a closed port refuses: nc exits nonzero, python sees ConnectionRefusedError"
resets=$(counter tcpecho TcpOutRsts) || exit 1
step timeout 10 ip netns exec "$NS" nc -w 3 198.18.0.2 5555 </dev/null
status=$?
say "nc exited with status $status"
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] ||
    fail "nc to closed port 5555 exited $status, expected a refusal"
cat >"$WORK/closed.py" <<'PY'
import socket
try:
    socket.create_connection(("198.18.0.2", 5555), timeout=3)
    print("connected to a closed port")
    raise SystemExit(1)
except ConnectionRefusedError as error:
    print(error)
except socket.timeout:
    print("no reset within 3 s")
    raise SystemExit(1)
PY
step ip netns exec "$NS" "$PYTHON" "$WORK/closed.py" ||
    fail "TCP to closed port 5555 did not draw 'Connection refused'"
expect_counter_at_least tcpecho TcpOutRsts $((resets + 2))

usock_stop "$USOCK_PID" tcpecho
pass
