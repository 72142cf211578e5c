/*
 * raw.c - `usock raw`: a raw IP socket on a usock stack of its own.
 *
 * Theory of operation: the arguments are checked in full first (exit 2 on a
 * mistake, before any link is opened).  SIGINT and SIGTERM are blocked
 * before any thread exists, so only the main thread takes them, with a
 * zero-timeout sigtimedwait between poll slices of RAW_POLL_MS; the stack is
 * made from the shared stack options (cli_stack_create) and runs threaded.
 * One socket, usock_socket(AF_INET, SOCK_RAW, PROTO), with IP_HDRINCL when
 * --hdrincl is given (always on for -p raw, IPPROTO_RAW).
 *
 * Receiving (the main thread): every datagram of PROTO addressed to the
 * stack arrives with its IP header, as on Linux; one line is printed for
 * each, "from SRC proto P ttl T len N" (SRC, P and T read from that header,
 * N the bytes received, header included), and with -x a hex dump of the
 * whole datagram, 16 bytes a line after a hex offset.  stdout is flushed
 * after each datagram so a reader sees it at once.
 *
 * Sending (a stdin thread, only when HOST is given): each line of stdin is
 * hex bytes, whitespace allowed anywhere between digits ("45 00 00 1c" or
 * "4500001c"); empty lines and lines starting with '#' are skipped.  Each
 * line is one usock_sendto to HOST: the payload under an IP header the stack
 * builds, or with --hdrincl the whole IP packet (the stack fills in total
 * length and checksum, and the identification and source when zero).  The
 * thread polls stdin in slices so it sees the stop flag; the main thread
 * joins it before the socket and the stack go away.
 *
 * The run ends at SIGINT/SIGTERM, after -c COUNT datagrams received, after
 * -w SECONDS with nothing received or sent (counted from the start, or the
 * last datagram either way, or stdin's EOF), on a failure, or, for -p raw
 * with HOST (an IPPROTO_RAW socket receives nothing), once stdin is at EOF
 * and 1 s (or -w SECONDS) has passed, so packets waiting for ARP still leave.
 *
 * Exit status: 0 normal end (signals included), 1 a failure at run time (one
 * line "usock: raw: <reason>"), 2 bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* How long one wait lasts before flags and signals are looked at again. */
#define RAW_POLL_MS 100
/* Largest datagram: an IPv4 packet. */
#define RAW_DATAGRAM_MAX 65535
/* Longest line of stdin: a largest packet as "xx " triplets, and slack. */
#define RAW_LINE_MAX (3 * RAW_DATAGRAM_MAX + 1024)
#define RAW_READ_CHUNK 4096
/* Largest -w. */
#define RAW_SECONDS_MAX 86400.0
/* After stdin's EOF, how long -p raw lingers without -w. */
#define RAW_LINGER_NS NS_PER_S
#define RAW_IP_HEADER 20
#define RAW_DUMP_WIDTH 16

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

static const char raw_usage[] =
    "usage: usock raw [-p PROTO] [--hdrincl] [-c COUNT] [-w SECONDS] [-x]\n"
    "                 --link LINK --addr A.B.C.D/N [--gateway IP] [--mac MAC] [--mtu N]\n"
    "                 [--pcap FILE] [--impair SPEC] [HOST]\n"
    "\n"
    "A raw IP socket (SOCK_RAW) on a stack of its own.  Prints a line for every\n"
    "datagram of PROTO that reaches the stack:\n"
    "  from SRC proto P ttl T len N\n"
    "(read from its IP header, which is included; N counts the header too).\n"
    "With HOST, each line of stdin is hex bytes (spaces allowed; empty lines and\n"
    "lines starting with '#' are skipped) sent to HOST as one datagram.\n"
    "  -p PROTO         protocol number 1..255 or icmp, igmp, tcp, udp, raw (255;\n"
    "                   implies --hdrincl, receives nothing); default icmp\n"
    "  --hdrincl        the bytes sent are the whole IP packet (IP_HDRINCL); the\n"
    "                   stack fills in total length and checksum, and the ID and\n"
    "                   source address when they are zero\n"
    "  -c COUNT         stop after COUNT datagrams received\n"
    "  -w SECONDS       stop after SECONDS with no datagram either way (fractions\n"
    "                   allowed; default: run until SIGINT or SIGTERM)\n"
    "  -x               also print each datagram in hex, 16 bytes a line\n" CLI_STACK_OPTIONS_USAGE
    "With -p raw and HOST, ends 1 s (or -w SECONDS) after stdin's EOF.\n"
    "Exit status: 0 normal end, 1 failure, 2 bad arguments.\n";

/* Everything `usock raw` was asked for, validated. */
struct raw_options {
    unsigned protocol;
    bool header_included;
    unsigned count; /* 0: no limit */
    uint64_t wait_ns; /* 0: no limit */
    bool hex;
    bool host_given;
    struct in_addr host;
    struct cli_stack_options stack;
};

/* One run: the socket and what the two threads share. */
struct raw {
    struct usock_stack *stack;
    const struct raw_options *options;
    const sigset_t *signals;
    int fd;
    atomic_bool stopping;   /* main -> stdin thread: stop now */
    atomic_bool stdin_done; /* stdin thread: EOF seen (or failed) */
    atomic_bool failed;     /* stdin thread: printed a failure */
    _Atomic uint64_t last_activity_ns;
    unsigned long long received;
    char line[RAW_LINE_MAX];             /* stdin thread's */
    uint8_t out[RAW_DATAGRAM_MAX];       /* stdin thread's */
    uint8_t in[RAW_DATAGRAM_MAX + 1];    /* main thread's */
};

/* ---- arguments ---- */

static const struct {
    const char *name;
    unsigned number;
} raw_protocol_names[] = {
    {"icmp", IPPROTO_ICMP}, {"igmp", IPPROTO_IGMP}, {"tcp", IPPROTO_TCP},
    {"udp", IPPROTO_UDP},   {"raw", IPPROTO_RAW},
};

/* PROTO as a number 1..255 or a name.  Returns 0 or -EINVAL after printing
 * the problem. */
static int raw_parse_protocol(const char *text, unsigned *protocol)
{
    for (size_t i = 0; i < sizeof(raw_protocol_names) / sizeof(raw_protocol_names[0]); i++) {
        if (strcmp(text, raw_protocol_names[i].name) == 0) {
            *protocol = raw_protocol_names[i].number;
            return 0;
        }
    }
    bool digits = text[0] != '\0' && strlen(text) <= 3;
    for (const char *at = text; *at; at++)
        digits = digits && *at >= '0' && *at <= '9';
    unsigned value = digits ? (unsigned)strtoul(text, NULL, 10) : 0;
    if (value < 1 || value > 255) {
        cli_error("bad protocol '%s' (expected 1..255 or icmp, igmp, tcp, udp, raw)", text);
        return -EINVAL;
    }
    *protocol = value;
    return 0;
}

/* A number of seconds ("2", "0.5"), more than 0 and at most
 * RAW_SECONDS_MAX. */
static int raw_parse_seconds(const char *text, uint64_t *value_ns)
{
    char *end;
    errno = 0;
    double seconds = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(seconds) || seconds <= 0 ||
        seconds > RAW_SECONDS_MAX || text[0] == '-' || text[0] == '+' || text[0] == ' ') {
        cli_error("bad wait '%s' (expected more than 0, at most %g seconds)", text,
                  RAW_SECONDS_MAX);
        return -EINVAL;
    }
    *value_ns = (uint64_t)(seconds * (double)NS_PER_S + 0.5);
    if (*value_ns == 0)
        *value_ns = 1;
    return 0;
}

/* The value of short option `letter` at argv[*index] + offset: the rest of
 * the cluster ("-c2") or the next argument ("-c 2").  NULL after printing
 * the problem. */
static const char *raw_short_value(int argc, char **argv, int *index, size_t offset, char letter)
{
    const char *rest = argv[*index] + offset;

    if (*rest != '\0')
        return rest;
    if (*index + 1 >= argc || strncmp(argv[*index + 1], "--", 2) == 0) {
        cli_error("option '-%c' needs a value", letter);
        return NULL;
    }
    *index += 1;
    return argv[*index];
}

/* Parses one cluster of short options ("-x", "-xc2", "-p udp").  Returns 0,
 * -1 for help (usage printed), or CLI_EXIT_USAGE after printing the
 * problem. */
static int raw_parse_short(int argc, char **argv, int *index, struct raw_options *options)
{
    const char *arg = argv[*index];

    for (size_t at = 1; arg[at] != '\0'; at++) {
        char letter = arg[at];
        const char *value;
        switch (letter) {
        case 'x':
            options->hex = true;
            break;
        case 'h':
            fputs(raw_usage, stdout);
            return -1;
        case 'p':
            value = raw_short_value(argc, argv, index, at + 1, letter);
            if (!value || raw_parse_protocol(value, &options->protocol) < 0)
                return CLI_EXIT_USAGE;
            return 0;
        case 'c':
            value = raw_short_value(argc, argv, index, at + 1, letter);
            if (!value || cli_parse_unsigned(value, "count", 1, 0x7fffffff, &options->count) < 0)
                return CLI_EXIT_USAGE;
            return 0;
        case 'w':
            value = raw_short_value(argc, argv, index, at + 1, letter);
            if (!value || raw_parse_seconds(value, &options->wait_ns) < 0)
                return CLI_EXIT_USAGE;
            return 0;
        default:
            cli_error("unknown option '-%c' (try 'usock raw --help')", letter);
            return CLI_EXIT_USAGE;
        }
    }
    return 0;
}

/* Parses argv into options.  Returns -1 for --help (usage printed), 0 on
 * success, or CLI_EXIT_USAGE after printing the problem. */
static int raw_parse(int argc, char **argv, struct raw_options *options)
{
    const char *host = NULL;
    bool options_ended = false;

    memset(options, 0, sizeof(*options));
    options->protocol = IPPROTO_ICMP;
    cli_stack_options_init(&options->stack);
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (!options_ended && cli_is_help(arg)) {
            fputs(raw_usage, stdout);
            return -1;
        }
        if (!options_ended && strcmp(arg, "--") == 0) {
            options_ended = true;
        } else if (!options_ended && strcmp(arg, "--hdrincl") == 0) {
            options->header_included = true;
        } else if (!options_ended && strncmp(arg, "--", 2) == 0) {
            int taken = cli_stack_option(argc, argv, &i, &options->stack);
            if (taken < 0)
                return CLI_EXIT_USAGE;
            if (taken == 0) {
                cli_error("unknown option '%s' (try 'usock raw --help')", arg);
                return CLI_EXIT_USAGE;
            }
        } else if (!options_ended && arg[0] == '-' && arg[1] != '\0') {
            int status = raw_parse_short(argc, argv, &i, options);
            if (status != 0)
                return status;
        } else if (host) {
            cli_error("unexpected argument '%s' (expected at most one HOST)", arg);
            return CLI_EXIT_USAGE;
        } else {
            host = arg;
        }
    }
    if (options->protocol == IPPROTO_RAW)
        options->header_included = true;
    if (host) {
        if (cli_parse_address(host, "host", &options->host) < 0)
            return CLI_EXIT_USAGE;
        if (options->host.s_addr == htonl(INADDR_ANY)) {
            cli_error("cannot send to 0.0.0.0");
            return CLI_EXIT_USAGE;
        }
        options->host_given = true;
    }
    return cli_stack_options_check(&options->stack);
}

/* ---- waiting ---- */

static uint64_t raw_now(void)
{
    return usock_monotonic_ns(NULL);
}

static void raw_touch(struct raw *raw)
{
    atomic_store(&raw->last_activity_ns, raw_now());
}

/* The signal among raw->signals that is pending, or 0. */
static int raw_pending_signal(const struct raw *raw)
{
    const struct timespec zero = {0, 0};

    for (;;) {
        int signal_number = sigtimedwait(raw->signals, NULL, &zero);
        if (signal_number > 0)
            return signal_number;
        if (errno != EINTR)
            return 0;
    }
}

/* ---- the stdin thread ---- */

static int raw_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses line[0..length) as hex bytes into raw->out.  Returns the number of
 * bytes, or -1 after printing why the line is bad. */
static ssize_t raw_parse_hex(struct raw *raw, const char *line, size_t length,
                             unsigned long long number)
{
    size_t bytes = 0;
    int high = -1;

    for (size_t i = 0; i < length; i++) {
        char c = line[i];
        if (c == ' ' || c == '\t' || c == '\r')
            continue;
        int digit = raw_hex_digit(c);
        if (digit < 0) {
            cli_error("raw: stdin line %llu: '%c' is not a hex digit", number, c);
            return -1;
        }
        if (high < 0) {
            high = digit;
            continue;
        }
        if (bytes == RAW_DATAGRAM_MAX) {
            cli_error("raw: stdin line %llu: more than %u bytes", number, RAW_DATAGRAM_MAX);
            return -1;
        }
        raw->out[bytes++] = (uint8_t)(high << 4 | digit);
        high = -1;
    }
    if (high >= 0) {
        cli_error("raw: stdin line %llu: an odd number of hex digits", number);
        return -1;
    }
    return (ssize_t)bytes;
}

/* Sends one line of stdin.  Returns 0, or -1 after printing the failure. */
static int raw_send_line(struct raw *raw, const char *line, size_t length,
                         unsigned long long number)
{
    size_t start = 0;
    while (start < length && (line[start] == ' ' || line[start] == '\t'))
        start++;
    if (start < length && line[start] == '#')
        return 0;
    ssize_t bytes = raw_parse_hex(raw, line, length, number);
    if (bytes < 0)
        return -1;
    if (bytes == 0)
        return 0;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = raw->options->host};
    for (;;) {
        ssize_t sent = usock_sendto(raw->stack, raw->fd, raw->out, (size_t)bytes, 0,
                                    (const struct sockaddr *)&to, sizeof(to));
        if (sent >= 0)
            break;
        if (errno == EINTR)
            continue;
        cli_error("raw: %s", strerror(errno));
        return -1;
    }
    raw_touch(raw);
    return 0;
}

/* Sends each line of stdin until EOF, a failure, or the stop flag. */
static void *raw_stdin_run(void *argument)
{
    struct raw *raw = argument;
    char chunk[RAW_READ_CHUNK];
    size_t used = 0;
    unsigned long long number = 0;
    bool failed = false;

    while (!atomic_load(&raw->stopping) && !failed) {
        struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
        int ready = poll(&in, 1, RAW_POLL_MS);
        if (ready < 0 && errno != EINTR && errno != EAGAIN) {
            cli_error("raw: read from stdin: %s", strerror(errno));
            failed = true;
            break;
        }
        if (ready <= 0)
            continue;
        ssize_t got = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0 && errno != EBADF) { /* a closed stdin is an empty one */
            cli_error("raw: read from stdin: %s", strerror(errno));
            failed = true;
            break;
        }
        if (got <= 0) {
            if (used > 0 && raw_send_line(raw, raw->line, used, ++number) < 0)
                failed = true;
            break;
        }
        for (ssize_t i = 0; i < got && !failed; i++) {
            if (chunk[i] == '\n') {
                if (raw_send_line(raw, raw->line, used, ++number) < 0)
                    failed = true;
                used = 0;
            } else if (used == sizeof(raw->line)) {
                cli_error("raw: stdin line %llu: longer than %zu characters", number + 1,
                          sizeof(raw->line));
                failed = true;
            } else {
                raw->line[used++] = chunk[i];
            }
        }
    }
    if (failed)
        atomic_store(&raw->failed, true);
    raw_touch(raw); /* the -w clock starts no earlier than EOF */
    atomic_store(&raw->stdin_done, true);
    return NULL;
}

/* ---- receiving ---- */

static void raw_print(const struct raw *raw, size_t length, const struct sockaddr_in *from)
{
    const uint8_t *packet = raw->in;
    char source[INET_ADDRSTRLEN];

    if (length >= RAW_IP_HEADER && (packet[0] >> 4) == 4) {
        inet_ntop(AF_INET, packet + 12, source, sizeof(source));
        printf("from %s proto %u ttl %u len %zu\n", source, (unsigned)packet[9],
               (unsigned)packet[8], length);
    } else { /* not expected: the stack includes the IP header */
        inet_ntop(AF_INET, &from->sin_addr, source, sizeof(source));
        printf("from %s proto %u ttl ? len %zu\n", source, raw->options->protocol, length);
    }
    if (raw->options->hex) {
        for (size_t offset = 0; offset < length; offset += RAW_DUMP_WIDTH) {
            printf("  %04zx:", offset);
            for (size_t i = offset; i < length && i < offset + RAW_DUMP_WIDTH; i++)
                printf(" %02x", packet[i]);
            putchar('\n');
        }
    }
}

/* Reads and prints what waits on the socket, up to the -c limit.  Returns
 * -1 to go on, or the exit status (after printing why) when the run ends. */
static int raw_drain(struct raw *raw)
{
    const struct raw_options *options = raw->options;

    while (options->count == 0 || raw->received < options->count) {
        struct sockaddr_in from;
        socklen_t from_length = sizeof(from);
        ssize_t got = usock_recvfrom(raw->stack, raw->fd, raw->in, sizeof(raw->in),
                                     MSG_DONTWAIT, (struct sockaddr *)&from, &from_length);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return -1;
            cli_error("raw: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        raw_touch(raw);
        raw->received++;
        raw_print(raw, (size_t)got, &from);
        if (fflush(stdout) != 0) {
            if (errno == EPIPE)
                return CLI_EXIT_OK; /* whoever reads stdout has had enough */
            cli_error("raw: write to stdout: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
    }
    return CLI_EXIT_OK;
}

/* Receives until the run ends (see the top of the file).  Returns the exit
 * status, after printing why when it is not 0. */
static int raw_receive_loop(struct raw *raw)
{
    const struct raw_options *options = raw->options;
    bool sends_only = options->host_given && options->protocol == IPPROTO_RAW;

    for (;;) {
        if (raw_pending_signal(raw))
            return CLI_EXIT_OK;
        if (atomic_load(&raw->failed))
            return CLI_EXIT_FAILURE;
        uint64_t idle_limit = options->wait_ns ? options->wait_ns : USOCK_NEVER;
        if (sends_only)
            idle_limit = !atomic_load(&raw->stdin_done) ? USOCK_NEVER
                         : options->wait_ns             ? options->wait_ns
                                                        : RAW_LINGER_NS;
        if (idle_limit != USOCK_NEVER &&
            raw_now() - atomic_load(&raw->last_activity_ns) >= idle_limit)
            return CLI_EXIT_OK;

        struct pollfd poll_fd = {.fd = raw->fd, .events = POLLIN};
        int ready = usock_poll(raw->stack, &poll_fd, 1, RAW_POLL_MS);
        if (ready < 0 && errno != EINTR) {
            cli_error("raw: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        if (ready > 0) {
            int status = raw_drain(raw);
            if (status >= 0)
                return status;
        }
    }
}

/* ---- the run ---- */

/* Opens and sets up the raw socket.  Returns 0 or CLI_EXIT_FAILURE after
 * printing why. */
static int raw_open_socket(struct raw *raw)
{
    const struct raw_options *options = raw->options;

    raw->fd = usock_socket(raw->stack, AF_INET, SOCK_RAW, (int)options->protocol);
    if (raw->fd < 0) {
        cli_error("raw: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (options->header_included) {
        int one = 1;
        if (usock_setsockopt(raw->stack, raw->fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) <
            0) {
            cli_error("raw: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
    }
    /* Room for a burst of the largest datagrams. */
    int buffer = 4 * 65536;
    (void)usock_setsockopt(raw->stack, raw->fd, SOL_SOCKET, SO_RCVBUF, &buffer,
                           sizeof(buffer));
    return 0;
}

/* Runs the session on the open socket.  Returns the exit status. */
static int raw_session(struct raw *raw)
{
    pthread_t stdin_thread;
    bool sending = raw->options->host_given;

    raw_touch(raw);
    if (sending) {
        int error = pthread_create(&stdin_thread, NULL, raw_stdin_run, raw);
        if (error != 0) {
            cli_error("raw: cannot start a thread: %s", strerror(error));
            return CLI_EXIT_FAILURE;
        }
    }
    int status = raw_receive_loop(raw);
    if (sending) {
        atomic_store(&raw->stopping, true);
        pthread_join(stdin_thread, NULL);
        if (status == CLI_EXIT_OK && atomic_load(&raw->failed))
            status = CLI_EXIT_FAILURE;
    }
    return status;
}

int cmd_raw(int argc, char **argv)
{
    struct raw_options options;
    struct usock_link *far_end = NULL;
    struct usock_stack *stack = NULL;

    int status = raw_parse(argc, argv, &options);
    if (status < 0)
        return CLI_EXIT_OK;
    if (status != 0)
        return status;

    struct raw *raw = calloc(1, sizeof(*raw));
    if (!raw) {
        cli_error("raw: out of memory");
        return CLI_EXIT_FAILURE;
    }
    raw->options = &options;
    raw->fd = -1;
    atomic_init(&raw->stopping, false);
    atomic_init(&raw->stdin_done, false);
    atomic_init(&raw->failed, false);
    atomic_init(&raw->last_activity_ns, 0);

    /* Before any thread exists (the stack's, the stdin thread), so only the
     * main thread takes these.  A shell starts background jobs with SIGINT
     * ignored; take back the default so it is seen. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is an EPIPE */
    raw->signals = &stop_signals;

    status = cli_stack_create(&options.stack, "raw", &stack, &far_end);
    if (status != CLI_EXIT_OK)
        goto out_free;
    raw->stack = stack;

    status = raw_open_socket(raw);
    if (status == 0)
        status = raw_session(raw);

    if (raw->fd >= 0)
        usock_close(stack, raw->fd);
    cli_stack_destroy(stack, far_end);
out_free:
    free(raw);
    return status;
}
