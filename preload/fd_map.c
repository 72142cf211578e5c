/*
 * fd_map.c - the table from reserved kernel descriptors to usock
 * descriptors.
 *
 * Theory of operation.  A usock socket gets a kernel descriptor number of
 * its own: an eventfd opened by the shim (it never becomes readable, so a
 * kernel poll or epoll on it waits quietly, and the kernel can never hand
 * the number to anything else while the socket lives).  slot[k] holds the
 * usock descriptor + 1 for kernel descriptor k, 0 when k is not ours.
 * Slots are atomics: lookups (every read, write, poll ...) take no lock;
 * a slot is only set right after its eventfd was opened and only cleared
 * (fd_map_take, an exchange) before that eventfd is closed, so a number is
 * never mapped while the kernel might reuse it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "preload.h"

static _Atomic int slot[FD_MAP_SIZE];

int fd_map_lookup(int fd)
{
    if (fd < 0 || fd >= FD_MAP_SIZE)
        return -1;
    return atomic_load_explicit(&slot[fd], memory_order_acquire) - 1;
}

int fd_map_reserve(int usock_fd, int close_on_exec)
{
    int fd = eventfd(0, close_on_exec ? EFD_CLOEXEC : 0);
    if (fd < 0)
        return -1;
    if (fd >= FD_MAP_SIZE) {
        libc_next()->close(fd);
        errno = EMFILE;
        return -1;
    }
    atomic_store_explicit(&slot[fd], usock_fd + 1, memory_order_release);
    return fd;
}

int fd_map_take(int fd)
{
    if (fd < 0 || fd >= FD_MAP_SIZE)
        return -1;
    return atomic_exchange_explicit(&slot[fd], 0, memory_order_acq_rel) - 1;
}

int fd_map_adopt(int fd, int usock_fd)
{
    if (fd < 0 || fd >= FD_MAP_SIZE) {
        errno = EMFILE;
        return -1;
    }
    atomic_store_explicit(&slot[fd], usock_fd + 1, memory_order_release);
    return fd;
}

size_t fd_map_rewrite(int (*rewrite)(int usock_fd, void *context), void *context)
{
    size_t kept = 0;
    for (int fd = 0; fd < FD_MAP_SIZE; fd++) {
        int usock_fd = atomic_load_explicit(&slot[fd], memory_order_relaxed) - 1;
        if (usock_fd < 0)
            continue;
        int now = rewrite(usock_fd, context);
        atomic_store_explicit(&slot[fd], now < 0 ? 0 : now + 1, memory_order_relaxed);
        kept += now >= 0;
    }
    return kept;
}

void fd_map_each(void (*visit)(int fd, int usock_fd, void *context), void *context)
{
    for (int fd = 0; fd < FD_MAP_SIZE; fd++) {
        int usock_fd = atomic_load_explicit(&slot[fd], memory_order_acquire) - 1;
        if (usock_fd >= 0)
            visit(fd, usock_fd, context);
    }
}

bool fd_map_any(void)
{
    for (int fd = 0; fd < FD_MAP_SIZE; fd++) {
        if (atomic_load_explicit(&slot[fd], memory_order_relaxed) != 0)
            return true;
    }
    return false;
}

void fd_map_forget_all(void)
{
    for (int fd = 0; fd < FD_MAP_SIZE; fd++)
        atomic_store_explicit(&slot[fd], 0, memory_order_relaxed);
}
