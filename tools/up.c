/*
 * up.c - `usock up`: runs one stack in the foreground.
 *
 * Theory of operation: the arguments are checked in full before anything is
 * opened, so a typo never leaves a TAP device or socket file behind.  Then:
 *   1. SIGINT and SIGTERM are blocked, before any thread exists, so every
 *      thread (the stack's, the control server's, the services') inherits the
 *      mask and only the main thread's sigwait ever sees them.  A control
 *      socket another live `usock up` answers on stops us here, before its
 *      TAP device is touched; one left by a crash is removed.
 *   2. The link is opened, wrapped in an impairment if asked, and then in a
 *      pcap writer outermost, so the capture shows exactly what the stack
 *      sent and received (before loss on the way out, after it on the way in).
 *   3. The stack is made and started in threaded mode; $USOCK_RUNDIR is
 *      made (mode 0755) and the control endpoint served at NAME.sock in it,
 *      the sockets API for other programs (usock_attach) at NAME.api; the
 *      --serve services start.
 *   4. The main thread waits for a signal, then undoes all of it in reverse:
 *      services stopped and joined (they use the stack), stack stopped and
 *      freed (which closes the link and flushes the pcap), socket file removed.
 * The only state is on main's stack; nothing is global.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

/* More services than this is surely a mistake. */
#define UP_SERVICES_MAX 32

static const char up_usage[] =
    "usage: usock up --link LINK --addr A.B.C.D/N [options]\n"
    "\n"
    "Runs a stack in the foreground until SIGINT or SIGTERM.\n"
    "  --link LINK      tap:NAME, tun:NAME, packet:IFNAME, or mem (a wire to nowhere)\n"
    "  --addr A.B.C.D/N the stack's address and prefix length (bare address: /32)\n"
    "  --gateway IP     default gateway\n"
    "  --mac MAC        hardware address (default: the link's, or a random local one)\n"
    "  --mtu N          MTU (default: the link's)\n"
    "  --name NAME      stack name (default \"" CLI_NAME_DEFAULT "\"); the control endpoint is\n"
    "                   $USOCK_RUNDIR/NAME.sock ($USOCK_RUNDIR defaults to " CLI_RUNDIR_DEFAULT "),\n"
    "                   the sockets API other programs attach to (usock_attach) NAME.api\n"
    "  --pcap FILE      write every frame sent and received to FILE\n"
    "  --impair SPEC    impair the link both ways, e.g.\n"
    "                   loss=2%,dup=1%,reorder=10%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=N\n"
    "  --no-offload     plain frames only (TAP: no checksum offload, TSO or super-segments)\n"
    "  --busy-poll US   after frames, poll the link US microseconds before sleeping\n"
    "                   (lower latency, a busy CPU; default 0: never)\n"
    "  --time-wait MS   how long TCP connections stay in TIME_WAIT (default 60000)\n"
    "  --serve SPEC     run a service (repeatable):\n"
    "                   udp-echo:PORT, udp-discard:PORT  (RFC 862, RFC 863)\n"
    "                   tcp-echo:PORT, tcp-discard:PORT  (the same over TCP)\n"
    "                   http:PORT  HTTP/1.x: GET or HEAD of / (a short page) or of\n"
    "                   /bytes/N (N bytes, N <= 1 GiB; bytes 4k..4k+3 are the 32-bit\n"
    "                   number k, big-endian); one request per connection\n"
    "Limits (past one, socket() fails with EMFILE, a TCP send() with ENOBUFS, and\n"
    "what comes off the wire is dropped and counted in usock stats):\n"
    "  --socket-limit N         sockets open at once (default 65536)\n"
    "  --client-socket-limit N  sockets one attached program holds at once\n"
    "                           (default half the socket limit)\n"
    "  --tcp-memory SIZE        all TCP buffers together (default 1/16 of RAM)\n"
    "  --datagram-memory SIZE   all UDP, raw and ping queues (default 1/32 of RAM)\n"
    "  --reassembly-memory SIZE IP fragments held for reassembly (default 4M)\n"
    "  --neighbour-limit N      ARP entries (default 1024)\n";

/* Everything `usock up` was asked for, validated. */
struct up_options {
    const char *link_spec;
    struct in_addr address;
    unsigned prefix_length;
    const char *address_text;
    struct in_addr gateway;
    uint8_t mac[6];
    unsigned mtu;
    const char *name;
    const char *pcap_path;
    bool impaired;
    struct usock_impairment impairment;
    bool no_offloads;
    unsigned busy_poll_us;
    unsigned time_wait_ms;
    unsigned socket_limit;
    unsigned client_socket_limit;
    size_t tcp_memory_limit;
    size_t datagram_memory_limit;
    size_t reassembly_memory_limit;
    unsigned neighbour_limit;
    struct service_spec services[UP_SERVICES_MAX];
    size_t service_count;
};

/* The options `usock up` takes, each with a value. */
enum up_option {
    UP_OPTION_LINK,
    UP_OPTION_ADDR,
    UP_OPTION_GATEWAY,
    UP_OPTION_MAC,
    UP_OPTION_MTU,
    UP_OPTION_NAME,
    UP_OPTION_PCAP,
    UP_OPTION_IMPAIR,
    UP_OPTION_SERVE,
    UP_OPTION_BUSY_POLL,
    UP_OPTION_TIME_WAIT,
    UP_OPTION_SOCKET_LIMIT,
    UP_OPTION_CLIENT_SOCKET_LIMIT,
    UP_OPTION_TCP_MEMORY,
    UP_OPTION_DATAGRAM_MEMORY,
    UP_OPTION_REASSEMBLY_MEMORY,
    UP_OPTION_NEIGHBOUR_LIMIT,
    UP_OPTION_COUNT,
};

static const char *const up_option_names[] = {
    [UP_OPTION_LINK] = "--link",     [UP_OPTION_ADDR] = "--addr",
    [UP_OPTION_GATEWAY] = "--gateway", [UP_OPTION_MAC] = "--mac",
    [UP_OPTION_MTU] = "--mtu",       [UP_OPTION_NAME] = "--name",
    [UP_OPTION_PCAP] = "--pcap",     [UP_OPTION_IMPAIR] = "--impair",
    [UP_OPTION_SERVE] = "--serve",   [UP_OPTION_BUSY_POLL] = "--busy-poll",
    [UP_OPTION_TIME_WAIT] = "--time-wait",
    [UP_OPTION_SOCKET_LIMIT] = "--socket-limit",
    [UP_OPTION_CLIENT_SOCKET_LIMIT] = "--client-socket-limit",
    [UP_OPTION_TCP_MEMORY] = "--tcp-memory",
    [UP_OPTION_DATAGRAM_MEMORY] = "--datagram-memory",
    [UP_OPTION_REASSEMBLY_MEMORY] = "--reassembly-memory",
    [UP_OPTION_NEIGHBOUR_LIMIT] = "--neighbour-limit",
};
_Static_assert(sizeof(up_option_names) / sizeof(up_option_names[0]) == UP_OPTION_COUNT,
               "a name for each option");

/* Validates and stores one option's value.  Returns 0, or -EINVAL after
 * printing the problem. */
static int up_apply(struct up_options *options, enum up_option option, const char *value)
{
    switch (option) {
    case UP_OPTION_LINK:
        options->link_spec = value;
        return 0;
    case UP_OPTION_ADDR:
        options->address_text = value;
        return cli_parse_prefix(value, &options->address, &options->prefix_length);
    case UP_OPTION_GATEWAY:
        return cli_parse_address(value, "gateway", &options->gateway);
    case UP_OPTION_MAC:
        return cli_parse_mac(value, options->mac);
    case UP_OPTION_MTU:
        return cli_parse_unsigned(value, "MTU", 68, 65535, &options->mtu);
    case UP_OPTION_NAME:
        options->name = value;
        return cli_check_name(value);
    case UP_OPTION_PCAP:
        options->pcap_path = value;
        return 0;
    case UP_OPTION_IMPAIR:
        options->impaired = true;
        return cli_parse_impairment(value, &options->impairment);
    case UP_OPTION_SERVE:
        if (options->service_count == UP_SERVICES_MAX) {
            cli_error("too many --serve options (at most %d)", UP_SERVICES_MAX);
            return -EINVAL;
        }
        if (service_spec_parse(value, &options->services[options->service_count]) < 0)
            return -EINVAL;
        /* Two services on one port of one protocol would fail at bind; say
         * so now instead. */
        for (size_t i = 0; i < options->service_count; i++) {
            const struct service_spec *added = &options->services[options->service_count];
            bool tcp = service_is_tcp(added->kind);
            if (options->services[i].port == added->port &&
                service_is_tcp(options->services[i].kind) == tcp) {
                cli_error("two services on %s port %u", tcp ? "TCP" : "UDP",
                          (unsigned)added->port);
                return -EINVAL;
            }
        }
        options->service_count++;
        return 0;
    case UP_OPTION_BUSY_POLL:
        return cli_parse_unsigned(value, "busy poll (us)", 0, 1000000, &options->busy_poll_us);
    case UP_OPTION_TIME_WAIT:
        return cli_parse_unsigned(value, "TIME_WAIT (ms)", 1, 3600000, &options->time_wait_ms);
    case UP_OPTION_SOCKET_LIMIT:
        return cli_parse_unsigned(value, "socket limit", 1, 1u << 20, &options->socket_limit);
    case UP_OPTION_CLIENT_SOCKET_LIMIT:
        return cli_parse_unsigned(value, "client socket limit", 1, 1u << 20,
                                  &options->client_socket_limit);
    case UP_OPTION_TCP_MEMORY:
        return cli_parse_size(value, "TCP memory", &options->tcp_memory_limit);
    case UP_OPTION_DATAGRAM_MEMORY:
        return cli_parse_size(value, "datagram memory", &options->datagram_memory_limit);
    case UP_OPTION_REASSEMBLY_MEMORY:
        return cli_parse_size(value, "reassembly memory", &options->reassembly_memory_limit);
    case UP_OPTION_NEIGHBOUR_LIMIT:
        return cli_parse_unsigned(value, "neighbour limit", 1, 1u << 20,
                                  &options->neighbour_limit);
    case UP_OPTION_COUNT:
        break;
    }
    return -EINVAL;
}

/* Checks that the address can be an interface's and that the gateway is
 * on its subnet, as Linux would.  Returns 0 or CLI_EXIT_USAGE after printing
 * the problem. */
static int up_check_addresses(const struct up_options *options)
{
    uint32_t address = ntohl(options->address.s_addr);
    uint32_t gateway = ntohl(options->gateway.s_addr);
    uint32_t mask = options->prefix_length == 0 ? 0 : ~0u << (32 - options->prefix_length);

    /* RFC 1122 3.2.1.3: 0.0.0.0, loopback, class D/E and broadcast are not
     * host addresses. */
    if (address == 0 || (address >> 24) == 127 || (address >> 28) >= 0xe) {
        cli_error("address '%s' cannot be an interface's address", options->address_text);
        return CLI_EXIT_USAGE;
    }
    if (gateway != INADDR_ANY && ((gateway ^ address) & mask) != 0) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &options->gateway, text, sizeof(text));
        cli_error("gateway %s is not on %s", text, options->address_text);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Parses argv into options.  Returns -1 for --help (usage printed), 0 on
 * success, or CLI_EXIT_USAGE after printing the problem. */
static int up_parse(int argc, char **argv, struct up_options *options)
{
    memset(options, 0, sizeof(*options));
    options->name = CLI_NAME_DEFAULT;
    options->gateway.s_addr = htonl(INADDR_ANY);

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(up_usage, stdout);
            return -1;
        }
        const char *arg = argv[i];
        const char *value = NULL;
        enum up_option option;
        if (strcmp(arg, "--no-offload") == 0) {
            options->no_offloads = true;
            continue;
        }
        for (option = 0; option < UP_OPTION_COUNT; option++) {
            int taken = cli_take_value(argc, argv, &i, up_option_names[option], &value);
            if (taken < 0)
                return CLI_EXIT_USAGE;
            if (taken)
                break;
        }
        if (option == UP_OPTION_COUNT) {
            cli_error("unknown option '%s' (try 'usock up --help')", arg);
            return CLI_EXIT_USAGE;
        }
        if (up_apply(options, option, value) < 0)
            return CLI_EXIT_USAGE;
    }
    if (!options->link_spec) {
        cli_error("missing --link (e.g. --link tap:tap0)");
        return CLI_EXIT_USAGE;
    }
    if (!options->address_text) {
        cli_error("missing --addr (e.g. --addr 198.18.0.2/24)");
        return CLI_EXIT_USAGE;
    }
    return up_check_addresses(options);
}

/* Makes directory path and its parents (mode 0755), like mkdir -p.
 * Returns 0 or -errno. */
static int make_directories(const char *path)
{
    char partial[256];

    if (snprintf(partial, sizeof(partial), "%s", path) >= (int)sizeof(partial))
        return -ENAMETOOLONG;
    for (char *slash = partial + 1;; slash++) {
        bool last = *slash == '\0';
        if (*slash != '/' && !last)
            continue;
        *slash = '\0';
        if (mkdir(partial, 0755) < 0 && errno != EEXIST)
            return -errno;
        if (last)
            break;
        *slash = '/';
    }
    struct stat status;
    if (stat(path, &status) < 0)
        return -errno;
    return S_ISDIR(status.st_mode) ? 0 : -ENOTDIR;
}

/* Makes sure no live stack owns path: a socket file nobody answers on is
 * left over from a crash and removed.  Returns 0, or -EADDRINUSE when a
 * server answers there. */
static int claim_control_path(const char *path)
{
    struct sockaddr_un address;
    struct stat status;

    if (lstat(path, &status) < 0)
        return 0;
    if (!S_ISSOCK(status.st_mode))
        return -EEXIST;
    if (cli_unix_address(path, &address) < 0)
        return -ENAMETOOLONG;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int connected = connect(fd, (struct sockaddr *)&address, sizeof(address));
    close(fd);
    if (connected == 0)
        return -EADDRINUSE;
    unlink(path);
    return 0;
}

/* Waits for SIGINT or SIGTERM (blocked in every thread).  Returns the
 * signal. */
static int wait_for_stop(const sigset_t *signals)
{
    for (;;) {
        int signal_number;
        if (sigwait(signals, &signal_number) == 0)
            return signal_number;
    }
}

int cmd_up(int argc, char **argv)
{
    struct up_options options;
    struct usock_link *link = NULL, *far_end = NULL;
    struct service *services[UP_SERVICES_MAX] = {NULL};
    size_t running = 0;
    bool control_claimed = false;
    char control_path[256], api_path[256];
    int status, error;

    status = up_parse(argc, argv, &options);
    if (status < 0)
        return CLI_EXIT_OK;
    if (status != 0)
        return status;
    if (cli_control_path(options.name, control_path, sizeof(control_path)) < 0)
        return CLI_EXIT_USAGE;
    if (cli_api_path(options.name, api_path, sizeof(api_path)) < 0)
        return CLI_EXIT_USAGE;

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    /* A shell starts background jobs with SIGINT ignored, and an ignored
     * signal is discarded even while blocked; the contract is to stop on
     * SIGINT, so take back the default before waiting for it. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    /* A control client that hangs up early must not kill the stack. */
    signal(SIGPIPE, SIG_IGN);

    /* Before the link: a second `usock up --name X` must not touch the
     * first one's TAP device. */
    error = claim_control_path(control_path);
    if (error < 0) {
        if (error == -EADDRINUSE)
            cli_error("a stack named '%s' is already running (control %s)", options.name,
                      control_path);
        else
            cli_error("cannot use %s: %s", control_path, strerror(-error));
        return CLI_EXIT_FAILURE;
    }

    status = cli_open_link(options.link_spec, true, &link, &far_end);
    if (status != CLI_EXIT_OK)
        return status;
    status = cli_wrap_link(&link, options.impaired ? &options.impairment : NULL,
                           options.pcap_path);
    if (status != CLI_EXIT_OK)
        goto fail_close_far_end;

    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    config.address = options.address;
    config.prefix_length = options.prefix_length;
    config.gateway = options.gateway;
    memcpy(config.mac, options.mac, sizeof(config.mac));
    config.mtu = options.mtu;
    config.no_offloads = options.no_offloads;
    config.busy_poll_us = options.busy_poll_us;
    config.tcp_time_wait_ns = (uint64_t)options.time_wait_ms * 1000000;
    config.socket_limit = options.socket_limit;
    config.client_socket_limit = options.client_socket_limit;
    config.tcp_memory_limit = options.tcp_memory_limit;
    config.datagram_memory_limit = options.datagram_memory_limit;
    config.reassembly_memory_limit = options.reassembly_memory_limit;
    config.neighbour_limit = options.neighbour_limit;
    config.name = options.name;
    link = NULL; /* the stack's now, even if usock_stack_new fails */
    struct usock_stack *stack = usock_stack_new(&config);
    if (!stack) {
        int reason = errno;
        cli_error("cannot make the stack: %s", strerror(reason));
        status = reason == EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
        goto fail_close_far_end;
    }
    error = usock_stack_start(stack);
    if (error < 0) {
        cli_error("cannot start the stack: %s", strerror(-error));
        status = CLI_EXIT_FAILURE;
        goto fail_free_stack;
    }

    error = make_directories(cli_rundir());
    if (error < 0) {
        cli_error("cannot make directory %s: %s", cli_rundir(), strerror(-error));
        status = CLI_EXIT_FAILURE;
        goto fail_free_stack;
    }
    error = usock_stack_serve_control(stack, control_path);
    control_claimed = error == 0;
    if (error < 0) {
        cli_error("cannot serve control endpoint %s: %s", control_path, strerror(-error));
        status = CLI_EXIT_FAILURE;
        goto fail_free_stack;
    }

    /* Removed again by usock_stack_free, which stops serving it. */
    error = usock_stack_serve_api(stack, api_path);
    if (error < 0) {
        cli_error("cannot serve the sockets API at %s: %s", api_path, strerror(-error));
        status = CLI_EXIT_FAILURE;
        goto fail_free_stack;
    }

    for (running = 0; running < options.service_count; running++) {
        if (service_start(stack, &options.services[running], &services[running]) < 0) {
            status = CLI_EXIT_FAILURE;
            goto fail_stop_services;
        }
    }

    fprintf(stderr, "usock: up on %s %s (control %s)\n", options.link_spec,
            options.address_text, control_path);
    int signal_number = wait_for_stop(&stop_signals);
    fprintf(stderr, "usock: %s, stopping\n", signal_number == SIGINT ? "interrupted" : "terminated");
    status = CLI_EXIT_OK;

fail_stop_services:
    while (running > 0)
        service_stop(services[--running]);
    usock_stack_stop(stack);
fail_free_stack:
    usock_stack_free(stack);
    /* Only a socket file this process served is removed. */
    if (control_claimed)
        unlink(control_path);
fail_close_far_end:
    if (far_end)
        usock_link_close(far_end);
    return status;
}
