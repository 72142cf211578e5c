/*
 * test_bug_classes.c - regression tests for the bug classes that broke
 * embedded TCP/IP stacks (AMNESIA:33, Ripple20, URGENT/11, NAME:WRECK,
 * NUMBER:JACK): bad urgent pointers, malformed TCP and IPv4 headers and
 * options, hostile fragments, truncated ICMP and ICMP about nothing,
 * predictable ISNs, ports and IP IDs, and resource exhaustion (SACK storm,
 * out-of-order flood, SYN flood).
 *
 * How: the test plays the peer on a callback link (bug_classes_frames.h).
 * It drives the stack into the state each attack needs (a listener, an
 * ESTABLISHED connection it answered the SYN-ACK of by hand, data in
 * flight, fragments pending), injects the crafted frames, and asserts that
 * each is dropped with its named counter, or accepted with the bad field
 * ignored and the data intact.  Every test ends by checking that the stack
 * still answers a ping, a UDP datagram and a TCP exchange byte for byte;
 * the ASan+UBSan build catches out-of-bounds access and leaks.
 */
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

#include "bug_classes_frames.h"
#include "tcp/tcp_sequence.h"
#include "util/random.h"

/* ---- the peer's side of a TCP connection ---- */

struct flow {
    uint16_t peer_port;
    uint32_t seq;  /* the peer's next sequence number */
    uint32_t ack;  /* the stack's next sequence number, as the peer acknowledges it */
    int fd;        /* the accepted socket */
    struct seen_segment syn_ack;
};

static size_t standard_syn_options(uint8_t *options, bool sack)
{
    size_t length = option_mss(options, 1460);
    length += option_window_scale(options + length, 7);
    if (sack)
        length += option_sack_permitted(options + length);
    return length;
}

/* Sends a SYN (flags added to it, urgent pointer as given) with options
 * to the listener on port 80, answers the SYN-ACK and accepts. */
static void flow_open_with(struct harness *h, struct flow *flow, uint16_t peer_port, uint32_t iss,
                           const uint8_t *options, size_t options_length, uint8_t extra_flags,
                           uint16_t urgent)
{
    size_t mark = h->segment_count;
    struct segment_spec syn = {.source_port = peer_port, .sequence = iss,
                               .flags = TCP_FLAG_SYN | extra_flags, .window = 65535,
                               .urgent = urgent, .options = options,
                               .options_length = options_length};
    send_segment(h, &syn);
    const struct seen_segment *syn_ack =
        last_segment_to(h, peer_port, TCP_FLAG_SYN | TCP_FLAG_ACK, mark);
    CHECK(syn_ack != NULL);
    CHECK_EQ(syn_ack->acknowledgment, iss + 1);
    flow->syn_ack = *syn_ack;
    flow->peer_port = peer_port;
    flow->seq = iss + 1;
    flow->ack = syn_ack->sequence + 1;
    struct segment_spec ack = {.source_port = peer_port, .sequence = flow->seq,
                               .acknowledgment = flow->ack, .flags = TCP_FLAG_ACK,
                               .window = 65535};
    send_segment(h, &ack);
    flow->fd = usock_accept(h->stack, h->listener, NULL, NULL);
    CHECK(flow->fd >= 0);
}

static void flow_open(struct harness *h, struct flow *flow, bool sack)
{
    uint8_t options[16];
    size_t length = standard_syn_options(options, sack);
    flow_open_with(h, flow, h->next_peer_port++, 0x10000000u, options, length, 0, 0);
}

/* Sends data from the peer at its next sequence number. */
static void flow_send(struct harness *h, struct flow *flow, const void *data, size_t length,
                      uint8_t extra_flags, uint16_t urgent)
{
    struct segment_spec spec = {.source_port = flow->peer_port, .sequence = flow->seq,
                                .acknowledgment = flow->ack,
                                .flags = TCP_FLAG_ACK | TCP_FLAG_PSH | extra_flags,
                                .window = 65535, .urgent = urgent, .data = data,
                                .data_length = length};
    send_segment(h, &spec);
    flow->seq += (uint32_t)length;
}

/* Reads exactly length bytes from fd (normal data) and compares them. */
static void read_exactly(struct harness *h, int fd, const uint8_t *expected, size_t length)
{
    uint8_t *buffer = malloc(length + 1);
    CHECK(buffer != NULL);
    size_t got = 0;
    for (int tries = 0; got < length && tries < 100000; tries++) {
        ssize_t n = usock_recv(h->stack, fd, buffer + got, length - got, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    CHECK_EQ(got, length);
    CHECK(memcmp(buffer, expected, length) == 0);
    /* Nothing more than that. */
    CHECK_ERRNO(usock_recv(h->stack, fd, buffer, 1, MSG_DONTWAIT), EAGAIN);
    free(buffer);
}

static void fill_pattern(uint8_t *data, size_t length, uint32_t salt)
{
    for (size_t i = 0; i < length; i++)
        data[i] = (uint8_t)((i * 131 + salt * 7 + (i >> 8)) & 0xff);
}

/* The peer acknowledges what it holds in order, each time that grows,
 * letting time pass (so retransmissions come) while it does not, until
 * total bytes are there or rounds run out; then checks them byte for byte
 * against data.  usock_send of what is left of data goes on meanwhile. */
static void acknowledge_until_complete(struct harness *h, struct flow *flow, const uint8_t *data,
                                       size_t total, size_t written)
{
    size_t acked = 0;
    for (int round = 0; round < 20000 && acked < total; round++) {
        if (written < total) {
            ssize_t n = usock_send(h->stack, flow->fd, data + written, total - written,
                                   MSG_DONTWAIT);
            if (n > 0)
                written += (size_t)n;
            usock_stack_poll(h->stack, h->now);
        }
        size_t prefix = tracker_prefix(h);
        if (prefix > acked) {
            acked = prefix;
            struct segment_spec ack = {.source_port = flow->peer_port, .sequence = flow->seq,
                                       .acknowledgment = flow->ack + (uint32_t)acked,
                                       .flags = TCP_FLAG_ACK, .window = 65535};
            send_segment(h, &ack);
            advance(h, MS);
        } else {
            advance(h, 50 * MS);
        }
    }
    CHECK_EQ(acked, total);
    CHECK(memcmp(h->track.data, data, total) == 0);
    CHECK(h->track.data_segments > 0);
    flow->ack += (uint32_t)total;
}

/* The stack sends length bytes on flow and the peer takes them all, intact;
 * max_segment (0: no check) bounds every data segment seen. */
static void pull_from_stack(struct harness *h, struct flow *flow, const uint8_t *data, size_t length,
                            size_t max_segment)
{
    tracker_start(h, flow->peer_port, flow->ack, length);
    acknowledge_until_complete(h, flow, data, length, 0);
    if (max_segment)
        CHECK(h->track.largest_segment <= max_segment);
    h->track.port = 0;
}

static struct tcp_connection *connection_of(struct harness *h, uint16_t peer_port)
{
    for (struct tcp_connection *tcb = h->stack->tcp.all; tcb; tcb = tcb->all_next)
        if (tcb->state != TCPS_LISTEN && tcb->socket && tcb->socket->peer_port == peer_port)
            return tcb;
    return NULL;
}

static size_t connection_count(struct harness *h)
{
    size_t count = 0;
    for (struct tcp_connection *tcb = h->stack->tcp.all; tcb; tcb = tcb->all_next)
        count++;
    return count;
}

static struct tcp_info tcp_info_of(struct harness *h, int fd)
{
    struct tcp_info info;
    socklen_t length = sizeof(info);
    memset(&info, 0, sizeof(info));
    CHECK_EQ(usock_getsockopt(h->stack, fd, IPPROTO_TCP, TCP_INFO, &info, &length), 0);
    return info;
}

/* ---- the stack still serves ---- */

static size_t build_echo_request(uint8_t *frame, uint32_t rest, size_t data_length)
{
    uint8_t message[8 + 64];
    memset(message + 8, 0xab, data_length);
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = rest};
    icmp_emit(&request, message, data_length);
    struct datagram_spec ip = {.protocol = IPPROTO_ICMP, .identification = 9};
    return build_datagram(frame, &ip, message, 8 + data_length);
}

static void check_ping_answered(struct harness *h)
{
    uint8_t frame[FRAME_MAX];
    h->echo_rest = 0xbeef0000u | (uint32_t)(h->frames_out & 0xffff);
    size_t before = h->echo_replies;
    inject(h, frame, build_echo_request(frame, h->echo_rest, 56));
    CHECK_EQ(h->echo_replies, before + 1);
}

static void check_udp_served(struct harness *h)
{
    uint8_t payload[64], frame[FRAME_MAX];
    static const char text[] = "still serving";
    size_t length = build_udp_payload(payload, ip_of(PEER_ADDRESS), 4000, 7, text, sizeof(text));
    struct datagram_spec ip = {.protocol = IPPROTO_UDP, .identification = 11};
    inject(h, frame, build_datagram(frame, &ip, payload, length));
    char buffer[64];
    struct sockaddr_in from;
    socklen_t from_length = sizeof(from);
    CHECK_EQ(usock_recvfrom(h->stack, h->udp_fd, buffer, sizeof(buffer), MSG_DONTWAIT,
                            (struct sockaddr *)&from, &from_length),
             sizeof(text));
    CHECK(memcmp(buffer, text, sizeof(text)) == 0);
    size_t before = h->udp_to_peer;
    CHECK_EQ(usock_sendto(h->stack, h->udp_fd, buffer, sizeof(text), 0,
                          (struct sockaddr *)&from, from_length),
             sizeof(text));
    usock_stack_poll(h->stack, h->now);
    CHECK_EQ(h->udp_to_peer, before + 1);
}

static void check_tcp_served(struct harness *h)
{
    struct flow flow;
    flow_open(h, &flow, true);
    uint8_t request[300], reply[5000];
    fill_pattern(request, sizeof(request), 1);
    fill_pattern(reply, sizeof(reply), 2);
    flow_send(h, &flow, request, sizeof(request), 0, 0);
    read_exactly(h, flow.fd, request, sizeof(request));
    pull_from_stack(h, &flow, reply, sizeof(reply), 1460);
    CHECK_EQ(usock_close(h->stack, flow.fd), 0);
}

static void check_still_serves(struct harness *h)
{
    check_ping_answered(h);
    check_udp_served(h);
    check_tcp_served(h);
}

/* ---- TCP urgent pointer ---- */

static void set_oob_inline(struct harness *h, int fd)
{
    int on = 1;
    CHECK_EQ(usock_setsockopt(h->stack, fd, SOL_SOCKET, SO_OOBINLINE, &on, sizeof(on)), 0);
}

/* URG with a zero pointer (with and without data) and pointers past the
 * segment's end: as Linux (tcp_check_urg), 0 names the segment's first
 * byte and a pointer past the end waits for its byte; nothing is read
 * through the pointer, and the stream read inline is the stream sent. */
static void test_urgent_pointer_zero_or_past_segment_keeps_stream_intact(void)
{
    struct harness *h = harness_new(1);
    struct flow flow;
    flow_open(h, &flow, true);
    set_oob_inline(h, flow.fd);
    uint8_t data[3000];
    fill_pattern(data, sizeof(data), 3);
    flow_send(h, &flow, data, 100, TCP_FLAG_URG, 0);          /* zero, with data */
    flow_send(h, &flow, data + 100, 0, TCP_FLAG_URG, 0);      /* zero, no data */
    flow_send(h, &flow, data + 100, 100, TCP_FLAG_URG, 1000); /* past the segment */
    flow_send(h, &flow, data + 200, 10, TCP_FLAG_URG, 0xffff);
    flow_send(h, &flow, data + 210, 1, TCP_FLAG_URG, 2);      /* one past a 1-byte segment */
    for (size_t offset = 211; offset < sizeof(data); offset += 500) {
        size_t length = sizeof(data) - offset < 500 ? sizeof(data) - offset : 500;
        flow_send(h, &flow, data + offset, length, 0, 0);
    }
    read_exactly(h, flow.fd, data, sizeof(data));
    CHECK_EQ(connection_of(h, flow.peer_port)->state, TCPS_ESTABLISHED);
    check_still_serves(h);
    harness_free(h);
}

/* A pointer beyond anything the window could bring (a connection without
 * window scaling, an in-window segment past a hole pointing 65535 on) is
 * ignored and counted; the data around it is delivered intact and no
 * urgent byte appears. */
static void test_urgent_pointer_beyond_window_is_ignored_and_counted(void)
{
    struct harness *h = harness_new(2);
    struct flow flow;
    uint8_t options[4];
    flow_open_with(h, &flow, 30001, 5000, options, option_mss(options, 1460), 0, 0);
    CHECK_EQ(tcp_info_of(h, flow.fd).tcpi_rcv_wscale, 0);
    uint8_t data[400];
    fill_pattern(data, sizeof(data), 4);
    uint64_t ignored = counter(h, "TcpUrgentPointersIgnored");
    struct segment_spec ahead = {.source_port = flow.peer_port, .sequence = flow.seq + 200,
                                 .acknowledgment = flow.ack,
                                 .flags = TCP_FLAG_ACK | TCP_FLAG_URG, .window = 65535,
                                 .urgent = 0xffff, .data = data + 200, .data_length = 200};
    send_segment(h, &ahead);
    CHECK_EQ(counter(h, "TcpUrgentPointersIgnored"), ignored + 1);
    flow_send(h, &flow, data, 200, 0, 0);
    flow.seq += 200;
    read_exactly(h, flow.fd, data, sizeof(data));
    uint8_t byte;
    CHECK_ERRNO(usock_recv(h->stack, flow.fd, &byte, 1, MSG_OOB | MSG_DONTWAIT), EINVAL);
    check_still_serves(h);
    harness_free(h);
}

/* URG on a SYN (pointer 0xffff, and 1) means nothing: the handshake goes
 * on, no urgent byte is ever reported, the data is intact. */
static void test_urgent_flag_on_syn_is_ignored(void)
{
    struct harness *h = harness_new(3);
    uint16_t pointers[2] = {0xffff, 1};
    for (int i = 0; i < 2; i++) {
        struct flow flow;
        uint8_t options[16];
        size_t length = standard_syn_options(options, true);
        flow_open_with(h, &flow, (uint16_t)(30010 + i), 77777, options, length, TCP_FLAG_URG,
                       pointers[i]);
        uint8_t data[500];
        fill_pattern(data, sizeof(data), 5);
        flow_send(h, &flow, data, sizeof(data), 0, 0);
        read_exactly(h, flow.fd, data, sizeof(data));
        uint8_t byte;
        CHECK_ERRNO(usock_recv(h->stack, flow.fd, &byte, 1, MSG_OOB | MSG_DONTWAIT), EINVAL);
    }
    check_still_serves(h);
    harness_free(h);
}

/* Sequence numbers crossing 2^32: the pointer's byte (segment start + 299,
 * past the wrap) is the urgent byte; the normal stream is the rest, in
 * order; the pointer is not counted as bad. */
static void test_urgent_pointer_wrapping_past_2_32_marks_the_right_byte(void)
{
    struct harness *h = harness_new(4);
    struct flow flow;
    uint8_t options[16];
    size_t options_length = standard_syn_options(options, true);
    flow_open_with(h, &flow, 30020, 0xffffff00u, options, options_length, 0, 0);
    uint8_t data[512];
    fill_pattern(data, sizeof(data), 6);
    uint64_t ignored = counter(h, "TcpUrgentPointersIgnored");
    CHECK(flow.seq + 299 < flow.seq); /* the urgent byte lies past the wrap */
    flow_send(h, &flow, data, sizeof(data), TCP_FLAG_URG, 300);
    CHECK_EQ(counter(h, "TcpUrgentPointersIgnored"), ignored);
    uint8_t byte = 0;
    CHECK_EQ(usock_recv(h->stack, flow.fd, &byte, 1, MSG_OOB | MSG_DONTWAIT), 1);
    CHECK_EQ(byte, data[299]);
    uint8_t expected[511];
    memcpy(expected, data, 299);
    memcpy(expected + 299, data + 300, 212);
    read_exactly(h, flow.fd, expected, sizeof(expected));
    /* Past the mark the stream goes on intact. */
    flow_send(h, &flow, data, 100, 0, 0);
    read_exactly(h, flow.fd, data, 100);
    check_still_serves(h);
    harness_free(h);
}

/* ---- TCP header and options ---- */

/* Data offsets below 5 words, and beyond the segment's end: dropped,
 * TcpInBadHeaderLength; the data they carried never reaches the reader. */
static void test_tcp_bad_data_offset_is_dropped_and_counted(void)
{
    struct harness *h = harness_new(5);
    struct flow flow;
    flow_open(h, &flow, true);
    uint8_t junk[8] = "JUNKJUNK";
    uint64_t bad = counter(h, "TcpInBadHeaderLength");
    uint64_t errors = counter(h, "TcpInErrs");
    int offsets[] = {0, 1, 2, 3, 4, 8, 15};
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        /* 8 bytes of data: offsets 8 and 15 (32 and 60 bytes) run past
         * the 28-byte segment. */
        struct segment_spec spec = {.source_port = flow.peer_port, .sequence = flow.seq,
                                    .acknowledgment = flow.ack, .flags = TCP_FLAG_ACK,
                                    .window = 65535, .raw_data_offset = true,
                                    .data_offset_words = offsets[i], .data = junk,
                                    .data_length = sizeof(junk)};
        send_segment(h, &spec);
        CHECK_EQ(counter(h, "TcpInBadHeaderLength"), bad + i + 1);
    }
    CHECK_EQ(counter(h, "TcpInErrs"), errors + 7);
    /* SYNs with the same faults make no connection. */
    uint64_t opens = counter(h, "TcpPassiveOpens");
    for (int words = 0; words < 5; words++) {
        struct segment_spec syn = {.source_port = 30100, .sequence = 1, .flags = TCP_FLAG_SYN,
                                   .window = 65535, .raw_data_offset = true,
                                   .data_offset_words = words};
        send_segment(h, &syn);
    }
    struct segment_spec syn = {.source_port = 30100, .sequence = 1, .flags = TCP_FLAG_SYN,
                               .window = 65535, .raw_data_offset = true, .data_offset_words = 6};
    send_segment(h, &syn);
    CHECK_EQ(counter(h, "TcpPassiveOpens"), opens);
    CHECK_EQ(counter(h, "TcpInBadHeaderLength"), bad + 7 + 6);
    uint8_t data[600];
    fill_pattern(data, sizeof(data), 7);
    flow_send(h, &flow, data, sizeof(data), 0, 0);
    read_exactly(h, flow.fd, data, sizeof(data));
    check_still_serves(h);
    harness_free(h);
}

/* Option lists with a length of 0 or 1, or running past the header (also
 * a kind whose length byte is missing): dropped, TcpInBadOptions, on a SYN
 * and on an established connection. */
static void test_tcp_malformed_option_lists_are_dropped_and_counted(void)
{
    struct harness *h = harness_new(6);
    struct flow flow;
    flow_open(h, &flow, true);
    static const uint8_t bad_lists[][8] = {
        {TCP_OPTION_TIMESTAMPS, 0, 0, 0},                     /* length 0 */
        {TCP_OPTION_MSS, 1, 0, 0},                            /* length 1 */
        {TCP_OPTION_NOP, TCP_OPTION_NOP, TCP_OPTION_TIMESTAMPS, 10}, /* 10 bytes in 2 */
        {TCP_OPTION_SACK, 34, 0, 0, 0, 0, 0, 0},              /* 34 bytes in 8 */
        {TCP_OPTION_NOP, TCP_OPTION_NOP, TCP_OPTION_NOP, TCP_OPTION_MSS}, /* no length byte */
        {99, 255, 0, 0},                                      /* unknown kind, 255 */
    };
    static const size_t lengths[] = {4, 4, 4, 8, 4, 4};
    uint8_t junk[6] = "JUNK!!";
    uint64_t bad = counter(h, "TcpInBadOptions");
    uint64_t opens = counter(h, "TcpPassiveOpens");
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        struct segment_spec data = {.source_port = flow.peer_port, .sequence = flow.seq,
                                    .acknowledgment = flow.ack, .flags = TCP_FLAG_ACK,
                                    .window = 65535, .options = bad_lists[i],
                                    .options_length = lengths[i], .data = junk,
                                    .data_length = sizeof(junk)};
        send_segment(h, &data);
        struct segment_spec syn = {.source_port = 30200, .sequence = 1, .flags = TCP_FLAG_SYN,
                                   .window = 65535, .options = bad_lists[i],
                                   .options_length = lengths[i]};
        send_segment(h, &syn);
        CHECK_EQ(counter(h, "TcpInBadOptions"), bad + 2 * (i + 1));
    }
    CHECK_EQ(counter(h, "TcpPassiveOpens"), opens);
    uint8_t data[700];
    fill_pattern(data, sizeof(data), 8);
    flow_send(h, &flow, data, sizeof(data), 0, 0);
    read_exactly(h, flow.fd, data, sizeof(data));
    check_still_serves(h);
    harness_free(h);
}

/* An MSS option of length 3 or 6 is ignored (536 is used, RFC 9293
 * 3.7.1); an MSS of 0 likewise; an MSS of 1 gives the floor.  Whatever
 * is used, the stack sends non-empty segments no larger than it and the
 * data arrives intact (no division by zero, no endless empty segments). */
static void test_tcp_mss_option_bad_length_or_value_gives_a_usable_mss(void)
{
    struct harness *h = harness_new(7);
    struct {
        uint8_t options[8];
        size_t length;
        unsigned low, high; /* the sending MSS must fall in [low, high] */
    } cases[] = {
        {{TCP_OPTION_MSS, 3, 0x05, 0}, 4, 536, 536},
        {{TCP_OPTION_MSS, 6, 0x05, 0xb4, 0, 0, 0, 0}, 8, 536, 536},
        {{TCP_OPTION_MSS, 4, 0, 0}, 4, 536, 536},
        {{TCP_OPTION_MSS, 4, 0, 1}, 4, 48, 536},
    };
    uint8_t data[6000];
    fill_pattern(data, sizeof(data), 9);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct flow flow;
        flow_open_with(h, &flow, (uint16_t)(30300 + i), 1000, cases[i].options, cases[i].length,
                       0, 0);
        unsigned mss = tcp_info_of(h, flow.fd).tcpi_snd_mss;
        fprintf(stderr, "case %zu: sending MSS %u\n", i, mss);
        CHECK(mss >= cases[i].low && mss <= cases[i].high);
        pull_from_stack(h, &flow, data, sizeof(data), mss);
        CHECK_EQ(usock_close(h->stack, flow.fd), 0);
    }
    check_still_serves(h);
    harness_free(h);
}

/* SACK options whose length is not 2 + 8n (odd, 3, 2 + 7 ...) are ignored,
 * as Linux does: the segment (and its data) is taken, the scoreboard is not
 * touched, nothing is read past the option. */
static void test_tcp_odd_sack_block_lengths_are_ignored(void)
{
    struct harness *h = harness_new(8);
    struct flow flow;
    flow_open(h, &flow, true);
    uint8_t out[4000];
    fill_pattern(out, sizeof(out), 10);
    tracker_start(h, flow.peer_port, flow.ack, sizeof(out));
    CHECK_EQ(usock_send(h->stack, flow.fd, out, sizeof(out), MSG_DONTWAIT), sizeof(out));
    usock_stack_poll(h->stack, h->now);
    CHECK(h->track.highest > 1460);
    struct tcp_connection *tcb = connection_of(h, flow.peer_port);
    CHECK(tcb != NULL);
    uint8_t lengths[] = {3, 9, 11, 17, 33, 39, 5};
    uint64_t bad = counter(h, "TcpInBadOptions");
    uint8_t in[7 * 20];
    fill_pattern(in, sizeof(in), 11);
    for (size_t i = 0; i < sizeof(lengths); i++) {
        uint8_t options[40];
        memset(options, TCP_OPTION_NOP, sizeof(options));
        options[0] = TCP_OPTION_SACK;
        options[1] = lengths[i];
        /* Block-looking bytes that would SACK data in flight if read. */
        for (size_t b = 2; b + 8 <= lengths[i]; b += 8) {
            store_be32(options + b, flow.ack + 100);
            store_be32(options + b + 4, flow.ack + 1000);
        }
        size_t options_length = ((size_t)lengths[i] + 3) / 4 * 4;
        struct segment_spec spec = {.source_port = flow.peer_port, .sequence = flow.seq,
                                    .acknowledgment = flow.ack,
                                    .flags = TCP_FLAG_ACK | TCP_FLAG_PSH, .window = 65535,
                                    .options = options, .options_length = options_length,
                                    .data = in + 20 * i, .data_length = 20};
        send_segment(h, &spec);
        flow.seq += 20;
        CHECK(tcb->scoreboard == NULL || tcb->scoreboard->count == 0);
    }
    CHECK_EQ(counter(h, "TcpInBadOptions"), bad);
    read_exactly(h, flow.fd, in, sizeof(in));
    /* The data in flight still arrives whole. */
    acknowledge_until_complete(h, &flow, out, sizeof(out), sizeof(out));
    h->track.port = 0;
    check_still_serves(h);
    harness_free(h);
}

/* RFC 7323 2.3: a window scale above 14 is taken as 14. */
static void test_tcp_window_scale_above_14_is_clamped_to_14(void)
{
    struct harness *h = harness_new(9);
    uint8_t shifts[] = {14, 15, 16, 200, 255};
    uint8_t data[3000];
    fill_pattern(data, sizeof(data), 12);
    for (size_t i = 0; i < sizeof(shifts); i++) {
        uint8_t options[8];
        size_t length = option_mss(options, 1460);
        length += option_window_scale(options + length, shifts[i]);
        struct flow flow;
        flow_open_with(h, &flow, (uint16_t)(30400 + i), 9, options, length, 0, 0);
        CHECK_EQ(tcp_info_of(h, flow.fd).tcpi_snd_wscale, 14);
        CHECK_EQ(connection_of(h, flow.peer_port)->send_window_shift, 14);
        pull_from_stack(h, &flow, data, sizeof(data), 1460);
        CHECK_EQ(usock_close(h->stack, flow.fd), 0);
    }
    check_still_serves(h);
    harness_free(h);
}

/* ---- IPv4 header ---- */

/* The IPv4 bytes (no Ethernet) of an echo request from the peer. */
static size_t echo_packet(uint8_t *packet, uint32_t rest)
{
    uint8_t frame[FRAME_MAX];
    size_t length = build_echo_request(frame, rest, 16);
    memcpy(packet, frame + 14, length - 14);
    return length - 14;
}

static void inject_ipv4_bytes(struct harness *h, const uint8_t *packet, size_t length)
{
    uint8_t frame[FRAME_MAX];
    put_ethernet(frame, ETHERTYPE_IPV4);
    memcpy(frame + 14, packet, length);
    inject(h, frame, 14 + length);
}

/* IHL below 5, IHL past the bytes received, total length past the frame,
 * total length below the header (including IHL past the total length):
 * each dropped with its counter (and IpInHdrErrors); none is answered. */
static void test_ipv4_bad_header_or_total_length_is_dropped_and_counted(void)
{
    struct harness *h = harness_new(10);
    h->echo_rest = 0x11110001;
    uint8_t packet[200];
    uint64_t header_errors = counter(h, "IpInHdrErrors");
    uint64_t bad_header = counter(h, "IpInBadHeaderLength");
    uint64_t bad_total = counter(h, "IpInBadTotalLength");
    size_t length = echo_packet(packet, h->echo_rest); /* 20 + 8 + 16 = 44 bytes */
    for (int ihl = 0; ihl < 5; ihl++) {
        packet[0] = (uint8_t)(0x40 | ihl);
        ipv4_fix_checksum(packet, 20);
        inject_ipv4_bytes(h, packet, length);
    }
    CHECK_EQ(counter(h, "IpInBadHeaderLength"), bad_header + 5);
    /* IHL past the bytes received: 60 bytes of header in a 44-byte packet. */
    length = echo_packet(packet, h->echo_rest);
    packet[0] = 0x4f;
    ipv4_fix_checksum(packet, 20);
    inject_ipv4_bytes(h, packet, length);
    packet[0] = 0x4c; /* 48 > 44 */
    inject_ipv4_bytes(h, packet, length);
    CHECK_EQ(counter(h, "IpInBadHeaderLength"), bad_header + 7);
    /* IHL past the total length: a 60-byte header claimed, total 44, with
     * the 60 bytes present (well-formed NOP options). */
    length = echo_packet(packet, h->echo_rest);
    uint8_t padded[200];
    memcpy(padded, packet, 20);
    memset(padded + 20, TCP_OPTION_NOP, 40);
    memcpy(padded + 60, packet + 20, length - 20);
    padded[0] = 0x4f;
    store_be16(padded + 2, 44);
    ipv4_fix_checksum(padded, 60);
    inject_ipv4_bytes(h, padded, length + 40);
    CHECK_EQ(counter(h, "IpInBadTotalLength"), bad_total + 1);
    /* Total length past the frame, and below the header. */
    uint16_t totals[] = {45, 100, 65535, 19, 1, 0};
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        length = echo_packet(packet, h->echo_rest);
        store_be16(packet + 2, totals[i]);
        ipv4_fix_checksum(packet, 20);
        inject_ipv4_bytes(h, packet, length);
    }
    CHECK_EQ(counter(h, "IpInBadTotalLength"), bad_total + 7);
    CHECK_EQ(counter(h, "IpInHdrErrors"), header_errors + 14);
    CHECK_EQ(h->echo_replies, 0);
    check_still_serves(h);
    harness_free(h);
}

/* IP options with a length of 0 or 1, running past the header, or a kind
 * whose length byte is missing: dropped, IpInBadOptions; not answered. */
static void test_ipv4_malformed_options_are_dropped_and_counted(void)
{
    struct harness *h = harness_new(11);
    h->echo_rest = 0x22220001;
    static const uint8_t bad_options[][8] = {
        {0x07, 0, 4, 0},                  /* record route, length 0 */
        {0x07, 1, 4, 0},                  /* length 1 */
        {0x07, 8, 4, 0},                  /* 8 bytes in 4 */
        {0x44, 40, 5, 0, 0, 0, 0, 0},     /* timestamp, 40 bytes in 8 */
        {0x01, 0x01, 0x01, 0x83},         /* loose source route, no length */
        {0x94, 0xff, 0, 0},               /* router alert, 255 */
    };
    static const size_t lengths[] = {4, 4, 4, 8, 4, 4};
    uint8_t message[8 + 16];
    memset(message + 8, 0xab, 16);
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = h->echo_rest};
    icmp_emit(&request, message, 16);
    uint64_t bad = counter(h, "IpInBadOptions");
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        uint8_t frame[FRAME_MAX];
        struct datagram_spec ip = {.protocol = IPPROTO_ICMP, .identification = 5,
                                   .options = bad_options[i], .options_length = lengths[i]};
        inject(h, frame, build_datagram(frame, &ip, message, sizeof(message)));
        CHECK_EQ(counter(h, "IpInBadOptions"), bad + i + 1);
    }
    CHECK_EQ(h->echo_replies, 0);
    /* Well-formed options are fine: the echo is answered. */
    static const uint8_t good[4] = {0x01, 0x01, 0x01, 0x00};
    uint8_t frame[FRAME_MAX];
    struct datagram_spec ip = {.protocol = IPPROTO_ICMP, .identification = 6, .options = good,
                               .options_length = 4};
    inject(h, frame, build_datagram(frame, &ip, message, sizeof(message)));
    CHECK_EQ(h->echo_replies, 1);
    check_still_serves(h);
    harness_free(h);
}

/* Every frame length from 0 to 33 bytes (a 34-byte frame is the smallest
 * that holds Ethernet + IPv4): the link refuses 0, the rest are runts or
 * truncated IP, each counted.  ARP: every length below a full packet. */
static void test_runt_frames_and_truncated_arp_are_dropped_and_counted(void)
{
    struct harness *h = harness_new(12);
    h->echo_rest = 0x33330001;
    uint8_t frame[FRAME_MAX];
    build_echo_request(frame, h->echo_rest, 16);
    CHECK_EQ(usock_link_callback_input(h->link, frame, 0), -EINVAL);
    uint64_t runts = counter(h, "EthInRunts");
    uint64_t truncated = counter(h, "IpInTruncated");
    for (size_t length = 1; length <= 33; length++)
        inject(h, frame, length);
    CHECK_EQ(counter(h, "EthInRunts"), runts + 13);
    CHECK_EQ(counter(h, "IpInTruncated"), truncated + 20);
    CHECK_EQ(h->echo_replies, 0);
    /* The same over an 802.1Q tag. */
    uint8_t tagged[FRAME_MAX];
    memcpy(tagged, frame, 12);
    store_be16(tagged + 12, ETHERTYPE_VLAN);
    store_be16(tagged + 14, 1);
    store_be16(tagged + 16, ETHERTYPE_IPV4);
    memcpy(tagged + 18, frame + 14, 60);
    for (size_t length = 14; length <= 37; length++)
        inject(h, tagged, length);
    CHECK_EQ(counter(h, "EthInRunts"), runts + 13 + 4);
    CHECK_EQ(counter(h, "IpInTruncated"), truncated + 40);

    uint64_t arp_truncated = counter(h, "ArpInTruncated");
    size_t replies = h->arp_replies;
    size_t full = build_arp_request(frame);
    for (size_t length = 14; length < full; length++)
        inject(h, frame, length);
    CHECK_EQ(counter(h, "ArpInTruncated"), arp_truncated + ARP_PACKET_LENGTH);
    CHECK_EQ(h->arp_replies, replies);
    inject(h, frame, full);
    CHECK_EQ(h->arp_replies, replies + 1);
    check_still_serves(h);
    harness_free(h);
}

/* ---- fragments ---- */

static void send_fragment(struct harness *h, uint8_t protocol, uint16_t id, uint16_t offset,
                          bool more, const uint8_t *bytes, size_t length)
{
    uint8_t frame[FRAME_MAX];
    struct datagram_spec ip = {.protocol = protocol, .identification = id,
                               .more_fragments = more, .fragment_offset = offset};
    inject(h, frame, build_datagram(frame, &ip, bytes, length));
}

/* A UDP datagram to port 7 (header + data) built for fragmenting. */
static size_t udp_datagram(uint8_t *out, const uint8_t *data, size_t length)
{
    return build_udp_payload(out, ip_of(PEER_ADDRESS), 4000, 7, data, length);
}

static void check_udp_delivered(struct harness *h, const uint8_t *data, size_t length)
{
    uint8_t buffer[2048];
    CHECK_EQ(usock_recv(h->stack, h->udp_fd, buffer, sizeof(buffer), MSG_DONTWAIT), length);
    CHECK(memcmp(buffer, data, length) == 0);
}

static void check_reassembly_empty(struct harness *h)
{
    CHECK_EQ(h->stack->fragments.count, 0);
    CHECK_EQ(h->stack->fragments.bytes, 0);
}

/* Offset + length past 65535 (the ping of death): dropped and counted as
 * IpReasmOversize, alone or with pieces already held; and when the first
 * fragment carried IP options, the reassembled datagram (header included)
 * must not pass 65535 either. */
static void test_fragment_past_65535_is_dropped_as_oversize(void)
{
    struct harness *h = harness_new(13);
    uint8_t bytes[1480];
    memset(bytes, 0x5a, sizeof(bytes));
    uint64_t oversize = counter(h, "IpReasmOversize");
    send_fragment(h, IPPROTO_UDP, 1, 65528, false, bytes, 16);
    CHECK_EQ(counter(h, "IpReasmOversize"), oversize + 1);
    check_reassembly_empty(h);
    send_fragment(h, IPPROTO_UDP, 2, 0, true, bytes, 64);
    CHECK_EQ(h->stack->fragments.count, 1);
    send_fragment(h, IPPROTO_UDP, 2, 65512, true, bytes, 40);
    CHECK_EQ(counter(h, "IpReasmOversize"), oversize + 2);
    check_reassembly_empty(h);

    /* A first fragment with 40 bytes of options, then pieces with plain
     * headers each of which fits: the whole would be 60 + 65515 bytes. */
    uint64_t oks = counter(h, "IpReasmOKs");
    uint8_t options[40];
    memset(options, 0x01, sizeof(options));
    uint8_t first[1440];
    memset(first, 0x5a, sizeof(first));
    struct udp_header udp = {.source_port = 4000, .destination_port = 7, .length = 65515};
    store_be16(first, udp.source_port);
    store_be16(first + 2, udp.destination_port);
    store_be16(first + 4, udp.length);
    store_be16(first + 6, 0);
    uint8_t frame[FRAME_MAX];
    struct datagram_spec ip = {.protocol = IPPROTO_UDP, .identification = 3,
                               .more_fragments = true, .options = options,
                               .options_length = sizeof(options)};
    inject(h, frame, build_datagram(frame, &ip, first, sizeof(first)));
    uint16_t offset = 1440;
    while (offset + 1480 < 65515) {
        send_fragment(h, IPPROTO_UDP, 3, offset, true, bytes, 1480);
        offset += 1480;
    }
    CHECK_EQ(offset + 435, 65515);
    send_fragment(h, IPPROTO_UDP, 3, offset, false, bytes, 435);
    fprintf(stderr, "60 + 65515 bytes reassembled: IpReasmOversize +%llu, IpReasmOKs +%llu, "
                    "IpInDelivers %llu\n",
            (unsigned long long)(counter(h, "IpReasmOversize") - oversize),
            (unsigned long long)(counter(h, "IpReasmOKs") - oks),
            (unsigned long long)counter(h, "IpInDelivers"));
    CHECK_EQ(counter(h, "IpReasmOversize"), oversize + 3);
    CHECK_EQ(counter(h, "IpReasmOKs"), oks);
    check_reassembly_empty(h);
    check_still_serves(h);
    harness_free(h);
}

/* Overlaps (partial, one piece inside another, either order) drop the
 * datagram (IpReasmOverlaps); an exact duplicate is dropped alone
 * (IpReasmDuplicates) and the datagram still completes intact. */
static void test_fragment_overlaps_drop_the_datagram_and_duplicates_are_ignored(void)
{
    struct harness *h = harness_new(14);
    uint8_t data[40], datagram[48];
    fill_pattern(data, sizeof(data), 14);
    udp_datagram(datagram, data, sizeof(data));
    uint64_t overlaps = counter(h, "IpReasmOverlaps");
    send_fragment(h, IPPROTO_UDP, 10, 0, true, datagram, 16);   /* partial */
    send_fragment(h, IPPROTO_UDP, 10, 8, true, datagram + 8, 16);
    CHECK_EQ(counter(h, "IpReasmOverlaps"), overlaps + 1);
    send_fragment(h, IPPROTO_UDP, 11, 0, true, datagram, 32);   /* inside */
    send_fragment(h, IPPROTO_UDP, 11, 8, true, datagram + 8, 8);
    CHECK_EQ(counter(h, "IpReasmOverlaps"), overlaps + 2);
    send_fragment(h, IPPROTO_UDP, 12, 8, true, datagram + 8, 8); /* around */
    send_fragment(h, IPPROTO_UDP, 12, 0, true, datagram, 32);
    CHECK_EQ(counter(h, "IpReasmOverlaps"), overlaps + 3);
    send_fragment(h, IPPROTO_UDP, 13, 24, false, datagram + 24, 24); /* over the last */
    send_fragment(h, IPPROTO_UDP, 13, 16, true, datagram + 16, 16);
    CHECK_EQ(counter(h, "IpReasmOverlaps"), overlaps + 4);
    check_reassembly_empty(h);
    CHECK_ERRNO(usock_recv(h->stack, h->udp_fd, data, 1, MSG_DONTWAIT), EAGAIN);

    uint64_t duplicates = counter(h, "IpReasmDuplicates");
    send_fragment(h, IPPROTO_UDP, 14, 0, true, datagram, 24);
    send_fragment(h, IPPROTO_UDP, 14, 0, true, datagram, 24);
    CHECK_EQ(counter(h, "IpReasmDuplicates"), duplicates + 1);
    send_fragment(h, IPPROTO_UDP, 14, 24, false, datagram + 24, 24);
    check_udp_delivered(h, data, sizeof(data));
    send_fragment(h, IPPROTO_UDP, 15, 24, false, datagram + 24, 24);
    send_fragment(h, IPPROTO_UDP, 15, 24, false, datagram + 24, 24);
    send_fragment(h, IPPROTO_UDP, 15, 0, true, datagram, 24);
    CHECK_EQ(counter(h, "IpReasmDuplicates"), duplicates + 2);
    check_udp_delivered(h, data, sizeof(data));
    check_reassembly_empty(h);
    check_still_serves(h);
    harness_free(h);
}

/* The last fragment first, and a datagram cut into 8-byte pieces sent in
 * reverse order: both reassemble intact. */
static void test_fragment_last_first_and_8_byte_pieces_reassemble_intact(void)
{
    struct harness *h = harness_new(15);
    uint8_t data[40], datagram[48];
    fill_pattern(data, sizeof(data), 15);
    udp_datagram(datagram, data, sizeof(data));
    uint64_t oks = counter(h, "IpReasmOKs");
    send_fragment(h, IPPROTO_UDP, 20, 32, false, datagram + 32, 16);
    send_fragment(h, IPPROTO_UDP, 20, 0, true, datagram, 16);
    send_fragment(h, IPPROTO_UDP, 20, 16, true, datagram + 16, 16);
    check_udp_delivered(h, data, sizeof(data));
    for (int piece = 5; piece >= 0; piece--)
        send_fragment(h, IPPROTO_UDP, 21, (uint16_t)(8 * piece), piece != 5,
                      datagram + 8 * piece, 8);
    check_udp_delivered(h, data, sizeof(data));
    CHECK_EQ(counter(h, "IpReasmOKs"), oks + 2);
    check_reassembly_empty(h);
    check_still_serves(h);
    harness_free(h);
}

/* A datagram with a hole is dropped after 30 s (IpReasmTimeout), with an
 * ICMP time exceeded when its first fragment came, and its memory goes. */
static void test_fragment_hole_times_out_and_releases_memory(void)
{
    struct harness *h = harness_new(16);
    uint8_t data[40], datagram[48];
    fill_pattern(data, sizeof(data), 16);
    udp_datagram(datagram, data, sizeof(data));
    uint64_t timeouts = counter(h, "IpReasmTimeout");
    size_t icmp_errors = h->icmp_errors_out;
    send_fragment(h, IPPROTO_UDP, 30, 0, true, datagram, 16);
    send_fragment(h, IPPROTO_UDP, 30, 32, false, datagram + 32, 16);
    send_fragment(h, IPPROTO_UDP, 31, 16, true, datagram + 16, 16); /* no first */
    CHECK_EQ(h->stack->fragments.count, 2);
    CHECK(h->stack->fragments.bytes > 0);
    advance(h, 29 * SECOND);
    CHECK_EQ(h->stack->fragments.count, 2);
    advance(h, 2 * SECOND);
    CHECK_EQ(counter(h, "IpReasmTimeout"), timeouts + 2);
    CHECK_EQ(h->icmp_errors_out, icmp_errors + 1);
    check_reassembly_empty(h);
    CHECK_ERRNO(usock_recv(h->stack, h->udp_fd, data, 1, MSG_DONTWAIT), EAGAIN);
    check_still_serves(h);
    harness_free(h);
}

/* Empty fragments and a non-last fragment whose length is not a multiple
 * of 8 are malformed; a first fragment too short for the TCP header is
 * refused (RFC 1858); each drops the datagram with its counter. */
static void test_fragment_empty_misaligned_or_tiny_first_is_refused(void)
{
    struct harness *h = harness_new(17);
    uint8_t bytes[64];
    memset(bytes, 0x42, sizeof(bytes));
    uint64_t malformed = counter(h, "IpReasmMalformed");
    send_fragment(h, IPPROTO_UDP, 40, 0, true, bytes, 0);
    send_fragment(h, IPPROTO_UDP, 41, 8, true, bytes, 0);
    send_fragment(h, IPPROTO_UDP, 42, 64, false, bytes, 0);
    send_fragment(h, IPPROTO_UDP, 43, 0, true, bytes, 12);
    CHECK_EQ(counter(h, "IpReasmMalformed"), malformed + 4);
    uint64_t tiny = counter(h, "IpReasmTinyFirst");
    send_fragment(h, IPPROTO_TCP, 44, 0, true, bytes, 8);
    send_fragment(h, IPPROTO_TCP, 45, 16, false, bytes, 16);
    send_fragment(h, IPPROTO_TCP, 45, 0, true, bytes, 16);
    CHECK_EQ(counter(h, "IpReasmTinyFirst"), tiny + 2);
    check_reassembly_empty(h);
    check_still_serves(h);
    harness_free(h);
}

/* Thousands of tiny fragments with distinct IDs, then pieces of 1480
 * bytes enough to pass the memory bound: the table stays within
 * REASSEMBLY_LIMIT datagrams and REASSEMBLY_MEMORY bytes at every step,
 * the refusals are counted, and after the timeout all is released and a
 * fragmented datagram gets through again. */
static void test_fragment_flood_stays_within_reassembly_limits(void)
{
    struct harness *h = harness_new(18);
    uint8_t bytes[1480];
    memset(bytes, 0x66, sizeof(bytes));
    uint64_t refused = counter(h, "IpReasmMemoryDrops");
    for (unsigned id = 0; id < 5000; id++) {
        send_fragment(h, IPPROTO_UDP, (uint16_t)(1000 + id), 8, true, bytes, 8);
        CHECK(h->stack->fragments.count <= REASSEMBLY_LIMIT);
    }
    CHECK(counter(h, "IpReasmMemoryDrops") >= refused + 5000 - REASSEMBLY_LIMIT);
    advance(h, 31 * SECOND);
    check_reassembly_empty(h);

    refused = counter(h, "IpReasmMemoryDrops");
    size_t most = 0;
    for (unsigned piece = 1; piece <= 40; piece++) {
        for (unsigned id = 0; id < 100; id++) {
            send_fragment(h, IPPROTO_UDP, (uint16_t)(9000 + id), (uint16_t)(1480 * piece), true,
                          bytes, sizeof(bytes));
            CHECK(h->stack->fragments.bytes <= h->stack->fragments.memory_limit);
            if (h->stack->fragments.bytes > most)
                most = h->stack->fragments.bytes;
        }
    }
    CHECK(counter(h, "IpReasmMemoryDrops") > refused);
    CHECK(most > h->stack->fragments.memory_limit / 2);
    advance(h, 31 * SECOND);
    check_reassembly_empty(h);

    uint8_t data[40], datagram[48];
    fill_pattern(data, sizeof(data), 18);
    udp_datagram(datagram, data, sizeof(data));
    send_fragment(h, IPPROTO_UDP, 77, 0, true, datagram, 24);
    send_fragment(h, IPPROTO_UDP, 77, 24, false, datagram + 24, 24);
    check_udp_delivered(h, data, sizeof(data));
    check_still_serves(h);
    harness_free(h);
}

/* ---- ICMP ---- */

/* An ICMP message from the peer: header (type, code, rest) and body. */
static void send_icmp(struct harness *h, uint8_t type, uint8_t code, uint32_t rest,
                      const uint8_t *body, size_t body_length)
{
    uint8_t message[FRAME_MAX];
    memcpy(message + 8, body, body_length);
    struct icmp_header header = {.type = type, .code = code, .rest = rest};
    icmp_emit(&header, message, body_length);
    uint8_t frame[FRAME_MAX];
    struct datagram_spec ip = {.protocol = IPPROTO_ICMP, .identification = 3};
    inject(h, frame, build_datagram(frame, &ip, message, 8 + body_length));
}

/* What an ICMP error quotes: the stack's IPv4 header to destination with
 * protocol, then 8 transport bytes (ports and a sequence number). */
static size_t quote_of(uint8_t *quote, uint32_t destination, uint8_t protocol,
                       uint16_t source_port, uint16_t destination_port, uint32_t sequence)
{
    struct ipv4_header ip = {.total_length = 40, .identification = 1, .dont_fragment = true,
                             .time_to_live = 64, .protocol = protocol,
                             .source = ip_of(STACK_ADDRESS), .destination = destination};
    ipv4_emit(&ip, quote);
    store_be16(quote + 20, source_port);
    store_be16(quote + 22, destination_port);
    store_be32(quote + 24, sequence);
    return 28;
}

/* Echo requests shorter than the 8-byte ICMP header, and errors quoting
 * less than an IP header and 8 bytes (also with a quoted IHL of 24 bytes):
 * dropped and counted (IcmpInTruncated); the connection they name is
 * untouched. */
static void test_icmp_truncated_echo_and_short_error_quotes_are_dropped(void)
{
    struct harness *h = harness_new(19);
    h->echo_rest = 0x44440001;
    uint64_t truncated = counter(h, "IcmpInTruncated");
    uint8_t message[8] = {ICMP_TYPE_ECHO_REQUEST, 0, 0xf7, 0xff, 0x44, 0x44, 0, 1};
    for (size_t length = 0; length < 8; length++) {
        uint8_t frame[FRAME_MAX];
        struct datagram_spec ip = {.protocol = IPPROTO_ICMP, .identification = 3};
        inject(h, frame, build_datagram(frame, &ip, message, length));
    }
    CHECK_EQ(counter(h, "IcmpInTruncated"), truncated + 8);
    CHECK_EQ(h->echo_replies, 0);

    struct flow flow;
    flow_open(h, &flow, true);
    unsigned mss = tcp_info_of(h, flow.fd).tcpi_snd_mss;
    uint8_t quote[64];
    quote_of(quote, ip_of(PEER_ADDRESS), IPPROTO_TCP, 80, flow.peer_port, flow.ack);
    const struct { uint8_t type, code; uint32_t rest; } errors[] = {
        {ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_PORT_UNREACHABLE, 0},
        {ICMP_TYPE_TIME_EXCEEDED, 0, 0},
        {ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_FRAGMENTATION_NEEDED, 576},
        {ICMP_TYPE_PARAMETER_PROBLEM, 0, 0},
    };
    truncated = counter(h, "IcmpInTruncated");
    for (size_t e = 0; e < 4; e++)
        for (size_t length = 0; length < 28; length++)
            send_icmp(h, errors[e].type, errors[e].code, errors[e].rest, quote, length);
    CHECK_EQ(counter(h, "IcmpInTruncated"), truncated + 4 * 28);
    /* A quoted header of 24 bytes (IHL 6) needs 32 bytes. */
    uint8_t long_quote[64];
    memcpy(long_quote, quote, 20);
    long_quote[0] = 0x46;
    memset(long_quote + 20, 0x01, 4);
    memcpy(long_quote + 24, quote + 20, 8);
    for (size_t length = 28; length < 32; length++)
        send_icmp(h, ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_FRAGMENTATION_NEEDED, 68,
                  long_quote, length);
    CHECK_EQ(counter(h, "IcmpInTruncated"), truncated + 4 * 28 + 4);
    CHECK_EQ(tcp_info_of(h, flow.fd).tcpi_snd_mss, mss);
    CHECK_EQ(connection_of(h, flow.peer_port)->state, TCPS_ESTABLISHED);
    CHECK_EQ(connection_of(h, flow.peer_port)->soft_error, 0);
    uint8_t data[2000];
    fill_pattern(data, sizeof(data), 19);
    flow_send(h, &flow, data, 1000, 0, 0);
    read_exactly(h, flow.fd, data, 1000);
    pull_from_stack(h, &flow, data, sizeof(data), mss);
    check_still_serves(h);
    harness_free(h);
}

/* Fragmentation needed for a live connection with next-hop MTU 0, 1, 67
 * (below IPv4's 68) is ignored; 68 may shrink the MSS but not below a
 * sane floor (48, Linux's tcp_min_snd_mss); the connection goes on, its
 * segments never empty nor above the MSS, its data intact. */
static void test_icmp_frag_needed_with_tiny_mtu_keeps_a_sane_mss(void)
{
    struct harness *h = harness_new(20);
    struct flow flow;
    flow_open(h, &flow, true);
    unsigned mss = tcp_info_of(h, flow.fd).tcpi_snd_mss;
    CHECK_EQ(mss, 1460);
    uint8_t quote[28];
    quote_of(quote, ip_of(PEER_ADDRESS), IPPROTO_TCP, 80, flow.peer_port, flow.ack);
    uint32_t tiny[] = {0, 1, 40, 67};
    for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++) {
        send_icmp(h, ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_FRAGMENTATION_NEEDED,
                  tiny[i], quote, sizeof(quote));
        CHECK_EQ(tcp_info_of(h, flow.fd).tcpi_snd_mss, mss);
    }
    /* The high half of the field is unused; only the low 16 bits are the MTU. */
    send_icmp(h, ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_FRAGMENTATION_NEEDED,
              0xffff0000u, quote, sizeof(quote));
    CHECK_EQ(tcp_info_of(h, flow.fd).tcpi_snd_mss, mss);
    send_icmp(h, ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_FRAGMENTATION_NEEDED, 68, quote,
              sizeof(quote));
    unsigned shrunk = tcp_info_of(h, flow.fd).tcpi_snd_mss;
    fprintf(stderr, "MSS after a next-hop MTU of 68: %u\n", shrunk);
    CHECK(shrunk >= 48 && shrunk <= mss);
    uint8_t data[20000];
    fill_pattern(data, sizeof(data), 20);
    pull_from_stack(h, &flow, data, sizeof(data), shrunk);
    CHECK_EQ(connection_of(h, flow.peer_port)->state, TCPS_ESTABLISHED);
    check_still_serves(h);
    harness_free(h);
}

/* Errors about flows that do not exist (TCP, UDP, ICMP echo, an unknown
 * protocol) are counted as IcmpInErrorsNoSocket and change nothing. */
static void test_icmp_errors_about_unknown_flows_are_counted(void)
{
    struct harness *h = harness_new(21);
    struct flow flow;
    flow_open(h, &flow, true);
    uint64_t no_socket = counter(h, "IcmpInErrorsNoSocket");
    uint8_t quote[28];
    const struct { uint8_t protocol; uint16_t source_port, destination_port; } flows[] = {
        {IPPROTO_TCP, 80, 1},          /* no such connection */
        {IPPROTO_TCP, 5555, flow.peer_port},
        {IPPROTO_UDP, 33333, 53},      /* no such UDP socket */
        {IPPROTO_ICMP, 0x0800, 0},     /* an echo of identifier 0x0800: no ping socket */
        {99, 1, 2},                    /* no handler, no raw socket */
    };
    const uint8_t types[][2] = {
        {ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_PORT_UNREACHABLE},
        {ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_FRAGMENTATION_NEEDED},
        {ICMP_TYPE_TIME_EXCEEDED, 0},
    };
    size_t sent = 0;
    for (size_t f = 0; f < sizeof(flows) / sizeof(flows[0]); f++)
        for (size_t t = 0; t < 3; t++) {
            quote_of(quote, ip_of("10.77.0.1"), flows[f].protocol, flows[f].source_port,
                     flows[f].destination_port, 12345);
            if (f == 1)
                quote_of(quote, ip_of(PEER_ADDRESS), IPPROTO_TCP, 5555, flow.peer_port, 1);
            send_icmp(h, types[t][0], types[t][1], 68, quote, sizeof(quote));
            sent++;
        }
    CHECK_EQ(counter(h, "IcmpInErrorsNoSocket"), no_socket + sent);
    CHECK_EQ(tcp_info_of(h, flow.fd).tcpi_snd_mss, 1460);
    CHECK_EQ(connection_of(h, flow.peer_port)->soft_error, 0);
    uint8_t data[3000];
    fill_pattern(data, sizeof(data), 21);
    pull_from_stack(h, &flow, data, sizeof(data), 1460);
    check_still_serves(h);
    harness_free(h);
}

/* ---- predictability (NUMBER:JACK) ---- */

/* The address count places after base (network order). */
static uint32_t address_plus(const char *base, uint32_t count)
{
    return htonl(ntohl(ip_of(base)) + count);
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether a series of values (each below modulus; 0 means 2^32) looks
 * drawn at random rather than made by a counter or a small-step generator:
 * successive differences (mod modulus) are not all equal, their low 16
 * bits are nearly all distinct (a random series of n has about
 * n^2 / 2^17 collisions), and over 16 buckets their chi-square stays
 * below 60 (15 degrees of freedom: p < 1e-6 for a real generator).
 * Prints what it found under the name what. */
static bool series_looks_random(const char *what, const uint32_t *values, size_t count,
                                uint64_t modulus)
{
    uint64_t span = modulus ? modulus : (1ULL << 32);
    uint64_t cells = span < 65536 ? span : 65536;
    size_t n = count - 1;
    uint32_t *keys = malloc(n * sizeof(*keys));
    CHECK(keys != NULL);
    bool all_equal = true;
    double buckets[16] = {0};
    uint64_t first = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t difference = ((uint64_t)values[i + 1] + span - values[i]) % span;
        if (i == 0)
            first = difference;
        else if (difference != first)
            all_equal = false;
        keys[i] = (uint32_t)(difference % cells); /* the low 16 bits, or all of it */
        buckets[difference * 16 / span]++;
    }
    qsort(keys, n, sizeof(*keys), compare_u32);
    size_t distinct = n ? 1 : 0;
    for (size_t i = 1; i < n; i++)
        distinct += keys[i] != keys[i - 1];
    free(keys);
    double expected_collisions = (double)n * (double)n / (2.0 * (double)cells);
    double chi_square = 0;
    for (int b = 0; b < 16; b++) {
        double expected = (double)n / 16;
        chi_square += (buckets[b] - expected) * (buckets[b] - expected) / expected;
    }
    bool distinct_enough = (double)(n - distinct) <= 3 * expected_collisions + 6;
    bool spread = n < 160 || chi_square < 60;
    fprintf(stderr, "%s: %zu values, differences %s, %zu of %zu distinct (%.1f collisions "
                    "expected), chi-square %.1f over 16 buckets\n",
            what, count, all_equal ? "ALL EQUAL" : "vary", distinct, n, expected_collisions,
            chi_square);
    return !all_equal && distinct_enough && spread;
}

/* Successive differences (modulo modulus) take at least four values, and
 * none of them more than half the time: a walk with a random step, not a
 * counter.  Prints what it found under the name what. */
static bool steps_vary(const char *what, const uint32_t *values, size_t count, uint64_t modulus)
{
    enum { STEPS_SEEN = 64 };
    size_t seen[STEPS_SEEN] = {0};
    size_t other = 0;
    for (size_t i = 0; i + 1 < count; i++) {
        uint64_t difference = ((uint64_t)values[i + 1] + modulus - values[i]) % modulus;
        if (difference < STEPS_SEEN)
            seen[difference]++;
        else
            other++;
    }
    size_t kinds = other ? 1 : 0, most = other;
    for (size_t d = 0; d < STEPS_SEEN; d++) {
        kinds += seen[d] != 0;
        if (seen[d] > most)
            most = seen[d];
    }
    fprintf(stderr, "%s: %zu values, %zu kinds of step, the commonest %zu times\n", what, count,
            kinds, most);
    return kinds >= 4 && most * 2 < count;
}

static bool all_distinct(const uint32_t *values, size_t count)
{
    uint32_t *sorted = malloc(count * sizeof(*sorted));
    CHECK(sorted != NULL);
    memcpy(sorted, values, count * sizeof(*sorted));
    qsort(sorted, count, sizeof(*sorted), compare_u32);
    bool distinct = true;
    for (size_t i = 1; i < count; i++)
        if (sorted[i] == sorted[i - 1])
            distinct = false;
    free(sorted);
    return distinct;
}

/* The ISN of the SYN-ACK a SYN from source:port draws (the half-open
 * connection is then reset, so the next SYN makes a new one). */
static uint32_t isn_for_syn(struct harness *h, uint32_t source, uint16_t port, uint32_t iss)
{
    size_t mark = h->segment_count;
    uint8_t options[16];
    size_t options_length = standard_syn_options(options, true);
    struct segment_spec syn = {.source = source, .source_port = port, .sequence = iss,
                               .flags = TCP_FLAG_SYN, .window = 65535, .options = options,
                               .options_length = options_length};
    send_segment(h, &syn);
    const struct seen_segment *syn_ack = last_segment_to(h, port, TCP_FLAG_SYN | TCP_FLAG_ACK,
                                                         mark);
    CHECK(syn_ack != NULL);
    uint32_t isn = syn_ack->sequence;
    struct segment_spec reset = {.source = source, .source_port = port, .sequence = iss + 1,
                                 .flags = TCP_FLAG_RST, .window = 0};
    send_segment(h, &reset);
    return isn;
}

#define SERIES 1000

/* ISNs over 1000 connections from different 4-tuples at one instant, over
 * 1000 incarnations of one 4-tuple, and over 64 stacks seeded from
 * getrandom(): never equal, never a fixed step, spread. */
static void test_initial_sequence_numbers_are_unpredictable(void)
{
    struct harness *h = harness_new(22);
    uint32_t *isns = calloc(SERIES, sizeof(*isns));
    CHECK(isns != NULL);
    for (size_t i = 0; i < SERIES; i++)
        isns[i] = isn_for_syn(h, 0, (uint16_t)(10000 + i), 1000);
    CHECK(all_distinct(isns, SERIES));
    CHECK(series_looks_random("ISN, 1000 source ports, one instant", isns, SERIES, 0));
    for (size_t i = 0; i < SERIES; i++)
        isns[i] = isn_for_syn(h, address_plus("10.50.0.0", (uint32_t)i), 4242, 1000);
    CHECK(all_distinct(isns, SERIES));
    CHECK(series_looks_random("ISN, 1000 source addresses, one instant", isns, SERIES, 0));

    /* One 4-tuple again and again: each incarnation starts beyond the
     * last (RFC 6528's clock), by no fixed step. */
    struct random_state random;
    random_seed(&random, 22);
    for (size_t i = 0; i < SERIES; i++) {
        isns[i] = isn_for_syn(h, 0, 4343, (uint32_t)(1000 + 100000 * i));
        advance(h, 4000 + random_below(&random, 1000000));
    }
    CHECK(all_distinct(isns, SERIES));
    bool constant = true;
    for (size_t i = 1; i < SERIES; i++) {
        CHECK(seq_gt(isns[i], isns[i - 1]));
        if (i > 1 && isns[i] - isns[i - 1] != isns[1] - isns[0])
            constant = false;
    }
    CHECK(!constant);
    check_still_serves(h);
    harness_free(h);

    /* New stacks keyed from getrandom(): the same 4-tuple at the same
     * time gets a different ISN from each. */
    enum { STACKS = 64 };
    uint32_t across[STACKS];
    for (size_t i = 0; i < STACKS; i++) {
        struct harness *fresh = harness_new(0);
        across[i] = isn_for_syn(fresh, 0, 5000, 1000);
        harness_free(fresh);
    }
    CHECK(all_distinct(across, STACKS));
    CHECK(series_looks_random("ISN, 64 stacks seeded from getrandom()", across, STACKS, 0));
    free(isns);
}

/* The local port and ISN of the SYN a connect() to destination sends. */
static void connect_and_capture(struct harness *h, uint32_t destination, uint16_t *port,
                                uint32_t *isn)
{
    int fd = usock_socket(h->stack, AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(80),
                             .sin_addr.s_addr = destination};
    size_t mark = h->segment_count;
    CHECK_ERRNO(usock_connect(h->stack, fd, (struct sockaddr *)&to, sizeof(to)), EINPROGRESS);
    usock_stack_poll(h->stack, h->now);
    CHECK(h->segment_count > mark);
    const struct seen_segment *syn = &h->segments[(h->segment_count - 1) % SEEN_MAX];
    CHECK_EQ(syn->flags, TCP_FLAG_SYN);
    CHECK_EQ(syn->destination, destination);
    *port = syn->source_port;
    *isn = syn->sequence;
}

static uint16_t bind_to_zero(struct harness *h, int type)
{
    int fd = usock_socket(h->stack, AF_INET, type, 0);
    CHECK(fd >= 0);
    struct sockaddr_in any = {.sin_family = AF_INET};
    CHECK_EQ(usock_bind(h->stack, fd, (struct sockaddr *)&any, sizeof(any)), 0);
    struct sockaddr_in name;
    socklen_t length = sizeof(name);
    CHECK_EQ(usock_getsockname(h->stack, fd, (struct sockaddr *)&name, &length), 0);
    return ntohs(name.sin_port);
}

/* Ephemeral ports chosen by connect() (one destination and many) and by
 * bind() to port 0 (UDP and TCP): never reused while held, and no fixed
 * step between one choice and the next (RFC 6056; Linux adds random
 * increments per destination since 5.18 against device tracking). */
static void test_ephemeral_ports_are_unpredictable(void)
{
    struct harness *h = harness_new(23);
    uint32_t *ports = calloc(SERIES, sizeof(*ports));
    uint32_t *isns = calloc(SERIES, sizeof(*isns));
    CHECK(ports && isns);
    const uint64_t range = EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1;
    bool failed = false;

    for (size_t i = 0; i < SERIES; i++) {
        uint16_t port;
        connect_and_capture(h, ip_of("10.60.0.1"), &port, &isns[i]);
        ports[i] = (uint32_t)(port - EPHEMERAL_PORT_FIRST);
    }
    CHECK(all_distinct(ports, SERIES));
    CHECK(all_distinct(isns, SERIES));
    CHECK(series_looks_random("active ISN, one destination", isns, SERIES, 0));
    /* To one destination the port walks on from the last one (RFC 6056
     * algorithm 3, as Linux, so ports in TIME_WAIT are not tried again)
     * by a small random step: not random over the range, but no fixed
     * step either, so one port does not give away the next. */
    if (!steps_vary("connect() port, one destination", ports, SERIES, range))
        failed = true;

    for (size_t i = 0; i < SERIES; i++) {
        uint16_t port;
        connect_and_capture(h, address_plus("10.61.0.0", (uint32_t)(i + 1)), &port, &isns[i]);
        ports[i] = (uint32_t)(port - EPHEMERAL_PORT_FIRST);
    }
    CHECK(all_distinct(isns, SERIES));
    if (!series_looks_random("connect() port, 1000 destinations", ports, SERIES, range))
        failed = true;

    for (size_t i = 0; i < SERIES; i++)
        ports[i] = (uint32_t)(bind_to_zero(h, SOCK_DGRAM) - EPHEMERAL_PORT_FIRST);
    CHECK(all_distinct(ports, SERIES));
    if (!series_looks_random("UDP bind() to port 0", ports, SERIES, range))
        failed = true;
    for (size_t i = 0; i < SERIES; i++)
        ports[i] = (uint32_t)(bind_to_zero(h, SOCK_STREAM) - EPHEMERAL_PORT_FIRST);
    CHECK(all_distinct(ports, SERIES));
    if (!series_looks_random("TCP bind() to port 0", ports, SERIES, range))
        failed = true;
    CHECK(!failed);
    check_still_serves(h);
    free(ports);
    free(isns);
    harness_free(h);
}

/* The identification of the datagram a sendto() from fd to address sends
 * (checked to go without DF). */
static uint16_t identification_of_send(struct harness *h, int fd, uint32_t address)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9),
                             .sin_addr.s_addr = address};
    size_t mark = h->datagram_count;
    CHECK_EQ(usock_sendto(h->stack, fd, "id?", 3, 0, (struct sockaddr *)&to, sizeof(to)), 3);
    usock_stack_poll(h->stack, h->now);
    CHECK_EQ(h->datagram_count, mark + 1);
    const struct seen_datagram *sent = &h->datagrams[mark % SEEN_MAX];
    CHECK_EQ(sent->protocol, IPPROTO_UDP);
    CHECK_EQ(sent->destination, address);
    CHECK(!sent->dont_fragment);
    return sent->identification;
}

/* The IPv4 identification of datagrams that may be fragmented (DF clear).
 * src/net/ipv4.c draws it from 256 counters picked by a keyed hash of
 * (source, destination, protocol), each starting at random (Linux's
 * ip_idents).  So: the first IDs towards 200 destinations look random;
 * what one destination sees does not move with traffic to others (no
 * global counter to count a host's traffic by: idle scans, NUMBER:JACK),
 * bar the rare destination that shares its counter; and the IDs towards
 * one destination do not repeat (RFC 6864 4.1). */
static void test_ip_identification_is_not_one_global_counter(void)
{
    struct harness *h = harness_new(24);
    int fd = usock_socket(h->stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    int discovery = IP_PMTUDISC_DONT;
    CHECK_EQ(usock_setsockopt(h->stack, fd, IPPROTO_IP, IP_MTU_DISCOVER, &discovery,
                              sizeof(discovery)), 0);
    enum { FIRSTS = 200, TRIALS = 100, REPEATS = 300 };
    uint32_t firsts[FIRSTS];
    for (size_t i = 0; i < FIRSTS; i++)
        firsts[i] = identification_of_send(h, fd, address_plus("10.70.0.0", (uint32_t)(i + 1)));
    CHECK(series_looks_random("IP ID, first datagram to each of 200 destinations", firsts, FIRSTS,
                              65536));

    uint32_t watched = ip_of("10.71.0.1");
    size_t moved = 0;
    for (uint32_t trial = 0; trial < TRIALS; trial++) {
        uint16_t before = identification_of_send(h, fd, watched);
        uint32_t other = address_plus("10.72.0.0", trial + 1);
        for (uint32_t k = 0; k < 1 + trial % 7; k++)
            identification_of_send(h, fd, other);
        uint16_t after = identification_of_send(h, fd, watched);
        CHECK(after != before);
        moved += (uint16_t)(after - before) != 1;
    }
    fprintf(stderr, "IP ID: traffic to another destination moved the watched one's IDs in "
                    "%zu of %d trials\n", moved, TRIALS);
    CHECK(moved <= 5);

    uint32_t repeated[REPEATS];
    for (size_t i = 0; i < REPEATS; i++)
        repeated[i] = identification_of_send(h, fd, watched);
    CHECK(all_distinct(repeated, REPEATS));
    check_still_serves(h);
    harness_free(h);
}

/* ---- resource exhaustion ---- */

/* A connection with a 1-byte MSS (the stack uses its floor) and SACK
 * stalls with data in flight while the peer sends 5000 duplicate ACKs of
 * four tiny, odd SACK blocks each: the scoreboard stays within its 32
 * ranges, each ACK draws a bounded number of segments, TCP memory does not
 * grow, and afterwards the whole stream arrives intact. */
static void test_sack_storm_stays_bounded(void)
{
    struct harness *h = harness_new(25);
    uint8_t options[16];
    size_t options_length = option_mss(options, 1);
    options_length += option_sack_permitted(options + options_length);
    options_length += option_window_scale(options + options_length, 7);
    struct flow flow;
    flow_open_with(h, &flow, 30500, 424242, options, options_length, 0, 0);
    unsigned mss = tcp_info_of(h, flow.fd).tcpi_snd_mss;
    fprintf(stderr, "MSS for a peer MSS of 1: %u\n", mss);
    CHECK(mss >= 48);
    enum { TOTAL = 20000 };
    uint8_t *data = malloc(TOTAL);
    CHECK(data != NULL);
    fill_pattern(data, TOTAL, 25);
    tracker_start(h, flow.peer_port, flow.ack, TOTAL);
    CHECK_EQ(usock_send(h->stack, flow.fd, data, TOTAL, MSG_DONTWAIT), TOTAL);
    usock_stack_poll(h->stack, h->now);
    CHECK(h->track.highest >= 4 * mss);
    struct tcp_connection *tcb = connection_of(h, flow.peer_port);
    CHECK(tcb != NULL);
    size_t memory = h->stack->tcp.memory_bytes;
    struct random_state random;
    random_seed(&random, 25);
    size_t most_per_ack = 0;
    for (int i = 0; i < 5000; i++) {
        uint32_t in_flight = tcb->snd_max - flow.ack;
        struct tcp_sack_block blocks[4];
        for (int b = 0; b < 4; b++) {
            uint32_t left = 1 + (uint32_t)random_below(&random, in_flight > 4 ? in_flight - 3 : 1);
            blocks[b].left = flow.ack + left;
            blocks[b].right = blocks[b].left + 1 + (uint32_t)random_below(&random, 3);
            if (random_below(&random, 8) == 0) /* now and then, nonsense */
                blocks[b].right = blocks[b].left - 1;
        }
        uint8_t sack[36];
        size_t sack_length = option_sack_blocks(sack, blocks, 4);
        struct segment_spec ack = {.source_port = flow.peer_port, .sequence = flow.seq,
                                   .acknowledgment = flow.ack, .flags = TCP_FLAG_ACK,
                                   .window = 65535, .options = sack,
                                   .options_length = sack_length};
        size_t before = h->frames_out;
        send_segment(h, &ack);
        size_t sent = h->frames_out - before;
        if (sent > most_per_ack)
            most_per_ack = sent;
        CHECK(sent <= 64);
        CHECK(tcb->scoreboard == NULL || tcb->scoreboard->count <= TCP_SCOREBOARD_RANGES);
        CHECK(h->stack->tcp.memory_bytes <= memory + 65536);
        if (i % 500 == 499)
            advance(h, MS);
    }
    fprintf(stderr, "SACK storm: at most %zu frames for one ACK, TCP memory %zu -> %zu\n",
            most_per_ack, memory, h->stack->tcp.memory_bytes);
    CHECK(connection_of(h, flow.peer_port) == tcb);
    /* Now the peer acknowledges what it has in order until all is there. */
    acknowledge_until_complete(h, &flow, data, TOTAL, TOTAL);
    CHECK(h->track.largest_segment <= mss);
    h->track.port = 0;
    free(data);
    check_still_serves(h);
    harness_free(h);
}

/* 4000 one-byte segments each beyond a hole: the out-of-order queue keeps
 * at most TCP_OUT_OF_ORDER_LIMIT, the rest are counted drops, its memory
 * is bounded; when the hole is filled the stream is intact. */
static void test_out_of_order_flood_stays_bounded(void)
{
    struct harness *h = harness_new(26);
    struct flow flow;
    flow_open(h, &flow, true);
    struct tcp_connection *tcb = connection_of(h, flow.peer_port);
    CHECK(tcb != NULL);
    enum { TOTAL = 8001 };
    uint8_t data[TOTAL];
    fill_pattern(data, TOTAL, 26);
    uint64_t queued = counter(h, "TcpOutOfOrderQueued");
    uint64_t drops = counter(h, "TcpOutOfOrderDrops");
    size_t memory = h->stack->tcp.memory_bytes;
    for (uint32_t i = 0; i < 4000; i++) {
        uint32_t offset = 1 + 2 * i;
        struct segment_spec spec = {.source_port = flow.peer_port, .sequence = flow.seq + offset,
                                    .acknowledgment = flow.ack, .flags = TCP_FLAG_ACK,
                                    .window = 65535, .data = data + offset, .data_length = 1};
        send_segment(h, &spec);
        CHECK(tcb->out_of_order_count <= TCP_OUT_OF_ORDER_LIMIT);
    }
    fprintf(stderr, "out of order: %llu queued, %llu dropped, %zu bytes of TCP memory more\n",
            (unsigned long long)(counter(h, "TcpOutOfOrderQueued") - queued),
            (unsigned long long)(counter(h, "TcpOutOfOrderDrops") - drops),
            h->stack->tcp.memory_bytes - memory);
    CHECK_EQ(counter(h, "TcpOutOfOrderQueued"), queued + TCP_OUT_OF_ORDER_LIMIT);
    CHECK_EQ(counter(h, "TcpOutOfOrderDrops"), drops + 4000 - TCP_OUT_OF_ORDER_LIMIT);
    CHECK(tcb->out_of_order_bytes <= TCP_OUT_OF_ORDER_LIMIT);
    CHECK(h->stack->tcp.memory_bytes <=
          memory + TCP_OUT_OF_ORDER_LIMIT * (sizeof(struct tcp_out_of_order) + 8));
    for (size_t offset = 0; offset < TOTAL; offset += 1000) {
        size_t length = TOTAL - offset < 1000 ? TOTAL - offset : 1000;
        flow_send(h, &flow, data + offset, length, 0, 0);
    }
    read_exactly(h, flow.fd, data, TOTAL);
    CHECK_EQ(tcb->out_of_order_count, 0);
    CHECK_EQ(tcb->out_of_order_bytes, 0);
    check_still_serves(h);
    harness_free(h);
}

/* 10,000 SYNs from random off-link sources: past the SYN queue, SYN
 * cookies answer and nothing is kept, so connections and TCP memory stay
 * bounded; a legitimate client still connects (through a cookie) and
 * exchanges data both ways; the half-open children expire. */
static void test_syn_flood_is_answered_with_cookies_and_a_client_still_connects(void)
{
    struct harness *h = harness_new(27);
    struct random_state random;
    random_seed(&random, 27);
    size_t connections = connection_count(h);
    uint64_t cookies = counter(h, "TcpSynCookiesSent");
    uint8_t options[4];
    size_t options_length = option_mss(options, 1460);
    for (int i = 0; i < 10000; i++) {
        uint32_t source = htonl(0x0a000000u | ((uint32_t)random_below(&random, 0xfffffe) + 1));
        struct segment_spec syn = {.source = source,
                                   .source_port = (uint16_t)(1024 + random_below(&random, 64000)),
                                   .sequence = (uint32_t)random_next(&random),
                                   .flags = TCP_FLAG_SYN, .window = 65535, .options = options,
                                   .options_length = options_length};
        send_segment(h, &syn);
        if (i % 1000 == 999) {
            CHECK(connection_count(h) <= connections + 128);
            advance(h, 10 * MS);
        }
    }
    fprintf(stderr, "SYN flood: %zu connections held, %llu cookies sent, TCP memory %zu\n",
            connection_count(h) - connections,
            (unsigned long long)(counter(h, "TcpSynCookiesSent") - cookies),
            h->stack->tcp.memory_bytes);
    CHECK(counter(h, "TcpSynCookiesSent") >= cookies + 10000 - 128);
    CHECK(h->stack->tcp.memory_bytes < 64 * 1024);

    uint64_t cookie_answers = counter(h, "TcpSynCookiesRecv");
    struct flow flow;
    uint8_t client_options[16];
    size_t client_length = standard_syn_options(client_options, true);
    flow_open_with(h, &flow, 30600, 31337, client_options, client_length, 0, 0);
    CHECK_EQ(counter(h, "TcpSynCookiesRecv"), cookie_answers + 1);
    uint8_t request[1000], reply[8000];
    fill_pattern(request, sizeof(request), 27);
    fill_pattern(reply, sizeof(reply), 28);
    flow_send(h, &flow, request, sizeof(request), 0, 0);
    read_exactly(h, flow.fd, request, sizeof(request));
    pull_from_stack(h, &flow, reply, sizeof(reply), 1460);

    /* The half-open children give up (SYN-ACK retries) and are freed. */
    for (int second = 0; second < 200; second++)
        advance(h, SECOND);
    CHECK(connection_count(h) <= connections + 2);
    check_still_serves(h);
    harness_free(h);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_urgent_pointer_zero_or_past_segment_keeps_stream_intact),
    CHECK_TEST(test_urgent_pointer_beyond_window_is_ignored_and_counted),
    CHECK_TEST(test_urgent_flag_on_syn_is_ignored),
    CHECK_TEST(test_urgent_pointer_wrapping_past_2_32_marks_the_right_byte),
    CHECK_TEST(test_tcp_bad_data_offset_is_dropped_and_counted),
    CHECK_TEST(test_tcp_malformed_option_lists_are_dropped_and_counted),
    CHECK_TEST(test_tcp_mss_option_bad_length_or_value_gives_a_usable_mss),
    CHECK_TEST(test_tcp_odd_sack_block_lengths_are_ignored),
    CHECK_TEST(test_tcp_window_scale_above_14_is_clamped_to_14),
    CHECK_TEST(test_ipv4_bad_header_or_total_length_is_dropped_and_counted),
    CHECK_TEST(test_ipv4_malformed_options_are_dropped_and_counted),
    CHECK_TEST(test_runt_frames_and_truncated_arp_are_dropped_and_counted),
    CHECK_TEST(test_fragment_past_65535_is_dropped_as_oversize),
    CHECK_TEST(test_fragment_overlaps_drop_the_datagram_and_duplicates_are_ignored),
    CHECK_TEST(test_fragment_last_first_and_8_byte_pieces_reassemble_intact),
    CHECK_TEST(test_fragment_hole_times_out_and_releases_memory),
    CHECK_TEST(test_fragment_empty_misaligned_or_tiny_first_is_refused),
    CHECK_TEST(test_fragment_flood_stays_within_reassembly_limits),
    CHECK_TEST(test_icmp_truncated_echo_and_short_error_quotes_are_dropped),
    CHECK_TEST(test_icmp_frag_needed_with_tiny_mtu_keeps_a_sane_mss),
    CHECK_TEST(test_icmp_errors_about_unknown_flows_are_counted),
    CHECK_TEST(test_initial_sequence_numbers_are_unpredictable),
    CHECK_TEST(test_ephemeral_ports_are_unpredictable),
    CHECK_TEST(test_ip_identification_is_not_one_global_counter),
    CHECK_TEST(test_sack_storm_stays_bounded),
    CHECK_TEST(test_out_of_order_flood_stays_bounded),
    CHECK_TEST(test_syn_flood_is_answered_with_cookies_and_a_client_still_connects),
};

CHECK_MAIN(tests)
