/*
 * preload_probe.c - an unmodified program for tests/interop/
 * test_run_calls.sh: under `usock run` the preload shim (preload/) puts its
 * AF_INET sockets on the usock stack; run without it, the same binary uses
 * the kernel's sockets, so every assertion here is what the kernel does.
 * It is not linked with usock: it calls libc's socket(), dup(), fork(),
 * sendfile(), ppoll() ... as any program does.
 *
 * Usage: preload_probe CHECK ADDRESS PORT
 *   dup          dup, dup2 (onto a free number and onto a usock socket),
 *                dup3 O_CLOEXEC, fcntl F_DUPFD/F_DUPFD_CLOEXEC of
 *                connections to the kernel peer at ADDRESS:PORT, and which
 *                copies a program it execs keeps (with exec-child, the
 *                program exec'd: preload_probe exec-child ADDRESS PORT
 *                OPEN OPEN CLOSED CLOSED)
 *   fork         listens on ADDRESS:PORT and forks; the child and the
 *                parent each serve one connection; after the child exits
 *                the parent accepts again and a second child serves that
 *                connection after the parent closed its copy (the kernel
 *                clients are the test's: peer.py fork-clients)
 *   sendfile     sendfile from a regular file to connections to the peer
 *   poll         ppoll and pselect over a connection and a pipe
 *   epoll-et     an edge-triggered epoll after short reads and a short
 *                write (nginx's way)
 *   getaddrinfo  resolves ADDRESS (a literal) and connects to the peer;
 *                resolves "localhost" (/etc/hosts) and connects to a
 *                listener of its own on 127.0.0.1
 *   dup2-bad-source  dup2/dup3 from a number not open leave the target
 *   dup2-epoll   dup2 onto a socket in an epoll set drops its registration
 *   poll-signal  a handled signal ends ppoll/pselect with EINTR
 *   mask-race    a pending signal pselect's mask lets through ends it at once
 * and a reproducer of where the shim still differs from the kernel (the
 * test does not run it): epoll-et-unread (no new edge for data arriving
 * after a read that left some unread).
 *
 * Each assertion that fails prints one line "preload_probe.c:LINE: ..." on
 * stdout; the exit status is 0 only when all held.  A watchdog alarm makes
 * a hang a failure (death by SIGALRM).
 *
 * The kernel peer (peer.py serve, in the test) reads a first line naming
 * what a connection is for:
 *   ECHO  echoes until EOF, then says "EOF PORT" (PORT: the probe's local
 *         port of that connection) on every CTRL connection, and closes;
 *   CTRL  answers "READY" once registered, then carries those reports;
 *         "GO PORT" sent on it releases a HOLD connection;
 *   HOLD  reads nothing more until released, then reads to EOF and sends
 *         back all it read, and closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Seconds before the watchdog ends a probe that hangs. */
#define WATCHDOG_S 40
/* How long a reply from the kernel peer may take before it counts as lost. */
#define REPLY_MS 3000
/* The file sendfile reads: larger than what a peer that does not read
 * (64 KiB receive buffer) and a usock send buffer (at most 4 MiB) hold. */
#define SENDFILE_FILE_SIZE (8u * 1024 * 1024)
/* What each kernel client of the fork check sends to the second child. */
#define FORK_SERVED_BYTES 100000

static int failures;
static struct sockaddr_in peer; /* ADDRESS:PORT from the command line */

/* ---- assertions ---- */

#define CHECK(condition) check_that((condition), __LINE__, #condition)

/* Counts and prints a failed assertion (with errno as it was); returns ok. */
static bool check_that(bool ok, int line, const char *text)
{
    int saved_errno = errno;
    if (!ok) {
        failures++;
        printf("preload_probe.c:%d: failed: %s (pid %d, errno %d: %s)\n", line, text,
               (int)getpid(), saved_errno, strerror(saved_errno));
    }
    errno = saved_errno;
    return ok;
}

static void note(const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    vprintf(format, arguments);
    va_end(arguments);
    putchar('\n');
}

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
        ;
}

/* Waits for child pid; true when it exited 0. */
static bool exited_zero(pid_t pid)
{
    int status;
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- sockets ---- */

static int local_port(int fd)
{
    struct sockaddr_in address;
    socklen_t length = sizeof(address);
    if (getsockname(fd, (struct sockaddr *)&address, &length) != 0)
        return -1;
    return ntohs(address.sin_port);
}

/* Sends all of data (waiting for room on a nonblocking socket); true when
 * it all went. */
static bool send_all(int fd, const void *data, size_t length)
{
    const uint8_t *next = data;
    while (length > 0) {
        ssize_t sent = send(fd, next, length, MSG_NOSIGNAL);
        if (sent < 0 && errno == EAGAIN) {
            struct pollfd entry = {.fd = fd, .events = POLLOUT};
            if (poll(&entry, 1, REPLY_MS) <= 0)
                return false;
            continue;
        }
        if (sent <= 0)
            return false;
        next += sent;
        length -= (size_t)sent;
    }
    return true;
}

/* Receives until length bytes, EOF, an error or timeout_ms pass; returns
 * how many came. */
static size_t recv_up_to(int fd, void *buffer, size_t length, int timeout_ms)
{
    uint8_t *next = buffer;
    size_t got = 0;
    long long deadline = now_ms() + timeout_ms;
    while (got < length) {
        long long left = deadline - now_ms();
        struct pollfd entry = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&entry, 1, (int)left) <= 0)
            break;
        ssize_t now = recv(fd, next + got, length - got, 0);
        if (now < 0 && errno == EAGAIN)
            continue;
        if (now <= 0)
            break;
        got += (size_t)now;
    }
    return got;
}

/* True when the peer ends the stream (recv gives 0) within timeout_ms,
 * with no byte before. */
static bool sees_eof(int fd, int timeout_ms)
{
    char byte;
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    if (poll(&entry, 1, timeout_ms) != 1)
        return false;
    return recv(fd, &byte, 1, MSG_DONTWAIT) == 0;
}

/* A connection to the peer for what mode says (ECHO, CTRL, HOLD), or -1. */
static int connect_peer(const char *mode)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (!CHECK(fd >= 0))
        return -1;
    char header[16];
    int length = snprintf(header, sizeof(header), "%s\n", mode);
    if (!CHECK(connect(fd, (struct sockaddr *)&peer, sizeof(peer)) == 0) ||
        !CHECK(send_all(fd, header, (size_t)length))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One round trip of a message unique to this call through an ECHO
 * connection; true when the same bytes came back. */
static bool echo_once(int fd)
{
    static unsigned calls;
    char message[1500], reply[sizeof(message)];
    calls++;
    for (size_t i = 0; i < sizeof(message); i++)
        message[i] = (char)('a' + (i * 7 + calls * 13 + (unsigned)fd) % 26);
    if (!send_all(fd, message, sizeof(message)))
        return false;
    return recv_up_to(fd, reply, sizeof(reply), REPLY_MS) == sizeof(reply) &&
           memcmp(message, reply, sizeof(reply)) == 0;
}

/* Whether fd has FD_CLOEXEC; -1 when F_GETFD fails. */
static int close_on_exec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    return flags < 0 ? -1 : (flags & FD_CLOEXEC) != 0;
}

/* ---- the control connection ---- */

struct control {
    int fd;
    char data[8192];
    size_t length;
};

/* Takes line (without its newline) from what came, if it did. */
static bool control_take(struct control *control, const char *line)
{
    size_t start = 0, wanted = strlen(line);
    for (size_t i = 0; i < control->length; i++) {
        if (control->data[i] != '\n')
            continue;
        if (i - start == wanted && memcmp(control->data + start, line, wanted) == 0) {
            memmove(control->data + start, control->data + i + 1, control->length - i - 1);
            control->length -= i + 1 - start;
            return true;
        }
        start = i + 1;
    }
    return false;
}

/* True when the peer says line within timeout_ms. */
static bool control_wait(struct control *control, const char *line, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (control_take(control, line))
            return true;
        long long left = deadline - now_ms();
        struct pollfd entry = {.fd = control->fd, .events = POLLIN};
        if (left <= 0 || poll(&entry, 1, (int)left) <= 0 ||
            control->length == sizeof(control->data))
            return false;
        ssize_t got = recv(control->fd, control->data + control->length,
                           sizeof(control->data) - control->length, 0);
        if (got <= 0)
            return false;
        control->length += (size_t)got;
    }
}

static bool control_open(struct control *control)
{
    control->length = 0;
    control->fd = connect_peer("CTRL");
    return control->fd >= 0 && CHECK(control_wait(control, "READY", REPLY_MS));
}

/* True when the peer reports EOF on the connection from local port port
 * within timeout_ms. */
static bool peer_sees_eof(struct control *control, int port, int timeout_ms)
{
    char line[32];
    snprintf(line, sizeof(line), "EOF %d", port);
    return control_wait(control, line, timeout_ms);
}

/* Releases the HOLD connection fd. */
static bool control_release(struct control *control, int fd)
{
    char line[32];
    int length = snprintf(line, sizeof(line), "GO %d\n", local_port(fd));
    return send_all(control->fd, line, (size_t)length);
}

/* ---- dup ---- */

/* Copies of one connection made every way: the kernel peer sees its EOF
 * only when the last is closed, and each copy carries the connection. */
static void dup_copies(struct control *control)
{
    int original = connect_peer("ECHO");
    if (original < 0)
        return;
    int port = local_port(original);
    CHECK(fcntl(original, F_SETFD, FD_CLOEXEC) == 0); /* dup's copy does not inherit it */

    int copy = dup(original);
    CHECK(copy >= 0 && copy != original);
    CHECK(close_on_exec(copy) == 0);

    int high = fcntl(original, F_DUPFD, 200);
    CHECK(high >= 200);
    CHECK(close_on_exec(high) == 0);
    int high_cloexec = fcntl(original, F_DUPFD_CLOEXEC, 200); /* 200 may be high's */
    CHECK(high_cloexec >= 200 && high_cloexec != high);
    CHECK(close_on_exec(high_cloexec) == 1);

    CHECK(fcntl(150, F_GETFD) == -1 && errno == EBADF);
    CHECK(dup2(original, 150) == 150);
    CHECK(close_on_exec(150) == 0);
    CHECK(fcntl(160, F_GETFD) == -1 && errno == EBADF);
    CHECK(dup3(original, 160, O_CLOEXEC) == 160);
    CHECK(close_on_exec(160) == 1);
    CHECK(close_on_exec(original) == 1);
    CHECK(dup3(original, original, 0) == -1 && errno == EINVAL);
    CHECK(dup2(original, original) == original);

    CHECK(close(original) == 0);
    CHECK(fcntl(original, F_GETFD) == -1 && errno == EBADF);
    int copies[] = {copy, high, high_cloexec, 150, 160};
    size_t count = sizeof(copies) / sizeof(copies[0]);
    for (size_t i = 0; i < count; i++) {
        int fd = copies[i];
        /* every copy still left carries the connection, the original gone */
        CHECK(echo_once(fd));
        struct sockaddr_in address;
        socklen_t length = sizeof(address);
        CHECK(getpeername(fd, (struct sockaddr *)&address, &length) == 0 &&
              address.sin_addr.s_addr == peer.sin_addr.s_addr &&
              address.sin_port == peer.sin_port);
        CHECK(local_port(fd) == port);
        CHECK(!peer_sees_eof(control, port, 200));
        CHECK(close(fd) == 0);
    }
    CHECK(peer_sees_eof(control, port, REPLY_MS));
}

/* dup2 onto a number that is a usock socket closes that socket as the
 * kernel closes the target: its peer sees EOF, unless another copy of it
 * lives on. */
static void dup2_onto_socket(struct control *control)
{
    int source = connect_peer("ECHO");
    int target = connect_peer("ECHO");
    int alone = connect_peer("ECHO");
    if (source < 0 || target < 0 || alone < 0)
        return;
    int source_port = local_port(source);
    int target_port = local_port(target);
    int alone_port = local_port(alone);
    int target_copy = dup(target);
    CHECK(target_copy >= 0);

    /* target had another copy: its connection lives on there */
    CHECK(dup2(source, target) == target);
    CHECK(local_port(target) == source_port);
    CHECK(!peer_sees_eof(control, target_port, 300));
    CHECK(echo_once(target_copy));
    CHECK(local_port(target_copy) == target_port);

    /* alone was the only one: dup3 onto it ends its connection */
    CHECK(dup3(source, alone, O_CLOEXEC) == alone);
    CHECK(peer_sees_eof(control, alone_port, REPLY_MS));
    CHECK(local_port(alone) == source_port);
    CHECK(close_on_exec(alone) == 1);

    CHECK(close(source) == 0);
    CHECK(echo_once(target));
    CHECK(echo_once(alone));
    CHECK(close(target) == 0);
    CHECK(!peer_sees_eof(control, source_port, 200));
    CHECK(close(alone) == 0);
    CHECK(peer_sees_eof(control, source_port, REPLY_MS));
    CHECK(close(target_copy) == 0);
    CHECK(peer_sees_eof(control, target_port, REPLY_MS));
}

/* Copies share the file status flags: O_NONBLOCK set through one is in
 * force through the other. */
static void dup_shares_flags(struct control *control)
{
    int fd = connect_peer("ECHO");
    if (fd < 0)
        return;
    int port = local_port(fd);
    int copy = dup(fd);
    CHECK(copy >= 0);
    int flags = fcntl(fd, F_GETFL);
    CHECK(flags >= 0 && !(flags & O_NONBLOCK));
    CHECK(fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0);
    CHECK(fcntl(copy, F_GETFL) & O_NONBLOCK);
    char byte;
    CHECK(recv(copy, &byte, 1, 0) == -1 && errno == EAGAIN);
    CHECK(read(copy, &byte, 1) == -1 && errno == EAGAIN);
    CHECK(fcntl(copy, F_SETFL, flags & ~O_NONBLOCK) == 0);
    CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    /* a blocking read through fd waits for the echo of what copy sent */
    CHECK(send_all(copy, "flags", 5));
    char reply[5];
    CHECK(read(fd, reply, sizeof(reply)) == 5 && memcmp(reply, "flags", 5) == 0);
    CHECK(close(fd) == 0);
    CHECK(close(copy) == 0);
    CHECK(peer_sees_eof(control, port, REPLY_MS));
}

/* Close-on-exec means what it says: a child execs this program (exec-child)
 * with the connection on four numbers, two of them FD_CLOEXEC (dup3
 * O_CLOEXEC, F_DUPFD_CLOEXEC); the new program finds those two closed and
 * the others carrying the connection. */
static void dup_across_exec(struct control *control)
{
    int fd = connect_peer("ECHO");
    if (fd < 0)
        return;
    int port = local_port(fd);
    int plain = dup(fd);
    CHECK(fcntl(170, F_GETFD) == -1 && errno == EBADF);
    CHECK(dup3(fd, 170, O_CLOEXEC) == 170);
    int cloexec = fcntl(fd, F_DUPFD_CLOEXEC, 180);
    CHECK(cloexec >= 180);
    char self[4096];
    ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (!CHECK(length > 0))
        return;
    self[length] = '\0';
    char address[INET_ADDRSTRLEN], peer_port[8], numbers[4][12];
    inet_ntop(AF_INET, &peer.sin_addr, address, sizeof(address));
    snprintf(peer_port, sizeof(peer_port), "%d", ntohs(peer.sin_port));
    snprintf(numbers[0], sizeof(numbers[0]), "%d", fd);
    snprintf(numbers[1], sizeof(numbers[1]), "%d", plain);
    snprintf(numbers[2], sizeof(numbers[2]), "%d", 170);
    snprintf(numbers[3], sizeof(numbers[3]), "%d", cloexec);
    pid_t child = fork();
    if (child == 0) {
        execl(self, self, "exec-child", address, peer_port, numbers[0], numbers[1], numbers[2],
              numbers[3], (char *)NULL);
        _exit(127);
    }
    CHECK(child > 0 && exited_zero(child));
    /* the parent's copies are all still there */
    CHECK(echo_once(170));
    CHECK(echo_once(cloexec));
    CHECK(close(fd) == 0 && close(plain) == 0 && close(170) == 0);
    CHECK(!peer_sees_eof(control, port, 200));
    CHECK(close(cloexec) == 0);
    CHECK(peer_sees_eof(control, port, REPLY_MS));
}

/* The program a child of dup_across_exec execs: open[] carry the
 * connection to the peer, gone[] are not open. */
static void check_exec_child(char **kept, char **gone)
{
    for (int i = 0; i < 2; i++) {
        int fd = atoi(kept[i]);
        struct sockaddr_in address;
        socklen_t length = sizeof(address);
        CHECK(getpeername(fd, (struct sockaddr *)&address, &length) == 0 &&
              address.sin_addr.s_addr == peer.sin_addr.s_addr &&
              address.sin_port == peer.sin_port);
        CHECK(echo_once(fd));
        CHECK(fcntl(atoi(gone[i]), F_GETFD) == -1 && errno == EBADF);
    }
}

static void check_dup(void)
{
    struct control control;
    if (!control_open(&control))
        return;
    dup_copies(&control);
    dup2_onto_socket(&control);
    dup_shares_flags(&control);
    dup_across_exec(&control);
    close(control.fd);
}

/* Reproducer: dup2 from a number that is not open fails EBADF and leaves
 * the target alone, as the kernel does. */
static void check_dup2_bad_source(void)
{
    struct control control;
    if (!control_open(&control))
        return;
    int target = connect_peer("ECHO");
    if (target < 0)
        return;
    int port = local_port(target);
    CHECK(fcntl(300, F_GETFD) == -1 && errno == EBADF);
    CHECK(dup2(300, target) == -1 && errno == EBADF);
    CHECK(dup3(target + 1000, target, 0) == -1 && errno == EBADF);
    CHECK(!peer_sees_eof(&control, port, 300));
    CHECK(echo_once(target));
    CHECK(close(target) == 0);
    CHECK(peer_sees_eof(&control, port, REPLY_MS));
    close(control.fd);
}

/* Reproducer: dup2 onto a usock socket that was the only descriptor of
 * its socket and was in an epoll set: the kernel drops that registration
 * with the socket, so the number can be added again for what it is now. */
static void check_dup2_epoll(void)
{
    int source = connect_peer("ECHO");
    int target = connect_peer("ECHO");
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (source < 0 || target < 0 || !CHECK(epoll_fd >= 0))
        return;
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = 1};
    CHECK(epoll_ctl(epoll_fd, EPOLL_CTL_ADD, target, &event) == 0);
    CHECK(dup2(source, target) == target);
    event.data.u64 = 2;
    CHECK(epoll_ctl(epoll_fd, EPOLL_CTL_ADD, target, &event) == 0);
    CHECK(send_all(source, "x", 1));
    sleep_ms(200);
    struct epoll_event events[4];
    int count = epoll_wait(epoll_fd, events, 4, 1000);
    for (int i = 0; i < count; i++)
        note("event %#x with data %llu", events[i].events,
             (unsigned long long)events[i].data.u64);
    CHECK(count == 1 && events[0].data.u64 == 2);
    close(source);
    close(target);
    close(epoll_fd);
}

/* ---- fork ---- */

/* Echoes what fd receives until EOF; returns the bytes echoed, -1 on an
 * error. */
static long echo_until_eof(int fd)
{
    char buffer[16384];
    long total = 0;
    for (;;) {
        ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
        if (got == 0)
            return total;
        if (got < 0 || !send_all(fd, buffer, (size_t)got))
            return -1;
        total += got;
    }
}

static int accept_logged(int listener, const char *who)
{
    struct sockaddr_in address;
    socklen_t length = sizeof(address);
    int fd = accept(listener, (struct sockaddr *)&address, &length);
    if (CHECK(fd >= 0))
        note("%s %d accepted %s:%d", who, (int)getpid(), inet_ntoa(address.sin_addr),
             ntohs(address.sin_port));
    return fd;
}

static void check_fork(void)
{
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    if (!CHECK(listener >= 0) ||
        !CHECK(setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == 0) ||
        !CHECK(bind(listener, (struct sockaddr *)&peer, sizeof(peer)) == 0) ||
        !CHECK(listen(listener, 8) == 0))
        return;
    note("listening on %s:%d", inet_ntoa(peer.sin_addr), ntohs(peer.sin_port));

    /* both accept on the one listener; each serves one kernel client */
    pid_t child = fork();
    if (child == 0) {
        alarm(WATCHDOG_S);
        note("child ready, pid %d", (int)getpid());
        int fd = accept_logged(listener, "child");
        CHECK(fd >= 0 && echo_until_eof(fd) > 0);
        CHECK(close(fd) == 0);
        /* the listener is left to exit, as a worker would */
        _exit(failures ? 1 : 0);
    }
    if (!CHECK(child > 0))
        return;
    note("parent accepting");
    int fd = accept_logged(listener, "parent");
    CHECK(fd >= 0 && echo_until_eof(fd) > 0);
    CHECK(close(fd) == 0);
    CHECK(exited_zero(child));

    /* the child is gone; the listener is still the parent's */
    note("child exited; parent accepting again");
    fd = accept_logged(listener, "parent");
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t server = fork();
    if (server == 0) {
        alarm(WATCHDOG_S);
        close(go[1]);
        char byte;
        CHECK(read(go[0], &byte, 1) == 1); /* the parent has closed its copy */
        static char buffer[FORK_SERVED_BYTES];
        CHECK(recv_up_to(fd, buffer, sizeof(buffer), 10000) == sizeof(buffer));
        CHECK(send_all(fd, buffer, sizeof(buffer)));
        note("second child %d served the connection; closing it", (int)getpid());
        CHECK(close(fd) == 0);
        _exit(failures ? 1 : 0);
    }
    CHECK(server > 0);
    close(go[0]);
    CHECK(close(fd) == 0);
    CHECK(write(go[1], "x", 1) == 1);
    close(go[1]);
    CHECK(server > 0 && exited_zero(server));
    CHECK(close(listener) == 0);
}

/* ---- sendfile ---- */

/* Shuts fd for writing and reads what a HOLD peer sends back; true when it
 * is exactly expected, then EOF. */
static bool sent_back_matches(int fd, const uint8_t *expected, size_t length)
{
    CHECK(shutdown(fd, SHUT_WR) == 0);
    uint8_t *back = malloc(length + 1);
    if (!back)
        return false;
    size_t got = recv_up_to(fd, back, length + 1, 15000);
    bool same = got == length && memcmp(back, expected, length) == 0;
    if (!same)
        note("sent %zu bytes, the peer got back %zu", length, got);
    free(back);
    return same;
}

static off_t file_offset(int file)
{
    return lseek(file, 0, SEEK_CUR);
}

static void sendfile_blocking(struct control *control, int file, const uint8_t *content)
{
    /* offset NULL: from the file offset, which moves by what went */
    int fd = connect_peer("HOLD");
    if (fd < 0 || !CHECK(control_release(control, fd)))
        return;
    CHECK(lseek(file, 1000, SEEK_SET) == 1000);
    CHECK(sendfile(fd, file, NULL, 300000) == 300000);
    CHECK(file_offset(file) == 301000);
    CHECK(sendfile(fd, file, NULL, 1234) == 1234);
    CHECK(file_offset(file) == 302234);
    CHECK(sent_back_matches(fd, content + 1000, 301234));
    CHECK(close(fd) == 0);

    /* with an offset: *offset moves, the file offset does not */
    fd = connect_peer("HOLD");
    if (fd < 0 || !CHECK(control_release(control, fd)))
        return;
    CHECK(lseek(file, 5, SEEK_SET) == 5);
    off_t offset = 123457;
    CHECK(sendfile(fd, file, &offset, 200000) == 200000);
    CHECK(offset == 323457);
    CHECK(file_offset(file) == 5);
    /* past the end: what there is, then 0 */
    offset = SENDFILE_FILE_SIZE - 1000;
    CHECK(sendfile(fd, file, &offset, 5000) == 1000);
    CHECK(offset == SENDFILE_FILE_SIZE);
    CHECK(sendfile(fd, file, &offset, 5000) == 0);
    CHECK(offset == SENDFILE_FILE_SIZE);
    CHECK(file_offset(file) == 5);
    static uint8_t expected[201000];
    memcpy(expected, content + 123457, 200000);
    memcpy(expected + 200000, content + SENDFILE_FILE_SIZE - 1000, 1000);
    CHECK(sent_back_matches(fd, expected, sizeof(expected)));
    CHECK(close(fd) == 0);
}

/* A nonblocking socket whose kernel peer does not read: sendfile sends
 * what fits (a partial count, then EAGAIN), the offset telling exactly how
 * much went; released, the peer has those bytes, the file's from start. */
static void sendfile_nonblocking(struct control *control, int file, const uint8_t *content,
                                 bool with_offset)
{
    int fd = connect_peer("HOLD");
    if (fd < 0)
        return;
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    off_t start = with_offset ? 4096 : 0;
    off_t offset = start;
    off_t file_at = with_offset ? 77 : 0; /* the file offset before */
    CHECK(lseek(file, file_at, SEEK_SET) == file_at);
    size_t total = 0, calls = 0, partial = 0;
    bool blocked = false;
    long long deadline = now_ms() + 5000;
    while (!blocked && now_ms() < deadline) {
        size_t count = SENDFILE_FILE_SIZE - (size_t)start - total;
        ssize_t sent = sendfile(fd, file, with_offset ? &offset : NULL, count);
        calls++;
        if (sent < 0) {
            CHECK(errno == EAGAIN);
            blocked = true;
        } else {
            CHECK(sent > 0 && (size_t)sent < count);
            partial += sent > 0;
            total += (size_t)(sent > 0 ? sent : 0);
        }
        if (with_offset) {
            CHECK(offset == start + (off_t)total);
            CHECK(file_offset(file) == file_at);
        } else {
            CHECK(file_offset(file) == (off_t)total);
        }
        if (calls == 1)
            CHECK(sent > 0); /* an empty send buffer takes something */
        if (!blocked)
            sleep_ms(10);
    }
    CHECK(blocked);
    note("nonblocking sendfile%s: %zu bytes in %zu partial calls, then EAGAIN",
         with_offset ? " with an offset" : "", total, partial);
    CHECK(control_release(control, fd));
    CHECK(fcntl(fd, F_SETFL, 0) == 0);
    CHECK(sent_back_matches(fd, content + start, total));
    CHECK(close(fd) == 0);
}

static void check_sendfile(void)
{
    struct control control;
    if (!control_open(&control))
        return;
    char path[] = "/tmp/preload_probe.XXXXXX";
    int file = mkstemp(path);
    if (!CHECK(file >= 0))
        return;
    unlink(path);
    uint8_t *content = malloc(SENDFILE_FILE_SIZE);
    if (!CHECK(content != NULL))
        return;
    uint32_t state = 2463534242u; /* xorshift32: bytes no two offsets share by chance */
    for (size_t i = 0; i < SENDFILE_FILE_SIZE; i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        content[i] = (uint8_t)state;
    }
    CHECK(write(file, content, SENDFILE_FILE_SIZE) == SENDFILE_FILE_SIZE);
    sendfile_blocking(&control, file, content);
    sendfile_nonblocking(&control, file, content, false);
    sendfile_nonblocking(&control, file, content, true);
    free(content);
    close(file);
    close(control.fd);
}

/* ---- ppoll and pselect ---- */

static volatile sig_atomic_t signals_taken;

static void on_signal(int number)
{
    (void)number;
    signals_taken++;
}

static void install_handler(void)
{
    struct sigaction action = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigemptyset(&action.sa_mask);
    sigaction(SIGUSR1, &action, NULL);
}

struct delayed_signal {
    pthread_t target;
    long delay_ms;
    atomic_bool sent; /* pthread_kill has returned */
};

static void *signal_later(void *argument)
{
    struct delayed_signal *plan = argument;
    sleep_ms(plan->delay_ms);
    pthread_kill(plan->target, SIGUSR1);
    atomic_store(&plan->sent, true);
    return NULL;
}

/* Whether SIGUSR1 is blocked in this thread now. */
static bool usr1_blocked(void)
{
    sigset_t now;
    pthread_sigmask(SIG_SETMASK, NULL, &now);
    return sigismember(&now, SIGUSR1) == 1;
}

/* The kind of wait to test: ppoll or pselect, with or without a mask. */
struct waiter {
    bool select;
    const sigset_t *mask;
};

/* Waits with the waiter for POLLIN on fds[0], fds[1] (and POLLOUT when
 * write is set); fills revents; returns the call's result and the time it
 * took in *took_ms. */
static int wait_ready(const struct waiter *waiter, struct pollfd *fds, int timeout_ms,
                      long long *took_ms)
{
    struct timespec timeout = {.tv_sec = timeout_ms / 1000,
                               .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    long long started = now_ms();
    int result;
    if (!waiter->select) {
        result = ppoll(fds, 2, &timeout, waiter->mask);
    } else {
        fd_set readable, writable;
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        int count = 0;
        for (int i = 0; i < 2; i++) {
            if (fds[i].events & POLLIN)
                FD_SET(fds[i].fd, &readable);
            if (fds[i].events & POLLOUT)
                FD_SET(fds[i].fd, &writable);
            if (fds[i].fd >= count)
                count = fds[i].fd + 1;
        }
        result = pselect(count, &readable, &writable, NULL, &timeout, waiter->mask);
        for (int i = 0; i < 2; i++) {
            fds[i].revents = 0;
            if (result > 0 && FD_ISSET(fds[i].fd, &readable))
                fds[i].revents |= POLLIN;
            if (result > 0 && FD_ISSET(fds[i].fd, &writable))
                fds[i].revents |= POLLOUT;
        }
    }
    *took_ms = now_ms() - started;
    return result;
}

/* One round of readiness checks over connection fd and pipe ends. */
static void poll_round(const struct waiter *waiter, int fd, const int pipe_ends[2])
{
    const char *name = waiter->select ? "pselect" : "ppoll";
    note("%s %s a signal mask", name, waiter->mask ? "with" : "without");
    struct pollfd fds[2];
    long long took;
    char buffer[8];
    bool usr1_before = usr1_blocked();

    /* nothing ready: 0 after the timeout */
    fds[0] = (struct pollfd){.fd = fd, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = pipe_ends[0], .events = POLLIN};
    CHECK(wait_ready(waiter, fds, 300, &took) == 0);
    CHECK(fds[0].revents == 0 && fds[1].revents == 0);
    CHECK(took >= 290 && took < 2000);

    /* the pipe alone */
    CHECK(write(pipe_ends[1], "p", 1) == 1);
    CHECK(wait_ready(waiter, fds, 2000, &took) == 1);
    CHECK(fds[0].revents == 0 && fds[1].revents == POLLIN);
    CHECK(took < 1000);
    CHECK(read(pipe_ends[0], buffer, 1) == 1);

    /* the socket alone, when the kernel peer's echo comes */
    CHECK(send_all(fd, "ping", 4));
    CHECK(wait_ready(waiter, fds, 2000, &took) == 1);
    CHECK(fds[0].revents == POLLIN && fds[1].revents == 0);
    CHECK(took < 1000);
    CHECK(recv_up_to(fd, buffer, 4, REPLY_MS) == 4 && memcmp(buffer, "ping", 4) == 0);

    /* both */
    CHECK(send_all(fd, "pong", 4));
    struct pollfd echo = {.fd = fd, .events = POLLIN};
    CHECK(poll(&echo, 1, REPLY_MS) == 1);
    CHECK(write(pipe_ends[1], "q", 1) == 1);
    CHECK(wait_ready(waiter, fds, 2000, &took) == 2);
    CHECK(fds[0].revents == POLLIN && fds[1].revents == POLLIN);
    CHECK(took < 1000);
    CHECK(recv_up_to(fd, buffer, 4, REPLY_MS) == 4 && memcmp(buffer, "pong", 4) == 0);
    CHECK(read(pipe_ends[0], buffer, 1) == 1);

    /* writability of both: the socket's and the pipe's write end */
    fds[0] = (struct pollfd){.fd = fd, .events = POLLOUT};
    fds[1] = (struct pollfd){.fd = pipe_ends[1], .events = POLLOUT};
    CHECK(wait_ready(waiter, fds, 2000, &took) == 2);
    CHECK(fds[0].revents == POLLOUT && fds[1].revents == POLLOUT);
    CHECK(took < 1000);

    if (waiter->mask) {
        /* a signal the mask blocks does not cut the wait short; it is
         * taken when the call puts the old mask back, before it returns */
        fds[0] = (struct pollfd){.fd = fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = pipe_ends[0], .events = POLLIN};
        struct delayed_signal plan = {.target = pthread_self(), .delay_ms = 100};
        pthread_t thread;
        int taken = signals_taken;
        CHECK(pthread_create(&thread, NULL, signal_later, &plan) == 0);
        CHECK(wait_ready(waiter, fds, 400, &took) == 0);
        CHECK(took >= 390 && took < 2000);
        /* (a loaded machine may run the thread only after the call) */
        if (atomic_load(&plan.sent))
            CHECK(signals_taken == taken + 1);
        pthread_join(thread, NULL);
        CHECK(signals_taken == taken + 1);
    }
    CHECK(usr1_blocked() == usr1_before); /* the mask is what it was */
}

static void check_poll(void)
{
    struct control control;
    if (!control_open(&control))
        return;
    int fd = connect_peer("ECHO");
    int pipe_ends[2];
    if (fd < 0 || !CHECK(pipe(pipe_ends) == 0))
        return;
    install_handler();
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, NULL, &mask);
    sigaddset(&mask, SIGUSR1);
    for (int use_select = 0; use_select < 2; use_select++) {
        struct waiter unmasked = {.select = use_select, .mask = NULL};
        struct waiter masked = {.select = use_select, .mask = &mask};
        poll_round(&unmasked, fd, pipe_ends);
        poll_round(&masked, fd, pipe_ends);
    }
    int port = local_port(fd);
    CHECK(close(fd) == 0);
    CHECK(peer_sees_eof(&control, port, REPLY_MS));
    close(control.fd);
}

/* Reproducer: a signal whose handler runs during a ppoll/pselect (no mask)
 * ends it with EINTR, as the kernel does. */
static void check_poll_signal(void)
{
    int fd = connect_peer("ECHO");
    int pipe_ends[2];
    if (fd < 0 || !CHECK(pipe(pipe_ends) == 0))
        return;
    install_handler();
    for (int use_select = 0; use_select < 2; use_select++) {
        struct waiter waiter = {.select = use_select, .mask = NULL};
        struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = pipe_ends[0], .events = POLLIN}};
        struct delayed_signal plan = {.target = pthread_self(), .delay_ms = 100};
        pthread_t thread;
        long long took;
        CHECK(pthread_create(&thread, NULL, signal_later, &plan) == 0);
        int result = wait_ready(&waiter, fds, 2000, &took);
        note("%s: %d after %lld ms", use_select ? "pselect" : "ppoll", result, took);
        CHECK(result == -1 && errno == EINTR);
        CHECK(took < 1000);
        pthread_join(thread, NULL);
    }
    close(fd);
}

/* Reproducer: the race ppoll and pselect exist for.  SIGUSR1 is blocked
 * and already pending; a wait whose mask unblocks it takes it and returns
 * EINTR at once, as the kernel does (the handler's flag cannot be missed). */
static void check_mask_race(void)
{
    int fd = connect_peer("ECHO");
    int pipe_ends[2];
    if (fd < 0 || !CHECK(pipe(pipe_ends) == 0))
        return;
    install_handler();
    sigset_t blocked, during;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &blocked, &during);
    sigdelset(&during, SIGUSR1);
    for (int use_select = 0; use_select < 2; use_select++) {
        struct waiter waiter = {.select = use_select, .mask = &during};
        struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = pipe_ends[0], .events = POLLIN}};
        long long took;
        int taken = signals_taken;
        raise(SIGUSR1); /* pending: blocked */
        int result = wait_ready(&waiter, fds, 2000, &took);
        note("%s: %d after %lld ms", use_select ? "pselect" : "ppoll", result, took);
        CHECK(result == -1 && errno == EINTR);
        CHECK(took < 1000);
        CHECK(signals_taken == taken + 1);
        CHECK(usr1_blocked());
    }
    close(fd);
}

/* ---- edge-triggered epoll ---- */

/* Waits up to timeout_ms for an event on fd holding any of bits; returns
 * the events reported for fd then (0: none in time). */
static uint32_t epoll_wait_for(int epoll_fd, int fd, uint32_t bits, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - now_ms();
        if (left < 0)
            return 0;
        struct epoll_event events[8];
        int count = epoll_wait(epoll_fd, events, 8, (int)left);
        if (count < 0 && errno != EINTR)
            return 0;
        for (int i = 0; i < count; i++) {
            if (events[i].data.fd == fd && (events[i].events & bits))
                return events[i].events;
        }
    }
}

/* An ECHO connection registered as nginx does (EPOLLIN | EPOLLOUT |
 * EPOLLRDHUP | EPOLLET), nonblocking, beside a pipe; -1 on failure. */
static int epoll_connection(int *epoll_fd, int pipe_ends[2])
{
    int fd = connect_peer("ECHO");
    if (fd < 0)
        return -1;
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    *epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    CHECK(*epoll_fd >= 0);
    CHECK(pipe(pipe_ends) == 0);
    struct epoll_event event = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                .data.fd = fd};
    CHECK(epoll_ctl(*epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0);
    event = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.fd = pipe_ends[0]};
    CHECK(epoll_ctl(*epoll_fd, EPOLL_CTL_ADD, pipe_ends[0], &event) == 0);
    CHECK(epoll_wait_for(*epoll_fd, fd, EPOLLOUT, 1000) != 0); /* writable at once */
    return fd;
}

/* A write cut short (the kernel peer does not read) ends the writable
 * edge; once the peer reads, EPOLLOUT is a new event within a second, as
 * nginx waits for it after a short writev or sendfile. */
static void epoll_et_writable(struct control *control)
{
    int fd = connect_peer("HOLD");
    if (fd < 0)
        return;
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                .data.fd = fd};
    CHECK(epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0);
    CHECK(epoll_wait_for(epoll_fd, fd, EPOLLOUT, 1000) & EPOLLOUT);
    static uint8_t chunk[65536];
    size_t total = 0;
    for (;;) {
        for (size_t i = 0; i < sizeof(chunk); i++)
            chunk[i] = (uint8_t)((total + i) % 251);
        ssize_t sent = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (sent < 0 && errno == EAGAIN)
            break;
        if (!CHECK(sent > 0) || !CHECK(total < 64u * 1024 * 1024))
            break;
        total += (size_t)sent;
        if ((size_t)sent < sizeof(chunk))
            break; /* short: nginx waits for EPOLLOUT now */
    }
    note("a write cut short after %zu bytes; the peer now reads", total);
    CHECK(control_release(control, fd));
    long long started = now_ms();
    CHECK(epoll_wait_for(epoll_fd, fd, EPOLLOUT, 1000) & EPOLLOUT);
    CHECK(now_ms() - started < 1000);
    CHECK(fcntl(fd, F_SETFL, 0) == 0);
    uint8_t *expected = malloc(total);
    if (CHECK(expected != NULL)) {
        for (size_t i = 0; i < total; i++)
            expected[i] = (uint8_t)(i % 251);
        CHECK(sent_back_matches(fd, expected, total));
    }
    free(expected);
    CHECK(close(fd) == 0);
    close(epoll_fd);
}

static void check_epoll_et(void)
{
    struct control control;
    if (!control_open(&control))
        return;
    int epoll_fd, pipe_ends[2];
    int fd = epoll_connection(&epoll_fd, pipe_ends);
    if (fd < 0)
        return;
    int port = local_port(fd);
    CHECK(epoll_wait_for(epoll_fd, fd, EPOLLIN, 200) == 0); /* nothing came yet */

    for (int turn = 0; turn < 5; turn++) {
        char message[600], buffer[65536];
        size_t length = (size_t)snprintf(message, sizeof(message), "turn %d ", turn);
        while (length < 100 + (size_t)turn * 100)
            message[length++] = (char)('A' + turn);
        CHECK(send_all(fd, message, length));
        /* the echo is an edge; each read is short (the buffer is larger
         * than what is queued) and none is made to EAGAIN */
        size_t got = 0;
        while (got < length) {
            long long started = now_ms();
            if (!CHECK(epoll_wait_for(epoll_fd, fd, EPOLLIN, 1000) & EPOLLIN)) {
                note("turn %d: no EPOLLIN within a second, %zu of %zu bytes read", turn,
                     got, length);
                break;
            }
            CHECK(now_ms() - started < 1000);
            ssize_t now = read(fd, buffer + got, sizeof(buffer) - got);
            CHECK(now > 0);
            if (now <= 0)
                break;
            got += (size_t)now;
        }
        CHECK(got == length && memcmp(buffer, message, length) == 0);
        if (turn == 0) /* an edge is reported once: nothing new, no event */
            CHECK(epoll_wait_for(epoll_fd, fd, EPOLLIN, 200) == 0);
    }

    /* the kernel side of the mixed set still reports */
    CHECK(write(pipe_ends[1], "x", 1) == 1);
    CHECK(epoll_wait_for(epoll_fd, pipe_ends[0], EPOLLIN, 1000) & EPOLLIN);

    /* the peer's FIN is an edge too */
    CHECK(shutdown(fd, SHUT_WR) == 0);
    CHECK(peer_sees_eof(&control, port, REPLY_MS));
    uint32_t events = epoll_wait_for(epoll_fd, fd, EPOLLIN | EPOLLRDHUP, 1000);
    CHECK((events & EPOLLIN) && (events & EPOLLRDHUP));
    char byte;
    CHECK(read(fd, &byte, 1) == 0);
    CHECK(close(fd) == 0);
    close(epoll_fd);

    epoll_et_writable(&control);
    close(control.fd);
}

/* Reproducer: with EPOLLET the kernel reports new data as a new event even
 * when the program read only part of what was queued (a full read: no
 * EAGAIN, no short read). */
static void check_epoll_et_unread(void)
{
    int epoll_fd, pipe_ends[2];
    int fd = epoll_connection(&epoll_fd, pipe_ends);
    if (fd < 0)
        return;
    char message[1000], buffer[100];
    memset(message, 'u', sizeof(message));
    CHECK(send_all(fd, message, sizeof(message)));
    CHECK(epoll_wait_for(epoll_fd, fd, EPOLLIN, 1000) & EPOLLIN);
    sleep_ms(100); /* all of the echo is queued */
    CHECK(read(fd, buffer, sizeof(buffer)) == sizeof(buffer)); /* 900 bytes stay */
    CHECK(send_all(fd, message, sizeof(message)));
    CHECK(epoll_wait_for(epoll_fd, fd, EPOLLIN, 1000) & EPOLLIN);
    close(fd);
    close(epoll_fd);
}

/* ---- getaddrinfo ---- */

static void check_getaddrinfo(const char *host, const char *port)
{
    struct control control;
    if (!control_open(&control))
        return;
    /* the literal, as programs ask: any family */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *found = NULL;
    int error = getaddrinfo(host, port, &hints, &found);
    if (!CHECK(error == 0 && found != NULL)) {
        note("getaddrinfo %s: %s", host, gai_strerror(error));
        return;
    }
    const struct sockaddr_in *address = (const struct sockaddr_in *)found->ai_addr;
    CHECK(found->ai_family == AF_INET && found->ai_addrlen == sizeof(*address));
    CHECK(address->sin_addr.s_addr == peer.sin_addr.s_addr && address->sin_port == peer.sin_port);
    int fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    CHECK(fd >= 0);
    CHECK(connect(fd, found->ai_addr, found->ai_addrlen) == 0);
    CHECK(send_all(fd, "ECHO\n", 5));
    CHECK(echo_once(fd));
    int local = local_port(fd);
    CHECK(close(fd) == 0);
    CHECK(peer_sees_eof(&control, local, REPLY_MS));
    freeaddrinfo(found);

    /* a name from /etc/hosts: localhost, to a listener of our own */
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in loopback = {.sin_family = AF_INET,
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(listener >= 0);
    CHECK(bind(listener, (struct sockaddr *)&loopback, sizeof(loopback)) == 0);
    CHECK(listen(listener, 4) == 0);
    char listening[8];
    snprintf(listening, sizeof(listening), "%d", local_port(listener));
    hints = (struct addrinfo){.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    error = getaddrinfo("localhost", listening, &hints, &found);
    if (!CHECK(error == 0 && found != NULL)) {
        note("getaddrinfo localhost: %s", gai_strerror(error));
        return;
    }
    address = (const struct sockaddr_in *)found->ai_addr;
    CHECK(address->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    CHECK(connect(fd, found->ai_addr, found->ai_addrlen) == 0);
    int accepted = accept(listener, NULL, NULL);
    CHECK(accepted >= 0);
    char reply[6];
    CHECK(send_all(fd, "hello", 5) && recv_up_to(accepted, reply, 5, REPLY_MS) == 5 &&
          memcmp(reply, "hello", 5) == 0);
    CHECK(send_all(accepted, "world", 5) && recv_up_to(fd, reply, 5, REPLY_MS) == 5 &&
          memcmp(reply, "world", 5) == 0);
    CHECK(close(accepted) == 0);
    CHECK(sees_eof(fd, REPLY_MS));
    close(fd);
    close(listener);
    freeaddrinfo(found);
    close(control.fd);
}

/* ---- main ---- */

static int usage(void)
{
    fprintf(stderr, "usage: preload_probe dup|fork|sendfile|poll|epoll-et|getaddrinfo|"
                    "dup2-bad-source|dup2-epoll|poll-signal|mask-race|epoll-et-unread ADDRESS PORT\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 8 && strcmp(argv[1], "exec-child") == 0))
        return usage();
    setvbuf(stdout, NULL, _IONBF, 0); /* nothing buffered to fork twice */
    signal(SIGPIPE, SIG_IGN);
    alarm(WATCHDOG_S);
    const char *check = argv[1];
    peer = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    /* for getaddrinfo too: the literal it resolves is where the peer is */
    if (inet_pton(AF_INET, argv[2], &peer.sin_addr) != 1)
        return usage();

    if (strcmp(check, "dup") == 0)
        check_dup();
    else if (strcmp(check, "fork") == 0)
        check_fork();
    else if (strcmp(check, "sendfile") == 0)
        check_sendfile();
    else if (strcmp(check, "poll") == 0)
        check_poll();
    else if (strcmp(check, "epoll-et") == 0)
        check_epoll_et();
    else if (strcmp(check, "getaddrinfo") == 0)
        check_getaddrinfo(argv[2], argv[3]);
    else if (strcmp(check, "exec-child") == 0)
        check_exec_child(argv + 4, argv + 6);
    else if (strcmp(check, "dup2-bad-source") == 0)
        check_dup2_bad_source();
    else if (strcmp(check, "dup2-epoll") == 0)
        check_dup2_epoll();
    else if (strcmp(check, "poll-signal") == 0)
        check_poll_signal();
    else if (strcmp(check, "mask-race") == 0)
        check_mask_race();
    else if (strcmp(check, "epoll-et-unread") == 0)
        check_epoll_et_unread();
    else
        return usage();
    note("%s: %d failed", check, failures);
    return failures ? 1 : 0;
}
