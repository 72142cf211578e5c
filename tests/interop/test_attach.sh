#!/bin/bash
# test_attach.sh - programs use a running stack from their own processes
# (usock_attach): `usock up --name attach` runs the stack on a TAP device;
# `usock nc --attach attach` makes no stack of its own and uses that one.
# An attached nc sends 2 MB to a kernel nc listening on 198.18.0.1 and the
# kernel gets it intact; a kernel nc sends 2 MB to an attached nc listening
# on the stack's port 6000, which prints it intact.  While an attached nc
# holds a connection, `usock ss -p` shows its socket with its process id
# as ss -p does, users:(("usock",pid=PID)); once it is killed (SIGKILL),
# the stack closes its socket and ss no longer lists it.
#
#   kernel 198.18.0.1/24 --usk0 (TAP)-- usock up 198.18.0.2/24 --name attach
#                                          ^ $USOCK_RUNDIR/attach.api
#                                     usock nc --attach attach (no stack)
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need nc netcat-openbsd
need sha256sum coreutils

make_namespace NS attach
usock_tap_up "$NS" attach usock-up
[ -S "$USOCK_RUNDIR/attach.api" ] || fail "usock up serves no sockets API at $USOCK_RUNDIR/attach.api"
step ls -l "$USOCK_RUNDIR"

must head -c 2000000 /dev/urandom >"$WORK/upload"
must head -c 2000000 /dev/urandom >"$WORK/download"

say "an attached nc sends 2 MB to a kernel nc; the kernel gets it intact"
start kernel-listener sh -c "exec ip netns exec $NS nc -l 198.18.0.1 5000 >$WORK/upload.received"
KERNEL_PID=$LAST_PID
wait_until 5 "the kernel nc to listen on 5000" kernel_listening "$NS" 5000
step timeout 30 usock nc --attach attach 198.18.0.1 5000 <"$WORK/upload" ||
    fail "usock nc --attach to the kernel exited $?"
wait_exit "$KERNEL_PID" "the kernel nc" 10
step sha256sum "$WORK/upload" "$WORK/upload.received"
[ "$(sha "$WORK/upload")" = "$(sha "$WORK/upload.received")" ] ||
    fail "the kernel got $(wc -c <"$WORK/upload.received") bytes that differ from the 2 MB sent"

say "a kernel nc sends 2 MB to an attached nc listening on the stack's port 6000"
start_io download download.received attached-listener usock nc --attach attach -l -p 6000
ATTACHED_PID=$LAST_PID
listening_on_6000() {
    usock ss -l -t --name attach | awk '$2 == "LISTEN" && $5 ~ /:6000$/ { found = 1 } END { exit !found }'
}
wait_until 5 "the attached nc to listen on 6000" listening_on_6000
step timeout 30 ip netns exec "$NS" nc -N 198.18.0.2 6000 <"$WORK/download" >/dev/null ||
    fail "the kernel nc to the attached listener exited $?"
wait_exit "$ATTACHED_PID" "the attached nc -l" 10
step sha256sum "$WORK/download" "$WORK/download.received"
[ "$(sha "$WORK/download")" = "$(sha "$WORK/download.received")" ] ||
    fail "the attached nc printed $(wc -c <"$WORK/download.received") bytes that differ from the 2 MB sent"

say "while an attached nc holds a connection, usock ss -p shows its pid"
must mkfifo "$WORK/hold.in"
start kernel-holder sh -c "exec ip netns exec $NS nc -l 198.18.0.1 5001 >/dev/null </dev/null"
KERNEL_HOLDER_PID=$LAST_PID
wait_until 5 "the kernel nc to listen on 5001" kernel_listening "$NS" 5001
# stdin from a fifo kept open by sleep: the attached nc has nothing to send
# and stays connected
start holder-stdin sh -c "exec sleep 60 >$WORK/hold.in"
start_io hold.in hold.out attached-holder usock nc --attach attach 198.18.0.1 5001
HOLDER_PID=$LAST_PID
holder_listed() {
    usock ss -t -p --name attach | grep -F "users:((\"usock\",pid=$HOLDER_PID))" |
        grep -q "198.18.0.1:5001"
}
wait_until 5 "ss -p to list the attached nc's connection" holder_listed
step usock ss -t -p --name attach | tee "$WORK/ss.p"
grep -F "users:((\"usock\",pid=$HOLDER_PID))" "$WORK/ss.p" | grep -q ESTAB ||
    fail "usock ss -p shows no ESTAB row of pid $HOLDER_PID"
say "usock ss without -p keeps its columns"
step usock ss -t --name attach | tee "$WORK/ss.plain"
grep -q "users:" "$WORK/ss.plain" && fail "usock ss without -p shows processes"

say "killed with SIGKILL, the attached nc's socket is closed by the stack"
step kill -KILL "$HOLDER_PID"
wait "$HOLDER_PID" 2>/dev/null
forget "$HOLDER_PID"
holder_gone() {
    ! usock ss -t -a -p --name attach | grep -q "pid=$HOLDER_PID"
}
wait_until 5 "the killed nc's socket to go from usock ss -p" holder_gone
step usock ss -t -a -p --name attach
say "and the kernel's end sees the connection closed: its nc exits"
wait_exit "$KERNEL_HOLDER_PID" "the kernel nc on 5001" 10

usock_stop "$USOCK_PID" attach
[ ! -e "$USOCK_RUNDIR/attach.api" ] || fail "usock up left $USOCK_RUNDIR/attach.api behind"
pass
