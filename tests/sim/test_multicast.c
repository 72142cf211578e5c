/*
 * test_multicast.c - multicast between two stacks on the in-memory wire:
 * joining sends IGMP reports, the receive filter passes only joined groups,
 * every socket on the port with SO_REUSEADDR gets its own copy, the sender
 * hears itself when it is a member (IP_MULTICAST_LOOP), queries draw
 * reports, leaving sends a leave, and the option errors are Linux's.
 *
 * Source-specific multicast: with the far end of the wire read by the test
 * (a "probe" world), the IGMPv3 reports a stack sends are parsed and their
 * records checked against RFC 3376 5.1 (state changes) and 5.2 (answers to
 * general, group-specific and group-and-source-specific queries, which the
 * test injects); a datagram from a source the interface filters out is
 * dropped and counted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "usock.h"
#include "wire/igmp.h"
#include "wire/ipv4.h"

struct world {
    uint64_t now;
    struct usock_stack *a, *b;
    struct usock_link *wire; /* probe world: the far end of a's link */
};

static uint64_t world_clock(void *context)
{
    return ((struct world *)context)->now;
}

static struct usock_stack *make_stack(struct world *world, struct usock_link *link,
                                      const char *address, unsigned seed)
{
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    inet_pton(AF_INET, address, &config.address);
    config.prefix_length = 24;
    config.clock = world_clock;
    config.clock_context = world;
    config.seed = seed;
    struct usock_stack *stack = usock_stack_new(&config);
    CHECK(stack != NULL);
    return stack;
}

static void world_init(struct world *world)
{
    memset(world, 0, sizeof(*world));
    world->now = 1000000000ULL;
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    world->a = make_stack(world, a, "198.18.0.1", 1);
    world->b = make_stack(world, b, "198.18.0.2", 2);
}

static void world_run(struct world *world, int rounds, uint64_t step_ns)
{
    for (int i = 0; i < rounds; i++) {
        usock_stack_poll(world->a, world->now);
        usock_stack_poll(world->b, world->now);
        world->now += step_ns;
    }
}

static struct sockaddr_in address_of(const char *text, uint16_t port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, text, &address.sin_addr);
    return address;
}

static int bound_socket(struct usock_stack *stack, uint16_t port, bool reuse)
{
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    int on = 1;
    if (reuse)
        CHECK_EQ(usock_setsockopt(stack, fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
    struct sockaddr_in local = address_of("0.0.0.0", port);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    return fd;
}

static int join(struct usock_stack *stack, int fd, const char *group)
{
    struct ip_mreq request;
    memset(&request, 0, sizeof(request));
    inet_pton(AF_INET, group, &request.imr_multiaddr);
    return usock_setsockopt(stack, fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request));
}

static void test_joined_group_receives_and_unjoined_is_filtered(void)
{
    struct world world;
    world_init(&world);
    int first = bound_socket(world.b, 5000, true);
    int second = bound_socket(world.b, 5000, true);
    CHECK_EQ(join(world.b, first, "239.1.2.3"), 0);
    CHECK_EQ(usock_stack_counter(world.b, "IgmpOutReports"), 1);
    int sender = usock_socket(world.a, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in group = address_of("239.1.2.3", 5000);
    CHECK_EQ(usock_sendto(world.a, sender, "mc", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    struct sockaddr_in other = address_of("239.9.9.9", 5000);
    CHECK_EQ(usock_sendto(world.a, sender, "no", 2, 0, (struct sockaddr *)&other, sizeof(other)), 2);
    world_run(&world, 3, 1000000);
    char buffer[8];
    /* Both sockets on the port get a copy (the host joined the group). */
    CHECK_EQ(usock_recv(world.b, first, buffer, sizeof(buffer), MSG_DONTWAIT), 2);
    CHECK(memcmp(buffer, "mc", 2) == 0);
    CHECK_EQ(usock_recv(world.b, second, buffer, sizeof(buffer), MSG_DONTWAIT), 2);
    CHECK_ERRNO(usock_recv(world.b, first, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    CHECK(usock_stack_counter(world.b, "IpInMulticastFiltered") >= 1);
    /* The unsolicited report is sent again a second later. */
    world_run(&world, 15, 100000000);
    CHECK_EQ(usock_stack_counter(world.b, "IgmpOutReports"), 2);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static void test_sender_member_hears_itself_unless_loop_is_off(void)
{
    struct world world;
    world_init(&world);
    int fd = bound_socket(world.a, 6000, false);
    CHECK_EQ(join(world.a, fd, "239.1.1.1"), 0);
    struct sockaddr_in group = address_of("239.1.1.1", 6000);
    CHECK_EQ(usock_sendto(world.a, fd, "me", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    char buffer[8];
    CHECK_EQ(usock_recv(world.a, fd, buffer, sizeof(buffer), MSG_DONTWAIT), 2);
    int off = 0;
    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof(off)), 0);
    CHECK_EQ(usock_sendto(world.a, fd, "me", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    CHECK_ERRNO(usock_recv(world.a, fd, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    int ttl = 0;
    socklen_t length = sizeof(ttl);
    CHECK_EQ(usock_getsockopt(world.a, fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, &length), 0);
    CHECK_EQ(ttl, 1);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static void test_membership_option_errors_are_linux(void)
{
    struct world world;
    world_init(&world);
    int fd = bound_socket(world.a, 7000, false);
    CHECK_ERRNO(join(world.a, fd, "198.18.0.7"), EINVAL);
    CHECK_EQ(join(world.a, fd, "239.2.2.2"), 0);
    CHECK_ERRNO(join(world.a, fd, "239.2.2.2"), EADDRINUSE);
    struct ip_mreq request;
    memset(&request, 0, sizeof(request));
    inet_pton(AF_INET, "239.3.3.3", &request.imr_multiaddr);
    CHECK_ERRNO(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &request,
                                 sizeof(request)), EADDRNOTAVAIL);
    inet_pton(AF_INET, "239.2.2.2", &request.imr_multiaddr);
    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &request,
                              sizeof(request)), 0);
    CHECK_EQ(usock_stack_counter(world.a, "IgmpOutLeaves"), 1);
    int tcp = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
    CHECK_ERRNO(join(world.a, tcp, "239.2.2.2"), EPROTO);
    /* Closing a socket leaves its groups. */
    CHECK_EQ(join(world.a, fd, "239.4.4.4"), 0);
    CHECK_EQ(usock_close(world.a, fd), 0);
    CHECK_EQ(usock_stack_counter(world.a, "IgmpOutLeaves"), 2);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static void test_general_query_draws_a_report(void)
{
    struct world world;
    world_init(&world);
    int fd = bound_socket(world.b, 7000, false);
    CHECK_EQ(join(world.b, fd, "239.5.5.5"), 0);
    world_run(&world, 30, 100000000); /* past the unsolicited reports */
    uint64_t before = usock_stack_counter(world.b, "IgmpOutReports");
    /* Stack A plays the querier with a raw IGMP socket: a v3 general query. */
    int raw = usock_socket(world.a, AF_INET, SOCK_RAW, IPPROTO_IGMP);
    CHECK(raw >= 0);
    uint8_t query[12] = {IGMP_TYPE_QUERY, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t sum = 0;
    for (int i = 0; i < 12; i += 2)
        sum += (uint32_t)(query[i] << 8 | query[i + 1]);
    sum = (sum & 0xffff) + (sum >> 16);
    query[2] = (uint8_t)(~sum >> 8);
    query[3] = (uint8_t)~sum;
    struct sockaddr_in all_hosts = address_of("224.0.0.1", 0);
    CHECK_EQ(usock_sendto(world.a, raw, query, sizeof(query), 0, (struct sockaddr *)&all_hosts,
                          sizeof(all_hosts)), 12);
    world_run(&world, 20, 100000000); /* max response 1 s */
    CHECK_EQ(usock_stack_counter(world.b, "IgmpInQueries"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "IgmpOutReports"), before + 1);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

/* ------------------------------------------------------------------ */
/* Source-specific multicast and IGMPv3 report contents                */
/* ------------------------------------------------------------------ */

/* A world of one stack (a, 198.18.0.1) whose wire the test reads. */
static void probe_init(struct world *world)
{
    memset(world, 0, sizeof(*world));
    world->now = 1000000000ULL;
    struct usock_link *a;
    CHECK_EQ(usock_link_mem_pair(&a, &world->wire), 0);
    world->a = make_stack(world, a, "198.18.0.1", 1);
}

static void probe_free(struct world *world)
{
    usock_stack_free(world->a);
    usock_link_close(world->wire);
}

/* Advances a's clock by rounds steps of step_ns, polling it. */
static void probe_run(struct world *world, int rounds, uint64_t step_ns)
{
    for (int i = 0; i < rounds; i++) {
        usock_stack_poll(world->a, world->now);
        world->now += step_ns;
    }
}

static uint16_t checksum_of(const uint8_t *data, size_t length)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < length; i += 2)
        sum += (uint32_t)(data[i] << 8 | data[i + 1]);
    if (length & 1)
        sum += (uint32_t)data[length - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static uint32_t ip(const char *text)
{
    uint32_t address;
    CHECK_EQ(inet_pton(AF_INET, text, &address), 1);
    return address;
}

struct seen_record {
    uint8_t type;
    uint32_t group;
    unsigned source_count;
    uint32_t sources[64];
};

struct seen_report {
    unsigned record_count;
    struct seen_record records[4];
};

static uint32_t load32(const uint8_t *p)
{
    uint32_t value;
    memcpy(&value, p, 4);
    return value;
}

/* Reads frames from the wire until an IGMPv3 report; parses it into *out
 * (checking its checksum and lengths).  False when none is waiting. */
static bool next_report(struct world *world, struct seen_report *out)
{
    uint8_t frame[2048];
    for (;;) {
        ssize_t length = usock_link_receive(world->wire, frame, sizeof(frame), world->now);
        if (length < 0)
            return false;
        if (length < 14 + 20 || frame[12] != 0x08 || frame[13] != 0x00 || frame[14 + 9] != 2)
            continue;
        size_t header = (size_t)(frame[14] & 0x0f) * 4;
        size_t total = (size_t)(frame[14 + 2] << 8 | frame[14 + 3]);
        const uint8_t *igmp = frame + 14 + header;
        size_t igmp_length = total - header;
        CHECK(14 + total <= (size_t)length);
        if (igmp[0] != IGMP_TYPE_V3_REPORT)
            continue;
        CHECK_EQ(checksum_of(igmp, igmp_length), 0);
        memset(out, 0, sizeof(*out));
        out->record_count = (unsigned)(igmp[6] << 8 | igmp[7]);
        CHECK(out->record_count <= 4);
        size_t offset = 8;
        for (unsigned r = 0; r < out->record_count; r++) {
            struct seen_record *record = &out->records[r];
            CHECK(offset + 8 <= igmp_length);
            record->type = igmp[offset];
            record->source_count = (unsigned)(igmp[offset + 2] << 8 | igmp[offset + 3]);
            record->group = load32(igmp + offset + 4);
            offset += 8;
            CHECK(record->source_count <= 64);
            CHECK(offset + 4 * record->source_count <= igmp_length);
            for (unsigned i = 0; i < record->source_count; i++, offset += 4)
                record->sources[i] = load32(igmp + offset);
        }
        CHECK_EQ(offset, igmp_length);
        return true;
    }
}

/* Whether record lists exactly sources (any order; NULL-terminated). */
static bool record_lists(const struct seen_record *record, const char *const *sources)
{
    unsigned count = 0;
    for (; sources[count]; count++) {
        bool found = false;
        for (unsigned i = 0; i < record->source_count; i++)
            found = found || record->sources[i] == ip(sources[count]);
        if (!found)
            return false;
    }
    return count == record->source_count;
}

/* Checks the next report is one record of type for group listing exactly
 * the sources given (NULL for none). */
#define EXPECT_RECORD(in_world, expected_type, expected_group, ...)                      \
    do {                                                                                 \
        const char *const expected_sources[] = {__VA_ARGS__, NULL};                      \
        struct seen_report expected_report;                                              \
        CHECK(next_report((in_world), &expected_report));                                \
        CHECK_EQ(expected_report.record_count, 1);                                       \
        CHECK_EQ(expected_report.records[0].type, (expected_type));                      \
        CHECK_EQ(expected_report.records[0].group, ip(expected_group));                  \
        CHECK(record_lists(&expected_report.records[0], expected_sources));              \
    } while (0)

static void expect_no_report(struct world *world)
{
    struct seen_report report;
    CHECK(!next_report(world, &report));
}

static int source_option(struct usock_stack *stack, int fd, int name, const char *group,
                         const char *source)
{
    struct ip_mreq_source request;
    memset(&request, 0, sizeof(request));
    inet_pton(AF_INET, group, &request.imr_multiaddr);
    inet_pton(AF_INET, source, &request.imr_sourceaddr);
    return usock_setsockopt(stack, fd, IPPROTO_IP, name, &request, sizeof(request));
}

/* Puts an IGMPv3 query from 198.18.0.2 on the wire: group 0.0.0.0 for a
 * general query, and the sources listed (NULL-terminated). */
static void send_query(struct world *world, const char *group, const char *const *sources)
{
    uint8_t frame[256];
    memset(frame, 0, sizeof(frame));
    static const uint8_t all_hosts_mac[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
    static const uint8_t querier_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
    memcpy(frame, all_hosts_mac, 6);
    memcpy(frame + 6, querier_mac, 6);
    frame[12] = 0x08;
    uint8_t *igmp = frame + 14 + 20;
    unsigned count = 0;
    while (sources && sources[count])
        count++;
    size_t igmp_length = 12 + 4 * (size_t)count;
    igmp[0] = IGMP_TYPE_QUERY;
    igmp[1] = 10; /* max response 1 s */
    uint32_t group_address = ip(group);
    memcpy(igmp + 4, &group_address, 4);
    igmp[8] = 2;   /* QRV */
    igmp[9] = 125; /* QQIC */
    igmp[10] = (uint8_t)(count >> 8);
    igmp[11] = (uint8_t)count;
    for (unsigned i = 0; i < count; i++) {
        uint32_t source = ip(sources[i]);
        memcpy(igmp + 12 + 4 * i, &source, 4);
    }
    uint16_t sum = checksum_of(igmp, igmp_length);
    igmp[2] = (uint8_t)(sum >> 8);
    igmp[3] = (uint8_t)sum;
    uint8_t *header = frame + 14;
    size_t total = 20 + igmp_length;
    header[0] = 0x45;
    header[2] = (uint8_t)(total >> 8);
    header[3] = (uint8_t)total;
    header[8] = 1;
    header[9] = 2;
    uint32_t source = ip("198.18.0.2"), destination = ip("224.0.0.1");
    memcpy(header + 12, &source, 4);
    memcpy(header + 16, &destination, 4);
    sum = checksum_of(header, 20);
    header[10] = (uint8_t)(sum >> 8);
    header[11] = (uint8_t)sum;
    CHECK_EQ(usock_link_send(world->wire, frame, 14 + total, world->now), 0);
}

static void test_include_source_changes_report_allow_and_block(void)
{
    struct world world;
    probe_init(&world);
    int fd = bound_socket(world.a, 5000, false);
    CHECK_EQ(source_option(world.a, fd, IP_ADD_SOURCE_MEMBERSHIP, "232.1.1.1", "198.18.0.10"), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_ALLOW_NEW_SOURCES, "232.1.1.1", "198.18.0.10");
    /* Robustness 2: the same change once more a second later. */
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_ALLOW_NEW_SOURCES, "232.1.1.1", "198.18.0.10");
    expect_no_report(&world);
    CHECK_EQ(source_option(world.a, fd, IP_ADD_SOURCE_MEMBERSHIP, "232.1.1.1", "198.18.0.11"), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_ALLOW_NEW_SOURCES, "232.1.1.1", "198.18.0.11");
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_ALLOW_NEW_SOURCES, "232.1.1.1", "198.18.0.11");
    CHECK_EQ(source_option(world.a, fd, IP_DROP_SOURCE_MEMBERSHIP, "232.1.1.1", "198.18.0.10"), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_BLOCK_OLD_SOURCES, "232.1.1.1", "198.18.0.10");
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_BLOCK_OLD_SOURCES, "232.1.1.1", "198.18.0.10");
    /* The last source going is the group going. */
    uint64_t leaves = usock_stack_counter(world.a, "IgmpOutLeaves");
    CHECK_EQ(usock_close(world.a, fd), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_BLOCK_OLD_SOURCES, "232.1.1.1", "198.18.0.11");
    CHECK_EQ(usock_stack_counter(world.a, "IgmpOutLeaves"), leaves + 1);
    probe_run(&world, 15, 100000000);
    expect_no_report(&world);
    probe_free(&world);
}

static void test_mode_changes_report_change_to_exclude_and_include(void)
{
    struct world world;
    probe_init(&world);
    int any = bound_socket(world.a, 5000, true);
    int specific = bound_socket(world.a, 5000, true);
    CHECK_EQ(join(world.a, any, "239.7.7.7"), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_CHANGE_TO_EXCLUDE, "239.7.7.7", NULL);
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_CHANGE_TO_EXCLUDE, "239.7.7.7", NULL);
    CHECK_EQ(source_option(world.a, any, IP_BLOCK_SOURCE, "239.7.7.7", "198.18.0.20"), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_BLOCK_OLD_SOURCES, "239.7.7.7", "198.18.0.20");
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_BLOCK_OLD_SOURCES, "239.7.7.7", "198.18.0.20");
    /* Another socket including the blocked source unblocks it for the
     * interface: EXCLUDE{} again, so ALLOW. */
    CHECK_EQ(source_option(world.a, specific, IP_ADD_SOURCE_MEMBERSHIP, "239.7.7.7",
                           "198.18.0.20"), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_ALLOW_NEW_SOURCES, "239.7.7.7", "198.18.0.20");
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_ALLOW_NEW_SOURCES, "239.7.7.7", "198.18.0.20");
    /* The any-source socket leaves: the interface is INCLUDE{.20} now. */
    CHECK_EQ(usock_close(world.a, any), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_CHANGE_TO_INCLUDE, "239.7.7.7", "198.18.0.20");
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_CHANGE_TO_INCLUDE, "239.7.7.7", "198.18.0.20");
    CHECK_EQ(usock_close(world.a, specific), 0);
    EXPECT_RECORD(&world, IGMP_RECORD_BLOCK_OLD_SOURCES, "239.7.7.7", "198.18.0.20");
    probe_free(&world);
}

static void test_queries_are_answered_with_current_state(void)
{
    struct world world;
    probe_init(&world);
    int exclude = bound_socket(world.a, 5000, true);
    int include = bound_socket(world.a, 5000, true);
    CHECK_EQ(join(world.a, exclude, "239.8.8.8"), 0);
    CHECK_EQ(source_option(world.a, exclude, IP_BLOCK_SOURCE, "239.8.8.8", "198.18.0.30"), 0);
    CHECK_EQ(source_option(world.a, include, IP_ADD_SOURCE_MEMBERSHIP, "232.2.2.2",
                           "198.18.0.40"), 0);
    probe_run(&world, 30, 100000000);
    while (next_report(&world, &(struct seen_report){0}))
        ;
    /* General query: every group's state. */
    send_query(&world, "0.0.0.0", NULL);
    probe_run(&world, 15, 100000000); /* max response 1 s */
    bool saw_exclude = false, saw_include = false;
    struct seen_report report;
    while (next_report(&world, &report)) {
        CHECK_EQ(report.record_count, 1);
        const struct seen_record *record = &report.records[0];
        if (record->group == ip("239.8.8.8")) {
            CHECK_EQ(record->type, IGMP_RECORD_MODE_IS_EXCLUDE);
            CHECK(record_lists(record, (const char *const[]){"198.18.0.30", NULL}));
            saw_exclude = true;
        } else {
            CHECK_EQ(record->group, ip("232.2.2.2"));
            CHECK_EQ(record->type, IGMP_RECORD_MODE_IS_INCLUDE);
            CHECK(record_lists(record, (const char *const[]){"198.18.0.40", NULL}));
            saw_include = true;
        }
    }
    CHECK(saw_exclude);
    CHECK(saw_include);
    /* Group-specific query. */
    send_query(&world, "232.2.2.2", NULL);
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_MODE_IS_INCLUDE, "232.2.2.2", "198.18.0.40");
    expect_no_report(&world);
    /* Group-and-source-specific: IS_IN of the asked sources still wanted. */
    send_query(&world, "232.2.2.2", (const char *const[]){"198.18.0.40", "198.18.0.41", NULL});
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_MODE_IS_INCLUDE, "232.2.2.2", "198.18.0.40");
    send_query(&world, "239.8.8.8", (const char *const[]){"198.18.0.30", "198.18.0.31", NULL});
    probe_run(&world, 15, 100000000);
    EXPECT_RECORD(&world, IGMP_RECORD_MODE_IS_INCLUDE, "239.8.8.8", "198.18.0.31");
    /* None of the asked sources wanted: no answer at all. */
    send_query(&world, "232.2.2.2", (const char *const[]){"198.18.0.41", NULL});
    probe_run(&world, 15, 100000000);
    expect_no_report(&world);
    CHECK_EQ(usock_close(world.a, exclude), 0);
    CHECK_EQ(usock_close(world.a, include), 0);
    probe_free(&world);
}

static void test_datagram_from_filtered_source_is_dropped_and_counted(void)
{
    struct world world;
    world_init(&world);
    int fd = bound_socket(world.b, 5000, false);
    CHECK_EQ(source_option(world.b, fd, IP_ADD_SOURCE_MEMBERSHIP, "232.3.3.3", "198.18.0.9"), 0);
    int sender = usock_socket(world.a, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in group = address_of("232.3.3.3", 5000);
    uint64_t filtered = usock_stack_counter(world.b, "IpInMulticastFiltered");
    CHECK_EQ(usock_sendto(world.a, sender, "mc", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    world_run(&world, 3, 1000000);
    char buffer[8];
    CHECK_ERRNO(usock_recv(world.b, fd, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(usock_stack_counter(world.b, "IpInMulticastFiltered"), filtered + 1);
    /* Listing the sender lets its datagrams in. */
    CHECK_EQ(source_option(world.b, fd, IP_ADD_SOURCE_MEMBERSHIP, "232.3.3.3", "198.18.0.1"), 0);
    CHECK_EQ(usock_sendto(world.a, sender, "mc", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    world_run(&world, 3, 1000000);
    CHECK_EQ(usock_recv(world.b, fd, buffer, sizeof(buffer), MSG_DONTWAIT), 2);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_joined_group_receives_and_unjoined_is_filtered),
    CHECK_TEST(test_sender_member_hears_itself_unless_loop_is_off),
    CHECK_TEST(test_membership_option_errors_are_linux),
    CHECK_TEST(test_general_query_draws_a_report),
    CHECK_TEST(test_include_source_changes_report_allow_and_block),
    CHECK_TEST(test_mode_changes_report_change_to_exclude_and_include),
    CHECK_TEST(test_queries_are_answered_with_current_state),
    CHECK_TEST(test_datagram_from_filtered_source_is_dropped_and_counted),
};

CHECK_MAIN(tests)
