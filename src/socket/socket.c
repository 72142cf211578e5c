/*
 * socket.c - the descriptor table and the port tables.
 *
 * Descriptors are small integers handed out lowest-free-first, as POSIX
 * does, from a table that grows by doubling up to SOCKET_DESCRIPTOR_LIMIT.
 *
 * A port table indexes bound sockets twice, both keyed by siphash under the
 * stack's secret: by (local address, port), which unicast lookup walks
 * first for the exact address and then for the wildcard, and by port alone,
 * which bind conflict checks, ephemeral port choice and broadcast delivery
 * walk.  Neither walks sockets on other ports (beyond hash collisions).
 */
#include "socket/socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/in.h>

#include "net/ipv4.h"
#include "stack.h"
#include "util/siphash.h"

int socket_layer_init(struct socket_layer *layer)
{
    memset(layer, 0, sizeof(*layer));
    layer->limit = SOCKET_DESCRIPTOR_LIMIT;
    layer->client_limit = SOCKET_DESCRIPTOR_LIMIT / 2;
    if (port_table_init(&layer->udp) != 0)
        return -ENOMEM;
    if (port_table_init(&layer->tcp) != 0) {
        port_table_destroy(&layer->udp);
        return -ENOMEM;
    }
    if (port_table_init(&layer->ping) != 0) {
        port_table_destroy(&layer->udp);
        port_table_destroy(&layer->tcp);
        return -ENOMEM;
    }
    return 0;
}

struct socket *socket_new(const struct socket_operations *ops, int type)
{
    struct socket *socket = calloc(1, sizeof(*socket));
    if (!socket)
        return NULL;
    socket->fd = -1;
    socket->type = type;
    socket->protocol = ops->protocol;
    socket->ops = ops;
    socket->references = 1;
    socket->receive_buffer = SOCKET_BUFFER_DEFAULT;
    socket->send_buffer = SOCKET_BUFFER_DEFAULT;
    socket->time_to_live = 64;
    socket->multicast_ttl = 1;
    socket->path_mtu_discovery = IP_PMTUDISC_WANT;
    socket->receive_low_water = 1;
    socket->multicast_loop = true;
    return socket;
}

struct socket *socket_new_child(struct usock_stack *stack, const struct socket *parent)
{
    (void)stack;
    struct socket *child = socket_new(parent->ops, parent->type);
    if (!child)
        return NULL;
    child->receive_buffer = parent->receive_buffer;
    child->send_buffer = parent->send_buffer;
    child->send_buffer_locked = parent->send_buffer_locked;
    child->receive_buffer_locked = parent->receive_buffer_locked;
    child->urgent_inline = parent->urgent_inline;
    child->time_to_live = parent->time_to_live;
    child->type_of_service = parent->type_of_service;
    child->linger = parent->linger;
    child->linger_seconds = parent->linger_seconds;
    child->receive_timeout_ns = parent->receive_timeout_ns;
    child->send_timeout_ns = parent->send_timeout_ns;
    return child;
}

/* owner's entry in the client counts, or NULL when it holds none. */
static struct owner_count *owner_count_of(const struct socket_layer *layer, uint32_t owner)
{
    for (size_t i = 0; i < layer->owner_count_used; i++)
        if (layer->owner_counts[i].owner == owner)
            return &layer->owner_counts[i];
    return NULL;
}

bool socket_descriptor_available(const struct usock_stack *stack, uint32_t owner)
{
    const struct socket_layer *layer = &stack->sockets;
    if (layer->open_count >= layer->limit)
        return false;
    const struct owner_count *held = owner ? owner_count_of(layer, owner) : NULL;
    return !held || held->count < layer->client_limit;
}

int socket_attach_descriptor(struct usock_stack *stack, struct socket *socket, uint32_t owner,
                             int32_t pid)
{
    struct socket_layer *layer = &stack->sockets;
    /* Lowest free first, as POSIX; the search starts at the lowest slot
     * that can be free, so accepting many connections is not quadratic. */
    size_t fd = layer->lowest_free;
    while (fd < layer->capacity && layer->descriptors[fd])
        fd++;
    if (fd >= layer->limit)
        return -EMFILE;
    struct owner_count *held = NULL;
    if (owner) {
        held = owner_count_of(layer, owner);
        if (held && held->count >= layer->client_limit)
            return -EMFILE; /* this client's share, as its RLIMIT_NOFILE */
        if (!held) {
            if (layer->owner_count_used == layer->owner_count_capacity) {
                size_t capacity = layer->owner_count_capacity ? 2 * layer->owner_count_capacity : 8;
                struct owner_count *grown =
                    realloc(layer->owner_counts, capacity * sizeof(*grown));
                if (!grown)
                    return -ENOMEM;
                layer->owner_counts = grown;
                layer->owner_count_capacity = capacity;
            }
            held = &layer->owner_counts[layer->owner_count_used++];
            *held = (struct owner_count){.owner = owner, .count = 0};
        }
    }
    if (fd == layer->capacity) {
        size_t capacity = layer->capacity ? layer->capacity * 2 : 64;
        if (capacity > layer->limit)
            capacity = layer->limit;
        struct socket **descriptors = realloc(layer->descriptors, capacity * sizeof(*descriptors));
        if (!descriptors)
            return -ENOMEM;
        layer->descriptors = descriptors;
        uint32_t *owners = realloc(layer->owners, capacity * sizeof(*owners));
        if (!owners)
            return -ENOMEM; /* the larger arrays are kept, unused */
        layer->owners = owners;
        int32_t *pids = realloc(layer->pids, capacity * sizeof(*pids));
        if (!pids)
            return -ENOMEM;
        layer->pids = pids;
        memset(descriptors + layer->capacity, 0, (capacity - layer->capacity) * sizeof(*descriptors));
        layer->capacity = capacity;
    }
    if (socket->descriptor_count++ == 0)
        socket->fd = (int)fd;
    layer->descriptors[fd] = socket;
    layer->owners[fd] = owner;
    layer->pids[fd] = pid;
    layer->open_count++;
    if (held)
        held->count++;
    layer->lowest_free = fd + 1;
    return (int)fd;
}

unsigned socket_detach_descriptor(struct usock_stack *stack, struct socket *socket, int fd)
{
    struct socket_layer *layer = &stack->sockets;
    struct owner_count *held = layer->owners[fd] ? owner_count_of(layer, layer->owners[fd]) : NULL;
    if (held && --held->count == 0)
        *held = layer->owner_counts[--layer->owner_count_used];
    layer->descriptors[fd] = NULL;
    layer->owners[fd] = 0;
    layer->pids[fd] = 0;
    layer->open_count--;
    if ((size_t)fd < layer->lowest_free)
        layer->lowest_free = (size_t)fd;
    unsigned remaining = --socket->descriptor_count;
    if (remaining > 0 && socket->fd == fd) {
        /* Shown by ss as another of its descriptors.  Only shared sockets
         * pay for the search. */
        for (size_t other = 0; other < layer->capacity; other++) {
            if (layer->descriptors[other] == socket) {
                socket->fd = (int)other;
                break;
            }
        }
    }
    return remaining;
}

void socket_queue_error(struct usock_stack *stack, struct socket *socket, int error,
                        uint8_t type, uint8_t code, uint32_t info, uint32_t reporter,
                        uint32_t destination, uint16_t destination_port,
                        const uint8_t *payload, size_t length)
{
    if (socket->error_queue_length >= SOCKET_ERROR_QUEUE_LIMIT) {
        struct socket_error_entry *oldest = socket->error_queue;
        socket->error_queue = oldest->next;
        socket->error_queue_length--;
        free(oldest);
    }
    struct socket_error_entry *entry = malloc(sizeof(*entry) + length);
    if (entry) {
        entry->next = NULL;
        entry->error = error;
        entry->type = type;
        entry->code = code;
        entry->info = info;
        entry->reporter = reporter;
        entry->destination = destination;
        entry->destination_port = destination_port;
        entry->length = length;
        memcpy(entry->data, payload, length);
        struct socket_error_entry **link = &socket->error_queue;
        while (*link)
            link = &(*link)->next;
        *link = entry;
        socket->error_queue_length++;
    }
    socket->error = error;
    socket_wake(stack, socket);
}

void socket_report_icmp_error(struct usock_stack *stack, struct socket *socket, int error,
                              bool hard, uint8_t type, uint8_t code, uint32_t info,
                              uint32_t reporter, uint32_t destination, uint16_t destination_port,
                              const uint8_t *payload, size_t length)
{
    if (socket->receive_errors) {
        socket_queue_error(stack, socket, error, type, code, info, reporter, destination,
                           destination_port, payload, length);
        return;
    }
    if (!hard || !socket->connected)
        return;
    socket->error = error;
    socket_wake(stack, socket);
}

ssize_t socket_receive_error(struct socket *socket, struct msghdr *message)
{
    struct socket_error_entry *entry = socket->error_queue;
    message->msg_flags = 0;
    if (!entry) {
        message->msg_controllen = 0;
        return -EAGAIN;
    }
    size_t copied = 0;
    for (size_t i = 0; i < message->msg_iovlen && copied < entry->length; i++) {
        size_t take = entry->length - copied;
        if (take > message->msg_iov[i].iov_len)
            take = message->msg_iov[i].iov_len;
        memcpy(message->msg_iov[i].iov_base, entry->data + copied, take);
        copied += take;
    }
    if (copied < entry->length)
        message->msg_flags |= MSG_TRUNC;
    if (message->msg_name) {
        socklen_t length = message->msg_namelen;
        socket_copy_address_out(entry->destination, entry->destination_port, message->msg_name,
                                &length);
        message->msg_namelen = length;
    }
    /* One control message: struct sock_extended_err, then the offender. */
    struct {
        struct sock_extended_err error;
        struct sockaddr_in offender;
    } report;
    memset(&report, 0, sizeof(report));
    report.error.ee_errno = (uint32_t)entry->error;
    report.error.ee_origin = SO_EE_ORIGIN_ICMP;
    report.error.ee_type = entry->type;
    report.error.ee_code = entry->code;
    report.error.ee_info = entry->info;
    report.offender.sin_family = AF_INET;
    report.offender.sin_addr.s_addr = entry->reporter;
    size_t space = CMSG_SPACE(sizeof(report));
    if (message->msg_control && message->msg_controllen >= space) {
        struct cmsghdr *header = message->msg_control;
        memset(header, 0, space);
        header->cmsg_level = IPPROTO_IP;
        header->cmsg_type = IP_RECVERR;
        header->cmsg_len = CMSG_LEN(sizeof(report));
        memcpy(CMSG_DATA(header), &report, sizeof(report));
        message->msg_controllen = space;
    } else {
        message->msg_controllen = 0;
        message->msg_flags |= MSG_CTRUNC;
    }
    message->msg_flags |= MSG_ERRQUEUE;
    socket->error_queue = entry->next;
    socket->error_queue_length--;
    /* Linux: the pending error becomes the next report's, or none. */
    socket->error = socket->error_queue ? socket->error_queue->error : 0;
    free(entry);
    return (ssize_t)copied;
}

void socket_purge_errors(struct socket *socket)
{
    while (socket->error_queue) {
        struct socket_error_entry *next = socket->error_queue->next;
        free(socket->error_queue);
        socket->error_queue = next;
    }
    socket->error_queue_length = 0;
}

void socket_put(struct socket *socket)
{
    if (--socket->references > 0)
        return;
    socket_purge_errors(socket);
    free(socket->memberships); /* left already at close; freed here if never closed */
    if (socket->condition) {
        pthread_cond_destroy(socket->condition);
        free(socket->condition);
    }
    free(socket);
}

void socket_layer_destroy(struct usock_stack *stack, struct socket_layer *layer)
{
    for (size_t fd = 0; fd < layer->capacity; fd++) {
        struct socket *socket = layer->descriptors[fd];
        if (!socket)
            continue;
        layer->descriptors[fd] = NULL;
        if (--socket->descriptor_count > 0)
            continue; /* released with its last descriptor */
        socket->ops->release(stack, socket);
        socket_put(socket);
    }
    free(layer->descriptors);
    free(layer->owners);
    free(layer->pids);
    free(layer->owner_counts);
    layer->owner_counts = NULL;
    layer->owner_count_used = layer->owner_count_capacity = 0;
    layer->descriptors = NULL;
    layer->owners = NULL;
    layer->pids = NULL;
    layer->capacity = 0;
    port_table_destroy(&layer->udp);
    port_table_destroy(&layer->tcp);
    port_table_destroy(&layer->ping);
    free(layer->held_wakes);
    layer->held_wakes = NULL;
    layer->held_wake_capacity = 0;
}

struct socket *socket_from_descriptor(struct usock_stack *stack, int fd)
{
    if (fd < 0 || (size_t)fd >= stack->sockets.capacity)
        return NULL;
    return stack->sockets.descriptors[fd];
}

/* Keeps socket for socket_release_wakes; false when out of memory. */
static bool socket_hold_wake(struct socket_layer *layer, struct socket *socket)
{
    if (layer->held_wake_count == layer->held_wake_capacity) {
        size_t capacity = layer->held_wake_capacity ? layer->held_wake_capacity * 2 : 16;
        struct socket **held = realloc(layer->held_wakes, capacity * sizeof(*held));
        if (!held)
            return false;
        layer->held_wakes = held;
        layer->held_wake_capacity = capacity;
    }
    socket->references++;
    socket->wake_held = true;
    layer->held_wakes[layer->held_wake_count++] = socket;
    return true;
}

void socket_wake(struct usock_stack *stack, struct socket *socket)
{
    struct socket_layer *layer = &stack->sockets;
    if (layer->holding_wakes && (socket->wake_held || socket_hold_wake(layer, socket)))
        return;
    if (socket->condition)
        pthread_cond_broadcast(socket->condition);
    pthread_cond_broadcast(&stack->poll_condition);
}

void socket_hold_wakes(struct usock_stack *stack)
{
    stack->sockets.holding_wakes = true;
}

void socket_release_wakes(struct usock_stack *stack)
{
    struct socket_layer *layer = &stack->sockets;
    layer->holding_wakes = false;
    if (layer->held_wake_count == 0)
        return;
    for (size_t i = 0; i < layer->held_wake_count; i++) {
        struct socket *socket = layer->held_wakes[i];
        socket->wake_held = false;
        if (socket->condition)
            pthread_cond_broadcast(socket->condition);
        socket_put(socket);
    }
    layer->held_wake_count = 0;
    pthread_cond_broadcast(&stack->poll_condition);
}

pthread_cond_t *socket_condition(struct usock_stack *stack, struct socket *socket)
{
    if (socket->condition)
        return socket->condition;
    pthread_cond_t *condition = malloc(sizeof(*condition));
    if (!condition)
        return &stack->poll_condition; /* socket_wake broadcasts it too */
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(condition, &attributes);
    pthread_condattr_destroy(&attributes);
    socket->condition = condition;
    return condition;
}

bool socket_device_accepts(const struct socket *socket, uint32_t destination)
{
    switch (socket->bound_device) {
    case SOCKET_DEVICE_LINK: return !ipv4_is_loopback(destination);
    case SOCKET_DEVICE_LOOPBACK: return ipv4_is_loopback(destination);
    default: return true;
    }
}

int socket_bind_to_device(struct usock_stack *stack, struct socket *socket, const void *value,
                          socklen_t length)
{
    char name[INTERFACE_NAME_SIZE] = {0};
    if (length > INTERFACE_NAME_SIZE - 1)
        length = INTERFACE_NAME_SIZE - 1;
    if (length > 0 && !value)
        return -EFAULT;
    if (length > 0)
        memcpy(name, value, length);
    if (name[0] == '\0')
        socket->bound_device = SOCKET_DEVICE_ANY;
    else if (strcmp(name, "lo") == 0)
        socket->bound_device = SOCKET_DEVICE_LOOPBACK;
    else if (stack->interface.link && strcmp(name, stack->interface.name) == 0)
        socket->bound_device = SOCKET_DEVICE_LINK;
    else
        return -ENODEV;
    return 0;
}

int socket_bound_device_name(const struct usock_stack *stack, const struct socket *socket,
                             void *value, socklen_t *length)
{
    if (socket->bound_device == SOCKET_DEVICE_ANY) {
        *length = 0;
        return 0;
    }
    if (*length < INTERFACE_NAME_SIZE)
        return -EINVAL;
    const char *name = socket->bound_device == SOCKET_DEVICE_LOOPBACK ? "lo"
                                                                       : stack->interface.name;
    size_t size = strlen(name) + 1;
    memcpy(value, name, size);
    *length = (socklen_t)size;
    return 0;
}

void socket_copy_address_out(uint32_t address, uint16_t port, struct sockaddr *out,
                             socklen_t *length)
{
    struct sockaddr_in full = {
        .sin_family = AF_INET,
        .sin_port = htons(port),
        .sin_addr.s_addr = address,
    };
    if (out && length) {
        size_t copy = *length < sizeof(full) ? *length : sizeof(full);
        memcpy(out, &full, copy);
    }
    if (length)
        *length = sizeof(full);
}

/* ---- port tables ---- */

static uint64_t hash_address_port(const struct usock_stack *stack, uint32_t address,
                                  uint16_t port)
{
    uint8_t key[6];
    memcpy(key, &address, 4);
    memcpy(key + 4, &port, 2);
    return siphash13(stack->secret, key, sizeof(key));
}

static uint64_t hash_port(const struct usock_stack *stack, uint16_t port)
{
    return siphash13(stack->secret, &port, sizeof(port));
}

int port_table_init(struct port_table *table)
{
    if (hash_table_init(&table->by_address_port, 64) != 0)
        return -ENOMEM;
    if (hash_table_init(&table->by_port, 64) != 0) {
        hash_table_destroy(&table->by_address_port);
        return -ENOMEM;
    }
    return 0;
}

void port_table_destroy(struct port_table *table)
{
    hash_table_destroy(&table->by_address_port);
    hash_table_destroy(&table->by_port);
}

void port_table_insert(struct usock_stack *stack, struct port_table *table,
                       struct socket *socket)
{
    hash_table_insert(&table->by_address_port, &socket->address_port_node,
                      hash_address_port(stack, socket->local_address, socket->local_port));
    hash_table_insert(&table->by_port, &socket->port_node, hash_port(stack, socket->local_port));
    socket->hashed = true;
}

void port_table_remove(struct port_table *table, struct socket *socket)
{
    if (!socket->hashed)
        return;
    hash_table_remove(&table->by_address_port, &socket->address_port_node);
    hash_table_remove(&table->by_port, &socket->port_node);
    socket->hashed = false;
}

void port_table_for_each_on_port(struct usock_stack *stack, struct port_table *table,
                                 uint16_t port,
                                 bool (*visit)(struct socket *socket, void *context),
                                 void *context)
{
    uint64_t hash = hash_port(stack, port);
    struct hash_node *node = hash_table_bucket(&table->by_port, hash);
    while (node) {
        struct hash_node *next = node->next;
        struct socket *socket = container_of(node, struct socket, port_node);
        if (node->hash == hash && socket->local_port == port && !visit(socket, context))
            return;
        node = next;
    }
}

static struct socket *bound_from_node(struct hash_node *node, uint32_t address, uint16_t port,
                                      uint64_t hash)
{
    for (; node; node = node->next) {
        struct socket *socket = container_of(node, struct socket, address_port_node);
        if (node->hash == hash && socket->local_port == port && socket->local_address == address)
            return socket;
    }
    return NULL;
}

struct socket *port_table_first_bound(struct usock_stack *stack, struct port_table *table,
                                      uint32_t address, uint16_t port)
{
    uint64_t hash = hash_address_port(stack, address, port);
    return bound_from_node(hash_table_bucket(&table->by_address_port, hash), address, port, hash);
}

struct socket *port_table_next_bound(struct socket *socket, uint32_t address, uint16_t port)
{
    return bound_from_node(socket->address_port_node.next, address, port,
                           socket->address_port_node.hash);
}

struct conflict_search {
    const struct socket *candidate;
    uint32_t address;
    bool conflict;
};

static bool check_conflict(struct socket *other, void *context)
{
    struct conflict_search *search = context;
    if (other == search->candidate)
        return true;
    /* Linux inet_rcv_saddr_equal with wildcards matching everything. */
    bool overlap = other->local_address == 0 || search->address == 0 ||
                   other->local_address == search->address;
    /* Sockets bound to different devices never conflict (Linux). */
    if (other->bound_device != SOCKET_DEVICE_ANY &&
        search->candidate->bound_device != SOCKET_DEVICE_ANY &&
        other->bound_device != search->candidate->bound_device)
        overlap = false;
    if (!overlap)
        return true;
    /* Linux: SO_REUSEADDR on both shares a port unless one listens. */
    if (other->reuse_address && search->candidate->reuse_address && !other->listening)
        return true;
    if (other->reuse_port && search->candidate->reuse_port)
        return true;
    search->conflict = true;
    return false;
}

bool port_table_conflicts(struct usock_stack *stack, struct port_table *table,
                          const struct socket *candidate, uint32_t address, uint16_t port)
{
    struct conflict_search search = {.candidate = candidate, .address = address};
    port_table_for_each_on_port(stack, table, port, check_conflict, &search);
    return search.conflict;
}

uint16_t port_table_pick_ephemeral(struct usock_stack *stack, struct port_table *table,
                                   const struct socket *candidate, uint32_t address)
{
    (void)address;
    uint32_t range = EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1;
    uint32_t start = (uint32_t)random_below(&stack->random, range);
    for (uint32_t i = 0; i < range; i++) {
        uint16_t port = (uint16_t)(EPHEMERAL_PORT_FIRST + (start + i) % range);
        /* An ephemeral port is shared only when nothing else uses it at all
         * (Linux does not hand out a port a SO_REUSEADDR socket holds). */
        bool used = false;
        uint64_t hash = hash_port(stack, port);
        for (struct hash_node *node = hash_table_bucket(&table->by_port, hash); node;
             node = node->next) {
            struct socket *other = container_of(node, struct socket, port_node);
            if (node->hash == hash && other->local_port == port && other != candidate) {
                used = true;
                break;
            }
        }
        if (!used)
            return port;
    }
    return 0;
}
