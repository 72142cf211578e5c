/*
 * control.c - the control endpoint: a Unix stream socket through which
 * other processes (`usock ss`, `usock stats`) inspect a running stack.
 *
 * Protocol: the client sends one line, "ss" or "stats"; the server answers
 * with text and closes.  "stats" gives "Name value" per line.  "ss" gives
 * one line per socket, tab-separated: netid, state, listening (0/1),
 * Recv-Q, Send-Q, local address:port, peer address:port, already formatted
 * as ss prints them (an unconnected peer is "0.0.0.0:*"), and the details
 * ss -i shows (TCP; empty otherwise); a socket an attached program holds
 * (usock_attach) has a ninth field, the program's process id.
 *
 * The server runs on its own thread, one client at a time, with a receive
 * timeout so a silent client cannot hold it.  It takes the stack lock only
 * while it copies the table, never while it talks to the client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "stack.h"

struct text {
    char *data;
    size_t length;
    size_t capacity;
};

static void text_append(struct text *text, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void text_append(struct text *text, const char *format, ...)
{
    for (;;) {
        va_list arguments;
        va_start(arguments, format);
        size_t room = text->capacity - text->length;
        int needed = vsnprintf(text->data ? text->data + text->length : NULL, room, format,
                               arguments);
        va_end(arguments);
        if (needed < 0)
            return;
        if ((size_t)needed < room) {
            text->length += (size_t)needed;
            return;
        }
        size_t capacity = text->capacity ? text->capacity * 2 : 4096;
        while (capacity - text->length <= (size_t)needed)
            capacity *= 2;
        char *grown = realloc(text->data, capacity);
        if (!grown)
            return;
        text->data = grown;
        text->capacity = capacity;
    }
}

static void format_endpoint(char *out, size_t size, const struct sockaddr_in *address,
                            bool peer)
{
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &address->sin_addr, text, sizeof(text));
    if (peer && address->sin_port == 0)
        snprintf(out, size, "%s:*", text);
    else
        snprintf(out, size, "%s:%u", text, ntohs(address->sin_port));
}

static const char *netid_of(const struct usock_socket_info *row)
{
    if (row->type == SOCK_STREAM)
        return "tcp";
    if (row->type == SOCK_RAW)
        return "raw";
    if (row->protocol == IPPROTO_ICMP)
        return "icmp"; /* a datagram ICMP (ping) socket */
    return "udp";
}

static void control_answer(struct usock_stack *stack, const char *command, struct text *out)
{
    if (strcmp(command, "stats") == 0) {
        for (size_t i = 0; i < usock_stack_counter_count(); i++)
            text_append(out, "%s %llu\n", usock_stack_counter_name(i),
                        (unsigned long long)usock_stack_counter_value(stack, i));
        return;
    }
    if (strcmp(command, "ss") == 0) {
        size_t count = usock_stack_sockets(stack, NULL, 0);
        struct usock_socket_info *rows = calloc(count + 16, sizeof(*rows));
        if (!rows)
            return;
        count = usock_stack_sockets(stack, rows, count + 16);
        for (size_t i = 0; i < count; i++) {
            char local[64], peer[64];
            format_endpoint(local, sizeof(local), &rows[i].local, false);
            format_endpoint(peer, sizeof(peer), &rows[i].peer, true);
            text_append(out, "%s\t%s\t%d\t%zu\t%zu\t%s\t%s\t%s", netid_of(&rows[i]),
                        rows[i].state, rows[i].listening, rows[i].receive_queue,
                        rows[i].send_queue, local, peer, rows[i].details);
            /* The owners' process ids ("PID[,PID...]"), only for a
             * socket attached programs hold: other lines stay as they
             * always were. */
            for (int k = 0; k < rows[i].owner_pid_count; k++)
                text_append(out, "%s%d", k == 0 ? "\t" : ",", rows[i].owner_pids[k]);
            text_append(out, "\n");
        }
        free(rows);
        return;
    }
    text_append(out, "error unknown command\n");
}

char *control_reply(struct usock_stack *stack, const char *request, size_t length,
                    size_t *reply_length)
{
    char line[CONTROL_REQUEST_MAX + 1];
    if (length > CONTROL_REQUEST_MAX)
        length = CONTROL_REQUEST_MAX;
    if (length > 0)
        memcpy(line, request, length);
    line[length] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    struct text answer = {0};
    control_answer(stack, line, &answer);
    *reply_length = answer.length;
    return answer.data;
}

static void control_serve_client(struct usock_stack *stack, int client)
{
    struct timeval timeout = {.tv_sec = 2};
    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    char request[CONTROL_REQUEST_MAX];
    size_t length = 0;
    while (length < sizeof(request)) {
        ssize_t got = read(client, request + length, sizeof(request) - length);
        if (got <= 0)
            break;
        length += (size_t)got;
        if (memchr(request, '\n', length))
            break;
    }
    size_t answer_length;
    char *answer = control_reply(stack, request, length, &answer_length);
    size_t sent = 0;
    while (sent < answer_length) {
        ssize_t wrote = write(client, answer + sent, answer_length - sent);
        if (wrote <= 0)
            break;
        sent += (size_t)wrote;
    }
    free(answer);
}

static void *control_thread_main(void *argument)
{
    struct usock_stack *stack = argument;
    for (;;) {
        struct pollfd fds[2] = {{.fd = stack->control_fd, .events = POLLIN},
                                {.fd = stack->control_stop_fd, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[1].revents)
            break;
        int client = accept4(stack->control_fd, NULL, NULL, SOCK_CLOEXEC);
        if (client < 0)
            continue;
        control_serve_client(stack, client);
        close(client);
    }
    return NULL;
}

int usock_stack_serve_control(struct usock_stack *stack, const char *path)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (stack->remote)
        return -EINVAL; /* an attached handle serves nothing */
    if (!path || strlen(path) >= sizeof(address.sun_path))
        return -ENAMETOOLONG;
    if (stack->control_running)
        return -EALREADY;
    strcpy(address.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(fd, 16) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    stack->control_stop_fd = eventfd(0, EFD_CLOEXEC);
    if (stack->control_stop_fd < 0) {
        int error = errno;
        close(fd);
        unlink(path);
        return -error;
    }
    stack->control_fd = fd;
    snprintf(stack->control_path, sizeof(stack->control_path), "%s", path);
    int error = pthread_create(&stack->control_thread, NULL, control_thread_main, stack);
    if (error) {
        close(fd);
        close(stack->control_stop_fd);
        stack->control_fd = stack->control_stop_fd = -1;
        unlink(path);
        return -error;
    }
    stack->control_running = true;
    return 0;
}

void stack_control_stop(struct usock_stack *stack)
{
    if (!stack->control_running)
        return;
    uint64_t one = 1;
    ssize_t written = write(stack->control_stop_fd, &one, sizeof(one));
    (void)written;
    pthread_join(stack->control_thread, NULL);
    close(stack->control_fd);
    close(stack->control_stop_fd);
    unlink(stack->control_path);
    stack->control_fd = stack->control_stop_fd = -1;
    stack->control_running = false;
}
