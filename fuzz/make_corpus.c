/*
 * make_corpus.c - writes the seed corpora of the fuzz targets from real
 * traffic: make_corpus DIRECTORY makes DIRECTORY/fuzz_frames,
 * fuzz_session, fuzz_parsers and fuzz_control and fills each with seeds.
 *
 * The traffic is an exchange between two stacks on callback links joined
 * here (the addresses and hardware addresses of fuzz_world.h, so the
 * frames are addressed as fuzz_frames' stack expects): ARP, pings both
 * ways, UDP datagrams small and fragmented, a fragmented echo request, a
 * TCP connection with data both ways closed through TIME_WAIT, a datagram
 * to a closed port and a connect to a closed port.  Every frame is kept.
 * fuzz_frames gets those frames as records for each of its scenarios, and
 * for each scenario the frames its own setup leaves as templates, replayed,
 * flooded, and surrounded by the program's socket calls; fuzz_parsers gets
 * every frame and each of its layers; fuzz_session gets inputs that
 * deliver every frame (and some that drop, duplicate, hold back, change
 * or delay frames in a pattern); fuzz_control gets the requests and a real
 * "ss" reply.  The output is the same on every run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "control.h"
#include "fuzz_world.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"

#define CAPTURE_MAX 1024
#define SEED_MAX (1u << 20)

/* ---- a seed being written ----------------------------------------------- */

struct seed {
    uint8_t *bytes;
    size_t length;
};

static void seed_byte(struct seed *seed, uint8_t byte)
{
    if (seed->length < SEED_MAX)
        seed->bytes[seed->length++] = byte;
}

static void seed_u16(struct seed *seed, uint16_t value)
{
    seed_byte(seed, (uint8_t)(value >> 8));
    seed_byte(seed, (uint8_t)value);
}

static void seed_bytes(struct seed *seed, const void *bytes, size_t length)
{
    for (size_t i = 0; i < length; i++)
        seed_byte(seed, ((const uint8_t *)bytes)[i]);
}

static void seed_start(struct seed *seed)
{
    if (!seed->bytes) {
        seed->bytes = malloc(SEED_MAX);
        if (!seed->bytes)
            abort();
    }
    seed->length = 0;
}

static const char *output_directory;

static void seed_write(const struct seed *seed, const char *target, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s", output_directory, target, name);
    FILE *file = fopen(path, "wb");
    if (!file || fwrite(seed->bytes, 1, seed->length, file) != seed->length || fclose(file) != 0) {
        fprintf(stderr, "make_corpus: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void make_directory(const char *target)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", output_directory, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_corpus: cannot make %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* ---- the exchange ------------------------------------------------------- */

struct captured {
    uint8_t *frame;
    size_t length;
    bool to_target;
};

struct exchange {
    struct fuzz_clock clock;
    struct usock_stack *target, *peer;
    struct usock_link *target_link, *peer_link;
    struct frame_list to_target, to_peer; /* not yet handed over */
    struct captured captured[CAPTURE_MAX];
    size_t captured_count;
};

static void exchange_capture_target(void *context, const uint8_t *frame, size_t length)
{
    frame_list_push(&((struct exchange *)context)->to_peer, frame, length);
}

static void exchange_capture_peer(void *context, const uint8_t *frame, size_t length)
{
    frame_list_push(&((struct exchange *)context)->to_target, frame, length);
}

static void exchange_keep(struct exchange *exchange, struct frame_list *list, bool to_target,
                          struct usock_link *link)
{
    for (size_t i = 0; i < list->count; i++) {
        if (exchange->captured_count < CAPTURE_MAX) {
            struct captured *kept = &exchange->captured[exchange->captured_count++];
            kept->frame = malloc(list->lengths[i]);
            if (!kept->frame)
                abort();
            memcpy(kept->frame, list->frames[i], list->lengths[i]);
            kept->length = list->lengths[i];
            kept->to_target = to_target;
        }
        usock_link_callback_input(link, list->frames[i], list->lengths[i]);
    }
    frame_list_clear(list);
}

/* Polls both stacks, carrying (and keeping) frames, until quiet; then
 * moves the clock on by step. */
static void exchange_run(struct exchange *exchange, uint64_t step)
{
    for (int round = 0; round < 256; round++) {
        usock_stack_poll(exchange->target, exchange->clock.now);
        usock_stack_poll(exchange->peer, exchange->clock.now);
        if (exchange->to_target.count == 0 && exchange->to_peer.count == 0)
            break;
        exchange_keep(exchange, &exchange->to_target, true, exchange->target_link);
        exchange_keep(exchange, &exchange->to_peer, false, exchange->peer_link);
    }
    exchange->clock.now += step;
}

static struct sockaddr_in at(const char *address, uint16_t port)
{
    struct sockaddr_in endpoint = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, address, &endpoint.sin_addr);
    return endpoint;
}

static void exchange_send_to(struct usock_stack *stack, int fd, const void *data, size_t length,
                             const char *address, uint16_t port)
{
    struct sockaddr_in endpoint = at(address, port);
    usock_sendto(stack, fd, data, length, 0, (struct sockaddr *)&endpoint, sizeof(endpoint));
}

static void exchange_drain(struct usock_stack *stack, int fd)
{
    uint8_t buffer[8192];
    while (usock_recv(stack, fd, buffer, sizeof(buffer), MSG_DONTWAIT) > 0)
        ;
}

static void exchange_echo(struct exchange *exchange, int fd, size_t length, uint32_t rest)
{
    uint8_t echo[3000];
    memset(echo, 0x5a, sizeof(echo));
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = rest};
    icmp_emit(&request, echo, length - ICMP_HEADER_LENGTH);
    exchange_send_to(exchange->peer, fd, echo, length, FUZZ_TARGET_ADDRESS, 0);
}

static void exchange_play(struct exchange *exchange)
{
    const uint64_t ms = FUZZ_NS_PER_MS;
    struct usock_stack *target = exchange->target, *peer = exchange->peer;
    struct sockaddr_in any80 = at("0.0.0.0", FUZZ_TCP_PORT);
    struct sockaddr_in any3000 = at("0.0.0.0", FUZZ_UDP_PORT);
    int listener = usock_socket(target, AF_INET, SOCK_STREAM, 0);
    usock_bind(target, listener, (struct sockaddr *)&any80, sizeof(any80));
    usock_listen(target, listener, 4);
    int udp = usock_socket(target, AF_INET, SOCK_DGRAM, 0);
    usock_bind(target, udp, (struct sockaddr *)&any3000, sizeof(any3000));
    exchange_run(exchange, ms);

    int pinger = usock_socket(peer, AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    exchange_echo(exchange, pinger, 64, 0x00010001);
    exchange_run(exchange, ms);
    exchange_echo(exchange, pinger, 2500, 0x00010002);
    exchange_run(exchange, ms);
    int sender = usock_socket(peer, AF_INET, SOCK_DGRAM, 0);
    static uint8_t payload[3000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 31);
    exchange_send_to(peer, sender, "hello", 5, FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT);
    exchange_send_to(peer, sender, payload, sizeof(payload), FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT);
    exchange_send_to(peer, sender, "closed", 6, FUZZ_TARGET_ADDRESS, 9);
    exchange_run(exchange, ms);
    exchange_drain(target, udp);
    exchange_send_to(target, udp, "back", 4, FUZZ_PEER_ADDRESS, 4000);
    exchange_run(exchange, ms);

    int client = usock_socket(peer, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in server = at(FUZZ_TARGET_ADDRESS, FUZZ_TCP_PORT);
    usock_connect(peer, client, (struct sockaddr *)&server, sizeof(server));
    exchange_run(exchange, ms);
    int child = usock_accept(target, listener, NULL, NULL);
    usock_send(peer, client, payload, sizeof(payload), MSG_DONTWAIT);
    exchange_run(exchange, ms);
    usock_send(target, child, payload, 1500, MSG_DONTWAIT);
    usock_send(peer, client, "!", 1, MSG_DONTWAIT | MSG_OOB);
    exchange_run(exchange, ms);
    exchange_drain(target, child);
    exchange_drain(peer, client);
    exchange_run(exchange, 50 * ms);
    usock_close(peer, client);
    exchange_run(exchange, ms);
    exchange_drain(target, child);
    usock_close(target, child);
    exchange_run(exchange, ms);

    int refused = usock_socket(peer, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in closed = at(FUZZ_TARGET_ADDRESS, 81);
    usock_connect(peer, refused, (struct sockaddr *)&closed, sizeof(closed));
    exchange_run(exchange, ms);
    int toward_peer = usock_socket(target, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in peer_closed = at(FUZZ_PEER_ADDRESS, 8080);
    usock_connect(target, toward_peer, (struct sockaddr *)&peer_closed, sizeof(peer_closed));
    exchange_run(exchange, 3 * FUZZ_NS_PER_SECOND);
    exchange_run(exchange, ms);
}

static void exchange_make(struct exchange *exchange)
{
    memset(exchange, 0, sizeof(*exchange));
    exchange->clock.now = 1000 * FUZZ_NS_PER_SECOND;
    struct usock_stack_config config;
    if (usock_link_callback_new(exchange_capture_target, exchange, 0, &exchange->target_link) ||
        usock_link_callback_new(exchange_capture_peer, exchange, 0, &exchange->peer_link))
        abort();
    fuzz_stack_config(&config, exchange->target_link, FUZZ_TARGET_ADDRESS, fuzz_target_mac, 2,
                      &exchange->clock);
    exchange->target = usock_stack_new(&config);
    fuzz_stack_config(&config, exchange->peer_link, FUZZ_PEER_ADDRESS, fuzz_peer_mac, 1,
                      &exchange->clock);
    exchange->peer = usock_stack_new(&config);
    if (!exchange->target || !exchange->peer)
        abort();
    exchange_play(exchange);
}

static void exchange_free(struct exchange *exchange)
{
    usock_stack_free(exchange->target);
    usock_stack_free(exchange->peer);
    frame_list_clear(&exchange->to_target);
    frame_list_clear(&exchange->to_peer);
    for (size_t i = 0; i < exchange->captured_count; i++)
        free(exchange->captured[i].frame);
}

/* ---- seeds of each target ---------------------------------------------- */

static void seed_frame_record(struct seed *seed, const uint8_t *frame, size_t length)
{
    seed_byte(seed, OPCODE_FRAME);
    seed_u16(seed, (uint16_t)length);
    seed_bytes(seed, frame, length);
}

static void seed_application(struct seed *seed, uint8_t action, uint8_t argument)
{
    seed_byte(seed, OPCODE_APPLICATION);
    seed_byte(seed, action);
    seed_byte(seed, argument);
}

static void write_frames_seeds(const struct exchange *exchange)
{
    static const uint8_t scenarios[] = {
        SCENARIO_LISTENER,
        SCENARIO_ESTABLISHED,
        SCENARIO_FRAGMENTS,
        SCENARIO_DATAGRAMS,
        SCENARIO_ESTABLISHED | VARIANT_TARGET_CONNECTS,
        SCENARIO_ESTABLISHED | VARIANT_RENO | VARIANT_SMALL_RECEIVE_BUFFER,
        SCENARIO_ESTABLISHED | VARIANT_HALF_CLOSED,
        SCENARIO_LISTENER | VARIANT_SMALL_RECEIVE_BUFFER,
    };
    struct seed seed = {0};
    char name[64];
    for (size_t s = 0; s < sizeof(scenarios); s++) {
        uint8_t scenario = scenarios[s];

        /* The exchange's frames toward the target, the clock moving on. */
        seed_start(&seed);
        seed_byte(&seed, scenario);
        for (size_t i = 0; i < exchange->captured_count; i++) {
            if (!exchange->captured[i].to_target)
                continue;
            seed_frame_record(&seed, exchange->captured[i].frame, exchange->captured[i].length);
            seed_byte(&seed, OPCODE_ADVANCE);
            seed_u16(&seed, 5);
        }
        seed_application(&seed, 0, 0);
        snprintf(name, sizeof(name), "scenario-%02x-exchange", scenario);
        seed_write(&seed, "fuzz_frames", name);

        struct frames_world world;
        if (frames_world_setup(&world, scenario) != 0) {
            fprintf(stderr, "make_corpus: setup of scenario %u failed\n", scenario);
            exit(1);
        }
        size_t templates = world.templates.count;

        /* Each template as a frame of its own, then replayed unchanged. */
        seed_start(&seed);
        seed_byte(&seed, scenario);
        for (size_t k = 0; k < templates; k++)
            seed_frame_record(&seed, world.templates.frames[k], world.templates.lengths[k]);
        seed_application(&seed, 0, 0);
        snprintf(name, sizeof(name), "scenario-%02x-templates", scenario);
        seed_write(&seed, "fuzz_frames", name);

        seed_start(&seed);
        seed_byte(&seed, scenario);
        for (size_t k = 0; k < templates; k++) {
            seed_byte(&seed, OPCODE_TEMPLATE);
            seed_byte(&seed, (uint8_t)k);
            seed_byte(&seed, 0);
            seed_byte(&seed, OPCODE_NEXT_TIMER);
        }
        seed_application(&seed, 0, 0);
        snprintf(name, sizeof(name), "scenario-%02x-replay", scenario);
        seed_write(&seed, "fuzz_frames", name);

        /* Floods of each template, the source port's low byte counting. */
        for (size_t k = 0; k < templates && k < 8; k++) {
            seed_start(&seed);
            seed_byte(&seed, scenario);
            seed_byte(&seed, OPCODE_FLOOD);
            seed_byte(&seed, (uint8_t)k);
            seed_byte(&seed, 200);
            seed_u16(&seed, ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + 1);
            seed_application(&seed, 0, 0);
            snprintf(name, sizeof(name), "scenario-%02x-flood-%02zu", scenario, k);
            seed_write(&seed, "fuzz_frames", name);
        }

        /* The program's every call, with time passing between. */
        seed_start(&seed);
        seed_byte(&seed, scenario);
        for (uint8_t action = 0; action < 8; action++) {
            for (uint8_t argument = 0; argument < 4; argument++)
                seed_application(&seed, action, (uint8_t)(argument * 37 + action));
            seed_byte(&seed, OPCODE_NEXT_TIMER);
        }
        seed_byte(&seed, OPCODE_ADVANCE);
        seed_u16(&seed, 30000);
        snprintf(name, sizeof(name), "scenario-%02x-application", scenario);
        seed_write(&seed, "fuzz_frames", name);
        frames_world_finish(&world);
    }
    free(seed.bytes);
}

static void seed_session_header(struct seed *seed, uint16_t a_sends, uint16_t b_sends,
                                uint8_t options)
{
    seed_start(seed);
    seed_u16(seed, a_sends);
    seed_u16(seed, b_sends);
    seed_byte(seed, options);
}

static void write_session_seeds(void)
{
    static const struct {
        uint16_t a_sends, b_sends;
        uint8_t options;
    } transfers[] = {
        {0, 0, 0},
        {4096, 4096, 3 << SESSION_DATAGRAMS_SHIFT | SESSION_OPTION_LATENCY},
        {30000, 1000, SESSION_OPTION_LATENCY},
        {1, 30000, SESSION_OPTION_RENO},
        {20000, 20000, SESSION_OPTION_SMALL_BUFFERS | SESSION_OPTION_NO_DELAY},
        {20000, 0, SESSION_OPTION_A_CLOSES | SESSION_OPTION_SMALL_SEGMENTS},
        {10000, 10000, 3u << SESSION_DATAGRAMS_SHIFT},
    };
    struct seed seed = {0};
    char name[64];
    for (size_t t = 0; t < sizeof(transfers) / sizeof(transfers[0]); t++) {
        seed_session_header(&seed, transfers[t].a_sends, transfers[t].b_sends,
                            transfers[t].options);
        snprintf(name, sizeof(name), "deliver-everything-%zu", t);
        seed_write(&seed, "fuzz_session", name);
    }
    /* Patterns over 60 frames: every fifth frame dropped, duplicated, held
     * back, changed, or delayed. */
    static const uint8_t patterned[] = {SESSION_DROP, SESSION_DUPLICATE, SESSION_HOLD,
                                        SESSION_MUTATE, SESSION_DELAY};
    for (size_t p = 0; p < sizeof(patterned); p++) {
        seed_session_header(&seed, 20000, 20000,
                            2u << SESSION_DATAGRAMS_SHIFT | SESSION_OPTION_LATENCY);
        for (int frame = 0; frame < 60; frame++) {
            if (frame % 5 != 4) {
                seed_byte(&seed, SESSION_DELIVER);
                continue;
            }
            seed_byte(&seed, patterned[p]);
            if (patterned[p] == SESSION_MUTATE) {
                seed_u16(&seed, (uint16_t)(frame * 7));
                seed_byte(&seed, 0x20);
            } else if (patterned[p] == SESSION_DELAY) {
                seed_byte(&seed, 50);
            }
        }
        snprintf(name, sizeof(name), "pattern-%zu", p);
        seed_write(&seed, "fuzz_session", name);
    }
    free(seed.bytes);
}

static void seed_parser(struct seed *seed, uint8_t parser, const uint8_t *bytes, size_t length,
                        const char *name)
{
    seed_start(seed);
    seed_byte(seed, parser);
    seed_bytes(seed, bytes, length);
    seed_write(seed, "fuzz_parsers", name);
}

/* The frame whole, and each of its layers for its own parser. */
static void write_parser_seeds_of(struct seed *seed, const uint8_t *frame, size_t length,
                                  size_t index)
{
    char name[64];
    snprintf(name, sizeof(name), "frame-%03zu", index);
    seed_parser(seed, PARSER_FRAME, frame, length, name);
    if (length < ETHERNET_HEADER_LENGTH)
        return;
    uint16_t ethertype = (uint16_t)(frame[12] << 8 | frame[13]);
    const uint8_t *packet = frame + ETHERNET_HEADER_LENGTH;
    size_t packet_length = length - ETHERNET_HEADER_LENGTH;
    if (ethertype == ETHERTYPE_ARP) {
        snprintf(name, sizeof(name), "arp-%03zu", index);
        seed_parser(seed, PARSER_ARP, packet, packet_length, name);
        return;
    }
    struct ipv4_header ip;
    if (ipv4_parse(packet, packet_length, true, &ip) != IPV4_PARSE_OK)
        return;
    snprintf(name, sizeof(name), "ipv4-%03zu", index);
    seed_parser(seed, PARSER_IPV4, packet, packet_length, name);
    if (ipv4_is_fragment(&ip))
        return;
    const uint8_t *payload = packet + ip.header_length;
    size_t payload_length = ip.total_length - ip.header_length;
    switch (ip.protocol) {
    case IPPROTO_ICMP:
        snprintf(name, sizeof(name), "icmp-%03zu", index);
        seed_parser(seed, PARSER_ICMP, payload, payload_length, name);
        break;
    case IPPROTO_IGMP:
        snprintf(name, sizeof(name), "igmp-%03zu", index);
        seed_parser(seed, PARSER_IGMP, payload, payload_length, name);
        break;
    case IPPROTO_UDP:
    case IPPROTO_TCP:
        seed_start(seed);
        seed_byte(seed, ip.protocol == IPPROTO_UDP ? PARSER_UDP : PARSER_TCP);
        seed_bytes(seed, &ip.source, 4);
        seed_bytes(seed, &ip.destination, 4);
        seed_bytes(seed, payload, payload_length);
        snprintf(name, sizeof(name), "%s-%03zu", ip.protocol == IPPROTO_UDP ? "udp" : "tcp",
                 index);
        seed_write(seed, "fuzz_parsers", name);
        break;
    default:
        break;
    }
}

static void write_parser_seeds(const struct exchange *exchange)
{
    struct seed seed = {0};
    size_t index = 0;
    for (size_t i = 0; i < exchange->captured_count; i++)
        write_parser_seeds_of(&seed, exchange->captured[i].frame, exchange->captured[i].length,
                              index++);
    /* The datagram scenario's templates hold IGMP queries and ICMP errors. */
    struct frames_world world;
    if (frames_world_setup(&world, SCENARIO_DATAGRAMS) != 0)
        exit(1);
    for (size_t k = 0; k < world.templates.count; k++)
        write_parser_seeds_of(&seed, world.templates.frames[k], world.templates.lengths[k],
                              index++);
    frames_world_finish(&world);
    static const char *const impairments[] = {
        "loss=2%,dup=1%,reorder=10%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=7",
        "loss=0.5",
        "delay=1s,jitter=250us",
        "",
    };
    for (size_t i = 0; i < sizeof(impairments) / sizeof(impairments[0]); i++) {
        char name[32];
        snprintf(name, sizeof(name), "impairment-%zu", i);
        seed_parser(&seed, PARSER_IMPAIRMENT, (const uint8_t *)impairments[i],
                    strlen(impairments[i]), name);
    }
    seed_parser(&seed, PARSER_CHECKSUM, (const uint8_t *)"\x45\x00\x00\x54\xff\xff", 6,
                "checksum-0");
    free(seed.bytes);
}

static void write_control_seeds(void)
{
    static const char *const requests[] = {"ss\n", "stats\n", "ss", "stats\r\n", "help\n", ""};
    struct seed seed = {0};
    char name[32];
    for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
        seed_start(&seed);
        seed_byte(&seed, CONTROL_INPUT_REQUEST);
        seed_bytes(&seed, requests[i], strlen(requests[i]));
        snprintf(name, sizeof(name), "request-%zu", i);
        seed_write(&seed, "fuzz_control", name);
    }
    /* A real "ss" reply, from a stack with a listener and a datagram socket. */
    struct fuzz_clock clock = {.now = FUZZ_NS_PER_SECOND};
    struct usock_stack_config config;
    fuzz_stack_config(&config, NULL, FUZZ_TARGET_ADDRESS, NULL, 4, &clock);
    struct usock_stack *stack = usock_stack_new(&config);
    if (!stack)
        exit(1);
    struct sockaddr_in any80 = at("0.0.0.0", 80), self80 = at(FUZZ_TARGET_ADDRESS, 80);
    int listener = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    usock_bind(stack, listener, (struct sockaddr *)&any80, sizeof(any80));
    usock_listen(stack, listener, 4);
    int client = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    usock_connect(stack, client, (struct sockaddr *)&self80, sizeof(self80));
    usock_stack_poll(stack, clock.now);
    usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    usock_socket(stack, AF_INET, SOCK_RAW, IPPROTO_ICMP);
    size_t reply_length;
    char *reply = control_reply(stack, "ss\n", 3, &reply_length);
    seed_start(&seed);
    seed_byte(&seed, CONTROL_INPUT_REPLY);
    seed_bytes(&seed, reply, reply_length);
    seed_write(&seed, "fuzz_control", "reply-ss");
    free(reply);
    usock_stack_free(stack);
    free(seed.bytes);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIRECTORY\n");
        return 2;
    }
    output_directory = argv[1];
    if (mkdir(output_directory, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_corpus: cannot make %s: %s\n", output_directory, strerror(errno));
        return 1;
    }
    static const char *const targets[] = {"fuzz_frames", "fuzz_session", "fuzz_parsers",
                                          "fuzz_control"};
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
        make_directory(targets[i]);
    static struct exchange exchange;
    exchange_make(&exchange);
    size_t toward_target = 0;
    for (size_t i = 0; i < exchange.captured_count; i++)
        toward_target += exchange.captured[i].to_target;
    write_frames_seeds(&exchange);
    write_parser_seeds(&exchange);
    write_session_seeds();
    write_control_seeds();
    printf("make_corpus: %zu frames captured (%zu toward the target); seeds in %s\n",
           exchange.captured_count, toward_target, output_directory);
    exchange_free(&exchange);
    return 0;
}
