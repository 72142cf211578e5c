/*
 * server.c - the sockets API served to other processes: what usock_attach
 * talks to (protocol in remote/protocol.h).
 *
 * Theory of operation.  usock_stack_serve_api listens on a Unix
 * SOCK_SEQPACKET socket and starts one monitor thread, which
 *   - accepts connections (at most API_CONNECTIONS_MAX at once, and
 *     API_PROCESS_CONNECTIONS_MAX from one process; past that a
 *     newcomer gets one reply saying EAGAIN and is closed) and gives each
 *     its own connection thread, so a client blocked in accept() or recv(),
 *     or one that stops reading, holds up nobody but itself;
 *   - watches every connection for a hang-up (POLLHUP/POLLRDHUP), also
 *     while its thread is blocked inside a usock call: it then closes every
 *     descriptor of the client's session (api_close_owned), which wakes that
 *     call with EBADF, as a process's exit would;
 *   - closes and frees connections whose threads have finished (only the
 *     monitor closes a connection's descriptor, so no descriptor number is
 *     reused under a poll that still names it).
 * A connection thread reads one request, makes the usock call it names on
 * the stack (acting for the client's session: socket/api.h, so the client
 * reaches only its own descriptors, EBADF otherwise), and sends the reply
 * without waiting (MSG_DONTWAIT): a client has at most one request
 * outstanding per connection, so a reply that does not fit means the
 * client broke the protocol, and it is dropped.  Blocking calls are the
 * stack's own (SO_RCVTIMEO, MSG_WAITALL ... behave as in process);
 * usock_poll is the exception, issued in slices of API_POLL_SLICE_MS
 * between which the thread checks for a hang-up, since a poll need not
 * name any descriptor that closing could wake.
 *
 * Sessions: the first hello of a process makes one (its number is the
 * owner of its descriptors, its process id from SO_PEERCRED is shown by
 * ss -p); later connections join it with its token from the same process
 * id.  When any connection of a session ends its descriptors are closed
 * (the client only ever closes them all at once, when it detaches or
 * dies); the session goes when its last connection does.
 *
 * Locking: server->lock guards the connection and session lists; it is
 * never held across a usock call, and the stack lock is never held while
 * taking it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "remote/protocol.h"
#include "socket/api.h"
#include "stack.h"

/* Connections served at once (one thread each). */
#define API_CONNECTIONS_MAX 1024
/* Connections one process may hold at once, in all its sessions: one
 * client cannot take the server's whole room from the others. */
#define API_PROCESS_CONNECTIONS_MAX 128
/* Connections one session may hold (one per client thread in a call). */
#define API_SESSION_CONNECTIONS_MAX 128
/* How long a new connection may take to say hello. */
#define API_HELLO_TIMEOUT_S 2
/* How long one slice of a served poll lasts. */
#define API_POLL_SLICE_MS 100

struct api_session {
    struct api_session *next;
    uint32_t id;                 /* the owner of its descriptors */
    int32_t pid;
    uint8_t token[REMOTE_TOKEN_SIZE];
    unsigned connections;
    /* Made by REMOTE_FORK, its child not come yet: claimed by the first
     * hello that names its token with REMOTE_HELLO_FORKED, else closed by
     * the monitor REMOTE_FORK_CLAIM_S after made_ms. */
    bool awaiting_child;
    uint64_t made_ms;
    /* The client's gather region (protocol.h, "Gathering"), mapped read
     * only; gather_lock orders flushes and the drain at its end (after
     * which gather_drained is set and nothing more is sent from it). */
    pthread_mutex_t gather_lock;
    struct remote_gather_slot *gather;
    bool gather_drained;
    /* Threads using the session outside the server lock (the monitor
     * draining it); it is freed once unlinked with none left. */
    unsigned holds;
    bool unlinked;
};

struct api_connection {
    struct api_connection *next;
    struct api_server *server;
    struct api_session *session; /* NULL until hello */
    uint32_t id;                 /* named by REMOTE_CANCEL */
    /* A call in progress (server lock), on descriptor call_fd; cancel:
     * REMOTE_CANCEL asked it to end with EINTR (api_interrupt_by). */
    bool in_call;
    int32_t call_fd;
    atomic_bool cancel;
    int fd;
    int32_t pid;                 /* SO_PEERCRED */
    bool finished;               /* the thread is done: the monitor frees it */
    bool hung_up;                /* the monitor saw the hang-up */
    uint8_t *in;                 /* REMOTE_REQUEST_MAX */
    uint8_t *out;                /* REMOTE_REPLY_MAX */
    struct pollfd *polls;        /* REMOTE_POLL_MAX, made on first poll */
};

struct api_server {
    struct usock_stack *stack;
    char path[108];
    int listen_fd;
    int wake_fd;                 /* eventfd: a thread finished, or stop */
    pthread_t monitor;
    pthread_mutex_t lock;
    pthread_cond_t thread_done;
    atomic_bool stopping;
    unsigned threads;            /* connection threads running */
    unsigned awaiting_children;  /* sessions awaiting_child */
    struct api_connection *connections;
    struct api_session *sessions;
    uint32_t next_session_id;
    uint32_t next_connection_id;
};

static uint64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static void server_wake(struct api_server *server)
{
    uint64_t one = 1;
    ssize_t written = write(server->wake_fd, &one, sizeof(one));
    (void)written;
}

/* True when the client of connection fd hung up (checked without waiting). */
static bool connection_hung_up(int fd)
{
    struct pollfd entry = {.fd = fd, .events = POLLRDHUP};
    return poll(&entry, 1, 0) > 0 && (entry.revents & (POLLHUP | POLLERR | POLLRDHUP));
}

/* ---- requests ------------------------------------------------------- */

/* What one request handler sees: the request, its payload (borrowed from
 * the connection's input buffer, payload_length bytes checked to be what
 * the request says), and the reply with the room after it (the
 * connection's output buffer).  A handler fills the reply and returns how
 * many payload bytes follow it. */
struct api_call {
    struct api_connection *connection;
    int *descriptor;             /* one that rode along (SCM_RIGHTS), or -1;
                                  * a handler that keeps it sets -1 */
    struct usock_stack *stack;
    const struct remote_request *request;
    const uint8_t *payload;
    size_t payload_length;
    struct remote_reply *reply;
    uint8_t *reply_payload;      /* REMOTE_OPTION_MAX + REMOTE_DATA_MAX bytes */
};

/* The result of a usock call returning -1/errno or a value. */
static int64_t call_result(int64_t value)
{
    return value < 0 ? -(int64_t)errno : value;
}

static size_t serve_none(struct api_call *call)
{
    (void)call;
    return 0;
}

static size_t serve_socket(struct api_call *call)
{
    const int32_t *a = call->request->arguments;
    call->reply->result = call_result(usock_socket(call->stack, a[0], a[1], a[2]));
    return 0;
}

static size_t serve_close(struct api_call *call)
{
    call->reply->result = call_result(usock_close(call->stack, call->request->fd));
    return 0;
}

/* The request's address, or NULL when the caller passed none. */
static const struct sockaddr *request_address(const struct remote_request *request)
{
    return request->address_present ? (const struct sockaddr *)request->address : NULL;
}

static size_t serve_bind(struct api_call *call)
{
    const struct remote_request *r = call->request;
    call->reply->result =
        call_result(usock_bind(call->stack, r->fd, request_address(r), r->address_length));
    return 0;
}

static size_t serve_connect(struct api_call *call)
{
    const struct remote_request *r = call->request;
    call->reply->result =
        call_result(usock_connect(call->stack, r->fd, request_address(r), r->address_length));
    return 0;
}

static size_t serve_listen(struct api_call *call)
{
    const struct remote_request *r = call->request;
    call->reply->result = call_result(usock_listen(call->stack, r->fd, r->arguments[0]));
    return 0;
}

/* accept, getsockname, getpeername: an address out, into the reply. */
static size_t serve_address_out(struct api_call *call)
{
    const struct remote_request *r = call->request;
    struct sockaddr *address = (struct sockaddr *)call->reply->address;
    socklen_t length = r->address_length;
    socklen_t *length_pointer = r->address_present ? &length : NULL;
    if (!r->address_present)
        address = NULL;
    int result;
    if (r->operation == REMOTE_ACCEPT)
        result = usock_accept(call->stack, r->fd, address, length_pointer);
    else if (r->operation == REMOTE_GETSOCKNAME)
        result = usock_getsockname(call->stack, r->fd, address, length_pointer);
    else
        result = usock_getpeername(call->stack, r->fd, address, length_pointer);
    call->reply->result = call_result(result);
    call->reply->address_length = length;
    return 0;
}

static size_t serve_shutdown(struct api_call *call)
{
    const struct remote_request *r = call->request;
    call->reply->result = call_result(usock_shutdown(call->stack, r->fd, r->arguments[0]));
    return 0;
}

static size_t serve_send(struct api_call *call)
{
    const struct remote_request *r = call->request;
    /* Only a stream may be sent in pieces; a datagram this large is
     * EMSGSIZE, as Linux says for one over 65507 bytes. */
    if (r->total_length > r->data_length) {
        int type = 0;
        socklen_t length = sizeof(type);
        if (usock_getsockopt(call->stack, r->fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0) {
            call->reply->result = -errno;
            return 0;
        }
        if (type != SOCK_STREAM) {
            call->reply->result = -EMSGSIZE;
            return 0;
        }
    }
    struct iovec vector = {.iov_base = (void *)(call->payload + r->value_length),
                           .iov_len = r->data_length};
    struct msghdr message = {
        .msg_name = (void *)request_address(r),
        .msg_namelen = r->address_present ? r->address_length : 0,
        .msg_iov = &vector,
        .msg_iovlen = 1,
        .msg_control = r->value_length ? (void *)call->payload : NULL,
        .msg_controllen = r->value_length,
    };
    call->reply->result = call_result(usock_sendmsg(call->stack, r->fd, &message, r->arguments[0]));
    call->reply->send_room = call->reply->result >= 0 && !r->address_present && !r->value_length
                                 ? (int32_t)api_send_room(call->stack, r->fd)
                                 : -1;
    return 0;
}

static size_t serve_receive(struct api_call *call)
{
    const struct remote_request *r = call->request;
    size_t control_room = r->value_length;
    struct iovec vector = {.iov_base = call->reply_payload + control_room,
                           .iov_len = r->data_length};
    struct msghdr message = {
        .msg_name = r->address_present ? call->reply->address : NULL,
        .msg_namelen = r->address_present ? r->address_length : 0,
        .msg_iov = &vector,
        .msg_iovlen = 1,
        .msg_control = control_room ? call->reply_payload : NULL,
        .msg_controllen = control_room,
    };
    ssize_t result = usock_recvmsg(call->stack, r->fd, &message, r->arguments[0]);
    call->reply->result = call_result(result);
    if (result < 0)
        return 0;
    call->reply->flags = message.msg_flags;
    call->reply->address_length = r->address_present ? message.msg_namelen : 0;
    call->reply->value_length = control_room ? (uint32_t)message.msg_controllen : 0;
    /* MSG_TRUNC may answer more than fitted; only what fitted travels. */
    size_t data = (size_t)result < r->data_length ? (size_t)result : r->data_length;
    call->reply->data_length = (uint32_t)data;
    /* The control area always takes the room asked for, so the data lands
     * in the client's buffers and not in its control area. */
    if (control_room > message.msg_controllen)
        memset(call->reply_payload + message.msg_controllen, 0,
               control_room - message.msg_controllen);
    return control_room + data;
}

static size_t serve_setsockopt(struct api_call *call)
{
    const struct remote_request *r = call->request;
    const int32_t *a = r->arguments;
    const void *value = r->value_present ? call->payload : NULL;
    call->reply->result =
        call_result(usock_setsockopt(call->stack, r->fd, a[0], a[1], value, r->value_length));
    return 0;
}

static size_t serve_getsockopt(struct api_call *call)
{
    const struct remote_request *r = call->request;
    const int32_t *a = r->arguments;
    /* A negative room is passed as it is, for the EINVAL it earns; any
     * other is at most the value area. */
    socklen_t room = (socklen_t)a[2];
    if (a[2] >= 0 && room > REMOTE_OPTION_MAX)
        room = REMOTE_OPTION_MAX;
    socklen_t length = room;
    int result = usock_getsockopt(call->stack, r->fd, a[0], a[1],
                                  r->value_present ? call->reply_payload : NULL,
                                  r->value_present ? &length : NULL);
    call->reply->result = call_result(result);
    if (result < 0)
        return 0;
    size_t bytes = length < room ? length : room;
    call->reply->value_length = length;
    return bytes;
}

static size_t serve_fcntl(struct api_call *call)
{
    const struct remote_request *r = call->request;
    call->reply->result =
        call_result(usock_fcntl(call->stack, r->fd, r->arguments[0], r->arguments[1]));
    return 0;
}

static size_t serve_dup(struct api_call *call)
{
    call->reply->result = call_result(usock_dup(call->stack, call->request->fd));
    return 0;
}

static struct api_session *session_new(struct api_server *server);
static void session_unlink(struct api_server *server, struct api_session *session);
static void session_free(struct api_session *session);
static bool session_token_is(const struct api_session *session, const uint8_t *token);

/* Before the client forks: a session for the child, holding a descriptor
 * of its own for each of the client's (protocol.h, "Fork"). */
static size_t serve_fork(struct api_call *call)
{
    struct api_server *server = call->connection->server;
    int32_t *pairs = (int32_t *)(call->reply_payload + REMOTE_TOKEN_SIZE);
    pthread_mutex_lock(&server->lock);
    struct api_session *child = session_new(server);
    if (child) {
        child->awaiting_child = true;
        child->made_ms = monotonic_ms();
        server->awaiting_children++;
    }
    pthread_mutex_unlock(&server->lock);
    if (!child) {
        call->reply->result = -ENOMEM;
        return 0;
    }
    int count = api_share_owned(call->stack, call->connection->session->id, child->id, pairs,
                                REMOTE_FORK_MAX);
    if (count < 0) {
        pthread_mutex_lock(&server->lock);
        session_unlink(server, child);
        server->awaiting_children--;
        pthread_mutex_unlock(&server->lock);
        session_free(child);
        call->reply->result = count == -E2BIG ? -EMFILE : count;
        return 0;
    }
    /* The monitor learns of a session to time out. */
    server_wake(server);
    memcpy(call->reply_payload, child->token, REMOTE_TOKEN_SIZE);
    call->reply->result = count;
    call->reply->value_length = REMOTE_TOKEN_SIZE;
    call->reply->data_length = (uint32_t)count * 2 * sizeof(int32_t);
    return REMOTE_TOKEN_SIZE + call->reply->data_length;
}

/* Maps the client's gather region, which came along as a sealed memfd. */
static size_t serve_gather_setup(struct api_call *call)
{
    struct api_session *session = call->connection->session;
    int fd = *call->descriptor;
    struct stat status;
    int seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
    if (fd < 0 || fstat(fd, &status) < 0 || (size_t)status.st_size != REMOTE_GATHER_REGION ||
        seals < 0 || !(seals & F_SEAL_SHRINK)) {
        call->reply->result = -EINVAL; /* one that could shrink would fault us */
        return 0;
    }
    /* Writable: the server takes what it sent out of a slot (serve_flush). */
    void *region = mmap(NULL, REMOTE_GATHER_REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (region == MAP_FAILED) {
        call->reply->result = -errno;
        return 0;
    }
    pthread_mutex_lock(&session->gather_lock);
    bool taken = session->gather != NULL || session->gather_drained;
    if (!taken)
        session->gather = region;
    pthread_mutex_unlock(&session->gather_lock);
    if (taken)
        munmap(region, REMOTE_GATHER_REGION);
    call->reply->result = taken ? -EEXIST : 0;
    return 0;
}

/* Sends what a gather slot holds to the request's descriptor, waiting
 * for room as a blocking send would (the client only gathers what the
 * stack said it had room for, so it rarely waits).  What went is taken out
 * of the slot here, under the session's gather lock, so the drain at the
 * client's death never sends it again; the lock is not held while waiting
 * (in slices, between which the thread looks for a hang-up, the server
 * stopping, or the drain having come). */
static size_t serve_flush(struct api_call *call)
{
    const struct remote_request *r = call->request;
    struct api_session *session = call->connection->session;
    int32_t slot_index = r->arguments[0];
    call->reply->send_room = -1;
    if (slot_index < 0 || slot_index >= REMOTE_GATHER_SLOTS) {
        call->reply->result = -EINVAL;
        return 0;
    }
    size_t sent = 0;
    int error = 0;
    bool emptied = false;
    for (;;) {
        pthread_mutex_lock(&session->gather_lock);
        if (!session->gather || session->gather_drained) {
            pthread_mutex_unlock(&session->gather_lock);
            error = sent ? 0 : EINVAL;
            break;
        }
        struct remote_gather_slot *slot = &session->gather[slot_index];
        uint32_t length = __atomic_load_n(&slot->length, __ATOMIC_ACQUIRE);
        if (length > REMOTE_GATHER_BYTES)
            length = REMOTE_GATHER_BYTES;
        ssize_t now = length ? usock_send(call->stack, r->fd, slot->data, length,
                                          MSG_DONTWAIT | MSG_NOSIGNAL)
                             : 0;
        int send_error = now < 0 ? errno : 0;
        if (now > 0) {
            sent += (size_t)now;
            length -= (uint32_t)now;
            memmove(slot->data, slot->data + now, length);
            __atomic_store_n(&slot->length, length, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&session->gather_lock);
        if (length == 0) {
            emptied = true;
            break;
        }
        if (send_error && send_error != EAGAIN) {
            error = send_error;
            break;
        }
        if (atomic_load(&call->connection->server->stopping) ||
            connection_hung_up(call->connection->fd)) {
            error = ECONNABORTED;
            break;
        }
        struct pollfd writable = {.fd = r->fd, .events = POLLOUT};
        usock_poll(call->stack, &writable, 1, API_POLL_SLICE_MS);
    }
    call->reply->result = sent > 0 ? (int64_t)sent : error ? -error : 0;
    if (emptied) {
        long room = api_send_room(call->stack, r->fd);
        call->reply->send_room = room > INT32_MAX ? INT32_MAX : (int32_t)room;
    }
    return 0;
}

/* A REMOTE_FORK whose child will never come (fork or exec failed): its
 * session's descriptors are closed now rather than after the wait. */
static size_t serve_fork_abandon(struct api_call *call)
{
    struct api_server *server = call->connection->server;
    struct api_session *abandoned = NULL;
    pthread_mutex_lock(&server->lock);
    for (struct api_session *s = server->sessions; s; s = s->next) {
        if (s->awaiting_child && session_token_is(s, call->payload)) {
            abandoned = s;
            break;
        }
    }
    if (abandoned) {
        session_unlink(server, abandoned);
        server->awaiting_children--;
    }
    pthread_mutex_unlock(&server->lock);
    if (abandoned) {
        api_close_owned(server->stack, abandoned->id);
        session_free(abandoned);
    }
    call->reply->result = abandoned ? 0 : -ESRCH;
    return 0;
}

/* Ends another call of the same session with EINTR, if it is still in
 * progress: its client's thread was interrupted by a signal. */
static size_t serve_cancel(struct api_call *call)
{
    struct api_server *server = call->connection->server;
    uint32_t target = (uint32_t)call->request->arguments[0];
    int32_t fd = -1;
    bool found = false;
    pthread_mutex_lock(&server->lock);
    for (struct api_connection *c = server->connections; c; c = c->next) {
        if (c->id == target && c->session == call->connection->session && c->in_call &&
            c != call->connection) {
            atomic_store(&c->cancel, true);
            fd = c->call_fd;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&server->lock);
    if (found)
        api_interrupt(call->stack, fd);
    call->reply->result = found ? 0 : -ESRCH;
    return 0;
}

static size_t serve_ioctl(struct api_call *call)
{
    const struct remote_request *r = call->request;
    int argument = r->arguments[1];
    unsigned long request = (uint32_t)r->arguments[0];
    int result =
        usock_ioctl(call->stack, r->fd, request, r->value_present ? &argument : NULL);
    call->reply->result = call_result(result);
    call->reply->flags = argument; /* FIONREAD, SIOCATMARK: the int out */
    return 0;
}

/* A poll, in slices; between them the thread looks for its client's
 * hang-up and for the server stopping (then the call is abandoned:
 * -ECONNABORTED, which ends the connection). */
static size_t serve_poll(struct api_call *call)
{
    const struct remote_request *r = call->request;
    struct api_connection *connection = call->connection;
    size_t count = (size_t)r->arguments[0];
    int timeout_ms = r->arguments[1];
    if (!connection->polls) {
        connection->polls = calloc(REMOTE_POLL_MAX, sizeof(*connection->polls));
        if (!connection->polls) {
            call->reply->result = -ENOMEM;
            return 0;
        }
    }
    struct pollfd *fds = connection->polls;
    const struct remote_pollfd *entries = (const struct remote_pollfd *)call->payload;
    for (size_t i = 0; i < count; i++) {
        fds[i].fd = entries[i].fd;
        fds[i].events = entries[i].events;
        fds[i].revents = 0;
    }
    uint64_t started = monotonic_ms();
    int ready;
    for (;;) {
        int slice = API_POLL_SLICE_MS;
        if (timeout_ms >= 0) {
            uint64_t elapsed = monotonic_ms() - started;
            uint64_t left = elapsed >= (uint64_t)timeout_ms ? 0 : (uint64_t)timeout_ms - elapsed;
            if (left < (uint64_t)slice)
                slice = (int)left;
        }
        uint64_t slice_started = monotonic_ms();
        ready = usock_poll(call->stack, fds, count, slice);
        if (ready != 0 || slice == 0)
            break;
        if (atomic_load(&connection->cancel)) {
            call->reply->result = -EINTR;
            return 0;
        }
        if (atomic_load(&connection->server->stopping) || connection_hung_up(connection->fd)) {
            call->reply->result = -ECONNABORTED;
            return 0;
        }
        /* A stack not running its thread answers at once: do not spin. */
        if (monotonic_ms() - slice_started < (uint64_t)slice / 2) {
            struct timespec pause = {.tv_nsec = 10 * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
    call->reply->result = call_result(ready);
    if (ready < 0)
        return 0;
    struct remote_pollfd *out = (struct remote_pollfd *)call->reply_payload;
    for (size_t i = 0; i < count; i++)
        out[i] = (struct remote_pollfd){.fd = fds[i].fd, .events = fds[i].events,
                                        .revents = fds[i].revents};
    call->reply->data_length = (uint32_t)(count * sizeof(*out));
    return count * sizeof(*out);
}

typedef size_t (*api_handler)(struct api_call *call);

/* The handler of each operation (hello is answered before the table). */
static const api_handler api_handlers[REMOTE_OPERATION_COUNT] = {
    [0] = serve_none,
    [REMOTE_HELLO] = serve_none,
    [REMOTE_SOCKET] = serve_socket,
    [REMOTE_CLOSE] = serve_close,
    [REMOTE_BIND] = serve_bind,
    [REMOTE_CONNECT] = serve_connect,
    [REMOTE_LISTEN] = serve_listen,
    [REMOTE_ACCEPT] = serve_address_out,
    [REMOTE_SHUTDOWN] = serve_shutdown,
    [REMOTE_SEND] = serve_send,
    [REMOTE_RECEIVE] = serve_receive,
    [REMOTE_GETSOCKNAME] = serve_address_out,
    [REMOTE_GETPEERNAME] = serve_address_out,
    [REMOTE_SETSOCKOPT] = serve_setsockopt,
    [REMOTE_GETSOCKOPT] = serve_getsockopt,
    [REMOTE_FCNTL] = serve_fcntl,
    [REMOTE_IOCTL] = serve_ioctl,
    [REMOTE_POLL] = serve_poll,
    [REMOTE_DUP] = serve_dup,
    [REMOTE_FORK] = serve_fork,
    [REMOTE_GATHER_SETUP] = serve_gather_setup,
    [REMOTE_FLUSH] = serve_flush,
    [REMOTE_CANCEL] = serve_cancel,
    [REMOTE_FORK_ABANDON] = serve_fork_abandon,
};
static_assert(sizeof(api_handlers) / sizeof(api_handlers[0]) == REMOTE_OPERATION_COUNT,
              "a handler for each operation");

/* Checks that request's lengths are within bounds and that the payload
 * (payload_length bytes) is exactly what they announce.  Returns 0 or
 * -EINVAL. */
static int request_check(const struct remote_request *r, size_t payload_length)
{
    if (r->operation == 0 || r->operation >= REMOTE_OPERATION_COUNT)
        return -EINVAL;
    if (r->address_length > REMOTE_ADDRESS_MAX)
        return -EINVAL;
    size_t expected = 0;
    switch ((enum remote_operation)r->operation) {
    case REMOTE_HELLO:
        if (r->value_length != 0 && r->value_length != REMOTE_TOKEN_SIZE)
            return -EINVAL;
        if (r->arguments[1] != REMOTE_HELLO_JOIN &&
            (r->arguments[1] != REMOTE_HELLO_FORKED || r->value_length == 0))
            return -EINVAL;
        expected = r->value_length;
        break;
    case REMOTE_FORK_ABANDON:
        if (r->value_length != REMOTE_TOKEN_SIZE)
            return -EINVAL;
        expected = r->value_length;
        break;
    case REMOTE_SEND:
        if (r->value_length > REMOTE_CONTROL_MAX || r->data_length > REMOTE_DATA_MAX ||
            r->total_length < r->data_length)
            return -EINVAL;
        expected = (size_t)r->value_length + r->data_length;
        break;
    case REMOTE_RECEIVE:
        if (r->value_length > REMOTE_CONTROL_MAX || r->data_length > REMOTE_DATA_MAX)
            return -EINVAL;
        break;
    case REMOTE_SETSOCKOPT:
        if (r->value_length > REMOTE_OPTION_MAX)
            return -EINVAL;
        expected = r->value_length;
        break;
    case REMOTE_POLL:
        if (r->arguments[0] < 0 || r->arguments[0] > REMOTE_POLL_MAX)
            return -EINVAL;
        expected = (size_t)r->arguments[0] * sizeof(struct remote_pollfd);
        break;
    default:
        break;
    }
    return payload_length == expected ? 0 : -EINVAL;
}

/* ---- sessions ------------------------------------------------------- */

/* A new session with a fresh number and random token, on the server's
 * list (server lock held).  NULL when out of memory or randomness. */
static struct api_session *session_new(struct api_server *server)
{
    struct api_session *session = calloc(1, sizeof(*session));
    if (session && getrandom(session->token, sizeof(session->token), 0) !=
                       (ssize_t)sizeof(session->token)) {
        free(session);
        session = NULL;
    }
    if (session) {
        pthread_mutex_init(&session->gather_lock, NULL);
        if (++server->next_session_id == 0)
            server->next_session_id = 1;
        session->id = server->next_session_id;
        session->next = server->sessions;
        server->sessions = session;
    }
    return session;
}

/* Takes session off the server's list (server lock held). */
static void session_unlink(struct api_server *server, struct api_session *session)
{
    session->unlinked = true;
    for (struct api_session **link = &server->sessions; *link; link = &(*link)->next) {
        if (*link == session) {
            *link = session->next;
            return;
        }
    }
}

static void session_free(struct api_session *session)
{
    if (session->gather)
        munmap((void *)session->gather, REMOTE_GATHER_REGION);
    pthread_mutex_destroy(&session->gather_lock);
    free(session);
}

/* The client of session is gone: sends what its gather slots still hold,
 * as the kernel sends what a dead process's sockets held, before its
 * descriptors are closed.  The calling thread acts for the session
 * meanwhile, then for (owner, pid). */
static void session_drain(struct api_server *server, struct api_session *session,
                          uint32_t owner, int32_t pid)
{
    pthread_mutex_lock(&session->gather_lock);
    if (session->gather && !session->gather_drained) {
        api_act_for(session->id, session->pid);
        for (size_t i = 0; i < REMOTE_GATHER_SLOTS; i++) {
            struct remote_gather_slot *slot = &session->gather[i];
            uint32_t length = __atomic_load_n(&slot->length, __ATOMIC_ACQUIRE);
            if (length > 0 && length <= REMOTE_GATHER_BYTES)
                (void)usock_send(server->stack, slot->fd, slot->data, length,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
            __atomic_store_n(&slot->length, 0, __ATOMIC_RELEASE);
        }
        api_act_for(owner, pid);
    }
    session->gather_drained = true;
    pthread_mutex_unlock(&session->gather_lock);
}

/* Drains session (a hold on it taken under the server lock) and closes
 * its descriptors, then lets go of the hold, freeing it when it was the
 * last thing keeping it. */
static void session_end_and_release(struct api_server *server, struct api_session *session,
                                    uint32_t owner, int32_t pid)
{
    session_drain(server, session, owner, pid);
    api_close_owned(server->stack, session->id);
    pthread_mutex_lock(&server->lock);
    bool free_now = --session->holds == 0 && session->unlinked;
    pthread_mutex_unlock(&server->lock);
    if (free_now)
        session_free(session);
}

/* True when session's token is token (compared in constant time). */
static bool session_token_is(const struct api_session *session, const uint8_t *token)
{
    unsigned differ = 0;
    for (size_t i = 0; i < REMOTE_TOKEN_SIZE; i++)
        differ |= session->token[i] ^ token[i];
    return differ == 0;
}

/* Answers a hello: makes a session, or joins the one whose token the
 * client names, made by the same process.  Returns the session number
 * (> 0) or -errno. */
static int64_t connection_hello(struct api_connection *connection,
                                const struct remote_request *request, const uint8_t *token,
                                uint8_t *token_out)
{
    struct api_server *server = connection->server;
    if (request->arguments[0] != REMOTE_PROTOCOL_VERSION)
        return -EPROTONOSUPPORT;
    struct api_session *session = NULL;
    uint32_t claimed = 0;
    int64_t result;
    pthread_mutex_lock(&server->lock);
    if (request->value_length == REMOTE_TOKEN_SIZE &&
        request->arguments[1] == REMOTE_HELLO_FORKED) {
        /* A forked child claims what its parent shared with it, once. */
        result = -EACCES;
        for (session = server->sessions; session; session = session->next) {
            if (session->awaiting_child && session_token_is(session, token))
                break;
        }
        if (session) {
            session->awaiting_child = false;
            server->awaiting_children--;
            session->pid = connection->pid;
            claimed = session->id;
        }
    } else if (request->value_length == REMOTE_TOKEN_SIZE) {
        result = -EACCES;
        for (session = server->sessions; session; session = session->next) {
            if (!session->awaiting_child && session_token_is(session, token) &&
                session->pid == connection->pid)
                break;
        }
        if (session && session->connections >= API_SESSION_CONNECTIONS_MAX) {
            result = -EAGAIN;
            session = NULL;
        }
    } else {
        result = -ENOMEM;
        session = session_new(server);
        if (session)
            session->pid = connection->pid;
    }
    if (session) {
        session->connections++;
        connection->session = session;
        memcpy(token_out, session->token, REMOTE_TOKEN_SIZE);
        result = session->id;
    }
    pthread_mutex_unlock(&server->lock);
    if (claimed)
        api_set_owner_pid(server->stack, claimed, connection->pid);
    return result;
}

/* The connection is over: its session's descriptors are closed (any
 * connection ending means the client detached or died), and the session
 * goes with its last connection. */
static void connection_leave_session(struct api_connection *connection)
{
    struct api_server *server = connection->server;
    struct api_session *session = connection->session;
    if (!session)
        return;
    pthread_mutex_lock(&server->lock);
    if (--session->connections == 0)
        session_unlink(server, session);
    session->holds++;
    connection->session = NULL;
    pthread_mutex_unlock(&server->lock);
    session_end_and_release(server, session, session->id, session->pid);
}

/* ---- connection threads ------------------------------------------- */

/* The first descriptor that rode along with message (SCM_RIGHTS), or -1;
 * any others are closed, and so is everything when the control data was
 * cut short. */
static int descriptor_received(struct msghdr *message)
{
    int kept = -1;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(message); header;
         header = CMSG_NXTHDR(message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
            if (kept < 0 && !(message->msg_flags & MSG_CTRUNC))
                kept = fd;
            else
                close(fd);
        }
    }
    return kept;
}

/* Sends the reply in connection->out (header and payload_length bytes).
 * Returns false when the client cannot take it: it hung up, or left
 * replies unread. */
static bool connection_reply(struct api_connection *connection, size_t payload_length)
{
    size_t length = sizeof(struct remote_reply) + payload_length;
    ssize_t sent;
    do
        sent = send(connection->fd, connection->out, length, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    return sent == (ssize_t)length;
}

/* Serves one client until it hangs up, breaks the protocol, or the server
 * stops. */
static void connection_serve(struct api_connection *connection)
{
    struct api_server *server = connection->server;
    struct timeval hello_timeout = {.tv_sec = API_HELLO_TIMEOUT_S};
    setsockopt(connection->fd, SOL_SOCKET, SO_RCVTIMEO, &hello_timeout, sizeof(hello_timeout));
    while (!atomic_load(&server->stopping)) {
        struct iovec vector = {.iov_base = connection->in, .iov_len = REMOTE_REQUEST_MAX};
        union {
            struct cmsghdr header;
            uint8_t bytes[CMSG_SPACE(4 * sizeof(int))];
        } control;
        struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1,
                                 .msg_control = &control, .msg_controllen = sizeof(control)};
        ssize_t got = recvmsg(connection->fd, &message, MSG_CMSG_CLOEXEC);
        if (got < 0 && errno == EINTR)
            continue;
        int descriptor = descriptor_received(&message);
        if (got <= 0) {
            if (descriptor >= 0)
                close(descriptor);
            return;
        }
        struct remote_reply *reply = (struct remote_reply *)connection->out;
        memset(reply, 0, sizeof(*reply));
        size_t payload_length = 0;
        struct remote_request request;
        if ((size_t)got < sizeof(request) || (message.msg_flags & MSG_TRUNC)) {
            if (descriptor >= 0)
                close(descriptor);
            reply->result = (message.msg_flags & MSG_TRUNC) ? -EMSGSIZE : -EINVAL;
            if (!connection_reply(connection, 0) || !connection->session)
                return;
            continue;
        }
        memcpy(&request, connection->in, sizeof(request));
        const uint8_t *payload = connection->in + sizeof(request);
        size_t length = (size_t)got - sizeof(request);
        int error = request_check(&request, length);
        if (error < 0) {
            reply->result = error;
        } else if (request.operation == REMOTE_HELLO || !connection->session) {
            if (request.operation != REMOTE_HELLO || connection->session) {
                reply->result = -EINVAL; /* hello first, and once */
            } else {
                reply->result = connection_hello(connection, &request, payload,
                                                 connection->out + sizeof(*reply));
                if (reply->result > 0) {
                    reply->value_length = REMOTE_TOKEN_SIZE;
                    reply->flags = (int32_t)connection->id;
                    payload_length = REMOTE_TOKEN_SIZE;
                    api_interrupt_by(&connection->cancel);
                    struct timeval forever = {0};
                    setsockopt(connection->fd, SOL_SOCKET, SO_RCVTIMEO, &forever,
                               sizeof(forever));
                    api_act_for(connection->session->id, connection->session->pid);
                }
            }
        } else {
            struct api_call call = {
                .connection = connection,
                .descriptor = &descriptor,
                .stack = server->stack,
                .request = &request,
                .payload = payload,
                .payload_length = length,
                .reply = reply,
                .reply_payload = connection->out + sizeof(*reply),
            };
            pthread_mutex_lock(&server->lock);
            connection->in_call = true;
            connection->call_fd = request.fd;
            pthread_mutex_unlock(&server->lock);
            payload_length = api_handlers[request.operation](&call);
            pthread_mutex_lock(&server->lock);
            connection->in_call = false;
            atomic_store(&connection->cancel, false);
            pthread_mutex_unlock(&server->lock);
            if (reply->result == -ECONNABORTED &&
                (request.operation == REMOTE_POLL || request.operation == REMOTE_FLUSH)) {
                if (descriptor >= 0)
                    close(descriptor);
                return;
            }
        }
        if (descriptor >= 0)
            close(descriptor); /* kept by no handler */
        if (!connection_reply(connection, payload_length))
            return;
        if (!connection->session)
            return; /* a refused hello ends the connection */
    }
}

static void *connection_main(void *argument)
{
    struct api_connection *connection = argument;
    struct api_server *server = connection->server;
    connection_serve(connection);
    connection_leave_session(connection);
    api_act_for(0, 0);
    api_interrupt_by(NULL);
    /* Nothing of server is touched after the unlock: stack_api_stop
     * frees it once the count reaches zero. */
    pthread_mutex_lock(&server->lock);
    connection->finished = true;
    server->threads--;
    server_wake(server);
    pthread_cond_broadcast(&server->thread_done);
    pthread_mutex_unlock(&server->lock);
    return NULL;
}

/* Refuses a connection past the limit with one reply (-EAGAIN). */
static void connection_refuse(int fd)
{
    struct remote_reply reply = {.result = -EAGAIN};
    ssize_t sent = send(fd, &reply, sizeof(reply), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)sent;
    close(fd);
}

static void connection_free(struct api_connection *connection)
{
    close(connection->fd);
    free(connection->in);
    free(connection->out);
    free(connection->polls);
    free(connection);
}

/* Takes a new connection and starts its thread (monitor thread). */
static void server_admit(struct api_server *server)
{
    int fd = accept4(server->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) {
        close(fd);
        return;
    }
    pthread_mutex_lock(&server->lock);
    bool full = server->threads >= API_CONNECTIONS_MAX;
    unsigned from_process = 0;
    for (struct api_connection *c = server->connections; c && !full; c = c->next)
        from_process += !c->finished && c->pid == credentials.pid;
    full = full || from_process >= API_PROCESS_CONNECTIONS_MAX;
    pthread_mutex_unlock(&server->lock);
    if (full) {
        connection_refuse(fd);
        return;
    }
    struct api_connection *connection = calloc(1, sizeof(*connection));
    /* Zeroed: a reply never carries bytes another client left in memory. */
    if (connection) {
        connection->in = calloc(1, REMOTE_REQUEST_MAX);
        connection->out = calloc(1, REMOTE_REPLY_MAX);
    }
    if (!connection || !connection->in || !connection->out) {
        if (connection) {
            free(connection->in);
            free(connection->out);
            free(connection);
        }
        connection_refuse(fd);
        return;
    }
    connection->server = server;
    connection->fd = fd;
    connection->pid = credentials.pid;
    atomic_init(&connection->cancel, false);
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    pthread_mutex_lock(&server->lock);
    if (++server->next_connection_id == 0)
        server->next_connection_id = 1;
    connection->id = server->next_connection_id;
    int error = pthread_create(&thread, &attributes, connection_main, connection);
    if (error == 0) {
        server->threads++;
        connection->next = server->connections;
        server->connections = connection;
    }
    pthread_mutex_unlock(&server->lock);
    pthread_attr_destroy(&attributes);
    if (error) {
        free(connection->in);
        free(connection->out);
        free(connection);
        connection_refuse(fd);
    }
}

/* ---- the monitor ---------------------------------------------------- */

/* Frees finished connections (server lock held). */
static void server_reap(struct api_server *server)
{
    struct api_connection **link = &server->connections;
    while (*link) {
        struct api_connection *connection = *link;
        if (connection->finished) {
            *link = connection->next;
            connection_free(connection);
        } else {
            link = &connection->next;
        }
    }
}

/* Closes the descriptors of sessions REMOTE_FORK made whose child has not
 * come within REMOTE_FORK_CLAIM_S (all of them when everything), and frees
 * them.  Returns how many still wait. */
static unsigned server_expire_forks(struct api_server *server, bool everything)
{
    uint64_t now = monotonic_ms();
    for (;;) {
        struct api_session *expired = NULL;
        pthread_mutex_lock(&server->lock);
        for (struct api_session *s = server->sessions; s; s = s->next) {
            if (s->awaiting_child &&
                (everything || now - s->made_ms >= REMOTE_FORK_CLAIM_S * 1000ull)) {
                expired = s;
                break;
            }
        }
        if (expired) {
            session_unlink(server, expired);
            server->awaiting_children--;
        }
        unsigned waiting = server->awaiting_children;
        pthread_mutex_unlock(&server->lock);
        if (!expired)
            return waiting;
        api_close_owned(server->stack, expired->id);
        session_free(expired);
    }
}

static void *monitor_main(void *argument)
{
    struct api_server *server = argument;
    struct pollfd *fds = calloc(API_CONNECTIONS_MAX + 2, sizeof(*fds));
    struct api_connection **watched = calloc(API_CONNECTIONS_MAX, sizeof(*watched));
    while (fds && watched && !atomic_load(&server->stopping)) {
        size_t count = 0;
        fds[0] = (struct pollfd){.fd = server->listen_fd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = server->wake_fd, .events = POLLIN};
        pthread_mutex_lock(&server->lock);
        server_reap(server);
        for (struct api_connection *c = server->connections; c; c = c->next) {
            if (c->hung_up || count == API_CONNECTIONS_MAX)
                continue;
            watched[count] = c;
            fds[2 + count] = (struct pollfd){.fd = c->fd, .events = POLLRDHUP};
            count++;
        }
        pthread_mutex_unlock(&server->lock);
        /* Woken each second while a forked child is awaited. */
        int timeout_ms = server_expire_forks(server, false) > 0 ? 1000 : -1;
        if (poll(fds, 2 + count, timeout_ms) < 0)
            continue;
        if (fds[1].revents & POLLIN) {
            uint64_t value;
            ssize_t got = read(server->wake_fd, &value, sizeof(value));
            (void)got;
        }
        if (atomic_load(&server->stopping))
            break;
        /* Only this thread frees connections, so watched[] stays valid. */
        for (size_t i = 0; i < count; i++) {
            if (!(fds[2 + i].revents & (POLLHUP | POLLERR | POLLRDHUP)))
                continue;
            pthread_mutex_lock(&server->lock);
            watched[i]->hung_up = true;
            struct api_session *session = watched[i]->session;
            if (session)
                session->holds++;
            pthread_mutex_unlock(&server->lock);
            /* Sends what it gathered, then wakes the client's blocked
             * call, if any, with EBADF. */
            if (session)
                session_end_and_release(server, session, 0, 0);
        }
        if (fds[0].revents & POLLIN)
            server_admit(server);
    }
    free(fds);
    free(watched);
    return NULL;
}

/* ---- starting and stopping ----------------------------------------- */

int usock_stack_serve_api(struct usock_stack *stack, const char *path)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (stack->remote)
        return -EINVAL;
    if (!path || strlen(path) >= sizeof(address.sun_path))
        return -ENAMETOOLONG;
    pthread_mutex_lock(&stack->lock);
    bool running = stack->thread_running;
    bool serving = stack->api_server != NULL;
    pthread_mutex_unlock(&stack->lock);
    if (serving)
        return -EALREADY;
    if (!running)
        return -EINVAL; /* blocking calls need the stack's thread */
    struct api_server *server = calloc(1, sizeof(*server));
    if (!server)
        return -ENOMEM;
    server->stack = stack;
    snprintf(server->path, sizeof(server->path), "%s", path);
    pthread_mutex_init(&server->lock, NULL);
    pthread_cond_init(&server->thread_done, NULL);
    atomic_init(&server->stopping, false);
    int error;
    server->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (server->listen_fd < 0) {
        error = -errno;
        goto fail_free_server;
    }
    strcpy(address.sun_path, path);
    unlink(path);
    if (bind(server->listen_fd, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(server->listen_fd, 64) != 0) {
        error = -errno;
        goto fail_close_listener;
    }
    server->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (server->wake_fd < 0) {
        error = -errno;
        goto fail_unlink;
    }
    error = -pthread_create(&server->monitor, NULL, monitor_main, server);
    if (error)
        goto fail_close_wake;
    pthread_mutex_lock(&stack->lock);
    stack->api_server = server;
    pthread_mutex_unlock(&stack->lock);
    return 0;

fail_close_wake:
    close(server->wake_fd);
fail_unlink:
    unlink(path);
fail_close_listener:
    close(server->listen_fd);
fail_free_server:
    pthread_cond_destroy(&server->thread_done);
    pthread_mutex_destroy(&server->lock);
    free(server);
    return error;
}

void stack_api_stop(struct usock_stack *stack)
{
    pthread_mutex_lock(&stack->lock);
    struct api_server *server = stack->api_server;
    stack->api_server = NULL;
    pthread_mutex_unlock(&stack->lock);
    if (!server)
        return;
    atomic_store(&server->stopping, true);
    server_wake(server);
    pthread_join(server->monitor, NULL);
    close(server->listen_fd);
    unlink(server->path);
    /* Wake every connection thread: reads end (shutdown), blocked calls
     * end with EBADF (their sockets closed), polls see the stop flag.
     * Repeated, for a call that made a socket after the first sweep. */
    pthread_mutex_lock(&server->lock);
    while (server->threads > 0) {
        uint32_t owners[API_CONNECTIONS_MAX];
        size_t count = 0;
        for (struct api_connection *c = server->connections; c; c = c->next) {
            if (c->finished)
                continue;
            shutdown(c->fd, SHUT_RDWR);
            if (c->session && count < API_CONNECTIONS_MAX)
                owners[count++] = c->session->id;
        }
        pthread_mutex_unlock(&server->lock);
        for (size_t i = 0; i < count; i++)
            api_close_owned(stack, owners[i]);
        pthread_mutex_lock(&server->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (server->threads > 0)
            pthread_cond_timedwait(&server->thread_done, &server->lock, &until);
    }
    server_reap(server);
    pthread_mutex_unlock(&server->lock);
    server_expire_forks(server, true);
    close(server->wake_fd);
    pthread_cond_destroy(&server->thread_done);
    pthread_mutex_destroy(&server->lock);
    free(server);
}
