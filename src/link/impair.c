/*
 * impair.c - a link that loses, duplicates, reorders, corrupts and delays
 * the frames of the link inside it, in both directions, reproducibly.
 *
 * Each direction (outgoing: the stack sends; incoming: read from the inner
 * link) has its own random stream, seeded from the impairment's seed, and
 * passes each frame through the same stages:
 *
 *   loss      the frame is dropped;
 *   duplicate the frame goes on twice (each copy through the stages below);
 *   corrupt   one bit of one byte of the copy is flipped;
 *   reorder   the frame waits behind the next frame of its direction, or at
 *             most IMPAIR_REORDER_TIMEOUT_NS of link time;
 *   delay     the frame is due at now + delay + uniform(0..jitter).
 *
 * Frames are held in a per-direction heap ordered by (due time, arrival),
 * so equal due times keep their order.  Outgoing frames go to the inner link
 * when due; incoming frames are returned by receive when due.  Time is only
 * what the callers pass in: every operation first releases what is due at
 * its `now` (impair_flush), and deadline() reports the earliest held frame,
 * so a stack on a simulated clock sees exactly the same run twice.
 *
 * Held frames are bounded (IMPAIR_HELD_MAX per direction); beyond that they
 * are dropped.  A link with no impairment passes frames straight through.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link/frame_queue.h"
#include "link/link.h"

#define IMPAIR_HELD_MAX 10000
#define IMPAIR_REORDER_TIMEOUT_NS 1000000ull
/* Frames read from the inner link per receive call before giving up. */
#define IMPAIR_READS_MAX 64
/* Longest item of a spec that is parsed (longer ones are bad). */
#define IMPAIR_ITEM_MAX 96
/* Longest delay or jitter a spec may ask for. */
#define IMPAIR_TIME_MAX_NS (3600ull * 1000000000ull)

struct held_frame {
    uint64_t due;
    uint64_t sequence; /* arrival order, to break ties between equal due times */
    struct link_frame *frame;
};

struct held_heap {
    struct held_frame *entries;
    size_t count;
    size_t capacity;
};

struct impair_direction {
    uint64_t random_state;
    struct held_heap held;        /* frames on their way, earliest due first */
    struct link_frame *reordered; /* frame waiting to go behind the next one */
    uint64_t reorder_release;     /* when reordered goes anyway */
    uint64_t sequence;
    uint64_t dropped;             /* frames dropped by the bounds, not by loss */
};

struct impair_link {
    struct usock_link link;
    struct usock_link *inner;
    struct usock_impairment impairment;
    int active;
    struct impair_direction outgoing;
    struct impair_direction incoming;
};

/* ------------------------------------------------------------------ */
/* Random numbers: splitmix64, small and good enough for dice.        */
/* ------------------------------------------------------------------ */

static uint64_t random_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Nonzero with the given probability.  Draws nothing for 0. */
static int random_chance(uint64_t *state, double probability)
{
    if (probability <= 0.0)
        return 0;
    return (double)(random_next(state) >> 11) * 0x1.0p-53 < probability;
}

/* Uniform in 0..bound-1 (bound > 0); the bias is below 2^-40 for our bounds. */
static uint64_t random_below(uint64_t *state, uint64_t bound)
{
    return random_next(state) % bound;
}

/* ------------------------------------------------------------------ */
/* The held-frame heap                                                 */
/* ------------------------------------------------------------------ */

static int held_before(const struct held_frame *a, const struct held_frame *b)
{
    return a->due < b->due || (a->due == b->due && a->sequence < b->sequence);
}

/* Adds an entry; the heap takes the frame.  Returns 0 or -ENOBUFS (full or
 * out of memory; the caller still owns the frame). */
static int held_heap_push(struct held_heap *heap, struct held_frame entry)
{
    if (heap->count == heap->capacity) {
        if (heap->capacity >= IMPAIR_HELD_MAX)
            return -ENOBUFS;
        size_t capacity = heap->capacity ? heap->capacity * 2 : 16;
        if (capacity > IMPAIR_HELD_MAX)
            capacity = IMPAIR_HELD_MAX;
        struct held_frame *entries = realloc(heap->entries, capacity * sizeof(*entries));
        if (entries == NULL)
            return -ENOBUFS;
        heap->entries = entries;
        heap->capacity = capacity;
    }
    size_t child = heap->count++;
    while (child > 0) {
        size_t parent = (child - 1) / 2;
        if (!held_before(&entry, &heap->entries[parent]))
            break;
        heap->entries[child] = heap->entries[parent];
        child = parent;
    }
    heap->entries[child] = entry;
    return 0;
}

/* Removes the earliest entry and returns its frame (the caller owns it). */
static struct link_frame *held_heap_pop(struct held_heap *heap)
{
    struct link_frame *frame = heap->entries[0].frame;
    struct held_frame last = heap->entries[--heap->count];
    size_t parent = 0;
    for (;;) {
        size_t child = parent * 2 + 1;
        if (child >= heap->count)
            break;
        if (child + 1 < heap->count && held_before(&heap->entries[child + 1], &heap->entries[child]))
            child++;
        if (!held_before(&heap->entries[child], &last))
            break;
        heap->entries[parent] = heap->entries[child];
        parent = child;
    }
    if (heap->count > 0)
        heap->entries[parent] = last;
    return frame;
}

/* Nonzero when the earliest entry is due at now. */
static int held_heap_due(const struct held_heap *heap, uint64_t now)
{
    return heap->count > 0 && heap->entries[0].due <= now;
}

static void held_heap_free(struct held_heap *heap)
{
    for (size_t i = 0; i < heap->count; i++)
        free(heap->entries[i].frame);
    free(heap->entries);
    heap->entries = NULL;
    heap->count = heap->capacity = 0;
}

/* ------------------------------------------------------------------ */
/* The stages                                                          */
/* ------------------------------------------------------------------ */

/* Delay stage: holds frame (owned) until now + delay + jitter. */
static void impair_schedule(struct impair_link *impair, struct impair_direction *direction,
                            struct link_frame *frame, uint64_t now)
{
    uint64_t due = now + impair->impairment.delay_ns;
    if (impair->impairment.jitter_ns > 0)
        due += random_below(&direction->random_state, impair->impairment.jitter_ns + 1);
    struct held_frame entry = { .due = due, .sequence = direction->sequence++, .frame = frame };
    if (held_heap_push(&direction->held, entry) < 0) {
        direction->dropped++;
        free(frame);
    }
}

/* Reorder stage: a frame waiting goes out behind this one; otherwise this
 * one may be chosen to wait.  frame is owned. */
static void impair_reorder(struct impair_link *impair, struct impair_direction *direction,
                           struct link_frame *frame, uint64_t now)
{
    if (direction->reordered != NULL) {
        struct link_frame *waiting = direction->reordered;
        direction->reordered = NULL;
        impair_schedule(impair, direction, frame, now);
        impair_schedule(impair, direction, waiting, now);
        return;
    }
    if (random_chance(&direction->random_state, impair->impairment.reorder)) {
        direction->reordered = frame;
        direction->reorder_release = now + IMPAIR_REORDER_TIMEOUT_NS;
        return;
    }
    impair_schedule(impair, direction, frame, now);
}

/* Runs one frame (borrowed) through loss, duplication, corruption, and on
 * to the reorder and delay stages. */
static void impair_admit(struct impair_link *impair, struct impair_direction *direction,
                         const uint8_t *data, size_t length, uint64_t now)
{
    const struct usock_impairment *impairment = &impair->impairment;
    if (random_chance(&direction->random_state, impairment->loss))
        return;
    int copies = random_chance(&direction->random_state, impairment->duplicate) ? 2 : 1;
    for (int copy = 0; copy < copies; copy++) {
        struct link_frame *frame = link_frame_new(data, length);
        if (frame == NULL) {
            direction->dropped++;
            continue;
        }
        if (random_chance(&direction->random_state, impairment->corrupt) && length > 0) {
            uint64_t byte = random_below(&direction->random_state, length);
            unsigned bit = (unsigned)random_below(&direction->random_state, 8);
            frame->data[byte] ^= (uint8_t)(1u << bit);
        }
        impair_reorder(impair, direction, frame, now);
    }
}

/* Lets a frame that has waited its reorder timeout go on to the delay. */
static void impair_release_reordered(struct impair_link *impair,
                                     struct impair_direction *direction, uint64_t now)
{
    if (direction->reordered != NULL && now >= direction->reorder_release) {
        struct link_frame *waiting = direction->reordered;
        direction->reordered = NULL;
        /* Timed from its release, not from whenever we were called. */
        impair_schedule(impair, direction, waiting, direction->reorder_release);
    }
}

/* Releases everything due at now: reorder timeouts in both directions, and
 * due outgoing frames to the inner link (whose refusals are losses). */
static void impair_flush(struct impair_link *impair, uint64_t now)
{
    impair_release_reordered(impair, &impair->outgoing, now);
    impair_release_reordered(impair, &impair->incoming, now);
    while (held_heap_due(&impair->outgoing.held, now)) {
        struct link_frame *frame = held_heap_pop(&impair->outgoing.held);
        (void)impair->inner->ops->send(impair->inner, frame->data, frame->length, now);
        free(frame);
    }
}

/* ------------------------------------------------------------------ */
/* Link operations                                                     */
/* ------------------------------------------------------------------ */

static int impair_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now)
{
    struct impair_link *impair = (struct impair_link *)link;
    if (!impair->active)
        return impair->inner->ops->send(impair->inner, frame, length, now);
    impair_flush(impair, now);
    impair_admit(impair, &impair->outgoing, frame, length, now);
    impair_flush(impair, now);
    return 0;
}

static ssize_t impair_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                              uint64_t now)
{
    struct impair_link *impair = (struct impair_link *)link;
    if (!impair->active)
        return impair->inner->ops->receive(impair->inner, buffer, capacity, now);
    impair_flush(impair, now);
    for (int reads = 0;; reads++) {
        if (held_heap_due(&impair->incoming.held, now)) {
            struct link_frame *frame = held_heap_pop(&impair->incoming.held);
            size_t stored = frame->length < capacity ? frame->length : capacity;
            memcpy(buffer, frame->data, stored);
            free(frame);
            return (ssize_t)stored;
        }
        if (reads == IMPAIR_READS_MAX)
            return -EAGAIN;
        /* The caller's buffer bounds what is read, as it would unimpaired. */
        ssize_t got = impair->inner->ops->receive(impair->inner, buffer, capacity, now);
        if (got < 0)
            return got;
        impair_admit(impair, &impair->incoming, buffer, (size_t)got, now);
    }
}

static int impair_wait_fd(const struct usock_link *link)
{
    const struct impair_link *impair = (const struct impair_link *)link;
    return impair->inner->ops->wait_fd(impair->inner);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t impair_direction_deadline(const struct impair_direction *direction)
{
    uint64_t deadline = USOCK_NEVER;
    if (direction->held.count > 0)
        deadline = direction->held.entries[0].due;
    if (direction->reordered != NULL)
        deadline = earliest(deadline, direction->reorder_release);
    return deadline;
}

static uint64_t impair_deadline(struct usock_link *link, uint64_t now)
{
    struct impair_link *impair = (struct impair_link *)link;
    if (!impair->active)
        return usock_link_deadline(impair->inner, now);
    /* Flush first: what it hands the inner link may set the inner deadline. */
    impair_flush(impair, now);
    uint64_t deadline = usock_link_deadline(impair->inner, now);
    deadline = earliest(deadline, impair_direction_deadline(&impair->outgoing));
    deadline = earliest(deadline, impair_direction_deadline(&impair->incoming));
    /* An incoming frame already due waits for receive: "now", not the past. */
    return deadline < now ? now : deadline;
}

static void impair_direction_free(struct impair_direction *direction)
{
    held_heap_free(&direction->held);
    free(direction->reordered);
    direction->reordered = NULL;
}

static void impair_destroy(struct usock_link *link)
{
    struct impair_link *impair = (struct impair_link *)link;
    impair_direction_free(&impair->outgoing);
    impair_direction_free(&impair->incoming);
    usock_link_close(impair->inner);
    free(impair);
}

static const struct link_ops impair_ops = {
    .kind = "impair",
    .send = impair_send,
    .receive = impair_receive,
    .wait_fd = impair_wait_fd,
    .deadline = impair_deadline,
    .destroy = impair_destroy,
};

static int probability_valid(double probability)
{
    return probability >= 0.0 && probability <= 1.0; /* false for NaN */
}

/*
 * usock_link_impair - wraps inner (owned from now on, closed on failure) in
 * a link applying *impairment in both directions.  The wrapper has inner's
 * layer, MTU, address and name.  Returns 0 and stores the link, or -EINVAL
 * (a probability outside 0..1), -ENOMEM.
 */
int usock_link_impair(struct usock_link *inner, const struct usock_impairment *impairment,
                      struct usock_link **link_out)
{
    int result;
    if (link_out != NULL)
        *link_out = NULL;
    if (inner == NULL)
        return -EINVAL;
    if (impairment == NULL || link_out == NULL || !probability_valid(impairment->loss) ||
        !probability_valid(impairment->duplicate) || !probability_valid(impairment->reorder) ||
        !probability_valid(impairment->corrupt)) {
        result = -EINVAL;
        goto fail_close_inner;
    }

    struct impair_link *impair = calloc(1, sizeof(*impair));
    if (impair == NULL) {
        result = -ENOMEM;
        goto fail_close_inner;
    }
    impair->inner = inner;
    impair->impairment = *impairment;
    impair->active = impairment->loss > 0 || impairment->duplicate > 0 ||
                     impairment->reorder > 0 || impairment->corrupt > 0 ||
                     impairment->delay_ns > 0 || impairment->jitter_ns > 0;
    /* Two streams drawn from the seed, so the directions do not mirror. */
    uint64_t seed_state = impairment->seed;
    impair->outgoing.random_state = random_next(&seed_state);
    impair->incoming.random_state = random_next(&seed_state);

    impair->link.ops = &impair_ops;
    impair->link.layer = inner->layer;
    impair->link.mtu = inner->mtu;
    impair->link.has_mac = inner->has_mac;
    memcpy(impair->link.mac, inner->mac, sizeof(impair->link.mac));
    memcpy(impair->link.name, inner->name, sizeof(impair->link.name));
    *link_out = &impair->link;
    return 0;

fail_close_inner:
    usock_link_close(inner);
    return result;
}

/* ------------------------------------------------------------------ */
/* Parsing "loss=2%,dup=1%,delay=2ms,..."                              */
/* ------------------------------------------------------------------ */

/* "2%", "2" (percent either way), "0.1%": 0..100 -> probability 0..1. */
static int impairment_parse_percent(const char *text, double *out)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(value))
        return -EINVAL;
    if (*end == '%')
        end++;
    if (*end != '\0' || value < 0.0 || value > 100.0)
        return -EINVAL;
    *out = value / 100.0;
    return 0;
}

/* "2ms", "500us", "1.5s", "100ns", "2" (milliseconds) -> nanoseconds. */
static int impairment_parse_time(const char *text, uint64_t *out)
{
    static const struct {
        const char *suffix;
        double nanoseconds;
    } units[] = {
        { "", 1e6 }, { "ns", 1.0 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 },
    };
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || errno != 0 || !isfinite(value) || value < 0.0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        double nanoseconds = value * units[i].nanoseconds;
        if (nanoseconds > (double)IMPAIR_TIME_MAX_NS)
            return -EINVAL;
        *out = (uint64_t)(nanoseconds + 0.5);
        return 0;
    }
    return -EINVAL;
}

/* A decimal or 0x-hexadecimal unsigned 64-bit integer. */
static int impairment_parse_seed(const char *text, uint64_t *out)
{
    char *end;
    if (*text == '\0' || *text == '-' || *text == '+')
        return -EINVAL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 0);
    if (end == text || *end != '\0' || errno != 0)
        return -EINVAL;
    *out = value;
    return 0;
}

/* Parses one "key=value" item (NUL-terminated, trimmed) into *out. */
static int impairment_parse_item(char *item, struct usock_impairment *out)
{
    char *value = strchr(item, '=');
    if (value == NULL)
        return -EINVAL;
    *value++ = '\0';
    if (strcmp(item, "loss") == 0)
        return impairment_parse_percent(value, &out->loss);
    if (strcmp(item, "dup") == 0 || strcmp(item, "duplicate") == 0)
        return impairment_parse_percent(value, &out->duplicate);
    if (strcmp(item, "reorder") == 0)
        return impairment_parse_percent(value, &out->reorder);
    if (strcmp(item, "corrupt") == 0)
        return impairment_parse_percent(value, &out->corrupt);
    if (strcmp(item, "delay") == 0)
        return impairment_parse_time(value, &out->delay_ns);
    if (strcmp(item, "jitter") == 0)
        return impairment_parse_time(value, &out->jitter_ns);
    if (strcmp(item, "seed") == 0)
        return impairment_parse_seed(value, &out->seed);
    return -EINVAL;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * usock_impairment_parse - parses a comma-separated list of key=value items
 * (loss, dup, reorder, corrupt as percent, '%' optional; delay, jitter as
 * times, ns/us/ms/s, bare numbers are ms; seed as an integer) into *out.
 * NULL or "" means no impairment.  On a bad item returns -EINVAL, leaves
 * *out unchanged and writes "bad impairment item '...'" to error.
 */
int usock_impairment_parse(const char *spec, struct usock_impairment *out, char *error,
                           size_t error_size)
{
    if (error != NULL && error_size > 0)
        error[0] = '\0';
    if (out == NULL)
        return -EINVAL;
    struct usock_impairment parsed;
    memset(&parsed, 0, sizeof(parsed));

    const char *cursor = spec != NULL ? spec : "";
    while (*cursor != '\0') {
        size_t length = strcspn(cursor, ",");
        const char *start = cursor;
        size_t trimmed = length;
        while (trimmed > 0 && is_blank(*start)) {
            start++;
            trimmed--;
        }
        while (trimmed > 0 && is_blank(start[trimmed - 1]))
            trimmed--;

        if (trimmed > 0) {
            char item[IMPAIR_ITEM_MAX];
            int bad = trimmed >= sizeof(item);
            if (!bad) {
                memcpy(item, start, trimmed);
                item[trimmed] = '\0';
                bad = impairment_parse_item(item, &parsed) < 0;
            }
            if (bad) {
                if (error != NULL && error_size > 0)
                    snprintf(error, error_size, "bad impairment item '%.*s'", (int)trimmed, start);
                return -EINVAL;
            }
        }
        cursor += length;
        if (*cursor == ',')
            cursor++;
    }
    *out = parsed;
    return 0;
}
