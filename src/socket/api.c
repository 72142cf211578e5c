/*
 * api.c - the Berkeley sockets calls of include/usock.h.
 *
 * Every call takes the stack lock, finds the socket by descriptor and holds
 * a reference on it, reads the stack's clock once, does its work through
 * the socket's operations table, delivers anything it sent to the stack
 * itself (loopback), and releases the lock.  Internal functions return
 * negative errno; here it becomes -1 and errno, as libc does.
 *
 * Blocking: protocol operations answer -EAGAIN when they would block.  In
 * threaded mode a blocking socket then sleeps on its condition variable
 * (which releases the stack lock) until woken by input, a timeout
 * (SO_RCVTIMEO/SO_SNDTIMEO, answered with EAGAIN as Linux does) or close
 * (EBADF).  In event mode nothing could wake it, so it answers EAGAIN.
 *
 * Owners: each descriptor belongs to the stack's own process (owner 0) or
 * to one attached client (socket/api.h).  A thread acts for one owner,
 * kept in the thread-local api_caller (like packet_buffer.c's free lists,
 * it is per thread and holds nothing between calls that another stack
 * could see); api_enter and poll find only that owner's descriptors, so a
 * client can neither reach another's sockets nor the stack's own.
 *
 * Attached handles (usock_attach): a stack whose `remote` is set is a
 * client of a stack in another process; every call here hands its
 * arguments to src/remote/client.c at the top, before touching anything
 * else of the handle.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/ip.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "net/ipv4.h"
#include "remote/client.h"
#include "socket/api.h"
#include "socket/multicast.h"
#include "socket/socket.h"
#include "stack.h"

/* Socket types this stack offers, searched as Linux's inetsw is. */
static const struct socket_operations *const socket_types[] = {
    &udp_operations,
    &tcp_operations,
    &raw_operations,
    &ping_operations,
};

/* Whom the calling thread acts for (api_act_for), and the descriptor its
 * call came in by (api_enter), which a sleeping call checks it still holds
 * when woken (api_wait). */
struct api_caller {
    uint32_t owner;
    int32_t pid;
    int fd;
    const atomic_bool *interrupt; /* set: a sleeping call ends with EINTR */
};
static _Thread_local struct api_caller api_caller;

void api_act_for(uint32_t owner, int32_t pid)
{
    api_caller.owner = owner;
    api_caller.pid = pid;
}

void api_interrupt_by(const atomic_bool *flag)
{
    api_caller.interrupt = flag;
}

void api_interrupt(struct usock_stack *stack, int fd)
{
    pthread_mutex_lock(&stack->lock);
    struct socket *socket = socket_from_descriptor(stack, fd);
    if (socket)
        socket_wake(stack, socket);
    pthread_cond_broadcast(&stack->poll_condition); /* a poll, which names no one fd */
    pthread_mutex_unlock(&stack->lock);
}

/* The socket behind fd if the calling thread's owner holds it, else NULL
 * (stack lock held). */
static struct socket *api_socket_of_caller(struct usock_stack *stack, int fd)
{
    struct socket *socket = socket_from_descriptor(stack, fd);
    if (socket && stack->sockets.owners[fd] != api_caller.owner)
        return NULL;
    return socket;
}

/* Gives socket one more descriptor, the calling thread's owner's (stack
 * lock held).  Returns it or -errno. */
static int api_attach_descriptor(struct usock_stack *stack, struct socket *socket)
{
    return socket_attach_descriptor(stack, socket, api_caller.owner, api_caller.pid);
}

static int fail(int error)
{
    errno = error;
    return -1;
}

static uint64_t real_monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * NS_PER_SECOND + (uint64_t)now.tv_nsec;
}

/* Takes the lock and a reference on the socket behind fd; on failure the
 * lock is released and errno set to EBADF. */
static struct socket *api_enter(struct usock_stack *stack, int fd, uint64_t *now)
{
    pthread_mutex_lock(&stack->lock);
    struct socket *socket = api_socket_of_caller(stack, fd);
    if (!socket) {
        pthread_mutex_unlock(&stack->lock);
        errno = EBADF;
        return NULL;
    }
    api_caller.fd = fd;
    socket->references++;
    *now = usock_stack_now(stack);
    return socket;
}

static void api_leave(struct usock_stack *stack, struct socket *socket, uint64_t now)
{
    stack_drain_loopback(stack, now);
    socket_put(socket);
    pthread_mutex_unlock(&stack->lock);
}

/* Sleeps on socket until woken or until deadline (real monotonic ns, 0 for
 * none).  Returns 0 when woken, -EAGAIN on timeout or in event mode, -EBADF
 * when the socket, or the descriptor the call came in by, was closed
 * meanwhile (a client that died while blocked on a socket another process
 * shares: its call ends, the socket lives on), -EINTR when the thread's
 * interrupt flag was raised (api_interrupt_by). */
static int api_wait(struct usock_stack *stack, struct socket *socket, uint64_t deadline)
{
    if (!stack->thread_running)
        return -EAGAIN;
    /* Raised before this call went to sleep: its wake-up is already past. */
    if (api_caller.interrupt && atomic_load(api_caller.interrupt))
        return -EINTR;
    if (deadline) {
        if (real_monotonic_ns() >= deadline)
            return -EAGAIN;
        struct timespec until = {.tv_sec = (time_t)(deadline / NS_PER_SECOND),
                                 .tv_nsec = (long)(deadline % NS_PER_SECOND)};
        pthread_cond_timedwait(socket_condition(stack, socket), &stack->lock, &until);
    } else {
        pthread_cond_wait(socket_condition(stack, socket), &stack->lock);
    }
    if (socket->closed || socket_from_descriptor(stack, api_caller.fd) != socket ||
        stack->sockets.owners[api_caller.fd] != api_caller.owner)
        return -EBADF;
    if (api_caller.interrupt && atomic_load(api_caller.interrupt))
        return -EINTR;
    return 0;
}

static uint64_t api_deadline(uint64_t timeout_ns)
{
    return timeout_ns ? real_monotonic_ns() + timeout_ns : 0;
}

/* Sends or receives (receiving) through the socket's operations, sleeping
 * while they answer -EAGAIN on a blocking socket, up to SO_SNDTIMEO or
 * SO_RCVTIMEO.  Updates *now after each sleep.  Returns bytes or -errno. */
static size_t iovec_total(const struct msghdr *message)
{
    size_t total = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++)
        total += message->msg_iov[i].iov_len;
    return total;
}

/* Makes remaining describe what is left of message after done bytes, using
 * vectors (room for message->msg_iovlen entries) for its iovec array. */
static void iovec_skip(const struct msghdr *message, size_t done, struct iovec *vectors,
                       struct msghdr *remaining)
{
    *remaining = *message;
    remaining->msg_iov = vectors;
    size_t count = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        struct iovec piece = message->msg_iov[i];
        if (done >= piece.iov_len) {
            done -= piece.iov_len;
            continue;
        }
        piece.iov_base = (uint8_t *)piece.iov_base + done;
        piece.iov_len -= done;
        done = 0;
        remaining->msg_iov[count++] = piece;
    }
    remaining->msg_iovlen = count;
}

static ssize_t api_transfer_once(struct usock_stack *stack, struct socket *socket,
                                 struct msghdr *message, int flags, uint64_t *now, bool receiving);

/* Stream sockets: a blocking send writes everything (POSIX), and a receive
 * with MSG_WAITALL reads everything, unless an error, EOF or a timeout comes
 * first; then the bytes done so far are the result. */
static ssize_t api_transfer(struct usock_stack *stack, struct socket *socket,
                            struct msghdr *message, int flags, uint64_t *now, bool receiving)
{
    /* Urgent data never waits (Linux tcp_recv_urg answers EAGAIN). */
    bool blocking = !socket->nonblocking && !(flags & MSG_DONTWAIT) &&
                    !(receiving && (flags & MSG_OOB));
    bool whole = socket->type == SOCK_STREAM && blocking &&
                 (!receiving || ((flags & MSG_WAITALL) && !(flags & MSG_PEEK)));
    if (!whole)
        return api_transfer_once(stack, socket, message, flags, now, receiving);
    size_t total = iovec_total(message);
    struct iovec *vectors = malloc((message->msg_iovlen ? message->msg_iovlen : 1) * sizeof(*vectors));
    if (!vectors)
        return -ENOMEM;
    size_t done = 0;
    ssize_t result = 0;
    do {
        struct msghdr remaining;
        iovec_skip(message, done, vectors, &remaining);
        result = api_transfer_once(stack, socket, &remaining, flags, now, receiving);
        if (result <= 0)
            break;
        done += (size_t)result;
    } while (done < total);
    free(vectors);
    if (done > 0)
        return (ssize_t)done;
    return result;
}

static ssize_t api_transfer_once(struct usock_stack *stack, struct socket *socket,
                                 struct msghdr *message, int flags, uint64_t *now, bool receiving)
{
    bool blocking = !socket->nonblocking && !(flags & MSG_DONTWAIT) &&
                    !(receiving && (flags & MSG_OOB));
    uint64_t deadline =
        api_deadline(receiving ? socket->receive_timeout_ns : socket->send_timeout_ns);
    for (;;) {
        ssize_t result = receiving ? socket->ops->receive(stack, socket, message, flags, *now)
                                   : socket->ops->send(stack, socket, message, flags, *now);
        if (result != -EAGAIN || !blocking)
            return result;
        /* Linux: a blocking read on a socket shut for reading ends at once
         * with 0 (a nonblocking one still says EAGAIN). */
        if (receiving && (socket->shutdown & SHUTDOWN_RECEIVE))
            return 0;
        int error = api_wait(stack, socket, deadline);
        if (error)
            return error;
        *now = usock_stack_now(stack);
    }
}

int usock_socket(struct usock_stack *stack, int domain, int type, int protocol)
{
    if (stack->remote)
        return remote_socket(stack->remote, domain, type, protocol);
    if (domain != AF_INET)
        return fail(EAFNOSUPPORT);
    int flags = type & (SOCK_NONBLOCK | SOCK_CLOEXEC);
    type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    /* Linux: EINVAL only outside 0..SOCK_MAX-1; a type with no protocol
     * behind it (0, or SOCK_STREAM until TCP lands) is ESOCKTNOSUPPORT. */
    if (type < 0 || type > SOCK_PACKET)
        return fail(EINVAL);
    if (protocol < 0 || protocol >= IPPROTO_MAX)
        return fail(EINVAL);
    const struct socket_operations *ops = NULL;
    int error = ESOCKTNOSUPPORT;
    for (size_t i = 0; i < sizeof(socket_types) / sizeof(socket_types[0]); i++) {
        if (socket_types[i]->type != type)
            continue;
        error = EPROTONOSUPPORT;
        /* Raw sockets take any protocol but 0, as on Linux. */
        bool raw = socket_types[i]->type == SOCK_RAW;
        if ((raw && protocol > 0 && protocol < 256) ||
            (!raw && (protocol == 0 || protocol == socket_types[i]->protocol))) {
            ops = socket_types[i];
            break;
        }
    }
    if (!ops)
        return fail(error);

    struct socket *socket = socket_new(ops, type);
    if (!socket)
        return fail(ENOMEM);
    if (type == SOCK_RAW)
        socket->protocol = protocol;
    socket->nonblocking = (flags & SOCK_NONBLOCK) != 0;
    socket->close_on_exec = (flags & SOCK_CLOEXEC) != 0;

    pthread_mutex_lock(&stack->lock);
    int result = ops->create(stack, socket);
    if (result == 0) {
        result = api_attach_descriptor(stack, socket);
        if (result < 0)
            ops->release(stack, socket);
    }
    pthread_mutex_unlock(&stack->lock);
    if (result < 0) {
        socket_put(socket);
        return fail(-result);
    }
    return result;
}

/* Takes descriptor fd of socket away and, when it was the socket's last,
 * releases the socket (stack lock held, the caller holding a reference of
 * its own).  With may_linger, SO_LINGER with a time makes a blocking close
 * of the last descriptor wait until the data is acknowledged or the time
 * runs out. */
static void api_close_locked(struct usock_stack *stack, struct socket *socket, int fd,
                             uint64_t now, bool may_linger)
{
    if (socket_detach_descriptor(stack, socket, fd) > 0) {
        /* Shared: the socket lives on.  A call asleep on it by the closed
         * descriptor wakes and finds it gone (api_wait). */
        socket_wake(stack, socket);
        return;
    }
    socket->closed = true;
    socket_multicast_leave_all(stack, socket, now);
    socket->ops->release(stack, socket);
    socket_wake(stack, socket);
    if (may_linger && socket->linger && socket->linger_seconds > 0 && !socket->nonblocking &&
        socket->ops->linger_pending && stack->thread_running) {
        uint64_t deadline = api_deadline((uint64_t)socket->linger_seconds * NS_PER_SECOND);
        stack_drain_loopback(stack, now);
        while (socket->ops->linger_pending(socket)) {
            struct timespec until = {.tv_sec = (time_t)(deadline / NS_PER_SECOND),
                                     .tv_nsec = (long)(deadline % NS_PER_SECOND)};
            if (pthread_cond_timedwait(socket_condition(stack, socket), &stack->lock,
                                       &until) != 0 &&
                real_monotonic_ns() >= deadline)
                break;
        }
    }
    socket->references--; /* the descriptor table's reference */
}

int usock_close(struct usock_stack *stack, int fd)
{
    if (stack->remote)
        return remote_close(stack->remote, fd);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    api_close_locked(stack, socket, fd, now, true);
    api_leave(stack, socket, now);
    return 0;
}

int usock_dup(struct usock_stack *stack, int fd)
{
    if (stack->remote)
        return remote_dup(stack->remote, fd);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int result = socket_descriptor_available(stack, api_caller.owner)
                     ? api_attach_descriptor(stack, socket)
                     : -EMFILE;
    api_leave(stack, socket, now);
    return result < 0 ? fail(-result) : result;
}

size_t api_close_owned(struct usock_stack *stack, uint32_t owner)
{
    size_t closed = 0;
    if (owner == 0)
        return 0;
    pthread_mutex_lock(&stack->lock);
    uint64_t now = usock_stack_now(stack);
    for (size_t fd = 0; fd < stack->sockets.capacity; fd++) {
        struct socket *socket = stack->sockets.descriptors[fd];
        if (!socket || stack->sockets.owners[fd] != owner)
            continue;
        socket->references++;
        api_close_locked(stack, socket, (int)fd, now, false);
        stack_drain_loopback(stack, now);
        socket_put(socket);
        closed++;
    }
    pthread_mutex_unlock(&stack->lock);
    return closed;
}

void api_set_owner_pid(struct usock_stack *stack, uint32_t owner, int32_t pid)
{
    struct socket_layer *layer = &stack->sockets;
    pthread_mutex_lock(&stack->lock);
    for (size_t fd = 0; fd < layer->capacity; fd++)
        if (layer->descriptors[fd] && layer->owners[fd] == owner)
            layer->pids[fd] = pid;
    pthread_mutex_unlock(&stack->lock);
}

long api_send_room(struct usock_stack *stack, int fd)
{
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    long room = socket->descriptor_count == 1 && socket->ops->send_room
                    ? socket->ops->send_room(socket)
                    : -1;
    api_leave(stack, socket, now);
    return room;
}

int api_share_owned(struct usock_stack *stack, uint32_t from, uint32_t to, int32_t *pairs,
                    size_t max)
{
    if (from == to)
        return -EINVAL;
    struct socket_layer *layer = &stack->sockets;
    size_t count = 0;
    int result = 0;
    pthread_mutex_lock(&stack->lock);
    /* A descriptor given here is to's, so the walk never shares it again
     * (to != from). */
    for (size_t fd = 0; fd < layer->capacity; fd++) {
        struct socket *socket = layer->descriptors[fd];
        if (!socket || layer->owners[fd] != from)
            continue;
        if (count == max) {
            result = -E2BIG;
            break;
        }
        int copy = socket_descriptor_available(stack, to)
                       ? socket_attach_descriptor(stack, socket, to, 0)
                       : -EMFILE;
        if (copy < 0) {
            result = copy;
            break;
        }
        pairs[2 * count] = (int32_t)fd;
        pairs[2 * count + 1] = copy;
        count++;
    }
    if (result < 0) {
        for (size_t i = 0; i < count; i++)
            socket_detach_descriptor(stack, layer->descriptors[pairs[2 * i + 1]],
                                     pairs[2 * i + 1]);
    }
    pthread_mutex_unlock(&stack->lock);
    return result < 0 ? result : (int)count;
}

/* Checks a sockaddr from the caller; returns 0 or -errno.  AF_UNSPEC is
 * accepted as AF_INET when allow_unspec (Linux's bind with INADDR_ANY and
 * sendto both do). */
static int check_address(const struct sockaddr *address, socklen_t length, bool allow_unspec)
{
    /* move_addr_to_kernel: too long is EINVAL, an unreadable pointer EFAULT. */
    if (length > sizeof(struct sockaddr_storage))
        return -EINVAL;
    if (!address && length > 0)
        return -EFAULT;
    if (!address || length < sizeof(struct sockaddr_in))
        return -EINVAL;
    const struct sockaddr_in *in = (const struct sockaddr_in *)address;
    if (in->sin_family == AF_INET)
        return 0;
    if (allow_unspec && in->sin_family == AF_UNSPEC)
        return 0;
    return -EAFNOSUPPORT;
}

int usock_bind(struct usock_stack *stack, int fd, const struct sockaddr *address,
               socklen_t length)
{
    if (stack->remote)
        return remote_bind(stack->remote, fd, address, length);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    struct sockaddr_in in;
    int error = check_address(address, length, true);
    if (!error) {
        memcpy(&in, address, sizeof(in));
        /* Linux accepts AF_UNSPEC only with INADDR_ANY. */
        if (in.sin_family == AF_UNSPEC && in.sin_addr.s_addr != htonl(INADDR_ANY))
            error = -EAFNOSUPPORT;
    }
    if (!error)
        error = socket->ops->bind(stack, socket, in.sin_addr.s_addr, ntohs(in.sin_port));
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

int usock_connect(struct usock_stack *stack, int fd, const struct sockaddr *address,
                  socklen_t length)
{
    if (stack->remote)
        return remote_connect(stack->remote, fd, address, length);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = 0;
    if (length > sizeof(struct sockaddr_storage)) {
        error = -EINVAL;
    } else if (!address && length > 0) {
        error = -EFAULT;
    } else if (!address || length < sizeof(sa_family_t)) {
        error = -EINVAL;
    } else if (address->sa_family == AF_UNSPEC) {
        error = socket->ops->connect(stack, socket, NULL, now);
    } else if (length < sizeof(struct sockaddr_in)) {
        error = -EINVAL;
    } else if (address->sa_family != AF_INET) {
        error = -EAFNOSUPPORT;
    } else {
        struct sockaddr_in in;
        memcpy(&in, address, sizeof(in));
        error = socket->ops->connect(stack, socket, &in, now);
        /* A stream connect in progress: wait for the handshake unless
         * nonblocking (EINPROGRESS, as Linux; SO_SNDTIMEO bounds the wait). */
        if (error == -EINPROGRESS && !socket->nonblocking && socket->ops->connect_result) {
            uint64_t deadline = api_deadline(socket->send_timeout_ns);
            for (;;) {
                error = socket->ops->connect_result(stack, socket);
                if (error != -EALREADY)
                    break;
                int wait = api_wait(stack, socket, deadline);
                if (wait) {
                    error = wait == -EAGAIN ? -EINPROGRESS : wait;
                    break;
                }
            }
        }
    }
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

int usock_listen(struct usock_stack *stack, int fd, int backlog)
{
    if (stack->remote)
        return remote_listen(stack->remote, fd, backlog);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = socket->ops->listen ? socket->ops->listen(stack, socket, backlog, now)
                                    : -EOPNOTSUPP;
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

int usock_accept(struct usock_stack *stack, int fd, struct sockaddr *address, socklen_t *length)
{
    if (stack->remote)
        return remote_accept(stack->remote, fd, address, length);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int result;
    if (!socket->ops->accept) {
        result = -EOPNOTSUPP;
    } else {
        uint64_t deadline = api_deadline(socket->receive_timeout_ns);
        struct socket *child = NULL;
        for (;;) {
            /* Linux takes the descriptor first (get_unused_fd_flags): with
             * none left the connection stays queued for a later accept. */
            if (!socket_descriptor_available(stack, api_caller.owner)) {
                result = -EMFILE;
                break;
            }
            result = socket->ops->accept(stack, socket, &child);
            if (result != -EAGAIN || socket->nonblocking)
                break;
            result = api_wait(stack, socket, deadline);
            if (result)
                break;
        }
        if (result == 0) {
            result = api_attach_descriptor(stack, child);
            if (result < 0) {
                /* No descriptor for it: abort the connection as Linux
                 * does when it cannot allocate the file. */
                child->ops->release(stack, child);
                socket_put(child);
            } else {
                if (address && length)
                    socket_copy_address_out(child->peer_address, child->peer_port, address,
                                            length);
            }
        }
    }
    api_leave(stack, socket, now);
    return result < 0 ? fail(-result) : result;
}

int usock_shutdown(struct usock_stack *stack, int fd, int how)
{
    if (stack->remote)
        return remote_shutdown(stack->remote, fd, how);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = (how < SHUT_RD || how > SHUT_RDWR) ? -EINVAL
                                                   : socket->ops->shutdown(stack, socket, how);
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

ssize_t usock_sendmsg(struct usock_stack *stack, int fd, const struct msghdr *message, int flags)
{
    if (stack->remote)
        return remote_sendmsg(stack->remote, fd, message, flags);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    ssize_t result;
    if (!message || (message->msg_iovlen > 0 && !message->msg_iov)) {
        result = -EFAULT;
    } else if ((flags & MSG_OOB) && socket->type != SOCK_STREAM) {
        result = -EOPNOTSUPP; /* urgent data is TCP's alone */
    } else {
        result = api_transfer(stack, socket, (void *)message, flags, &now, false);
    }
    api_leave(stack, socket, now);
    return result < 0 ? fail((int)-result) : result;
}

ssize_t usock_sendto(struct usock_stack *stack, int fd, const void *buffer, size_t length,
                     int flags, const struct sockaddr *address, socklen_t address_length)
{
    if (address && address_length > sizeof(struct sockaddr_storage))
        return fail(EINVAL);
    if (!address && address_length > 0)
        return fail(EFAULT);
    struct iovec vector = {.iov_base = (void *)buffer, .iov_len = length};
    struct msghdr message = {
        .msg_name = (void *)address,
        .msg_namelen = address ? address_length : 0,
        .msg_iov = &vector,
        .msg_iovlen = 1,
    };
    return usock_sendmsg(stack, fd, &message, flags);
}

ssize_t usock_send(struct usock_stack *stack, int fd, const void *buffer, size_t length,
                   int flags)
{
    return usock_sendto(stack, fd, buffer, length, flags, NULL, 0);
}

ssize_t usock_recvmsg(struct usock_stack *stack, int fd, struct msghdr *message, int flags)
{
    if (stack->remote)
        return remote_recvmsg(stack->remote, fd, message, flags);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    ssize_t result;
    if (!message || (message->msg_iovlen > 0 && !message->msg_iov)) {
        result = -EFAULT;
    } else if (flags & MSG_ERRQUEUE) {
        result = socket_receive_error(socket, message); /* never waits, as Linux */
    } else {
        result = api_transfer(stack, socket, message, flags, &now, true);
    }
    api_leave(stack, socket, now);
    return result < 0 ? fail((int)-result) : result;
}

ssize_t usock_recvfrom(struct usock_stack *stack, int fd, void *buffer, size_t length,
                       int flags, struct sockaddr *address, socklen_t *address_length)
{
    struct iovec vector = {.iov_base = buffer, .iov_len = length};
    struct msghdr message = {
        .msg_name = (address && address_length) ? address : NULL,
        .msg_namelen = (address && address_length) ? *address_length : 0,
        .msg_iov = &vector,
        .msg_iovlen = 1,
    };
    ssize_t result = usock_recvmsg(stack, fd, &message, flags);
    if (result >= 0 && address && address_length)
        *address_length = message.msg_namelen;
    return result;
}

ssize_t usock_readv(struct usock_stack *stack, int fd, const struct iovec *vectors, int count)
{
    if (count < 0 || count > IOV_MAX)
        return fail(EINVAL);
    struct msghdr message = {.msg_iov = (struct iovec *)vectors, .msg_iovlen = (size_t)count};
    return usock_recvmsg(stack, fd, &message, 0);
}

ssize_t usock_writev(struct usock_stack *stack, int fd, const struct iovec *vectors, int count)
{
    if (count < 0 || count > IOV_MAX)
        return fail(EINVAL);
    struct msghdr message = {.msg_iov = (struct iovec *)vectors, .msg_iovlen = (size_t)count};
    return usock_sendmsg(stack, fd, &message, 0);
}

ssize_t usock_recv(struct usock_stack *stack, int fd, void *buffer, size_t length, int flags)
{
    return usock_recvfrom(stack, fd, buffer, length, flags, NULL, NULL);
}

int usock_getsockname(struct usock_stack *stack, int fd, struct sockaddr *address,
                      socklen_t *length)
{
    if (stack->remote)
        return remote_getsockname(stack->remote, fd, address, length);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = 0;
    if (!address || !length)
        error = -EFAULT;
    else
        socket_copy_address_out(socket->local_address ? socket->local_address
                                                      : socket->source_address,
                                socket->local_port, address, length);
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

int usock_getpeername(struct usock_stack *stack, int fd, struct sockaddr *address,
                      socklen_t *length)
{
    if (stack->remote)
        return remote_getpeername(stack->remote, fd, address, length);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = 0;
    bool has_peer = socket->ops->has_peer ? socket->ops->has_peer(socket) : socket->connected;
    if (!has_peer)
        error = -ENOTCONN;
    else if (!address || !length)
        error = -EFAULT;
    else
        socket_copy_address_out(socket->peer_address, socket->peer_port, address, length);
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

/* Linux's sock_setsockopt for SO_RCVBUF/SO_SNDBUF: the request is
 * compared as unsigned against the maximum (so -1 means the maximum), then
 * doubled for bookkeeping overhead, with a floor.  The FORCE variants skip
 * the maximum (a user-space stack's caller is as privileged as it gets). */
static int socket_buffer_size(int requested, bool force, int minimum)
{
    long long value;
    if (force)
        value = requested < 0 ? 0 : requested;
    else
        value = (unsigned)requested > SOCKET_BUFFER_MAX ? SOCKET_BUFFER_MAX : requested;
    if (value > INT_MAX / 2)
        value = INT_MAX / 2;
    long long doubled = value * 2;
    return doubled < minimum ? minimum : (int)doubled;
}

static int set_timeout(uint64_t *timeout_ns, const void *value, socklen_t length)
{
    struct timeval tv;
    if (length < sizeof(tv))
        return -EINVAL;
    memcpy(&tv, value, sizeof(tv));
    if (tv.tv_usec < 0 || tv.tv_usec >= 1000000)
        return -EDOM;
    if (tv.tv_sec < 0) {
        *timeout_ns = 1; /* Linux: an expired timeout, i.e. do not wait */
        return 0;
    }
    *timeout_ns = (uint64_t)tv.tv_sec * NS_PER_SECOND + (uint64_t)tv.tv_usec * 1000;
    return 0;
}

static int socket_setsockopt(struct usock_stack *stack, struct socket *socket, int level,
                             int name, const void *value, socklen_t length, uint64_t now)
{
    if (level != SOL_SOCKET && socket->ops->setsockopt) {
        /* The protocol first; IP-level options it does not know fall
         * through to the common ones below. */
        int result = socket->ops->setsockopt(stack, socket, level, name, value, length, now);
        if (result != -ENOPROTOOPT || level != IPPROTO_IP)
            return result;
    }
    if (level == SOL_SOCKET && name == SO_LINGER) {
        struct linger linger;
        if (!value || length < sizeof(linger))
            return -EINVAL;
        memcpy(&linger, value, sizeof(linger));
        socket->linger = linger.l_onoff != 0;
        socket->linger_seconds = linger.l_linger < 0 ? 0 : linger.l_linger;
        return 0;
    }
    if (level == SOL_SOCKET && name == SO_BINDTODEVICE)
        return socket_bind_to_device(stack, socket, value, length);
    if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO))
        return set_timeout(name == SO_RCVTIMEO ? &socket->receive_timeout_ns
                                               : &socket->send_timeout_ns,
                           value, length);
    if (level == IPPROTO_IP) {
        int result = socket_multicast_setsockopt(stack, socket, name, value, length, now);
        if (result != -ENOPROTOOPT)
            return result;
    }
    int integer;
    if (value && length >= 1 && length < sizeof(int) && level == IPPROTO_IP &&
        (name == IP_MULTICAST_TTL || name == IP_MULTICAST_LOOP)) {
        integer = *(const uint8_t *)value; /* Linux takes a single byte too */
    } else {
        if (!value || length < sizeof(int))
            return -EINVAL;
        memcpy(&integer, value, sizeof(int));
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR: socket->reuse_address = integer != 0; return 0;
        case SO_REUSEPORT: socket->reuse_port = integer != 0; return 0;
        case SO_BROADCAST: socket->broadcast = integer != 0; return 0;
        case SO_RCVBUF:
        case SO_RCVBUFFORCE:
            socket->receive_buffer =
                socket_buffer_size(integer, name == SO_RCVBUFFORCE, SOCKET_RECEIVE_BUFFER_MIN);
            socket->receive_buffer_locked = true;
            return 0;
        case SO_SNDBUF:
        case SO_SNDBUFFORCE:
            socket->send_buffer =
                socket_buffer_size(integer, name == SO_SNDBUFFORCE, SOCKET_SEND_BUFFER_MIN);
            socket->send_buffer_locked = true;
            return 0;
        case SO_RCVLOWAT:
            socket->receive_low_water = integer < 1 ? 1 : integer;
            return 0;
        case SO_KEEPALIVE:
            socket->keepalive = integer != 0;
            if (socket->ops->setsockopt)
                socket->ops->setsockopt(stack, socket, level, name, value, length, now);
            return 0;
        case SO_OOBINLINE:
            socket->urgent_inline = integer != 0;
            return 0;
        case SO_DONTROUTE:
        case SO_PRIORITY:
            return 0;
        case SO_TYPE:
        case SO_ERROR:
        case SO_PROTOCOL:
        case SO_DOMAIN:
        case SO_ACCEPTCONN:
            return -ENOPROTOOPT;
        default:
            return -ENOPROTOOPT;
        }
    }
    if (level == IPPROTO_IP) {
        switch (name) {
        case IP_MULTICAST_TTL:
            if (integer == -1)
                integer = 1;
            if (integer < 0 || integer > 255)
                return -EINVAL;
            socket->multicast_ttl = (uint8_t)integer;
            return 0;
        case IP_MULTICAST_LOOP:
            socket->multicast_loop = integer != 0;
            return 0;
        case IP_PKTINFO:
            socket->receive_packet_info = integer != 0;
            return 0;
        case IP_RECVERR:
            socket->receive_errors = integer != 0;
            if (!socket->receive_errors)
                socket_purge_errors(socket);
            return 0;
        case IP_MTU_DISCOVER:
            if (integer < IP_PMTUDISC_DONT || integer > IP_PMTUDISC_OMIT)
                return -EINVAL;
            socket->path_mtu_discovery = integer;
            return 0;
        case IP_RECVTTL:
            socket->receive_ttl = integer != 0;
            return 0;
        case IP_RECVTOS:
            socket->receive_tos = integer != 0;
            return 0;
        case IP_TTL:
            if (integer == -1)
                integer = IPV4_DEFAULT_TTL;
            if (integer < 1 || integer > 255)
                return -EINVAL;
            socket->time_to_live = (uint8_t)integer;
            return 0;
        case IP_TOS:
            socket->type_of_service = (uint8_t)integer;
            return 0;
        default:
            return -ENOPROTOOPT;
        }
    }
    return -ENOPROTOOPT;
}

int usock_setsockopt(struct usock_stack *stack, int fd, int level, int name, const void *value,
                     socklen_t length)
{
    if (stack->remote)
        return remote_setsockopt(stack->remote, fd, level, name, value, length);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = socket_setsockopt(stack, socket, level, name, value, length, now);
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

static int socket_getsockopt(struct usock_stack *stack, struct socket *socket, int level,
                             int name, void *value, socklen_t *length)
{
    if (!length || !value)
        return -EFAULT;
    if ((int)*length < 0)
        return -EINVAL;
    if (level != SOL_SOCKET && socket->ops->getsockopt) {
        int result = socket->ops->getsockopt(stack, socket, level, name, value, length);
        if (result != -ENOPROTOOPT || level != IPPROTO_IP)
            return result;
    }
    int integer = 0;
    if (level == SOL_SOCKET && name == SO_LINGER) {
        struct linger linger = {.l_onoff = socket->linger, .l_linger = socket->linger_seconds};
        size_t copy = *length < sizeof(linger) ? *length : sizeof(linger);
        memcpy(value, &linger, copy);
        *length = (socklen_t)copy;
        return 0;
    }
    if (level == SOL_SOCKET && name == SO_BINDTODEVICE)
        return socket_bound_device_name(stack, socket, value, length);
    if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
        uint64_t ns = name == SO_RCVTIMEO ? socket->receive_timeout_ns : socket->send_timeout_ns;
        struct timeval tv = {.tv_sec = (time_t)(ns / NS_PER_SECOND),
                             .tv_usec = (suseconds_t)((ns % NS_PER_SECOND) / 1000)};
        size_t copy = *length < sizeof(tv) ? *length : sizeof(tv);
        memcpy(value, &tv, copy);
        *length = (socklen_t)copy;
        return 0;
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_TYPE: integer = socket->type; break;
        case SO_PROTOCOL: integer = socket->protocol; break;
        case SO_DOMAIN: integer = AF_INET; break;
        case SO_ERROR: integer = socket->error; socket->error = 0; break;
        case SO_REUSEADDR: integer = socket->reuse_address; break;
        case SO_REUSEPORT: integer = socket->reuse_port; break;
        case SO_BROADCAST: integer = socket->broadcast; break;
        case SO_RCVBUF: integer = socket->receive_buffer; break;
        case SO_SNDBUF: integer = socket->send_buffer; break;
        case SO_ACCEPTCONN: integer = socket->listening; break;
        case SO_KEEPALIVE: integer = socket->keepalive; break;
        case SO_OOBINLINE: integer = socket->urgent_inline; break;
        case SO_RCVLOWAT: integer = socket->receive_low_water; break;
        default: return -ENOPROTOOPT;
        }
    } else if (level == IPPROTO_IP) {
        switch (name) {
        case IP_MULTICAST_TTL: integer = socket->multicast_ttl; break;
        case IP_PKTINFO: integer = socket->receive_packet_info; break;
        case IP_RECVERR: integer = socket->receive_errors; break;
        case IP_MTU_DISCOVER: integer = socket->path_mtu_discovery; break;
        case IP_MTU:
            if (!socket->connected)
                return -ENOTCONN;
            integer = (int)stack->interface.mtu;
            if (ipv4_address_kind(stack, socket->peer_address) == ADDRESS_LOCAL)
                integer = 65536; /* Linux's lo */
            break;
        case IP_RECVTTL: integer = socket->receive_ttl; break;
        case IP_RECVTOS: integer = socket->receive_tos; break;
        case IP_MULTICAST_LOOP: integer = socket->multicast_loop; break;
        case IP_MULTICAST_IF: integer = (int)socket->multicast_interface; break;
        case IP_TTL: integer = socket->time_to_live; break;
        case IP_TOS: integer = socket->type_of_service; break;
        default: return -ENOPROTOOPT;
        }
    } else if (level == IPPROTO_UDP) {
        return -ENOPROTOOPT;
    } else {
        return -EOPNOTSUPP; /* Linux's answer for a level UDP does not know */
    }
    size_t copy = *length < sizeof(int) ? *length : sizeof(int);
    memcpy(value, &integer, copy);
    *length = (socklen_t)copy;
    return 0;
}

int usock_getsockopt(struct usock_stack *stack, int fd, int level, int name, void *value,
                     socklen_t *length)
{
    if (stack->remote)
        return remote_getsockopt(stack->remote, fd, level, name, value, length);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = socket_getsockopt(stack, socket, level, name, value, length);
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

int usock_fcntl(struct usock_stack *stack, int fd, int command, int argument)
{
    if (stack->remote)
        return remote_fcntl(stack->remote, fd, command, argument);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int result = 0;
    switch (command) {
    case F_GETFL:
        result = O_RDWR | (socket->nonblocking ? O_NONBLOCK : 0);
        break;
    case F_SETFL:
        socket->nonblocking = (argument & O_NONBLOCK) != 0;
        break;
    case F_GETFD:
        result = socket->close_on_exec ? FD_CLOEXEC : 0;
        break;
    case F_SETFD:
        socket->close_on_exec = (argument & FD_CLOEXEC) != 0;
        break;
    default:
        result = -EINVAL;
        break;
    }
    api_leave(stack, socket, now);
    return result < 0 ? fail(-result) : result;
}

int usock_ioctl(struct usock_stack *stack, int fd, unsigned long request, void *argument)
{
    if (stack->remote)
        return remote_ioctl(stack->remote, fd, request, argument);
    uint64_t now;
    struct socket *socket = api_enter(stack, fd, &now);
    if (!socket)
        return -1;
    int error = 0;
    if (!argument) {
        error = -EFAULT;
    } else if (request == FIONREAD) {
        int readable = socket->ops->readable_bytes(socket);
        if (readable < 0)
            error = readable;
        else
            *(int *)argument = readable;
    } else if (request == SIOCATMARK) {
        int mark = socket->ops->at_urgent_mark ? socket->ops->at_urgent_mark(socket) : -ENOTTY;
        if (mark < 0)
            error = mark;
        else
            *(int *)argument = mark;
    } else if (request == FIONBIO) {
        socket->nonblocking = *(const int *)argument != 0;
    } else {
        error = -ENOTTY;
    }
    api_leave(stack, socket, now);
    return error ? fail(-error) : 0;
}

/* Fills revents for every entry; returns how many have any. */
static int poll_scan(struct usock_stack *stack, struct pollfd *fds, nfds_t count)
{
    int ready = 0;
    for (nfds_t i = 0; i < count; i++) {
        fds[i].revents = 0;
        if (fds[i].fd < 0)
            continue;
        struct socket *socket = api_socket_of_caller(stack, fds[i].fd);
        if (!socket)
            fds[i].revents = POLLNVAL;
        else
            fds[i].revents = (short)(socket->ops->poll(stack, socket) &
                                     (fds[i].events | POLLERR | POLLHUP));
        if (fds[i].revents)
            ready++;
    }
    return ready;
}

int usock_poll(struct usock_stack *stack, struct pollfd *fds, nfds_t count, int timeout_ms)
{
    if (stack->remote)
        return remote_poll(stack->remote, fds, count, timeout_ms);
    if (count > 0 && !fds)
        return fail(EFAULT);
    pthread_mutex_lock(&stack->lock);
    uint64_t deadline = timeout_ms > 0 ? real_monotonic_ns() + (uint64_t)timeout_ms * NS_PER_MS : 0;
    int ready;
    for (;;) {
        ready = poll_scan(stack, fds, count);
        if (ready || timeout_ms == 0 || !stack->thread_running)
            break;
        if (api_caller.interrupt && atomic_load(api_caller.interrupt)) {
            pthread_mutex_unlock(&stack->lock);
            return fail(EINTR);
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&stack->poll_condition, &stack->lock);
            continue;
        }
        if (real_monotonic_ns() >= deadline)
            break;
        struct timespec until = {.tv_sec = (time_t)(deadline / NS_PER_SECOND),
                                 .tv_nsec = (long)(deadline % NS_PER_SECOND)};
        pthread_cond_timedwait(&stack->poll_condition, &stack->lock, &until);
    }
    pthread_mutex_unlock(&stack->lock);
    return ready;
}
