/*
 * libc_next.c - libc's own socket and descriptor calls, and the attached
 * stack.
 *
 * Theory of operation.  The shim defines socket(), read() ... itself, so
 * libc's are found with dlsym(RTLD_NEXT) once (pthread_once), on first
 * use: a call made by another library's constructor before ours has run
 * still reaches libc.  dlsym makes no socket or descriptor call, so
 * resolving cannot recurse into the shim.  The stack is attached lazily,
 * on the first AF_INET socket, also under pthread_once; usock_attach's own
 * socket(AF_UNIX) and connect() pass through the shim to libc.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "remote/client.h"

static struct libc_calls calls;
static pthread_once_t calls_once = PTHREAD_ONCE_INIT;

static struct usock_stack *_Atomic attached_stack;
static pthread_once_t attach_once = PTHREAD_ONCE_INIT;

/* dlsym returns void *; a function pointer is taken from it through memcpy,
 * which C11 (unlike POSIX) does not promise by cast. */
#define RESOLVE(name)                                                                      \
    do {                                                                                   \
        void *address = dlsym(RTLD_NEXT, #name);                                           \
        memcpy(&calls.name, &address, sizeof(address));                                    \
    } while (0)

static void libc_resolve(void)
{
    RESOLVE(socket);
    RESOLVE(connect);
    RESOLVE(bind);
    RESOLVE(listen);
    RESOLVE(accept);
    RESOLVE(accept4);
    RESOLVE(send);
    RESOLVE(sendto);
    RESOLVE(sendmsg);
    RESOLVE(recv);
    RESOLVE(recvfrom);
    RESOLVE(recvmsg);
    RESOLVE(read);
    RESOLVE(write);
    RESOLVE(readv);
    RESOLVE(writev);
    RESOLVE(close);
    RESOLVE(shutdown);
    RESOLVE(getsockname);
    RESOLVE(getpeername);
    RESOLVE(getsockopt);
    RESOLVE(setsockopt);
    RESOLVE(fcntl);
    RESOLVE(fcntl64);
    RESOLVE(ioctl);
    RESOLVE(poll);
    RESOLVE(select);
    RESOLVE(dup);
    RESOLVE(dup2);
    RESOLVE(dup3);
    RESOLVE(epoll_ctl);
    RESOLVE(epoll_wait);
    RESOLVE(epoll_pwait);
    RESOLVE(fork);
    RESOLVE(sendfile);
    RESOLVE(sendfile64);
    RESOLVE(ppoll);
    RESOLVE(pselect);
    if (!calls.fcntl64)
        calls.fcntl64 = calls.fcntl;
    if (!calls.sendfile64)
        memcpy(&calls.sendfile64, &calls.sendfile, sizeof(calls.sendfile));
}

const struct libc_calls *libc_next(void)
{
    pthread_once(&calls_once, libc_resolve);
    return &calls;
}

_Thread_local bool shim_in_fork;

void shim_set_stack(struct usock_stack *stack)
{
    static const pthread_once_t once_initial = PTHREAD_ONCE_INIT;
    attached_stack = stack;
    if (!stack)
        attach_once = once_initial;
}

/* In a child forked other than by the shim's fork() (fork_calls.c), which
 * shares the sockets: the parent's handle is let go of and the sockets it
 * held are not the child's (a call on one is ENOTSOCK). */
static void shim_forget_after_fork(void)
{
    if (shim_in_fork)
        return;
    struct usock_stack *stack = attached_stack;
    fd_map_forget_all();
    shim_set_stack(NULL);
    if (stack)
        remote_stack_abandon(stack);
}

/* Resolves early, while the program is still single-threaded. */
__attribute__((constructor)) static void libc_next_init(void)
{
    libc_next();
    pthread_atfork(NULL, NULL, shim_forget_after_fork);
}

static void shim_attach(void)
{
    const char *name = getenv("USOCK_NAME");
    if (!name || !*name)
        name = "usock";
    int saved_errno = errno;
    struct usock_stack *stack = usock_attach(name);
    if (!stack) {
        char message[256];
        int length = snprintf(message, sizeof(message),
                              "usock-preload: cannot attach to stack '%s': %s\n", name,
                              strerror(errno));
        if (length > 0)
            libc_next()->write(2, message, (size_t)length < sizeof(message) ? (size_t)length
                                                                           : sizeof(message) - 1);
    }
    errno = saved_errno;
    attached_stack = stack;
}

struct usock_stack *shim_stack(void)
{
    pthread_once(&attach_once, shim_attach);
    return attached_stack;
}

struct usock_stack *shim_stack_if_attached(void)
{
    return attached_stack;
}
