/*
 * ping.c - `usock ping`: ICMP echo from a usock stack of its own, printed as
 * iputils ping prints it.
 *
 * Theory of operation: the arguments are checked in full first (exit 2 on a
 * mistake, before any link is opened).  SIGINT and SIGTERM are blocked
 * before the stack's thread exists and taken by the main thread with a
 * zero-timeout sigtimedwait between waits of at most PING_SLICE_MS.  The
 * stack is made from the shared stack options (cli_stack_create) and runs
 * threaded; ping talks through one raw ICMP socket (SOCK_RAW, IPPROTO_ICMP)
 * whose ICMP_FILTER passes echo replies only, and builds each request
 * itself: type 8, id = pid & 0xffff, sequence numbers from 1, SIZE bytes of
 * payload filled 0, 1, 2 ... as iputils fills it, the first 8 overwritten
 * by the time of sending (CLOCK_REALTIME seconds and microseconds, 32 bits
 * each, big-endian) when SIZE allows.  Round-trip times come from a table
 * of monotonic send times indexed by sequence number (so a stepped wall
 * clock cannot spoil them), shown only when SIZE >= 8, as iputils does.
 *
 * The main loop sends a request whenever the next one is due (every -i
 * seconds, the first at once), drains the socket when it is readable, and
 * ends when -c requests were sent and every one was answered or -W seconds
 * passed since the last, or at SIGINT/SIGTERM.  A reply counts when it is
 * an echo reply with our id and a good checksum; one seen before is a
 * duplicate ("(DUP!)"), as in iputils.  Then the statistics: the elapsed
 * "time" runs from the first request to the last, as iputils reports it.
 *
 * Exit status: 0 when at least one reply came, 1 when none did (or a
 * failure at run time), 2 for bad arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/icmp.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#ifndef SOL_RAW
#define SOL_RAW 255
#endif

/* Longest wait before signals are looked at again. */
#define PING_SLICE_MS 100
/* Largest -s: the most an IPv4 packet holds after 20 + 8 header bytes. */
#define PING_SIZE_MAX 65507
#define PING_SIZE_DEFAULT 56
/* Bytes of the send time at the start of the payload. */
#define PING_STAMP_BYTES 8
#define PING_INTERVAL_MIN_S 0.01
#define PING_SECONDS_MAX 86400.0
#define PING_ICMP_HEADER 8
#define PING_IP_HEADER 20
#define PING_SEQUENCES 65536

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

static const char ping_usage[] =
    "usage: usock ping --link LINK --addr A.B.C.D/N [--gateway IP] [--mac MAC] [--mtu N]\n"
    "                  [--pcap FILE] [--impair SPEC] [-c COUNT] [-i INTERVAL] [-s SIZE]\n"
    "                  [-t TTL] [-W TIMEOUT] HOST\n"
    "\n"
    "ICMP echo from a stack of its own, through a raw socket, printed as iputils\n"
    "ping prints it.  Runs until COUNT requests are answered (or time out), or\n"
    "until SIGINT, then prints the statistics.\n"
    "  -c COUNT         stop after COUNT requests (default: until SIGINT)\n"
    "  -i INTERVAL      seconds between requests (default 1, fractions allowed,\n"
    "                   at least 0.01)\n"
    "  -s SIZE          bytes of data in each request (default 56, at most 65507;\n"
    "                   larger than the MTU allows is sent in fragments)\n"
    "  -t TTL           time to live of the requests (1..255)\n"
    "  -W TIMEOUT       seconds to wait for the last reply (default 1)\n" CLI_STACK_OPTIONS_USAGE
    "Exit status: 0 when a reply came, 1 when none did, 2 bad arguments.\n";

/* Everything `usock ping` was asked for, validated. */
struct ping_options {
    unsigned count; /* 0: until a signal */
    uint64_t interval_ns;
    unsigned size;
    bool ttl_given;
    unsigned ttl;
    uint64_t timeout_ns;
    struct in_addr host;
    const char *host_text;
    struct cli_stack_options stack;
};

/* One run: the socket, what was sent and what came back. */
struct ping {
    struct usock_stack *stack;
    const struct ping_options *options;
    const sigset_t *signals;
    int fd;
    uint16_t id;
    char host_text[INET_ADDRSTRLEN];
    uint64_t transmitted;
    uint64_t received;   /* distinct replies */
    uint64_t duplicates;
    uint64_t first_send_ns;
    uint64_t last_send_ns;
    /* Round trips of distinct replies, in microseconds. */
    uint64_t rtt_min_us, rtt_max_us, rtt_sum_us;
    unsigned long long rtt_sum2_us;
    uint64_t sent_at_ns[PING_SEQUENCES]; /* by sequence number; 0: none */
    uint8_t answered[PING_SEQUENCES / 8];
    uint8_t packet[PING_ICMP_HEADER + PING_SIZE_MAX];
    uint8_t reply[65536];
};

/* ---- arguments ---- */

/* Parses a number of seconds ("1", "0.2") in minimum..PING_SECONDS_MAX. */
static int ping_parse_seconds(const char *text, const char *what, double minimum,
                              uint64_t *value_ns)
{
    char *end;
    errno = 0;
    double seconds = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(seconds) || seconds < minimum ||
        seconds > PING_SECONDS_MAX || text[0] == '-' || text[0] == '+' || text[0] == ' ') {
        cli_error("bad %s '%s' (expected %g..%g seconds)", what, text, minimum, PING_SECONDS_MAX);
        return -EINVAL;
    }
    *value_ns = (uint64_t)(seconds * (double)NS_PER_S + 0.5);
    return 0;
}

/* The value of short option `letter` at argv[*index]: the rest of the
 * argument ("-c5") or the next one ("-c 5").  NULL after printing why. */
static const char *ping_short_value(int argc, char **argv, int *index, char letter)
{
    const char *rest = argv[*index] + 2;

    if (*rest != '\0')
        return rest;
    if (*index + 1 >= argc || strncmp(argv[*index + 1], "--", 2) == 0) {
        cli_error("option '-%c' needs a value", letter);
        return NULL;
    }
    *index += 1;
    return argv[*index];
}

/* Parses one short option with its value.  Returns 0, or CLI_EXIT_USAGE
 * after printing the problem. */
static int ping_parse_short(int argc, char **argv, int *index, struct ping_options *options)
{
    char letter = argv[*index][1];
    if (!strchr("cistW", letter)) {
        cli_error("unknown option '%s' (try 'usock ping --help')", argv[*index]);
        return CLI_EXIT_USAGE;
    }
    const char *value = ping_short_value(argc, argv, index, letter);
    if (!value)
        return CLI_EXIT_USAGE;
    int error = 0;
    switch (letter) {
    case 'c':
        error = cli_parse_unsigned(value, "count", 1, 0x7fffffff, &options->count);
        break;
    case 'i':
        error = ping_parse_seconds(value, "interval", PING_INTERVAL_MIN_S, &options->interval_ns);
        break;
    case 's':
        error = cli_parse_unsigned(value, "size", 0, PING_SIZE_MAX, &options->size);
        break;
    case 't':
        error = cli_parse_unsigned(value, "TTL", 1, 255, &options->ttl);
        options->ttl_given = true;
        break;
    case 'W':
        error = ping_parse_seconds(value, "timeout", 0, &options->timeout_ns);
        break;
    }
    return error < 0 ? CLI_EXIT_USAGE : 0;
}

/* Parses argv into options.  Returns -1 for --help (usage printed), 0 on
 * success, or CLI_EXIT_USAGE after printing the problem. */
static int ping_parse(int argc, char **argv, struct ping_options *options)
{
    const char *host = NULL;
    bool options_ended = false;

    memset(options, 0, sizeof(*options));
    options->interval_ns = NS_PER_S;
    options->size = PING_SIZE_DEFAULT;
    options->timeout_ns = NS_PER_S;
    cli_stack_options_init(&options->stack);
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (!options_ended && cli_is_help(arg)) {
            fputs(ping_usage, stdout);
            return -1;
        }
        if (!options_ended && strcmp(arg, "--") == 0) {
            options_ended = true;
        } else if (!options_ended && strncmp(arg, "--", 2) == 0) {
            int taken = cli_stack_option(argc, argv, &i, &options->stack);
            if (taken < 0)
                return CLI_EXIT_USAGE;
            if (taken == 0) {
                cli_error("unknown option '%s' (try 'usock ping --help')", arg);
                return CLI_EXIT_USAGE;
            }
        } else if (!options_ended && arg[0] == '-' && arg[1] != '\0') {
            int status = ping_parse_short(argc, argv, &i, options);
            if (status != 0)
                return status;
        } else if (host) {
            cli_error("unexpected argument '%s' (expected one HOST)", arg);
            return CLI_EXIT_USAGE;
        } else {
            host = arg;
        }
    }
    if (!host) {
        cli_error("missing HOST (e.g. usock ping ... 198.18.0.1)");
        return CLI_EXIT_USAGE;
    }
    if (cli_parse_address(host, "host", &options->host) < 0)
        return CLI_EXIT_USAGE;
    if (options->host.s_addr == htonl(INADDR_ANY)) {
        cli_error("cannot ping 0.0.0.0");
        return CLI_EXIT_USAGE;
    }
    options->host_text = host;
    return cli_stack_options_check(&options->stack);
}

/* ---- packets ---- */

static uint64_t ping_now(void)
{
    return usock_monotonic_ns(NULL);
}

static void store_be16(uint8_t *at, uint16_t value)
{
    at[0] = (uint8_t)(value >> 8);
    at[1] = (uint8_t)value;
}

static void store_be32(uint8_t *at, uint32_t value)
{
    store_be16(at, (uint16_t)(value >> 16));
    store_be16(at + 2, (uint16_t)value);
}

static uint16_t load_be16(const uint8_t *at)
{
    return (uint16_t)(at[0] << 8 | at[1]);
}

/* The Internet checksum (RFC 1071), ready to store big-endian. */
static uint16_t ping_checksum(const uint8_t *data, size_t length)
{
    uint64_t sum = 0;
    for (size_t i = 0; i + 1 < length; i += 2)
        sum += load_be16(data + i);
    if (length & 1)
        sum += (uint32_t)data[length - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static bool ping_answered(const struct ping *ping, uint16_t sequence)
{
    return (ping->answered[sequence / 8] >> (sequence % 8)) & 1;
}

static void ping_set_answered(struct ping *ping, uint16_t sequence, bool answered)
{
    uint8_t bit = (uint8_t)(1u << (sequence % 8));
    if (answered)
        ping->answered[sequence / 8] |= bit;
    else
        ping->answered[sequence / 8] &= (uint8_t)~bit;
}

/* Sends echo request number ping->transmitted + 1. */
static void ping_send(struct ping *ping, uint64_t now)
{
    size_t size = ping->options->size;
    uint16_t sequence = (uint16_t)(ping->transmitted + 1);
    uint8_t *packet = ping->packet;

    packet[0] = ICMP_ECHO;
    packet[1] = 0;
    store_be16(packet + 2, 0);
    store_be16(packet + 4, ping->id);
    store_be16(packet + 6, sequence);
    for (size_t i = 0; i < size; i++)
        packet[PING_ICMP_HEADER + i] = (uint8_t)i;
    if (size >= PING_STAMP_BYTES) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        store_be32(packet + PING_ICMP_HEADER, (uint32_t)wall.tv_sec);
        store_be32(packet + PING_ICMP_HEADER + 4, (uint32_t)(wall.tv_nsec / 1000));
    }
    store_be16(packet + 2, ping_checksum(packet, PING_ICMP_HEADER + size));

    if (ping->transmitted == 0)
        ping->first_send_ns = now;
    ping->last_send_ns = now;
    ping->transmitted++;
    ping->sent_at_ns[sequence] = now;
    ping_set_answered(ping, sequence, false);

    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = ping->options->host};
    ssize_t sent = usock_sendto(ping->stack, ping->fd, packet, PING_ICMP_HEADER + size, 0,
                                (struct sockaddr *)&to, sizeof(to));
    if (sent < 0)
        cli_error("ping: sendto: %s", strerror(errno));
}

/* Prints "time=..." as iputils does: three significant decimals below
 * 1 ms, fewer above. */
static void ping_print_time(uint64_t rtt_us)
{
    if (rtt_us >= 100000 - 50)
        printf(" time=%llu ms", (unsigned long long)((rtt_us + 500) / 1000));
    else if (rtt_us >= 10000 - 5)
        printf(" time=%llu.%01llu ms", (unsigned long long)((rtt_us + 50) / 1000),
               (unsigned long long)(((rtt_us + 50) % 1000) / 100));
    else if (rtt_us >= 1000)
        printf(" time=%llu.%02llu ms", (unsigned long long)((rtt_us + 5) / 1000),
               (unsigned long long)(((rtt_us + 5) % 1000) / 10));
    else
        printf(" time=%llu.%03llu ms", (unsigned long long)(rtt_us / 1000),
               (unsigned long long)(rtt_us % 1000));
}

/* Looks at one packet read from the raw socket (IP header included) and
 * prints it when it is an echo reply of ours. */
static void ping_handle(struct ping *ping, size_t length, const struct sockaddr_in *from,
                        uint64_t now)
{
    const uint8_t *packet = ping->reply;
    if (length < PING_IP_HEADER || (packet[0] >> 4) != 4)
        return;
    size_t header_length = (size_t)(packet[0] & 0x0f) * 4;
    if (header_length < PING_IP_HEADER || length < header_length + PING_ICMP_HEADER ||
        packet[9] != IPPROTO_ICMP)
        return;
    const uint8_t *icmp = packet + header_length;
    size_t icmp_length = length - header_length;
    if (icmp[0] != ICMP_ECHOREPLY || load_be16(icmp + 4) != ping->id ||
        ping_checksum(icmp, icmp_length) != 0)
        return;
    uint16_t sequence = load_be16(icmp + 6);
    uint64_t sent_at = ping->sent_at_ns[sequence];
    if (sent_at == 0)
        return; /* never sent: not ours after all */

    bool duplicate = ping_answered(ping, sequence);
    uint64_t rtt_us = (now - sent_at) / NS_PER_US;
    if (duplicate) {
        ping->duplicates++;
    } else {
        ping_set_answered(ping, sequence, true);
        ping->received++;
        if (ping->received == 1 || rtt_us < ping->rtt_min_us)
            ping->rtt_min_us = rtt_us;
        if (rtt_us > ping->rtt_max_us)
            ping->rtt_max_us = rtt_us;
        ping->rtt_sum_us += rtt_us;
        ping->rtt_sum2_us += (unsigned long long)rtt_us * rtt_us;
    }

    char source[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &from->sin_addr, source, sizeof(source));
    printf("%zu bytes from %s: icmp_seq=%u ttl=%u", icmp_length, source, (unsigned)sequence,
           (unsigned)packet[8]);
    if (ping->options->size >= PING_STAMP_BYTES)
        ping_print_time(rtt_us);
    if (duplicate)
        fputs(" (DUP!)", stdout);
    putchar('\n');
    fflush(stdout);
}

/* Reads everything waiting on the socket.  Returns 0 or -errno. */
static int ping_drain(struct ping *ping)
{
    for (;;) {
        struct sockaddr_in from;
        socklen_t from_length = sizeof(from);
        ssize_t got = usock_recvfrom(ping->stack, ping->fd, ping->reply, sizeof(ping->reply),
                                     MSG_DONTWAIT, (struct sockaddr *)&from, &from_length);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            return -errno;
        }
        ping_handle(ping, (size_t)got, &from, ping_now());
    }
}

/* ---- the run ---- */

/* The signal among ping->signals that is pending, or 0. */
static int ping_pending_signal(const struct ping *ping)
{
    const struct timespec zero = {0, 0};

    for (;;) {
        int signal_number = sigtimedwait(ping->signals, NULL, &zero);
        if (signal_number > 0)
            return signal_number;
        if (errno != EINTR)
            return 0;
    }
}

/* Sends and receives until done.  Returns 0, or CLI_EXIT_FAILURE after
 * printing a failure. */
static int ping_loop(struct ping *ping)
{
    const struct ping_options *options = ping->options;
    uint64_t next_send = ping_now();

    for (;;) {
        if (ping_pending_signal(ping))
            return 0;
        uint64_t now = ping_now();
        bool more_to_send = options->count == 0 || ping->transmitted < options->count;
        if (more_to_send && now >= next_send) {
            ping_send(ping, now);
            next_send += options->interval_ns;
            if (next_send < now) /* fell behind: keep the interval from now on */
                next_send = now + options->interval_ns;
            more_to_send = options->count == 0 || ping->transmitted < options->count;
        }
        uint64_t deadline;
        if (more_to_send) {
            deadline = next_send;
        } else {
            if (ping->received >= ping->transmitted)
                return 0;
            deadline = ping->last_send_ns + options->timeout_ns;
            if (now >= deadline)
                return 0;
        }
        uint64_t wait_ns = deadline > now ? deadline - now : 0;
        int wait_ms = (int)((wait_ns + NS_PER_MS - 1) / NS_PER_MS);
        if (wait_ms > PING_SLICE_MS)
            wait_ms = PING_SLICE_MS;
        struct pollfd poll_fd = {.fd = ping->fd, .events = POLLIN};
        int ready = usock_poll(ping->stack, &poll_fd, 1, wait_ms);
        if (ready < 0 && errno != EINTR) {
            cli_error("ping: poll: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
        if (ready > 0) {
            int error = ping_drain(ping);
            if (error < 0) {
                cli_error("ping: recvfrom: %s", strerror(-error));
                return CLI_EXIT_FAILURE;
            }
        }
    }
}

/* Integer square root (floor). */
static uint64_t ping_sqrt(uint64_t value)
{
    uint64_t root = 0, bit = 1ull << 62;
    while (bit > value)
        bit >>= 2;
    while (bit != 0) {
        if (value >= root + bit) {
            value -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

static void ping_print_statistics(const struct ping *ping)
{
    uint64_t elapsed_ms =
        ping->transmitted ? (ping->last_send_ns - ping->first_send_ns + NS_PER_MS / 2) / NS_PER_MS
                          : 0;
    printf("\n--- %s ping statistics ---\n", ping->host_text);
    printf("%llu packets transmitted, %llu received, ", (unsigned long long)ping->transmitted,
           (unsigned long long)ping->received);
    if (ping->duplicates)
        printf("+%llu duplicates, ", (unsigned long long)ping->duplicates);
    double loss = ping->transmitted
                      ? (double)(ping->transmitted - ping->received) * 100.0 /
                            (double)ping->transmitted
                      : 0.0;
    printf("%g%% packet loss, time %llums\n", loss, (unsigned long long)elapsed_ms);
    if (ping->received > 0 && ping->options->size >= PING_STAMP_BYTES) {
        uint64_t average = ping->rtt_sum_us / ping->received;
        unsigned long long mean_square = ping->rtt_sum2_us / ping->received;
        unsigned long long square_mean = (unsigned long long)average * average;
        uint64_t deviation =
            ping_sqrt(mean_square > square_mean ? mean_square - square_mean : 0);
        printf("rtt min/avg/max/mdev = %llu.%03llu/%llu.%03llu/%llu.%03llu/%llu.%03llu ms\n",
               (unsigned long long)(ping->rtt_min_us / 1000),
               (unsigned long long)(ping->rtt_min_us % 1000),
               (unsigned long long)(average / 1000), (unsigned long long)(average % 1000),
               (unsigned long long)(ping->rtt_max_us / 1000),
               (unsigned long long)(ping->rtt_max_us % 1000),
               (unsigned long long)(deviation / 1000), (unsigned long long)(deviation % 1000));
    }
    fflush(stdout);
}

/* Opens and sets up the raw ICMP socket.  Returns 0 or CLI_EXIT_FAILURE
 * after printing why. */
static int ping_open_socket(struct ping *ping)
{
    const struct ping_options *options = ping->options;
    ping->fd = usock_socket(ping->stack, AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (ping->fd < 0) {
        cli_error("ping: socket: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    struct icmp_filter filter = {.data = ~(1u << ICMP_ECHOREPLY)};
    if (usock_setsockopt(ping->stack, ping->fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)) <
        0) {
        cli_error("ping: setsockopt ICMP_FILTER: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (options->ttl_given) {
        int ttl = (int)options->ttl;
        if (usock_setsockopt(ping->stack, ping->fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) < 0) {
            cli_error("ping: setsockopt IP_TTL: %s", strerror(errno));
            return CLI_EXIT_FAILURE;
        }
    }
    /* Room for a burst of the largest replies. */
    int buffer = 4 * 65536;
    usock_setsockopt(ping->stack, ping->fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    return 0;
}

int cmd_ping(int argc, char **argv)
{
    struct ping_options options;
    struct usock_link *far_end = NULL;
    struct usock_stack *stack = NULL;

    int status = ping_parse(argc, argv, &options);
    if (status < 0)
        return CLI_EXIT_OK;
    if (status != 0)
        return status;

    struct ping *ping = calloc(1, sizeof(*ping));
    if (!ping) {
        cli_error("ping: out of memory");
        return CLI_EXIT_FAILURE;
    }
    ping->options = &options;
    ping->fd = -1;
    ping->id = (uint16_t)(getpid() & 0xffff);
    inet_ntop(AF_INET, &options.host, ping->host_text, sizeof(ping->host_text));

    /* Before the stack's thread exists, so only the main thread takes
     * these.  A shell starts background jobs with SIGINT ignored; take back
     * the default so it is seen. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    ping->signals = &stop_signals;

    status = cli_stack_create(&options.stack, "ping", &stack, &far_end);
    if (status != CLI_EXIT_OK)
        goto out_free;
    ping->stack = stack;

    status = ping_open_socket(ping);
    if (status == 0) {
        printf("PING %s (%s) %u(%u) bytes of data.\n", options.host_text, ping->host_text,
               options.size, options.size + PING_ICMP_HEADER + PING_IP_HEADER);
        fflush(stdout);
        status = ping_loop(ping);
        if (status == 0) {
            ping_print_statistics(ping);
            status = ping->received > 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
        }
    }
    if (ping->fd >= 0)
        usock_close(stack, ping->fd);
    cli_stack_destroy(stack, far_end);
out_free:
    free(ping);
    return status;
}
