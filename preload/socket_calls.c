/*
 * socket_calls.c - the interposed socket and descriptor calls of
 * libusock_preload.so (poll and select are in poll_calls.c).
 *
 * Theory of operation.  socket(AF_INET, ...) makes the socket on the
 * attached usock stack and gives the program a reserved kernel descriptor
 * standing for it (fd_map.c); accept() and accept4() on such a socket do
 * the same for the connection they return.  Every other call looks its
 * descriptor up: a mapped one goes to the usock_* call of the same name
 * (read/write become recv/send with no flags, readv/writev usock_readv/
 * usock_writev), an unmapped one to libc's own function unchanged.
 * Sockets of every other family (AF_UNIX, AF_NETLINK, AF_INET6 ...) stay
 * with the kernel.
 *
 * Semantics kept from the kernel: write(), send() without MSG_NOSIGNAL and
 * the like raise SIGPIPE when they fail with EPIPE (the remote stack never
 * signals this process).  F_GETFD/F_SETFD act on the reserved kernel
 * descriptor (so do ioctl FIOCLEX/FIONCLEX), so close-on-exec means what
 * it says; F_GETFL/F_SETFL
 * (O_NONBLOCK) and ioctl act on the usock socket.
 *
 * dup(), dup2(), dup3() and fcntl F_DUPFD/F_DUPFD_CLOEXEC of a usock
 * socket duplicate the reserved kernel descriptor (so the new number is
 * the one the kernel would give) and map it to a new usock descriptor of
 * the same socket (usock_dup): one socket, released when the last
 * descriptor for it is closed.  dup2()/dup3() onto one close it first, as
 * the kernel would.
 *
 * sendfile() to a usock socket reads the file into a buffer and sends it
 * (one copy more than the kernel's); as the kernel's, it moves the file
 * offset (or *offset) by what was sent, and on a nonblocking socket sends
 * what fits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "preload.h"

/* With _GNU_SOURCE glibc declares the sockaddr arguments as transparent
 * unions; the definitions below must match that. */
#ifndef __USE_GNU
#error "socket_calls.c needs _GNU_SOURCE (glibc's transparent sockaddr unions)"
#endif
#define SOCKADDR_OF(argument) ((argument).__sockaddr__)

/* The fortified variants glibc's headers may call instead (_FORTIFY_SOURCE);
 * declared here since the build does not fortify. */
ssize_t __read_chk(int fd, void *buffer, size_t length, size_t buffer_size);
ssize_t __recv_chk(int fd, void *buffer, size_t length, size_t buffer_size, int flags);
ssize_t __recvfrom_chk(int fd, void *buffer, size_t length, size_t buffer_size, int flags,
                       __SOCKADDR_ARG address, socklen_t *address_length);

/* Raises SIGPIPE after a send on a usock socket that failed with EPIPE,
 * unless flags hold MSG_NOSIGNAL; returns result with errno kept. */
static ssize_t sent_or_sigpipe(ssize_t result, int flags)
{
    if (result < 0 && errno == EPIPE && !(flags & MSG_NOSIGNAL)) {
        raise(SIGPIPE);
        errno = EPIPE;
    }
    return result;
}

/* Bytes the iovecs of a message hold. */
static size_t vectors_length(const struct iovec *vectors, size_t count)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += vectors[i].iov_len;
    return total;
}

/* A read or accept on fd that would block (EAGAIN), or a read shorter
 * than asked (wanted bytes; the socket had no more at that moment), ends
 * the readiness an edge-triggered epoll reported for it (epoll_calls.c):
 * the next arrival is a new edge, as the kernel reports it.  Programs
 * such as nginx take a short read as "drained" and wait for that edge
 * without reading to EAGAIN.  result passes through with errno kept. */
static ssize_t after_read(int fd, ssize_t result, size_t wanted)
{
    if (result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        epoll_note_would_block(fd, EPOLLIN | EPOLLRDHUP);
        errno = EAGAIN;
    } else if (result >= 0 && (size_t)result < wanted) {
        epoll_note_would_block(fd, EPOLLIN | EPOLLRDHUP);
    }
    return result;
}

/* The same for a write that would block or was cut short, and
 * writability. */
static ssize_t after_write(int fd, ssize_t result, size_t wanted)
{
    if (result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        epoll_note_would_block(fd, EPOLLOUT);
        errno = EAGAIN;
    } else if (result >= 0 && (size_t)result < wanted) {
        epoll_note_would_block(fd, EPOLLOUT);
    }
    return result;
}

/* The end of a dup of a usock socket (usock descriptor usock_fd):
 * kernel_copy is what libc's dup made of its reserved kernel descriptor (or
 * -1 with errno), and is mapped to a new usock descriptor of the same
 * socket.  Returns kernel_copy, or -1 with errno (nothing left open). */
static int duplicate(int usock_fd, int kernel_copy)
{
    if (kernel_copy < 0)
        return -1;
    struct usock_stack *stack = shim_stack_if_attached();
    int copy = usock_dup(stack, usock_fd);
    if (copy < 0 || fd_map_adopt(kernel_copy, copy) < 0) {
        int saved_errno = errno;
        if (copy >= 0)
            usock_close(stack, copy);
        libc_next()->close(kernel_copy);
        errno = saved_errno;
        return -1;
    }
    return kernel_copy;
}

/* Maps a new usock descriptor to a reserved kernel one, closing the usock
 * descriptor when that fails.  Returns the kernel descriptor or -1. */
static int socket_publish(struct usock_stack *stack, int usock_fd, int close_on_exec)
{
    int fd = fd_map_reserve(usock_fd, close_on_exec);
    if (fd < 0) {
        int saved_errno = errno;
        usock_close(stack, usock_fd);
        errno = saved_errno;
    }
    return fd;
}

int socket(int domain, int type, int protocol)
{
    if (domain != AF_INET)
        return libc_next()->socket(domain, type, protocol);
    struct usock_stack *stack = shim_stack();
    if (!stack) {
        errno = ENETDOWN;
        return -1;
    }
    int usock_fd = usock_socket(stack, domain, type, protocol);
    if (usock_fd < 0)
        return -1;
    return socket_publish(stack, usock_fd, (type & SOCK_CLOEXEC) != 0);
}

int connect(int fd, __CONST_SOCKADDR_ARG address, socklen_t length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->connect(fd, SOCKADDR_OF(address), length);
    return usock_connect(shim_stack_if_attached(), usock_fd, SOCKADDR_OF(address), length);
}

int bind(int fd, __CONST_SOCKADDR_ARG address, socklen_t length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->bind(fd, SOCKADDR_OF(address), length);
    return usock_bind(shim_stack_if_attached(), usock_fd, SOCKADDR_OF(address), length);
}

int listen(int fd, int backlog)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->listen(fd, backlog);
    return usock_listen(shim_stack_if_attached(), usock_fd, backlog);
}

int accept4(int fd, __SOCKADDR_ARG address, socklen_t *length, int flags)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->accept4(fd, SOCKADDR_OF(address), length, flags);
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
        errno = EINVAL;
        return -1;
    }
    struct usock_stack *stack = shim_stack_if_attached();
    int accepted = usock_accept(stack, usock_fd, SOCKADDR_OF(address), length);
    if (accepted < 0)
        return (int)after_read(fd, -1, 0);
    if ((flags & SOCK_NONBLOCK) && usock_fcntl(stack, accepted, F_SETFL, O_NONBLOCK) < 0) {
        int saved_errno = errno;
        usock_close(stack, accepted);
        errno = saved_errno;
        return -1;
    }
    return socket_publish(stack, accepted, (flags & SOCK_CLOEXEC) != 0);
}

int accept(int fd, __SOCKADDR_ARG address, socklen_t *length)
{
    if (fd_map_lookup(fd) < 0)
        return libc_next()->accept(fd, SOCKADDR_OF(address), length);
    return accept4(fd, address, length, 0);
}

ssize_t send(int fd, const void *buffer, size_t length, int flags)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->send(fd, buffer, length, flags);
    return sent_or_sigpipe(after_write(fd, usock_send(shim_stack_if_attached(), usock_fd, buffer,
                                                      length, flags), length),
                           flags);
}

ssize_t sendto(int fd, const void *buffer, size_t length, int flags,
               __CONST_SOCKADDR_ARG address, socklen_t address_length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->sendto(fd, buffer, length, flags, SOCKADDR_OF(address),
                                   address_length);
    return sent_or_sigpipe(after_write(fd, usock_sendto(shim_stack_if_attached(), usock_fd, buffer,
                                                        length, flags, SOCKADDR_OF(address),
                                                        address_length), length),
                           flags);
}

ssize_t sendmsg(int fd, const struct msghdr *message, int flags)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->sendmsg(fd, message, flags);
    return sent_or_sigpipe(
        after_write(fd, usock_sendmsg(shim_stack_if_attached(), usock_fd, message, flags),
                    vectors_length(message->msg_iov, message->msg_iovlen)),
        flags);
}

ssize_t recv(int fd, void *buffer, size_t length, int flags)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->recv(fd, buffer, length, flags);
    return after_read(fd, usock_recv(shim_stack_if_attached(), usock_fd, buffer, length, flags),
                      flags & MSG_PEEK ? 0 : length);
}

ssize_t __recv_chk(int fd, void *buffer, size_t length, size_t buffer_size, int flags)
{
    if (length > buffer_size)
        abort();
    return recv(fd, buffer, length, flags);
}

ssize_t recvfrom(int fd, void *buffer, size_t length, int flags, __SOCKADDR_ARG address,
                 socklen_t *address_length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->recvfrom(fd, buffer, length, flags, SOCKADDR_OF(address),
                                     address_length);
    return after_read(fd, usock_recvfrom(shim_stack_if_attached(), usock_fd, buffer, length, flags,
                                         SOCKADDR_OF(address), address_length),
                      flags & MSG_PEEK ? 0 : length);
}

ssize_t __recvfrom_chk(int fd, void *buffer, size_t length, size_t buffer_size, int flags,
                       __SOCKADDR_ARG address, socklen_t *address_length)
{
    if (length > buffer_size)
        abort();
    return recvfrom(fd, buffer, length, flags, address, address_length);
}

ssize_t recvmsg(int fd, struct msghdr *message, int flags)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->recvmsg(fd, message, flags);
    size_t wanted = flags & MSG_PEEK ? 0 : vectors_length(message->msg_iov, message->msg_iovlen);
    return after_read(fd, usock_recvmsg(shim_stack_if_attached(), usock_fd, message, flags),
                      wanted);
}

ssize_t read(int fd, void *buffer, size_t length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->read(fd, buffer, length);
    return after_read(fd, usock_recv(shim_stack_if_attached(), usock_fd, buffer, length, 0),
                      length);
}

ssize_t __read_chk(int fd, void *buffer, size_t length, size_t buffer_size)
{
    if (length > buffer_size)
        abort();
    return read(fd, buffer, length);
}

ssize_t write(int fd, const void *buffer, size_t length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->write(fd, buffer, length);
    return sent_or_sigpipe(
        after_write(fd, usock_send(shim_stack_if_attached(), usock_fd, buffer, length, 0), length),
        0);
}

ssize_t readv(int fd, const struct iovec *vectors, int count)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->readv(fd, vectors, count);
    size_t wanted = count > 0 ? vectors_length(vectors, (size_t)count) : 0;
    return after_read(fd, usock_readv(shim_stack_if_attached(), usock_fd, vectors, count), wanted);
}

ssize_t writev(int fd, const struct iovec *vectors, int count)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->writev(fd, vectors, count);
    return sent_or_sigpipe(
        after_write(fd, usock_writev(shim_stack_if_attached(), usock_fd, vectors, count),
                    count > 0 ? vectors_length(vectors, (size_t)count) : 0),
        0);
}

int close(int fd)
{
    epoll_forget_descriptor(fd);
    int usock_fd = fd_map_take(fd);
    if (usock_fd < 0)
        return libc_next()->close(fd);
    int result = usock_close(shim_stack_if_attached(), usock_fd);
    int saved_errno = errno;
    libc_next()->close(fd);
    errno = saved_errno;
    return result;
}

int shutdown(int fd, int how)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->shutdown(fd, how);
    return usock_shutdown(shim_stack_if_attached(), usock_fd, how);
}

int getsockname(int fd, __SOCKADDR_ARG address, socklen_t *length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->getsockname(fd, SOCKADDR_OF(address), length);
    return usock_getsockname(shim_stack_if_attached(), usock_fd, SOCKADDR_OF(address), length);
}

int getpeername(int fd, __SOCKADDR_ARG address, socklen_t *length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->getpeername(fd, SOCKADDR_OF(address), length);
    return usock_getpeername(shim_stack_if_attached(), usock_fd, SOCKADDR_OF(address), length);
}

int getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->getsockopt(fd, level, name, value, length);
    return usock_getsockopt(shim_stack_if_attached(), usock_fd, level, name, value, length);
}

int setsockopt(int fd, int level, int name, const void *value, socklen_t length)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->setsockopt(fd, level, name, value, length);
    return usock_setsockopt(shim_stack_if_attached(), usock_fd, level, name, value, length);
}

/* fcntl and fcntl64 (what programs built with _FILE_OFFSET_BITS=64 call):
 * libc_fcntl is libc's function of the name called. */
static int fcntl_any(int (*libc_fcntl)(int, int, ...), int fd, int command, void *argument)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_fcntl(fd, command, argument);
    switch (command) {
    case F_GETFD:
    case F_SETFD:
        /* close-on-exec belongs to the reserved kernel descriptor */
        return libc_fcntl(fd, command, argument);
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        return duplicate(usock_fd,
                         libc_fcntl(fd, command, (int)(intptr_t)argument));
    default:
        return usock_fcntl(shim_stack_if_attached(), usock_fd, command,
                           (int)(intptr_t)argument);
    }
}

int fcntl(int fd, int command, ...)
{
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    return fcntl_any(libc_next()->fcntl, fd, command, argument);
}

int fcntl64(int fd, int command, ...)
{
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    return fcntl_any(libc_next()->fcntl64, fd, command, argument);
}

int ioctl(int fd, unsigned long request, ...)
{
    va_list arguments;
    va_start(arguments, request);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    int usock_fd = fd_map_lookup(fd);
    /* close-on-exec belongs to the reserved kernel descriptor */
    if (usock_fd < 0 || request == FIOCLEX || request == FIONCLEX)
        return libc_next()->ioctl(fd, request, argument);
    return usock_ioctl(shim_stack_if_attached(), usock_fd, request, argument);
}

int dup(int fd)
{
    int usock_fd = fd_map_lookup(fd);
    if (usock_fd < 0)
        return libc_next()->dup(fd);
    return duplicate(usock_fd, libc_next()->dup(fd));
}

/* Before old_fd is duplicated onto new_fd: a usock socket new_fd stood for
 * is closed (and leaves the epoll sets it was in), as the kernel closes
 * what new_fd was, but only once the duplication cannot fail for a bad
 * old_fd.  Returns 0, or -1 with errno EBADF (nothing closed). */
static int dup_onto_prepare(int old_fd, int new_fd)
{
    if (fd_map_lookup(old_fd) < 0 && libc_next()->fcntl(old_fd, F_GETFD) < 0)
        return -1; /* EBADF, from fcntl */
    if (fd_map_lookup(new_fd) < 0)
        return 0;
    epoll_forget_descriptor(new_fd);
    int replaced = fd_map_take(new_fd);
    if (replaced >= 0)
        usock_close(shim_stack_if_attached(), replaced);
    return 0;
}

int dup2(int old_fd, int new_fd)
{
    int usock_fd = fd_map_lookup(old_fd);
    if (old_fd == new_fd) /* nothing changes, if old_fd is open */
        return usock_fd >= 0 ? new_fd : libc_next()->dup2(old_fd, new_fd);
    if (dup_onto_prepare(old_fd, new_fd) < 0)
        return -1;
    if (usock_fd < 0)
        return libc_next()->dup2(old_fd, new_fd);
    return duplicate(usock_fd, libc_next()->dup2(old_fd, new_fd));
}

int dup3(int old_fd, int new_fd, int flags)
{
    if (old_fd == new_fd) {
        errno = EINVAL;
        return -1;
    }
    if (flags & ~O_CLOEXEC) {
        errno = EINVAL;
        return -1;
    }
    int usock_fd = fd_map_lookup(old_fd);
    if (dup_onto_prepare(old_fd, new_fd) < 0)
        return -1;
    if (usock_fd < 0)
        return libc_next()->dup3(old_fd, new_fd, flags);
    return duplicate(usock_fd, libc_next()->dup3(old_fd, new_fd, flags));
}

/* ---- sendfile ---- */

/* Bytes sendfile() reads from the file at a time. */
#define SENDFILE_CHUNK 65536

/* sendfile to usock socket usock_fd (fd) from kernel descriptor in_fd:
 * offset NULL reads at and moves in_fd's file offset; else reads at
 * *offset and moves that.  Returns bytes sent or -1 with errno. */
static ssize_t sendfile_to_usock(int fd, int usock_fd, int in_fd, off_t *offset, size_t count)
{
    struct usock_stack *stack = shim_stack_if_attached();
    uint8_t *buffer = malloc(SENDFILE_CHUNK);
    if (!buffer) {
        errno = ENOMEM;
        return -1;
    }
    off_t position = offset ? *offset : 0;
    size_t total = 0;
    int error = 0;
    while (total < count) {
        size_t want = count - total < SENDFILE_CHUNK ? count - total : SENDFILE_CHUNK;
        ssize_t got = offset ? pread(in_fd, buffer, want, position) : libc_next()->read(in_fd, buffer, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            error = got < 0 ? errno : 0;
            break;
        }
        size_t sent = 0;
        while (sent < (size_t)got) {
            ssize_t now = usock_send(stack, usock_fd, buffer + sent, (size_t)got - sent,
                                     MSG_NOSIGNAL);
            if (now < 0) {
                error = errno;
                break;
            }
            sent += (size_t)now;
        }
        position += (off_t)sent;
        total += sent;
        if (sent < (size_t)got) {
            /* What was read but not sent goes back to the file. */
            if (!offset)
                lseek(in_fd, -(off_t)((size_t)got - sent), SEEK_CUR);
            break;
        }
    }
    free(buffer);
    if (offset)
        *offset = position;
    if (total > 0)
        return after_write(fd, (ssize_t)total, count);
    if (error) {
        errno = error;
        after_write(fd, -1, 0);
        return sent_or_sigpipe(-1, 0);
    }
    return 0;
}

ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    int usock_fd = fd_map_lookup(out_fd);
    if (fd_map_lookup(in_fd) >= 0) {
        errno = EINVAL; /* as the kernel says for a socket to read from */
        return -1;
    }
    if (usock_fd < 0)
        return libc_next()->sendfile(out_fd, in_fd, offset, count);
    return sendfile_to_usock(out_fd, usock_fd, in_fd, offset, count);
}

ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    int usock_fd = fd_map_lookup(out_fd);
    if (fd_map_lookup(in_fd) >= 0) {
        errno = EINVAL;
        return -1;
    }
    if (usock_fd < 0)
        return libc_next()->sendfile64(out_fd, in_fd, offset, count);
    return sendfile_to_usock(out_fd, usock_fd, in_fd, (off_t *)offset, count);
}
