/*
 * client.h - the client side of the sockets API a running stack serves
 * (remote/protocol.h): what the usock_* calls of api.c hand their
 * arguments to when the stack handle came from usock_attach.
 *
 * Each function takes the arguments of the usock_* call of the same name
 * (buffers borrowed for the call only) and returns what it returns: the
 * result, or -1 with errno set as the stack set it.  A failure to reach
 * the stack (it stopped, or the connection broke) is EIO.
 */
#ifndef USOCK_REMOTE_CLIENT_H
#define USOCK_REMOTE_CLIENT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct remote_client;
struct usock_stack;

/* Closes every connection to the stack, which closes the descriptors this
 * client holds there.  No call may be in progress on client. */
void remote_client_close(struct remote_client *client);

int remote_socket(struct remote_client *client, int domain, int type, int protocol);
int remote_close(struct remote_client *client, int fd);
int remote_bind(struct remote_client *client, int fd, const struct sockaddr *address,
                socklen_t length);
int remote_connect(struct remote_client *client, int fd, const struct sockaddr *address,
                   socklen_t length);
int remote_listen(struct remote_client *client, int fd, int backlog);
int remote_accept(struct remote_client *client, int fd, struct sockaddr *address,
                  socklen_t *length);
int remote_shutdown(struct remote_client *client, int fd, int how);
ssize_t remote_sendmsg(struct remote_client *client, int fd, const struct msghdr *message,
                       int flags);
ssize_t remote_recvmsg(struct remote_client *client, int fd, struct msghdr *message, int flags);
int remote_getsockname(struct remote_client *client, int fd, struct sockaddr *address,
                       socklen_t *length);
int remote_getpeername(struct remote_client *client, int fd, struct sockaddr *address,
                       socklen_t *length);
int remote_setsockopt(struct remote_client *client, int fd, int level, int name,
                      const void *value, socklen_t length);
int remote_getsockopt(struct remote_client *client, int fd, int level, int name, void *value,
                      socklen_t *length);
int remote_fcntl(struct remote_client *client, int fd, int command, int argument);
int remote_ioctl(struct remote_client *client, int fd, unsigned long request, void *argument);
int remote_poll(struct remote_client *client, struct pollfd *fds, nfds_t count, int timeout_ms);
int remote_dup(struct remote_client *client, int fd);

/* True when a signal handler ran while this thread waited for the stack
 * since the last time this was asked (the preload's sliced waits end with
 * EINTR then, as the kernel's would). */
bool remote_interrupted(void);

/* ---- fork (protocol.h, "Fork") ---- */

/* What a forked child needs to take over its share of its parent's
 * descriptors: the token of the session the stack made for it and, for
 * each descriptor, the parent's number then the child's. */
struct remote_fork_ticket {
    uint8_t token[16];
    size_t count;
    int32_t *pairs;              /* 2 * count; malloc'd, freed by remote_fork_done */
};

/* Before fork() in a process attached as stack: asks the stack to share
 * every descriptor of this client with a session for the child, and fills
 * ticket.  On success the client's lock stays held until remote_fork_done
 * (in the parent) or remote_stack_abandon (in the child), so no other
 * thread is half-way through the connection pool when fork copies it.
 * Returns 0 or -1 with errno. */
int remote_fork_prepare(struct usock_stack *stack, struct remote_fork_ticket *ticket);

/* In the parent after fork() (either outcome): releases the lock and the
 * ticket's pairs.  child_made false (fork or exec failed): the stack closes
 * the child's share at once; a child made that never comes has the stack
 * close it after REMOTE_FORK_CLAIM_S. */
void remote_fork_done(struct usock_stack *stack, struct remote_fork_ticket *ticket,
                      bool child_made);

/* The sockets-API endpoint an attached handle talks to (the handle's). */
const char *remote_path(const struct usock_stack *stack);

/* In the child: lets go of the parent's attached handle without a word to
 * the stack (the parent still uses the same connections): closes this
 * process's copies of the connections and frees the handle. */
void remote_stack_abandon(struct usock_stack *stack);

/* In the child: attaches to the stack at path, taking over the session of
 * ticket (its descriptors are the ticket's second numbers).  Returns the
 * handle, or NULL with errno (EACCES: the ticket is spent or expired). */
struct usock_stack *remote_attach_forked(const char *path, const uint8_t token[16]);

#endif
