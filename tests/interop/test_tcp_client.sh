#!/bin/bash
# test_tcp_client.sh - `usock nc` talks TCP with the kernel both ways:
# as a client it sends a 2 MB file to a kernel server, which gets it intact
# and answers with 2 MB that usock nc prints intact; with -l it accepts a
# kernel nc's connection, takes its 2 MB and sends 2 MB of its own back.
# Each side half-closes at EOF (usock nc always, the kernel's nc with -N),
# and each usock nc exits 0 on its own once both directions are done.  The
# kernel server answers only after usock nc's half-close: it reads to EOF,
# sees its socket in CLOSE_WAIT, and starts its reply with the count of
# bytes it had at EOF, which usock nc must print.  Last, usock nc to a
# kernel port nobody listens on is refused: exit 1, "Connection refused".
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock nc 198.18.0.2/24     (namespace 1)
#   kernel 198.18.0.1/24 --usk1 (TAP)-- usock nc -l 198.18.0.2/24  (namespace 2)
#
# usock nc connects as soon as it starts, so its TAP device is made and
# configured first (ip tuntap, persistent) and usock nc attaches to it.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nc netcat-openbsd
need python3 python3
need sha256sum coreutils

# same WHAT SENT RECEIVED: fails unless the two files under $WORK are equal.
same() {
    step sha256sum "$WORK/$2" "$WORK/$3"
    [ "$(sha "$WORK/$2")" = "$(sha "$WORK/$3")" ] ||
        fail "$1: $(wc -c <"$WORK/$3") bytes arrived that differ from the $(wc -c <"$WORK/$2") sent"
}

must head -c 2000000 /dev/urandom >"$WORK/upload"
must head -c 2000000 /dev/urandom >"$WORK/reply"

# ---- 1: usock nc -> kernel server -----------------------------------------

make_namespace NS1 tcpc
tap_device "$NS1" usk0

cat >"$WORK/server.py" <<'PY'
import socket, sys
listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.settimeout(20)
listener.bind(("198.18.0.1", 5000))
listener.listen(1)
print("listening on 198.18.0.1:5000", flush=True)
connection, peer = listener.accept()
connection.settimeout(20)
print("connection from %s:%d" % peer, flush=True)
received = bytearray()
while True:
    data = connection.recv(1 << 16)
    if not data:
        break
    received += data
with open(sys.argv[1], "wb") as out:
    out.write(received)
print("received %d bytes, then EOF" % len(received), flush=True)
# tcpi_state, the first byte of struct tcp_info; 8 is TCP_CLOSE_WAIT: the
# peer sent its FIN, and this side may still send.
state = connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
print("socket state %d%s" % (state, " (CLOSE_WAIT)" if state == 8 else ""), flush=True)
if state != 8:
    sys.exit(1)
connection.sendall(b"EOF after %d bytes\n" % len(received))
with open(sys.argv[2], "rb") as reply:
    connection.sendall(reply.read())
connection.close()
print("sent the reply and closed", flush=True)
if peer[0] != "198.18.0.2":
    sys.exit(1)
PY
start server ip netns exec "$NS1" "$PYTHON" "$WORK/server.py" "$WORK/server.received" \
    "$WORK/reply"
SERVER_PID=$LAST_PID
wait_for_log server "listening"

say "usock nc sends its 2 MB stdin, shuts down its side, and prints the reply sent after that"
start_ns=$(date +%s%N)
start_io upload client.out nc-client ip netns exec "$NS1" usock nc -v --link tap:usk0 \
    --addr 198.18.0.2/24 198.18.0.1 5000
CLIENT_PID=$LAST_PID
wait_exit "$SERVER_PID" "the kernel's TCP server" 30
step cat "$WORK/server.log"
grep -q "connection from 198.18.0.2:" "$WORK/server.log" ||
    fail "the kernel's connection did not come from 198.18.0.2"
same "usock nc -> kernel" upload server.received
wait_exit "$CLIENT_PID" "usock nc" 30
say "both ways in $(elapsed_ms "$start_ns") ms"
step cat "$WORK/nc-client.log"
grep -qx "socket state 8 (CLOSE_WAIT)" "$WORK/server.log" ||
    fail "the kernel's socket was not in CLOSE_WAIT at EOF"
step head -n 1 "$WORK/client.out"
{ echo "EOF after 2000000 bytes"; cat "$WORK/reply"; } >"$WORK/reply.expected"
same "kernel -> usock nc, after its half-close" reply.expected client.out

# ---- 2: kernel nc -> usock nc -l ------------------------------------------

make_namespace NS2 tcpl
tap_device "$NS2" usk1

say "usock nc -l accepts one connection on port 6000"
start_io reply listen.out nc-listen ip netns exec "$NS2" usock nc -l -v -p 6000 \
    --link tap:usk1 --addr 198.18.0.2/24
LISTEN_PID=$LAST_PID
wait_for_log nc-listen "listening on"

say "the kernel's nc sends 2 MB and takes usock nc's 2 MB; -N: FIN at its EOF"
start_io upload kernel.out kernel-client timeout 30 ip netns exec "$NS2" nc -N 198.18.0.2 6000
KERNEL_PID=$LAST_PID
wait_exit "$KERNEL_PID" "the kernel's nc" 30
wait_exit "$LISTEN_PID" "usock nc -l" 30
step cat "$WORK/nc-listen.log"
grep -q "connection from 198.18.0.1" "$WORK/nc-listen.log" ||
    fail "usock nc -l -v did not name its peer 198.18.0.1"
same "kernel nc -> usock nc -l" upload listen.out
same "usock nc -l -> kernel nc" reply kernel.out

# ---- 3: usock nc -> a closed kernel port ----------------------------------

say "usock nc to a kernel port nobody listens on is refused"
kernel_listening "$NS1" 5001 && fail "something listens on 198.18.0.1:5001"
step timeout 20 ip netns exec "$NS1" usock nc --link tap:usk0 --addr 198.18.0.2/24 \
    198.18.0.1 5001 </dev/null 2>&1 | tee "$WORK/refused"
status=${PIPESTATUS[0]}
say "usock nc exited with status $status"
[ "$status" -eq 1 ] || fail "usock nc to closed port 5001 exited $status, expected 1"
grep -q "Connection refused" "$WORK/refused" ||
    fail "usock nc to closed port 5001 did not say 'Connection refused'"

pass
