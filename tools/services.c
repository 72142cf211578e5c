/*
 * services.c - the small services `usock up --serve` runs: udp-echo and
 * udp-discard (RFC 862, RFC 863).
 *
 * Theory of operation: each service owns one UDP socket of a stack running
 * in threaded mode, bound to 0.0.0.0:PORT, and one thread that loops on
 * usock_recvfrom, answering (echo) or dropping (discard) each datagram.  The
 * socket has SO_RCVTIMEO of SERVICE_POLL_MS, so a blocked receive returns
 * EAGAIN regularly and the thread sees the stop flag; service_stop sets the
 * flag, joins the thread, and only then closes the socket, so the socket is
 * never closed under a thread still using it.  All of this goes through the
 * public socket API only, as any program using usock would.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"

/* How often a blocked service looks at its stop flag. */
#define SERVICE_POLL_MS 200
/* Largest UDP payload over IPv4. */
#define SERVICE_DATAGRAM_MAX 65507

struct service {
    struct usock_stack *stack;
    struct service_spec spec;
    int fd;
    pthread_t thread;
    atomic_bool stopping;
    uint8_t buffer[SERVICE_DATAGRAM_MAX];
};

/* The text name of each kind, as --serve takes it. */
static const char *const service_kind_names[] = {
    [SERVICE_UDP_ECHO] = "udp-echo",
    [SERVICE_UDP_DISCARD] = "udp-discard",
};
_Static_assert(sizeof(service_kind_names) / sizeof(service_kind_names[0]) ==
                   SERVICE_UDP_DISCARD + 1,
               "a name for each service kind");

int service_spec_parse(const char *text, struct service_spec *spec)
{
    const char *colon = strchr(text, ':');

    for (size_t kind = 0; colon && kind <= SERVICE_UDP_DISCARD; kind++) {
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
    cli_error("unknown service '%s' (expected udp-echo:PORT or udp-discard:PORT)", text);
    return -EINVAL;
}

/* The service's thread: receives datagrams until told to stop. */
static void *service_run(void *argument)
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
            /* The timeout, or a transient shortage: look at the flag again. */
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOMEM ||
                errno == ENOBUFS || errno == ECONNREFUSED)
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

int service_start(struct usock_stack *stack, const struct service_spec *spec,
                  struct service **service_out)
{
    const char *kind = service_kind_names[spec->kind];
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
    service->fd = usock_socket(stack, AF_INET, SOCK_DGRAM, IPPROTO_UDP);
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
    if (usock_bind(stack, service->fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        error = -errno;
        cli_error("%s:%u: bind: %s", kind, (unsigned)spec->port, strerror(errno));
        goto fail_close;
    }
    error = pthread_create(&service->thread, NULL, service_run, service);
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
