/*
 * client.c - usock_attach: the usock_* calls of this process acting on a
 * stack that runs in another (`usock up`), over its sockets-API endpoint
 * (remote/protocol.h, served by remote/server.c).
 *
 * Theory of operation.  An attached handle is a struct usock_stack whose
 * `remote` points here; api.c hands every call over at its top.  A call is
 * one request and one reply on a Unix SOCK_SEQPACKET connection (two
 * system calls here, whatever the size up to REMOTE_DATA_MAX; send data
 * goes straight from the caller's iovecs and received data straight into
 * them, with no copy in this process).  A larger stream send or MSG_WAITALL
 * receive takes one exchange per REMOTE_DATA_MAX bytes.
 *
 * Threads: a connection carries one call at a time, so the client keeps a
 * pool of them.  A call takes an idle connection, or opens one more (up to
 * REMOTE_CLIENT_CONNECTIONS_MAX, then it waits for one to come back), and
 * returns it after the reply.  A thread blocked in recv() thus holds one
 * connection and its own server thread, while another thread sends on
 * another connection: nothing is multiplexed, so there is no reader
 * thread, no request table, and a blocked call costs nothing but its
 * connection.  (Past REMOTE_CLIENT_CONNECTIONS_MAX threads blocked at
 * once, the next waits for one of them to return.)  The pool is guarded
 * by the client's mutex, held only to take or return a connection.
 *
 * Sessions: the first connection makes the session (the server's owner
 * number for every descriptor made through this handle); the others join
 * it with its token, from the same process.  When any connection ends the
 * server closes the session's descriptors, which is what
 * usock_stack_free on the handle does, and what happens when the process
 * dies.
 *
 * State and fork: everything is in the handle; no globals.  The
 * connections are the attaching process's own (the server checks the
 * process id of each new one), so after fork() the child must not use
 * the parent's handle (its calls would interleave with the parent's on
 * shared connections); it attaches anew.  Descriptors are close-on-exec.
 *
 * Signals: a call waiting for its reply goes on waiting after EINTR, but
 * when the call is one a signal would end in the kernel (a poll always; a
 * blocking accept, connect, send, recv or lingering close unless every
 * handler installed asks for SA_RESTART), it first asks the stack on
 * another connection to end it (REMOTE_CANCEL), and its reply then says
 * EINTR (or gives the result it reached first).  remote_interrupted tells
 * the preload's sliced waits that a handler ran.  SIGPIPE is never raised
 * (MSG_NOSIGNAL).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "remote/client.h"
#include "remote/gather.h"
#include "remote/protocol.h"
#include "stack.h"

/* Connections one handle opens at most (the server allows as many per
 * session). */
#define REMOTE_CLIENT_CONNECTIONS_MAX 128
/* Most pieces of the caller's buffers one message gathers directly; more
 * go through the connection's bounce buffer. */
#define REMOTE_VECTORS_MAX 64
#define RUNDIR_DEFAULT "/run/usock"

struct remote_connection {
    struct remote_client *client;
    uint32_t id;                           /* the server's name for it (REMOTE_CANCEL) */
    uint32_t operation;                    /* of the call in progress */
    struct remote_connection *next;        /* in the idle list */
    struct remote_connection *next_open;   /* in the list of all open ones */
    struct remote_connection **previous_open;
    int fd;
    /* REMOTE_CONTROL_MAX + REMOTE_DATA_MAX: received ancillary data, poll
     * entries, and buffers scattered over too many iovecs */
    uint8_t *scratch;
};

struct remote_client {
    pthread_mutex_t lock;
    pthread_cond_t returned;     /* a connection came back to the pool */
    char path[108];
    uint32_t session;
    uint8_t token[REMOTE_TOKEN_SIZE];
    struct remote_connection *idle;
    struct remote_connection *all; /* every open connection, idle or in a call */
    unsigned open;               /* connections open or being opened */
    struct gather *gather;       /* small sends gathered (gather.c); NULL: none */
};

static int fail(int error)
{
    errno = error;
    return -1;
}

/* A signal handler ran while this thread waited for the stack. */
static _Thread_local bool interrupted;

bool remote_interrupted(void)
{
    bool was = interrupted;
    interrupted = false;
    return was;
}

/* Whether a call interrupted by a signal ends with EINTR: a poll always
 * does (the kernel never restarts one); a blocking accept, send, recv or
 * connect does unless the handler asked for SA_RESTART, which is told
 * here by looking at every handler, since which signal came is not known:
 * one installed without SA_RESTART (as Python's are) ends the call. */
static bool interruption_ends(uint32_t operation)
{
    switch (operation) {
    case REMOTE_POLL:
        return true;
    case REMOTE_ACCEPT:
    case REMOTE_CONNECT:
    case REMOTE_SEND:
    case REMOTE_RECEIVE:
    case REMOTE_CLOSE:
        break;
    default:
        return false; /* does not sleep, or must not be cut short (a flush) */
    }
    for (int number = 1; number < NSIG; number++) {
        struct sigaction action;
        if (sigaction(number, NULL, &action) == 0 && action.sa_handler != SIG_DFL &&
            action.sa_handler != SIG_IGN && !(action.sa_flags & SA_RESTART))
            return true;
    }
    return false;
}

static bool cancel_call(struct remote_connection *connection);
/* How often a cancel the server could not yet act on is asked again. */
#define CANCEL_RETRY_MS 5

/* ---- connections ---------------------------------------------------- */

static void connection_close(struct remote_connection *connection)
{
    close(connection->fd);
    free(connection->scratch);
    free(connection);
}

/* Sends one message of the vectors.  Returns 0 or -EIO. */
static int connection_send(struct remote_connection *connection, struct iovec *vectors,
                           size_t count)
{
    /* Every message starts with its request. */
    connection->operation = ((const struct remote_request *)vectors[0].iov_base)->operation;
    struct msghdr message = {.msg_iov = vectors, .msg_iovlen = count};
    ssize_t sent;
    do
        sent = sendmsg(connection->fd, &message, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? -EIO : 0;
}

/* Receives one reply into the vectors (the first is its header).  Returns
 * the bytes after the header, or -EIO when the connection broke or the
 * reply is malformed. */
static ssize_t connection_receive(struct remote_connection *connection, struct iovec *vectors,
                                  size_t count)
{
    struct msghdr message = {.msg_iov = vectors, .msg_iovlen = count};
    ssize_t got;
    bool cancelling = false;
    for (;;) {
        if (cancelling) {
            /* Until the server found the call to end (it may not have
             * started it yet), ask again every CANCEL_RETRY_MS. */
            struct pollfd reply_ready = {.fd = connection->fd, .events = POLLIN};
            if (poll(&reply_ready, 1, CANCEL_RETRY_MS) == 0) {
                cancelling = !cancel_call(connection);
                continue;
            }
        }
        got = recvmsg(connection->fd, &message, MSG_CMSG_CLOEXEC);
        if (got >= 0 || errno != EINTR)
            break;
        /* A handler ran: the call may have to end (EINTR, in its reply). */
        interrupted = true;
        if (!cancelling && connection->client && interruption_ends(connection->operation))
            cancelling = !cancel_call(connection);
    }
    if (got < (ssize_t)sizeof(struct remote_reply) || (message.msg_flags & MSG_TRUNC))
        return -EIO;
    return got - (ssize_t)sizeof(struct remote_reply);
}

/* How a new connection says hello. */
enum hello_kind {
    HELLO_NEW,     /* makes a new session, stored in the client */
    HELLO_JOIN,    /* joins the client's session (its token) */
    HELLO_FORKED,  /* claims the session a fork made (the client's token) */
};

/* Puts connection on client's list of open ones (client lock held). */
static void client_list_open(struct remote_client *client, struct remote_connection *connection)
{
    connection->next_open = client->all;
    connection->previous_open = &client->all;
    if (client->all)
        client->all->previous_open = &connection->next_open;
    client->all = connection;
}

/* Takes connection off client's list of open ones (client lock held). */
static void client_list_close(struct remote_connection *connection)
{
    *connection->previous_open = connection->next_open;
    if (connection->next_open)
        connection->next_open->previous_open = connection->previous_open;
}

/* Opens a connection to path and says hello (kind).  Returns the
 * connection, or NULL with *error set (ENOENT: no stack of that name,
 * ECONNREFUSED: none answers, EAGAIN: the server is full, EACCES: the
 * token is not good). */
static struct remote_connection *connection_open(struct remote_client *client,
                                                 enum hello_kind kind, int *error)
{
    bool join = kind != HELLO_NEW;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", client->path);
    struct remote_connection *connection = calloc(1, sizeof(*connection));
    if (!connection) {
        *error = ENOMEM;
        return NULL;
    }
    connection->scratch = malloc(REMOTE_CONTROL_MAX + REMOTE_DATA_MAX);
    connection->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (!connection->scratch || connection->fd < 0) {
        *error = connection->fd < 0 ? errno : ENOMEM;
        goto fail_free;
    }
    if (connect(connection->fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        *error = errno;
        goto fail_free;
    }
    struct remote_request request = {
        .operation = REMOTE_HELLO,
        .arguments = {REMOTE_PROTOCOL_VERSION,
                      kind == HELLO_FORKED ? REMOTE_HELLO_FORKED : REMOTE_HELLO_JOIN},
        .value_length = join ? REMOTE_TOKEN_SIZE : 0};
    struct iovec out[2] = {{&request, sizeof(request)}, {client->token, REMOTE_TOKEN_SIZE}};
    struct remote_reply reply;
    uint8_t token[REMOTE_TOKEN_SIZE];
    struct iovec in[2] = {{&reply, sizeof(reply)}, {token, sizeof(token)}};
    ssize_t got;
    if (connection_send(connection, out, join ? 2 : 1) < 0 ||
        (got = connection_receive(connection, in, 2)) < 0) {
        *error = ECONNREFUSED;
        goto fail_free;
    }
    if (reply.result <= 0) {
        *error = reply.result < 0 ? (int)-reply.result : EPROTO;
        goto fail_free;
    }
    if (got != REMOTE_TOKEN_SIZE) {
        *error = EPROTO;
        goto fail_free;
    }
    if (kind != HELLO_JOIN) {
        client->session = (uint32_t)reply.result;
        memcpy(client->token, token, sizeof(token));
    }
    connection->id = (uint32_t)reply.flags;
    connection->client = client;
    return connection;

fail_free:
    if (connection->fd >= 0)
        close(connection->fd);
    free(connection->scratch);
    free(connection);
    return NULL;
}

/* Takes an idle connection, or opens one more, or waits for one.  Returns
 * it, or NULL with *error set. */
static struct remote_connection *client_take(struct remote_client *client, int *error)
{
    pthread_mutex_lock(&client->lock);
    while (!client->idle && client->open >= REMOTE_CLIENT_CONNECTIONS_MAX)
        pthread_cond_wait(&client->returned, &client->lock);
    struct remote_connection *connection = client->idle;
    if (connection) {
        client->idle = connection->next;
        pthread_mutex_unlock(&client->lock);
        return connection;
    }
    client->open++;
    pthread_mutex_unlock(&client->lock);
    connection = connection_open(client, HELLO_JOIN, error);
    pthread_mutex_lock(&client->lock);
    if (connection) {
        client_list_open(client, connection);
    } else {
        client->open--;
        pthread_cond_signal(&client->returned);
    }
    pthread_mutex_unlock(&client->lock);
    if (!connection && (*error == ENOENT || *error == ECONNREFUSED))
        *error = EIO; /* the stack went away */
    return connection;
}

/* Returns a connection to the pool; a broken one is closed instead. */
static void client_give(struct remote_client *client, struct remote_connection *connection,
                        bool broken)
{
    pthread_mutex_lock(&client->lock);
    if (broken) {
        client->open--;
        client_list_close(connection);
    } else {
        connection->next = client->idle;
        client->idle = connection;
    }
    pthread_cond_signal(&client->returned);
    pthread_mutex_unlock(&client->lock);
    if (broken)
        connection_close(connection);
}

/* One exchange on connection: out (request header first) then the reply
 * into in (reply header first).  Returns the payload bytes received or
 * -EIO; on -EIO the connection is broken. */
static ssize_t connection_exchange(struct remote_connection *connection, struct iovec *out,
                                   size_t out_count, struct iovec *in, size_t in_count)
{
    if (connection_send(connection, out, out_count) < 0)
        return -EIO;
    return connection_receive(connection, in, in_count);
}

/* A call without data either way beyond a small value: request (and
 * value_length bytes of value), reply (and up to reply_room bytes into
 * reply_value).  Returns the call's result, or -errno. */
static int64_t client_call(struct remote_client *client, struct remote_request *request,
                           const void *value, struct remote_reply *reply, void *reply_value,
                           size_t reply_room)
{
    int error;
    struct remote_connection *connection = client_take(client, &error);
    if (!connection)
        return -error;
    struct iovec out[2] = {{request, sizeof(*request)}, {(void *)value, request->value_length}};
    struct iovec in[2] = {{reply, sizeof(*reply)}, {reply_value, reply_room}};
    ssize_t got = connection_exchange(connection, out, value && request->value_length ? 2 : 1,
                                      in, reply_room ? 2 : 1);
    client_give(client, connection, got < 0);
    if (got < 0)
        return got;
    return reply->result;
}

/* Asks the stack, on another connection of the session, to end the call
 * connection waits for (it is answered EINTR, unless it finished first).
 * Returns true when the server found the call in progress, or cannot be
 * asked; false when it has not started it yet (ESRCH: ask again). */
static bool cancel_call(struct remote_connection *connection)
{
    int saved_errno = errno;
    struct remote_request request = {.operation = REMOTE_CANCEL,
                                     .arguments = {(int32_t)connection->id}};
    struct remote_reply reply;
    int64_t result = client_call(connection->client, &request, NULL, &reply, NULL, 0);
    errno = saved_errno;
    return result != -ESRCH;
}

int64_t remote_call(struct remote_client *client, struct remote_request *request,
                    const void *value, struct remote_reply *reply, void *reply_value,
                    size_t reply_room)
{
    return client_call(client, request, value, reply, reply_value, reply_room);
}

int64_t remote_call_passing(struct remote_client *client, struct remote_request *request,
                            int descriptor, struct remote_reply *reply)
{
    int error;
    struct remote_connection *connection = client_take(client, &error);
    if (!connection)
        return -error;
    union {
        struct cmsghdr header;
        uint8_t bytes[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec out = {request, sizeof(*request)};
    struct msghdr message = {.msg_iov = &out, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control)};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &descriptor, sizeof(int));
    ssize_t sent;
    do
        sent = sendmsg(connection->fd, &message, MSG_NOSIGNAL);
    while (sent < 0 && errno == EINTR);
    struct iovec in[1] = {{reply, sizeof(*reply)}};
    ssize_t got = sent < 0 ? -EIO : connection_receive(connection, in, 1);
    client_give(client, connection, got < 0);
    return got < 0 ? got : reply->result;
}

static int finish(int64_t result)
{
    return result < 0 ? fail((int)-result) : (int)result;
}

/* ---- attaching ------------------------------------------------------ */

/* A handle attached to path: its first connection says hello as kind
 * (HELLO_FORKED: with token).  NULL with errno on failure. */
static struct usock_stack *attach(const char *path, enum hello_kind kind, const uint8_t *token)
{
    struct sockaddr_un address;
    if (!path || !*path) {
        errno = EINVAL;
        return NULL;
    }
    if (strlen(path) >= sizeof(address.sun_path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    struct usock_stack *stack = calloc(1, sizeof(*stack));
    struct remote_client *client = calloc(1, sizeof(*client));
    if (!stack || !client) {
        free(stack);
        free(client);
        errno = ENOMEM;
        return NULL;
    }
    snprintf(client->path, sizeof(client->path), "%s", path);
    pthread_mutex_init(&client->lock, NULL);
    pthread_cond_init(&client->returned, NULL);
    if (token)
        memcpy(client->token, token, REMOTE_TOKEN_SIZE);
    int error;
    struct remote_connection *first = connection_open(client, kind, &error);
    if (!first) {
        pthread_cond_destroy(&client->returned);
        pthread_mutex_destroy(&client->lock);
        free(client);
        free(stack);
        errno = error;
        return NULL;
    }
    client->idle = first;
    client_list_open(client, first);
    client->open = 1;
    client->gather = gather_new(client);
    stack->remote = client;
    stack->clock = usock_monotonic_ns;
    snprintf(stack->name, sizeof(stack->name), "%s", path);
    return stack;
}

struct usock_stack *usock_attach_path(const char *path)
{
    return attach(path, HELLO_NEW, NULL);
}

struct usock_stack *remote_attach_forked(const char *path, const uint8_t token[16])
{
    return attach(path, HELLO_FORKED, token);
}

struct usock_stack *usock_attach(const char *name)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (!name || !*name || strchr(name, '/') || strlen(name) > 64) {
        errno = EINVAL;
        return NULL;
    }
    const char *rundir = getenv("USOCK_RUNDIR");
    if (!rundir || !*rundir)
        rundir = RUNDIR_DEFAULT;
    if (snprintf(path, sizeof(path), "%s/%s.api", rundir, name) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    return usock_attach_path(path);
}

void remote_client_close(struct remote_client *client)
{
    gather_free(client->gather);
    while (client->all) {
        struct remote_connection *connection = client->all;
        client_list_close(connection);
        connection_close(connection);
    }
    pthread_cond_destroy(&client->returned);
    pthread_mutex_destroy(&client->lock);
    free(client);
}

/* ---- fork ------------------------------------------------------------ */

int remote_fork_prepare(struct usock_stack *stack, struct remote_fork_ticket *ticket)
{
    struct remote_client *client = stack->remote;
    /* What was gathered goes now, by this process; the sockets become
     * shared, so nothing more is gathered for them on stale room. */
    if (client->gather)
        gather_flush(client->gather, -1, true);
    size_t room = REMOTE_TOKEN_SIZE + REMOTE_FORK_MAX * 2 * sizeof(int32_t);
    uint8_t *answer = malloc(room);
    if (!answer)
        return fail(ENOMEM);
    struct remote_request request = {.operation = REMOTE_FORK};
    struct remote_reply reply;
    int64_t result = client_call(client, &request, NULL, &reply, answer, room);
    if (result >= 0 && (reply.value_length != REMOTE_TOKEN_SIZE || result > REMOTE_FORK_MAX ||
                        reply.data_length != (uint64_t)result * 2 * sizeof(int32_t)))
        result = -EPROTO;
    if (result < 0) {
        free(answer);
        return fail((int)-result);
    }
    memcpy(ticket->token, answer, REMOTE_TOKEN_SIZE);
    ticket->count = (size_t)result;
    /* The pairs move to the front; the token's room is given back. */
    memmove(answer, answer + REMOTE_TOKEN_SIZE, ticket->count * 2 * sizeof(int32_t));
    ticket->pairs = (int32_t *)answer;
    pthread_mutex_lock(&client->lock);
    return 0;
}

void remote_fork_done(struct usock_stack *stack, struct remote_fork_ticket *ticket,
                      bool child_made)
{
    pthread_mutex_unlock(&stack->remote->lock);
    if (!child_made) {
        struct remote_request request = {.operation = REMOTE_FORK_ABANDON,
                                         .value_length = REMOTE_TOKEN_SIZE};
        struct remote_reply reply;
        int saved_errno = errno;
        (void)client_call(stack->remote, &request, ticket->token, &reply, NULL, 0);
        errno = saved_errno;
    }
    free(ticket->pairs);
    ticket->pairs = NULL;
    ticket->count = 0;
}

const char *remote_path(const struct usock_stack *stack)
{
    return stack->remote->path;
}

void remote_stack_abandon(struct usock_stack *stack)
{
    /* Single-threaded now, and the parent's fork left the lock held: the
     * lists are whole, and nothing else will touch them. */
    struct remote_client *client = stack->remote;
    gather_abandon(client->gather);
    while (client->all) {
        struct remote_connection *connection = client->all;
        client_list_close(connection);
        connection_close(connection);
    }
    free(client);
    free(stack);
}


/* ---- the calls ------------------------------------------------------ */

/* Before a call on fd (fd < 0: on any) that must come after what was
 * gathered for it; with forget_room, nothing more is gathered for fd
 * until a send says there is room (the call may change that). */
static void before_call(struct remote_client *client, int fd, bool forget_room)
{
    if (client->gather)
        gather_flush(client->gather, fd, forget_room);
}

/* A call made descriptor fd (when it is one): nothing is known of it. */
static int new_descriptor(struct remote_client *client, int fd)
{
    if (fd >= 0 && client->gather)
        gather_forget(client->gather, fd);
    return fd;
}

int remote_socket(struct remote_client *client, int domain, int type, int protocol)
{
    struct remote_request request = {.operation = REMOTE_SOCKET,
                                     .arguments = {domain, type, protocol}};
    struct remote_reply reply;
    return new_descriptor(client, finish(client_call(client, &request, NULL, &reply, NULL, 0)));
}

/* close, listen, shutdown, fcntl: a descriptor and two integers. */
static int remote_simple(struct remote_client *client, enum remote_operation operation, int fd,
                         int first, int second)
{
    before_call(client, fd, operation != REMOTE_FCNTL && operation != REMOTE_LISTEN);
    struct remote_request request = {.operation = operation, .fd = fd,
                                     .arguments = {first, second}};
    struct remote_reply reply;
    return finish(client_call(client, &request, NULL, &reply, NULL, 0));
}

int remote_close(struct remote_client *client, int fd)
{
    int result = remote_simple(client, REMOTE_CLOSE, fd, 0, 0);
    new_descriptor(client, fd); /* its number is free for the next */
    return result;
}

int remote_listen(struct remote_client *client, int fd, int backlog)
{
    return remote_simple(client, REMOTE_LISTEN, fd, backlog, 0);
}

int remote_shutdown(struct remote_client *client, int fd, int how)
{
    return remote_simple(client, REMOTE_SHUTDOWN, fd, how, 0);
}

int remote_fcntl(struct remote_client *client, int fd, int command, int argument)
{
    return remote_simple(client, REMOTE_FCNTL, fd, command, argument);
}

int remote_dup(struct remote_client *client, int fd)
{
    return new_descriptor(client, remote_simple(client, REMOTE_DUP, fd, 0, 0));
}

/* bind, connect: an address in.  One longer than a sockaddr_storage is
 * EINVAL, as Linux's move_addr_to_kernel says. */
static int remote_address_in(struct remote_client *client, enum remote_operation operation,
                             int fd, const struct sockaddr *address, socklen_t length)
{
    if (length > REMOTE_ADDRESS_MAX)
        return fail(EINVAL);
    before_call(client, fd, true);
    struct remote_request request = {.operation = operation, .fd = fd,
                                     .address_present = address != NULL,
                                     .address_length = length};
    if (address)
        memcpy(request.address, address, length);
    struct remote_reply reply;
    return finish(client_call(client, &request, NULL, &reply, NULL, 0));
}

int remote_bind(struct remote_client *client, int fd, const struct sockaddr *address,
                socklen_t length)
{
    return remote_address_in(client, REMOTE_BIND, fd, address, length);
}

int remote_connect(struct remote_client *client, int fd, const struct sockaddr *address,
                   socklen_t length)
{
    return remote_address_in(client, REMOTE_CONNECT, fd, address, length);
}

/* accept, getsockname, getpeername: an address out (truncated to the
 * caller's room, *length set to its whole size, as the kernel does). */
static int remote_address_out(struct remote_client *client, enum remote_operation operation,
                              int fd, struct sockaddr *address, socklen_t *length)
{
    bool present = address && length;
    socklen_t room = present ? *length : 0;
    before_call(client, fd, false);
    struct remote_request request = {
        .operation = operation, .fd = fd, .address_present = present,
        .address_length = room > REMOTE_ADDRESS_MAX ? REMOTE_ADDRESS_MAX : room};
    struct remote_reply reply;
    int64_t result = client_call(client, &request, NULL, &reply, NULL, 0);
    if (result >= 0 && present) {
        size_t copy = reply.address_length < request.address_length ? reply.address_length
                                                                   : request.address_length;
        memcpy(address, reply.address, copy);
        *length = reply.address_length;
    }
    return finish(result);
}

int remote_accept(struct remote_client *client, int fd, struct sockaddr *address,
                  socklen_t *length)
{
    return new_descriptor(client, remote_address_out(client, REMOTE_ACCEPT, fd, address, length));
}

int remote_getsockname(struct remote_client *client, int fd, struct sockaddr *address,
                       socklen_t *length)
{
    return remote_address_out(client, REMOTE_GETSOCKNAME, fd, address, length);
}

int remote_getpeername(struct remote_client *client, int fd, struct sockaddr *address,
                       socklen_t *length)
{
    return remote_address_out(client, REMOTE_GETPEERNAME, fd, address, length);
}

int remote_setsockopt(struct remote_client *client, int fd, int level, int name,
                      const void *value, socklen_t length)
{
    /* Options read at most REMOTE_OPTION_MAX bytes (the largest, a
     * multicast source filter, is far below it). */
    before_call(client, fd, true);
    struct remote_request request = {
        .operation = REMOTE_SETSOCKOPT, .fd = fd, .arguments = {level, name},
        .value_present = value != NULL,
        .value_length = !value ? 0 : length > REMOTE_OPTION_MAX ? REMOTE_OPTION_MAX : length};
    struct remote_reply reply;
    return finish(client_call(client, &request, value, &reply, NULL, 0));
}

int remote_getsockopt(struct remote_client *client, int fd, int level, int name, void *value,
                      socklen_t *length)
{
    bool present = value && length;
    int32_t room = present ? (int32_t)*length : 0;
    before_call(client, fd, false);
    struct remote_request request = {.operation = REMOTE_GETSOCKOPT, .fd = fd,
                                     .arguments = {level, name, room},
                                     .value_present = present};
    struct remote_reply reply;
    uint8_t buffer[REMOTE_OPTION_MAX];
    int64_t result = client_call(client, &request, NULL, &reply, buffer, sizeof(buffer));
    if (result >= 0 && present) {
        size_t copy = reply.value_length < (uint32_t)room ? reply.value_length : (size_t)room;
        if (copy > sizeof(buffer))
            copy = sizeof(buffer);
        memcpy(value, buffer, copy);
        *length = reply.value_length;
    }
    return finish(result);
}

int remote_ioctl(struct remote_client *client, int fd, unsigned long request_code,
                 void *argument)
{
    if (request_code > UINT32_MAX)
        return fail(ENOTTY);
    before_call(client, fd, false);
    int value = (request_code == FIONBIO && argument) ? *(const int *)argument : 0;
    struct remote_request request = {.operation = REMOTE_IOCTL, .fd = fd,
                                     .arguments = {(int32_t)(uint32_t)request_code, value},
                                     .value_present = argument != NULL};
    struct remote_reply reply;
    int64_t result = client_call(client, &request, NULL, &reply, NULL, 0);
    if (result >= 0 && argument && request_code != FIONBIO)
        *(int *)argument = reply.flags;
    return finish(result);
}

int remote_poll(struct remote_client *client, struct pollfd *fds, nfds_t count, int timeout_ms)
{
    if (count > REMOTE_POLL_MAX)
        return fail(EINVAL);
    if (count > 0 && !fds)
        return fail(EFAULT);
    before_call(client, -1, false);
    int error;
    struct remote_connection *connection = client_take(client, &error);
    if (!connection)
        return fail(error);
    struct remote_pollfd *entries = (struct remote_pollfd *)connection->scratch;
    for (nfds_t i = 0; i < count; i++)
        entries[i] = (struct remote_pollfd){.fd = fds[i].fd, .events = fds[i].events};
    size_t bytes = count * sizeof(*entries);
    struct remote_request request = {.operation = REMOTE_POLL,
                                     .arguments = {(int32_t)count, timeout_ms}};
    struct remote_reply reply;
    struct iovec out[2] = {{&request, sizeof(request)}, {entries, bytes}};
    struct iovec in[2] = {{&reply, sizeof(reply)}, {entries, bytes}};
    ssize_t got = connection_exchange(connection, out, count ? 2 : 1, in, count ? 2 : 1);
    if (got >= 0 && reply.result >= 0 && (size_t)got != bytes)
        got = -EIO;
    if (got >= 0 && reply.result >= 0)
        for (nfds_t i = 0; i < count; i++)
            fds[i].revents = entries[i].revents;
    client_give(client, connection, got < 0);
    if (got < 0)
        return fail(EIO);
    return finish(reply.result);
}

/* ---- data ----------------------------------------------------------- */

/* Walks the pieces of message's buffers that hold length bytes from
 * offset on: *index and *skip say where the walk is (start at 0, 0), and
 * each call gives the next piece, or one of length 0 at the end. */
static struct iovec vectors_next(const struct msghdr *message, size_t *index, size_t *skip,
                                 size_t *length)
{
    while (*index < message->msg_iovlen && *length > 0) {
        const struct iovec *piece = &message->msg_iov[(*index)++];
        if (*skip >= piece->iov_len) {
            *skip -= piece->iov_len;
            continue;
        }
        size_t take = piece->iov_len - *skip;
        if (take > *length)
            take = *length;
        struct iovec part = {(uint8_t *)piece->iov_base + *skip, take};
        *skip = 0;
        *length -= take;
        return part;
    }
    return (struct iovec){NULL, 0};
}

/* Describes length bytes of message's buffers from offset on as at most
 * max vectors in out.  Returns how many, or max + 1 when more are needed. */
static size_t vectors_slice(const struct msghdr *message, size_t offset, size_t length,
                            struct iovec *out, size_t max)
{
    size_t count = 0, index = 0;
    for (struct iovec part; (part = vectors_next(message, &index, &offset, &length)).iov_len;) {
        if (count == max)
            return max + 1;
        out[count++] = part;
    }
    return count;
}

/* Copies between message's buffers from offset and flat (length bytes):
 * into the buffers when to_message, else out of them. */
static void vectors_copy(const struct msghdr *message, size_t offset, uint8_t *flat,
                         size_t length, bool to_message)
{
    size_t index = 0;
    for (struct iovec part; (part = vectors_next(message, &index, &offset, &length)).iov_len;) {
        if (to_message)
            memcpy(part.iov_base, flat, part.iov_len);
        else
            memcpy(flat, part.iov_base, part.iov_len);
        flat += part.iov_len;
    }
}

/* The bytes message's buffers hold, or -EINVAL when they overflow. */
static ssize_t vectors_total(const struct msghdr *message)
{
    size_t total = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        if (message->msg_iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        total += message->msg_iov[i].iov_len;
    }
    return (ssize_t)total;
}

/* Checks a msghdr as Linux's copy_msghdr_from_user does.  Returns 0 or
 * -errno. */
static int message_check(const struct msghdr *message)
{
    if (!message || (message->msg_iovlen > 0 && !message->msg_iov))
        return -EFAULT;
    if (message->msg_iovlen > IOV_MAX)
        return -EMSGSIZE;
    return 0;
}

ssize_t remote_sendmsg(struct remote_client *client, int fd, const struct msghdr *message,
                       int flags)
{
    int error = message_check(message);
    if (error < 0)
        return fail(-error);
    if (message->msg_name && message->msg_namelen > REMOTE_ADDRESS_MAX)
        return fail(EINVAL);
    size_t control = message->msg_control ? message->msg_controllen : 0;
    if (control > REMOTE_CONTROL_MAX)
        return fail(ENOBUFS); /* past optmem_max, as Linux says */
    ssize_t total = vectors_total(message);
    if (total < 0)
        return fail(EINVAL);
    if (client->gather) {
        ssize_t taken = gather_send(client->gather, fd, message, flags, (size_t)total);
        if (taken > 0)
            return taken;
        if (taken < 0)
            return fail((int)-taken);
    }
    struct remote_connection *connection = client_take(client, &error);
    if (!connection)
        return fail(error);
    size_t done = 0;
    int64_t result = 0;
    int32_t send_room = -1;
    bool broken = false;
    do {
        size_t chunk = (size_t)total - done;
        if (chunk > REMOTE_DATA_MAX)
            chunk = REMOTE_DATA_MAX;
        size_t this_control = done == 0 ? control : 0;
        struct remote_request request = {
            .operation = REMOTE_SEND, .fd = fd, .arguments = {flags},
            .address_present = message->msg_name != NULL,
            .address_length = message->msg_name ? message->msg_namelen : 0,
            .value_length = (uint32_t)this_control,
            .data_length = (uint32_t)chunk,
            .total_length = (uint32_t)((size_t)total - done > UINT32_MAX ? UINT32_MAX
                                                                         : (size_t)total - done)};
        if (message->msg_name)
            memcpy(request.address, message->msg_name, message->msg_namelen);
        struct iovec out[REMOTE_VECTORS_MAX + 2];
        out[0] = (struct iovec){&request, sizeof(request)};
        size_t count = 1;
        if (this_control)
            out[count++] = (struct iovec){message->msg_control, this_control};
        size_t pieces = vectors_slice(message, done, chunk, out + count, REMOTE_VECTORS_MAX);
        if (pieces > REMOTE_VECTORS_MAX) {
            vectors_copy(message, done, connection->scratch, chunk, false);
            out[count++] = (struct iovec){connection->scratch, chunk};
        } else {
            count += pieces;
        }
        struct remote_reply reply;
        struct iovec in[1] = {{&reply, sizeof(reply)}};
        if (connection_exchange(connection, out, count, in, 1) < 0) {
            broken = true;
            result = -EIO;
            break;
        }
        result = reply.result;
        if (result < 0)
            break;
        done += (size_t)result;
        send_room = reply.send_room;
        if ((size_t)result < chunk)
            break;
    } while (done < (size_t)total);
    client_give(client, connection, broken);
    if (client->gather)
        gather_note_room(client->gather, fd, done == (size_t)total && total > 0 ? send_room : -1);
    if (done > 0)
        return (ssize_t)done;
    return result < 0 ? fail((int)-result) : 0;
}

ssize_t remote_recvmsg(struct remote_client *client, int fd, struct msghdr *message, int flags)
{
    int error = message_check(message);
    if (error < 0)
        return fail(-error);
    ssize_t room = vectors_total(message);
    if (room < 0)
        return fail(EINVAL);
    size_t control_room = message->msg_control ? message->msg_controllen : 0;
    if (control_room > REMOTE_CONTROL_MAX)
        control_room = REMOTE_CONTROL_MAX;
    socklen_t name_room = message->msg_name ? message->msg_namelen : 0;
    if (name_room > REMOTE_ADDRESS_MAX)
        name_room = REMOTE_ADDRESS_MAX;
    before_call(client, fd, false);
    /* Only a stream fills a whole message (no datagram is that large), so
     * only a stream goes on to the next piece. */
    bool whole = (flags & MSG_WAITALL) && !(flags & MSG_PEEK);
    struct remote_connection *connection = client_take(client, &error);
    if (!connection)
        return fail(error);
    size_t done = 0;
    int64_t result = 0;
    bool broken = false;
    do {
        size_t chunk = (size_t)room - done;
        if (chunk > REMOTE_DATA_MAX)
            chunk = REMOTE_DATA_MAX;
        size_t this_control = done == 0 ? control_room : 0;
        struct remote_request request = {
            .operation = REMOTE_RECEIVE, .fd = fd, .arguments = {flags},
            .address_present = message->msg_name != NULL, .address_length = name_room,
            .value_length = (uint32_t)this_control, .data_length = (uint32_t)chunk};
        struct remote_reply reply;
        struct iovec in[REMOTE_VECTORS_MAX + 2];
        in[0] = (struct iovec){&reply, sizeof(reply)};
        size_t count = 1;
        if (this_control)
            in[count++] = (struct iovec){connection->scratch, this_control};
        size_t pieces = vectors_slice(message, done, chunk, in + count, REMOTE_VECTORS_MAX);
        bool bounced = pieces > REMOTE_VECTORS_MAX;
        if (bounced)
            in[count++] = (struct iovec){connection->scratch + REMOTE_CONTROL_MAX, chunk};
        else
            count += pieces;
        struct iovec out[1] = {{&request, sizeof(request)}};
        ssize_t got = connection_exchange(connection, out, 1, in, count);
        result = got < 0 ? -EIO : reply.result;
        if (got < 0) {
            broken = true;
            break;
        }
        if (result < 0)
            break;
        size_t data = reply.data_length;
        /* The control area always comes whole (padded), then the data. */
        if (data > chunk || (size_t)got != this_control + data) {
            broken = true;
            result = -EIO;
            break;
        }
        if (bounced)
            vectors_copy(message, done, connection->scratch + REMOTE_CONTROL_MAX, data, true);
        if (done == 0) {
            if (message->msg_name) {
                size_t copy = reply.address_length < name_room ? reply.address_length : name_room;
                memcpy(message->msg_name, reply.address, copy);
                message->msg_namelen = reply.address_length;
            }
            if (message->msg_control) {
                size_t copy = reply.value_length < this_control ? reply.value_length
                                                                : this_control;
                memcpy(message->msg_control, connection->scratch, copy);
                message->msg_controllen = copy;
            }
        }
        message->msg_flags = reply.flags;
        if (!whole || (size_t)result != chunk) {
            if (done == 0) {
                done = (size_t)result; /* MSG_TRUNC may say more than fitted */
                break;
            }
            done += data;
            break;
        }
        done += data;
    } while (done < (size_t)room);
    client_give(client, connection, broken);
    if (done > 0)
        return (ssize_t)done;
    return result < 0 ? fail((int)-result) : 0;
}
