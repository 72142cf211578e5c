/*
 * gather.h - small sends on an attached stack gathered in memory shared
 * with the stack's process, so that a run of them costs one exchange
 * (remote/protocol.h, "Gathering"; gather.c says how).
 *
 * Used by client.c only.  Every function here is thread-safe; those that
 * take the client may make calls to the stack on it.
 */
#ifndef USOCK_REMOTE_GATHER_H
#define USOCK_REMOTE_GATHER_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

struct remote_client;
struct remote_reply;
struct remote_request;
struct gather;

/* The gathering state of client (nothing shared until the first stream
 * send says it has room).  NULL when out of memory: nothing is gathered. */
struct gather *gather_new(struct remote_client *client);

/* Sends everything gathered, stops the flusher thread, unmaps and frees. */
void gather_free(struct gather *gather);

/* In a forked child: unmaps and frees without sending anything (what is
 * gathered is the parent's to send).  Single-threaded. */
void gather_abandon(struct gather *gather);

/* A send of total bytes on fd: gathered when it may be.  Returns total
 * when it was; 0 when it must go the ordinary way (anything gathered for
 * fd has gone first); -errno when sending what was gathered earlier for fd
 * failed (reported once, as the kernel reports an asynchronous error), or
 * -EAGAIN when the stack kept some of it back (the send may not overtake
 * it; rare: what is gathered had room). */
ssize_t gather_send(struct gather *gather, int fd, const struct msghdr *message, int flags,
                    size_t total);

/* After an ordinary send on fd: room is the reply's send_room when it went
 * whole (bytes the stack would take at once), else -1: do not gather. */
void gather_note_room(struct gather *gather, int fd, int room);

/* Sends what is gathered for fd (fd < 0: for every descriptor) before a
 * call that must come after it.  With forget_room, later sends on fd (or
 * every descriptor) are not gathered until a send says there is room
 * again (after fork, setsockopt, shutdown ...). */
void gather_flush(struct gather *gather, int fd, bool forget_room);

/* fd was closed, or is a new descriptor: nothing known of it (call
 * gather_flush first for one being closed). */
void gather_forget(struct gather *gather, int fd);

/* client.c's exchange, for gather.c: one call with a small value each way
 * (client_call), and one with a descriptor riding along (SCM_RIGHTS). */
int64_t remote_call(struct remote_client *client, struct remote_request *request,
                    const void *value, struct remote_reply *reply, void *reply_value,
                    size_t reply_room);
int64_t remote_call_passing(struct remote_client *client, struct remote_request *request,
                            int descriptor, struct remote_reply *reply);

#endif
