#!/bin/bash
# test_tcp_http.sh - the kernel's curl fetches from usock's http service:
# the index page, HEAD, a 404, and 10 MB of the /bytes pattern, which must
# match the pattern made here byte for byte; then the same 10 MB with 2%
# of the kernel's packets to usock dropped by nftables, and with usock's own
# link impaired both ways (loss, reordering, duplicates), where usock must
# retransmit, recover and put reordered segments back in order.  Times are
# printed, not judged.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock 198.18.0.2/24  (namespace 1)
#   kernel 198.18.0.1/24 --usk1 (TAP)-- usock --impair ...   (namespace 2)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need curl curl
need nft nftables
need nc netcat-openbsd
need python3 python3
need sha256sum coreutils

SIZE=10000000

step http_bytes_pattern "$SIZE" >"$WORK/expected" || fail "cannot make the pattern"
EXPECTED=$(sha "$WORK/expected")
say "the expected 10 MB has sha256 $EXPECTED"

# fetch NS LABEL: curl gets /bytes/$SIZE into $WORK/LABEL, prints its size
# and time, and fails the test unless it is the pattern.
fetch() {
    local ns=$1 label=$2 out
    out=$(step ip netns exec "$ns" curl -sS --max-time 40 -o "$WORK/$label" \
        -w '%{http_code} %{size_download} %{time_total}' "http://198.18.0.2:8080/bytes/$SIZE") ||
        fail "curl ($label) exited $?"
    read -r code size seconds <<<"$out"
    say "$label: HTTP $code, $size bytes in $seconds s"
    [ "$code" = 200 ] || fail "$label: HTTP status $code, expected 200"
    [ "$size" -eq "$SIZE" ] || fail "$label: got $size bytes, expected $SIZE"
    [ "$(sha "$WORK/$label")" = "$EXPECTED" ] ||
        fail "$label: the $SIZE bytes differ from the pattern (first difference: $(cmp "$WORK/expected" "$WORK/$label" | head -n 1))"
}

# ---- 1: a clean link ------------------------------------------------------

make_namespace NS http
usock_tap_up "$NS" tcphttp usock-up --serve http:8080

say "GET / is a short text page"
step ip netns exec "$NS" curl -sS --max-time 10 -i http://198.18.0.2:8080/ | tee "$WORK/index" ||
    fail "curl / exited $?"
head -n 1 "$WORK/index" | grep -q '^HTTP/1.1 200 OK' || fail "GET / did not answer 200 OK"
grep -q 'usock http service' "$WORK/index" || fail "GET / did not return the page"

say "HEAD gives the length and no body"
step ip netns exec "$NS" curl -sS --max-time 10 -I "http://198.18.0.2:8080/bytes/$SIZE" |
    tee "$WORK/head" || fail "curl -I exited $?"
grep -qi "^Content-Length: $SIZE"$'\r'"\$" "$WORK/head" ||
    fail "HEAD /bytes/$SIZE did not say Content-Length: $SIZE"

say "HTTP/1.0 is answered too"
step ip netns exec "$NS" curl -sS --max-time 10 --http1.0 -o "$WORK/index10" \
    http://198.18.0.2:8080/ || fail "curl --http1.0 / exited $?"
grep -q 'usock http service' "$WORK/index10" || fail "GET / over HTTP/1.0 did not return the page"

say "anything else is 404"
code=$(step ip netns exec "$NS" curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
    http://198.18.0.2:8080/nothing/here) || fail "curl /nothing/here exited $?"
say "HTTP $code"
[ "$code" = 404 ] || fail "GET /nothing/here answered $code, expected 404"

say "10 MB of the pattern"
fetch "$NS" clean

say "again with 2% of the kernel's packets to usock dropped by nftables"
must ip netns exec "$NS" nft add table inet t
must ip netns exec "$NS" nft add chain inet t out '{ type filter hook output priority 0 ; }'
must ip netns exec "$NS" nft add rule inet t out ip daddr 198.18.0.2 numgen random mod 100 '<' 2 \
    counter drop
fetch "$NS" kernel-loss
step ip netns exec "$NS" nft list chain inet t out | grep -w drop | tee "$WORK/nft"
grep -q 'packets [1-9]' "$WORK/nft" || fail "nftables dropped nothing"
must ip netns exec "$NS" nft delete table inet t
show_counter tcphttp TcpRetransSegs

say "SIGINT in the middle of a 1 GiB download (and with an idle client connected) stops usock cleanly"
start big ip netns exec "$NS" curl -sS --max-time 30 --limit-rate 2M -o /dev/null \
    http://198.18.0.2:8080/bytes/1073741824
start idle ip netns exec "$NS" "$PYTHON" -c '
import socket, time
s = socket.create_connection(("198.18.0.2", 8080), timeout=5)
time.sleep(30)'
established() {
    [ "$(usock ss -t --name tcphttp | awk '$2 == "ESTAB"' | wc -l)" -ge 2 ]
}
wait_until 5 "two established connections" established
step usock ss -t --name tcphttp
usock_stop "$USOCK_PID" tcphttp

# ---- 2: usock's link impaired both ways -----------------------------------

say "usock drops 1%, reorders 2% and duplicates 1% of frames both ways"
make_namespace NS2 httpi
start usock-impaired ip netns exec "$NS2" usock up --link tap:usk1 --addr 198.18.0.2/24 \
    --name tcphttpi --impair loss=1%,reorder=2%,dup=1%,seed=3 --serve http:8080 \
    --serve tcp-echo:7
IMPAIRED_PID=$LAST_PID
wait_for_link "$NS2" usk1
wait_for_control tcphttpi "$IMPAIRED_PID"
must ip -n "$NS2" addr add 198.18.0.1/24 dev usk1
must ip -n "$NS2" link set usk1 up

fetch "$NS2" impaired

say "and 5 MB through tcp-echo, so usock also receives a lossy, reordered stream"
must head -c 5000000 /dev/urandom >"$WORK/random"
start_ns=$(date +%s%N)
step timeout 40 ip netns exec "$NS2" nc -N 198.18.0.2 7 <"$WORK/random" >"$WORK/random.echoed" ||
    fail "nc to the impaired echo port exited $?"
say "5 MB echoed in $((($(date +%s%N) - start_ns) / 1000000)) ms"
[ "$(sha "$WORK/random")" = "$(sha "$WORK/random.echoed")" ] ||
    fail "impaired tcp-echo returned $(wc -c <"$WORK/random.echoed") bytes that differ from the 5 MB sent"

for c in TcpRetransSegs TcpFastRetrans TcpRecoveries TcpTimeouts TcpOutOfOrderQueued; do
    show_counter tcphttpi "$c"
done
expect_counter_at_least tcphttpi TcpRetransSegs 1
expect_counter_at_least tcphttpi TcpOutOfOrderQueued 1

usock_stop "$IMPAIRED_PID" tcphttpi
pass
