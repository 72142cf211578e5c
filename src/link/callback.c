/*
 * callback.c - links supplied by the program: frames the stack sends go to
 * a function of the program's; frames the program receives come in through
 * usock_link_callback_input.
 *
 * Input may arrive on any thread, so it is copied into a bounded FIFO under
 * a mutex, and an eventfd (the link's wait_fd) is readable exactly while the
 * FIFO is non-empty, for the stack's thread to wake on.  Frames that do not
 * fit are dropped and counted.  Send calls the program's function directly
 * on the stack's thread, with the frame borrowed for the call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "link/frame_queue.h"
#include "link/link.h"

#define CALLBACK_QUEUE_FRAMES_MAX 1024
#define CALLBACK_QUEUE_BYTES_MAX (16u * 1024 * 1024)
#define CALLBACK_FRAME_MAX 65535

struct callback_link {
    struct usock_link link;
    usock_link_send_fn send;
    void *context;
    pthread_mutex_t lock;
    struct link_frame_queue input; /* received frames, oldest first */
    int event_fd;                  /* readable while input is non-empty */
    uint64_t input_dropped;        /* frames refused because input was full */
};

static int callback_send(struct usock_link *link, const uint8_t *frame, size_t length,
                         uint64_t now)
{
    struct callback_link *callback = (struct callback_link *)link;
    (void)now;
    callback->send(callback->context, frame, length);
    return 0;
}

static ssize_t callback_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                                uint64_t now)
{
    struct callback_link *callback = (struct callback_link *)link;
    (void)now;

    pthread_mutex_lock(&callback->lock);
    struct link_frame *frame = link_frame_queue_pop(&callback->input);
    if (frame != NULL && callback->input.count == 0)
        link_event_clear(callback->event_fd);
    pthread_mutex_unlock(&callback->lock);

    if (frame == NULL)
        return -EAGAIN;
    size_t stored = frame->length < capacity ? frame->length : capacity;
    memcpy(buffer, frame->data, stored);
    free(frame);
    return (ssize_t)stored;
}

static int callback_wait_fd(const struct usock_link *link)
{
    return ((const struct callback_link *)link)->event_fd;
}

static void callback_destroy(struct usock_link *link)
{
    struct callback_link *callback = (struct callback_link *)link;
    link_frame_queue_clear(&callback->input);
    close(callback->event_fd);
    pthread_mutex_destroy(&callback->lock);
    free(callback);
}

static const struct link_ops callback_ops = {
    .kind = "callback",
    .send = callback_send,
    .receive = callback_receive,
    .wait_fd = callback_wait_fd,
    .deadline = NULL,
    .destroy = callback_destroy,
};

/*
 * usock_link_callback_new - makes a link whose transmitted frames (IP
 * packets when carries_ip) are passed to send(context, frame, length).
 * MTU 1500, no hardware address.  Returns 0 and stores the link, or -EINVAL
 * (send is NULL), -ENOMEM, -EMFILE ...
 */
int usock_link_callback_new(usock_link_send_fn send, void *context, int carries_ip,
                            struct usock_link **link_out)
{
    int result;
    if (send == NULL || link_out == NULL)
        return -EINVAL;
    *link_out = NULL;

    struct callback_link *callback = calloc(1, sizeof(*callback));
    if (callback == NULL)
        return -ENOMEM;
    result = -pthread_mutex_init(&callback->lock, NULL);
    if (result < 0)
        goto fail_free_link;
    callback->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (callback->event_fd < 0) {
        result = -errno;
        goto fail_destroy_lock;
    }

    callback->send = send;
    callback->context = context;
    callback->link.ops = &callback_ops;
    callback->link.layer = carries_ip ? LINK_LAYER_IP : LINK_LAYER_ETHERNET;
    callback->link.mtu = 1500;
    callback->link.has_mac = 0;
    snprintf(callback->link.name, sizeof(callback->link.name), "callback");
    *link_out = &callback->link;
    return 0;

fail_destroy_lock:
    pthread_mutex_destroy(&callback->lock);
fail_free_link:
    free(callback);
    return result;
}

/*
 * usock_link_callback_input - copies one received frame onto the link's
 * input queue; the caller keeps frame.  Safe from any thread, but not after
 * the link is closed.  Returns 0, -ENOBUFS when the queue is full (the frame
 * is dropped and counted), -ENOMEM, or -EINVAL when link is not a callback
 * link or length is 0 or over 65535.
 */
int usock_link_callback_input(struct usock_link *link, const uint8_t *frame, size_t length)
{
    if (link == NULL || link->ops != &callback_ops || frame == NULL || length == 0 ||
        length > CALLBACK_FRAME_MAX)
        return -EINVAL;
    struct callback_link *callback = (struct callback_link *)link;

    struct link_frame *copy = link_frame_new(frame, length);
    if (copy == NULL)
        return -ENOMEM;

    int result = 0;
    pthread_mutex_lock(&callback->lock);
    if (link_frame_queue_full(&callback->input, length, CALLBACK_QUEUE_FRAMES_MAX,
                              CALLBACK_QUEUE_BYTES_MAX)) {
        callback->input_dropped++;
        result = -ENOBUFS;
    } else {
        link_frame_queue_push(&callback->input, copy);
        copy = NULL;
        if (callback->input.count == 1)
            link_event_signal(callback->event_fd);
    }
    pthread_mutex_unlock(&callback->lock);
    free(copy);
    return result;
}
