/*
 * attach_bench.c - what using a stack from another process costs
 * (usock_attach) against using it in its own process.
 *
 * One stack runs in this process, threaded, on an in-memory link, with a
 * TCP echo service (port 7) and a discard service (port 9) on its own
 * threads, and serves the sockets API at a temporary path.  The same
 * client code then runs twice: on a thread of this process with the stack
 * itself, and in a forked child attached to it.  Each measures, for about
 * a second each:
 *   - 1-byte round trip: send one byte to echo, receive it back;
 *   - small sends: 64-byte send() calls into discard (calls per second,
 *     timed until discard has read every byte);
 *   - bulk: 64 KiB send() calls into discard (MB/s, timed the same way);
 *   - bulk receive: the echo of 64 KiB writes read back (MB/s both ways).
 * Figures are printed side by side as a table (--json: one object).  It
 * prints what it could measure and never fails; a figure it could not
 * get is shown as "n/a".  Run: build/bench_attach_bench [--json]
 * [--seconds S].
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "usock.h"

#define BULK_CHUNK 65536
#define SMALL_SIZE 64

struct figures {
    double round_trip_us;   /* 1-byte request/response */
    double small_sends_per_s;
    double bulk_send_mbps;  /* MB/s into discard */
    double echo_mbps;       /* MB/s out and back through echo */
};

static double now_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* ---- the services, on the stack's own side ------------------------- */

struct service {
    struct usock_stack *stack;
    int listener;
    bool echo;
};

struct service_connection {
    struct usock_stack *stack;
    int fd;
    bool echo;
};

static void *service_connection_main(void *argument)
{
    struct service_connection *connection = argument;
    char *buffer = malloc(BULK_CHUNK);
    while (buffer) {
        ssize_t got = usock_recv(connection->stack, connection->fd, buffer, BULK_CHUNK, 0);
        if (got <= 0)
            break;
        if (connection->echo &&
            usock_send(connection->stack, connection->fd, buffer, (size_t)got, 0) != got)
            break;
    }
    free(buffer);
    usock_close(connection->stack, connection->fd);
    free(connection);
    return NULL;
}

static void *service_main(void *argument)
{
    struct service *service = argument;
    for (;;) {
        int fd = usock_accept(service->stack, service->listener, NULL, NULL);
        if (fd < 0)
            return NULL; /* the listener was closed */
        struct service_connection *connection = malloc(sizeof(*connection));
        pthread_t thread;
        if (!connection) {
            usock_close(service->stack, fd);
            continue;
        }
        *connection = (struct service_connection){service->stack, fd, service->echo};
        if (pthread_create(&thread, NULL, service_connection_main, connection) != 0) {
            usock_close(service->stack, fd);
            free(connection);
            continue;
        }
        pthread_detach(thread);
    }
}

static int service_listen(struct usock_stack *stack, uint16_t port)
{
    int fd = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (fd < 0 || usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)) < 0 ||
        usock_listen(stack, fd, 64) < 0)
        return -1;
    return fd;
}

/* ---- the client side, in process or attached ----------------------- */

static int client_connect(struct usock_stack *stack, uint16_t port)
{
    int fd = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "198.18.0.1", &peer.sin_addr);
    if (fd < 0)
        return -1;
    int one = 1;
    usock_setsockopt(stack, fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
    if (usock_connect(stack, fd, (struct sockaddr *)&peer, sizeof(peer)) < 0) {
        usock_close(stack, fd);
        return -1;
    }
    return fd;
}

static double measure_round_trip(struct usock_stack *stack, double seconds)
{
    int fd = client_connect(stack, 7);
    if (fd < 0)
        return -1;
    char byte = 'x';
    long count = 0;
    double started = now_seconds(), elapsed = 0;
    while (elapsed < seconds) {
        for (int i = 0; i < 100; i++, count++) {
            if (usock_send(stack, fd, &byte, 1, 0) != 1 || usock_recv(stack, fd, &byte, 1, 0) != 1) {
                usock_close(stack, fd);
                return -1;
            }
        }
        elapsed = now_seconds() - started;
    }
    usock_close(stack, fd);
    return elapsed / (double)count * 1e6;
}

/* Sends size-byte writes into discard for the given time, then waits for
 * discard to have read them all (it closes after our FIN), so the figure
 * counts bytes delivered, not bytes left in buffers; returns writes
 * per second, and the bytes per second in *bytes_per_second. */
static double measure_sends(struct usock_stack *stack, size_t size, double seconds,
                            double *bytes_per_second)
{
    int fd = client_connect(stack, 9);
    char *buffer = calloc(1, size);
    if (fd < 0 || !buffer) {
        free(buffer);
        return -1;
    }
    long count = 0;
    double started = now_seconds(), elapsed = 0;
    while (elapsed < seconds) {
        for (int i = 0; i < 64; i++, count++)
            if (usock_send(stack, fd, buffer, size, 0) != (ssize_t)size)
                goto out;
        elapsed = now_seconds() - started;
    }
    usock_shutdown(stack, fd, SHUT_WR);
    while (usock_recv(stack, fd, buffer, size, 0) > 0)
        ;
    elapsed = now_seconds() - started;
out:
    usock_close(stack, fd);
    free(buffer);
    if (elapsed <= 0)
        return -1;
    *bytes_per_second = (double)count * (double)size / elapsed;
    return (double)count / elapsed;
}

struct echo_writer {
    struct usock_stack *stack;
    int fd;
    double seconds;
    long long written;
};

static void *echo_writer_main(void *argument)
{
    struct echo_writer *writer = argument;
    char *buffer = calloc(1, BULK_CHUNK);
    double started = now_seconds();
    while (buffer && now_seconds() - started < writer->seconds) {
        ssize_t sent = usock_send(writer->stack, writer->fd, buffer, BULK_CHUNK, 0);
        if (sent <= 0)
            break;
        writer->written += sent;
    }
    free(buffer);
    usock_shutdown(writer->stack, writer->fd, SHUT_WR);
    return NULL;
}

/* 64 KiB writes to echo from one thread, read back on this one. */
static double measure_echo(struct usock_stack *stack, double seconds)
{
    int fd = client_connect(stack, 7);
    char *buffer = malloc(BULK_CHUNK);
    if (fd < 0 || !buffer) {
        free(buffer);
        return -1;
    }
    struct echo_writer writer = {stack, fd, seconds, 0};
    pthread_t thread;
    double started = now_seconds();
    if (pthread_create(&thread, NULL, echo_writer_main, &writer) != 0) {
        free(buffer);
        usock_close(stack, fd);
        return -1;
    }
    long long received = 0;
    for (;;) {
        ssize_t got = usock_recv(stack, fd, buffer, BULK_CHUNK, 0);
        if (got <= 0)
            break;
        received += got;
    }
    double elapsed = now_seconds() - started;
    pthread_join(thread, NULL);
    usock_close(stack, fd);
    free(buffer);
    return (double)received / elapsed / 1e6;
}

static void measure_all(struct usock_stack *stack, double seconds, struct figures *out)
{
    double bytes = 0;
    out->round_trip_us = measure_round_trip(stack, seconds);
    out->small_sends_per_s = measure_sends(stack, SMALL_SIZE, seconds, &bytes);
    out->bulk_send_mbps = measure_sends(stack, BULK_CHUNK, seconds, &bytes) < 0 ? -1 : bytes / 1e6;
    out->echo_mbps = measure_echo(stack, seconds);
}

/* ---- printing ------------------------------------------------------ */

static void format_figure(char *out, size_t size, double value, const char *format)
{
    if (value < 0)
        snprintf(out, size, "n/a");
    else
        snprintf(out, size, format, value);
}

static void print_row(const char *what, double local, double attached, const char *format,
                      bool lower_is_better)
{
    char a[32], b[32], ratio[32];
    format_figure(a, sizeof(a), local, format);
    format_figure(b, sizeof(b), attached, format);
    if (local > 0 && attached > 0)
        snprintf(ratio, sizeof(ratio), "%.2f",
                 lower_is_better ? local / attached : attached / local);
    else
        snprintf(ratio, sizeof(ratio), "n/a");
    printf("%-36s %14s %14s %8s\n", what, a, b, ratio);
}

static void print_json_figure(const char *name, double value, bool last)
{
    if (value < 0)
        printf("    \"%s\": null%s\n", name, last ? "" : ",");
    else
        printf("    \"%s\": %.3f%s\n", name, value, last ? "" : ",");
}

static void print_json_side(const char *name, const struct figures *f, bool last)
{
    printf("  \"%s\": {\n", name);
    print_json_figure("round_trip_us", f->round_trip_us, false);
    print_json_figure("small_sends_per_second", f->small_sends_per_s, false);
    print_json_figure("bulk_send_mb_per_second", f->bulk_send_mbps, false);
    print_json_figure("echo_mb_per_second", f->echo_mbps, true);
    printf("  }%s\n", last ? "" : ",");
}

int main(int argc, char **argv)
{
    bool json = false;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0)
            seconds = 0.3;
    }
    if (seconds <= 0 || seconds > 60)
        seconds = 1.0;
    struct figures local = {-1, -1, -1, -1}, attached = {-1, -1, -1, -1};

    char directory[] = "/tmp/usock-attach-bench.XXXXXX";
    char path[128];
    if (!mkdtemp(directory)) {
        printf("attach_bench: cannot make a temporary directory: %s\n", strerror(errno));
        return 0;
    }
    snprintf(path, sizeof(path), "%s/bench.api", directory);

    struct usock_link *link = NULL, *far_end = NULL;
    struct usock_stack *stack = NULL;
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    if (usock_link_mem_pair(&link, &far_end) == 0) {
        config.link = link;
        inet_pton(AF_INET, "198.18.0.1", &config.address);
        config.prefix_length = 24;
        config.tcp_time_wait_ns = 100000000;
        stack = usock_stack_new(&config);
    }
    struct service echo = {stack, -1, true}, discard = {stack, -1, false};
    pthread_t echo_thread, discard_thread;
    bool services = false;
    if (stack && usock_stack_start(stack) == 0 && usock_stack_serve_api(stack, path) == 0) {
        echo.listener = service_listen(stack, 7);
        discard.listener = service_listen(stack, 9);
        services = echo.listener >= 0 && discard.listener >= 0 &&
                   pthread_create(&echo_thread, NULL, service_main, &echo) == 0 &&
                   pthread_create(&discard_thread, NULL, service_main, &discard) == 0;
    }
    if (services) {
        measure_all(stack, seconds, &local);
        int pipes[2];
        if (pipe(pipes) == 0) {
            fflush(stdout);
            pid_t child = fork();
            if (child == 0) {
                close(pipes[0]);
                struct figures figures = {-1, -1, -1, -1};
                struct usock_stack *remote = usock_attach_path(path);
                if (remote) {
                    measure_all(remote, seconds, &figures);
                    usock_stack_free(remote);
                }
                ssize_t written = write(pipes[1], &figures, sizeof(figures));
                _exit(written == (ssize_t)sizeof(figures) ? 0 : 1);
            }
            close(pipes[1]);
            if (child > 0) {
                if (read(pipes[0], &attached, sizeof(attached)) != (ssize_t)sizeof(attached))
                    attached = (struct figures){-1, -1, -1, -1};
                waitpid(child, NULL, 0);
            }
            close(pipes[0]);
        }
    }

    if (json) {
        printf("{\n  \"seconds_per_figure\": %.2f,\n", seconds);
        print_json_side("in_process", &local, false);
        print_json_side("attached", &attached, true);
        printf("}\n");
    } else {
        printf("usock_attach against the stack's own process (in-memory link, %.1f s each)\n",
               seconds);
        printf("%-36s %14s %14s %8s\n", "", "in process", "attached", "ratio");
        print_row("1-byte round trip (us)", local.round_trip_us, attached.round_trip_us, "%.1f",
                  true);
        print_row("64-byte sends (calls/s)", local.small_sends_per_s,
                  attached.small_sends_per_s, "%.0f", false);
        print_row("bulk send, 64 KiB writes (MB/s)", local.bulk_send_mbps,
                  attached.bulk_send_mbps, "%.0f", false);
        print_row("echo both ways, 64 KiB (MB/s)", local.echo_mbps, attached.echo_mbps, "%.0f",
                  false);
        printf("ratio: attached relative to in process (> 1: attached better)\n");
    }

    if (stack) {
        if (services) {
            /* closing the listeners ends the accept loops */
            usock_close(stack, echo.listener);
            usock_close(stack, discard.listener);
            pthread_join(echo_thread, NULL);
            pthread_join(discard_thread, NULL);
        }
        usock_stack_free(stack);
    }
    if (far_end)
        usock_link_close(far_end);
    unlink(path);
    rmdir(directory);
    return 0;
}
