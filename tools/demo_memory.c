/*
 * demo_memory.c - `usock demo-mem`: the README's demo without root.
 *
 * Theory of operation: two stacks, A (198.18.0.1/24) and B (198.18.0.2/24),
 * are joined by an in-memory wire (usock_link_mem_pair) and run in threaded
 * mode.  B runs the same udp-echo service `usock up --serve udp-echo:7`
 * does; A sends it a datagram and waits for the echo, retrying a few times
 * since the first datagram may wait on ARP.  Then B's socket table and
 * counters are printed as `usock ss` and `usock stats` would.  The output
 * reads as a transcript, like scripts/demo.sh run as root.  Exit status 0
 * when the echo came back intact, 1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"

#define DEMO_ECHO_PORT 7
#define DEMO_ATTEMPTS 3
#define DEMO_SOCKETS_MAX 64

static const char demo_usage[] =
    "usage: usock demo-mem\n"
    "\n"
    "Runs two stacks joined by an in-memory wire, A 198.18.0.1/24 and B\n"
    "198.18.0.2/24; B serves udp-echo:7, A sends it \"hello\"; then prints B's\n"
    "socket table and counters.  Needs no privileges.\n";

/* Makes and starts a stack on link with the given address.  Returns the
 * stack, or NULL after printing why (the link is closed either way). */
static struct usock_stack *demo_stack_start(struct usock_link *link, const char *address,
                                            const char *name)
{
    struct usock_stack_config config;

    usock_stack_config_init(&config);
    config.link = link;
    inet_pton(AF_INET, address, &config.address);
    config.prefix_length = 24;
    config.name = name;
    struct usock_stack *stack = usock_stack_new(&config);
    if (!stack) {
        cli_error("cannot make stack %s: %s", name, strerror(errno));
        return NULL;
    }
    int error = usock_stack_start(stack);
    if (error < 0) {
        cli_error("cannot start stack %s: %s", name, strerror(-error));
        usock_stack_free(stack);
        return NULL;
    }
    return stack;
}

/* Sends message from stack to address:port over UDP and waits for the
 * echo, printing it.  Returns 0 when the echo matched, -1 otherwise. */
static int demo_udp_echo(struct usock_stack *stack, const char *address, uint16_t port,
                         const char *message)
{
    struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval timeout = {.tv_sec = 1};
    char reply[256];
    int result = -1;

    inet_pton(AF_INET, address, &server.sin_addr);
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (fd < 0) {
        cli_error("socket: %s", strerror(errno));
        return -1;
    }
    if (usock_setsockopt(stack, fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0) {
        cli_error("SO_RCVTIMEO: %s", strerror(errno));
        goto out_close;
    }
    for (int attempt = 1; attempt <= DEMO_ATTEMPTS && result < 0; attempt++) {
        if (usock_sendto(stack, fd, message, strlen(message), 0, (struct sockaddr *)&server,
                         sizeof(server)) < 0) {
            printf("(send failed: %s)\n", strerror(errno));
            continue;
        }
        struct sockaddr_in from;
        socklen_t from_length = sizeof(from);
        ssize_t got = usock_recvfrom(stack, fd, reply, sizeof(reply) - 1, 0,
                                     (struct sockaddr *)&from, &from_length);
        if (got < 0) {
            printf("(no reply after 1 s: %s)\n", strerror(errno));
            continue;
        }
        reply[got] = '\0';
        fputs(reply, stdout);
        char from_text[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &from.sin_addr, from_text, sizeof(from_text));
        if ((size_t)got != strlen(message) || memcmp(reply, message, (size_t)got) != 0)
            printf("(reply from %s:%u differs from what was sent)\n", from_text,
                   (unsigned)ntohs(from.sin_port));
        else
            result = 0;
    }
out_close:
    usock_close(stack, fd);
    return result;
}

/* Prints stack's UDP sockets, listening or not, as `usock ss -ua`. */
static void demo_print_sockets(struct usock_stack *stack)
{
    struct usock_socket_info infos[DEMO_SOCKETS_MAX];
    struct socket_row rows[DEMO_SOCKETS_MAX];
    size_t count = usock_stack_sockets(stack, infos, DEMO_SOCKETS_MAX);

    if (count > DEMO_SOCKETS_MAX)
        count = DEMO_SOCKETS_MAX;
    size_t shown = 0;
    for (size_t i = 0; i < count; i++) {
        socket_row_from_info(&infos[i], &rows[shown]);
        if (socket_row_selected(&rows[shown], SOCKET_KIND_UDP, SOCKET_SHOW_ALL))
            shown++;
    }
    socket_table_print(stdout, rows, shown, false);
}

/* Prints the counters of stack that are not zero, as `usock stats` lines. */
static void demo_print_counters(struct usock_stack *stack)
{
    size_t count = usock_stack_counter_count();

    for (size_t i = 0; i < count; i++) {
        uint64_t value = usock_stack_counter_value(stack, i);
        if (value != 0)
            printf("%s %llu\n", usock_stack_counter_name(i), (unsigned long long)value);
    }
}

int cmd_demo_memory(int argc, char **argv)
{
    struct usock_link *end_a, *end_b;
    struct service_spec echo = {.kind = SERVICE_UDP_ECHO, .port = DEMO_ECHO_PORT};
    struct service *service = NULL;
    int status = CLI_EXIT_FAILURE;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(demo_usage, stdout);
            return CLI_EXIT_OK;
        }
        cli_error("unknown option '%s' (try 'usock demo-mem --help')", argv[i]);
        return CLI_EXIT_USAGE;
    }

    setvbuf(stdout, NULL, _IOLBF, 0);
    int error = usock_link_mem_pair(&end_a, &end_b);
    if (error < 0) {
        cli_error("cannot make an in-memory wire: %s", strerror(-error));
        return CLI_EXIT_FAILURE;
    }
    struct usock_stack *b = demo_stack_start(end_b, "198.18.0.2", "demo-b");
    if (!b) {
        usock_link_close(end_a);
        return CLI_EXIT_FAILURE;
    }
    struct usock_stack *a = demo_stack_start(end_a, "198.18.0.1", "demo-a");
    if (!a)
        goto out_free_b;

    printf("# two stacks on an in-memory wire: A 198.18.0.1/24, B 198.18.0.2/24\n");
    printf("# B runs: usock up --link mem --addr 198.18.0.2/24 --serve udp-echo:7\n");
    if (service_start(b, &echo, &service) < 0)
        goto out_free_a;

    printf("\n$ echo hello | nc -u -w1 198.18.0.2 7        # on A\n");
    bool echoed = demo_udp_echo(a, "198.18.0.2", DEMO_ECHO_PORT, "hello\n") == 0;

    printf("\n$ usock ss -ua                                 # on B\n");
    demo_print_sockets(b);
    printf("\n$ usock stats                                  # on B, counters not zero\n");
    demo_print_counters(b);

    printf("\n%s\n", echoed ? "# the echo came back: demo passed"
                            : "# no echo came back: demo FAILED");
    status = echoed ? CLI_EXIT_OK : CLI_EXIT_FAILURE;

    service_stop(service);
out_free_a:
    usock_stack_stop(a);
    usock_stack_free(a);
out_free_b:
    usock_stack_stop(b);
    usock_stack_free(b);
    return status;
}
