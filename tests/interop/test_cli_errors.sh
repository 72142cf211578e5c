#!/bin/bash
# test_cli_errors.sh - the `usock` command's mistakes are the user's to fix:
# each bad argument to `usock up` exits 2 with one line on stderr, before any
# link is opened (so no TAP device is left behind); help exits 0; asking a
# stack that is not running exits nonzero with one line; and an unprivileged
# user asking for a TAP device is told about permission, with exit 2.
#
# Everything runs inside a namespace of its own, so even a usock that opened
# a link by mistake could not touch the host's interfaces.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

make_namespace NS cli

# expect_exit STATUS CMD...: runs CMD as `step` does, shows its stdout and
# stderr, and fails unless it exits STATUS ("nonzero" for any but 0).
expect_exit() {
    local expected=$1
    shift
    step "$@" >"$WORK/out" 2>"$WORK/err"
    local status=$?
    cat "$WORK/out" "$WORK/err"
    say "exit status $status"
    if [ "$expected" = nonzero ]; then
        [ "$status" -ne 0 ] || fail "'$*' exited 0, expected a failure"
    else
        [ "$status" -eq "$expected" ] || fail "'$*' exited $status, expected $expected"
    fi
}

# expect_one_line_error: the last command printed exactly one line on
# stderr, starting "usock: ", and nothing on stdout.
expect_one_line_error() {
    [ "$(wc -l <"$WORK/err")" -eq 1 ] ||
        fail "expected one line on stderr, got $(wc -l <"$WORK/err")"
    grep -q '^usock: ' "$WORK/err" || fail "the error does not start with 'usock: '"
    [ ! -s "$WORK/out" ] || fail "an error run printed to stdout"
}

say "an address with an octet over 255"
expect_exit 2 ip netns exec "$NS" usock up --link tap:usk0 --addr 198.18.0.300/24
expect_one_line_error
grep -q '198.18.0.300' "$WORK/err" || fail "the message does not name the bad address"

say "a prefix length over 32"
expect_exit 2 ip netns exec "$NS" usock up --link tap:usk0 --addr 198.18.0.2/33
expect_one_line_error
grep -q '33' "$WORK/err" || fail "the message does not name the bad prefix length"

say "a link kind usock does not have"
expect_exit 2 ip netns exec "$NS" usock up --link foo:bar --addr 198.18.0.2/24
expect_one_line_error
grep -q 'foo' "$WORK/err" || fail "the message does not name the bad link kind"

say "no --addr at all"
expect_exit 2 ip netns exec "$NS" usock up --link tap:usk0
expect_one_line_error
grep -q -- '--addr' "$WORK/err" || fail "the message does not mention --addr"

say "an option usock does not know"
expect_exit 2 ip netns exec "$NS" usock up --link tap:usk0 --addr 198.18.0.2/24 --frobnicate
expect_one_line_error

say "limits that are no sizes or numbers"
for limit in "--tcp-memory 0" "--datagram-memory 12Q" "--reassembly-memory 2T" \
        "--socket-limit 0" "--client-socket-limit 0" "--neighbour-limit many" "--time-wait 0"; do
    # shellcheck disable=SC2086
    expect_exit 2 ip netns exec "$NS" usock up --link tap:usk0 --addr 198.18.0.2/24 $limit
    expect_one_line_error
done

say "none of that opened a link: the namespace still has only lo"
step ip -n "$NS" -o link show | tee "$WORK/links"
[ "$(awk '{ print $2 }' "$WORK/links")" = "lo:" ] || fail "a failed 'usock up' left an interface behind"
[ -z "$(ls -A "$USOCK_RUNDIR" 2>/dev/null)" ] || fail "a failed 'usock up' left files in $USOCK_RUNDIR"

say "help is not an error"
expect_exit 0 usock help
grep -q '^usage: usock' "$WORK/out" || fail "usock help printed no usage on stdout"
[ ! -s "$WORK/err" ] || fail "usock help printed to stderr"
expect_exit 0 usock up --help
grep -q '^usage: usock up' "$WORK/out" || fail "usock up --help printed no usage on stdout"
[ ! -s "$WORK/err" ] || fail "usock up --help printed to stderr"

say "asking a stack that is not running"
expect_exit nonzero usock ss --name nonexistent
expect_one_line_error
grep -q 'nonexistent' "$WORK/err" || fail "the message does not name the control endpoint"
expect_exit nonzero usock stats --name nonexistent
expect_one_line_error

say "an unprivileged user (uid 65534) cannot make a TAP device, and is told why"
# A copy of usock that uid 65534 can reach, wherever the build directory is.
mkdir -m 755 "$WORK/unprivileged"
cp "$USOCK" "$WORK/unprivileged/usock"
chmod 755 "$WORK/unprivileged/usock"
expect_exit 2 ip netns exec "$NS" env USOCK_RUNDIR="$WORK/unprivileged/run" \
    setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$WORK/unprivileged/usock" up --link tap:usk0 --addr 198.18.0.2/24
expect_one_line_error
grep -qi 'permission' "$WORK/err" || fail "the message does not mention permission"
step ip -n "$NS" -o link show | tee "$WORK/links"
[ "$(awk '{ print $2 }' "$WORK/links")" = "lo:" ] || fail "the refused 'usock up' left an interface behind"

pass
