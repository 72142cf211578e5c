#!/bin/bash
# test_tcp_echo.sh - the kernel's nc talks TCP to usock's built-in services:
# tcp-echo sends back every byte until the kernel's FIN (a few lines, a 5 MB
# random file, ten clients at once, 200 connections open at once with 10 KB
# echoed on each), tcp-discard eats what it is sent, a closed port refuses
# the connection with a reset, and `usock ss -t` lists the listening sockets
# and an established connection as ss(8) would.  Half-close: a kernel client
# that shuts down its sending side (shutdown(SHUT_WR)) still gets the echo of
# everything it sent, then EOF.
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

say "200 kernel connections at once: all connect, each gets its 10 KB back, and all stay open together"
cat >"$WORK/many.py" <<'PY'
import asyncio, os, sys, time

COUNT, SIZE = 200, 10000

async def connect(number):
    return await asyncio.wait_for(asyncio.open_connection("198.18.0.2", 7), 20)

async def echo(reader, writer):
    data = os.urandom(SIZE)
    writer.write(data)
    await writer.drain()
    echoed = await asyncio.wait_for(reader.readexactly(SIZE), 30)
    if echoed != data:
        raise RuntimeError("the echo differs from what was sent")

async def finish(reader, writer):
    # Half-close, then the echo service's EOF.
    writer.write_eof()
    rest = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    if rest:
        raise RuntimeError("%d unexpected bytes before EOF" % len(rest))

async def main():
    started = time.monotonic()
    connections = await asyncio.gather(*(connect(n) for n in range(COUNT)),
                                       return_exceptions=True)
    errors = [c for c in connections if isinstance(c, BaseException)]
    print("%d of %d connected in %.2f s" % (COUNT - len(errors), COUNT, time.monotonic() - started),
          flush=True)
    if errors:
        print("first error: %r" % errors[0], flush=True)
        return 1
    results = await asyncio.gather(*(echo(r, w) for r, w in connections), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print("%d echoes failed; first error: %r" % (len(errors), errors[0]), flush=True)
        return 1
    print("all %d echoed %d bytes each in %.2f s; holding them open" %
          (COUNT, SIZE, time.monotonic() - started), flush=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    results = await asyncio.gather(*(finish(r, w) for r, w in connections), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print("%d closes failed; first error: %r" % (len(errors), errors[0]), flush=True)
        return 1
    print("all %d half-closed and got EOF" % COUNT, flush=True)
    return 0

sys.exit(asyncio.run(main()))
PY
start many ip netns exec "$NS" "$PYTHON" "$WORK/many.py" "$WORK/many.release"
MANY_PID=$LAST_PID
wait_until 60 "the 200 connections to echo (see many.log)" grep -qE "holding them open|failed|error" \
    "$WORK/many.log"
step cat "$WORK/many.log"
grep -q "holding them open" "$WORK/many.log" || fail "not all 200 connections were echoed"
established_to_echo() {
    usock ss -t -n --name tcpecho | awk '$1 == "tcp" && $2 == "ESTAB" && $5 == "198.18.0.2:7"' | wc -l
}
echo "\$ usock ss -t -n --name tcpecho | grep -c 'ESTAB.*198.18.0.2:7 '" >&3
open_now=$(established_to_echo)
echo "$open_now" >&3
[ "$open_now" -ge 200 ] || fail "usock ss shows $open_now established connections to port 7, expected 200"
touch "$WORK/many.release"
wait_exit "$MANY_PID" "the 200 connections" 30
step tail -n 1 "$WORK/many.log"
expect_counter_at_least tcpecho TcpPassiveOpens $((passive + 212))
for c in TcpListenOverflows TcpListenDrops; do
    show_counter tcpecho "$c"
done

say "half-close: a kernel client sends 4 MB, shuts down its sending side, and still gets all of it back, then EOF"
cat >"$WORK/halfclose.py" <<'PY'
import os, socket, threading
data = os.urandom(4000000)
s = socket.create_connection(("198.18.0.2", 7), timeout=20)
received = bytearray()
after = 0
shut = threading.Event()
eof = threading.Event()
def read():
    global after
    while True:
        chunk = s.recv(1 << 16)
        if not chunk:
            eof.set()
            return
        received.extend(chunk)
        if shut.is_set():
            after += len(chunk)
reader = threading.Thread(target=read, daemon=True)
reader.start()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
shut.set()
print("sent %d bytes, then shutdown(SHUT_WR)" % len(data), flush=True)
reader.join(20)
if not eof.is_set():
    print("no EOF within 20 s; %d bytes back" % len(received))
    raise SystemExit(1)
print("got %d bytes back, %d of them after the shutdown, then EOF" % (len(received), after))
if bytes(received) != data:
    print("what came back differs from what was sent")
    raise SystemExit(1)
if after == 0:
    print("nothing came back after the shutdown")
    raise SystemExit(1)
PY
step timeout 30 ip netns exec "$NS" "$PYTHON" "$WORK/halfclose.py" ||
    fail "the half-closing kernel client did not get its 4 MB back and EOF"

say "tcp-discard takes 5 MB and sends nothing back"
PY
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
say "usock ss -ti shows the connection's details, and they agree with the kernel's ss -ti"
step usock ss -ti --name tcpecho | tee "$WORK/ss.info"
details=$(awk -v peer="198.18.0.1:$hold_port" 'found { print; exit } $6 == peer { found = 1 }' \
    "$WORK/ss.info")
for field in ts sack cubic 'wscale:[0-9]*,7' 'rto:[0-9]*' 'rtt:[0-9.]*/[0-9.]*' 'mss:1448' \
    'cwnd:[0-9]*' 'bytes_acked:[0-9]*' 'bytes_received:11'; do
    echo "$details" | grep -qw -- "$field" || fail "usock ss -ti: no '$field' in '$details'"
done
step ip netns exec "$NS" ss -tin dst 198.18.0.2 | tee "$WORK/ss.kernel"
kernel_scales=$(grep -o 'wscale:[0-9]*,[0-9]*' "$WORK/ss.kernel" | head -1)
our_scales=$(echo "$details" | grep -o 'wscale:[0-9]*,[0-9]*')
[ "wscale:${our_scales#*,},$(echo "$our_scales" | sed 's/wscale:\([0-9]*\),.*/\1/')" = \
    "$kernel_scales" ] || fail "window scales: usock says $our_scales, the kernel $kernel_scales"
say "usock's $our_scales is the kernel's $kernel_scales seen from the other end"
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
