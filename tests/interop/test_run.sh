#!/bin/bash
# test_run.sh - unmodified programs on a running stack (`usock run`): the
# preload library puts their IPv4 sockets on the stack `usock up --name run`
# serves, and leaves files, pipes and the rest to the kernel.
#   1. curl, run on usock, fetches a 1 MB page from a kernel web server
#      (python3 -m http.server on 198.18.0.1) and gets it intact;
#   2. nc (netcat-openbsd), run on usock, sends 1 MB to a kernel nc -l and
#      receives 1 MB from it, both intact;
#   3. python3 -m http.server, run on usock and bound to the stack's
#      198.18.0.2, serves the page to kernel curl intact; while it runs,
#      `usock ss -p` shows its listening socket with its process id;
#   4. wget, run on usock, fetches the page from the kernel web server;
#   5. socat, run on usock, listens; a kernel socat sends it 1 MB and
#      receives 1 MB back, both intact;
#   6. iperf3, run on usock, measures 2 s against a kernel iperf3 server,
#      then serves a kernel iperf3 client for 2 s; both print their
#      summaries (the figures are printed, not judged);
#   7. a python3 asyncio echo server (an epoll event loop), run on usock,
#      echoes 1 MB from a kernel socat intact;
#   8. redis-server, run on usock, answers a kernel redis-benchmark (SET
#      and GET) and redis-cli; redis-benchmark, run on usock, drives a
#      kernel redis-server.  Their figures are printed, not judged.
#   9. nginx, run on usock as it ships (a master process forking two
#      workers that share its listening socket, sendfile, tcp_nopush),
#      serves kernel curl a small page and the 1 MB page intact and kernel
#      wrk (its figures printed); usock ss -l shows the listener once,
#      and -p names the master and both workers on it;
#  10. a python3 server on usock accepts a connection and execs a new
#      python3 with the connection's descriptor, which answers the kernel
#      client on it: a socket that is not close-on-exec survives exec;
#  11. SIGINT ends a python3 program on usock blocked in accept(), as
#      Ctrl-C does on the kernel (KeyboardInterrupt).
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock up 198.18.0.2/24 --name run
#                                          ^ $USOCK_RUNDIR/run.api
#                                     usock run --name run -- PROGRAM
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need_preload

need curl curl
need nc netcat-openbsd
need wget wget
need socat socat
need iperf3 iperf3
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
    # Installing redis-server starts its service where there is an init
    # script; policy-rc.d (the Debian way) says no, and goes after.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        REMOVE_POLICY=1
    fi
    need redis-server redis-server redis-tools
    need redis-benchmark redis-tools
    [ -z "${REMOVE_POLICY:-}" ] || rm -f /usr/sbin/policy-rc.d
fi
if ! command -v nginx >/dev/null 2>&1; then
    # The same for nginx's service.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        REMOVE_NGINX_POLICY=1
    fi
    need nginx nginx
    [ -z "${REMOVE_NGINX_POLICY:-}" ] || rm -f /usr/sbin/policy-rc.d
fi
need wrk wrk
need sha256sum coreutils
[ -x /usr/bin/python3 ] || need python3 python3

make_namespace NS run
usock_tap_up "$NS" run usock-up

must mkdir "$WORK/www"
must head -c 1000000 /dev/urandom >"$WORK/www/page"
must head -c 1000000 /dev/urandom >"$WORK/upload"
must head -c 1000000 /dev/urandom >"$WORK/download"

# same FILE FILE: fails the test unless the two files are the same bytes.
same() {
    step sha256sum "$1" "$2"
    [ "$(sha "$1")" = "$(sha "$2")" ] ||
        fail "$(basename "$2") has $(wc -c <"$2") bytes that differ from $(basename "$1")"
}

say "1. curl on usock fetches a page from a kernel web server"
start kernel-http ip netns exec "$NS" /usr/bin/python3 -m http.server 8000 \
    --bind 198.18.0.1 --directory "$WORK/www"
wait_until 10 "the kernel web server to listen on 8000" kernel_listening "$NS" 8000
OPENS_BEFORE=$(counter run TcpActiveOpens)
START_NS=$(date +%s%N)
step timeout 30 ip netns exec "$NS" usock run --name run -- \
    curl -sS -o "$WORK/page.curl" http://198.18.0.1:8000/page ||
    fail "curl on usock exited $?"
say "curl took $(elapsed_ms "$START_NS") ms"
same "$WORK/www/page" "$WORK/page.curl"
say "the request came from the stack's address, over the stack"
grep -q '^198\.18\.0\.2 .*"GET /page' "$WORK/kernel-http.log" ||
    fail "the kernel web server logged no GET /page from 198.18.0.2"
[ "$(counter run TcpActiveOpens)" -gt "$OPENS_BEFORE" ] || fail "the stack made no connection for curl"

say "2. nc on usock sends a file to a kernel nc -l and receives one from it"
start_io download upload.received kernel-nc ip netns exec "$NS" nc -n -v -N -l 198.18.0.1 5000
KERNEL_NC_PID=$LAST_PID
wait_until 5 "the kernel nc to listen on 5000" kernel_listening "$NS" 5000
START_NS=$(date +%s%N)
step timeout 30 ip netns exec "$NS" usock run --name run -- nc -N 198.18.0.1 5000 \
    <"$WORK/upload" >"$WORK/download.received" ||
    fail "nc on usock exited $?"
say "nc took $(elapsed_ms "$START_NS") ms"
wait_exit "$KERNEL_NC_PID" "the kernel nc" 10
same "$WORK/upload" "$WORK/upload.received"
same "$WORK/download" "$WORK/download.received"
grep -q "Connection received on 198.18.0.2 " "$WORK/kernel-nc.log" ||
    fail "the kernel nc had no connection from the stack's address 198.18.0.2"

say "3. python3 -m http.server on usock serves the page to kernel curl"
start usock-http ip netns exec "$NS" usock run --name run -- /usr/bin/python3 -m http.server \
    8080 --bind 198.18.0.2 --directory "$WORK/www"
SERVER_PID=$LAST_PID
server_listed() {
    usock ss -t -l -p --name run | grep -F "pid=$SERVER_PID" | grep -q "198.18.0.2:8080"
}
wait_until 10 "usock ss -p to show the server on 8080 with pid $SERVER_PID" server_listed
step usock ss -t -l -p --name run
START_NS=$(date +%s%N)
step timeout 30 ip netns exec "$NS" curl -sS -o "$WORK/page.kernel" http://198.18.0.2:8080/page ||
    fail "kernel curl from the server on usock exited $?"
say "curl took $(elapsed_ms "$START_NS") ms"
same "$WORK/www/page" "$WORK/page.kernel"

say "stopped, the server's socket goes from the stack"
step kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
forget "$SERVER_PID"
server_gone() {
    ! usock ss -t -a -p --name run | grep -q "pid=$SERVER_PID"
}
wait_until 5 "the server's socket to go from usock ss" server_gone

say "4. wget on usock fetches the page from the kernel web server"
GETS_BEFORE=$(grep -c '^198\.18\.0\.2 .*"GET /page' "$WORK/kernel-http.log")
step timeout 30 ip netns exec "$NS" usock run --name run -- \
    wget -q -O "$WORK/page.wget" http://198.18.0.1:8000/page ||
    fail "wget on usock exited $?"
same "$WORK/www/page" "$WORK/page.wget"
[ "$(grep -c '^198\.18\.0\.2 .*"GET /page' "$WORK/kernel-http.log")" -gt "$GETS_BEFORE" ] ||
    fail "the kernel web server logged no GET /page from 198.18.0.2 for wget"

say "5. socat on usock listens; a kernel socat sends it a file and gets one back"
start_io download upload.socat usock-socat ip netns exec "$NS" usock run --name run -- \
    socat -t 2 TCP-LISTEN:5002,bind=198.18.0.2 STDIO
SOCAT_PID=$LAST_PID
socat_listed() {
    usock ss -t -l -p --name run | grep -F "pid=$SOCAT_PID" | grep -q "198.18.0.2:5002"
}
wait_until 10 "usock ss -p to show socat on 5002 with pid $SOCAT_PID" socat_listed
step timeout 30 ip netns exec "$NS" socat -t 2 STDIO TCP:198.18.0.2:5002 \
    <"$WORK/upload" >"$WORK/download.socat" ||
    fail "the kernel socat exited $?"
wait_exit "$SOCAT_PID" "socat on usock" 10
same "$WORK/upload" "$WORK/upload.socat"
same "$WORK/download" "$WORK/download.socat"

say "6. iperf3 on usock as client to a kernel iperf3 server, then as server"
start kernel-iperf3 ip netns exec "$NS" iperf3 -s -B 198.18.0.1 -p 5201 -1
wait_until 10 "the kernel iperf3 to listen on 5201" kernel_listening "$NS" 5201
OPENS_BEFORE=$(counter run TcpActiveOpens)
step timeout 60 ip netns exec "$NS" usock run --name run -- \
    iperf3 -c 198.18.0.1 -p 5201 -t 2 -f m >"$WORK/iperf3-client.out" ||
    fail "iperf3 on usock (client) exited $?"
step cat "$WORK/iperf3-client.out"
grep -q "receiver" "$WORK/iperf3-client.out" || fail "iperf3 on usock printed no receiver summary"
[ "$(counter run TcpActiveOpens)" -ge $((OPENS_BEFORE + 2)) ] ||
    fail "the stack did not make iperf3's control and data connections"
PASSIVE_BEFORE=$(counter run TcpPassiveOpens)
start usock-iperf3 ip netns exec "$NS" usock run --name run -- iperf3 -s -B 198.18.0.2 -p 5202 -1
IPERF_PID=$LAST_PID
iperf_listed() {
    usock ss -t -l -p --name run | grep -F "pid=$IPERF_PID" | grep -q "198.18.0.2:5202"
}
wait_until 10 "usock ss -p to show iperf3 on 5202" iperf_listed
step timeout 60 ip netns exec "$NS" iperf3 -c 198.18.0.2 -p 5202 -t 2 -f m >"$WORK/iperf3-kernel.out" ||
    fail "kernel iperf3 to the server on usock exited $?"
step cat "$WORK/iperf3-kernel.out"
grep -q "receiver" "$WORK/iperf3-kernel.out" || fail "kernel iperf3 printed no receiver summary"
[ "$(counter run TcpPassiveOpens)" -ge $((PASSIVE_BEFORE + 2)) ] ||
    fail "the stack did not accept the kernel iperf3's control and data connections"
wait_exit "$IPERF_PID" "iperf3 on usock" 10

say "7. a python3 asyncio echo server (epoll) on usock echoes a kernel socat's 1 MB"
cat >"$WORK/echo.py" <<'PY'
import asyncio

async def echo(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()

async def main():
    server = await asyncio.start_server(echo, "198.18.0.2", 7007)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY
start usock-asyncio ip netns exec "$NS" usock run --name run -- /usr/bin/python3 "$WORK/echo.py"
ASYNCIO_PID=$LAST_PID
asyncio_listed() {
    usock ss -t -l -p --name run | grep -F "pid=$ASYNCIO_PID" | grep -q "198.18.0.2:7007"
}
wait_until 10 "usock ss -p to show the asyncio server on 7007" asyncio_listed
step timeout 30 ip netns exec "$NS" socat -t 2 STDIO TCP:198.18.0.2:7007 \
    <"$WORK/upload" >"$WORK/upload.echoed" ||
    fail "the kernel socat to the asyncio server exited $?"
same "$WORK/upload" "$WORK/upload.echoed"
step kill -TERM "$ASYNCIO_PID"
wait "$ASYNCIO_PID" 2>/dev/null
forget "$ASYNCIO_PID"

say "8. redis-server on usock driven by kernel redis-benchmark, and the reverse"
start usock-redis ip netns exec "$NS" usock run --name run -- redis-server --bind 198.18.0.2 \
    --port 6379 --save "" --appendonly no --protected-mode no
REDIS_PID=$LAST_PID
redis_listed() {
    usock ss -t -l -p --name run | grep -F "pid=$REDIS_PID" | grep -q "198.18.0.2:6379"
}
wait_until 10 "usock ss -p to show redis-server on 6379" redis_listed
step timeout 60 ip netns exec "$NS" redis-benchmark -h 198.18.0.2 -p 6379 -n 5000 -c 10 \
    -t set,get --csv >"$WORK/redis-usock-server.csv" ||
    fail "kernel redis-benchmark against redis-server on usock exited $?"
step cat "$WORK/redis-usock-server.csv"
grep -q '^"SET"' "$WORK/redis-usock-server.csv" && grep -q '^"GET"' "$WORK/redis-usock-server.csv" ||
    fail "redis-benchmark printed no SET and GET figures"
step ip netns exec "$NS" redis-cli -h 198.18.0.2 -p 6379 set usock works
[ "$(ip netns exec "$NS" redis-cli -h 198.18.0.2 -p 6379 get usock)" = works ] ||
    fail "redis-server on usock did not give back what was set"
step kill -TERM "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
forget "$REDIS_PID"
start kernel-redis ip netns exec "$NS" redis-server --bind 198.18.0.1 --port 6380 --save "" \
    --appendonly no --protected-mode no
wait_until 10 "the kernel redis-server to listen on 6380" kernel_listening "$NS" 6380
OPENS_BEFORE=$(counter run TcpActiveOpens)
step timeout 60 ip netns exec "$NS" usock run --name run -- redis-benchmark -h 198.18.0.1 \
    -p 6380 -n 5000 -c 10 -t set,get --csv >"$WORK/redis-usock-client.csv" ||
    fail "redis-benchmark on usock against the kernel redis-server exited $?"
step cat "$WORK/redis-usock-client.csv"
grep -q '^"GET"' "$WORK/redis-usock-client.csv" || fail "redis-benchmark on usock printed no GET figure"
[ "$(counter run TcpActiveOpens)" -ge $((OPENS_BEFORE + 10)) ] ||
    fail "redis-benchmark's connections did not go over the stack"

say "9. nginx on usock (master process, two workers, sendfile) serves kernel curl and wrk"
must mkdir "$WORK/nginx"
echo "hello from nginx on usock" >"$WORK/www/index.html"
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log info;
events { worker_connections 256; }
http {
    access_log $WORK/nginx/access.log;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server { listen 198.18.0.2:8081; root $WORK/www; }
}
CONF
start usock-nginx ip netns exec "$NS" usock run --name run -- nginx -c "$WORK/nginx/nginx.conf"
NGINX_PID=$LAST_PID
nginx_workers() {
    [ "$(grep -c "start worker process" "$WORK/nginx/error.log" 2>/dev/null)" -ge 2 ]
}
nginx_listening() {
    usock ss -t -l -p --name run | grep -q "198.18.0.2:8081"
}
wait_until 10 "nginx to start two workers" nginx_workers
wait_until 10 "usock ss to show nginx's listener on 8081" nginx_listening
step usock ss -t -l -p --name run
[ "$(usock ss -t -l --name run | grep -c "198.18.0.2:8081")" -eq 1 ] ||
    fail "usock ss -l shows nginx's one listening socket more than once"
say "as ss -p shows a socket shared across fork: the master and both workers"
[ "$(usock ss -t -l -p --name run | grep "198.18.0.2:8081" | grep -o '("nginx",pid=[0-9]*)' |
    sort -u | wc -l)" -eq 3 ] ||
    fail "usock ss -p does not name nginx's master and its two workers on the listener"
step timeout 10 ip netns exec "$NS" curl -sS -o "$WORK/index.nginx" http://198.18.0.2:8081/index.html ||
    fail "kernel curl to nginx on usock exited $?"
same "$WORK/www/index.html" "$WORK/index.nginx"
step timeout 10 ip netns exec "$NS" curl -sS -o "$WORK/page.nginx" http://198.18.0.2:8081/page ||
    fail "kernel curl of the 1 MB page from nginx on usock exited $?"
same "$WORK/www/page" "$WORK/page.nginx"
step timeout 30 ip netns exec "$NS" wrk -t 2 -c 10 -d 2s http://198.18.0.2:8081/index.html \
    >"$WORK/wrk.out" || fail "kernel wrk against nginx on usock exited $?"
step cat "$WORK/wrk.out"
requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
[ -n "$requests" ] && [ "$requests" -ge 100 ] ||
    fail "wrk finished only ${requests:-no} requests against nginx on usock in 2 s"
if grep -q '\[alert\]\|\[crit\]\|\[emerg\]' "$WORK/nginx/error.log"; then
    fail "nginx on usock logged alerts: $(grep -m 3 '\[alert\]\|\[crit\]\|\[emerg\]' "$WORK/nginx/error.log")"
fi
step kill -QUIT "$NGINX_PID"
wait_exit "$NGINX_PID" "nginx on usock" 10

say "10. a python3 server on usock execs a new program that answers on the accepted socket"
cat >"$WORK/exec.py" <<'PY'
import os, socket
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("198.18.0.2", 9000))
listener.listen(4)
print("listening", flush=True)
connection, peer = listener.accept()
os.set_inheritable(connection.fileno(), True)
answer = ("import socket, sys\n"
          "s = socket.socket(fileno=int(sys.argv[1]))\n"
          "s.sendall(b'after exec: ' + s.recv(100))\n"
          "s.close()\n")
os.execv("/usr/bin/python3", ["python3", "-c", answer, str(connection.fileno())])
PY
start usock-exec ip netns exec "$NS" usock run --name run -- /usr/bin/python3 "$WORK/exec.py"
EXEC_PID=$LAST_PID
wait_for_log usock-exec "listening"
step bash -c "echo hello | timeout 10 ip netns exec $NS nc -N 198.18.0.2 9000 >$WORK/exec.reply" ||
    fail "the kernel nc to the exec'ing server exited $?"
step cat "$WORK/exec.reply"
[ "$(cat "$WORK/exec.reply")" = "after exec: hello" ] ||
    fail "the program exec'd on usock did not answer on the socket it was handed"
wait_exit "$EXEC_PID" "the program exec'd on usock" 10

say "11. Ctrl-C (SIGINT) reaches a python3 program on usock blocked in accept()"
cat >"$WORK/block.py" <<'PY'
import signal, socket
# A background job starts with SIGINT ignored; take Python's handler back.
signal.signal(signal.SIGINT, signal.default_int_handler)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("198.18.0.2", 9100))
listener.listen(1)
print("accepting", flush=True)
try:
    listener.accept()
except KeyboardInterrupt:
    print("interrupted", flush=True)
PY
start usock-block ip netns exec "$NS" usock run --name run -- /usr/bin/python3 "$WORK/block.py"
BLOCK_PID=$LAST_PID
wait_for_log usock-block "accepting"
sleep 0.3 # into accept()
step kill -INT "$BLOCK_PID"
wait_exit "$BLOCK_PID" "the python3 program interrupted in accept()" 5
grep -qx interrupted "$WORK/usock-block.log" ||
    fail "accept() on usock did not end with EINTR for Python's SIGINT handler"

usock_stop "$USOCK_PID" run
pass
