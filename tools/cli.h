/*
 * cli.h - what the files of the `usock` command share.
 *
 * The command is one executable with subcommands (up, ss, stats, relay,
 * nc, ping, raw, run, demo-mem), one file each.  This header declares the
 * helpers they have in
 * common: error messages and exit statuses, option parsing, the parsers of
 * addresses and link specs, the control endpoint's path, the socket table
 * printer and the built-in services.
 *
 * Exit statuses: 0 success, 1 a failure at run time (a control endpoint that
 * cannot be reached, a stack that will not start), 2 bad arguments (anything
 * the user can fix by typing the command differently, including running it
 * without the permission a TAP device needs).  Every error is one line on
 * stderr that starts with "usock: ".
 */
#ifndef USOCK_TOOLS_CLI_H
#define USOCK_TOOLS_CLI_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/un.h>

#include "usock.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,
    CLI_EXIT_USAGE = 2,
};

/* Default directory of control endpoints, overridden by $USOCK_RUNDIR. */
#define CLI_RUNDIR_DEFAULT "/run/usock"
/* Stack name when --name is not given; also the control endpoint's name. */
#define CLI_NAME_DEFAULT "usock"

/* ---- subcommands (each returns the process exit status) ---- */
int cmd_up(int argc, char **argv);
int cmd_ss(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_relay(int argc, char **argv);
int cmd_demo_memory(int argc, char **argv);
int cmd_nc(int argc, char **argv);
int cmd_ping(int argc, char **argv);
int cmd_raw(int argc, char **argv);
int cmd_run(int argc, char **argv);

/* ---- messages ---- */

/* Prints "usock: " and the formatted message and a newline to stderr. */
void cli_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* ---- options ---- */

/* True when argv[index] asks for help (-h or --help). */
bool cli_is_help(const char *arg);

/* Matches argv[*index] against the long option `name` ("--addr"), given as
 * "--addr VALUE" or "--addr=VALUE".  Returns 1 and stores the value (a
 * pointer into argv) and advances *index past a separate value; 0 when the
 * argument is another option; -1 after printing an error when the value is
 * missing or empty. */
int cli_take_value(int argc, char **argv, int *index, const char *name, const char **value);

/* ---- parsers; each prints its own one-line error ---- */

/* "A.B.C.D/N" (N 0..32; a bare address means /32).  Returns 0 or -EINVAL. */
int cli_parse_prefix(const char *text, struct in_addr *address, unsigned *prefix_length);
/* A dotted-quad address; what names the value in messages ("gateway"). */
int cli_parse_address(const char *text, const char *what, struct in_addr *address);
/* "aa:bb:cc:dd:ee:ff".  Returns 0 or -EINVAL. */
int cli_parse_mac(const char *text, uint8_t mac[6]);
/* A decimal number in minimum..maximum; what names it in messages. */
int cli_parse_unsigned(const char *text, const char *what, unsigned minimum, unsigned maximum,
                       unsigned *value);
/* A byte count with an optional K, M or G (powers of 1024), 1 to 1 TiB.
 * Returns 0 or -EINVAL after printing the problem. */
int cli_parse_size(const char *text, const char *what, size_t *value);
/* A stack name: nonempty, no '/', not "." or "..". */
int cli_check_name(const char *name);

/* Opens the link named by spec (tap:NAME, tun:NAME, packet:IF, or "mem"
 * when allow_memory is set).  For "mem" an in-memory wire is made and its far
 * end, which nothing drives, is stored in *far_end for the caller to close
 * after the stack is gone; otherwise *far_end is set to NULL.  Returns an
 * exit status: 0 with *link_out set, or 1/2 after printing the reason. */
int cli_open_link(const char *spec, bool allow_memory, struct usock_link **link_out,
                  struct usock_link **far_end);

/* Parses an impairment spec for --impair.  Returns 0 or -EINVAL after
 * printing the reason. */
int cli_parse_impairment(const char *spec, struct usock_impairment *impairment);

/* Wraps *link in an impairment (when impairment is not NULL), then in a pcap
 * writer (when pcap_path is not NULL), so the pcap shows what crossed the
 * outermost link.  Ownership of *link passes through; on failure *link has
 * been closed and set to NULL.  Returns an exit status as cli_open_link. */
int cli_wrap_link(struct usock_link **link, const struct usock_impairment *impairment,
                  const char *pcap_path);

/* ---- stack options (--link --addr --gateway --mac --mtu --pcap --impair --no-offload) ---- */

/* The usage lines of the stack options, for a subcommand's --help. */
#define CLI_STACK_OPTIONS_USAGE                                                            \
    "  --link LINK      tap:NAME, tun:NAME, packet:IFNAME, or mem (a wire to nowhere)\n"   \
    "  --addr A.B.C.D/N the stack's address and prefix length (bare address: /32)\n"      \
    "  --gateway IP     default gateway\n"                                                 \
    "  --mac MAC        hardware address (default: the link's, or a random local one)\n"  \
    "  --mtu N          MTU (default: the link's)\n"                                       \
    "  --pcap FILE      write every frame sent and received to FILE\n"                     \
    "  --impair SPEC    impair the link both ways, e.g.\n"                                 \
    "                   loss=2%,dup=1%,reorder=10%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=N\n" \
    "  --no-offload     plain frames only (TAP: no checksum offload, TSO or super-segments)\n"

/* What a subcommand that makes its own stack was asked for, validated. */
struct cli_stack_options {
    const char *link_spec;    /* NULL until --link */
    const char *address_text; /* NULL until --addr */
    struct in_addr address;
    unsigned prefix_length;
    struct in_addr gateway; /* INADDR_ANY: none */
    uint8_t mac[6];         /* all zero: the link's, or a random one */
    unsigned mtu;           /* 0: the link's */
    const char *pcap_path;  /* NULL: no capture */
    bool impaired;
    struct usock_impairment impairment;
    bool no_offloads;       /* --no-offload */
};

/* Sets the defaults (nothing given, no gateway). */
void cli_stack_options_init(struct cli_stack_options *options);

/* Tries argv[*index] as one of the stack options ("--addr X" or
 * "--addr=X"), validating and storing its value.  Returns 1 when it was one
 * (*index advanced past a separate value), 0 when it is something else, -1
 * after printing the problem. */
int cli_stack_option(int argc, char **argv, int *index, struct cli_stack_options *options);

/* After parsing: checks that --link and --addr were given, that the
 * address can be an interface's and that the gateway is on its subnet.
 * Returns 0 or CLI_EXIT_USAGE after printing the problem. */
int cli_stack_options_check(const struct cli_stack_options *options);

/* Opens and wraps the link (impairment, then pcap outermost), makes the
 * stack named name and starts it in threaded mode.  For --link mem the far
 * end of the wire is stored in *far_end (else NULL); cli_stack_destroy
 * closes it.  Returns an exit status: 0 with *stack_out set, or 1/2 after
 * printing the reason (nothing is left open). */
int cli_stack_create(const struct cli_stack_options *options, const char *name,
                     struct usock_stack **stack_out, struct usock_link **far_end);

/* Stops and frees a stack from cli_stack_create (flushing its pcap) and
 * closes the far end of its wire. */
void cli_stack_destroy(struct usock_stack *stack, struct usock_link *far_end);

/* ---- control endpoint ---- */

/* Writes "$USOCK_RUNDIR/NAME.sock" into path.  Returns 0, or -ENAMETOOLONG
 * (after printing an error) when it does not fit a Unix socket address. */
int cli_control_path(const char *name, char *path, size_t size);
/* Writes "$USOCK_RUNDIR/NAME.api" (the sockets API of usock_attach) into
 * path.  Returns 0, or -ENAMETOOLONG after printing an error. */
int cli_api_path(const char *name, char *path, size_t size);
/* Fills a Unix socket address for path.  Returns 0 or -ENAMETOOLONG. */
int cli_unix_address(const char *path, struct sockaddr_un *address);
/* The directory part of cli_control_path. */
const char *cli_rundir(void);

/* ---- socket table (the columns of ss) ---- */

struct socket_row {
    char netid[8];    /* udp, tcp, raw */
    char state[16];   /* UNCONN, ESTAB, LISTEN ... */
    bool listening;   /* shown by -l, hidden by default */
    char receive_queue[24];
    char send_queue[24];
    char local_address[48];
    char local_port[8];
    char peer_address[48];
    char peer_port[8];
    char details[256]; /* ss -i: protocol details, empty when none */
    /* the attached programs holding it (usock_attach, shared after fork) */
    int owner_pids[USOCK_SOCKET_OWNERS_MAX];
    int owner_pid_count;
    char process[512]; /* ss -p: users:(("COMM",pid=PID),...), filled by the ss tool */
};

enum socket_kind {
    SOCKET_KIND_TCP = 1 << 0,
    SOCKET_KIND_UDP = 1 << 1,
    SOCKET_KIND_RAW = 1 << 2,
};

enum socket_listening_filter {
    SOCKET_SHOW_CONNECTED, /* ss default: not listening */
    SOCKET_SHOW_LISTENING, /* ss -l */
    SOCKET_SHOW_ALL,       /* ss -a */
};

/* Parses one line of the control endpoint's "ss" reply (tab-separated, no
 * newline) into row.  Returns 0 or -EINVAL. */
int socket_row_parse(const char *line, struct socket_row *row);
/* Formats a row of usock_stack_sockets as ss shows it. */
void socket_row_from_info(const struct usock_socket_info *info, struct socket_row *row);
/* Whether row passes the filter (kinds a mask of enum socket_kind). */
bool socket_row_selected(const struct socket_row *row, unsigned kinds,
                         enum socket_listening_filter listening);
/* Prints the header and rows in aligned columns, as ss does; with
 * details, each row with details is followed by a line of them (ss -i). */
void socket_table_print(FILE *out, const struct socket_row *rows, size_t count, bool details);
/* socket_table_print with, when processes, a last column "Process" giving
 * each row's process as ss -p does (rows' process field). */
void socket_table_print_processes(FILE *out, const struct socket_row *rows, size_t count,
                                  bool details, bool processes);

/* ---- built-in services (--serve) ---- */

enum service_kind {
    SERVICE_UDP_ECHO,
    SERVICE_UDP_DISCARD,
    SERVICE_TCP_ECHO,
    SERVICE_TCP_DISCARD,
    SERVICE_HTTP,
    SERVICE_KIND_COUNT,
};

struct service_spec {
    enum service_kind kind;
    uint16_t port;
};

struct service;

/* Parses "KIND:PORT", KIND one of udp-echo, udp-discard, tcp-echo,
 * tcp-discard, http.  Returns 0 or -EINVAL (after printing an error). */
int service_spec_parse(const char *text, struct service_spec *spec);
/* Whether the service listens on a TCP port (else a UDP one). */
bool service_is_tcp(enum service_kind kind);
/* Binds the service's socket on stack (which must be running threaded) and
 * starts its thread.  Returns 0 with *service_out set, or -errno after
 * printing an error. */
int service_start(struct usock_stack *stack, const struct service_spec *spec,
                  struct service **service_out);
/* Tells the service's thread to stop, joins it, closes its socket and frees
 * it.  Must be called before the stack is freed. */
void service_stop(struct service *service);

#endif /* USOCK_TOOLS_CLI_H */
