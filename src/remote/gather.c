/*
 * gather.c - small sends of an attached client gathered in a memory
 * region it shares with the stack's process (remote/protocol.h,
 * "Gathering").
 *
 * Theory of operation.  Each reply to an ordinary stream send says how
 * many bytes the socket would take at once (send_room, only when no other
 * client can send on it).  That is this descriptor's credit.  A later
 * send of at most GATHER_SEND_MAX bytes that fits the credit is copied
 * into a slot of the region (the descriptor's own, taken from the free
 * ones on its first byte), the credit goes down by it, and the caller is
 * answered at once: the bytes are as good as in the socket's buffer,
 * since the stack has room for them and nothing else can take it.  One
 * REMOTE_FLUSH later has the server send the whole slot.  A flush comes
 *   - before any other call on the descriptor (recv, close, shutdown,
 *     options ...), and for every descriptor before poll and fork, so
 *     what was sent goes out before the program looks for an answer;
 *   - when a send does not fit (too large, past the credit or the slot);
 *   - from the flusher thread, GATHER_DELAY_NS after the slot's first
 *     byte, for a program that sends and then waits on something else.
 * A flush that fails keeps the error for the next send on the descriptor
 * (the bytes are lost with the connection, as in the kernel's buffer).
 * If the process dies, the server sends what the slots hold before it
 * closes the descriptors (server.c, session_drain).
 *
 * The region is a sealed memfd (it cannot shrink under the server),
 * made and handed over (REMOTE_GATHER_SETUP) on the first send that gets
 * credit; if that fails nothing is gathered.  Locking: gather->lock
 * guards everything here and is held across a flush (a call to the stack
 * on a connection of the pool), never the other way round.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "remote/gather.h"
#include "remote/protocol.h"

/* Larger sends go at once. */
#define GATHER_SEND_MAX 16384
/* The longest gathered bytes wait for the flusher. */
#define GATHER_DELAY_NS 200000ull
/* The flusher stays awake (waking every GATHER_DELAY_NS) this long after
 * the last gathering, so a run of sends does not wake it each time. */
#define GATHER_AWAKE_NS 20000000ull
/* Descriptors past this are never gathered for. */
#define GATHER_DESCRIPTOR_LIMIT (1 << 24)

struct gather_descriptor {
    int32_t credit;     /* bytes the stack takes at once, less those gathered; -1: none */
    int32_t slot;       /* its slot while it holds bytes, else -1 */
    int32_t error;      /* a flush failed with it: the next send says so */
};

struct gather {
    struct remote_client *client;
    pthread_mutex_t lock;
    pthread_cond_t due;                 /* wakes the flusher (CLOCK_MONOTONIC) */
    struct remote_gather_slot *region;  /* shared; NULL until made */
    bool region_failed;
    struct gather_descriptor *descriptors;
    size_t capacity;
    uint64_t since[REMOTE_GATHER_SLOTS];  /* when a slot's first byte came; 0: free */
    int32_t slot_fd[REMOTE_GATHER_SLOTS];
    /* Slots holding bytes, read without the lock so that a call with
     * nothing gathered before it does not take it (gather_flush). */
    atomic_uint slots_used;
    pthread_t flusher;
    bool flusher_running;
    bool flusher_asleep;                /* waiting without a deadline: signal it */
    uint64_t last_gathered;             /* when a slot last took its first byte */
    bool stopping;
};

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

struct gather *gather_new(struct remote_client *client)
{
    struct gather *gather = calloc(1, sizeof(*gather));
    if (!gather)
        return NULL;
    gather->client = client;
    atomic_init(&gather->slots_used, 0);
    pthread_mutex_init(&gather->lock, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&gather->due, &attributes);
    pthread_condattr_destroy(&attributes);
    for (size_t i = 0; i < REMOTE_GATHER_SLOTS; i++)
        gather->slot_fd[i] = -1;
    return gather;
}

/* The state of fd, the table grown to hold it (lock held).  NULL past the
 * limit or when out of memory. */
static struct gather_descriptor *descriptor_of(struct gather *gather, int fd)
{
    if (fd < 0 || fd >= GATHER_DESCRIPTOR_LIMIT)
        return NULL;
    if ((size_t)fd >= gather->capacity) {
        size_t capacity = gather->capacity ? gather->capacity : 64;
        while (capacity <= (size_t)fd)
            capacity *= 2;
        struct gather_descriptor *grown =
            realloc(gather->descriptors, capacity * sizeof(*grown));
        if (!grown)
            return NULL;
        for (size_t i = gather->capacity; i < capacity; i++)
            grown[i] = (struct gather_descriptor){.credit = -1, .slot = -1};
        gather->descriptors = grown;
        gather->capacity = capacity;
    }
    return &gather->descriptors[fd];
}

/* Makes the shared region and hands it to the server (lock held). */
static void region_make(struct gather *gather)
{
    int fd = memfd_create("usock-gather", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void *region = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)REMOTE_GATHER_REGION) == 0 &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        region = mmap(NULL, REMOTE_GATHER_REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (region != MAP_FAILED) {
        struct remote_request request = {.operation = REMOTE_GATHER_SETUP};
        struct remote_reply reply;
        if (remote_call_passing(gather->client, &request, fd, &reply) == 0) {
            gather->region = region;
        } else {
            munmap(region, REMOTE_GATHER_REGION);
        }
    }
    if (fd >= 0)
        close(fd);
    gather->region_failed = gather->region == NULL;
}

/* Gives slot back, emptied (lock held). */
static void slot_free(struct gather *gather, int slot)
{
    atomic_store_explicit((_Atomic uint32_t *)&gather->region[slot].length, 0,
                          memory_order_release);
    gather->since[slot] = 0;
    gather->slot_fd[slot] = -1;
    atomic_fetch_sub(&gather->slots_used, 1);
}

/* Sends what slot holds (lock held).  The server takes what it sent out
 * of the slot itself (so a drain after this process died never sends it
 * twice); afterwards the slot is free, unless the server kept some back
 * (it could not send all before an error, or the server stopping), which
 * the next flush tries again. */
static void flush_slot(struct gather *gather, int slot)
{
    struct remote_gather_slot *shared = &gather->region[slot];
    int fd = gather->slot_fd[slot];
    struct gather_descriptor *descriptor = &gather->descriptors[fd];
    struct remote_request request = {.operation = REMOTE_FLUSH, .fd = fd, .arguments = {slot}};
    struct remote_reply reply;
    int64_t result = remote_call(gather->client, &request, NULL, &reply, NULL, 0);
    uint32_t left = atomic_load_explicit((_Atomic uint32_t *)&shared->length,
                                         memory_order_acquire);
    if (result < 0) {
        /* Lost with the connection, as in the kernel's buffer; the next
         * send says why, once. */
        descriptor->error = (int32_t)-result;
        left = 0;
    }
    if (left > 0) {
        descriptor->credit = -1;
        gather->since[slot] = monotonic_ns(); /* tried again a delay later */
        return;
    }
    descriptor->credit = result < 0 ? -1 : reply.send_room;
    slot_free(gather, slot);
    descriptor->slot = -1;
}

/* The flusher: sends each slot GATHER_DELAY_NS after its first byte. */
static void *flusher_main(void *argument)
{
    struct gather *gather = argument;
    pthread_mutex_lock(&gather->lock);
    while (!gather->stopping) {
        int oldest = -1;
        for (int i = 0; i < REMOTE_GATHER_SLOTS; i++) {
            if (gather->since[i] && (oldest < 0 || gather->since[i] < gather->since[oldest]))
                oldest = i;
        }
        uint64_t now = monotonic_ns();
        if (oldest < 0 && now - gather->last_gathered >= GATHER_AWAKE_NS) {
            gather->flusher_asleep = true;
            pthread_cond_wait(&gather->due, &gather->lock);
            gather->flusher_asleep = false;
            continue;
        }
        /* Awake: the next look is at the oldest slot's time, or one delay
         * on (a slot taken meanwhile is at most that late). */
        uint64_t deadline = oldest >= 0 ? gather->since[oldest] + GATHER_DELAY_NS
                                        : now + GATHER_DELAY_NS;
        if (oldest >= 0 && now >= deadline) {
            flush_slot(gather, oldest);
            continue;
        }
        struct timespec until = {.tv_sec = (time_t)(deadline / 1000000000ull),
                                 .tv_nsec = (long)(deadline % 1000000000ull)};
        pthread_cond_timedwait(&gather->due, &gather->lock, &until);
    }
    pthread_mutex_unlock(&gather->lock);
    return NULL;
}

/* Copies the message's bytes into slot after its first offset bytes. */
static void copy_in(struct remote_gather_slot *slot, size_t offset, const struct msghdr *message)
{
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        memcpy(slot->data + offset, message->msg_iov[i].iov_base, message->msg_iov[i].iov_len);
        offset += message->msg_iov[i].iov_len;
    }
}

ssize_t gather_send(struct gather *gather, int fd, const struct msghdr *message, int flags,
                    size_t total)
{
    bool plain = !(flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE)) && !message->msg_name &&
                 !(message->msg_control && message->msg_controllen) && total > 0 &&
                 total <= GATHER_SEND_MAX;
    pthread_mutex_lock(&gather->lock);
    struct gather_descriptor *descriptor = descriptor_of(gather, fd);
    if (!descriptor) {
        pthread_mutex_unlock(&gather->lock);
        return 0; /* never gathered for */
    }
    if (descriptor->error) {
        int error = descriptor->error;
        descriptor->error = 0;
        pthread_mutex_unlock(&gather->lock);
        return -error;
    }
    int slot = descriptor->slot;
    size_t held = slot >= 0 ? gather->region[slot].length : 0;
    if (slot >= 0 && (!plain || held + total > REMOTE_GATHER_BYTES ||
                      descriptor->credit < (int64_t)total)) {
        flush_slot(gather, slot);
        slot = descriptor->slot;
        int error = descriptor->error;
        if (error || slot >= 0) {
            /* It failed (said now, once), or the server kept bytes back:
             * this send may not overtake them. */
            descriptor->error = 0;
            pthread_mutex_unlock(&gather->lock);
            return error ? -error : -EAGAIN;
        }
        held = 0;
    }
    if (!plain || !gather->region || descriptor->credit < (int64_t)total) {
        /* The ordinary way; its reply says the room anew (gather_note_room). */
        descriptor->credit = -1;
        pthread_mutex_unlock(&gather->lock);
        return 0;
    }
    if (slot < 0) {
        for (int i = 0; i < REMOTE_GATHER_SLOTS && slot < 0; i++)
            if (gather->slot_fd[i] < 0)
                slot = i;
        if (slot < 0) {
            pthread_mutex_unlock(&gather->lock);
            return 0; /* every slot busy: at once, as if not gathering */
        }
        if (!gather->flusher_running) {
            if (pthread_create(&gather->flusher, NULL, flusher_main, gather) != 0) {
                pthread_mutex_unlock(&gather->lock);
                return 0;
            }
            gather->flusher_running = true;
        }
        gather->slot_fd[slot] = fd;
        atomic_fetch_add(&gather->slots_used, 1);
        gather->region[slot].fd = fd;
        gather->since[slot] = gather->last_gathered = monotonic_ns();
        descriptor->slot = slot;
        if (gather->flusher_asleep)
            pthread_cond_signal(&gather->due);
    }
    copy_in(&gather->region[slot], held, message);
    atomic_store_explicit((_Atomic uint32_t *)&gather->region[slot].length,
                          (uint32_t)(held + total), memory_order_release);
    descriptor->credit -= (int32_t)total;
    pthread_mutex_unlock(&gather->lock);
    return (ssize_t)total;
}

void gather_note_room(struct gather *gather, int fd, int room)
{
    pthread_mutex_lock(&gather->lock);
    struct gather_descriptor *descriptor = descriptor_of(gather, fd);
    if (descriptor && descriptor->slot < 0) {
        descriptor->credit = room;
        if (room > 0 && !gather->region && !gather->region_failed)
            region_make(gather);
    }
    pthread_mutex_unlock(&gather->lock);
}

void gather_flush(struct gather *gather, int fd, bool forget_room)
{
    /* Most calls come with nothing gathered: no lock for them.  A slot
     * another thread fills meanwhile is that thread's send, not one this
     * call must come after. */
    if (!forget_room && atomic_load(&gather->slots_used) == 0)
        return;
    pthread_mutex_lock(&gather->lock);
    for (int i = 0; i < REMOTE_GATHER_SLOTS; i++) {
        if (gather->slot_fd[i] >= 0 && (fd < 0 || gather->slot_fd[i] == fd))
            flush_slot(gather, i);
    }
    if (forget_room) {
        for (size_t i = 0; i < gather->capacity; i++)
            if (fd < 0 || (size_t)fd == i)
                gather->descriptors[i].credit = -1;
    }
    pthread_mutex_unlock(&gather->lock);
}

void gather_forget(struct gather *gather, int fd)
{
    pthread_mutex_lock(&gather->lock);
    if (fd >= 0 && (size_t)fd < gather->capacity) {
        int slot = gather->descriptors[fd].slot;
        if (slot >= 0)
            slot_free(gather, slot); /* left by a flush that failed: not for fd's next owner */
        gather->descriptors[fd] = (struct gather_descriptor){.credit = -1, .slot = -1};
    }
    pthread_mutex_unlock(&gather->lock);
}

void gather_free(struct gather *gather)
{
    if (!gather)
        return;
    pthread_mutex_lock(&gather->lock);
    gather->stopping = true;
    pthread_cond_signal(&gather->due);
    pthread_mutex_unlock(&gather->lock);
    if (gather->flusher_running)
        pthread_join(gather->flusher, NULL);
    gather_flush(gather, -1, false);
    pthread_cond_destroy(&gather->due);
    pthread_mutex_destroy(&gather->lock);
    gather_abandon(gather);
}

void gather_abandon(struct gather *gather)
{
    /* In a forked child the lock may be held by a thread of the parent
     * that the child does not have: it is left alone, not destroyed. */
    if (!gather)
        return;
    if (gather->region)
        munmap(gather->region, REMOTE_GATHER_REGION);
    free(gather->descriptors);
    free(gather);
}
