/*
 * timer.c - binary min-heap of timers keyed by deadline; see timer.h.
 * Each timer records its index in the heap so cancel and re-arm need no
 * search.
 */
#include "util/timer.h"

#include <errno.h>
#include <stdlib.h>

void timer_init(struct timer *timer, timer_fire_fn fire)
{
    timer->deadline = UINT64_MAX;
    timer->heap_index = TIMER_IDLE;
    timer->fire = fire;
}

void timer_heap_init(struct timer_heap *heap)
{
    heap->entries = NULL;
    heap->count = 0;
    heap->capacity = 0;
}

void timer_heap_destroy(struct timer_heap *heap)
{
    for (size_t i = 0; i < heap->count; i++)
        heap->entries[i]->heap_index = TIMER_IDLE;
    free(heap->entries);
    timer_heap_init(heap);
}

static void heap_place(struct timer_heap *heap, size_t index, struct timer *timer)
{
    heap->entries[index] = timer;
    timer->heap_index = index;
}

static void sift_up(struct timer_heap *heap, size_t index)
{
    struct timer *timer = heap->entries[index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (heap->entries[parent]->deadline <= timer->deadline)
            break;
        heap_place(heap, index, heap->entries[parent]);
        index = parent;
    }
    heap_place(heap, index, timer);
}

static void sift_down(struct timer_heap *heap, size_t index)
{
    struct timer *timer = heap->entries[index];
    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= heap->count)
            break;
        if (child + 1 < heap->count &&
            heap->entries[child + 1]->deadline < heap->entries[child]->deadline)
            child++;
        if (heap->entries[child]->deadline >= timer->deadline)
            break;
        heap_place(heap, index, heap->entries[child]);
        index = child;
    }
    heap_place(heap, index, timer);
}

void timer_cancel(struct timer_heap *heap, struct timer *timer)
{
    size_t index = timer->heap_index;
    if (index == TIMER_IDLE)
        return;
    timer->heap_index = TIMER_IDLE;
    heap->count--;
    if (index == heap->count)
        return;
    struct timer *moved = heap->entries[heap->count];
    heap_place(heap, index, moved);
    sift_down(heap, index);
    sift_up(heap, moved->heap_index);
}

int timer_arm(struct timer_heap *heap, struct timer *timer, uint64_t deadline)
{
    if (timer_is_armed(timer))
        timer_cancel(heap, timer);
    if (heap->count == heap->capacity) {
        size_t capacity = heap->capacity ? heap->capacity * 2 : 64;
        struct timer **entries = realloc(heap->entries, capacity * sizeof(*entries));
        if (!entries)
            return -ENOMEM;
        heap->entries = entries;
        heap->capacity = capacity;
    }
    timer->deadline = deadline;
    heap_place(heap, heap->count++, timer);
    sift_up(heap, heap->count - 1);
    return 0;
}

uint64_t timer_heap_next(const struct timer_heap *heap)
{
    return heap->count ? heap->entries[0]->deadline : UINT64_MAX;
}

struct timer *timer_heap_pop_due(struct timer_heap *heap, uint64_t now)
{
    if (heap->count == 0 || heap->entries[0]->deadline > now)
        return NULL;
    struct timer *timer = heap->entries[0];
    timer_cancel(heap, timer);
    return timer;
}
