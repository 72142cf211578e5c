/*
 * exec_calls.c - the exec family for a program whose sockets live on a
 * usock stack: a usock socket whose descriptor is not close-on-exec stays
 * open in the program exec starts, as a kernel socket would (inetd-style
 * servers hand a connection to the program they exec).
 *
 * Theory of operation.  Before libc's exec, when this process has usock
 * sockets without FD_CLOEXEC, the shim asks the stack to share its
 * descriptors with a new session (REMOTE_FORK, as fork_calls.c does) and
 * passes that session to the new program in the environment variable
 * USOCK_INHERIT:
 *
 *     PATH|TOKEN|K:C,K:C...|C,C...
 *
 * PATH is the stack's sockets-API endpoint, TOKEN the session's token in
 * hex, each K:C a kept socket (the reserved kernel descriptor K, which
 * exec keeps open, now stands for the session's usock descriptor C), and
 * the last list the session's descriptors nobody keeps (sockets that were
 * close-on-exec), which the new program closes at once.  The new program's
 * shim, loaded again by LD_PRELOAD, reads the variable in its constructor
 * (libc_next.c), claims the session, maps the kept descriptors and removes
 * the variable, so its own children do not see it.  When exec succeeds,
 * the old image's connections to the stack close with it (close-on-exec)
 * and the stack closes the old session's descriptors; the new session's
 * keep the sockets open.  When exec fails, the call returns as libc's does
 * and the new session is closed at once (REMOTE_FORK_ABANDON).
 *
 * Limits: a vfork child (it runs in its parent's memory) and exec from
 * inside libc (posix_spawn, system) pass no usock socket on; the program
 * started then sees plain eventfds at those numbers.  A program exec'd
 * without the shim (LD_PRELOAD removed from its environment) cannot use
 * them either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"
#include "remote/client.h"

extern char **environ;

/* What an exec hands on (see the top); active only when there is some. */
struct exec_inherit {
    bool active;
    struct usock_stack *stack;
    struct remote_fork_ticket ticket;
    char *variable;             /* "USOCK_INHERIT=..." (malloc'd) */
    char **environment;         /* the caller's with variable in (malloc'd) */
};

/* ---- the handing on ---- */

/* Text being built: a growing malloc'd string (NULL after a failure). */
struct text {
    char *data;
    size_t length, capacity;
};

static void text_add(struct text *text, const char *format, ...)
{
    if (!text->data)
        return;
    for (;;) {
        va_list arguments;
        va_start(arguments, format);
        int wanted = vsnprintf(text->data + text->length, text->capacity - text->length,
                               format, arguments);
        va_end(arguments);
        if (wanted < 0) {
            free(text->data);
            text->data = NULL;
            return;
        }
        if ((size_t)wanted < text->capacity - text->length) {
            text->length += (size_t)wanted;
            return;
        }
        size_t capacity = text->capacity * 2 + (size_t)wanted;
        char *data = realloc(text->data, capacity);
        if (!data) {
            free(text->data);
            text->data = NULL;
            return;
        }
        text->data = data;
        text->capacity = capacity;
    }
}

/* fd_map_each's step: counts the sockets exec would keep open. */
static void count_kept(int fd, int usock_fd, void *context)
{
    (void)usock_fd;
    int flags = libc_next()->fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC))
        (*(size_t *)context)++;
}

struct keep_walk {
    const struct remote_fork_ticket *ticket;
    struct text *text;
    bool *kept;                 /* per pair: its socket is kept */
    bool first;
};

/* fd_map_each's step: writes K:C for a socket exec keeps open. */
static void write_kept(int fd, int usock_fd, void *context)
{
    struct keep_walk *walk = context;
    int flags = libc_next()->fcntl(fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC))
        return;
    for (size_t i = 0; i < walk->ticket->count; i++) {
        if (walk->ticket->pairs[2 * i] != usock_fd)
            continue;
        text_add(walk->text, "%s%d:%d", walk->first ? "" : ",", fd,
                 (int)walk->ticket->pairs[2 * i + 1]);
        walk->kept[i] = true;
        walk->first = false;
        return;
    }
}

/* Puts "USOCK_INHERIT=..." in place of any in environment (NULL-ended),
 * in a new malloc'd array.  NULL when out of memory. */
static char **environment_with(char *const *environment, char *variable)
{
    size_t count = 0;
    while (environment && environment[count])
        count++;
    char **copy = malloc((count + 2) * sizeof(*copy));
    if (!copy)
        return NULL;
    size_t used = 0;
    size_t name_length = strlen(EXEC_INHERIT_VARIABLE);
    for (size_t i = 0; i < count; i++) {
        if (strncmp(environment[i], EXEC_INHERIT_VARIABLE, name_length) == 0 &&
            environment[i][name_length] == '=')
            continue;
        copy[used++] = environment[i];
    }
    copy[used++] = variable;
    copy[used] = NULL;
    return copy;
}

/* Makes what an exec with environment hands on, when this process has
 * usock sockets that exec keeps open.  On a failure the exec goes ahead
 * without them, after saying so. */
static void exec_prepare(struct exec_inherit *inherit, char *const *environment)
{
    memset(inherit, 0, sizeof(*inherit));
    struct usock_stack *stack = shim_stack_if_attached();
    if (!stack || !shim_attached_here())
        return;
    size_t kept_count = 0;
    fd_map_each(count_kept, &kept_count);
    if (kept_count == 0)
        return;
    if (remote_fork_prepare(stack, &inherit->ticket) < 0) {
        shim_say("exec: usock sockets cannot be handed to the new program", errno);
        return;
    }
    inherit->stack = stack;
    struct text text = {.data = malloc(256), .capacity = 256};
    bool *kept = calloc(inherit->ticket.count + 1, sizeof(*kept));
    text_add(&text, "%s=%s|", EXEC_INHERIT_VARIABLE, remote_path(stack));
    for (size_t i = 0; i < sizeof(inherit->ticket.token); i++)
        text_add(&text, "%02x", inherit->ticket.token[i]);
    text_add(&text, "|");
    struct keep_walk walk = {&inherit->ticket, &text, kept, true};
    if (kept)
        fd_map_each(write_kept, &walk);
    text_add(&text, "|");
    bool first = true;
    for (size_t i = 0; kept && i < inherit->ticket.count; i++) {
        if (!kept[i]) {
            text_add(&text, "%s%d", first ? "" : ",", (int)inherit->ticket.pairs[2 * i + 1]);
            first = false;
        }
    }
    free(kept);
    inherit->variable = text.data;
    inherit->environment = text.data ? environment_with(environment, text.data) : NULL;
    if (!kept || !inherit->environment) {
        shim_say("exec: usock sockets cannot be handed to the new program", ENOMEM);
        remote_fork_done(stack, &inherit->ticket, false);
        free(inherit->variable);
        memset(inherit, 0, sizeof(*inherit));
        return;
    }
    inherit->active = true;
}

/* After an exec that returned (it failed): lets go of what exec_prepare
 * made; errno is kept. */
static void exec_failed(struct exec_inherit *inherit)
{
    if (!inherit->active)
        return;
    int saved_errno = errno;
    remote_fork_done(inherit->stack, &inherit->ticket, false);
    free(inherit->variable);
    free(inherit->environment);
    errno = saved_errno;
}

/* The environment to exec with: the prepared one, or the caller's. */
static char *const *exec_environment(const struct exec_inherit *inherit,
                                     char *const *environment)
{
    return inherit->active ? inherit->environment : environment;
}

int execve(const char *path, char *const argv[], char *const envp[])
{
    struct exec_inherit inherit;
    exec_prepare(&inherit, envp);
    libc_next()->execve(path, argv, exec_environment(&inherit, envp));
    exec_failed(&inherit);
    return -1;
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
    struct exec_inherit inherit;
    exec_prepare(&inherit, envp);
    libc_next()->execvpe(file, argv, exec_environment(&inherit, envp));
    exec_failed(&inherit);
    return -1;
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
    struct exec_inherit inherit;
    exec_prepare(&inherit, envp);
    libc_next()->fexecve(fd, argv, exec_environment(&inherit, envp));
    exec_failed(&inherit);
    return -1;
}

int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

/* The arguments of an execl-style call, first and those in list up to the
 * NULL, as an argv array (malloc'd; NULL when out of memory); list is left
 * after the NULL (execle's environment follows). */
static char **arguments_from(const char *first, va_list *list)
{
    size_t capacity = 8, count = 0;
    char **argv = malloc(capacity * sizeof(*argv));
    const char *argument = first;
    while (argv) {
        if (count + 1 == capacity) {
            char **bigger = realloc(argv, 2 * capacity * sizeof(*argv));
            if (!bigger) {
                free(argv);
                return NULL;
            }
            argv = bigger;
            capacity *= 2;
        }
        argv[count++] = (char *)argument;
        if (!argument)
            break;
        argument = va_arg(*list, const char *);
    }
    return argv;
}

/* The end of an execl-style call: runs exec (our execve or execvpe) of
 * target with argv (from arguments_from; NULL: out of memory) and
 * environment, and frees argv when it returns.  Returns -1 with errno. */
static int exec_arguments(int (*exec)(const char *, char *const[], char *const[]),
                          const char *target, char **argv, char *const *environment)
{
    if (!argv) {
        errno = ENOMEM;
        return -1;
    }
    exec(target, argv, environment);
    int saved_errno = errno;
    free(argv);
    errno = saved_errno;
    return -1;
}

int execl(const char *path, const char *argument, ...)
{
    va_list list;
    va_start(list, argument);
    char **argv = arguments_from(argument, &list);
    va_end(list);
    return exec_arguments(execve, path, argv, environ);
}

int execlp(const char *file, const char *argument, ...)
{
    va_list list;
    va_start(list, argument);
    char **argv = arguments_from(argument, &list);
    va_end(list);
    return exec_arguments(execvpe, file, argv, environ);
}

int execle(const char *path, const char *argument, ...)
{
    va_list list;
    va_start(list, argument);
    char **argv = arguments_from(argument, &list);
    char *const *envp = argv ? va_arg(list, char *const *) : NULL;
    va_end(list);
    return exec_arguments(execve, path, argv, envp);
}

/* ---- the taking over, in the new program ---- */

/* Parses one decimal number at *cursor (advanced past it).  -1 when none. */
static long parse_number(const char **cursor)
{
    char *end;
    errno = 0;
    long value = strtol(*cursor, &end, 10);
    if (end == *cursor || errno || value < 0 || value > 0x7fffffff)
        return -1;
    *cursor = end;
    return value;
}

struct usock_stack *exec_take_over(const char *value)
{
    char path[108]; /* sun_path */
    uint8_t token[16];
    const char *bar = strchr(value, '|');
    if (!bar || (size_t)(bar - value) >= sizeof(path))
        goto malformed;
    memcpy(path, value, (size_t)(bar - value));
    path[bar - value] = '\0';
    const char *cursor = bar + 1;
    for (size_t i = 0; i < sizeof(token); i++) {
        unsigned byte;
        if (sscanf(cursor + 2 * i, "%2x", &byte) != 1)
            goto malformed;
        token[i] = (uint8_t)byte;
    }
    cursor += 2 * sizeof(token);
    if (*cursor++ != '|')
        goto malformed;
    struct usock_stack *stack = remote_attach_forked(path, token);
    if (!stack) {
        shim_say("usock sockets from before exec cannot be taken over", errno);
        return NULL;
    }
    /* K:C pairs, then the descriptors nobody keeps. */
    while (*cursor && *cursor != '|') {
        long fd = parse_number(&cursor);
        if (fd < 0 || *cursor++ != ':')
            break;
        long usock_fd = parse_number(&cursor);
        if (usock_fd < 0)
            break;
        if (libc_next()->fcntl((int)fd, F_GETFD) >= 0)
            fd_map_adopt((int)fd, (int)usock_fd);
        else
            usock_close(stack, (int)usock_fd);
        if (*cursor == ',')
            cursor++;
    }
    if (*cursor == '|')
        cursor++;
    while (*cursor) {
        long usock_fd = parse_number(&cursor);
        if (usock_fd < 0)
            break;
        usock_close(stack, (int)usock_fd);
        if (*cursor == ',')
            cursor++;
    }
    return stack;

malformed:
    shim_say("usock sockets from before exec cannot be taken over", EINVAL);
    return NULL;
}
