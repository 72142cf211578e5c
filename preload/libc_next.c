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
#include <unistd.h>

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
    RESOLVE(execve);
    RESOLVE(execvpe);
    RESOLVE(fexecve);
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
/* The process that attached attached_stack (a vfork child runs in its
 * parent's memory, with another process id). */
static pid_t attached_pid;

void shim_set_stack(struct usock_stack *stack)
{
    static const pthread_once_t once_initial = PTHREAD_ONCE_INIT;
    attached_stack = stack;
    attached_pid = stack ? getpid() : 0;
    if (!stack)
        attach_once = once_initial;
}

bool shim_attached_here(void)
{
    return attached_stack && attached_pid == getpid();
}

void shim_say(const char *what, int error)
{
    char message[256];
    int length = snprintf(message, sizeof(message), "usock-preload: %s: %s\n", what,
                          strerror(error));
    if (length > 0)
        libc_next()->write(2, message,
                           (size_t)length < sizeof(message) ? (size_t)length : sizeof(message) - 1);
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

/* Resolves early, while the program is still single-threaded; a program
 * exec'd with usock sockets (exec_calls.c) takes them over before main. */
__attribute__((constructor)) static void libc_next_init(void)
{
    libc_next();
    pthread_atfork(NULL, NULL, shim_forget_after_fork);
    if (getenv(EXEC_INHERIT_VARIABLE))
        shim_stack();
}

static void shim_attach(void)
{
    int saved_errno = errno;
    struct usock_stack *stack;
    const char *inherited = getenv(EXEC_INHERIT_VARIABLE);
    if (inherited) {
        stack = exec_take_over(inherited);
        unsetenv(EXEC_INHERIT_VARIABLE); /* not for this program's children */
    } else {
        const char *name = getenv("USOCK_NAME");
        if (!name || !*name)
            name = "usock";
        stack = usock_attach(name);
        if (!stack) {
            char what[128];
            snprintf(what, sizeof(what), "cannot attach to stack '%s'", name);
            shim_say(what, errno);
        }
    }
    errno = saved_errno;
    /* Not shim_set_stack: that resets attach_once, which is running. */
    attached_stack = stack;
    attached_pid = getpid();
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
