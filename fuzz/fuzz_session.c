/*
 * fuzz_session.c - libFuzzer target: a TCP transfer both ways and a UDP
 * exchange between two stacks, with the fuzzer as the path between them.
 *
 * Stacks A (FUZZ_PEER_ADDRESS) and B (FUZZ_TARGET_ADDRESS) each sit on one
 * end of an in-memory wire; this harness holds the two other ends and
 * carries every frame across itself, one at a time in the order sent,
 * asking the input what happens to it: delivered, dropped, duplicated,
 * held back behind later frames, one byte changed, or delivered after the
 * clock moves on.  Once the input runs out every frame is delivered, and
 * when nothing is in flight the clock jumps to the next deadline.
 *
 * Checksum verification stays on here: a changed byte must be caught by a
 * checksum (one changed byte always is), because what this target checks
 * is that TCP delivers exactly the bytes sent.  It aborts when
 *  - a stream delivers a byte that is not the sender's byte at that offset,
 *    or ends (EOF) before every byte sent has arrived;
 *  - a datagram arrives that is not, byte for byte, one that was sent
 *    (fragments are changed only in their headers: see mutable_length);
 *  - after the input is used up, on a perfect path, the transfer neither
 *    completes nor fails with an error within SESSION_GRACE_NS (a stall),
 *    or times out later than one retransmission timeout after it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_world.h"
#include "wire/bytes.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"

#define TCP_PORT 80
#define UDP_PORT_A 5000
#define UDP_PORT_B 7
#define QUEUE_FRAMES_MAX 1024
#define HOLDS_MAX 4
#define ITERATIONS_MAX 200000
/* After the input runs out, how long a perfect path has to finish. */
#define SESSION_GRACE_NS (2 * 3600 * FUZZ_NS_PER_SECOND)
#define FRAME_BUFFER_SIZE (65535 + 18)
/* The longest retransmission timeout (120 s) and some. */
#define SESSION_TIMEOUT_SLACK_NS (130 * FUZZ_NS_PER_SECOND)

static const size_t datagram_lengths[] = {3000, 100, 1473, 4, 8000, 1472};
#define DATAGRAM_LENGTH_COUNT (sizeof(datagram_lengths) / sizeof(datagram_lengths[0]))

struct endpoint {
    char name;
    struct usock_stack *stack;
    struct usock_link *far_end;  /* the harness's end of this stack's wire */
    int listener;                /* B only */
    int connection;              /* -1 until connected (or accepted) */
    int datagram_socket;
    size_t to_send;
    size_t sent;
    size_t received;
    bool connected;              /* the handshake finished (or failed) */
    bool shut_down;
    bool end_of_stream;          /* read 0: the peer's FIN, after all its bytes */
    bool failed;                 /* the connection reported an error */
    int error;                   /* SO_ERROR when it did, if known */
    uint64_t failed_at;          /* when the error was seen (by poll) */
    uint64_t last_frame_at;      /* when this stack last sent a TCP segment other than a RST */
    bool closed;
};

struct queued_frame {
    uint8_t *bytes;
    size_t length;
    struct endpoint *destination;
    unsigned holds;
};

struct session {
    struct fuzz_clock clock;
    struct endpoint a, b;
    struct queued_frame queue[QUEUE_FRAMES_MAX];
    size_t queue_head, queue_count;
    uint8_t options;
    unsigned datagrams;
    uint8_t *frame_buffer;
};

/* Byte offset of the stream side sends (not periodic below 2^24 bytes, so a
 * byte delivered at the wrong offset shows). */
static uint8_t stream_byte(char side, size_t offset)
{
    return (uint8_t)(offset ^ (offset >> 8) * 7 ^ (offset >> 16) * 13 ^ (size_t)side * 0x5a);
}

static void datagram_fill(uint8_t *datagram, unsigned index, char side)
{
    size_t length = datagram_lengths[index % DATAGRAM_LENGTH_COUNT];
    memcpy(datagram, &index, 4);
    for (size_t i = 4; i < length; i++)
        datagram[i] = stream_byte(side, i + index);
}

static void session_fail(const char *what, const struct endpoint *endpoint, size_t offset)
{
    fprintf(stderr, "fuzz_session: %s (stack %c, offset %zu)\n", what, endpoint->name, offset);
    abort();
}

static struct sockaddr_in endpoint_address(const char *address, uint16_t port)
{
    struct sockaddr_in endpoint = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, address, &endpoint.sin_addr);
    return endpoint;
}

static void set_integer(struct usock_stack *stack, int fd, int level, int name, int value)
{
    usock_setsockopt(stack, fd, level, name, &value, sizeof(value));
}

static int endpoint_init(struct session *session, struct endpoint *endpoint, char name,
                         const char *address, const uint8_t mac[6], uint64_t seed)
{
    struct usock_link *near_end;
    endpoint->name = name;
    endpoint->listener = endpoint->connection = endpoint->datagram_socket = -1;
    if (usock_link_mem_pair(&near_end, &endpoint->far_end) != 0)
        return -1;
    struct usock_stack_config config;
    fuzz_stack_config(&config, near_end, address, mac, seed, &session->clock);
    endpoint->stack = usock_stack_new(&config);
    if (!endpoint->stack)
        return -1;
    endpoint->datagram_socket = usock_socket(endpoint->stack, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in local =
        endpoint_address("0.0.0.0", name == 'A' ? UDP_PORT_A : UDP_PORT_B);
    return usock_bind(endpoint->stack, endpoint->datagram_socket, (struct sockaddr *)&local,
                      sizeof(local));
}

static int session_start(struct session *session, struct fuzz_input *input)
{
    session->clock.now = 1000 * FUZZ_NS_PER_SECOND;
    session->a.to_send = fuzz_input_u16(input) % (SESSION_STREAM_MAX + 1);
    session->b.to_send = fuzz_input_u16(input) % (SESSION_STREAM_MAX + 1);
    session->options = fuzz_input_byte(input);
    session->datagrams = session->options >> SESSION_DATAGRAMS_SHIFT;
    session->frame_buffer = malloc(FRAME_BUFFER_SIZE);
    if (!session->frame_buffer ||
        endpoint_init(session, &session->a, 'A', FUZZ_PEER_ADDRESS, fuzz_peer_mac, 1) != 0 ||
        endpoint_init(session, &session->b, 'B', FUZZ_TARGET_ADDRESS, fuzz_target_mac, 2) != 0)
        return -1;
    struct endpoint *a = &session->a, *b = &session->b;
    b->listener = usock_socket(b->stack, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in listen_address = endpoint_address("0.0.0.0", TCP_PORT);
    if (session->options & SESSION_OPTION_SMALL_BUFFERS)
        set_integer(b->stack, b->listener, SOL_SOCKET, SO_RCVBUF, 2048);
    if (usock_bind(b->stack, b->listener, (struct sockaddr *)&listen_address,
                   sizeof(listen_address)) != 0 ||
        usock_listen(b->stack, b->listener, 4) != 0)
        return -1;
    a->connection = usock_socket(a->stack, AF_INET, SOCK_STREAM, 0);
    if (session->options & SESSION_OPTION_RENO)
        usock_setsockopt(a->stack, a->connection, IPPROTO_TCP, TCP_CONGESTION, "reno", 4);
    if (session->options & SESSION_OPTION_SMALL_BUFFERS)
        set_integer(a->stack, a->connection, SOL_SOCKET, SO_SNDBUF, 4096);
    if (session->options & SESSION_OPTION_SMALL_SEGMENTS)
        set_integer(a->stack, a->connection, IPPROTO_TCP, TCP_MAXSEG, 536);
    if (session->options & SESSION_OPTION_NO_DELAY)
        set_integer(a->stack, a->connection, IPPROTO_TCP, TCP_NODELAY, 1);
    struct sockaddr_in server = endpoint_address(FUZZ_TARGET_ADDRESS, TCP_PORT);
    if (usock_connect(a->stack, a->connection, (struct sockaddr *)&server, sizeof(server)) != -1 ||
        errno != EINPROGRESS)
        return -1;
    struct sockaddr_in echo = endpoint_address(FUZZ_TARGET_ADDRESS, UDP_PORT_B);
    uint8_t datagram[8000];
    for (unsigned i = 0; i < session->datagrams; i++) {
        datagram_fill(datagram, i, 'A');
        usock_sendto(a->stack, a->datagram_socket, datagram,
                     datagram_lengths[i % DATAGRAM_LENGTH_COUNT], 0, (struct sockaddr *)&echo,
                     sizeof(echo));
    }
    return 0;
}

static void session_free(struct session *session)
{
    for (size_t i = 0; i < session->queue_count; i++)
        free(session->queue[(session->queue_head + i) % QUEUE_FRAMES_MAX].bytes);
    usock_stack_free(session->a.stack);
    usock_stack_free(session->b.stack);
    if (session->a.far_end)
        usock_link_close(session->a.far_end);
    if (session->b.far_end)
        usock_link_close(session->b.far_end);
    free(session->frame_buffer);
}

/* ---- the programs on A and B ------------------------------------------- */

static void endpoint_fail(const struct session *session, struct endpoint *endpoint, int error)
{
    endpoint->failed = true;
    endpoint->error = error;
    endpoint->failed_at = session->clock.now;
}

static void endpoint_write(const struct session *session, struct endpoint *endpoint)
{
    uint8_t chunk[4096];
    while (endpoint->sent < endpoint->to_send) {
        size_t length = endpoint->to_send - endpoint->sent;
        if (length > sizeof(chunk))
            length = sizeof(chunk);
        for (size_t i = 0; i < length; i++)
            chunk[i] = stream_byte(endpoint->name, endpoint->sent + i);
        ssize_t sent = usock_send(endpoint->stack, endpoint->connection, chunk, length,
                                  MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent <= 0) {
            if (sent < 0 && errno != EAGAIN)
                endpoint_fail(session, endpoint, errno);
            return;
        }
        endpoint->sent += (size_t)sent;
    }
    if (!endpoint->shut_down) {
        endpoint->shut_down = true;
        usock_shutdown(endpoint->stack, endpoint->connection, SHUT_WR);
        if (endpoint->name == 'A' && (session->options & SESSION_OPTION_A_CLOSES) &&
            session->b.to_send == 0) {
            /* Nothing is coming back, so A may close and let its stack
             * finish the connection as an orphan. */
            usock_close(endpoint->stack, endpoint->connection);
            endpoint->connection = -1;
            endpoint->closed = true;
        }
    }
}

static void endpoint_read(const struct session *session, struct endpoint *endpoint,
                          const struct endpoint *peer)
{
    uint8_t chunk[8192];
    while (!endpoint->end_of_stream) {
        ssize_t got = usock_recv(endpoint->stack, endpoint->connection, chunk, sizeof(chunk),
                                 MSG_DONTWAIT);
        if (got < 0) {
            if (errno != EAGAIN)
                endpoint_fail(session, endpoint, errno);
            return;
        }
        if (got == 0) {
            if (endpoint->received != peer->to_send)
                session_fail("the stream ended before all bytes sent arrived", endpoint,
                             endpoint->received);
            endpoint->end_of_stream = true;
            return;
        }
        for (ssize_t i = 0; i < got; i++)
            if (chunk[i] != stream_byte(peer->name, endpoint->received + (size_t)i))
                session_fail("a stream byte differs from the byte sent", endpoint,
                             endpoint->received + (size_t)i);
        endpoint->received += (size_t)got;
        if (endpoint->received > peer->to_send)
            session_fail("more stream bytes arrived than were sent", endpoint,
                         endpoint->received);
    }
}

/* Reads every datagram waiting; each must be one the other side sent.  B
 * echoes what it gets back to A. */
static void endpoint_read_datagrams(struct session *session, struct endpoint *endpoint)
{
    uint8_t datagram[9000];
    for (;;) {
        struct sockaddr_in from;
        socklen_t from_length = sizeof(from);
        ssize_t got = usock_recvfrom(endpoint->stack, endpoint->datagram_socket, datagram,
                                     sizeof(datagram), MSG_DONTWAIT, (struct sockaddr *)&from,
                                     &from_length);
        if (got < 0)
            return;
        unsigned index;
        uint8_t expected[8000];
        if (got < 4)
            session_fail("a datagram shorter than any sent", endpoint, (size_t)got);
        memcpy(&index, datagram, 4);
        if (index >= session->datagrams ||
            (size_t)got != datagram_lengths[index % DATAGRAM_LENGTH_COUNT])
            session_fail("a datagram that was never sent", endpoint, (size_t)got);
        datagram_fill(expected, index, 'A');
        if (memcmp(datagram, expected, (size_t)got) != 0)
            session_fail("a datagram's bytes differ from those sent", endpoint, (size_t)got);
        if (endpoint->name == 'B')
            usock_sendto(endpoint->stack, endpoint->datagram_socket, datagram, (size_t)got, 0,
                         (struct sockaddr *)&from, from_length);
    }
}

static void endpoint_run(struct session *session, struct endpoint *endpoint,
                         const struct endpoint *peer)
{
    if (endpoint->connection < 0 && endpoint->listener >= 0 && !endpoint->closed) {
        endpoint->connection = usock_accept(endpoint->stack, endpoint->listener, NULL, NULL);
        if (endpoint->connection >= 0 && (session->options & SESSION_OPTION_NO_DELAY))
            set_integer(endpoint->stack, endpoint->connection, IPPROTO_TCP, TCP_NODELAY, 1);
    }
    if (endpoint->connection >= 0 && !endpoint->connected) {
        /* Writing (and shutting down) waits for the handshake, as a
         * program waiting for a nonblocking connect() does. */
        struct pollfd polled = {.fd = endpoint->connection, .events = POLLOUT};
        if (usock_poll(endpoint->stack, &polled, 1, 0) == 1) {
            int error = 0;
            socklen_t length = sizeof(error);
            usock_getsockopt(endpoint->stack, endpoint->connection, SOL_SOCKET, SO_ERROR, &error,
                             &length);
            endpoint->connected = true;
            endpoint->failed = error != 0 || (polled.revents & (POLLERR | POLLHUP));
            endpoint->error = error;
        }
    }
    if (endpoint->connection >= 0 && endpoint->connected && !endpoint->failed) {
        /* An error after the last read and write (a timeout, a reset)
         * shows only here. */
        struct pollfd polled = {.fd = endpoint->connection, .events = 0};
        if (usock_poll(endpoint->stack, &polled, 1, 0) == 1 && (polled.revents & POLLERR)) {
            socklen_t length = sizeof(endpoint->error);
            usock_getsockopt(endpoint->stack, endpoint->connection, SOL_SOCKET, SO_ERROR,
                             &endpoint->error, &length);
            endpoint_fail(session, endpoint, endpoint->error);
            return;
        }
        endpoint_write(session, endpoint);
        if (endpoint->connection >= 0 && !endpoint->failed)
            endpoint_read(session, endpoint, peer);
    }
    endpoint_read_datagrams(session, endpoint);
}

static bool session_complete(const struct session *session)
{
    const struct endpoint *a = &session->a, *b = &session->b;
    bool a_done = a->closed || a->end_of_stream;
    return a_done && b->end_of_stream && a->shut_down && b->shut_down;
}

/* Whether a stack still holds a TCP connection (any state but LISTEN). */
static bool stack_holds_connection(struct usock_stack *stack)
{
    struct usock_socket_info rows[16];
    size_t count = usock_stack_sockets(stack, rows, 16);
    for (size_t i = 0; i < count && i < 16; i++)
        if (rows[i].type == SOCK_STREAM && !rows[i].listening)
            return true;
    return false;
}

/* An end saw an error, or A's connection is gone while the transfer is
 * unfinished: A closed its descriptor once everything was written, and
 * the connection died after (B gave up waiting for the handshake's ACK and
 * reset it; or A's retransmissions timed out and its reset was lost, so B
 * waits in FIN-WAIT-2 for data that cannot come, as Linux's would without
 * keepalive).  No program can be told of it: a closed descriptor hears no
 * error. */
static bool session_failed(const struct session *session)
{
    if (session->a.failed || session->b.failed)
        return true;
    return session->a.closed && !stack_holds_connection(session->a.stack) &&
           !session->b.end_of_stream;
}

/* ---- the path ---------------------------------------------------------- */

static void queue_push(struct session *session, const uint8_t *frame, size_t length,
                       struct endpoint *destination, unsigned holds)
{
    if (session->queue_count == QUEUE_FRAMES_MAX)
        return; /* a full path drops */
    uint8_t *copy = malloc(length);
    if (!copy)
        abort();
    memcpy(copy, frame, length);
    size_t slot = (session->queue_head + session->queue_count++) % QUEUE_FRAMES_MAX;
    session->queue[slot] = (struct queued_frame){copy, length, destination, holds};
}

/* A TCP segment other than a RST: what a connection sends while alive. */
static bool frame_is_live_segment(const uint8_t *frame, size_t length)
{
    const uint8_t *ip = frame + ETHERNET_HEADER_LENGTH;
    if (length < ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH || frame[12] != 0x08 ||
        frame[13] != 0x00 || ip[9] != IPPROTO_TCP)
        return false;
    size_t tcp = ETHERNET_HEADER_LENGTH + (size_t)(ip[0] & 0x0f) * 4;
    return length > tcp + 13 && !(frame[tcp + 13] & 0x04);
}

/* Takes what each stack sent off its wire and queues it for the other. */
static void session_collect(struct session *session)
{
    struct endpoint *ends[2] = {&session->a, &session->b};
    for (int side = 0; side < 2; side++) {
        for (;;) {
            ssize_t length = usock_link_receive(ends[side]->far_end, session->frame_buffer,
                                                FRAME_BUFFER_SIZE, session->clock.now);
            if (length <= 0)
                break;
            fuzz_check_sent_frame(session->frame_buffer, (size_t)length);
            if (frame_is_live_segment(session->frame_buffer, (size_t)length))
                ends[side]->last_frame_at = session->clock.now;
            queue_push(session, session->frame_buffer, (size_t)length, ends[1 - side], 0);
        }
    }
}

static void deliver(struct session *session, const struct queued_frame *frame)
{
    usock_link_send(frame->destination->far_end, frame->bytes, frame->length,
                    session->clock.now);
}

/* How much of a frame a mutation may touch: all of it, but for an IP
 * fragment only its headers.  One changed byte in a frame is always caught
 * by a checksum; but a UDP checksum spans every fragment of its datagram,
 * and the same change in two fragments (-x at one offset, +x at the same
 * offset in the next) cancels out, so the datagram arrives corrupt with a
 * good checksum: a weakness of the Internet checksum, not of the stack. */
static size_t mutable_length(const struct queued_frame *frame)
{
    const uint8_t *ip = frame->bytes + ETHERNET_HEADER_LENGTH;
    if (frame->length < ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH ||
        frame->bytes[12] != 0x08 || frame->bytes[13] != 0x00)
        return frame->length;
    bool fragment = (load_be16(ip + 6) & 0x3fff) != 0; /* MF or an offset */
    return fragment ? ETHERNET_HEADER_LENGTH + (size_t)(ip[0] & 0x0f) * 4 : frame->length;
}

/* Moves the first queued frame along as the input says. */
static void session_carry_one(struct session *session, struct fuzz_input *input)
{
    struct queued_frame frame = session->queue[session->queue_head];
    session->queue_head = (session->queue_head + 1) % QUEUE_FRAMES_MAX;
    session->queue_count--;
    enum session_action action = fuzz_input_empty(input)
                                     ? SESSION_DELIVER
                                     : fuzz_input_byte(input) % SESSION_ACTION_COUNT;
    switch (action) {
    case SESSION_DROP:
        break;
    case SESSION_DUPLICATE:
        deliver(session, &frame);
        deliver(session, &frame);
        break;
    case SESSION_HOLD:
        if (frame.holds < HOLDS_MAX && session->queue_count > 0) {
            queue_push(session, frame.bytes, frame.length, frame.destination, frame.holds + 1);
            break;
        }
        deliver(session, &frame);
        break;
    case SESSION_MUTATE: {
        uint16_t offset = fuzz_input_u16(input);
        uint8_t flip = fuzz_input_byte(input);
        frame.bytes[offset % mutable_length(&frame)] ^= flip ? flip : 1;
        deliver(session, &frame);
        break;
    }
    case SESSION_DELAY:
        session->clock.now += fuzz_input_byte(input) * FUZZ_NS_PER_MS;
        deliver(session, &frame);
        break;
    default:
        deliver(session, &frame);
        break;
    }
    free(frame.bytes);
}

static uint64_t session_poll(struct session *session)
{
    uint64_t a = usock_stack_poll(session->a.stack, session->clock.now);
    uint64_t b = usock_stack_poll(session->b.stack, session->clock.now);
    return a < b ? a : b;
}

/* Prints every counter either stack has moved, side by side. */
static void session_print_counters(const struct session *session)
{
    for (size_t i = 0; i < usock_stack_counter_count(); i++) {
        uint64_t a = usock_stack_counter_value(session->a.stack, i);
        uint64_t b = usock_stack_counter_value(session->b.stack, i);
        if (a || b)
            fprintf(stderr, "  %-28s A %10llu  B %10llu\n", usock_stack_counter_name(i),
                    (unsigned long long)a, (unsigned long long)b);
    }
}

static void session_report_stall(const struct session *session, const char *how)
{
    fprintf(stderr,
            "fuzz_session: %s: A sent %zu/%zu received %zu/%zu, B sent %zu/%zu received "
            "%zu/%zu\n",
            how, session->a.sent, session->a.to_send, session->a.received, session->b.to_send,
            session->b.sent, session->b.to_send, session->b.received, session->a.to_send);
    const struct endpoint *ends[2] = {&session->a, &session->b};
    for (int side = 0; side < 2; side++) {
        struct usock_socket_info rows[8];
        size_t count = usock_stack_sockets(ends[side]->stack, rows, 8);
        for (size_t i = 0; i < count && i < 8; i++)
            fprintf(stderr, "  %c: fd %d %s send-q %zu recv-q %zu %s\n", ends[side]->name,
                    rows[i].fd, rows[i].state, rows[i].send_queue, rows[i].receive_queue,
                    rows[i].details);
    }
    session_print_counters(session);
    abort();
}

/* A connection times out only after retransmitting at every timeout, so
 * the last frame before the timeout's RST is at most one (the longest)
 * retransmission timeout old; and after the input ran out, only the first
 * timeout since may end it (later, every segment arrives and is answered). */
static void session_check_timeout(const struct session *session, const struct endpoint *endpoint,
                                  uint64_t input_ran_out_at)
{
    if (endpoint->error != ETIMEDOUT)
        return;
    if (endpoint->failed_at > endpoint->last_frame_at + SESSION_TIMEOUT_SLACK_NS)
        session_report_stall(session, "timed out without retransmitting");
    if (input_ran_out_at != USOCK_NEVER &&
        endpoint->failed_at > input_ran_out_at + SESSION_TIMEOUT_SLACK_NS)
        session_report_stall(session, "timed out on a perfect path");
}

static void session_run(struct session *session, struct fuzz_input *input)
{
    uint64_t input_ran_out_at = fuzz_input_empty(input) ? session->clock.now : USOCK_NEVER;
    for (int iteration = 0; iteration < ITERATIONS_MAX; iteration++) {
        endpoint_run(session, &session->a, &session->b);
        endpoint_run(session, &session->b, &session->a);
        uint64_t deadline = session_poll(session);
        session_collect(session);
        if (session->queue_count > 0) {
            /* Everything in flight now, in order; what is held back goes
             * behind it, to the next round. */
            for (size_t in_flight = session->queue_count; in_flight > 0; in_flight--)
                session_carry_one(session, input);
            if (session->options & SESSION_OPTION_LATENCY)
                session->clock.now += FUZZ_NS_PER_MS;
            if (input_ran_out_at == USOCK_NEVER && fuzz_input_empty(input))
                input_ran_out_at = session->clock.now;
            continue;
        }
        if (deadline <= session->clock.now)
            continue;
        /* The poll may just have ended the connection: let the programs
         * see it before judging. */
        endpoint_run(session, &session->a, &session->b);
        endpoint_run(session, &session->b, &session->a);
        if (session_complete(session))
            return;
        if (session_failed(session)) {
            session_check_timeout(session, &session->a, input_ran_out_at);
            session_check_timeout(session, &session->b, input_ran_out_at);
            return;
        }
        deadline = session_poll(session);
        if (deadline <= session->clock.now)
            continue;
        session_collect(session);
        if (session->queue_count > 0)
            continue;
        /* Nothing in flight, the transfer unfinished: TCP must have a
         * timer running (retransmission, persist), whatever the path did. */
        if (deadline == USOCK_NEVER)
            session_report_stall(session, "nothing in flight and no timer running");
        if (input_ran_out_at != USOCK_NEVER && deadline > input_ran_out_at + SESSION_GRACE_NS)
            session_report_stall(session, "no progress on a perfect path");
        session->clock.now = deadline;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input input = {.data = data, .size = size};
    struct session *session = calloc(1, sizeof(*session));
    if (!session)
        abort();
    if (session_start(session, &input) != 0)
        abort(); /* the same every time: the harness or the stack broke */
    session_run(session, &input);
    if (getenv("FUZZ_SESSION_VERBOSE"))
        fprintf(stderr,
                "fuzz_session: %s at %.3f s: A received %zu/%zu, B received %zu/%zu, errors "
                "%d %d\n",
                session_complete(session) ? "complete"
                : session_failed(session) ? "failed"
                                          : "unfinished",
                (double)(session->clock.now - 1000 * FUZZ_NS_PER_SECOND) / 1e9,
                session->a.received, session->b.to_send, session->b.received,
                session->a.to_send, session->a.error, session->b.error);
    if (getenv("FUZZ_SESSION_VERBOSE")) {
        session_print_counters(session);
    }
    session_free(session);
    free(session);
    return 0;
}
