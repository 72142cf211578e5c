/*
 * epoll_calls.c - epoll over kernel and usock descriptors together.
 *
 * Theory of operation.  The kernel cannot watch a usock socket (the
 * eventfd that reserves its number never becomes ready), so the shim keeps
 * its own list, per epoll instance, of the usock sockets added to it: the
 * events asked for, the caller's data, and for edge-triggered ones
 * (EPOLLET) the readiness last reported.  epoll_ctl on a usock socket
 * edits that list; on anything else it is libc's.  epoll_wait on an
 * instance with no usock socket is libc's; otherwise it polls in slices as
 * poll_calls.c does: the kernel's part with timeout 0, then the usock
 * sockets with usock_poll for up to EPOLL_SLICE_MS, until something is
 * ready or the caller's timeout passes (a kernel event is seen up to
 * EPOLL_SLICE_MS late).  Level-triggered sockets are reported while
 * ready.  An edge-triggered one is reported once for each readiness bit,
 * and the bit is watched again only after a call on the socket would have
 * blocked or came back short (EAGAIN from a read, accept or write, or a
 * read or write of less than asked: socket_calls.c tells
 * epoll_note_would_block), which is when the kernel's EPOLLET would report
 * the next arrival; so a socket that stays readable or writable is not
 * polled for that bit meanwhile, and the wait does not spin on it.
 * EPOLLONESHOT disables a socket after one report until EPOLL_CTL_MOD.
 * epoll_pwait's signal mask is applied only when libc does the waiting.
 * A signal handler that runs while the stack is asked ends the wait with
 * EINTR, as in the kernel (remote_interrupted).
 * The instances are few (one per event loop), so they are kept on a list
 * under one lock; no lock is held while waiting.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "preload.h"
#include "remote/client.h"

/* Longest an epoll_wait with usock sockets leaves the kernel's part
 * unlooked at. */
#define EPOLL_SLICE_MS 10

struct epoll_entry {
    int fd;                 /* the program's number for the usock socket */
    uint32_t events;        /* what was asked, flags included */
    epoll_data_t data;
    uint32_t reported;      /* EPOLLET: bits reported and not yet ended by EAGAIN */
    bool disabled;          /* EPOLLONESHOT, reported once */
};

struct epoll_set {
    int epoll_fd;
    struct epoll_entry *entries;
    size_t count, capacity;
    struct epoll_set *next;
};

static pthread_mutex_t sets_lock = PTHREAD_MUTEX_INITIALIZER;
static struct epoll_set *sets;
static _Atomic int sets_exist; /* a set was ever made: close() must look */

static struct epoll_set *set_find(int epoll_fd)
{
    for (struct epoll_set *set = sets; set; set = set->next)
        if (set->epoll_fd == epoll_fd)
            return set;
    return NULL;
}

static struct epoll_entry *entry_find(struct epoll_set *set, int fd)
{
    for (size_t i = 0; set && i < set->count; i++)
        if (set->entries[i].fd == fd)
            return &set->entries[i];
    return NULL;
}

static void set_free(struct epoll_set *set)
{
    free(set->entries);
    free(set);
}

/* Edits the list of epoll_fd for usock socket fd (lock held).  Returns 0
 * or an errno. */
static int set_control(int epoll_fd, int operation, int fd, const struct epoll_event *event)
{
    struct epoll_set *set = set_find(epoll_fd);
    struct epoll_entry *entry = entry_find(set, fd);
    switch (operation) {
    case EPOLL_CTL_ADD:
        if (entry)
            return EEXIST;
        if (!event)
            return EFAULT;
        if (!set) {
            set = calloc(1, sizeof(*set));
            if (!set)
                return ENOMEM;
            set->epoll_fd = epoll_fd;
            set->next = sets;
            sets = set;
            sets_exist = 1;
        }
        if (set->count == set->capacity) {
            size_t capacity = set->capacity ? 2 * set->capacity : 8;
            struct epoll_entry *entries = realloc(set->entries, capacity * sizeof(*entries));
            if (!entries)
                return ENOMEM;
            set->entries = entries;
            set->capacity = capacity;
        }
        set->entries[set->count++] = (struct epoll_entry){
            .fd = fd, .events = event->events, .data = event->data};
        return 0;
    case EPOLL_CTL_MOD:
        if (!entry)
            return ENOENT;
        if (!event)
            return EFAULT;
        *entry = (struct epoll_entry){.fd = fd, .events = event->events, .data = event->data};
        return 0;
    case EPOLL_CTL_DEL:
        if (!entry)
            return ENOENT;
        *entry = set->entries[--set->count];
        return 0;
    default:
        return EINVAL;
    }
}

int epoll_ctl(int epoll_fd, int operation, int fd, struct epoll_event *event)
{
    if (fd_map_lookup(fd) < 0)
        return libc_next()->epoll_ctl(epoll_fd, operation, fd, event);
    if (fd == epoll_fd) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&sets_lock);
    int error = set_control(epoll_fd, operation, fd, event);
    pthread_mutex_unlock(&sets_lock);
    if (error) {
        errno = error;
        return -1;
    }
    return 0;
}

void epoll_note_would_block(int fd, uint32_t bits)
{
    if (!sets_exist)
        return;
    pthread_mutex_lock(&sets_lock);
    for (struct epoll_set *set = sets; set; set = set->next) {
        struct epoll_entry *entry = entry_find(set, fd);
        if (entry)
            entry->reported &= ~bits;
    }
    pthread_mutex_unlock(&sets_lock);
}

void epoll_forget_descriptor(int fd)
{
    if (!sets_exist)
        return;
    pthread_mutex_lock(&sets_lock);
    for (struct epoll_set **link = &sets; *link;) {
        struct epoll_set *set = *link;
        if (set->epoll_fd == fd) {
            *link = set->next;
            set_free(set);
            continue;
        }
        struct epoll_entry *entry = entry_find(set, fd);
        if (entry)
            *entry = set->entries[--set->count];
        link = &set->next;
    }
    pthread_mutex_unlock(&sets_lock);
}

static long long monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static short poll_events_of(uint32_t events)
{
    short asked = 0;
    if (events & EPOLLIN)
        asked |= POLLIN;
    if (events & EPOLLOUT)
        asked |= POLLOUT;
    if (events & EPOLLPRI)
        asked |= POLLPRI;
    if (events & EPOLLRDHUP)
        asked |= POLLRDHUP;
    return asked;
}

static uint32_t epoll_events_of(short revents)
{
    uint32_t ready = 0;
    if (revents & POLLIN)
        ready |= EPOLLIN;
    if (revents & POLLOUT)
        ready |= EPOLLOUT;
    if (revents & POLLPRI)
        ready |= EPOLLPRI;
    if (revents & POLLRDHUP)
        ready |= EPOLLRDHUP;
    if (revents & POLLERR)
        ready |= EPOLLERR;
    if (revents & POLLHUP)
        ready |= EPOLLHUP;
    return ready;
}

/* The usock sockets of epoll_fd to poll now, as usock pollfds, with the
 * program's numbers beside them; returns how many (-1 and ENOMEM). */
static int set_snapshot(int epoll_fd, struct pollfd **entries, int **numbers)
{
    *entries = NULL;
    *numbers = NULL;
    pthread_mutex_lock(&sets_lock);
    struct epoll_set *set = set_find(epoll_fd);
    size_t count = set ? set->count : 0;
    int used = 0;
    if (count > 0) {
        *entries = malloc(count * sizeof(**entries));
        *numbers = malloc(count * sizeof(**numbers));
        if (!*entries || !*numbers) {
            pthread_mutex_unlock(&sets_lock);
            free(*entries);
            free(*numbers);
            *entries = NULL;
            *numbers = NULL;
            errno = ENOMEM;
            return -1;
        }
        for (size_t i = 0; i < count; i++) {
            const struct epoll_entry *entry = &set->entries[i];
            int usock_fd = fd_map_lookup(entry->fd);
            uint32_t wanted = entry->events;
            if (entry->events & EPOLLET)
                wanted &= ~entry->reported;
            short asked = poll_events_of(wanted);
            if (entry->disabled || usock_fd < 0 || !asked)
                continue;
            (*entries)[used] = (struct pollfd){.fd = usock_fd, .events = asked};
            (*numbers)[used++] = entry->fd;
        }
    }
    pthread_mutex_unlock(&sets_lock);
    return used;
}

/* Turns what usock_poll found into epoll events after the kernel's first
 * ones, as the entries' triggering says; returns how many were added. */
static int set_report(int epoll_fd, const struct pollfd *entries, const int *numbers, int count,
                      struct epoll_event *events, int room)
{
    int added = 0;
    pthread_mutex_lock(&sets_lock);
    struct epoll_set *set = set_find(epoll_fd);
    for (int i = 0; i < count && added < room; i++) {
        struct epoll_entry *entry = entry_find(set, numbers[i]);
        if (!entry || entry->disabled)
            continue;
        uint32_t ready = epoll_events_of(entries[i].revents) &
                         (entry->events | EPOLLERR | EPOLLHUP);
        uint32_t report = ready;
        if (entry->events & EPOLLET) {
            report = ready & ~entry->reported;
            entry->reported |= report;
        }
        if (!report)
            continue;
        events[added++] = (struct epoll_event){.events = report, .data = entry->data};
        if (entry->events & EPOLLONESHOT)
            entry->disabled = true;
    }
    pthread_mutex_unlock(&sets_lock);
    return added;
}

/* epoll_wait and epoll_pwait: libc's when the instance holds no usock
 * socket, else the slices described above. */
static int wait_mixed(int epoll_fd, struct epoll_event *events, int room, int timeout_ms,
                      const sigset_t *mask, bool with_mask)
{
    struct usock_stack *stack = shim_stack_if_attached();
    bool mixed = false;
    if (stack && sets_exist) {
        pthread_mutex_lock(&sets_lock);
        struct epoll_set *set = set_find(epoll_fd);
        mixed = set && set->count > 0;
        pthread_mutex_unlock(&sets_lock);
    }
    if (!mixed) {
        if (with_mask)
            return libc_next()->epoll_pwait(epoll_fd, events, room, timeout_ms, mask);
        return libc_next()->epoll_wait(epoll_fd, events, room, timeout_ms);
    }
    if (room <= 0) {
        errno = EINVAL;
        return -1;
    }
    long long deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
    (void)remote_interrupted(); /* only a handler that runs from now on counts */
    for (;;) {
        long long left = deadline < 0 ? EPOLL_SLICE_MS : deadline - monotonic_ms();
        int slice = left <= 0 ? 0 : left < EPOLL_SLICE_MS ? (int)left : EPOLL_SLICE_MS;
        struct pollfd *entries;
        int *numbers;
        int count = set_snapshot(epoll_fd, &entries, &numbers);
        if (count < 0)
            return -1;
        int ready;
        if (count == 0) {
            /* Nothing of ours to watch now: the kernel's part may wait. */
            ready = libc_next()->epoll_wait(epoll_fd, events, room, slice);
        } else {
            ready = libc_next()->epoll_wait(epoll_fd, events, room, 0);
            int usock_ready = ready < 0 ? -1
                                        : usock_poll(stack, entries, (nfds_t)count,
                                                     ready > 0 ? 0 : slice);
            if (usock_ready < 0)
                ready = -1;
            else if (usock_ready > 0)
                ready += set_report(epoll_fd, entries, numbers, count, events + ready,
                                    room - ready);
        }
        int saved_errno = errno;
        free(entries);
        free(numbers);
        errno = saved_errno;
        if (ready != 0)
            return ready;
        if (remote_interrupted()) {
            errno = EINTR; /* a handler ran while the stack was asked */
            return -1;
        }
        if (deadline >= 0 && monotonic_ms() >= deadline)
            return 0;
    }
}

int epoll_wait(int epoll_fd, struct epoll_event *events, int room, int timeout_ms)
{
    return wait_mixed(epoll_fd, events, room, timeout_ms, NULL, false);
}

int epoll_pwait(int epoll_fd, struct epoll_event *events, int room, int timeout_ms,
                const sigset_t *mask)
{
    return wait_mixed(epoll_fd, events, room, timeout_ms, mask, true);
}
