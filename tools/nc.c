/*
 * nc.c - `usock nc`: netcat on a usock stack of its own.
 *
 * Theory of operation: the arguments are checked in full first (exit 2 on a
 * mistake, before any link is opened).  SIGINT and SIGTERM are then blocked
 * before any thread exists, so only the main thread ever takes them, with a
 * zero-timeout sigtimedwait between poll slices; the stack is made from the
 * shared stack options (cli_stack_create) and runs in threaded mode.
 *
 * Setting up the one socket nc talks through, as OpenBSD nc does:
 *   - client: socket, bind to -p if given, connect to HOST:PORT (TCP: a
 *     nonblocking connect waited for in slices, bounded by -w);
 *   - listen, TCP: bind to [HOST:]PORT, listen, accept one connection and
 *     close the listener;
 *   - listen, UDP: bind, wait for the first datagram and connect the socket
 *     to its sender, so replies go there and only its datagrams are taken
 *     from then on; the datagram is the first thing written to stdout.
 *
 * Then two threads move the data: a stdin thread polls stdin (a kernel
 * descriptor) in slices of NC_POLL_MS, reads up to 64 KiB at a time and sends
 * each read whole (for UDP each read is one datagram, as nc does); at EOF it
 * shuts down the sending side of a TCP connection.  The main thread polls the
 * usock socket in slices (usock descriptors are not kernel descriptors, so
 * one poll() cannot wait on both) and writes what arrives to stdout.  Both
 * note the time of the last data; the main thread ends the session when
 * both directions are finished (TCP: the peer closed and stdin is at EOF; a
 * peer's FIN only means it has nothing more to send, so what stdin still has
 * goes out first, except to a person at a terminal), when -w seconds pass
 * with no data once stdin is at EOF (UDP client without -w: 2 s), on an
 * error, or on a signal.  After a normal TCP end on a stack of its own, nc
 * waits (nc_drain) until its FIN is acknowledged, since the stack and its
 * unsent data go when nc exits.  The socket has
 * SO_SNDTIMEO of NC_POLL_MS, so a blocked send returns in time for the stdin
 * thread to see the stop flag; the main thread joins it before the socket
 * and the stack go away.
 *
 * With --attach NAME, nc makes no stack: it attaches to the one a running
 * `usock up --name NAME` serves (usock_attach) and uses the same calls on
 * it; `usock ss -p --name NAME` then shows nc's socket with its pid.
 *
 * Exit status: 0 on a normal end, 1 on a failure at run time (one line
 * "usock: nc: <reason>"), 2 for bad arguments, 128+N after signal N.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* How long one wait lasts before flags and signals are looked at again. */
#define NC_POLL_MS 100
/* Most bytes read from stdin (and from a TCP socket) at a time. */
#define NC_CHUNK_MAX 65536
/* Most reads of the socket in a row before nc looks for signals again. */
#define NC_READS_WITHOUT_WAIT 64
/* Largest UDP payload over IPv4: one stdin read at most, one datagram. */
#define NC_DATAGRAM_MAX 65507
/* Idle time after stdin's EOF before a UDP client ends, without -w. */
#define NC_UDP_CLIENT_LINGER_S 2
/* Largest -w. */
#define NC_TIMEOUT_MAX_S 86400
/* How long nc waits at the end for what it sent to be acknowledged, unless
 * -w gives a time (see nc_drain). */
#define NC_DRAIN_LIMIT_S 30
#define NC_DRAIN_SLICE_MS 5

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

static const char nc_usage[] =
    "usage: usock nc [-u] [-l] [-v] [-p PORT] [-w SECONDS] [--join GROUP] [--broadcast]\n"
    "                (--link LINK --addr A.B.C.D/N | --attach NAME)\n"
    "                [--gateway IP] [--mac MAC] [--mtu N] [--pcap FILE] [--impair SPEC]\n"
    "                [HOST] PORT\n"
    "\n"
    "netcat on a stack of its own.  Sends stdin to HOST:PORT and writes what comes\n"
    "back to stdout; with -l, waits for a peer on PORT instead.\n"
    "  -u               UDP (default TCP); each read of stdin is one datagram\n"
    "  -l               listen on [HOST:]PORT (or -p PORT) for one peer; for UDP the\n"
    "                   first datagram's sender becomes the peer\n"
    "  -p PORT          source port (with -l: the port to listen on)\n"
    "  -w SECONDS       once stdin is at EOF, end after SECONDS with no data either\n"
    "                   way (UDP client default 2); also bounds a TCP connect\n"
    "  -v               say on stderr what is connected or listening\n"
    "  -n               accepted and ignored (addresses are always numeric)\n"
    "  --join GROUP     join multicast GROUP (UDP; IP_ADD_MEMBERSHIP), e.g. with -l\n"
    "  --broadcast      allow sending to broadcast addresses (SO_BROADCAST)\n"
    "  --attach NAME    use the stack a running `usock up --name NAME` serves instead\n"
    "                   of a stack of its own (no --link, --addr ...)\n" CLI_STACK_OPTIONS_USAGE
    "At EOF on stdin a TCP connection's sending side is shut down (as nc -N); the\n"
    "session ends once the peer has closed too (at a terminal: when the peer closes).\n"
    "Exit status: 0 normal end, 1 failure, 2 bad arguments, 128+N after signal N.\n";

/* Everything `usock nc` was asked for, validated. */
struct nc_options {
    bool udp;
    bool listen;
    bool verbose;
    bool source_port_given;
    unsigned source_port;
    bool timeout_given;
    unsigned timeout_s;
    bool host_given;
    struct in_addr host;
    unsigned port;
    bool broadcast;
    bool join_given;
    struct in_addr join_group;
    const char *attach_name; /* --attach: NULL for a stack of nc's own */
    struct cli_stack_options stack;
};

/* One session: the socket and what the two threads share. */
struct nc {
    struct usock_stack *stack;
    const sigset_t *signals;
    int fd;
    bool udp;
    bool interactive; /* stdin is a terminal */
    size_t chunk; /* most bytes one read of stdin takes */
    atomic_bool stopping;    /* main -> stdin thread: stop now */
    atomic_bool stdin_done;  /* stdin thread: EOF seen (or failed) */
    atomic_int stdin_error;  /* errno of a failure on the stdin side, 0 none */
    atomic_bool stdin_error_is_send; /* it was a send, not a read of stdin */
    _Atomic uint64_t last_data_ns;
    int signal_number; /* main thread: the signal that ended the session */
    size_t pending;    /* bytes of nc->out still to write (UDP -l's first datagram) */
    uint8_t in[NC_CHUNK_MAX];  /* stdin thread's */
    uint8_t out[NC_CHUNK_MAX]; /* main thread's */
};

/* ---- arguments ---- */

/* Takes the value of short option `letter` at argv[*index] + offset: the
 * rest of the cluster ("-p6000") or the next argument ("-p 6000").  Returns
 * the value or NULL after printing the problem. */
static const char *nc_short_value(int argc, char **argv, int *index, size_t offset, char letter)
{
    const char *rest = argv[*index] + offset;

    if (*rest != '\0')
        return rest;
    /* A following long option is taken for a forgotten value, as
     * cli_take_value does. */
    if (*index + 1 >= argc || strncmp(argv[*index + 1], "--", 2) == 0) {
        cli_error("option '-%c' needs a value", letter);
        return NULL;
    }
    *index += 1;
    return argv[*index];
}

/* Parses one cluster of short options ("-ul", "-p", "-w5").  Returns 0,
 * -1 for help (usage printed), or CLI_EXIT_USAGE after printing the
 * problem. */
static int nc_parse_short(int argc, char **argv, int *index, struct nc_options *options)
{
    const char *arg = argv[*index];

    for (size_t at = 1; arg[at] != '\0'; at++) {
        char letter = arg[at];
        const char *value;
        switch (letter) {
        case 'u':
            options->udp = true;
            break;
        case 'l':
            options->listen = true;
            break;
        case 'v':
            options->verbose = true;
            break;
        case 'n':
            break;
        case 'h':
            fputs(nc_usage, stdout);
            return -1;
        case 'p':
            value = nc_short_value(argc, argv, index, at + 1, letter);
            if (!value || cli_parse_unsigned(value, "port", 1, 65535, &options->source_port) < 0)
                return CLI_EXIT_USAGE;
            options->source_port_given = true;
            return 0;
        case 'w':
            value = nc_short_value(argc, argv, index, at + 1, letter);
            if (!value ||
                cli_parse_unsigned(value, "timeout", 0, NC_TIMEOUT_MAX_S, &options->timeout_s) < 0)
                return CLI_EXIT_USAGE;
            options->timeout_given = true;
            return 0;
        default:
            cli_error("unknown option '-%c' (try 'usock nc --help')", letter);
            return CLI_EXIT_USAGE;
        }
    }
    return 0;
}

/* Makes sense of HOST and PORT (given as positional[0..count-1]).  Returns 0
 * or CLI_EXIT_USAGE after printing the problem. */
static int nc_parse_endpoint(struct nc_options *options, char **positional, int count)
{
    if (count > 2) {
        cli_error("unexpected argument '%s' (expected [HOST] PORT)", positional[2]);
        return CLI_EXIT_USAGE;
    }
    if (!options->listen) {
        if (count < 2) {
            cli_error("missing %s (e.g. usock nc ... 198.18.0.1 5000)",
                      count == 0 ? "HOST and PORT" : "HOST or PORT");
            return CLI_EXIT_USAGE;
        }
    } else if (count == 0) {
        if (!options->source_port_given) {
            cli_error("missing the port to listen on (e.g. usock nc -l ... 5000)");
            return CLI_EXIT_USAGE;
        }
        options->port = options->source_port;
        return 0;
    }
    if (count == 2) {
        if (cli_parse_address(positional[0], "host", &options->host) < 0)
            return CLI_EXIT_USAGE;
        options->host_given = true;
    }
    if (cli_parse_unsigned(positional[count - 1], "port", 1, 65535, &options->port) < 0)
        return CLI_EXIT_USAGE;
    if (options->listen && options->source_port_given && options->source_port != options->port) {
        cli_error("-p %u and PORT %u differ (give the port to listen on once)",
                  options->source_port, options->port);
        return CLI_EXIT_USAGE;
    }
    if (!options->listen && options->host.s_addr == htonl(INADDR_ANY)) {
        cli_error("cannot connect to 0.0.0.0");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Parses argv into options.  Returns -1 for --help (usage printed), 0 on
 * success, or CLI_EXIT_USAGE after printing the problem. */
static int nc_parse(int argc, char **argv, struct nc_options *options)
{
    char *positional[3];
    int count = 0;
    bool options_ended = false;

    memset(options, 0, sizeof(*options));
    cli_stack_options_init(&options->stack);
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (!options_ended && cli_is_help(arg)) {
            fputs(nc_usage, stdout);
            return -1;
        }
        if (!options_ended && strcmp(arg, "--") == 0) {
            options_ended = true;
        } else if (!options_ended && strcmp(arg, "--broadcast") == 0) {
            options->broadcast = true;
        } else if (!options_ended && strcmp(arg, "--join") == 0) {
            if (i + 1 >= argc) {
                cli_error("option '--join' needs a value");
                return CLI_EXIT_USAGE;
            }
            const char *group = argv[++i];
            if (inet_pton(AF_INET, group, &options->join_group) != 1 ||
                (ntohl(options->join_group.s_addr) >> 28) != 0xe) {
                cli_error("bad multicast group '%s'", group);
                return CLI_EXIT_USAGE;
            }
            options->join_given = true;
        } else if (!options_ended && strcmp(arg, "--attach") == 0) {
            if (i + 1 >= argc) {
                cli_error("option '--attach' needs a value");
                return CLI_EXIT_USAGE;
            }
            options->attach_name = argv[++i];
            if (cli_check_name(options->attach_name) < 0)
                return CLI_EXIT_USAGE;
        } else if (!options_ended && strncmp(arg, "--", 2) == 0) {
            int taken = cli_stack_option(argc, argv, &i, &options->stack);
            if (taken < 0)
                return CLI_EXIT_USAGE;
            if (taken == 0) {
                cli_error("unknown option '%s' (try 'usock nc --help')", arg);
                return CLI_EXIT_USAGE;
            }
        } else if (!options_ended && arg[0] == '-' && arg[1] != '\0') {
            int status = nc_parse_short(argc, argv, &i, options);
            if (status != 0)
                return status;
        } else {
            if (count == 3) /* already one too many: say so below */
                continue;
            positional[count++] = arg;
        }
    }
    int status = nc_parse_endpoint(options, positional, count);
    if (status != 0)
        return status;
    if (options->join_given && !options->udp) {
        cli_error("--join needs -u (multicast is UDP)");
        return CLI_EXIT_USAGE;
    }
    if (options->attach_name) {
        if (options->stack.link_spec || options->stack.address_text) {
            cli_error("--attach uses a running stack: no --link or --addr with it");
            return CLI_EXIT_USAGE;
        }
        return 0;
    }
    return cli_stack_options_check(&options->stack);
}

/* ---- waiting ---- */

static uint64_t nc_now(void)
{
    return usock_monotonic_ns(NULL);
}

/* The signal among nc->signals that is pending, or 0. */
static int nc_pending_signal(const struct nc *nc)
{
    const struct timespec zero = {0, 0};

    for (;;) {
        int signal_number = sigtimedwait(nc->signals, NULL, &zero);
        if (signal_number > 0)
            return signal_number;
        if (errno != EINTR)
            return 0;
    }
}

enum nc_wait_result {
    NC_WAIT_READY,   /* *revents holds what happened */
    NC_WAIT_IDLE,    /* a slice passed quietly */
    NC_WAIT_SIGNAL,  /* nc->signal_number arrived */
    NC_WAIT_FAILED,  /* usock_poll failed; errno says why */
};

/* Waits one slice of NC_POLL_MS for events on usock descriptor fd. */
static enum nc_wait_result nc_wait(struct nc *nc, int fd, short events, short *revents)
{
    nc->signal_number = nc_pending_signal(nc);
    if (nc->signal_number)
        return NC_WAIT_SIGNAL;
    struct pollfd poll_fd = {.fd = fd, .events = events};
    int ready = usock_poll(nc->stack, &poll_fd, 1, NC_POLL_MS);
    if (ready < 0)
        return errno == EINTR ? NC_WAIT_IDLE : NC_WAIT_FAILED;
    if (ready == 0)
        return NC_WAIT_IDLE;
    *revents = poll_fd.revents;
    return NC_WAIT_READY;
}

/* Waits one slice for nc->fd to be readable.  Returns 0 when it is,
 * NC_SLICE_PASSED when the slice passed quietly, or the exit status for a
 * signal or a failed poll (after printing why). */
#define NC_SLICE_PASSED (-1)
static int nc_wait_readable(struct nc *nc)
{
    short revents = 0;
    enum nc_wait_result waited = nc_wait(nc, nc->fd, POLLIN, &revents);
    if (waited == NC_WAIT_SIGNAL)
        return 128 + nc->signal_number;
    if (waited == NC_WAIT_FAILED) {
        cli_error("nc: poll: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return waited == NC_WAIT_IDLE ? NC_SLICE_PASSED : 0;
}

/* ---- output ---- */

/* Writes all of buffer to stdout.  Returns 0 or -errno. */
static int nc_write_stdout(const uint8_t *buffer, size_t length)
{
    while (length > 0) {
        ssize_t written = write(STDOUT_FILENO, buffer, length);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd out = {.fd = STDOUT_FILENO, .events = POLLOUT};
                poll(&out, 1, NC_POLL_MS);
                continue;
            }
            return -errno;
        }
        buffer += written;
        length -= (size_t)written;
    }
    return 0;
}

/* Formats address:port for messages. */
static const char *nc_format(const struct sockaddr_in *address, char *text, size_t size)
{
    char host[INET_ADDRSTRLEN];

    inet_ntop(AF_INET, &address->sin_addr, host, sizeof(host));
    snprintf(text, size, "%s port %u", host, (unsigned)ntohs(address->sin_port));
    return text;
}

/* ---- the stdin thread ---- */

static void nc_touch(struct nc *nc)
{
    atomic_store(&nc->last_data_ns, nc_now());
}

/* Sends length bytes of nc->in: one datagram for UDP, all of them for TCP.
 * Returns 0 (also when told to stop part way) or -errno. */
static int nc_send(struct nc *nc, size_t length)
{
    size_t sent = 0;

    while (sent < length && !atomic_load(&nc->stopping)) {
        ssize_t count = usock_send(nc->stack, nc->fd, nc->in + sent, length - sent, 0);
        if (count < 0) {
            /* The SO_SNDTIMEO slice, or an interrupted call: look at the
             * stop flag, then try again. */
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return -errno;
        }
        if (nc->udp)
            break;
        sent += (size_t)count;
    }
    return 0;
}

/* Copies stdin to the socket until EOF, a failure, or the stop flag. */
static void *nc_stdin_run(void *argument)
{
    struct nc *nc = argument;

    while (!atomic_load(&nc->stopping)) {
        struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
        int ready = poll(&in, 1, NC_POLL_MS);
        if (ready < 0 && errno != EINTR && errno != EAGAIN) {
            atomic_store(&nc->stdin_error, errno);
            break;
        }
        if (ready <= 0)
            continue;
        ssize_t got = read(STDIN_FILENO, nc->in, nc->chunk);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0 && errno != EBADF) { /* a closed stdin is an empty one */
            atomic_store(&nc->stdin_error, errno);
            break;
        }
        if (got <= 0) {
            if (!nc->udp)
                (void)usock_shutdown(nc->stack, nc->fd, SHUT_WR);
            break;
        }
        nc_touch(nc);
        int error = nc_send(nc, (size_t)got);
        if (error < 0) {
            atomic_store(&nc->stdin_error_is_send, true);
            atomic_store(&nc->stdin_error, -error);
            break;
        }
        nc_touch(nc);
    }
    /* The -w clock starts no earlier than EOF. */
    nc_touch(nc);
    atomic_store(&nc->stdin_done, true);
    return NULL;
}

/* ---- setting up the connection ---- */

/* A usock socket of the kind asked for, bound to local when it is given
 * (port or address not zero).  Returns the descriptor or -1 after printing
 * why. */
static int nc_open_socket(struct nc *nc, const struct nc_options *options,
                          const struct sockaddr_in *local)
{
    int fd = usock_socket(nc->stack, AF_INET, options->udp ? SOCK_DGRAM : SOCK_STREAM,
                          options->udp ? IPPROTO_UDP : IPPROTO_TCP);
    if (fd < 0) {
        cli_error("nc: %s", strerror(errno));
        return -1;
    }
    if (options->broadcast) {
        int one = 1;
        (void)usock_setsockopt(nc->stack, fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
    }
    if (options->join_given) {
        struct ip_mreq request = {.imr_multiaddr = options->join_group};
        if (usock_setsockopt(nc->stack, fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request,
                             sizeof(request)) < 0) {
            cli_error("nc: join %s: %s", inet_ntoa(options->join_group), strerror(errno));
            usock_close(nc->stack, fd);
            return -1;
        }
    }
    if (local->sin_port != 0 || local->sin_addr.s_addr != htonl(INADDR_ANY)) {
        int one = 1;
        (void)usock_setsockopt(nc->stack, fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (usock_bind(nc->stack, fd, (const struct sockaddr *)local, sizeof(*local)) < 0) {
            char text[48];
            cli_error("nc: bind to %s: %s", nc_format(local, text, sizeof(text)),
                      strerror(errno));
            usock_close(nc->stack, fd);
            return -1;
        }
    }
    return fd;
}

/* Connects nc->fd to remote; a TCP connect is waited for in slices, for at
 * most timeout_ns (0: no limit).  Returns 0, or an exit status after
 * printing why (128+N after signal N). */
static int nc_connect(struct nc *nc, const struct nc_options *options,
                      const struct sockaddr_in *remote, uint64_t timeout_ns)
{
    char text[48];
    const struct sockaddr *address = (const struct sockaddr *)remote;

    if (options->udp) {
        if (usock_connect(nc->stack, nc->fd, address, sizeof(*remote)) < 0)
            goto fail;
        return 0;
    }

    int flags = usock_fcntl(nc->stack, nc->fd, F_GETFL, 0);
    if (flags < 0 || usock_fcntl(nc->stack, nc->fd, F_SETFL, flags | O_NONBLOCK) < 0)
        goto fail;
    if (usock_connect(nc->stack, nc->fd, address, sizeof(*remote)) < 0) {
        if (errno != EINPROGRESS)
            goto fail;
        uint64_t deadline = timeout_ns ? nc_now() + timeout_ns : USOCK_NEVER;
        for (;;) {
            short revents = 0;
            enum nc_wait_result waited = nc_wait(nc, nc->fd, POLLOUT, &revents);
            if (waited == NC_WAIT_SIGNAL)
                return 128 + nc->signal_number;
            if (waited == NC_WAIT_FAILED)
                goto fail;
            if (waited == NC_WAIT_READY)
                break;
            if (nc_now() >= deadline) {
                errno = ETIMEDOUT;
                goto fail;
            }
        }
        int error = 0;
        socklen_t length = sizeof(error);
        if (usock_getsockopt(nc->stack, nc->fd, SOL_SOCKET, SO_ERROR, &error, &length) < 0)
            goto fail;
        if (error != 0) {
            errno = error;
            goto fail;
        }
    }
    if (usock_fcntl(nc->stack, nc->fd, F_SETFL, flags) < 0)
        goto fail;
    return 0;

fail:
    cli_error("nc: connect to %s (%s): %s", nc_format(remote, text, sizeof(text)),
              options->udp ? "udp" : "tcp", strerror(errno));
    return CLI_EXIT_FAILURE;
}

/* Waits for the one peer on the listening nc->fd: accepts a TCP connection
 * (nc->fd becomes it) or takes the first datagram, leaves it in nc->out
 * (nc->pending bytes) for the session to write, and connects to its sender.
 * Returns 0, or an exit status after printing why. */
static int nc_accept(struct nc *nc, const struct nc_options *options, struct sockaddr_in *peer)
{
    if (!options->udp && usock_listen(nc->stack, nc->fd, 1) < 0) {
        cli_error("nc: listen: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    for (;;) {
        int waited = nc_wait_readable(nc);
        if (waited == NC_SLICE_PASSED)
            continue;
        if (waited != 0)
            return waited;

        socklen_t length = sizeof(*peer);
        if (!options->udp) {
            int connection =
                usock_accept(nc->stack, nc->fd, (struct sockaddr *)peer, &length);
            if (connection < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                    errno == ECONNABORTED)
                    continue;
                cli_error("nc: accept: %s", strerror(errno));
                return CLI_EXIT_FAILURE;
            }
            usock_close(nc->stack, nc->fd);
            nc->fd = connection;
            return 0;
        }

        ssize_t got = usock_recvfrom(nc->stack, nc->fd, nc->out, sizeof(nc->out),
                                     MSG_DONTWAIT, (struct sockaddr *)peer, &length);
        if (got < 0) {
            /* An ICMP error for an earlier socket on this port is not ours. */
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNREFUSED)
                continue;
            cli_error("nc: receive: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        nc_touch(nc);
        if (usock_connect(nc->stack, nc->fd, (struct sockaddr *)peer, sizeof(*peer)) < 0) {
            char text[48];
            cli_error("nc: connect to %s (udp): %s", nc_format(peer, text, sizeof(text)),
                      strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        nc->pending = (size_t)got;
        return 0;
    }
}

/* Makes the connection nc->fd stands for, as options say.  Returns 0 or an
 * exit status after printing why. */
static int nc_establish(struct nc *nc, const struct nc_options *options)
{
    const char *protocol = options->udp ? "udp" : "tcp";
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    struct sockaddr_in remote = {.sin_family = AF_INET};
    char text[48];
    int status;

    if (options->listen) {
        if (options->host_given)
            local.sin_addr = options->host;
        local.sin_port = htons((uint16_t)options->port);
    } else if (options->source_port_given) {
        local.sin_port = htons((uint16_t)options->source_port);
    }
    nc->fd = nc_open_socket(nc, options, &local);
    if (nc->fd < 0)
        return CLI_EXIT_FAILURE;

    if (options->listen) {
        if (options->verbose)
            cli_error("nc: listening on %s (%s)", nc_format(&local, text, sizeof(text)),
                      protocol);
        status = nc_accept(nc, options, &remote);
        if (status != 0)
            return status;
        if (options->verbose)
            cli_error("nc: connection from %s (%s)", nc_format(&remote, text, sizeof(text)),
                      protocol);
    } else {
        remote.sin_addr = options->host;
        remote.sin_port = htons((uint16_t)options->port);
        status = nc_connect(nc, options, &remote,
                            options->timeout_given ? options->timeout_s * NS_PER_S : 0);
        if (status != 0)
            return status;
        if (options->verbose)
            cli_error("nc: connected to %s (%s)", nc_format(&remote, text, sizeof(text)),
                      protocol);
    }

    /* A blocked send must come back now and then to see the stop flag. */
    struct timeval slice = {.tv_sec = 0, .tv_usec = NC_POLL_MS * 1000};
    if (usock_setsockopt(nc->stack, nc->fd, SOL_SOCKET, SO_SNDTIMEO, &slice, sizeof(slice)) < 0) {
        cli_error("nc: SO_SNDTIMEO: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

/* ---- the session ---- */

/* Writes nc->out[0..length) to stdout.  Returns -1 to go on, or the exit
 * status (after printing why) when the session ends. */
static int nc_output(const struct nc *nc, size_t length)
{
    int error = nc_write_stdout(nc->out, length);
    if (error == 0)
        return -1;
    if (error == -EPIPE)
        return CLI_EXIT_OK; /* whoever reads stdout has had enough */
    cli_error("nc: write to stdout: %s", strerror(-error));
    return CLI_EXIT_FAILURE;
}

/* Copies the socket to stdout until the session ends (see the top of the
 * file).  Returns the exit status, after printing why when it is not 0. */
static int nc_copy_out(struct nc *nc, uint64_t idle_limit_ns)
{
    bool peer_closed = false;
    /* Reads in a row without waiting: while data keeps coming, read again
     * at once (a signal is still looked for every NC_READS_WITHOUT_WAIT). */
    unsigned reads_in_a_row = 0;

    if (nc->pending > 0) {
        int status = nc_output(nc, nc->pending);
        nc->pending = 0;
        if (status >= 0)
            return status;
    }
    for (;;) {
        int error = atomic_load(&nc->stdin_error);
        if (error) {
            if (atomic_load(&nc->stdin_error_is_send))
                cli_error("nc: %s", strerror(error));
            else
                cli_error("nc: read from stdin: %s", strerror(error));
            return CLI_EXIT_FAILURE;
        }
        bool stdin_done = atomic_load(&nc->stdin_done);
        if (peer_closed && (stdin_done || nc->interactive))
            return CLI_EXIT_OK;
        if (stdin_done && idle_limit_ns != USOCK_NEVER &&
            nc_now() - atomic_load(&nc->last_data_ns) >= idle_limit_ns)
            return CLI_EXIT_OK;
        if (peer_closed) {
            /* Nothing more to read: wait for stdin's side to finish. */
            nc->signal_number = nc_pending_signal(nc);
            if (nc->signal_number)
                return 128 + nc->signal_number;
            poll(NULL, 0, NC_POLL_MS);
            continue;
        }

        if (reads_in_a_row == 0 || reads_in_a_row >= NC_READS_WITHOUT_WAIT) {
            reads_in_a_row = 0;
            int waited = nc_wait_readable(nc);
            if (waited == NC_SLICE_PASSED)
                continue;
            if (waited != 0)
                return waited;
        }

        ssize_t got = usock_recv(nc->stack, nc->fd, nc->out, sizeof(nc->out), MSG_DONTWAIT);
        if (got < 0) {
            reads_in_a_row = 0;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            cli_error("nc: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        reads_in_a_row++;
        nc_touch(nc);
        if (got == 0 && !nc->udp) {
            peer_closed = true;
            continue;
        }
        int status = nc_output(nc, (size_t)got);
        if (status >= 0)
            return status;
    }
}

/* After a normal end of a TCP session on a stack of nc's own: the stack goes
 * when nc exits, and what is still in the send buffer with it, unlike a
 * kernel whose orphaned connection goes on sending after its process is gone.
 * So nc sends its FIN (if stdin's side has not) and waits, in slices, until
 * the FIN is acknowledged (and with it every byte before it), the connection
 * ends otherwise, limit_ns passes, or a signal comes.  Returns the exit
 * status: 0, or 128+N after signal N. */
static int nc_drain(struct nc *nc, uint64_t limit_ns)
{
    uint64_t deadline = nc_now() + limit_ns;

    (void)usock_shutdown(nc->stack, nc->fd, SHUT_WR);
    while (nc_now() < deadline) {
        struct tcp_info info;
        socklen_t length = sizeof(info);
        if (usock_getsockopt(nc->stack, nc->fd, IPPROTO_TCP, TCP_INFO, &info, &length) < 0)
            return CLI_EXIT_OK;
        if (info.tcpi_state != TCP_FIN_WAIT1 && info.tcpi_state != TCP_CLOSING &&
            info.tcpi_state != TCP_LAST_ACK)
            return CLI_EXIT_OK;
        nc->signal_number = nc_pending_signal(nc);
        if (nc->signal_number)
            return 128 + nc->signal_number;
        poll(NULL, 0, NC_DRAIN_SLICE_MS);
    }
    cli_error("nc: %.0f s passed and the peer has not acknowledged all that was sent",
              (double)limit_ns / NS_PER_S);
    return CLI_EXIT_FAILURE;
}

/* Runs the session on the established nc->fd.  Returns the exit status. */
static int nc_session(struct nc *nc, const struct nc_options *options)
{
    uint64_t idle_limit_ns = USOCK_NEVER;
    if (options->timeout_given)
        idle_limit_ns = options->timeout_s * NS_PER_S;
    else if (options->udp && !options->listen)
        idle_limit_ns = NC_UDP_CLIENT_LINGER_S * NS_PER_S;

    nc->udp = options->udp;
    nc->interactive = isatty(STDIN_FILENO);
    nc->chunk = options->udp ? NC_DATAGRAM_MAX : NC_CHUNK_MAX;
    nc_touch(nc);

    pthread_t stdin_thread;
    int error = pthread_create(&stdin_thread, NULL, nc_stdin_run, nc);
    if (error != 0) {
        cli_error("nc: cannot start a thread: %s", strerror(error));
        return CLI_EXIT_FAILURE;
    }
    int status = nc_copy_out(nc, idle_limit_ns);
    atomic_store(&nc->stopping, true);
    pthread_join(stdin_thread, NULL);
    if (status == CLI_EXIT_OK && !nc->udp && !options->attach_name)
        status = nc_drain(nc, options->timeout_given ? options->timeout_s * NS_PER_S
                                                     : NC_DRAIN_LIMIT_S * NS_PER_S);
    return status;
}

int cmd_nc(int argc, char **argv)
{
    struct nc_options options;
    struct usock_link *far_end = NULL;
    struct usock_stack *stack = NULL;
    int status;

    status = nc_parse(argc, argv, &options);
    if (status < 0)
        return CLI_EXIT_OK;
    if (status != 0)
        return status;

    struct nc *nc = calloc(1, sizeof(*nc));
    if (!nc) {
        cli_error("nc: out of memory");
        return CLI_EXIT_FAILURE;
    }
    nc->fd = -1;
    atomic_init(&nc->stopping, false);
    atomic_init(&nc->stdin_done, false);
    atomic_init(&nc->stdin_error, 0);
    atomic_init(&nc->stdin_error_is_send, false);
    atomic_init(&nc->last_data_ns, 0);

    /* Before any thread exists (the stack's, the stdin thread), so only the
     * main thread takes these, between waits.  A shell starts background
     * jobs with SIGINT ignored; take back the default so it is seen. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an EPIPE */
    nc->signals = &stop_signals;

    if (options.attach_name) {
        stack = usock_attach(options.attach_name);
        if (!stack) {
            cli_error("nc: cannot attach to stack '%s': %s", options.attach_name,
                      strerror(errno));
            status = CLI_EXIT_FAILURE;
            goto out_free;
        }
    } else {
        status = cli_stack_create(&options.stack, "nc", &stack, &far_end);
        if (status != CLI_EXIT_OK)
            goto out_free;
    }
    nc->stack = stack;

    status = nc_establish(nc, &options);
    if (status == 0)
        status = nc_session(nc, &options);

    if (nc->fd >= 0)
        usock_close(stack, nc->fd);
    if (options.attach_name)
        usock_stack_free(stack); /* detaches */
    else
        cli_stack_destroy(stack, far_end);
out_free:
    free(nc);
    return status;
}
