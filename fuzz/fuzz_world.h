/*
 * fuzz_world.h - what the fuzz targets and the corpus generator share: a
 * reader over the fuzzer's input, a simulated clock, a list of captured
 * frames, the check every frame a stack sends must pass, and the world
 * fuzz_frames drives (one stack brought into a chosen state with the help
 * of a peer, then left alone with the fuzzer).
 */
#ifndef USOCK_FUZZ_WORLD_H
#define USOCK_FUZZ_WORLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usock.h"

#define FUZZ_NS_PER_MS 1000000ULL
#define FUZZ_NS_PER_SECOND 1000000000ULL

/* Addresses and hardware addresses of the worlds (a /24). */
#define FUZZ_PEER_ADDRESS "198.18.0.1"
#define FUZZ_TARGET_ADDRESS "198.18.0.2"
#define FUZZ_BROADCAST_ADDRESS "198.18.0.255"
extern const uint8_t fuzz_peer_mac[6];
extern const uint8_t fuzz_target_mac[6];

/* Ports the target stack of fuzz_frames listens on. */
#define FUZZ_TCP_PORT 80
#define FUZZ_UDP_PORT 3000
#define FUZZ_UDP_WILDCARD_PORT 3001
#define FUZZ_UDP_CONNECTED_PORT 3002
#define FUZZ_UDP_MULTICAST_PORT 5000
#define FUZZ_PEER_UDP_PORT 4000
#define FUZZ_RAW_PROTOCOL 253 /* RFC 3692 experimentation */
#define FUZZ_GROUP_ANY_SOURCE "239.1.1.1"
#define FUZZ_GROUP_ONE_SOURCE "239.2.2.2"
#define FUZZ_GROUP_BLOCKED_SOURCE "239.3.3.3"

/* ---- the input --------------------------------------------------------- */

/* The fuzzer's bytes, read front to back; past the end every read gives 0. */
struct fuzz_input {
    const uint8_t *data;
    size_t size;
    size_t offset;
};

static inline bool fuzz_input_empty(const struct fuzz_input *input)
{
    return input->offset >= input->size;
}

static inline uint8_t fuzz_input_byte(struct fuzz_input *input)
{
    return fuzz_input_empty(input) ? 0 : input->data[input->offset++];
}

static inline uint16_t fuzz_input_u16(struct fuzz_input *input)
{
    uint16_t high = fuzz_input_byte(input);
    return (uint16_t)(high << 8 | fuzz_input_byte(input));
}

/* Takes up to length bytes; stores where they start and returns how many
 * there were. */
static inline size_t fuzz_input_take(struct fuzz_input *input, size_t length,
                                     const uint8_t **bytes)
{
    size_t left = input->size - (input->offset < input->size ? input->offset : input->size);
    if (length > left)
        length = left;
    *bytes = input->data + input->offset;
    input->offset += length;
    return length;
}

/* ---- time and frames --------------------------------------------------- */

struct fuzz_clock {
    uint64_t now;
};

/* A usock_clock_fn over a struct fuzz_clock. */
uint64_t fuzz_clock_read(void *context);

#define FRAME_LIST_MAX 128

/* Frames kept in order of capture (copies; at most FRAME_LIST_MAX, the
 * rest are counted and dropped). */
struct frame_list {
    uint8_t *frames[FRAME_LIST_MAX];
    size_t lengths[FRAME_LIST_MAX];
    size_t count;
    size_t dropped;
};

void frame_list_push(struct frame_list *list, const uint8_t *frame, size_t length);
void frame_list_clear(struct frame_list *list);

/* Aborts unless frame is one a stack may put on an Ethernet link: at most
 * 1514 bytes, ARP that parses, or IPv4 whose header and (unfragmented)
 * transport checksums hold and whose total length is the frame's. */
void fuzz_check_sent_frame(const uint8_t *frame, size_t length);

/* A stack configuration for the worlds: address on the /24, fixed seed,
 * fake clock, short TIME_WAIT, bounded TCP memory. */
void fuzz_stack_config(struct usock_stack_config *config, struct usock_link *link,
                       const char *address, const uint8_t mac[6], uint64_t seed,
                       struct fuzz_clock *clock);

/* Turns off checksum verification of a stack: fuzzed frames then reach
 * the code behind the checksums.  Only the fuzz targets do this. */
void fuzz_stack_skip_checksums(struct usock_stack *stack);

/* ---- fuzz_session: two stacks, the input as the path between them ----- */

/* The input begins with SESSION_HEADER_LENGTH bytes: u16 bytes A sends, u16
 * bytes B sends (each modulo SESSION_STREAM_MAX + 1), and a byte of
 * SESSION_OPTION_* bits plus the datagram count in its top two bits.  The
 * rest decides, frame by frame, what the path does (an action byte modulo
 * SESSION_ACTION_COUNT, some with arguments); once it runs out, every frame
 * is delivered. */
#define SESSION_HEADER_LENGTH 5
#define SESSION_STREAM_MAX 30000
#define SESSION_OPTION_RENO 0x01          /* A's connection uses Reno */
#define SESSION_OPTION_SMALL_BUFFERS 0x02 /* B's receive and A's send buffer are small */
#define SESSION_OPTION_SMALL_SEGMENTS 0x04 /* A's TCP_MAXSEG is 536 */
#define SESSION_OPTION_NO_DELAY 0x08      /* TCP_NODELAY on both */
#define SESSION_OPTION_A_CLOSES 0x10      /* A closes at once after shutting down */
#define SESSION_OPTION_LATENCY 0x20       /* each round of frames takes 1 ms */
#define SESSION_DATAGRAMS_SHIFT 6

enum session_action {
    SESSION_DELIVER,
    SESSION_DELIVER_AGAIN, /* the same (weighted) */
    SESSION_DROP,
    SESSION_DUPLICATE,
    SESSION_HOLD,          /* to the back of the queue: reordered */
    SESSION_MUTATE,        /* u16 offset, u8 xor: one byte changed, then delivered */
    SESSION_DELAY,         /* u8 ms the clock moves before delivery */
    SESSION_ACTION_COUNT,
};

/* ---- fuzz_parsers ------------------------------------------------------ */

/* The first byte picks the parser (modulo PARSER_COUNT); UDP and TCP take
 * their pseudo-header's source and destination from the next 8 bytes. */
enum parser_choice {
    PARSER_ETHERNET,
    PARSER_ARP,
    PARSER_IPV4,
    PARSER_ICMP,
    PARSER_UDP,
    PARSER_TCP,
    PARSER_IGMP,
    PARSER_CHECKSUM,
    PARSER_IMPAIRMENT, /* the text of usock_impairment_parse */
    PARSER_FRAME,      /* a whole frame, each layer's parser in turn */
    PARSER_COUNT,
};

/* ---- fuzz_control ------------------------------------------------------ */

/* The first byte's low bit: 0, the rest is a request to the control
 * endpoint; 1, the rest is a reply for the client to parse. */
#define CONTROL_INPUT_REQUEST 0
#define CONTROL_INPUT_REPLY 1

/* ---- fuzz_frames: one stack in a chosen state ------------------------- */

/*
 * The first input byte picks the scenario (its low two bits) and variants
 * (the rest: which side opened the connection, the congestion control, a
 * small receive buffer, a half-closed connection).
 */
enum frames_scenario {
    SCENARIO_LISTENER,    /* a listening TCP socket (and a child connection) */
    SCENARIO_ESTABLISHED, /* a connection with data in flight both ways */
    SCENARIO_FRAGMENTS,   /* IP fragments waiting for reassembly */
    SCENARIO_DATAGRAMS,   /* UDP, raw, ping sockets and multicast memberships */
    SCENARIO_COUNT,
};

#define VARIANT_TARGET_CONNECTS 0x04  /* the target made the active open */
#define VARIANT_RENO 0x08             /* TCP_CONGESTION reno on the target's side */
#define VARIANT_SMALL_RECEIVE_BUFFER 0x10
#define VARIANT_HALF_CLOSED 0x20      /* the target shut down its sending side */

/* Records of the rest of the input (the opcode is the byte modulo
 * FRAMES_OPCODE_COUNT; numbers are big-endian). */
enum frames_opcode {
    OPCODE_FRAME,          /* u16 length, bytes: a frame handed in as it is */
    OPCODE_FRAME_AGAIN,    /* the same (weighted: most records are frames) */
    OPCODE_TEMPLATE,       /* u8 index, u8 count, count x (u16 offset, u8 xor):
                            * a frame the peer sent during setup, altered */
    OPCODE_ADVANCE,        /* u16 milliseconds the clock moves on */
    OPCODE_APPLICATION,    /* u8 action, u8 argument: the program's socket calls */
    OPCODE_NEXT_TIMER,     /* the clock moves to the stack's next deadline */
    OPCODE_FLOOD,          /* u8 index, u8 count, u16 offset: count copies of a
                            * template, the byte at offset counting up per copy */
    FRAMES_OPCODE_COUNT,
};

#define FRAMES_SOCKETS_MAX 32

struct frames_world {
    struct fuzz_clock clock;
    struct usock_stack *stack;   /* the stack under test (FUZZ_TARGET_ADDRESS) */
    struct usock_link *link;     /* its callback link */
    int sockets[FRAMES_SOCKETS_MAX]; /* every descriptor the program holds, -1 when closed */
    int socket_count;
    int listener;                /* -1 when none */
    struct frame_list templates; /* frames of the setup the stack never saw (or saw once) */
    struct frame_list *capture;  /* during setup: where the stack's frames go */
    size_t frames_sent;          /* frames the stack sent once set up */
};

/* Builds the world for the scenario byte; the peer stack used to get there
 * is gone when it returns.  Returns 0, or -1 when setup failed (a bug in
 * the harness or the stack: the caller aborts). */
int frames_world_setup(struct frames_world *world, uint8_t scenario_byte);
/* Runs the rest of the input against the world. */
void frames_world_run(struct frames_world *world, struct fuzz_input *input);
/* Lets every timer run out for a while, then frees everything. */
void frames_world_finish(struct frames_world *world);

#endif
