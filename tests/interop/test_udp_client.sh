#!/bin/bash
# test_udp_client.sh - `usock nc -u` talks UDP with the kernel both ways:
# as a client it sends its stdin from a usock socket to a kernel socket and
# prints the reply; with -l it takes a kernel socket's datagram, prints it
# and answers from its stdin, from the port the kernel sent to.  Each exits
# 0 on its own once stdin is at EOF and the line goes quiet.  Also: a TCP
# `usock nc` says in one line why it cannot go on, and bad arguments exit 2.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock nc 198.18.0.2/24  (namespace 1)
#   kernel 198.18.0.1/24 --usk1 (TAP)-- usock nc -l 198.18.0.2/24 (namespace 2)
#
# usock nc makes its TAP device itself, and sends stdin as soon as it reads
# it, so stdin comes from a fifo written only once the kernel side of the
# device is configured.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need python3 python3

# start_reading FIFO LOG CMD...: `start` with CMD's stdin read from FIFO
# (a background job is otherwise given /dev/null); fds 5 and 6, which hold
# the fifos open for writing, stay with the test.
start_reading() {
    local fifo=$1 name=$2 log="$WORK/$2.log"
    shift 2
    echo "\$ $(quote "$@") <$(basename "$fifo") >$name.log 2>&1 &" >&3
    (trap - INT; exec "$@" <"$fifo" 3>&- 5>&- 6>&-) >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_exit PID WHAT SECONDS: waits for PID to exit by itself and fails the
# test unless it does within SECONDS with status 0.
wait_exit() {
    local pid=$1 what=$2 seconds=$3 status
    for _ in $(seq $((seconds * 20))); do
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && fail "$what (pid $pid) still running after $seconds s"
    wait "$pid"
    status=$?
    forget "$pid"
    say "$what exited with status $status"
    [ "$status" -eq 0 ] || fail "$what exited $status, expected 0"
}

# ---- 1: usock client -> kernel server -------------------------------------

make_namespace NS1 udpc
mkfifo "$WORK/client.in"
# The test holds the fifo open for writing (fd 5), so opening it to read
# does not block; usock nc alone reads it, and sees EOF when fd 5 closes.
exec 5<>"$WORK/client.in"

cat >"$WORK/server.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.bind(("198.18.0.1", 5000))
print("listening on 198.18.0.1:5000", flush=True)
data, peer = s.recvfrom(65535)
print("got %r from %s:%d" % (data, peer[0], peer[1]), flush=True)
if data != b"from usock\n" or peer[0] != "198.18.0.2":
    sys.exit(1)
s.sendto(b"from kernel\n", peer)
PY

start_reading "$WORK/client.in" nc-client ip netns exec "$NS1" usock nc -u --link tap:usk0 \
    --addr 198.18.0.2/24 198.18.0.1 5000
CLIENT_PID=$LAST_PID
wait_for_link "$NS1" usk0
must ip -n "$NS1" addr add 198.18.0.1/24 dev usk0
must ip -n "$NS1" link set usk0 up
start server ip netns exec "$NS1" "$PYTHON" "$WORK/server.py"
SERVER_PID=$LAST_PID
wait_for_log server "listening"

say "one line on usock nc's stdin goes out as one datagram to the kernel's socket"
echo "\$ echo 'from usock' >client.in" >&3
echo "from usock" >&5
exec 5>&-
wait_exit "$SERVER_PID" "the kernel's UDP server" 10
step cat "$WORK/server.log"
grep -qF "got b'from usock\\n' from 198.18.0.2:" "$WORK/server.log" ||
    fail "the kernel did not get 'from usock' from 198.18.0.2"

say "the kernel's reply comes out on usock nc's stdout; nc ends 2 s after stdin's EOF"
wait_exit "$CLIENT_PID" "usock nc -u" 10
step cat "$WORK/nc-client.log"
[ "$(cat "$WORK/nc-client.log")" = "from kernel" ] ||
    fail "usock nc printed '$(cat "$WORK/nc-client.log")', expected just 'from kernel'"

# ---- 2: kernel client -> usock nc -l --------------------------------------

make_namespace NS2 udpl
mkfifo "$WORK/listen.in"
exec 6<>"$WORK/listen.in"

cat >"$WORK/client.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"from kernel\n", ("198.18.0.2", 6000))
data, peer = s.recvfrom(65535)
print("got %r from %s:%d" % (data, peer[0], peer[1]), flush=True)
if data != b"from usock\n" or peer != ("198.18.0.2", 6000):
    sys.exit(1)
PY

say "-v says when usock nc -l is listening"
start_reading "$WORK/listen.in" nc-listen ip netns exec "$NS2" usock nc -u -l -v -p 6000 -w 1 \
    --link tap:usk1 --addr 198.18.0.2/24
LISTEN_PID=$LAST_PID
wait_for_link "$NS2" usk1
must ip -n "$NS2" addr add 198.18.0.1/24 dev usk1
must ip -n "$NS2" link set usk1 up
wait_for_log nc-listen "listening on 0.0.0.0 port 6000 (udp)"

say "the kernel's datagram to 198.18.0.2:6000 comes out on usock nc's stdout"
start kernel-client ip netns exec "$NS2" "$PYTHON" "$WORK/client.py"
KERNEL_CLIENT_PID=$LAST_PID
wait_for_log nc-listen "from kernel"
grep -q "connection from 198.18.0.1 port [0-9]* (udp)" "$WORK/nc-listen.log" ||
    fail "usock nc -l -v did not name its peer"

say "what usock nc reads next goes back to the sender, from port 6000"
echo "\$ echo 'from usock' >listen.in" >&3
echo "from usock" >&6
exec 6>&-
wait_exit "$KERNEL_CLIENT_PID" "the kernel's UDP client" 10
step cat "$WORK/kernel-client.log"
grep -qF "got b'from usock\\n' from 198.18.0.2:6000" "$WORK/kernel-client.log" ||
    fail "the kernel did not get 'from usock' from 198.18.0.2:6000"

say "-w 1: usock nc -l ends 1 s after stdin's EOF"
wait_exit "$LISTEN_PID" "usock nc -u -l" 10
step cat "$WORK/nc-listen.log"
[ "$(grep -vc '^usock: nc: ' "$WORK/nc-listen.log")" -eq 1 ] ||
    fail "usock nc -l printed more than the kernel's one line"

# ---- 3: TCP and mistakes ---------------------------------------------------

say "TCP goes through the same calls; where they fail, one line and status 1"
step ip netns exec "$NS2" usock nc -w 1 --link mem --addr 198.18.0.2/24 198.18.0.1 80 \
    </dev/null >"$WORK/out" 2>"$WORK/err"
status=$?
cat "$WORK/err"
say "exit status $status"
[ "$status" -eq 1 ] || fail "usock nc over TCP exited $status, expected 1"
[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "expected one line on stderr"
grep -q '^usock: nc: ' "$WORK/err" || fail "the error does not start with 'usock: nc: '"

say "bad arguments: one line, status 2; --help: usage, status 0"
step usock nc -u --link tap:usk2 --addr 198.18.0.2/24 198.18.0.1 >"$WORK/out" 2>"$WORK/err"
status=$?
cat "$WORK/err"
[ "$status" -eq 2 ] || fail "usock nc without PORT exited $status, expected 2"
[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "expected one line on stderr"
step usock nc -u -x --link tap:usk2 --addr 198.18.0.2/24 198.18.0.1 5000 \
    >"$WORK/out" 2>"$WORK/err"
status=$?
cat "$WORK/err"
[ "$status" -eq 2 ] || fail "usock nc -x exited $status, expected 2"
step usock nc --help >"$WORK/out" 2>"$WORK/err"
status=$?
head -n 1 "$WORK/out"
[ "$status" -eq 0 ] || fail "usock nc --help exited $status, expected 0"
grep -q '^usage: usock nc' "$WORK/out" || fail "usock nc --help printed no usage on stdout"
[ ! -s "$WORK/err" ] || fail "usock nc --help printed to stderr"

pass
