/*
 * preload.h - what the files of libusock_preload.so share.
 *
 * The library is LD_PRELOADed into an unmodified program by `usock run`.
 * It puts the program's AF_INET sockets on the usock stack named by
 * $USOCK_NAME (usock_attach) and leaves every other descriptor to the
 * kernel.  Each usock socket is known to the program by the number of a
 * kernel descriptor the shim reserves (an eventfd), so the two never
 * collide; fd_map.c keeps the table from that number to the usock
 * descriptor, libc_next.c finds libc's own functions (dlsym RTLD_NEXT),
 * socket_calls.c, poll_calls.c and epoll_calls.c are the interposed
 * calls.
 */
#ifndef USOCK_PRELOAD_H
#define USOCK_PRELOAD_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "usock.h"

/* Highest kernel descriptor number (exclusive) that may stand for a usock
 * socket; a reserved descriptor at or past it makes socket() fail EMFILE. */
#define FD_MAP_SIZE 65536

/* libc's own functions, found with dlsym(RTLD_NEXT). */
struct libc_calls {
    int (*socket)(int, int, int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*bind)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*writev)(int, const struct iovec *, int);
    int (*close)(int);
    int (*shutdown)(int, int);
    int (*getsockname)(int, struct sockaddr *, socklen_t *);
    int (*getpeername)(int, struct sockaddr *, socklen_t *);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    int (*fcntl)(int, int, ...);
    int (*fcntl64)(int, int, ...);
    int (*ioctl)(int, unsigned long, ...);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*epoll_ctl)(int, int, int, struct epoll_event *);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
    int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
    pid_t (*fork)(void);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    ssize_t (*sendfile)(int, int, off_t *, size_t);
    ssize_t (*sendfile64)(int, int, off64_t *, size_t);
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *,
                   const sigset_t *);
};

/* libc's functions; resolved on first use (also before the library's
 * constructor has run), never NULL afterwards except fcntl64 on a libc
 * without it. */
const struct libc_calls *libc_next(void);

/* The attached stack, attaching on the first call ($USOCK_NAME, default
 * "usock"; once per process, pthread_once).  NULL when the attach failed
 * (the reason is printed once to stderr). */
struct usock_stack *shim_stack(void);

/* The stack if already attached, else NULL; never attaches.  Any mapped
 * descriptor implies an attached stack. */
struct usock_stack *shim_stack_if_attached(void);

/* The usock descriptor kernel descriptor fd stands for, or -1. */
int fd_map_lookup(int fd);

/* Reserves a kernel descriptor (an eventfd, close-on-exec when asked) for
 * usock descriptor usock_fd and maps it.  Returns the kernel descriptor,
 * or -1 with errno set (the usock descriptor is left open). */
int fd_map_reserve(int usock_fd, int close_on_exec);

/* Unmaps fd and returns the usock descriptor it stood for, or -1 when it
 * was not mapped.  The kernel descriptor stays open: the caller closes it
 * (after unmapping, so its number cannot be reused while still mapped). */
int fd_map_take(int fd);

/* Maps kernel descriptor fd, which the caller already holds open (a dup of
 * a reserved one), to usock descriptor usock_fd.  Returns fd, or -1 with
 * errno EMFILE when fd is past FD_MAP_SIZE. */
int fd_map_adopt(int fd, int usock_fd);

/* Replaces each mapped usock descriptor u with rewrite(u, context), or
 * unmaps it when that is negative (the kernel descriptor stays open).
 * For a forked child, single-threaded.  Returns how many stay mapped. */
size_t fd_map_rewrite(int (*rewrite)(int usock_fd, void *context), void *context);

/* True when any descriptor is mapped. */
bool fd_map_any(void);

/* Unmaps every descriptor, leaving the kernel descriptors open (a forked
 * child's copies of its parent's sockets). */
void fd_map_forget_all(void);

/* libc_next.c: makes stack the attached one (a forked child's own handle;
 * NULL: none, so the next AF_INET socket attaches anew). */
void shim_set_stack(struct usock_stack *stack);

/* libc_next.c: true when a stack is attached and by this process (not by
 * the parent whose memory a vfork child runs in). */
bool shim_attached_here(void);

/* libc_next.c: prints "usock-preload: WHAT: strerror(error)" to stderr in
 * one write (no stdio: it may be locked in a forked child). */
void shim_say(const char *what, int error);

/* exec_calls.c: the environment variable that hands usock sockets to the
 * program an exec starts, and the takeover the new program's shim does
 * with its value (attaches, maps the sockets; NULL when that fails, after
 * saying why). */
#define EXEC_INHERIT_VARIABLE "USOCK_INHERIT"
struct usock_stack *exec_take_over(const char *value);

/* fd_map.c: calls visit(fd, usock_fd, context) for each mapped descriptor. */
void fd_map_each(void (*visit)(int fd, int usock_fd, void *context), void *context);

/* libc_next.c: true while this thread is inside the shim's fork(), which
 * handles the child's sockets itself (the atfork handler then leaves them). */
extern _Thread_local bool shim_in_fork;

/* epoll_calls.c: fd (a kernel descriptor about to be closed) leaves every
 * epoll set the shim keeps: as an epoll instance its set is dropped, as a
 * usock socket its registrations are.  Cheap when there are none. */
void epoll_forget_descriptor(int fd);

/* epoll_calls.c: a call on usock socket fd would have blocked, so the
 * readiness bits (EPOLLIN, EPOLLOUT ...) an edge-triggered epoll last
 * reported for it are over: the next time they are ready is an edge. */
void epoll_note_would_block(int fd, uint32_t bits);

#endif /* USOCK_PRELOAD_H */
