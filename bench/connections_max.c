/*
 * connections_max.c - how many established TCP connections one process
 * holds, and what they cost: two usock stacks (198.18.0.1 client,
 * 198.18.0.2 server) on the in-memory wire, driven by one thread, open
 * connections until the asked-for number is established (or the stack
 * refuses), then print the count and the process's resident memory.
 *
 * Each connection has both its ends in this process (a client socket and
 * the server socket accept() gave), so "connections" counts TCP
 * connections and "sockets" counts twice that.  A client's source port and
 * the server port are chosen by the program (bind with SO_REUSEADDR, as a
 * load generator would), because one address has only 64K ports: the
 * server listens on as many ports as needed, and the pair (source port,
 * server port) of each connection is unique.  Connections are opened
 * IN_FLIGHT at a time and left idle once established: no data, no timers
 * but what an idle connection keeps.
 *
 * Memory: VmRSS of /proc/self/status before the first connection and
 * after the last, the difference divided by connections and by sockets;
 * the kernel's figure for the same is not comparable (its socket memory is
 * not in any process's RSS), so none is printed.
 *
 * Usage: bench_connections_max [--connections N] [--json]
 * Exits 0 after printing, 1 if a connection failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usock.h"

#define PORT_FIRST_CLIENT 1024
#define PORTS_PER_SERVER_PORT 64000 /* client source ports 1024..65023 */
#define SERVER_PORT_FIRST 10000
#define IN_FLIGHT 512
#define BACKLOG 4096

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* VmRSS of this process in bytes (0 if unreadable). */
static size_t resident_bytes(void)
{
    FILE *status = fopen("/proc/self/status", "r");
    if (!status)
        return 0;
    char line[256];
    size_t kilobytes = 0;
    while (fgets(line, sizeof(line), status))
        if (sscanf(line, "VmRSS: %zu kB", &kilobytes) == 1)
            break;
    fclose(status);
    return kilobytes * 1024;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_connections_max: %s: %s\n", what, strerror(errno));
    exit(1);
}

static struct usock_stack *stack_make(struct usock_link *link, const char *address,
                                      size_t sockets)
{
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    inet_pton(AF_INET, address, &config.address);
    config.prefix_length = 24;
    config.socket_limit = sockets;
    struct usock_stack *stack = usock_stack_new(&config);
    if (!stack)
        die("usock_stack_new");
    return stack;
}

int main(int argc, char **argv)
{
    size_t wanted = 1000000;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc) {
            wanted = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr, "usage: bench_connections_max [--connections N] [--json]\n");
            return 2;
        }
    }
    if (wanted == 0)
        wanted = 1;
    size_t server_ports = (wanted + PORTS_PER_SERVER_PORT - 1) / PORTS_PER_SERVER_PORT;

    struct usock_link *client_link, *server_link;
    if (usock_link_mem_pair(&client_link, &server_link) != 0)
        die("usock_link_mem_pair");
    size_t before = resident_bytes();
    struct usock_stack *client = stack_make(client_link, "198.18.0.1", wanted + 16);
    struct usock_stack *server = stack_make(server_link, "198.18.0.2", wanted + server_ports + 16);

    int *listeners = calloc(server_ports, sizeof(*listeners));
    if (!listeners)
        die("calloc");
    for (size_t p = 0; p < server_ports; p++) {
        listeners[p] = usock_socket(server, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in local = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)(SERVER_PORT_FIRST + p))};
        if (listeners[p] < 0 ||
            usock_bind(server, listeners[p], (struct sockaddr *)&local, sizeof(local)) != 0 ||
            usock_listen(server, listeners[p], BACKLOG) != 0)
            die("listen");
    }

    double started = seconds_now();
    size_t opened = 0, established = 0, refused = 0;
    const char *stopped_by = NULL;
    while (established < wanted) {
        /* Keep IN_FLIGHT handshakes going. */
        while (opened < wanted && opened - established - refused < IN_FLIGHT) {
            int fd = usock_socket(client, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0) {
                stopped_by = "socket() on the client";
                break;
            }
            int one = 1;
            usock_setsockopt(client, fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            struct sockaddr_in local = {
                .sin_family = AF_INET,
                .sin_port = htons((uint16_t)(PORT_FIRST_CLIENT + opened % PORTS_PER_SERVER_PORT)),
            };
            struct sockaddr_in to = {
                .sin_family = AF_INET,
                .sin_port = htons((uint16_t)(SERVER_PORT_FIRST + opened / PORTS_PER_SERVER_PORT)),
            };
            inet_pton(AF_INET, "198.18.0.2", &to.sin_addr);
            if (usock_bind(client, fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
                stopped_by = "bind() on the client";
                break;
            }
            if (usock_connect(client, fd, (struct sockaddr *)&to, sizeof(to)) != 0 &&
                errno != EINPROGRESS) {
                stopped_by = "connect()";
                break;
            }
            opened++;
        }
        uint64_t now = usock_monotonic_ns(NULL);
        usock_stack_poll(client, now);
        usock_stack_poll(server, now);
        usock_stack_poll(client, now);
        size_t accepted_now = 0;
        for (size_t p = 0; p < server_ports; p++) {
            for (;;) {
                int fd = usock_accept(server, listeners[p], NULL, NULL);
                if (fd < 0)
                    break;
                established++;
                accepted_now++;
            }
        }
        if (stopped_by && accepted_now == 0 && opened == established + refused)
            break;
        if (seconds_now() - started > 600) {
            stopped_by = "the time limit (600 s)";
            break;
        }
    }
    double seconds = seconds_now() - started;
    /* Let the last ACKs land: every connection idle and established. */
    for (int i = 0; i < 10; i++) {
        uint64_t now = usock_monotonic_ns(NULL);
        usock_stack_poll(client, now);
        usock_stack_poll(server, now);
    }
    size_t after = resident_bytes();
    size_t grown = after > before ? after - before : 0;
    double per_connection = established ? (double)grown / (double)established : 0;
    uint64_t client_resets = usock_stack_counter(client, "TcpOutRsts");
    uint64_t server_resets = usock_stack_counter(server, "TcpOutRsts");

    if (json) {
        printf("{\"connections_wanted\": %zu, \"connections_established\": %zu, "
               "\"seconds\": %.2f, \"rss_bytes\": %zu, \"rss_growth_bytes\": %zu, "
               "\"bytes_per_connection\": %.0f, \"bytes_per_socket\": %.0f, "
               "\"resets\": %llu, \"stopped_by\": %s%s%s}\n",
               wanted, established, seconds, after, grown, per_connection, per_connection / 2,
               (unsigned long long)(client_resets + server_resets), stopped_by ? "\"" : "",
               stopped_by ? stopped_by : "null", stopped_by ? "\"" : "");
    } else {
        printf("concurrent established connections, both ends in one process (usock, in memory)\n");
        printf("  asked for                 %zu\n", wanted);
        printf("  established               %zu (%zu sockets) in %.1f s (%.0f/s)\n", established,
               2 * established, seconds, seconds > 0 ? (double)established / seconds : 0);
        printf("  process RSS               %.1f MiB (%.1f MiB more than before)\n",
               (double)after / 1048576, (double)grown / 1048576);
        printf("  per connection            %.0f B (%.0f B per socket)\n", per_connection,
               per_connection / 2);
        printf("  RSTs sent                 %llu\n",
               (unsigned long long)(client_resets + server_resets));
        if (stopped_by)
            printf("  stopped by                %s\n", stopped_by);
    }
    usock_stack_free(client);
    usock_stack_free(server);
    free(listeners);
    return established == wanted ? 0 : 1;
}
