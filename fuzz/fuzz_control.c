/*
 * fuzz_control.c - libFuzzer target: the control endpoint's protocol, both
 * ends of it, without the Unix socket.
 *
 * One stack, made on the first input and kept, holds sockets of every kind
 * and state (a TCP listener, a connection to itself in both directions,
 * UDP bound and connected, raw, ping).  The first input byte's low bit
 * picks the end:
 *  - a request, handed to control_reply (src/control.c) as a client would
 *    send it; the reply to "ss" must parse, line by line, with the client's
 *    own parser (tools/socket_table.c) into exactly the row the client
 *    makes from the same socket in-process, and a reply to anything else is
 *    the counters or one error line;
 *  - a reply, handed to the client: each line through socket_row_parse,
 *    the filters, and the table printer.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "control.h"
#include "fuzz_world.h"

#define EXPECT(condition)                                                                 \
    do {                                                                                  \
        if (!(condition)) {                                                               \
            fprintf(stderr, "fuzz_control: %s:%d: expected %s\n", __FILE__, __LINE__,     \
                    #condition);                                                          \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

#define ROWS_MAX 16

struct control_world {
    struct fuzz_clock clock;
    struct usock_stack *stack;
    FILE *sink; /* /dev/null, for the table printer */
};

static void drop_frame(void *context, const uint8_t *frame, size_t length)
{
    (void)context;
    (void)frame;
    (void)length;
}

static struct sockaddr_in endpoint_at(const char *address, uint16_t port)
{
    struct sockaddr_in endpoint = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, address, &endpoint.sin_addr);
    return endpoint;
}

static void world_build(struct control_world *world)
{
    struct usock_link *link;
    if (usock_link_callback_new(drop_frame, NULL, 0, &link) != 0)
        abort();
    struct usock_stack_config config;
    world->clock.now = 1000 * FUZZ_NS_PER_SECOND;
    fuzz_stack_config(&config, link, FUZZ_TARGET_ADDRESS, fuzz_target_mac, 3, &world->clock);
    struct usock_stack *stack = usock_stack_new(&config);
    if (!stack)
        abort();
    struct sockaddr_in any80 = endpoint_at("0.0.0.0", 80);
    struct sockaddr_in self80 = endpoint_at(FUZZ_TARGET_ADDRESS, 80);
    struct sockaddr_in udp = endpoint_at(FUZZ_TARGET_ADDRESS, 53);
    struct sockaddr_in peer = endpoint_at(FUZZ_PEER_ADDRESS, 4000);
    int listener = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    usock_bind(stack, listener, (struct sockaddr *)&any80, sizeof(any80));
    usock_listen(stack, listener, 8);
    int client = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    usock_connect(stack, client, (struct sockaddr *)&self80, sizeof(self80));
    for (int i = 0; i < 8; i++)
        usock_stack_poll(stack, world->clock.now);
    usock_accept(stack, listener, NULL, NULL);
    usock_send(stack, client, "queued", 6, MSG_DONTWAIT);
    int bound = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    usock_bind(stack, bound, (struct sockaddr *)&udp, sizeof(udp));
    int connected = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    usock_connect(stack, connected, (struct sockaddr *)&peer, sizeof(peer));
    usock_socket(stack, AF_INET, SOCK_RAW, IPPROTO_ICMP);
    usock_socket(stack, AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    usock_stack_poll(stack, world->clock.now);
    world->stack = stack;
    world->sink = fopen("/dev/null", "w");
    if (!world->sink)
        abort();
}

static void field_expect_same(const char *field, const char *remote, const char *local)
{
    if (strcmp(remote, local) == 0)
        return;
    fprintf(stderr, "fuzz_control: the control endpoint's %s is '%s', in-process '%s'\n", field,
            remote, local);
    abort();
}

/* A row read from the endpoint equals the row made in-process. */
static void rows_expect_same(const struct socket_row *remote, const struct socket_row *local)
{
    /* The endpoint names ping sockets "icmp"; socket_row_from_info (the
     * in-process demo) has no such case and says "udp". */
    if (strcmp(remote->netid, "icmp") != 0 || strcmp(local->netid, "udp") != 0)
        field_expect_same("netid", remote->netid, local->netid);
    field_expect_same("state", remote->state, local->state);
    EXPECT(remote->listening == local->listening);
    field_expect_same("Recv-Q", remote->receive_queue, local->receive_queue);
    field_expect_same("Send-Q", remote->send_queue, local->send_queue);
    field_expect_same("local address", remote->local_address, local->local_address);
    /* An unbound local port: the endpoint sends 0, in-process shows "*". */
    if (strcmp(remote->local_port, "0") != 0 || strcmp(local->local_port, "*") != 0)
        field_expect_same("local port", remote->local_port, local->local_port);
    field_expect_same("peer address", remote->peer_address, local->peer_address);
    field_expect_same("peer port", remote->peer_port, local->peer_port);
    field_expect_same("details", remote->details, local->details);
}

/* The server's answer to a request, checked against the client's parser. */
static void fuzz_request(struct control_world *world, const uint8_t *request, size_t length)
{
    size_t reply_length;
    char *reply = control_reply(world->stack, (const char *)request, length, &reply_length);
    EXPECT(reply != NULL && reply_length > 0);
    EXPECT(strlen(reply) == reply_length && reply[reply_length - 1] == '\n');
    char line[CONTROL_REQUEST_MAX + 1];
    size_t line_length = length < CONTROL_REQUEST_MAX ? length : CONTROL_REQUEST_MAX;
    memcpy(line, request, line_length);
    line[line_length] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, "ss") == 0) {
        struct usock_socket_info infos[ROWS_MAX];
        size_t count = usock_stack_sockets(world->stack, infos, ROWS_MAX);
        EXPECT(count <= ROWS_MAX);
        char *saved = NULL;
        size_t index = 0;
        for (char *row_text = strtok_r(reply, "\n", &saved); row_text;
             row_text = strtok_r(NULL, "\n", &saved), index++) {
            EXPECT(index < count);
            struct socket_row parsed, direct;
            EXPECT(socket_row_parse(row_text, &parsed) == 0);
            socket_row_from_info(&infos[index], &direct);
            rows_expect_same(&parsed, &direct);
        }
        EXPECT(index == count);
    } else if (strcmp(line, "stats") == 0) {
        size_t lines = 0;
        for (size_t i = 0; i < reply_length; i++)
            lines += reply[i] == '\n';
        EXPECT(lines == usock_stack_counter_count());
    } else {
        EXPECT(strcmp(reply, "error unknown command\n") == 0);
    }
    free(reply);
}

/* A reply as the client takes it: lines, parsed, filtered, printed. */
static void fuzz_reply(struct control_world *world, const uint8_t *reply, size_t length)
{
    char *text = malloc(length + 1);
    if (!text)
        abort();
    memcpy(text, reply, length);
    text[length] = '\0';
    struct socket_row rows[ROWS_MAX];
    size_t count = 0;
    char *saved = NULL;
    for (char *line = strtok_r(text, "\n", &saved); line && count < ROWS_MAX;
         line = strtok_r(NULL, "\n", &saved)) {
        struct socket_row row;
        if (socket_row_parse(line, &row) != 0)
            continue;
        EXPECT(memchr(row.details, '\0', sizeof(row.details)) != NULL);
        EXPECT(memchr(row.local_address, '\0', sizeof(row.local_address)) != NULL);
        EXPECT(memchr(row.peer_port, '\0', sizeof(row.peer_port)) != NULL);
        for (unsigned kinds = 1; kinds < 8; kinds++)
            socket_row_selected(&row, kinds, (enum socket_listening_filter)(kinds % 3));
        rows[count++] = row;
    }
    socket_table_print(world->sink, rows, count, length % 2 == 0);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct control_world world;
    if (!world.stack)
        world_build(&world);
    if (size == 0)
        return 0;
    if ((data[0] & 1) == CONTROL_INPUT_REQUEST)
        fuzz_request(&world, data + 1, size - 1);
    else
        fuzz_reply(&world, data + 1, size - 1);
    return 0;
}
