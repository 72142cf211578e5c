/*
 * socket_table.c - the socket table in the columns of ss(8).
 *
 * Theory of operation: rows come either from the control endpoint's "ss"
 * reply (one tab-separated line per socket, already formatted by the server)
 * or straight from usock_stack_sockets (the in-process demo).  Both become a
 * struct socket_row of strings, so filtering and printing do not care where a
 * row came from.
 *
 * An attached program's socket (usock_attach) carries a ninth field in the
 * reply, the program's process id; ss -p shows it as ss(8) does,
 * users:(("COMM",pid=PID)), in a last column.
 *
 * Layout follows iproute2's ss: Netid, State, Recv-Q and Send-Q are
 * left-aligned; in each "Address:Port" column the address is right-aligned
 * and the port left-aligned, so the colons of a column line up under the
 * header's colon.  Column widths are the widest cell, header included; the
 * last column carries no trailing spaces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Copies at most size-1 bytes of text[0..length) into out; false when it
 * did not fit. */
static bool copy_field(char *out, size_t size, const char *text, size_t length)
{
    if (length >= size)
        return false;
    memcpy(out, text, length);
    out[length] = '\0';
    return true;
}

/* Splits "ADDRESS:PORT" at its last colon (ports never hold one). */
static bool split_endpoint(const char *text, size_t length, char *address, size_t address_size,
                           char *port, size_t port_size)
{
    const char *colon = NULL;

    for (size_t i = 0; i < length; i++) {
        if (text[i] == ':')
            colon = text + i;
    }
    if (!colon)
        return false;
    size_t address_length = (size_t)(colon - text);
    return copy_field(address, address_size, text, address_length) &&
           copy_field(port, port_size, colon + 1, length - address_length - 1);
}

int socket_row_parse(const char *line, struct socket_row *row)
{
    const char *fields[9];
    size_t lengths[9];
    const char *cursor = line;

    memset(row, 0, sizeof(*row));
    /* Seven fields, then the optional details and owner's process id; any
     * after those, if a later server sends them, are ignored. */
    for (size_t i = 0; i < 9; i++) {
        const char *tab = strchr(cursor, '\t');
        fields[i] = cursor;
        lengths[i] = tab ? (size_t)(tab - cursor) : strlen(cursor);
        if (!tab && i < 6)
            return -EINVAL;
        cursor = tab ? tab + 1 : cursor + lengths[i];
    }
    if (lengths[7] > 0 && !copy_field(row->details, sizeof(row->details), fields[7], lengths[7]))
        return -EINVAL;
    if (lengths[8] > 0) {
        /* PID[,PID...] */
        char pids[16 * USOCK_SOCKET_OWNERS_MAX];
        if (!copy_field(pids, sizeof(pids), fields[8], lengths[8]))
            return -EINVAL;
        const char *next = pids;
        while (*next) {
            char *end;
            long value = strtol(next, &end, 10);
            if (end == next || (*end != '\0' && *end != ',') || value <= 0 ||
                value > INT32_MAX || row->owner_pid_count == USOCK_SOCKET_OWNERS_MAX)
                return -EINVAL;
            row->owner_pids[row->owner_pid_count++] = (int)value;
            next = *end == ',' ? end + 1 : end;
        }
    }
    if (lengths[2] != 1 || (fields[2][0] != '0' && fields[2][0] != '1'))
        return -EINVAL;
    row->listening = fields[2][0] == '1';
    if (!copy_field(row->netid, sizeof(row->netid), fields[0], lengths[0]) ||
        !copy_field(row->state, sizeof(row->state), fields[1], lengths[1]) ||
        !copy_field(row->receive_queue, sizeof(row->receive_queue), fields[3], lengths[3]) ||
        !copy_field(row->send_queue, sizeof(row->send_queue), fields[4], lengths[4]) ||
        !split_endpoint(fields[5], lengths[5], row->local_address, sizeof(row->local_address),
                        row->local_port, sizeof(row->local_port)) ||
        !split_endpoint(fields[6], lengths[6], row->peer_address, sizeof(row->peer_address),
                        row->peer_port, sizeof(row->peer_port)))
        return -EINVAL;
    return 0;
}

/* Formats one endpoint as ss does: port 0 shows as "*". */
static void format_endpoint(const struct sockaddr_in *endpoint, char *address, size_t address_size,
                            char *port, size_t port_size)
{
    if (!inet_ntop(AF_INET, &endpoint->sin_addr, address, (socklen_t)address_size))
        snprintf(address, address_size, "?");
    if (endpoint->sin_port == 0)
        snprintf(port, port_size, "*");
    else
        snprintf(port, port_size, "%u", (unsigned)ntohs(endpoint->sin_port));
}

void socket_row_from_info(const struct usock_socket_info *info, struct socket_row *row)
{
    memset(row, 0, sizeof(*row));
    const char *netid = info->type == SOCK_STREAM  ? "tcp"
                        : info->type == SOCK_DGRAM ? "udp"
                        : info->type == SOCK_RAW   ? "raw"
                                                   : "???";
    snprintf(row->netid, sizeof(row->netid), "%s", netid);
    snprintf(row->state, sizeof(row->state), "%s", info->state ? info->state : "UNKNOWN");
    row->listening = info->listening != 0;
    snprintf(row->receive_queue, sizeof(row->receive_queue), "%zu", info->receive_queue);
    snprintf(row->send_queue, sizeof(row->send_queue), "%zu", info->send_queue);
    snprintf(row->details, sizeof(row->details), "%s", info->details);
    for (int i = 0; i < info->owner_pid_count && i < USOCK_SOCKET_OWNERS_MAX; i++)
        row->owner_pids[row->owner_pid_count++] = info->owner_pids[i];
    format_endpoint(&info->local, row->local_address, sizeof(row->local_address),
                    row->local_port, sizeof(row->local_port));
    format_endpoint(&info->peer, row->peer_address, sizeof(row->peer_address), row->peer_port,
                    sizeof(row->peer_port));
}

bool socket_row_selected(const struct socket_row *row, unsigned kinds,
                         enum socket_listening_filter listening)
{
    unsigned kind = strcmp(row->netid, "tcp") == 0   ? SOCKET_KIND_TCP
                    : strcmp(row->netid, "udp") == 0 ? SOCKET_KIND_UDP
                    : strcmp(row->netid, "raw") == 0 ? SOCKET_KIND_RAW
                                                     : 0;
    /* A kind this tool does not know is shown only when no kind was asked. */
    if (kind == 0 && kinds != (SOCKET_KIND_TCP | SOCKET_KIND_UDP | SOCKET_KIND_RAW))
        return false;
    if (kind != 0 && !(kinds & kind))
        return false;
    switch (listening) {
    case SOCKET_SHOW_CONNECTED:
        return !row->listening;
    case SOCKET_SHOW_LISTENING:
        return row->listening;
    case SOCKET_SHOW_ALL:
        return true;
    }
    return true;
}

/* The widths of the table's columns. */
struct column_widths {
    int netid, state, receive_queue, send_queue;
    int local_address, local_port, peer_address, peer_port;
};

/* Widens *width to fit text. */
static void fit(int *width, const char *text)
{
    int length = (int)strlen(text);

    if (length > *width)
        *width = length;
}

void socket_table_print(FILE *out, const struct socket_row *rows, size_t count, bool details)
{
    socket_table_print_processes(out, rows, count, details, false);
}

void socket_table_print_processes(FILE *out, const struct socket_row *rows, size_t count,
                                  bool details, bool processes)
{
    struct column_widths w = {
        .netid = (int)strlen("Netid"),
        .state = (int)strlen("State"),
        .receive_queue = (int)strlen("Recv-Q"),
        .send_queue = (int)strlen("Send-Q"),
        .local_address = (int)strlen("Local Address"),
        .local_port = (int)strlen("Port"),
        .peer_address = (int)strlen("Peer Address"),
        .peer_port = (int)strlen("Port"),
    };
    for (size_t i = 0; i < count; i++) {
        fit(&w.netid, rows[i].netid);
        fit(&w.state, rows[i].state);
        fit(&w.receive_queue, rows[i].receive_queue);
        fit(&w.send_queue, rows[i].send_queue);
        fit(&w.local_address, rows[i].local_address);
        fit(&w.local_port, rows[i].local_port);
        fit(&w.peer_address, rows[i].peer_address);
        fit(&w.peer_port, rows[i].peer_port);
    }
    if (processes) {
        fprintf(out, "%-*s %-*s %-*s %-*s %*s:%-*s %*s:%-*s Process\n", w.netid, "Netid",
                w.state, "State", w.receive_queue, "Recv-Q", w.send_queue, "Send-Q",
                w.local_address, "Local Address", w.local_port, "Port", w.peer_address,
                "Peer Address", w.peer_port, "Port");
    } else {
        fprintf(out, "%-*s %-*s %-*s %-*s %*s:%-*s %*s:%s\n", w.netid, "Netid", w.state,
                "State", w.receive_queue, "Recv-Q", w.send_queue, "Send-Q", w.local_address,
                "Local Address", w.local_port, "Port", w.peer_address, "Peer Address", "Port");
    }
    for (size_t i = 0; i < count; i++) {
        const struct socket_row *row = &rows[i];
        if (processes && row->process[0])
            fprintf(out, "%-*s %-*s %-*s %-*s %*s:%-*s %*s:%-*s %s\n", w.netid, row->netid,
                    w.state, row->state, w.receive_queue, row->receive_queue, w.send_queue,
                    row->send_queue, w.local_address, row->local_address, w.local_port,
                    row->local_port, w.peer_address, row->peer_address, w.peer_port,
                    row->peer_port, row->process);
        else
            fprintf(out, "%-*s %-*s %-*s %-*s %*s:%-*s %*s:%s\n", w.netid, row->netid, w.state,
                    row->state, w.receive_queue, row->receive_queue, w.send_queue,
                    row->send_queue, w.local_address, row->local_address, w.local_port,
                    row->local_port, w.peer_address, row->peer_address, row->peer_port);
        if (details && row->details[0])
            fprintf(out, "\t %s\n", row->details);
    }
}
