/*
 * test_reassembly.c - IPv4 reassembly (src/net/fragment.c), one behaviour a
 * test: a stack on a callback link carrying bare IP packets, driven in event
 * mode with a simulated clock.  The test builds whole datagrams (UDP with a
 * correct checksum over the whole, TCP, ICMP echo), cuts them into fragments
 * itself, hands them in in various orders and shapes, and looks at what a
 * bound socket receives, at what the stack sends back, and at the IpReasm*
 * counters.  Every hostile case of the policy in fragment.c's header is
 * here: overlaps, duplicates, oversize (nothing may be written out of
 * bounds; the sanitizer build checks), tiny first fragments, empty and
 * misaligned fragments, conflicting ends, timeouts with and without the
 * first fragment, and floods against the datagram, piece and memory limits.
 * Every test ends with usock_stack_free, so LeakSanitizer sees any entry,
 * piece or timer left behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "usock.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"
#include "wire/udp.h"

#define PEER "198.18.0.1"
#define LOCAL "198.18.0.2"
#define UDP_PORT 3000
#define PEER_PORT 4000
#define SECOND 1000000000ULL
#define REASSEMBLY_TIMEOUT (30 * SECOND)
#define SENT_MAX 64
#define SENT_FRAME_MAX 2048

/* ---- the harness: one stack on an IP callback link -------------------- */

struct harness {
    uint64_t now;
    struct usock_stack *stack;
    struct usock_link *link;
    int udp_fd;
    /* What the stack sent, in order (the first SENT_MAX). */
    uint8_t sent[SENT_MAX][SENT_FRAME_MAX];
    size_t sent_length[SENT_MAX];
    int sent_count;
    int sent_total;
};

static uint8_t receive_buffer[65536];

static uint32_t ip_of(const char *text)
{
    struct in_addr address;
    CHECK_EQ(inet_pton(AF_INET, text, &address), 1);
    return address.s_addr;
}

static uint64_t harness_clock(void *context)
{
    return ((struct harness *)context)->now;
}

static void harness_capture(void *context, const uint8_t *packet, size_t length)
{
    struct harness *harness = context;
    harness->sent_total++;
    CHECK(length <= 1500); /* the link's MTU */
    if (harness->sent_count < SENT_MAX) {
        memcpy(harness->sent[harness->sent_count], packet, length);
        harness->sent_length[harness->sent_count++] = length;
    }
}

/* Runs the stack until it has nothing due now (all input read, timers that
 * are due fired). */
static void harness_poll(struct harness *harness)
{
    for (int i = 0; i < 100000; i++)
        if (usock_stack_poll(harness->stack, harness->now) > harness->now)
            return;
    CHECK(!"usock_stack_poll never settled");
}

static void harness_advance(struct harness *harness, uint64_t ns)
{
    harness->now += ns;
    harness_poll(harness);
}

/* Heap-allocated: the capture buffers are large. */
static struct harness *harness_new(void)
{
    struct harness *harness = calloc(1, sizeof(*harness));
    CHECK(harness != NULL);
    harness->now = 1000 * SECOND;
    CHECK_EQ(usock_link_callback_new(harness_capture, harness, 1, &harness->link), 0);
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = harness->link;
    config.address.s_addr = ip_of(LOCAL);
    config.prefix_length = 24;
    config.clock = harness_clock;
    config.clock_context = harness;
    config.seed = 11;
    harness->stack = usock_stack_new(&config);
    CHECK(harness->stack != NULL);
    harness->udp_fd = usock_socket(harness->stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(harness->udp_fd >= 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(UDP_PORT)};
    CHECK_EQ(usock_bind(harness->stack, harness->udp_fd, (struct sockaddr *)&local,
                        sizeof(local)), 0);
    return harness;
}

static void harness_free(struct harness *harness)
{
    usock_stack_free(harness->stack);
    free(harness);
}

static uint64_t counter(struct harness *harness, const char *name)
{
    return usock_stack_counter(harness->stack, name);
}

/* ---- datagrams and fragments ------------------------------------------ */

/* A whole IP payload (transport header and data) to be cut into fragments. */
struct datagram {
    uint8_t *bytes;
    size_t length;
    uint8_t protocol;
    uint16_t identification;
    uint32_t source;
};

/* A UDP datagram from source:PEER_PORT to LOCAL:UDP_PORT carrying
 * data_length bytes of a pattern chosen by seed, with its checksum over the
 * whole datagram. */
static struct datagram udp_datagram_from(const char *source, size_t data_length,
                                         uint16_t identification, unsigned seed)
{
    struct datagram datagram = {
        .length = UDP_HEADER_LENGTH + data_length,
        .protocol = IPPROTO_UDP,
        .identification = identification,
        .source = ip_of(source),
    };
    CHECK(datagram.length <= 65515);
    datagram.bytes = malloc(datagram.length);
    CHECK(datagram.bytes != NULL);
    for (size_t i = 0; i < data_length; i++)
        datagram.bytes[UDP_HEADER_LENGTH + i] = (uint8_t)(i * 7 + seed + (i >> 8));
    struct udp_header header = {
        .source_port = PEER_PORT,
        .destination_port = UDP_PORT,
        .length = (uint16_t)datagram.length,
    };
    udp_emit(&header, datagram.source, ip_of(LOCAL), datagram.bytes);
    return datagram;
}

static struct datagram udp_datagram(size_t data_length, uint16_t identification)
{
    return udp_datagram_from(PEER, data_length, identification, 1);
}

static void datagram_free(struct datagram *datagram)
{
    free(datagram->bytes);
    datagram->bytes = NULL;
}

/* Builds one fragment: a 20-byte header (correct checksum) and data. */
static size_t build_fragment(uint8_t *out, uint32_t source, uint8_t protocol,
                             uint16_t identification, size_t offset, bool more,
                             const uint8_t *data, size_t length)
{
    CHECK(offset % 8 == 0 && offset <= 65528);
    CHECK(IPV4_HEADER_LENGTH + length <= IPV4_PACKET_MAX);
    struct ipv4_header header = {
        .total_length = (uint16_t)(IPV4_HEADER_LENGTH + length),
        .identification = identification,
        .more_fragments = more,
        .fragment_offset = (uint16_t)offset,
        .time_to_live = 64,
        .protocol = protocol,
        .source = source,
        .destination = ip_of(LOCAL),
    };
    if (length)
        memcpy(out + IPV4_HEADER_LENGTH, data, length);
    ipv4_emit(&header, out);
    return IPV4_HEADER_LENGTH + length;
}

static void inject(struct harness *harness, const uint8_t *packet, size_t length)
{
    CHECK_EQ(usock_link_callback_input(harness->link, packet, length), 0);
    harness_poll(harness);
}

/* Sends a fragment with arbitrary data (which may lie about where it is). */
static void send_raw_fragment(struct harness *harness, uint8_t protocol, uint16_t identification,
                              size_t offset, bool more, const uint8_t *data, size_t length)
{
    static uint8_t packet[IPV4_PACKET_MAX];
    size_t packet_length = build_fragment(packet, ip_of(PEER), protocol, identification, offset,
                                          more, data, length);
    inject(harness, packet, packet_length);
}

/* Sends bytes [offset, offset + length) of datagram as one fragment, with MF
 * set unless it reaches the end. */
static void send_piece(struct harness *harness, const struct datagram *datagram, size_t offset,
                       size_t length)
{
    static uint8_t packet[IPV4_PACKET_MAX];
    CHECK(offset + length <= datagram->length);
    size_t packet_length =
        build_fragment(packet, datagram->source, datagram->protocol, datagram->identification,
                       offset, offset + length < datagram->length, datagram->bytes + offset,
                       length);
    inject(harness, packet, packet_length);
}

struct piece {
    size_t offset, length;
};

/* Cuts datagram into pieces of piece_size (the last shorter); returns how
 * many, at most capacity. */
static size_t cut(const struct datagram *datagram, size_t piece_size, struct piece *pieces,
                  size_t capacity)
{
    size_t count = 0;
    for (size_t offset = 0; offset < datagram->length; offset += piece_size) {
        CHECK(count < capacity);
        size_t rest = datagram->length - offset;
        pieces[count].offset = offset;
        pieces[count].length = rest < piece_size ? rest : piece_size;
        count++;
    }
    return count;
}

static void send_pieces(struct harness *harness, const struct datagram *datagram,
                        const struct piece *pieces, size_t count)
{
    for (size_t i = 0; i < count; i++)
        send_piece(harness, datagram, pieces[i].offset, pieces[i].length);
}

static void send_in_order(struct harness *harness, const struct datagram *datagram,
                          size_t piece_size)
{
    struct piece pieces[512];
    size_t count = cut(datagram, piece_size, pieces, 512);
    send_pieces(harness, datagram, pieces, count);
}

/* ---- what the socket got ---------------------------------------------- */

/* The next datagram the socket holds is exactly this one's data. */
static void expect_received(struct harness *harness, const struct datagram *datagram)
{
    size_t data_length = datagram->length - UDP_HEADER_LENGTH;
    struct sockaddr_in from;
    socklen_t from_length = sizeof(from);
    CHECK_EQ(usock_recvfrom(harness->stack, harness->udp_fd, receive_buffer,
                            sizeof(receive_buffer), 0, (struct sockaddr *)&from, &from_length),
             data_length);
    CHECK(memcmp(receive_buffer, datagram->bytes + UDP_HEADER_LENGTH, data_length) == 0);
    CHECK_EQ(from.sin_addr.s_addr, datagram->source);
    CHECK_EQ(ntohs(from.sin_port), PEER_PORT);
}

/* The socket received exactly the datagram's data, once, and nothing else. */
static void expect_delivered(struct harness *harness, const struct datagram *datagram)
{
    expect_received(harness, datagram);
    CHECK_ERRNO(usock_recv(harness->stack, harness->udp_fd, receive_buffer,
                           sizeof(receive_buffer), 0), EAGAIN);
}

static void expect_nothing_delivered(struct harness *harness)
{
    CHECK_ERRNO(usock_recv(harness->stack, harness->udp_fd, receive_buffer,
                           sizeof(receive_buffer), 0), EAGAIN);
}

/* ---- orders ----------------------------------------------------------- */

static void test_in_order_fragments_deliver_the_exact_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1001);
    send_in_order(harness, &datagram, 1480);
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmReqds"), 3);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 0);
    CHECK_EQ(counter(harness, "UdpInDatagrams"), 1);
    CHECK_EQ(counter(harness, "UdpInCsumErrors"), 0);
    CHECK_EQ(harness->sent_total, 0);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_reverse_order_last_fragment_first_delivers(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1002);
    struct piece pieces[8];
    size_t count = cut(&datagram, 1480, pieces, 8);
    for (size_t i = count; i-- > 0;) {
        /* Nothing comes out before the first fragment closes the last hole. */
        expect_nothing_delivered(harness);
        send_piece(harness, &datagram, pieces[i].offset, pieces[i].length);
    }
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 0);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_random_order_delivers(void)
{
    struct harness *harness = harness_new();
    uint32_t state = 12345;
    for (int round = 0; round < 20; round++) {
        struct datagram datagram = udp_datagram(3000 + (size_t)round * 97, (uint16_t)(0x2000 + round));
        struct piece pieces[64];
        size_t count = cut(&datagram, 256, pieces, 64);
        for (size_t i = count - 1; i > 0; i--) { /* Fisher-Yates */
            state = state * 1103515245u + 12345u;
            size_t j = (state >> 8) % (i + 1);
            struct piece swap = pieces[i];
            pieces[i] = pieces[j];
            pieces[j] = swap;
        }
        send_pieces(harness, &datagram, pieces, count);
        expect_delivered(harness, &datagram);
        datagram_free(&datagram);
    }
    CHECK_EQ(counter(harness, "IpReasmOKs"), 20);
    CHECK_EQ(counter(harness, "IpReasmFails"), 0);
    harness_free(harness);
}

static void test_interleaved_datagrams_with_different_ids_both_deliver(void)
{
    struct harness *harness = harness_new();
    struct datagram first = udp_datagram_from(PEER, 3000, 0x3001, 1);
    struct datagram second = udp_datagram_from(PEER, 3000, 0x3002, 2);
    struct piece pieces[8];
    size_t count = cut(&first, 1480, pieces, 8);
    for (size_t i = 0; i < count; i++) {
        send_piece(harness, &first, pieces[i].offset, pieces[i].length);
        send_piece(harness, &second, pieces[count - 1 - i].offset, pieces[count - 1 - i].length);
    }
    expect_received(harness, &first); /* its last piece came first */
    expect_delivered(harness, &second);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 2);
    datagram_free(&first);
    datagram_free(&second);
    harness_free(harness);
}

static void test_same_id_from_different_sources_are_different_datagrams(void)
{
    struct harness *harness = harness_new();
    struct datagram first = udp_datagram_from(PEER, 3000, 0x3003, 3);
    struct datagram second = udp_datagram_from("198.18.0.3", 3000, 0x3003, 4);
    struct piece pieces[8];
    size_t count = cut(&first, 1480, pieces, 8);
    for (size_t i = 0; i + 1 < count; i++) {
        send_piece(harness, &first, pieces[i].offset, pieces[i].length);
        send_piece(harness, &second, pieces[i].offset, pieces[i].length);
    }
    CHECK_EQ(counter(harness, "IpReasmDuplicates"), 0);
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 0);
    send_piece(harness, &second, pieces[count - 1].offset, pieces[count - 1].length);
    expect_delivered(harness, &second);
    send_piece(harness, &first, pieces[count - 1].offset, pieces[count - 1].length);
    expect_delivered(harness, &first);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 2);
    datagram_free(&first);
    datagram_free(&second);
    harness_free(harness);
}

static void test_exact_duplicates_are_counted_and_delivered_once(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1003);
    struct piece pieces[16];
    size_t count = cut(&datagram, 512, pieces, 16);
    /* Every piece but the last twice, then the last once: the datagram
     * completes on the last, and no copy is left to start another. */
    for (size_t i = 0; i + 1 < count; i++) {
        send_piece(harness, &datagram, pieces[i].offset, pieces[i].length);
        send_piece(harness, &datagram, pieces[i].offset, pieces[i].length);
    }
    /* And the first once more, out of turn. */
    send_piece(harness, &datagram, pieces[0].offset, pieces[0].length);
    expect_nothing_delivered(harness);
    send_piece(harness, &datagram, pieces[count - 1].offset, pieces[count - 1].length);
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmDuplicates"), count);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 0);
    CHECK_EQ(counter(harness, "UdpInDatagrams"), 1);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_eight_byte_fragments_up_to_the_piece_limit_deliver(void)
{
    struct harness *harness = harness_new();
    /* 1024 bytes of UDP: 128 fragments of 8 bytes, FRAGMENTS_PER_DATAGRAM. */
    struct datagram datagram = udp_datagram(1024 - UDP_HEADER_LENGTH, 0x1004);
    send_in_order(harness, &datagram, 8);
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmReqds"), 128);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    /* And the same in reverse order. */
    struct datagram reversed = udp_datagram_from(PEER, 1024 - UDP_HEADER_LENGTH, 0x1005, 9);
    for (size_t offset = 1024; offset > 0; offset -= 8)
        send_piece(harness, &reversed, offset - 8, 8);
    expect_delivered(harness, &reversed);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 2);
    CHECK_EQ(counter(harness, "IpReasmFails"), 0);
    datagram_free(&datagram);
    datagram_free(&reversed);
    harness_free(harness);
}

static void test_more_pieces_than_the_limit_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    /* 1032 bytes: 129 fragments of 8 bytes, one past the limit. */
    struct datagram datagram = udp_datagram(1032 - UDP_HEADER_LENGTH, 0x1006);
    send_in_order(harness, &datagram, 8);
    expect_nothing_delivered(harness);
    CHECK_EQ(counter(harness, "IpReasmMemoryDrops"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 0);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_largest_datagram_65535_bytes_delivers(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(65507, 0x1007); /* IP total 65535 */
    send_in_order(harness, &datagram, 1480);
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmReqds"), 45);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    CHECK_EQ(counter(harness, "IpReasmOversize"), 0);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_corrupted_fragment_fails_the_udp_checksum_after_reassembly(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1008);
    send_piece(harness, &datagram, 0, 1480);
    datagram.bytes[2000] ^= 0x40; /* the second fragment is damaged in flight */
    send_piece(harness, &datagram, 1480, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    expect_nothing_delivered(harness);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    CHECK_EQ(counter(harness, "UdpInCsumErrors"), 1);
    datagram_free(&datagram);
    harness_free(harness);
}

/* ---- overlaps ----------------------------------------------------------- */

/* After a failure, the rest of the datagram's fragments start a new entry
 * that can never complete: nothing is delivered, then or later. */
static void expect_dropped_for_good(struct harness *harness)
{
    expect_nothing_delivered(harness);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 0);
    harness_advance(harness, REASSEMBLY_TIMEOUT + SECOND);
    expect_nothing_delivered(harness);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 0);
}

static void test_partial_overlap_with_an_earlier_fragment_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1101);
    send_piece(harness, &datagram, 0, 1480);
    send_piece(harness, &datagram, 1000, 1000); /* starts inside [0, 1480) */
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    send_piece(harness, &datagram, 1480, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 1);
    expect_dropped_for_good(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_partial_overlap_with_a_later_fragment_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1102);
    send_piece(harness, &datagram, 1480, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    send_piece(harness, &datagram, 0, 1488); /* runs 8 bytes into [1480, 2960) */
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    expect_dropped_for_good(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_fragment_covering_another_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1103);
    send_piece(harness, &datagram, 1480, 8);
    send_piece(harness, &datagram, 1480 - 8, 32); /* covers [1480, 1488) whole */
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    for (size_t offset = 0; offset < datagram.length; offset += 1480)
        send_piece(harness, &datagram, offset,
                   datagram.length - offset < 1480 ? datagram.length - offset : 1480);
    /* That whole sequence is clean, and completes a fresh entry. */
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 1);
    expect_delivered(harness, &datagram);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_fragment_inside_another_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1104);
    send_piece(harness, &datagram, 0, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    send_piece(harness, &datagram, 8, 16); /* inside [0, 1480) */
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    send_piece(harness, &datagram, 1480, 1480);
    expect_dropped_for_good(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_same_offset_different_length_is_an_overlap(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1105);
    send_piece(harness, &datagram, 1480, 1480);
    send_piece(harness, &datagram, 1480, 8);
    CHECK_EQ(counter(harness, "IpReasmOverlaps"), 1);
    CHECK_EQ(counter(harness, "IpReasmDuplicates"), 0);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    send_piece(harness, &datagram, 0, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    expect_dropped_for_good(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

/* ---- oversize --------------------------------------------------------- */

static void test_fragment_past_65535_bytes_is_oversize(void)
{
    struct harness *harness = harness_new();
    static uint8_t junk[1480];
    memset(junk, 0xa5, sizeof(junk));
    /* The highest offset the field can say, with a full fragment after it:
     * a reassembler that trusted it would write ~1.5 kB past 64 kB. */
    send_raw_fragment(harness, IPPROTO_UDP, 0x1201, 65528, false, junk, sizeof(junk));
    CHECK_EQ(counter(harness, "IpReasmOversize"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    send_raw_fragment(harness, IPPROTO_UDP, 0x1201, 65528, true, junk, 8);
    CHECK_EQ(counter(harness, "IpReasmOversize"), 2);
    expect_nothing_delivered(harness);
    harness_advance(harness, REASSEMBLY_TIMEOUT + SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 0); /* nothing was kept */
    CHECK_EQ(harness->sent_total, 0);
    harness_free(harness);
}

static void test_ping_of_death_drops_the_datagram_being_built(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(65507, 0x1202);
    struct piece pieces[64];
    size_t count = cut(&datagram, 1480, pieces, 64);
    for (size_t i = 0; i + 1 < count; i++)
        send_piece(harness, &datagram, pieces[i].offset, pieces[i].length);
    /* The last piece, one byte longer than fits in 65535. */
    static uint8_t last[1480];
    memcpy(last, datagram.bytes + pieces[count - 1].offset, pieces[count - 1].length);
    send_raw_fragment(harness, IPPROTO_UDP, 0x1202, pieces[count - 1].offset, false, last,
                      pieces[count - 1].length + 1);
    CHECK_EQ(counter(harness, "IpReasmOversize"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    expect_nothing_delivered(harness);
    /* The entry went with it: no time exceeded later, no leak at the end. */
    harness_advance(harness, REASSEMBLY_TIMEOUT + SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 0);
    CHECK_EQ(harness->sent_total, 0);
    datagram_free(&datagram);
    harness_free(harness);
}

/* ---- malformed fragments ------------------------------------------------- */

static void test_tiny_first_tcp_fragment_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    /* A first fragment must be a multiple of 8; 8 bytes hold a UDP or ICMP
     * header but not TCP's 20 (RFC 1858: flags would be in fragment 2). */
    uint8_t tcp[40] = {0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02};
    send_raw_fragment(harness, IPPROTO_TCP, 0x1301, 0, true, tcp, 8);
    CHECK_EQ(counter(harness, "IpReasmTinyFirst"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    /* Also when the rest had come first. */
    send_raw_fragment(harness, IPPROTO_TCP, 0x1302, 8, false, tcp + 8, 32);
    send_raw_fragment(harness, IPPROTO_TCP, 0x1302, 0, true, tcp, 8);
    CHECK_EQ(counter(harness, "IpReasmTinyFirst"), 2);
    CHECK_EQ(counter(harness, "IpReasmFails"), 2);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 0);
    CHECK_EQ(counter(harness, "TcpInSegs"), 0);
    harness_advance(harness, REASSEMBLY_TIMEOUT + SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 0);
    CHECK_EQ(harness->sent_total, 0);
    harness_free(harness);
}

static void test_eight_byte_first_udp_fragment_is_not_tiny(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(100, 0x1303);
    send_piece(harness, &datagram, 0, 8);
    send_piece(harness, &datagram, 8, datagram.length - 8);
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmTinyFirst"), 0);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_zero_length_fragment_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1401);
    send_piece(harness, &datagram, 0, 1480);
    send_raw_fragment(harness, IPPROTO_UDP, 0x1401, 1480, true, NULL, 0);
    CHECK_EQ(counter(harness, "IpReasmMalformed"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    send_piece(harness, &datagram, 1480, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    expect_dropped_for_good(harness);
    /* An empty last fragment is as malformed. */
    send_raw_fragment(harness, IPPROTO_UDP, 0x1402, 1480, false, NULL, 0);
    CHECK_EQ(counter(harness, "IpReasmMalformed"), 2);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_non_last_fragment_not_a_multiple_of_8_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1501);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    send_piece(harness, &datagram, 0, 1479); /* MF set, 1479 bytes */
    CHECK_EQ(counter(harness, "IpReasmMalformed"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    send_piece(harness, &datagram, 0, 1480);
    send_piece(harness, &datagram, 1480, 1480);
    expect_dropped_for_good(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_conflicting_last_fragments_drop_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1601);
    send_piece(harness, &datagram, 0, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960); /* ends at 3008 */
    send_raw_fragment(harness, IPPROTO_UDP, 0x1601, 1480, false, datagram.bytes + 1480, 100);
    CHECK_EQ(counter(harness, "IpReasmMalformed"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    send_piece(harness, &datagram, 1480, 1480);
    expect_dropped_for_good(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_fragment_past_the_known_end_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1602);
    send_piece(harness, &datagram, 2960, datagram.length - 2960); /* ends at 3008 */
    send_raw_fragment(harness, IPPROTO_UDP, 0x1602, 3008, true, datagram.bytes, 8);
    CHECK_EQ(counter(harness, "IpReasmMalformed"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_last_fragment_ending_before_a_stored_fragment_drops_the_datagram(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1603);
    /* A piece past the end comes first; then the last fragment says the
     * datagram ends before it.  The datagram can never complete: it is
     * malformed now, as when the pieces come the other way round. */
    send_raw_fragment(harness, IPPROTO_UDP, 0x1603, 3008, true, datagram.bytes, 8);
    send_piece(harness, &datagram, 0, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960); /* ends at 3008 */
    CHECK_EQ(counter(harness, "IpReasmMalformed"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    datagram_free(&datagram);
    harness_free(harness);
}

/* ---- timeouts ----------------------------------------------------------- */

static void test_timeout_sends_time_exceeded_quoting_the_first_fragment(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1701);
    static uint8_t first[1500];
    size_t first_length = build_fragment(first, datagram.source, IPPROTO_UDP, 0x1701, 0, true,
                                         datagram.bytes, 1480);
    inject(harness, first, first_length);
    send_piece(harness, &datagram, 2960, datagram.length - 2960); /* a hole stays */
    harness_advance(harness, REASSEMBLY_TIMEOUT - SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 0);
    CHECK_EQ(harness->sent_total, 0);
    harness_advance(harness, 2 * SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    expect_nothing_delivered(harness);

    CHECK_EQ(harness->sent_total, 1);
    const uint8_t *packet = harness->sent[0];
    size_t length = harness->sent_length[0];
    struct ipv4_header ip;
    CHECK_EQ(ipv4_parse(packet, length, true, &ip), IPV4_PARSE_OK);
    CHECK_EQ(ip.protocol, IPPROTO_ICMP);
    CHECK_EQ(ip.source, ip_of(LOCAL));
    CHECK_EQ(ip.destination, ip_of(PEER));
    CHECK(!ip.more_fragments && ip.fragment_offset == 0);
    CHECK_EQ(ip.total_length, length);
    struct icmp_header icmp;
    CHECK_EQ(icmp_parse(packet + ip.header_length, length - ip.header_length, true, &icmp),
             ICMP_PARSE_OK);
    CHECK_EQ(icmp.type, ICMP_TYPE_TIME_EXCEEDED);
    CHECK_EQ(icmp.code, 1); /* fragment reassembly time exceeded */
    CHECK_EQ(icmp.rest, 0);
    /* The quote is the first fragment as it came, header (MF set) first,
     * cut to fit 576 bytes (RFC 1812 4.3.2.3). */
    const uint8_t *quote = packet + ip.header_length + ICMP_HEADER_LENGTH;
    size_t quote_length = length - ip.header_length - ICMP_HEADER_LENGTH;
    CHECK(quote_length >= IPV4_HEADER_LENGTH + 8); /* RFC 792's minimum */
    CHECK(length <= 576);
    CHECK_EQ(quote_length, 576 - IPV4_HEADER_LENGTH - ICMP_HEADER_LENGTH);
    CHECK(memcmp(quote, first, quote_length) == 0);
    CHECK_EQ(counter(harness, "IcmpOutMsgs"), 1);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_timeout_without_the_first_fragment_sends_nothing(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1702);
    send_piece(harness, &datagram, 1480, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    harness_advance(harness, REASSEMBLY_TIMEOUT + SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 1);
    CHECK_EQ(counter(harness, "IpReasmFails"), 1);
    CHECK_EQ(harness->sent_total, 0);
    CHECK_EQ(counter(harness, "IcmpOutMsgs"), 0);
    /* A late first fragment starts over; it does not revive the old one. */
    send_piece(harness, &datagram, 0, 1480);
    expect_nothing_delivered(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_timeout_is_counted_from_the_first_fragment(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1703);
    send_piece(harness, &datagram, 1480, 1480);
    harness_advance(harness, 20 * SECOND);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    harness_advance(harness, 11 * SECOND); /* 31 s after the first, 11 after the last */
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 1);
    send_piece(harness, &datagram, 0, 1480);
    expect_nothing_delivered(harness);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_datagram_completing_just_before_the_timeout_delivers(void)
{
    struct harness *harness = harness_new();
    struct datagram datagram = udp_datagram(3000, 0x1704);
    send_piece(harness, &datagram, 0, 1480);
    send_piece(harness, &datagram, 2960, datagram.length - 2960);
    harness_advance(harness, REASSEMBLY_TIMEOUT - SECOND / 1000);
    send_piece(harness, &datagram, 1480, 1480);
    expect_delivered(harness, &datagram);
    harness_advance(harness, 2 * SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 0);
    CHECK_EQ(harness->sent_total, 0);
    datagram_free(&datagram);
    harness_free(harness);
}

/* ---- floods ------------------------------------------------------------- */

static void test_flood_of_tiny_fragments_hits_the_datagram_limit_then_recovers(void)
{
    struct harness *harness = harness_new();
    /* 2000 datagrams, one 8-byte middle fragment each: none can complete,
     * none has a first fragment (so no ICMP when they time out). */
    static const uint8_t tiny[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (unsigned id = 0; id < 2000; id++)
        send_raw_fragment(harness, IPPROTO_UDP, (uint16_t)(0x8000 + id), 8, true, tiny, 8);
    CHECK_EQ(counter(harness, "IpReasmReqds"), 2000);
    uint64_t drops = counter(harness, "IpReasmMemoryDrops");
    CHECK_EQ(drops, 2000 - 1024); /* REASSEMBLY_LIMIT datagrams at once */

    /* While the table is full a new datagram is refused: the flood's older
     * entries are not evicted for it. */
    struct datagram refused = udp_datagram(3000, 0x1801);
    send_in_order(harness, &refused, 1480);
    expect_nothing_delivered(harness);
    CHECK(counter(harness, "IpReasmMemoryDrops") > drops);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 0);

    harness_advance(harness, REASSEMBLY_TIMEOUT + SECOND);
    CHECK_EQ(counter(harness, "IpReasmTimeout"), 1024);
    CHECK_EQ(harness->sent_total, 0);

    struct datagram datagram = udp_datagram(3000, 0x1802);
    send_in_order(harness, &datagram, 1480);
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    datagram_free(&refused);
    datagram_free(&datagram);
    harness_free(harness);
}

static void test_flood_of_large_fragments_hits_the_memory_limit_then_recovers(void)
{
    struct harness *harness = harness_new();
    /* 100 datagrams of 42 full middle fragments each (62 kB held apiece,
     * 6 MB in all) against a 4 MB budget. */
    static uint8_t data[1480];
    memset(data, 0x5a, sizeof(data));
    for (unsigned id = 0; id < 100; id++)
        for (size_t offset = 1480; offset <= 42 * 1480; offset += 1480)
            send_raw_fragment(harness, IPPROTO_UDP, (uint16_t)(0x9000 + id), offset, true, data,
                              sizeof(data));
    CHECK(counter(harness, "IpReasmMemoryDrops") > 0);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 0);
    CHECK_EQ(counter(harness, "IpReasmOversize"), 0);
    harness_advance(harness, REASSEMBLY_TIMEOUT + SECOND);
    CHECK(counter(harness, "IpReasmTimeout") > 0);
    CHECK_EQ(harness->sent_total, 0);

    struct datagram datagram = udp_datagram(65507, 0x1803);
    send_in_order(harness, &datagram, 1480);
    expect_delivered(harness, &datagram);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    datagram_free(&datagram);
    harness_free(harness);
}

/* ---- ICMP echo, fragmented both ways -------------------------------------- */

static void test_fragmented_echo_request_draws_a_fragmented_reply(void)
{
    struct harness *harness = harness_new();
    struct datagram request = {
        .length = ICMP_HEADER_LENGTH + 4000,
        .protocol = IPPROTO_ICMP,
        .identification = 0x1901,
        .source = ip_of(PEER),
    };
    request.bytes = malloc(request.length);
    CHECK(request.bytes != NULL);
    for (size_t i = 0; i < 4000; i++)
        request.bytes[ICMP_HEADER_LENGTH + i] = (uint8_t)(i * 13 + (i >> 8));
    struct icmp_header echo = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = 0xbeef0007};
    icmp_emit(&echo, request.bytes, 4000);
    send_in_order(harness, &request, 1480);
    CHECK_EQ(counter(harness, "IpReasmOKs"), 1);
    CHECK_EQ(counter(harness, "IcmpInEchos"), 1);
    CHECK_EQ(counter(harness, "IcmpOutEchoReps"), 1);

    /* The reply (4028 bytes of IP) leaves in fragments that fit 1500. */
    CHECK_EQ(harness->sent_total, 3);
    CHECK_EQ(counter(harness, "IpFragCreates"), 3);
    CHECK_EQ(counter(harness, "IpFragOKs"), 1);
    static uint8_t reply[65536];
    size_t covered = 0;
    uint16_t identification = 0;
    for (int i = 0; i < harness->sent_count; i++) {
        struct ipv4_header ip;
        CHECK_EQ(ipv4_parse(harness->sent[i], harness->sent_length[i], true, &ip), IPV4_PARSE_OK);
        CHECK(harness->sent_length[i] <= 1500);
        CHECK_EQ(ip.total_length, harness->sent_length[i]);
        CHECK_EQ(ip.protocol, IPPROTO_ICMP);
        CHECK_EQ(ip.source, ip_of(LOCAL));
        CHECK_EQ(ip.destination, ip_of(PEER));
        CHECK(!ip.dont_fragment);
        if (i == 0)
            identification = ip.identification;
        CHECK_EQ(ip.identification, identification);
        CHECK_EQ(ip.fragment_offset, covered); /* in order, no gap, no overlap */
        size_t length = ip.total_length - ip.header_length;
        CHECK_EQ(ip.more_fragments, i + 1 < harness->sent_count);
        if (ip.more_fragments)
            CHECK_EQ(length % 8, 0);
        memcpy(reply + covered, harness->sent[i] + ip.header_length, length);
        covered += length;
    }
    CHECK_EQ(covered, request.length);
    struct icmp_header answer;
    CHECK_EQ(icmp_parse(reply, covered, true, &answer), ICMP_PARSE_OK);
    CHECK_EQ(answer.type, ICMP_TYPE_ECHO_REPLY);
    CHECK_EQ(answer.code, 0);
    CHECK_EQ(answer.rest, 0xbeef0007);
    CHECK(memcmp(reply + ICMP_HEADER_LENGTH, request.bytes + ICMP_HEADER_LENGTH, 4000) == 0);
    datagram_free(&request);
    harness_free(harness);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_in_order_fragments_deliver_the_exact_datagram),
    CHECK_TEST(test_reverse_order_last_fragment_first_delivers),
    CHECK_TEST(test_random_order_delivers),
    CHECK_TEST(test_interleaved_datagrams_with_different_ids_both_deliver),
    CHECK_TEST(test_same_id_from_different_sources_are_different_datagrams),
    CHECK_TEST(test_exact_duplicates_are_counted_and_delivered_once),
    CHECK_TEST(test_eight_byte_fragments_up_to_the_piece_limit_deliver),
    CHECK_TEST(test_more_pieces_than_the_limit_drops_the_datagram),
    CHECK_TEST(test_largest_datagram_65535_bytes_delivers),
    CHECK_TEST(test_corrupted_fragment_fails_the_udp_checksum_after_reassembly),
    CHECK_TEST(test_partial_overlap_with_an_earlier_fragment_drops_the_datagram),
    CHECK_TEST(test_partial_overlap_with_a_later_fragment_drops_the_datagram),
    CHECK_TEST(test_fragment_covering_another_drops_the_datagram),
    CHECK_TEST(test_fragment_inside_another_drops_the_datagram),
    CHECK_TEST(test_same_offset_different_length_is_an_overlap),
    CHECK_TEST(test_fragment_past_65535_bytes_is_oversize),
    CHECK_TEST(test_ping_of_death_drops_the_datagram_being_built),
    CHECK_TEST(test_tiny_first_tcp_fragment_drops_the_datagram),
    CHECK_TEST(test_eight_byte_first_udp_fragment_is_not_tiny),
    CHECK_TEST(test_zero_length_fragment_drops_the_datagram),
    CHECK_TEST(test_non_last_fragment_not_a_multiple_of_8_drops_the_datagram),
    CHECK_TEST(test_conflicting_last_fragments_drop_the_datagram),
    CHECK_TEST(test_fragment_past_the_known_end_drops_the_datagram),
    CHECK_TEST(test_last_fragment_ending_before_a_stored_fragment_drops_the_datagram),
    CHECK_TEST(test_timeout_sends_time_exceeded_quoting_the_first_fragment),
    CHECK_TEST(test_timeout_without_the_first_fragment_sends_nothing),
    CHECK_TEST(test_timeout_is_counted_from_the_first_fragment),
    CHECK_TEST(test_datagram_completing_just_before_the_timeout_delivers),
    CHECK_TEST(test_flood_of_tiny_fragments_hits_the_datagram_limit_then_recovers),
    CHECK_TEST(test_flood_of_large_fragments_hits_the_memory_limit_then_recovers),
    CHECK_TEST(test_fragmented_echo_request_draws_a_fragmented_reply),
};

CHECK_MAIN(tests)
