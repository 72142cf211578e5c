#!/bin/bash
# test_run_calls.sh - the descriptor, process and waiting calls of a program
# run on usock (`usock run`) behave on its usock sockets as the kernel's do
# on its own.  The program is preload_probe (tests/interop/preload_probe.c,
# built beside usock), which asserts on real data and prints a line for
# each assertion that failed.  Each check runs first on the kernel's
# sockets (so what it asserts is the kernel's behaviour), then on usock,
# against a kernel peer (peer.py: echoes, holds data until told, reports
# each EOF it sees):
#   1. dup, dup2 (onto a free number, and onto a usock socket: that socket
#      is closed as the kernel closes the target, unless another copy holds
#      it), dup3 O_CLOEXEC and fcntl F_DUPFD/F_DUPFD_CLOEXEC: each copy
#      carries the connection after the original is closed, getpeername
#      through a copy, FD_CLOEXEC on the new number only, the kernel peer
#      sees EOF only when the last copy is closed, O_NONBLOCK set through
#      one copy is in force through the other; a program a child execs
#      finds the close-on-exec copies closed and the others working;
#      dup2/dup3 from a number that is not open fail EBADF and leave the
#      target alone; dup2 onto a socket in an epoll set takes its
#      registration away;
#   2. fork: the probe listens on 198.18.0.2 and forks; parent and child
#      each serve one of two kernel clients, while `usock ss -lp` shows the
#      listener once; after the child exits the parent accepts again, forks,
#      closes its copy, and the child serves the client, which then sees
#      EOF when the child closes;
#   3. sendfile from a regular file, with offset NULL (the file offset
#      moves) and with an offset (*offset moves, the file offset not), a
#      count short of the file and past its end; nonblocking to a kernel
#      peer that does not read: a partial count, then EAGAIN, the offsets
#      telling exactly what went, and the peer gets exactly those bytes;
#   4. ppoll and pselect over a usock socket and a pipe, without and with a
#      signal mask: each one's readiness, and 0 after the timeout when
#      nothing is ready; a signal the mask blocks does not cut the wait
#      short and is taken before the call returns; a signal handled during
#      the wait ends it with EINTR, and so does one already pending that
#      the mask lets through (at once);
#   5. epoll with EPOLLET (registered as nginx does): after a short read
#      and no read to EAGAIN, the kernel peer's next data is a new event
#      within a second; the peer's FIN is one too; after a write cut short
#      by a peer that does not read, EPOLLOUT is a new event within a
#      second of the peer reading;
#   6. getaddrinfo of the literal 198.18.0.1, connected to; and of
#      "localhost" (from /etc/hosts, which is left as it is), connected to a
#      listener of the probe's own on the stack's 127.0.0.1.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock up 198.18.0.2/24 --name run
#   peer.py serve 198.18.0.1:7100          usock run --name run -- preload_probe
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need_preload
PROBE="$(dirname "$USOCK")/preload_probe"
[ -x "$PROBE" ] || fail "no preload_probe beside usock at $PROBE"
[ -x /usr/bin/python3 ] || need python3 python3

make_namespace NS calls
usock_tap_up "$NS" run usock-up

cat >"$WORK/peer.py" <<'PY'
# peer.py serve ADDRESS PORT: the kernel peer of preload_probe (see its
# header for the protocol).  peer.py fork-clients ADDRESS PORT: the kernel
# clients of preload_probe fork.
import os
import socket
import sys
import threading


def recv_line(conn):
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            return None
        line += byte
    return line[:-1].decode()


def recv_exact(conn, length):
    data = b""
    while len(data) < length:
        more = conn.recv(length - len(data))
        if not more:
            break
        data += more
    return data


def serve(address, port):
    lock = threading.Lock()
    controls = []
    released = {}

    def release_event(client_port):
        with lock:
            return released.setdefault(client_port, threading.Event())

    def report(line):
        with lock:
            for control in list(controls):
                try:
                    control.sendall(line.encode() + b"\n")
                except OSError:
                    controls.remove(control)

    def echo(conn, client_port):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError as error:
            report("ERROR %d %s" % (client_port, error))
            return
        report("EOF %d" % client_port)

    def control(conn):
        with lock:
            controls.append(conn)
            conn.sendall(b"READY\n")
        while True:
            line = recv_line(conn)
            if line is None:
                break
            words = line.split()
            if len(words) == 2 and words[0] == "GO":
                release_event(int(words[1])).set()
        with lock:
            if conn in controls:
                controls.remove(conn)

    def hold(conn, client_port):
        if not release_event(client_port).wait(30):
            return
        chunks = []
        while True:
            data = conn.recv(65536)
            if not data:
                break
            chunks.append(data)
        conn.sendall(b"".join(chunks))

    def handle(conn, client):
        with conn:
            try:
                mode = recv_line(conn)
                print("%s from %s:%d" % (mode, client[0], client[1]), flush=True)
                if mode == "ECHO":
                    echo(conn, client[1])
                elif mode == "CTRL":
                    control(conn)
                elif mode == "HOLD":
                    hold(conn, client[1])
            except OSError as error:
                print("%s:%d: %s" % (client[0], client[1], error), flush=True)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # a small window, inherited by the connections: a peer that does not
    # read is soon full
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    listener.bind((address, port))
    listener.listen(64)
    while True:
        conn, client = listener.accept()
        threading.Thread(target=handle, args=(conn, client), daemon=True).start()


def fork_clients(address, port):
    failed = 0

    def check(ok, what):
        nonlocal failed
        print(("ok: " if ok else "FAILED: ") + what, flush=True)
        failed += not ok

    # both connected before either is served: each needs its own accepter
    first = socket.create_connection((address, port), timeout=10)
    second = socket.create_connection((address, port), timeout=10)
    for name, conn in (("first", first), ("second", second)):
        data = os.urandom(65536)
        conn.sendall(data)
        try:
            got = recv_exact(conn, len(data))
        except socket.timeout:
            got = b""
        check(got == data, "the %s client got its 64 KiB echoed (%d bytes)" % (name, len(got)))
        conn.close()
    third = socket.create_connection((address, port), timeout=10)
    data = os.urandom(100000)
    third.sendall(data)
    try:
        got = recv_exact(third, len(data))
        check(got == data, "the third client got its 100000 bytes echoed (%d bytes)" % len(got))
        check(third.recv(1) == b"", "the third client sees EOF after the echo")
    except socket.timeout:
        check(False, "the third client timed out")
    third.close()
    sys.exit(1 if failed else 0)


if sys.argv[1] == "serve":
    serve(sys.argv[2], int(sys.argv[3]))
elif sys.argv[1] == "fork-clients":
    fork_clients(sys.argv[2], int(sys.argv[3]))
PY

say "the kernel peer: echoes, holds data until told, reports the EOFs it sees"
start kernel-peer ip netns exec "$NS" "$PYTHON" "$WORK/peer.py" serve 198.18.0.1 7100
wait_until 5 "the kernel peer to listen on 7100" kernel_listening "$NS" 7100

# on_kernel CHECK ARG...: preload_probe CHECK on the kernel's own sockets.
on_kernel() {
    step timeout 60 ip netns exec "$NS" "$PROBE" "$@" ||
        fail "preload_probe $1 on the kernel's sockets exited $? (the probe expects what the kernel does not)"
}

# on_usock CHECK ARG...: preload_probe CHECK run on usock.
on_usock() {
    step timeout 60 ip netns exec "$NS" usock run --name run -- "$PROBE" "$@" ||
        fail "preload_probe $1 on usock exited $?"
}

say "1. dup, dup2, dup3, F_DUPFD, F_DUPFD_CLOEXEC"
on_kernel dup 198.18.0.1 7100
OPENS_BEFORE=$(counter run TcpActiveOpens)
on_usock dup 198.18.0.1 7100
[ "$(counter run TcpActiveOpens)" -ge $((OPENS_BEFORE + 6)) ] ||
    fail "the probe's connections did not go over the stack"
grep -q '^ECHO from 198\.18\.0\.2:' "$WORK/kernel-peer.log" ||
    fail "the kernel peer had no connection from the stack's address 198.18.0.2"
say "dup2 and dup3 from a number that is not open leave the target open"
on_kernel dup2-bad-source 198.18.0.1 7100
on_usock dup2-bad-source 198.18.0.1 7100
say "dup2 onto a socket in an epoll set takes its registration away"
on_kernel dup2-epoll 198.18.0.1 7100
on_usock dup2-epoll 198.18.0.1 7100

say "2. fork: parent and child serve connections from one listener"
start kernel-fork ip netns exec "$NS" "$PROBE" fork 198.18.0.1 7201
KERNEL_FORK_PID=$LAST_PID
wait_until 5 "the probe to listen on the kernel's 7201" kernel_listening "$NS" 7201
step timeout 30 ip netns exec "$NS" "$PYTHON" "$WORK/peer.py" fork-clients 198.18.0.1 7201 ||
    fail "the kernel clients of preload_probe fork on the kernel's sockets failed"
wait_exit "$KERNEL_FORK_PID" "preload_probe fork on the kernel's sockets" 10

start usock-fork ip netns exec "$NS" usock run --name run -- "$PROBE" fork 198.18.0.2 7200
FORK_PID=$LAST_PID
wait_for_log usock-fork "parent accepting"
wait_for_log usock-fork "child ready"
step usock ss -t -l -p --name run
ROWS=$(usock ss -t -l -p --name run | grep -c '198\.18\.0\.2:7200')
[ "$ROWS" -eq 1 ] || fail "usock ss -lp shows the shared listener $ROWS times, expected once"
usock ss -t -l -p --name run | grep '198\.18\.0\.2:7200' | grep -q '"preload_probe",pid=' ||
    fail "usock ss -lp does not show preload_probe holding the listener"
step timeout 30 ip netns exec "$NS" "$PYTHON" "$WORK/peer.py" fork-clients 198.18.0.2 7200 ||
    fail "the kernel clients of preload_probe fork on usock failed"
wait_exit "$FORK_PID" "preload_probe fork on usock" 10
step cat "$WORK/usock-fork.log"
grep -q '^child [0-9]* accepted 198\.18\.0\.1:' "$WORK/usock-fork.log" ||
    fail "the child accepted no kernel client"
[ "$(grep -c '^parent [0-9]* accepted 198\.18\.0\.1:' "$WORK/usock-fork.log")" -eq 2 ] ||
    fail "the parent did not accept twice (before and after the child exited)"
listener_gone() {
    ! usock ss -t -l --name run | grep -q '198\.18\.0\.2:7200'
}
wait_until 5 "the shared listener to go from usock ss" listener_gone

say "3. sendfile from a regular file"
on_kernel sendfile 198.18.0.1 7100
on_usock sendfile 198.18.0.1 7100

say "4. ppoll and pselect over a usock socket and a pipe"
on_kernel poll 198.18.0.1 7100
on_usock poll 198.18.0.1 7100
say "a signal handled during ppoll or pselect ends the wait with EINTR"
on_kernel poll-signal 198.18.0.1 7100
on_usock poll-signal 198.18.0.1 7100
say "a signal pending before pselect, let through by its mask, ends it at once"
on_kernel mask-race 198.18.0.1 7100
on_usock mask-race 198.18.0.1 7100

say "5. an edge-triggered epoll after short reads"
on_kernel epoll-et 198.18.0.1 7100
on_usock epoll-et 198.18.0.1 7100

say "6. getaddrinfo of a literal and of localhost, then connect"
on_kernel getaddrinfo 198.18.0.1 7100
on_usock getaddrinfo 198.18.0.1 7100

say "nothing of the probes is left on the stack but TIME-WAITs"
only_time_wait() {
    ! usock ss -t -a --name run | awk 'NR > 1 && $2 != "TIME-WAIT"' | grep -q .
}
wait_until 5 "every socket of the probes to be closed" only_time_wait
step usock ss -t -a -p --name run

usock_stop "$USOCK_PID" run
pass
