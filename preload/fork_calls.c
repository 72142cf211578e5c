/*
 * fork_calls.c - fork() for a program whose sockets live on a usock stack:
 * the child shares them with its parent, as the kernel shares a process's
 * sockets with its children.
 *
 * Theory of operation.  A process with no usock socket forks as libc does.
 * Otherwise, before libc's fork the shim asks the stack (REMOTE_FORK,
 * remote/protocol.h) to make a session for the child that holds a
 * descriptor of its own for each of the parent's, the same sockets shared,
 * and gets back that session's token and the pairs "parent's descriptor,
 * child's descriptor".  Then libc forks.  The child lets go of the
 * parent's attached handle (whose connections the parent goes on using),
 * attaches anew claiming the session with the token, and rewrites its
 * copy of the descriptor map: each reserved kernel descriptor it inherited
 * now stands for the child's own usock descriptor of the same socket.  So
 * both processes can accept on one listener, a connection the parent
 * accepted can be served by the child after the parent closes its copy,
 * and the socket goes when the last process holding it closes it or dies.
 *
 * Limits: a socket made by another thread between the request and libc's
 * fork is not the child's (there its number is a plain eventfd: ENOTSOCK).  When the stack cannot share (it is gone, or out of
 * descriptors) fork() fails with that errno and no child is made, rather
 * than a child whose sockets silently are not there.  A child that exits or
 * execs without a word lets the stack close its copies: at once when its
 * connection closes, or REMOTE_FORK_CLAIM_S after the fork when it never
 * attached.  vfork() and posix_spawn() are libc's: their child runs
 * nothing of the parent's but exec.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"
#include "remote/client.h"

/* Orders pairs by the parent's descriptor. */
static int pair_compare(const void *left, const void *right)
{
    const int32_t *a = left, *b = right;
    return (a[0] > b[0]) - (a[0] < b[0]);
}

/* fd_map_rewrite's step in the child: the parent's usock descriptor to the
 * child's, or -1 when the ticket has none for it. */
static int child_descriptor(int parent_fd, void *context)
{
    const struct remote_fork_ticket *ticket = context;
    int32_t key[2] = {parent_fd, 0};
    const int32_t *pair = bsearch(key, ticket->pairs, ticket->count, 2 * sizeof(int32_t),
                                  pair_compare);
    return pair ? pair[1] : -1;
}

/* In the child: takes over its share of the sockets (see the top). */
static void child_take_over(struct usock_stack *parent_stack, struct remote_fork_ticket *ticket)
{
    char path[108];
    snprintf(path, sizeof(path), "%s", remote_path(parent_stack));
    remote_stack_abandon(parent_stack);
    struct usock_stack *stack = remote_attach_forked(path, ticket->token);
    if (!stack) {
        shim_say("a forked child cannot take over its sockets", errno);
        fd_map_forget_all();
        shim_set_stack(NULL);
    } else {
        qsort(ticket->pairs, ticket->count, 2 * sizeof(int32_t), pair_compare);
        fd_map_rewrite(child_descriptor, ticket);
        shim_set_stack(stack);
    }
    free(ticket->pairs);
}

pid_t fork(void)
{
    struct usock_stack *stack = shim_stack_if_attached();
    if (!stack || !shim_attached_here() || !fd_map_any())
        return libc_next()->fork();
    struct remote_fork_ticket ticket;
    if (remote_fork_prepare(stack, &ticket) < 0)
        return -1;
    int saved_errno = errno;
    shim_in_fork = true;
    pid_t pid = libc_next()->fork();
    if (pid != 0) {
        shim_in_fork = false;
        int fork_errno = errno;
        remote_fork_done(stack, &ticket, pid > 0);
        errno = pid < 0 ? fork_errno : saved_errno;
        return pid;
    }
    child_take_over(stack, &ticket);
    shim_in_fork = false;
    errno = saved_errno;
    return 0;
}
