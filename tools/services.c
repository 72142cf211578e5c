/*
 * services.c - the small services `usock up --serve` runs: udp-echo and
 * udp-discard (RFC 862, RFC 863), tcp-echo and tcp-discard (the same over
 * TCP), and a minimal HTTP/1.x server.
 *
 * Theory of operation: each service owns one socket of a stack running in
 * threaded mode, bound to 0.0.0.0:PORT, and one thread.  Every socket a
 * service uses has SO_RCVTIMEO (and for TCP SO_SNDTIMEO) of
 * SERVICE_POLL_MS, so a blocked call returns EAGAIN regularly and the thread
 * sees the stop flag; service_stop sets the flag, joins the service's
 * thread, and only then closes the socket, so a socket is never closed under
 * a thread still using it.  All of this goes through the public socket API
 * only, as any program using usock would.
 *
 * UDP: the thread loops on usock_recvfrom, answering (echo) or dropping
 * (discard) each datagram.
 *
 * TCP: the service's thread is the listener.  It accepts connections and
 * gives each a thread of its own (a thread per connection keeps every
 * service a straight line of blocking calls), at most SERVICE_CONNECTIONS_MAX
 * at a time: when all slots are taken it stops accepting, and new
 * connections wait in the listen backlog until one ends.  A connection's
 * thread owns its socket and closes it when it is done; it then marks its
 * slot finished, and the listener joins it (between accepts, and all the
 * remaining ones before it returns), so no thread outlives service_stop.
 * Data moves SERVICE_CHUNK bytes per call.
 *   - tcp-echo sends back what it receives until the peer's FIN, then closes.
 *   - tcp-discard reads until the peer's FIN and closes.
 *   - http reads one request head (up to SERVICE_HTTP_HEAD_MAX bytes), and
 *     answers GET or HEAD of "/" with a short text page and of "/bytes/N"
 *     with N bytes (N up to 1 GiB) of a pattern (bytes 4k..4k+3 are the
 *     32-bit number k, big-endian; unique for 16 GiB, so a misplaced piece
 *     is never mistaken for the right one) and Content-Length; any other
 *     path is 404, another method 501, a malformed request 400.  After each
 *     response it shuts down its sending side, reads and drops what the
 *     client still sends (for up to SERVICE_HTTP_LINGER_MS, so unread input
 *     does not turn the close into a reset that could destroy the response
 *     on its way), and closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "cli.h"

/* How often a blocked service looks at its stop flag. */
#define SERVICE_POLL_MS 200
/* Largest UDP payload over IPv4. */
#define SERVICE_DATAGRAM_MAX 65507
/* Most TCP connections a service serves at once. */
#define SERVICE_CONNECTIONS_MAX 256
/* Listen backlog of a TCP service. */
#define SERVICE_BACKLOG 128
/* Bytes moved by one send or receive on a TCP connection. */
#define SERVICE_CHUNK (128 * 1024)
/* Stack of a connection's thread (its buffer is on the heap). */
#define SERVICE_THREAD_STACK (256 * 1024)
/* Longest HTTP request head taken. */
#define SERVICE_HTTP_HEAD_MAX 8192
/* Largest /bytes/N. */
#define SERVICE_HTTP_BYTES_MAX (1024ull * 1024 * 1024)
/* How long the http service reads what a client sends after the response. */
#define SERVICE_HTTP_LINGER_MS 2000
/* Pause of a listener with every connection slot taken. */
#define SERVICE_FULL_PAUSE_MS 20

struct service;

/* One TCP connection, served by its own thread. */
struct connection {
    struct service *service;
    int fd;
    pthread_t thread;
    bool running;          /* the listener started the thread and has not joined it */
    atomic_bool finished;  /* the thread is done (its socket closed) */
};

struct service {
    struct usock_stack *stack;
    struct service_spec spec;
    int fd;
    pthread_t thread;
    atomic_bool stopping;
    /* TCP: the listener's connection slots and how many hold a thread. */
    struct connection connections[SERVICE_CONNECTIONS_MAX];
    size_t running_count;
    /* UDP: the datagram being answered. */
    uint8_t buffer[SERVICE_DATAGRAM_MAX];
};

/* The text name of each kind, as --serve takes it. */
static const char *const service_kind_names[] = {
    [SERVICE_UDP_ECHO] = "udp-echo",
    [SERVICE_UDP_DISCARD] = "udp-discard",
    [SERVICE_TCP_ECHO] = "tcp-echo",
    [SERVICE_TCP_DISCARD] = "tcp-discard",
    [SERVICE_HTTP] = "http",
};
_Static_assert(sizeof(service_kind_names) / sizeof(service_kind_names[0]) == SERVICE_KIND_COUNT,
               "a name for each service kind");

bool service_is_tcp(enum service_kind kind)
{
    return kind == SERVICE_TCP_ECHO || kind == SERVICE_TCP_DISCARD || kind == SERVICE_HTTP;
}

int service_spec_parse(const char *text, struct service_spec *spec)
{
    const char *colon = strchr(text, ':');

    for (size_t kind = 0; colon && kind < SERVICE_KIND_COUNT; kind++) {
        const char *name = service_kind_names[kind];
        if (strlen(name) != (size_t)(colon - text) || strncmp(text, name, strlen(name)) != 0)
            continue;
        unsigned port;
        if (cli_parse_unsigned(colon + 1, "port", 1, 65535, &port) < 0)
            return -EINVAL;
        spec->kind = (enum service_kind)kind;
        spec->port = (uint16_t)port;
        return 0;
    }
    cli_error("unknown service '%s' (expected udp-echo:PORT, udp-discard:PORT, tcp-echo:PORT, "
              "tcp-discard:PORT or http:PORT)",
              text);
    return -EINVAL;
}

static void sleep_ms(unsigned ms)
{
    struct timespec pause = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* Errors after which a blocked call is simply tried again (the timeout, or
 * a transient shortage). */
static bool service_transient(int error)
{
    return error == EAGAIN || error == EWOULDBLOCK || error == EINTR || error == ENOMEM ||
           error == ENOBUFS;
}

/* ---- UDP ---- */

/* A UDP service's thread: receives datagrams until told to stop. */
static void *service_udp_run(void *argument)
{
    struct service *service = argument;
    const char *kind = service_kind_names[service->spec.kind];

    while (!atomic_load(&service->stopping)) {
        struct sockaddr_in from;
        socklen_t from_length = sizeof(from);
        ssize_t got = usock_recvfrom(service->stack, service->fd, service->buffer,
                                     sizeof(service->buffer), 0, (struct sockaddr *)&from,
                                     &from_length);
        if (got < 0) {
            if (service_transient(errno) || errno == ECONNREFUSED)
                continue;
            cli_error("%s:%u: receive failed: %s; service stopped", kind,
                      (unsigned)service->spec.port, strerror(errno));
            break;
        }
        if (service->spec.kind == SERVICE_UDP_ECHO) {
            /* A failed echo (no ARP reply, full queue) is the sender's loss,
             * as with any UDP reply; the stack counts it. */
            (void)usock_sendto(service->stack, service->fd, service->buffer, (size_t)got, 0,
                               (struct sockaddr *)&from, from_length);
        }
    }
    return NULL;
}

/* ---- TCP connections ---- */

/* Receives up to length bytes, waiting through timeouts until data, EOF
 * (0), an error or the stop flag (-1 for both). */
static ssize_t connection_receive(struct connection *connection, void *buffer, size_t length)
{
    struct service *service = connection->service;

    while (!atomic_load(&service->stopping)) {
        ssize_t got = usock_recv(service->stack, connection->fd, buffer, length, 0);
        if (got >= 0)
            return got;
        if (!service_transient(errno))
            return -1;
    }
    return -1;
}

/* Sends all length bytes (a blocking send with SO_SNDTIMEO may send part).
 * Returns 0, or -1 on an error or the stop flag. */
static int connection_send_all(struct connection *connection, const void *buffer, size_t length)
{
    struct service *service = connection->service;
    const uint8_t *at = buffer;

    while (length > 0) {
        if (atomic_load(&service->stopping))
            return -1;
        ssize_t sent = usock_send(service->stack, connection->fd, at, length, MSG_NOSIGNAL);
        if (sent > 0) {
            at += sent;
            length -= (size_t)sent;
        } else if (sent < 0 && !service_transient(errno)) {
            return -1;
        }
    }
    return 0;
}

static void tcp_echo(struct connection *connection, uint8_t *buffer)
{
    ssize_t got;
    while ((got = connection_receive(connection, buffer, SERVICE_CHUNK)) > 0) {
        if (connection_send_all(connection, buffer, (size_t)got) < 0)
            return;
    }
}

static void tcp_discard(struct connection *connection, uint8_t *buffer)
{
    while (connection_receive(connection, buffer, SERVICE_CHUNK) > 0)
        ;
}

/* ---- HTTP ---- */

/* Fills length bytes of the /bytes pattern from offset on: bytes 4k..4k+3
 * hold k as a big-endian 32-bit number. */
static void http_pattern(uint8_t *buffer, uint64_t offset, size_t length)
{
    for (size_t i = 0; i < length; i++) {
        uint64_t at = offset + i;
        uint32_t word = (uint32_t)(at / 4);
        buffer[i] = (uint8_t)(word >> (8 * (3 - at % 4)));
    }
}

static const char http_index[] =
    "usock http service\n"
    "\n"
    "GET /bytes/N   N bytes (N up to 1073741824): bytes 4k..4k+3 are the\n"
    "               32-bit number k, big-endian\n";

/* Sends the status line and headers.  Returns 0 or -1. */
static int http_send_head(struct connection *connection, const char *status,
                          uint64_t content_length)
{
    char head[256];
    int length = snprintf(head, sizeof(head),
                          "HTTP/1.1 %s\r\n"
                          "Server: usock\r\n"
                          "Content-Type: text/plain\r\n"
                          "Content-Length: %" PRIu64 "\r\n"
                          "Connection: close\r\n"
                          "\r\n",
                          status, content_length);
    return connection_send_all(connection, head, (size_t)length);
}

/* Sends a short text response (status line, headers, and unless head_only
 * the text). */
static void http_send_text(struct connection *connection, const char *status, const char *text,
                           bool head_only)
{
    if (http_send_head(connection, status, strlen(text)) == 0 && !head_only)
        (void)connection_send_all(connection, text, strlen(text));
}

/* Reads the request head (through the blank line) into buffer, NUL
 * terminated.  Returns its length, 0 when the client closed or went away
 * first, or -1 when it does not fit. */
static ssize_t http_read_head(struct connection *connection, char *buffer, size_t capacity)
{
    size_t have = 0;

    for (;;) {
        if (have == capacity - 1)
            return -1;
        ssize_t got = connection_receive(connection, buffer + have, capacity - 1 - have);
        if (got <= 0)
            return 0;
        have += (size_t)got;
        buffer[have] = '\0';
        if (strstr(buffer, "\r\n\r\n") || strstr(buffer, "\n\n"))
            return (ssize_t)have;
    }
}

/* Answers one request on the connection. */
static void http_answer(struct connection *connection, uint8_t *buffer)
{
    char *head = (char *)buffer;
    ssize_t length = http_read_head(connection, head, SERVICE_HTTP_HEAD_MAX + 1);

    if (length == 0)
        return;
    if (length < 0) {
        http_send_text(connection, "431 Request Header Fields Too Large",
                       "request head too large\n", false);
        return;
    }
    /* Request line: METHOD SP TARGET SP HTTP/x.y */
    char *line_end = strpbrk(head, "\r\n");
    *line_end = '\0';
    char *method = head;
    char *target = strchr(method, ' ');
    char *version = target ? strchr(target + 1, ' ') : NULL;
    if (!target || !version || strncmp(version + 1, "HTTP/1.", 7) != 0) {
        http_send_text(connection, "400 Bad Request", "bad request\n", false);
        return;
    }
    *target++ = '\0';
    *version = '\0';
    bool head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0) {
        http_send_text(connection, "501 Not Implemented", "only GET and HEAD\n", false);
        return;
    }

    if (strcmp(target, "/") == 0) {
        http_send_text(connection, "200 OK", http_index, head_only);
        return;
    }
    const char *prefix = "/bytes/";
    const char *digits = target + strlen(prefix);
    if (strncmp(target, prefix, strlen(prefix)) != 0 || *digits == '\0' ||
        strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 10) {
        http_send_text(connection, "404 Not Found", "not found\n", head_only);
        return;
    }
    uint64_t total = strtoull(digits, NULL, 10);
    if (total > SERVICE_HTTP_BYTES_MAX) {
        http_send_text(connection, "404 Not Found", "at most /bytes/1073741824\n", head_only);
        return;
    }
    if (http_send_head(connection, "200 OK", total) < 0 || head_only)
        return;
    for (uint64_t offset = 0; offset < total;) {
        size_t piece = total - offset < SERVICE_CHUNK ? (size_t)(total - offset) : SERVICE_CHUNK;
        http_pattern(buffer, offset, piece);
        if (connection_send_all(connection, buffer, piece) < 0)
            return;
        offset += piece;
    }
}

static void http_serve(struct connection *connection, uint8_t *buffer)
{
    struct service *service = connection->service;

    http_answer(connection, buffer);
    /* Close gracefully: FIN after the response, then take what the client
     * still sends until its FIN, for a while. */
    if (usock_shutdown(service->stack, connection->fd, SHUT_WR) < 0)
        return;
    for (unsigned waited = 0; waited < SERVICE_HTTP_LINGER_MS && !atomic_load(&service->stopping);) {
        ssize_t got = usock_recv(service->stack, connection->fd, buffer, SERVICE_CHUNK, 0);
        if (got == 0)
            break;
        if (got < 0) {
            if (!service_transient(errno))
                break;
            waited += SERVICE_POLL_MS;
        }
    }
}

/* A connection's thread: serves it, closes its socket, marks it finished. */
static void *connection_run(void *argument)
{
    struct connection *connection = argument;
    struct service *service = connection->service;
    uint8_t *buffer = malloc(SERVICE_CHUNK > SERVICE_HTTP_HEAD_MAX + 1 ? SERVICE_CHUNK
                                                                     : SERVICE_HTTP_HEAD_MAX + 1);

    if (buffer) {
        switch (service->spec.kind) {
        case SERVICE_TCP_ECHO:
            tcp_echo(connection, buffer);
            break;
        case SERVICE_TCP_DISCARD:
            tcp_discard(connection, buffer);
            break;
        case SERVICE_HTTP:
            http_serve(connection, buffer);
            break;
        default:
            break;
        }
        free(buffer);
    }
    usock_close(service->stack, connection->fd);
    atomic_store(&connection->finished, true);
    return NULL;
}

/* Joins the threads of finished connections (all of them when everything),
 * freeing their slots. */
static void service_reap(struct service *service, bool everything)
{
    for (size_t i = 0; i < SERVICE_CONNECTIONS_MAX; i++) {
        struct connection *connection = &service->connections[i];
        if (!connection->running || (!everything && !atomic_load(&connection->finished)))
            continue;
        pthread_join(connection->thread, NULL);
        connection->running = false;
        service->running_count--;
    }
}

/* Starts a thread for the accepted socket fd, or closes it. */
static void service_start_connection(struct service *service, int fd, pthread_attr_t *attributes)
{
    const char *kind = service_kind_names[service->spec.kind];
    struct timeval timeout = {.tv_sec = 0, .tv_usec = SERVICE_POLL_MS * 1000};
    struct connection *connection = NULL;

    for (size_t i = 0; i < SERVICE_CONNECTIONS_MAX && !connection; i++) {
        if (!service->connections[i].running)
            connection = &service->connections[i];
    }
    if (!connection ||
        usock_setsockopt(service->stack, fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) <
            0 ||
        usock_setsockopt(service->stack, fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) <
            0) {
        usock_close(service->stack, fd);
        return;
    }
    connection->service = service;
    connection->fd = fd;
    atomic_store(&connection->finished, false);
    int error = pthread_create(&connection->thread, attributes, connection_run, connection);
    if (error != 0) {
        cli_error("%s:%u: cannot start a connection's thread: %s", kind,
                  (unsigned)service->spec.port, strerror(error));
        usock_close(service->stack, fd);
        return;
    }
    connection->running = true;
    service->running_count++;
}

/* A TCP service's thread: accepts connections until told to stop, then
 * waits for every connection's thread. */
static void *service_tcp_run(void *argument)
{
    struct service *service = argument;
    const char *kind = service_kind_names[service->spec.kind];
    pthread_attr_t attributes;
    bool attributes_made = pthread_attr_init(&attributes) == 0;

    if (attributes_made)
        (void)pthread_attr_setstacksize(&attributes, SERVICE_THREAD_STACK);
    while (!atomic_load(&service->stopping)) {
        service_reap(service, false);
        if (service->running_count == SERVICE_CONNECTIONS_MAX) {
            /* Every slot taken: new connections wait in the backlog. */
            sleep_ms(SERVICE_FULL_PAUSE_MS);
            continue;
        }
        int fd = usock_accept(service->stack, service->fd, NULL, NULL);
        if (fd < 0) {
            if (service_transient(errno) || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                sleep_ms(SERVICE_FULL_PAUSE_MS);
                continue;
            }
            cli_error("%s:%u: accept failed: %s; service stopped", kind,
                      (unsigned)service->spec.port, strerror(errno));
            break;
        }
        service_start_connection(service, fd, attributes_made ? &attributes : NULL);
    }
    /* The connections' threads see the stop flag within SERVICE_POLL_MS (or
     * end on their own after an accept failure). */
    service_reap(service, true);
    if (attributes_made)
        pthread_attr_destroy(&attributes);
    return NULL;
}

/* ---- starting and stopping ---- */

int service_start(struct usock_stack *stack, const struct service_spec *spec,
                  struct service **service_out)
{
    const char *kind = service_kind_names[spec->kind];
    bool tcp = service_is_tcp(spec->kind);
    struct sockaddr_in address = {
        .sin_family = AF_INET,
        .sin_port = htons(spec->port),
        .sin_addr.s_addr = htonl(INADDR_ANY),
    };
    struct timeval timeout = {.tv_sec = 0, .tv_usec = SERVICE_POLL_MS * 1000};
    int error;

    struct service *service = calloc(1, sizeof(*service));
    if (!service) {
        cli_error("%s:%u: out of memory", kind, (unsigned)spec->port);
        return -ENOMEM;
    }
    service->stack = stack;
    service->spec = *spec;
    atomic_init(&service->stopping, false);
    service->fd = usock_socket(stack, AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM,
                               tcp ? IPPROTO_TCP : IPPROTO_UDP);
    if (service->fd < 0) {
        error = -errno;
        cli_error("%s:%u: socket: %s", kind, (unsigned)spec->port, strerror(errno));
        goto fail_free;
    }
    if (usock_setsockopt(stack, service->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                         sizeof(timeout)) < 0) {
        error = -errno;
        cli_error("%s:%u: SO_RCVTIMEO: %s", kind, (unsigned)spec->port, strerror(errno));
        goto fail_close;
    }
    if (tcp) {
        /* As servers do, so a restart does not wait out TIME_WAIT. */
        int on = 1;
        if (usock_setsockopt(stack, service->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0) {
            error = -errno;
            cli_error("%s:%u: SO_REUSEADDR: %s", kind, (unsigned)spec->port, strerror(errno));
            goto fail_close;
        }
    }
    if (usock_bind(stack, service->fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        error = -errno;
        cli_error("%s:%u: bind: %s", kind, (unsigned)spec->port, strerror(errno));
        goto fail_close;
    }
    if (tcp && usock_listen(stack, service->fd, SERVICE_BACKLOG) < 0) {
        error = -errno;
        cli_error("%s:%u: listen: %s", kind, (unsigned)spec->port, strerror(errno));
        goto fail_close;
    }
    error = pthread_create(&service->thread, NULL, tcp ? service_tcp_run : service_udp_run,
                           service);
    if (error != 0) {
        cli_error("%s:%u: cannot start thread: %s", kind, (unsigned)spec->port,
                  strerror(error));
        error = -error;
        goto fail_close;
    }
    *service_out = service;
    return 0;

fail_close:
    usock_close(stack, service->fd);
fail_free:
    free(service);
    return error;
}

void service_stop(struct service *service)
{
    if (!service)
        return;
    atomic_store(&service->stopping, true);
    pthread_join(service->thread, NULL);
    usock_close(service->stack, service->fd);
    free(service);
}
