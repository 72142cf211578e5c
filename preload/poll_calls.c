/*
 * poll_calls.c - poll() and select() over kernel and usock descriptors
 * together.
 *
 * Theory of operation.  A poll whose descriptors are all the kernel's goes
 * to libc's poll, one whose descriptors are all usock sockets to
 * usock_poll with the caller's timeout; both wait without cost.  A mixed
 * set has no single place to wait, so it is split in two and polled in
 * slices: the kernel's part with timeout 0, then the usock part with up
 * to POLL_SLICE_MS (0 when a kernel descriptor was ready already), until
 * something is ready or the caller's timeout passes.  A usock event is
 * thus seen at once, a kernel event up to POLL_SLICE_MS late, and a
 * mixed poll with nothing ready costs two calls (one a round trip to the
 * stack) every POLL_SLICE_MS.  select() is built on poll(); it does not
 * write the time left back into *timeout.  ppoll() and pselect() with a
 * usock socket in the set are poll() and select() with the signal mask set
 * around them (see mask_begin: nearly, not wholly, atomic as the kernel's).
 *
 * A signal handler that runs while the stack is asked ends the wait with
 * EINTR, as the kernel's poll does (remote/client.c cancels a usock_poll
 * it interrupts; between slices remote_interrupted says so); one that runs
 * while this code is not waiting on the stack goes unnoticed until the
 * next slice or the end of the wait.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "preload.h"
#include "remote/client.h"

/* Longest a mixed poll leaves the kernel's descriptors unlooked at. */
#define POLL_SLICE_MS 10
/* Entries a poll splits on the stack before it takes the heap. */
#define POLL_STACK_ENTRIES 64

int __poll_chk(struct pollfd *fds, nfds_t count, int timeout_ms, size_t fds_size);

static long long monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The caller's poll entries split by where they live: kernel[] and usock[]
 * (usock descriptor numbers), with origin[] giving each one's index in the
 * caller's array. */
struct poll_split {
    struct pollfd *kernel, *usock;
    nfds_t *kernel_origin, *usock_origin;
    nfds_t kernel_count, usock_count;
};

static void poll_split_fill(struct poll_split *split, const struct pollfd *fds, nfds_t count)
{
    split->kernel_count = split->usock_count = 0;
    for (nfds_t i = 0; i < count; i++) {
        int usock_fd = fd_map_lookup(fds[i].fd);
        if (usock_fd >= 0) {
            split->usock[split->usock_count] = fds[i];
            split->usock[split->usock_count].fd = usock_fd;
            split->usock_origin[split->usock_count++] = i;
        } else {
            split->kernel[split->kernel_count] = fds[i];
            split->kernel_origin[split->kernel_count++] = i;
        }
    }
}

/* Copies revents back to the caller's array; returns how many are set. */
static int poll_split_merge(const struct poll_split *split, struct pollfd *fds)
{
    int ready = 0;
    for (nfds_t i = 0; i < split->kernel_count; i++) {
        fds[split->kernel_origin[i]].revents = split->kernel[i].revents;
        ready += split->kernel[i].revents != 0;
    }
    for (nfds_t i = 0; i < split->usock_count; i++) {
        fds[split->usock_origin[i]].revents = split->usock[i].revents;
        ready += split->usock[i].revents != 0;
    }
    return ready;
}

/* Polls a split set until something is ready or timeout_ms passes. */
static int poll_split_wait(struct usock_stack *stack, struct poll_split *split, int timeout_ms)
{
    if (split->kernel_count == 0)
        return usock_poll(stack, split->usock, split->usock_count, timeout_ms);
    long long deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
    (void)remote_interrupted(); /* only a handler that runs from now on counts */
    for (;;) {
        int kernel_ready = libc_next()->poll(split->kernel, split->kernel_count, 0);
        if (kernel_ready < 0)
            return -1;
        int slice = 0;
        if (kernel_ready == 0) {
            long long left = deadline < 0 ? POLL_SLICE_MS : deadline - monotonic_ms();
            slice = left <= 0 ? 0 : left < POLL_SLICE_MS ? (int)left : POLL_SLICE_MS;
        }
        int usock_ready = usock_poll(stack, split->usock, split->usock_count, slice);
        if (usock_ready < 0)
            return -1;
        if (kernel_ready + usock_ready > 0)
            return kernel_ready + usock_ready;
        if (remote_interrupted()) {
            errno = EINTR; /* a handler ran while the stack was asked */
            return -1;
        }
        if (deadline >= 0 && monotonic_ms() >= deadline)
            return 0;
    }
}

int poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    struct usock_stack *stack = shim_stack_if_attached();
    nfds_t mapped = 0;
    if (stack) {
        for (nfds_t i = 0; i < count; i++)
            mapped += fd_map_lookup(fds[i].fd) >= 0;
    }
    if (mapped == 0)
        return libc_next()->poll(fds, count, timeout_ms);

    struct pollfd entries_on_stack[2 * POLL_STACK_ENTRIES];
    nfds_t origins_on_stack[2 * POLL_STACK_ENTRIES];
    struct pollfd *entries = entries_on_stack;
    nfds_t *origins = origins_on_stack;
    if (count > POLL_STACK_ENTRIES) {
        entries = malloc(2 * count * sizeof(*entries));
        origins = malloc(2 * count * sizeof(*origins));
        if (!entries || !origins) {
            free(entries);
            free(origins);
            errno = ENOMEM;
            return -1;
        }
    }
    struct poll_split split = {
        .kernel = entries, .usock = entries + count,
        .kernel_origin = origins, .usock_origin = origins + count,
    };
    poll_split_fill(&split, fds, count);
    int result = poll_split_wait(stack, &split, timeout_ms);
    if (result >= 0)
        result = poll_split_merge(&split, fds);
    if (entries != entries_on_stack) {
        int saved_errno = errno;
        free(entries);
        free(origins);
        errno = saved_errno;
    }
    return result;
}

int __poll_chk(struct pollfd *fds, nfds_t count, int timeout_ms, size_t fds_size)
{
    if (fds_size / sizeof(*fds) < count)
        abort();
    return poll(fds, count, timeout_ms);
}

/* True when a usock socket is in one of select's sets. */
static bool select_has_usock(int count, const fd_set *readable, const fd_set *writable,
                             const fd_set *exceptional)
{
    if (!shim_stack_if_attached() || count <= 0 || count > FD_SETSIZE)
        return false;
    for (int fd = 0; fd < count; fd++) {
        if (((readable && FD_ISSET(fd, readable)) || (writable && FD_ISSET(fd, writable)) ||
             (exceptional && FD_ISSET(fd, exceptional))) &&
            fd_map_lookup(fd) >= 0)
            return true;
    }
    return false;
}

int select(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
           struct timeval *timeout)
{
    if (!select_has_usock(count, readable, writable, exceptional))
        return libc_next()->select(count, readable, writable, exceptional, timeout);

    struct pollfd entries[FD_SETSIZE];
    nfds_t used = 0;
    for (int fd = 0; fd < count; fd++) {
        short events = 0;
        if (readable && FD_ISSET(fd, readable))
            events |= POLLIN;
        if (writable && FD_ISSET(fd, writable))
            events |= POLLOUT;
        if (exceptional && FD_ISSET(fd, exceptional))
            events |= POLLPRI;
        if (events)
            entries[used++] = (struct pollfd){.fd = fd, .events = events};
    }
    int timeout_ms = -1;
    if (timeout)
        timeout_ms = (int)(timeout->tv_sec * 1000 + (timeout->tv_usec + 999) / 1000);
    int result = poll(entries, used, timeout_ms);
    if (result < 0)
        return -1;
    for (nfds_t i = 0; i < used; i++) {
        if (entries[i].revents & POLLNVAL) {
            errno = EBADF;
            return -1;
        }
    }
    if (readable)
        FD_ZERO(readable);
    if (writable)
        FD_ZERO(writable);
    if (exceptional)
        FD_ZERO(exceptional);
    int ready = 0;
    for (nfds_t i = 0; i < used; i++) {
        short revents = entries[i].revents;
        int fd = entries[i].fd;
        if ((entries[i].events & POLLIN) && (revents & (POLLIN | POLLHUP | POLLERR))) {
            FD_SET(fd, readable);
            ready++;
        }
        if ((entries[i].events & POLLOUT) && (revents & (POLLOUT | POLLERR))) {
            FD_SET(fd, writable);
            ready++;
        }
        if ((entries[i].events & POLLPRI) && (revents & POLLPRI)) {
            FD_SET(fd, exceptional);
            ready++;
        }
    }
    return ready;
}

/* A timespec as poll()'s milliseconds (rounded up; NULL: -1, for ever). */
static int timespec_to_ms(const struct timespec *timeout)
{
    if (!timeout)
        return -1;
    long long ms = (long long)timeout->tv_sec * 1000 + (timeout->tv_nsec + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ppoll and pselect with usock sockets in the set: the signal mask is set
 * for the wait (mask_begin) and put back after it (mask_end); the kernel
 * does both in one step.  A signal already pending that the mask lets
 * through is handled as the mask is set, and the call then ends with
 * EINTR at once, as the kernel's would (the lost wake-up pselect exists to
 * prevent).  One that comes during the wait ends it too (see the top); one
 * that comes in the moment between the wait and the restore is handled at
 * the restore.  Returns 0 to go on and wait, or -1 with errno (EINVAL for
 * a bad timeout, EINTR, or why the mask could not be set), nothing left
 * to put back. */
static int mask_begin(const struct timespec *timeout, const sigset_t *mask, sigset_t *saved)
{
    if (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L)) {
        errno = EINVAL;
        return -1;
    }
    if (!mask)
        return 0;
    bool handled = false;
    sigset_t pending;
    if (sigpending(&pending) == 0) {
        for (int number = 1; number < NSIG; number++) {
            struct sigaction action;
            if (sigismember(&pending, number) == 1 && sigismember(mask, number) == 0 &&
                sigaction(number, NULL, &action) == 0 && action.sa_handler != SIG_DFL &&
                action.sa_handler != SIG_IGN)
                handled = true;
        }
    }
    int error = pthread_sigmask(SIG_SETMASK, mask, saved);
    if (error) {
        errno = error;
        return -1;
    }
    if (handled) {
        pthread_sigmask(SIG_SETMASK, saved, NULL);
        errno = EINTR;
        return -1;
    }
    return 0;
}

/* After the wait: puts the mask back; result passes through, errno kept. */
static int mask_end(const sigset_t *mask, const sigset_t *saved, int result)
{
    int saved_errno = errno;
    if (mask)
        pthread_sigmask(SIG_SETMASK, saved, NULL);
    errno = saved_errno;
    return result;
}

/* True when a usock socket is among fds. */
static bool poll_has_usock(const struct pollfd *fds, nfds_t count)
{
    if (!shim_stack_if_attached())
        return false;
    for (nfds_t i = 0; i < count; i++) {
        if (fd_map_lookup(fds[i].fd) >= 0)
            return true;
    }
    return false;
}

/* glibc declares ppoll's entries write-only (access attribute), but the
 * events in them are read, as the kernel reads them. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
int ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
          const sigset_t *mask)
{
    if (!poll_has_usock(fds, count))
        return libc_next()->ppoll(fds, count, timeout, mask);
    sigset_t saved;
    if (mask_begin(timeout, mask, &saved) < 0)
        return -1;
    return mask_end(mask, &saved, poll(fds, count, timespec_to_ms(timeout)));
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                const sigset_t *mask, size_t fds_size);
int __ppoll_chk(struct pollfd *fds, nfds_t count, const struct timespec *timeout,
                const sigset_t *mask, size_t fds_size)
{
    if (fds_size / sizeof(*fds) < count)
        abort();
    return ppoll(fds, count, timeout, mask);
}

int pselect(int count, fd_set *readable, fd_set *writable, fd_set *exceptional,
            const struct timespec *timeout, const sigset_t *mask)
{
    if (!select_has_usock(count, readable, writable, exceptional))
        return libc_next()->pselect(count, readable, writable, exceptional, timeout, mask);
    sigset_t saved;
    if (mask_begin(timeout, mask, &saved) < 0)
        return -1;
    struct timeval interval;
    if (timeout) {
        interval.tv_sec = timeout->tv_sec;
        interval.tv_usec = (timeout->tv_nsec + 999) / 1000;
    }
    return mask_end(mask, &saved,
                    select(count, readable, writable, exceptional, timeout ? &interval : NULL));
}
