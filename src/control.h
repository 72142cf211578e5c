/*
 * control.h - the control endpoint's request handling, apart from its
 * socket, so that it can be tested and fuzzed without one.
 */
#ifndef USOCK_CONTROL_H
#define USOCK_CONTROL_H

#include <stddef.h>

#include "usock.h"

/* The longest request the endpoint reads from a client; the rest is not
 * read. */
#define CONTROL_REQUEST_MAX 127

/* Answers one request as a client sent it: length bytes, not terminated;
 * only the first CONTROL_REQUEST_MAX bytes count, and of those only what
 * comes before the first CR, LF or NUL ("ss", "stats", else an error line).
 * Returns the answer in a buffer the caller frees, with its length in
 * *reply_length; NULL (length 0) when there is nothing to say or memory ran
 * out. */
char *control_reply(struct usock_stack *stack, const char *request, size_t length,
                    size_t *reply_length);

#endif
