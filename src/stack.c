/*
 * stack.c - the stack object, its poll loop, and the thread that runs it.
 *
 * usock_stack_poll is the whole of event mode, in a fixed order: read up to
 * a batch of frames from the link and push each up the receive path;
 * deliver packets the stack sent to itself; run due timers; return the
 * earliest of the timer heap's deadline, the link's (frames held back by
 * impairment) and "now" when work is left over.  The clock is read by the
 * caller, never here.
 *
 * Threaded mode wraps that in a thread: take the lock, poll, release it,
 * then sleep in poll(2) on the link's descriptor and an eventfd until the
 * deadline.  API calls that arm timers or queue loopback packets write the
 * eventfd (stack_kick) so the thread recomputes its sleep.
 */
#include "stack.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "link/offload.h"
#include "net/ipv4.h"
#include "remote/client.h"
#include "util/siphash.h"

#define LINK_BATCH 256
#define LOOPBACK_BATCH 1024

static const char *const counter_names[COUNTER_COUNT] = {
#define USOCK_COUNTER_NAME(name) #name,
    USOCK_COUNTER_LIST(USOCK_COUNTER_NAME)
#undef USOCK_COUNTER_NAME
};

uint64_t usock_monotonic_ns(void *unused)
{
    (void)unused;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * NS_PER_SECOND + (uint64_t)now.tv_nsec;
}

void usock_stack_config_init(struct usock_stack_config *config)
{
    memset(config, 0, sizeof(*config));
    config->clock = usock_monotonic_ns;
}

uint64_t usock_stack_now(struct usock_stack *stack)
{
    return stack->clock(stack->clock_context);
}

void stack_kick(struct usock_stack *stack)
{
    if (stack->thread_running && stack->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t written = write(stack->wake_fd, &one, sizeof(one));
        (void)written;
    }
}

void stack_timer_arm(struct usock_stack *stack, struct timer *timer, uint64_t deadline)
{
    timer_arm(&stack->timers, timer, deadline);
    /* The thread recomputes its deadline each round; it needs waking only
     * when it sleeps towards a later one. */
    if (deadline < stack->thread_sleeps_until)
        stack_kick(stack);
}

void stack_link_send(struct usock_stack *stack, struct packet_buffer *buffer, uint64_t now)
{
    struct usock_link *link = stack->interface.link;
    if (!link)
        return;
    int result;
    bool offloaded = buffer->checksum_partial && link->offloads != 0;
    struct link_frame_info info = {
        .checksum_partial = true,
        .checksum_start = offloaded ? (uint16_t)(buffer->transport_header - buffer->data) : 0,
        .checksum_offset = buffer->checksum_offset,
        .segment_size = buffer->segment_size,
    };
    const uint8_t *frame = buffer->data;
    size_t length = buffer->length;
    uint8_t *flat = NULL;
    if (buffer->payload_ring) {
        struct iovec parts[3] = {{buffer->data, buffer->length}};
        int count = 1 + ring_parts(buffer->payload_ring, buffer->payload_offset,
                                   buffer->payload_length, parts + 1);
        length = buffer->length + buffer->payload_length;
        if (offloaded && link->ops->send_gather) {
            result = link->ops->send_gather(link, parts, count, length, &info, now);
            goto sent;
        }
        /* A link that cannot gather (not one TCP leaves payloads for):
         * the frame is put together here. */
        flat = malloc(length);
        if (!flat) {
            COUNT(stack, LinkOutErrors);
            return;
        }
        link_parts_copy(flat, parts, count);
        frame = flat;
    }
    if (offloaded)
        result = link->ops->send_offloaded(link, frame, length, &info, now);
    else
        result = link->ops->send(link, frame, length, now);
    free(flat);
sent:
    if (result != 0) {
        COUNT(stack, LinkOutErrors);
    } else {
        COUNT(stack, LinkOutFrames);
        if (buffer->segment_size != 0)
            COUNT(stack, LinkOutSuperSegments);
    }
}

void stack_drain_loopback(struct usock_stack *stack, uint64_t now)
{
    /* Delivery may send more to ourselves (an echo service answering a
     * local client); the outer drain picks those up, bounded per call. */
    if (stack->draining_loopback || stack->loopback.count == 0)
        return;
    stack->draining_loopback = true;
    for (int i = 0; i < LOOPBACK_BATCH; i++) {
        struct packet_buffer *buffer = packet_queue_pop(&stack->loopback);
        if (!buffer)
            break;
        ipv4_input(stack, buffer->data, buffer->length, true, now);
        packet_buffer_free(buffer);
    }
    stack->draining_loopback = false;
}

static void stack_input_frame(struct usock_stack *stack, const uint8_t *frame, size_t length,
                              uint64_t now)
{
    COUNT(stack, LinkInFrames);
    if (stack->input_checksum_verified)
        COUNT(stack, LinkInChecksumOffloaded);
    if (stack->interface.ethernet)
        ethernet_input(stack, frame, length, now);
    else
        ipv4_input(stack, frame, length, false, now);
}

/* One round of the poll loop at time now.  With refresh_clock (the
 * stack's own thread, on the real clock) the time is read again after each
 * frame: a reply the kernel queued while we were still writing (TAP
 * answers inside the write) then gets its true arrival time, and round-trip
 * samples are not zero. */
static uint64_t stack_poll_locked(struct usock_stack *stack, uint64_t now, bool refresh_clock)
{
    struct usock_link *link = stack->interface.link;
    bool more_input = false;
    /* Threads blocked on sockets wake once, after the batch (they would
     * only wait for the lock it holds). */
    bool hold_wakes = stack->thread_running;
    if (hold_wakes)
        socket_hold_wakes(stack);
    if (link) {
        int frames = 0;
        for (; frames < LINK_BATCH; frames++) {
            ssize_t length;
            struct link_frame_info info = {0};
            const uint8_t *frame = stack->receive_frame;
            if (link->ops->receive_borrowed)
                length = link->ops->receive_borrowed(link, &frame, &info, now);
            else if (link->offloads != 0)
                length = link->ops->receive_offloaded(link, stack->receive_frame, LINK_FRAME_MAX,
                                                      &info, now);
            else
                length = link->ops->receive(link, stack->receive_frame, LINK_FRAME_MAX, now);
            if (length < 0)
                break;
            if (link->offloads == 0)
                memset(&info, 0, sizeof(info)); /* nothing asked, nothing trusted */
            if (info.segment_size != 0)
                COUNT(stack, LinkInSuperSegments);
            if (refresh_clock) {
                uint64_t later = usock_stack_now(stack);
                if (later > now)
                    now = later;
            }
            stack->input_checksum_verified = info.checksum_verified;
            stack_input_frame(stack, frame, (size_t)length, now);
            stack->input_checksum_verified = false;
        }
        more_input = frames == LINK_BATCH;
        stack->frames_last_round = (unsigned)frames;
    }
    stack_drain_loopback(stack, now);
    struct timer *timer;
    while ((timer = timer_wheel_pop_due(&stack->timers, now)))
        timer->fire(stack, timer, now);
    stack_drain_loopback(stack, now);

    uint64_t deadline = timer_wheel_next(&stack->timers);
    if (link && link->ops->deadline) {
        uint64_t link_deadline = link->ops->deadline(link, now);
        if (link_deadline < deadline)
            deadline = link_deadline;
    }
    if (more_input || stack->loopback.count > 0)
        deadline = now;
    if (hold_wakes)
        socket_release_wakes(stack);
    return deadline;
}

/* Linux sizes tcp_mem from RAM; usock lets TCP buffers take 1/16 of it
 * (at least 16 MB). */
/* A share of the machine's memory (1/divisor), and at least 16 MiB: the
 * default of the buffer memory limits, as Linux sizes tcp_mem and
 * udp_mem. */
static size_t stack_default_memory(unsigned divisor)
{
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    size_t memory =
        pages > 0 && page_size > 0 ? (size_t)pages * (size_t)page_size / divisor : 0;
    return memory > (16u << 20) ? memory : (16u << 20);
}

uint64_t usock_stack_poll(struct usock_stack *stack, uint64_t now)
{
    if (stack->remote) {
        errno = EINVAL; /* the stack is polled in its own process */
        return USOCK_NEVER;
    }
    pthread_mutex_lock(&stack->lock);
    uint64_t deadline = stack_poll_locked(stack, now, false);
    pthread_mutex_unlock(&stack->lock);
    return deadline;
}

int usock_stack_wait_fd(struct usock_stack *stack)
{
    struct usock_link *link = stack->interface.link;
    return link ? link->ops->wait_fd(link) : -1;
}

static void random_local_mac(struct usock_stack *stack, uint8_t mac[6])
{
    uint64_t value = random_next(&stack->random);
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)(value >> (8 * i));
    mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
}

/* The interface's name for SO_BINDTODEVICE: the configured one, else the
 * device behind a tap:/tun:/packet: link (its name after the colon), else
 * "usock0".  Returns 0, or -EINVAL for a configured name that is empty or
 * longer than INTERFACE_NAME_SIZE - 1. */
static int interface_name_choose(const struct usock_stack_config *config,
                                 const struct usock_link *link, char name[INTERFACE_NAME_SIZE])
{
    static const char *const device_links[] = {"tap:", "tun:", "packet:"};
    const char *chosen = "usock0";
    if (config->interface_name) {
        chosen = config->interface_name;
        if (chosen[0] == '\0' || strlen(chosen) >= INTERFACE_NAME_SIZE)
            return -EINVAL;
    } else if (link) {
        for (size_t i = 0; i < sizeof(device_links) / sizeof(device_links[0]); i++) {
            size_t prefix = strlen(device_links[i]);
            if (strncmp(link->name, device_links[i], prefix) == 0 && link->name[prefix] != '\0' &&
                strlen(link->name + prefix) < INTERFACE_NAME_SIZE)
                chosen = link->name + prefix;
        }
    }
    snprintf(name, INTERFACE_NAME_SIZE, "%s", chosen);
    return 0;
}

struct usock_stack *usock_stack_new(const struct usock_stack_config *config)
{
    struct usock_link *link = config ? config->link : NULL;
    char interface_name[INTERFACE_NAME_SIZE];
    if (!config || config->prefix_length > 32 ||
        interface_name_choose(config, link, interface_name) != 0) {
        if (link)
            usock_link_close(link);
        errno = EINVAL;
        return NULL;
    }
    struct usock_stack *stack = calloc(1, sizeof(*stack));
    if (!stack) {
        if (link)
            usock_link_close(link);
        errno = ENOMEM;
        return NULL;
    }
    stack->wake_fd = -1;
    stack->control_fd = -1;
    stack->control_stop_fd = -1;
    pthread_mutex_init(&stack->lock, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&stack->poll_condition, &attributes);
    pthread_condattr_destroy(&attributes);
    stack->clock = config->clock ? config->clock : usock_monotonic_ns;
    stack->clock_context = config->clock_context;
    snprintf(stack->name, sizeof(stack->name), "%s", config->name ? config->name : "usock");
    uint64_t seed = config->seed ? config->seed : random_from_system();
    random_seed(&stack->random, seed);
    for (int i = 0; i < 2; i++) {
        uint64_t word = random_next(&stack->random);
        memcpy(stack->secret + 8 * i, &word, 8);
    }
    for (size_t i = 0; i < IPV4_IDENTIFICATION_BUCKETS; i++)
        stack->ip_identifications[i] = (uint16_t)random_next(&stack->random);
    stack->verify_checksums = true;
    stack->tcp_time_wait_ns = config->tcp_time_wait_ns ? config->tcp_time_wait_ns
                                                       : TCP_TIME_WAIT_NS;
    timer_wheel_init(&stack->timers);
    packet_queue_init(&stack->loopback, LOOPBACK_QUEUE_LIMIT);
    icmp_rate_limit_init(&stack->icmp_limit);

    struct interface *interface = &stack->interface;
    memcpy(interface->name, interface_name, sizeof(interface->name));
    interface->link = link;
    interface->ethernet = link ? link->layer == LINK_LAYER_ETHERNET : false;
    interface->address = config->address.s_addr;
    interface->prefix_length = config->prefix_length;
    uint32_t mask = config->prefix_length ? 0xffffffffu << (32 - config->prefix_length) : 0;
    interface->netmask = htonl(mask);
    interface->broadcast = interface->address | ~interface->netmask;
    interface->gateway = config->gateway.s_addr;
    interface->mtu = config->mtu ? config->mtu : (link ? link->mtu : 65535);
    if (interface->mtu < 68)
        interface->mtu = 68;
    static const uint8_t zero_mac[6] = {0};
    if (memcmp(config->mac, zero_mac, 6) != 0)
        memcpy(interface->mac, config->mac, 6);
    else if (link && link->has_mac)
        memcpy(interface->mac, link->mac, 6);
    else
        random_local_mac(stack, interface->mac);

    stack->receive_frame = malloc(LINK_FRAME_MAX);
    if (!stack->receive_frame || neighbour_cache_init(&stack->neighbours) != 0 ||
        socket_layer_init(&stack->sockets) != 0 || tcp_layer_init(&stack->tcp) != 0 ||
        fragment_table_init(&stack->fragments) != 0) {
        usock_stack_free(stack);
        errno = ENOMEM;
        return NULL;
    }
    stack->tcp.memory_limit = config->tcp_memory_limit ? config->tcp_memory_limit
                                                       : stack_default_memory(16);
    stack->datagram_memory.limit = config->datagram_memory_limit
                                       ? config->datagram_memory_limit
                                       : stack_default_memory(32);
    if (config->reassembly_memory_limit)
        stack->fragments.memory_limit = config->reassembly_memory_limit;
    if (config->neighbour_limit)
        stack->neighbours.limit = config->neighbour_limit;
    stack->busy_poll_ns = (uint64_t)config->busy_poll_us * 1000;
    if (config->socket_limit)
        stack->sockets.limit = config->socket_limit < SOCKET_DESCRIPTOR_CEILING
                                   ? config->socket_limit
                                   : SOCKET_DESCRIPTOR_CEILING;
    stack->sockets.client_limit = stack->sockets.limit / 2 ? stack->sockets.limit / 2 : 1;
    if (config->client_socket_limit)
        stack->sockets.client_limit = config->client_socket_limit < stack->sockets.limit
                                          ? config->client_socket_limit
                                          : stack->sockets.limit;
    /* Offloads only for a link the stack drives directly; ones it cannot
     * have are simply off.  TCP segmentation needs checksum offload. */
    if (link && link->ops->enable_offloads && !config->no_offloads &&
        link->ops->enable_offloads(link, LINK_OFFLOAD_CHECKSUM | LINK_OFFLOAD_TCP_SEGMENTATION) < 0)
        link->offloads = 0;
    if (link && !(link->offloads & LINK_OFFLOAD_CHECKSUM))
        link->offloads = 0;
    arp_announce(stack, usock_stack_now(stack));
    return stack;
}

void usock_stack_free(struct usock_stack *stack)
{
    if (!stack)
        return;
    if (stack->remote) {
        remote_client_close(stack->remote);
        free(stack);
        return;
    }
    stack_api_stop(stack);
    usock_stack_stop(stack);
    stack_control_stop(stack);
    pthread_mutex_lock(&stack->lock);
    tcp_layer_destroy(stack);
    socket_layer_destroy(stack, &stack->sockets);
    neighbour_cache_destroy(stack, &stack->neighbours);
    fragment_table_destroy(stack);
    igmp_layer_destroy(stack);
    packet_queue_purge(&stack->loopback);
    timer_wheel_destroy(&stack->timers);
    pthread_mutex_unlock(&stack->lock);
    if (stack->interface.link)
        usock_link_close(stack->interface.link);
    free(stack->receive_frame);
    pthread_cond_destroy(&stack->poll_condition);
    pthread_mutex_destroy(&stack->lock);
    free(stack);
}

static void *stack_thread_main(void *argument)
{
    struct usock_stack *stack = argument;
    struct usock_link *link = stack->interface.link;
    pthread_mutex_lock(&stack->lock);
    while (!stack->thread_stop) {
        uint64_t now = usock_stack_now(stack);
        uint64_t deadline = stack_poll_locked(stack, now, true);
        /* Busy polling: frames just came and the link is empty now, so
         * the next (an answer, the next segment) is likely within
         * microseconds; look again for a while, letting socket calls take
         * the lock in between, before paying for a sleep and a wakeup.
         * Once frames come the spin ends and the loop goes on as ever (a
         * flood never holds the thread in here). */
        if (stack->frames_last_round > 0 && stack->frames_last_round < LINK_BATCH &&
            stack->busy_poll_ns > 0) {
            uint64_t spin_until = now + stack->busy_poll_ns;
            for (;;) {
                pthread_mutex_unlock(&stack->lock);
                sched_yield();
                pthread_mutex_lock(&stack->lock);
                if (stack->thread_stop)
                    break;
                now = usock_stack_now(stack);
                deadline = stack_poll_locked(stack, now, true);
                if (stack->frames_last_round > 0 || now >= spin_until || deadline <= now)
                    break;
            }
        }
        stack->thread_sleeps_until = deadline;
        pthread_mutex_unlock(&stack->lock);

        struct pollfd fds[2] = {{.fd = stack->wake_fd, .events = POLLIN},
                                {.fd = link ? link->ops->wait_fd(link) : -1, .events = POLLIN}};
        int timeout = -1;
        if (deadline != USOCK_NEVER) {
            uint64_t wait = deadline > now ? deadline - now : 0;
            uint64_t ms = (wait + NS_PER_MS - 1) / NS_PER_MS;
            timeout = ms > 1000 ? 1000 : (int)ms;
        } else if (fds[1].fd < 0) {
            /* A link without a descriptor: check it now and then. */
            timeout = 10;
        }
        poll(fds, 2, timeout);
        if (fds[0].revents & POLLIN) {
            uint64_t value;
            ssize_t got = read(stack->wake_fd, &value, sizeof(value));
            (void)got;
        }
        pthread_mutex_lock(&stack->lock);
    }
    pthread_mutex_unlock(&stack->lock);
    return NULL;
}

int usock_stack_start(struct usock_stack *stack)
{
    if (stack->remote)
        return -EINVAL;
    pthread_mutex_lock(&stack->lock);
    if (stack->thread_running) {
        pthread_mutex_unlock(&stack->lock);
        return -EALREADY;
    }
    stack->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stack->wake_fd < 0) {
        int error = errno;
        pthread_mutex_unlock(&stack->lock);
        return -error;
    }
    stack->thread_stop = false;
    int error = pthread_create(&stack->thread, NULL, stack_thread_main, stack);
    if (error) {
        close(stack->wake_fd);
        stack->wake_fd = -1;
        pthread_mutex_unlock(&stack->lock);
        return -error;
    }
    stack->thread_running = true;
    pthread_mutex_unlock(&stack->lock);
    return 0;
}

void usock_stack_stop(struct usock_stack *stack)
{
    if (stack->remote)
        return;
    pthread_mutex_lock(&stack->lock);
    if (!stack->thread_running) {
        pthread_mutex_unlock(&stack->lock);
        return;
    }
    stack->thread_stop = true;
    stack_kick(stack);
    pthread_mutex_unlock(&stack->lock);
    pthread_join(stack->thread, NULL);
    pthread_mutex_lock(&stack->lock);
    stack->thread_running = false;
    close(stack->wake_fd);
    stack->wake_fd = -1;
    /* Blocked callers would now wait forever: wake them to see EAGAIN. */
    for (size_t fd = 0; fd < stack->sockets.capacity; fd++)
        if (stack->sockets.descriptors[fd])
            socket_wake(stack, stack->sockets.descriptors[fd]);
    pthread_cond_broadcast(&stack->poll_condition);
    pthread_mutex_unlock(&stack->lock);
}

size_t usock_stack_counter_count(void)
{
    return COUNTER_COUNT;
}

const char *usock_stack_counter_name(size_t index)
{
    return index < COUNTER_COUNT ? counter_names[index] : NULL;
}

uint64_t usock_stack_counter_value(struct usock_stack *stack, size_t index)
{
    if (index >= COUNTER_COUNT || stack->remote)
        return 0;
    pthread_mutex_lock(&stack->lock);
    uint64_t value = stack->counters[index];
    pthread_mutex_unlock(&stack->lock);
    return value;
}

uint64_t usock_stack_counter(struct usock_stack *stack, const char *name)
{
    for (size_t i = 0; i < COUNTER_COUNT; i++)
        if (strcmp(counter_names[i], name) == 0)
            return usock_stack_counter_value(stack, i);
    return 0;
}

/* Adds pid (when not 0 and not there yet) to row's processes. */
static void stack_row_add_pid(struct usock_socket_info *row, int32_t pid)
{
    if (pid <= 0)
        return;
    for (int i = 0; i < row->owner_pid_count; i++)
        if (row->owner_pids[i] == pid)
            return;
    if (row->owner_pid_count == USOCK_SOCKET_OWNERS_MAX)
        return;
    row->owner_pids[row->owner_pid_count++] = pid;
    row->owner_pid = row->owner_pids[0];
}

/* Fills one row of the socket table from socket (pid: the process holding
 * its descriptor, 0 for none). */
static void stack_describe_socket(struct socket *socket, int32_t pid,
                                  struct usock_socket_info *row)
{
    memset(row, 0, sizeof(*row));
    row->fd = socket->fd;
    row->type = socket->type;
    row->protocol = socket->protocol;
    stack_row_add_pid(row, pid);
    row->state = socket->ops->state_name(socket);
    row->listening = socket->ops->is_listening(socket);
    row->receive_queue = socket->ops->receive_queue_bytes(socket);
    row->send_queue = socket->ops->send_queue_bytes(socket);
    if (socket->ops->describe)
        socket->ops->describe(socket, row->details, sizeof(row->details));
    row->local.sin_family = AF_INET;
    row->local.sin_addr.s_addr = socket->local_address;
    row->local.sin_port = htons(socket->local_port);
    row->peer.sin_family = AF_INET;
    if (socket->connected) {
        row->peer.sin_addr.s_addr = socket->peer_address;
        row->peer.sin_port = htons(socket->peer_port);
    }
}

/* A socket's row, for finding it by the socket (sorted by socket). */
struct row_of_socket {
    const struct socket *socket;
    size_t row;
};

static int row_of_socket_compare(const void *left, const void *right)
{
    const struct row_of_socket *a = left, *b = right;
    return (a->socket > b->socket) - (a->socket < b->socket);
}

/* Adds to each row the processes of its socket's other descriptors (the
 * rows in use come from sockets[0..count)).  Out of memory: left out. */
static void stack_rows_add_shared(struct usock_stack *stack, struct usock_socket_info *rows,
                                  size_t count)
{
    const struct socket_layer *layer = &stack->sockets;
    struct row_of_socket *index = NULL;
    size_t indexed = 0;
    for (size_t fd = 0; fd < layer->capacity; fd++) {
        const struct socket *socket = layer->descriptors[fd];
        if (!socket || socket->fd == (int)fd || layer->pids[fd] <= 0)
            continue;
        if (!index) {
            /* Only when some socket has several descriptors. */
            index = malloc(count * sizeof(*index));
            if (!index)
                return;
            for (size_t other = 0, row = 0; other < layer->capacity && row < count; other++) {
                const struct socket *first = layer->descriptors[other];
                if (first && first->fd == (int)other)
                    index[indexed++] = (struct row_of_socket){first, row++};
            }
            qsort(index, indexed, sizeof(*index), row_of_socket_compare);
        }
        struct row_of_socket key = {socket, 0};
        const struct row_of_socket *found =
            bsearch(&key, index, indexed, sizeof(*index), row_of_socket_compare);
        if (found)
            stack_row_add_pid(&rows[found->row], layer->pids[fd]);
    }
    free(index);
}

size_t usock_stack_sockets(struct usock_stack *stack, struct usock_socket_info *rows, size_t max)
{
    size_t count = 0;
    if (stack->remote)
        return 0;
    pthread_mutex_lock(&stack->lock);
    for (size_t fd = 0; fd < stack->sockets.capacity; fd++) {
        struct socket *socket = stack->sockets.descriptors[fd];
        if (!socket || socket->fd != (int)fd)
            continue; /* a socket with several descriptors is one row */
        if (count < max && rows)
            stack_describe_socket(socket, stack->sockets.pids[fd], &rows[count]);
        count++;
    }
    if (rows)
        stack_rows_add_shared(stack, rows, count < max ? count : max);
    /* Connections without a descriptor: orphans still closing, and
     * children waiting for accept(). */
    for (struct tcp_connection *tcb = stack->tcp.all; tcb; tcb = tcb->all_next) {
        struct socket *socket = tcb->socket;
        if (socket->fd >= 0 && !tcb->orphaned)
            continue;
        if (count < max && rows)
            stack_describe_socket(socket, 0, &rows[count]);
        count++;
    }
    pthread_mutex_unlock(&stack->lock);
    return count;
}
