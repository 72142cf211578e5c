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
#include <sys/socket.h>
#include <sys/types.h>

struct remote_client;

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

#endif
