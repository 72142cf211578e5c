/*
 * control_client.c - `usock ss` and `usock stats`: the client side of the
 * control endpoint.
 *
 * Theory of operation: a running `usock up` serves a Unix stream socket at
 * $USOCK_RUNDIR/NAME.sock (usock_stack_serve_control).  The protocol is one
 * request line ("ss\n" or "stats\n") and a reply read until EOF:
 *   stats: lines "Name value", printed here exactly as received;
 *   ss:    one line per socket, tab-separated
 *          netid state listening recv_q send_q local peer [details [pid]]
 *          which are filtered like ss(8) and printed in its columns; with
 *          -p, the pid of an attached program (usock_attach) is shown as
 *          ss -p shows a process, its name read from /proc/PID/comm.
 * A reply beginning "error " is the server refusing the request.  The
 * client waits at most CONTROL_TIMEOUT_SECONDS for the reply, so a wedged
 * server gives an error rather than a hung command.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

#define CONTROL_TIMEOUT_SECONDS 5
/* A reply larger than this is not from a usock server. */
#define CONTROL_REPLY_MAX (64u << 20)

static const char ss_usage[] =
    "usage: usock ss [-t] [-u] [-w] [-l] [-a] [-n] [-i] [-p] [--name NAME]\n"
    "\n"
    "Shows the sockets of the stack NAME (default \"" CLI_NAME_DEFAULT "\"), in the columns of ss(8).\n"
    "  -t, --tcp        TCP sockets\n"
    "  -u, --udp        UDP sockets\n"
    "  -w, --raw        raw sockets (with none of -t/-u/-w: every kind)\n"
    "  -l, --listening  only listening sockets (UDP sockets not connected count)\n"
    "  -a, --all        listening and other sockets (default: not listening)\n"
    "  -n, --numeric    accepted; output is always numeric\n"
    "  -i, --info       TCP details under each connection: options, congestion\n"
    "                   control, wscale, rto, rtt/rttvar (ms), mss, cwnd, ssthresh,\n"
    "                   bytes acked and received, retransmissions, send rate\n"
    "  -p, --processes  the program holding each socket through usock_attach, as\n"
    "                   users:((\"COMM\",pid=PID)) (the stack's own sockets show none)\n"
    "  --name NAME      the stack's name, as given to `usock up --name`\n"
    "The control endpoint is $USOCK_RUNDIR/NAME.sock ($USOCK_RUNDIR defaults to " CLI_RUNDIR_DEFAULT ").\n";

static const char stats_usage[] =
    "usage: usock stats [--name NAME]\n"
    "\n"
    "Prints the counters of the stack NAME (default \"" CLI_NAME_DEFAULT "\"), one \"Name value\" per line.\n"
    "The control endpoint is $USOCK_RUNDIR/NAME.sock ($USOCK_RUNDIR defaults to " CLI_RUNDIR_DEFAULT ").\n";

/* Writes all of buffer to fd.  Returns 0 or -errno. */
static int write_all(int fd, const char *buffer, size_t length)
{
    while (length > 0) {
        ssize_t written = send(fd, buffer, length, MSG_NOSIGNAL);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buffer += written;
        length -= (size_t)written;
    }
    return 0;
}

/*
 * Sends command (with its newline) to the control endpoint at path and reads
 * the reply until EOF.  On success returns 0 and stores a NUL-terminated
 * reply in *reply_out, which the caller frees.  On failure prints one line
 * and returns an exit status (CLI_EXIT_FAILURE).
 */
static int control_request(const char *path, const char *command, char **reply_out)
{
    struct sockaddr_un address;
    struct timeval timeout = {.tv_sec = CONTROL_TIMEOUT_SECONDS};
    char *reply = NULL;
    size_t length = 0, capacity = 0;
    int error;

    *reply_out = NULL;
    if (cli_unix_address(path, &address) < 0) {
        cli_error("control endpoint path '%s' is too long", path);
        return CLI_EXIT_FAILURE;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cli_error("cannot make a Unix socket: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        cli_error("cannot reach control endpoint %s: %s (is 'usock up' running?)", path,
                  strerror(errno));
        goto fail_close;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    error = write_all(fd, command, strlen(command));
    if (error < 0) {
        cli_error("cannot send to control endpoint %s: %s", path, strerror(-error));
        goto fail_close;
    }
    for (;;) {
        if (capacity - length < 4096) {
            capacity = capacity ? capacity * 2 : 16384;
            if (capacity > CONTROL_REPLY_MAX) {
                cli_error("reply from control endpoint %s is too large", path);
                goto fail_free_reply;
            }
            char *grown = realloc(reply, capacity);
            if (!grown) {
                cli_error("out of memory");
                goto fail_free_reply;
            }
            reply = grown;
        }
        ssize_t got = recv(fd, reply + length, capacity - length - 1, 0);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                cli_error("no reply from control endpoint %s within %d s", path,
                          CONTROL_TIMEOUT_SECONDS);
            else
                cli_error("cannot read from control endpoint %s: %s", path, strerror(errno));
            goto fail_free_reply;
        }
        length += (size_t)got;
    }
    close(fd);
    if (!reply) {
        reply = malloc(1);
        if (!reply) {
            cli_error("out of memory");
            return CLI_EXIT_FAILURE;
        }
    }
    reply[length] = '\0';
    if (strncmp(reply, "error", 5) == 0 && (reply[5] == ' ' || reply[5] == '\n')) {
        size_t line = strcspn(reply, "\n");
        cli_error("control endpoint %s: %.*s", path, (int)line, reply);
        free(reply);
        return CLI_EXIT_FAILURE;
    }
    *reply_out = reply;
    return CLI_EXIT_OK;

fail_free_reply:
    free(reply);
fail_close:
    close(fd);
    return CLI_EXIT_FAILURE;
}

/* Parses the --name option and help shared by ss and stats.  Returns 1 when
 * argv[*index] was consumed, 0 when it was not, or -1 after an error. */
static int take_name(int argc, char **argv, int *index, const char **name)
{
    int taken = cli_take_value(argc, argv, index, "--name", name);

    if (taken == 1 && cli_check_name(*name) < 0)
        return -1;
    return taken;
}

/* Applies one short-option letter of ss.  Returns false for a letter ss
 * does not take here. */
static bool ss_apply_letter(char letter, unsigned *kinds, enum socket_listening_filter *listening,
                            bool *details, bool *processes)
{
    switch (letter) {
    case 'p':
        *processes = true;
        return true;
    case 'i':
        *details = true;
        return true;
    case 't':
        *kinds |= SOCKET_KIND_TCP;
        return true;
    case 'u':
        *kinds |= SOCKET_KIND_UDP;
        return true;
    case 'w':
        *kinds |= SOCKET_KIND_RAW;
        return true;
    case 'l':
        if (*listening != SOCKET_SHOW_ALL)
            *listening = SOCKET_SHOW_LISTENING;
        return true;
    case 'a':
        *listening = SOCKET_SHOW_ALL;
        return true;
    case 'n':
    case '4':
        return true;
    default:
        return false;
    }
}

/* Fills row->process as ss -p shows it, users:(("COMM",pid=PID),...),
 * each command name read from /proc/PID/comm ("?" when the process is gone
 * or hidden). */
static void row_name_process(struct socket_row *row)
{
    size_t used = (size_t)snprintf(row->process, sizeof(row->process), "users:(");
    for (int i = 0; i < row->owner_pid_count && used < sizeof(row->process); i++) {
        char path[64], name[32] = "?";
        snprintf(path, sizeof(path), "/proc/%d/comm", row->owner_pids[i]);
        FILE *file = fopen(path, "r");
        if (file) {
            if (fgets(name, sizeof(name), file))
                name[strcspn(name, "\n")] = '\0';
            fclose(file);
        }
        used += (size_t)snprintf(row->process + used, sizeof(row->process) - used,
                                 "%s(\"%s\",pid=%d)", i ? "," : "", name, row->owner_pids[i]);
    }
    if (used < sizeof(row->process))
        snprintf(row->process + used, sizeof(row->process) - used, ")");
}

int cmd_ss(int argc, char **argv)
{
    static const struct {
        const char *name;
        char letter;
    } long_flags[] = {
        {"--tcp", 't'}, {"--udp", 'u'}, {"--raw", 'w'},    {"--listening", 'l'},
        {"--all", 'a'}, {"--numeric", 'n'}, {"--ipv4", '4'}, {"--info", 'i'},
        {"--processes", 'p'},
    };
    const char *name = CLI_NAME_DEFAULT;
    unsigned kinds = 0;
    enum socket_listening_filter listening = SOCKET_SHOW_CONNECTED;
    bool details = false, processes = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (cli_is_help(arg)) {
            fputs(ss_usage, stdout);
            return CLI_EXIT_OK;
        }
        int taken = take_name(argc, argv, &i, &name);
        if (taken < 0)
            return CLI_EXIT_USAGE;
        if (taken)
            continue;
        bool known = false;
        if (strncmp(arg, "--", 2) == 0) {
            for (size_t j = 0; j < sizeof(long_flags) / sizeof(long_flags[0]); j++) {
                if (strcmp(arg, long_flags[j].name) == 0)
                    known = ss_apply_letter(long_flags[j].letter, &kinds, &listening, &details,
                                            &processes);
            }
        } else if (arg[0] == '-' && arg[1] != '\0') {
            known = true;
            for (const char *letter = arg + 1; *letter; letter++) {
                if (!ss_apply_letter(*letter, &kinds, &listening, &details, &processes)) {
                    cli_error("unknown option '-%c' in '%s' (try 'usock ss --help')", *letter,
                              arg);
                    return CLI_EXIT_USAGE;
                }
            }
        }
        if (!known) {
            cli_error("unknown option '%s' (try 'usock ss --help')", arg);
            return CLI_EXIT_USAGE;
        }
    }
    if (kinds == 0)
        kinds = SOCKET_KIND_TCP | SOCKET_KIND_UDP | SOCKET_KIND_RAW;

    char path[256];
    if (cli_control_path(name, path, sizeof(path)) < 0)
        return CLI_EXIT_USAGE;
    char *reply;
    int status = control_request(path, "ss\n", &reply);
    if (status != CLI_EXIT_OK)
        return status;

    size_t lines = 0;
    for (const char *c = reply; *c; c++)
        lines += *c == '\n';
    struct socket_row *rows = calloc(lines + 1, sizeof(*rows));
    if (!rows) {
        cli_error("out of memory");
        free(reply);
        return CLI_EXIT_FAILURE;
    }
    size_t count = 0;
    char *saved = NULL;
    for (char *line = strtok_r(reply, "\n", &saved); line; line = strtok_r(NULL, "\n", &saved)) {
        struct socket_row row;
        if (socket_row_parse(line, &row) < 0) {
            cli_error("malformed line from control endpoint %s: '%s'", path, line);
            status = CLI_EXIT_FAILURE;
            goto out;
        }
        if (processes && row.owner_pid_count > 0)
            row_name_process(&row);
        if (socket_row_selected(&row, kinds, listening))
            rows[count++] = row;
    }
    socket_table_print_processes(stdout, rows, count, details, processes);
out:
    free(rows);
    free(reply);
    return status;
}

int cmd_stats(int argc, char **argv)
{
    const char *name = CLI_NAME_DEFAULT;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(stats_usage, stdout);
            return CLI_EXIT_OK;
        }
        int taken = take_name(argc, argv, &i, &name);
        if (taken < 0)
            return CLI_EXIT_USAGE;
        if (!taken) {
            cli_error("unknown option '%s' (try 'usock stats --help')", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    char path[256];
    if (cli_control_path(name, path, sizeof(path)) < 0)
        return CLI_EXIT_USAGE;
    char *reply;
    int status = control_request(path, "stats\n", &reply);
    if (status != CLI_EXIT_OK)
        return status;
    fputs(reply, stdout);
    free(reply);
    return CLI_EXIT_OK;
}
