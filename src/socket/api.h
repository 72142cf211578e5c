/*
 * api.h - what the socket calls (api.c) offer the stack's own services
 * beyond include/usock.h: acting for an attached client.
 *
 * A descriptor belongs to an owner: 0 for the stack's own process, else
 * the number the sockets-API server (src/remote/server.c) gave one
 * attached client.  A thread says once whom it acts for (api_act_for);
 * from then on every usock_* call it makes finds only that owner's
 * descriptors (others are EBADF, POLLNVAL in poll), and the sockets it makes
 * or accepts are that owner's, shown with its process id by ss -p.
 */
#ifndef USOCK_SOCKET_API_H
#define USOCK_SOCKET_API_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct usock_stack;

/* Makes the calling thread act for owner (0: the stack's own process),
 * whose process id is pid (0: none), in every later usock_* call. */
void api_act_for(uint32_t owner, int32_t pid);

/* Makes flag (NULL: none) the calling thread's interrupt: while it is
 * set, a call of this thread that sleeps (accept, recv, send, connect ...)
 * ends with EINTR when woken, as a signal ends one in the kernel. */
void api_interrupt_by(const atomic_bool *flag);

/* Wakes the calls sleeping on the socket behind fd (whoever owns it), so
 * one whose interrupt flag was raised sees it. */
void api_interrupt(struct usock_stack *stack, int fd);

/* Closes every descriptor of owner (not 0) at once, as process exit does:
 * a thread blocked on one of them wakes with EBADF; SO_LINGER is not waited
 * for.  Returns how many were closed. */
size_t api_close_owned(struct usock_stack *stack, uint32_t owner);

/* Shows pid (ss -p) as the process holding owner's descriptors (a forked
 * child that claimed what api_share_owned gave it). */
void api_set_owner_pid(struct usock_stack *stack, uint32_t owner, int32_t pid);

/* For the calling thread's owner: the bytes a send on stream socket fd
 * would take at once, when nothing else can send on it meanwhile (its one
 * descriptor is this owner's); -1 otherwise, or for a bad fd. */
long api_send_room(struct usock_stack *stack, int fd);

/* Gives owner `to` a descriptor of its own for every descriptor owner
 * `from` holds, sharing each socket as a forked child shares its parent's
 * (usock_dup semantics).  pairs receives, for each, from's descriptor then
 * to's (room for max pairs).  Returns the number of pairs, or -EMFILE,
 * -ENOMEM, or -E2BIG for more than max, with nothing given. */
int api_share_owned(struct usock_stack *stack, uint32_t from, uint32_t to, int32_t *pairs,
                    size_t max);

#endif
