/*
 * main.c - the `usock` command: picks the subcommand.
 *
 * Theory of operation: argv[1] names a subcommand; the rest of argv goes to
 * it unchanged (argv[0] of the subcommand is its own name).  Each subcommand
 * parses its own options, prints its own usage for --help, and returns the
 * exit status (see cli.h).  `usock help` and `usock --help` print the summary
 * below to stdout; no subcommand, or an unknown one, prints a one-line error
 * and exits 2.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
    "usage: usock COMMAND [OPTIONS]\n"
    "\n"
    "A TCP/IP stack in user space.\n"
    "\n"
    "commands:\n"
    "  up --link LINK --addr A.B.C.D/N [--gateway IP] [--mac MAC] [--mtu N]\n"
    "     [--name NAME] [--pcap FILE] [--impair SPEC] [--serve SPEC]...\n"
    "        run a stack in the foreground until SIGINT or SIGTERM\n"
    "  ss [-t] [-u] [-w] [-l] [-a] [-n] [-i] [-p] [--name NAME]\n"
    "        show the sockets of a running stack, as ss(8) does\n"
    "  stats [--name NAME]\n"
    "        show the counters of a running stack\n"
    "  relay LINK LINK [--impair SPEC] [--pcap FILE]\n"
    "        forward frames between two links until SIGINT or SIGTERM\n"
    "  nc [-u] [-l] [-p PORT] [-w SECONDS] --link LINK --addr A.B.C.D/N\n"
    "     [--gateway IP] [--mac MAC] [--pcap FILE] [--impair SPEC] [HOST] PORT\n"
    "        netcat on a stack of its own: stdin to HOST:PORT, replies to stdout\n"
    "  nc [-u] [-l] [-p PORT] [-w SECONDS] --attach NAME [HOST] PORT\n"
    "        the same on the running stack NAME (usock_attach), no stack of its own\n"
    "  ping [-c COUNT] [-i INTERVAL] [-s SIZE] [-t TTL] [-W TIMEOUT] --link LINK\n"
    "     --addr A.B.C.D/N [--gateway IP] [--mac MAC] [--pcap FILE] [--impair SPEC] HOST\n"
    "        ICMP echo from a stack of its own, printed as iputils ping prints it\n"
    "  raw [-p PROTO] [--hdrincl] [-c COUNT] [-w SECONDS] [-x] --link LINK\n"
    "     --addr A.B.C.D/N [--gateway IP] [--mac MAC] [--pcap FILE] [--impair SPEC] [HOST]\n"
    "        a raw IP socket on a stack of its own: prints what arrives, sends stdin's hex\n"
    "  run [--name NAME] -- PROGRAM [ARGS...]\n"
    "        run an unmodified program with its IPv4 sockets on the running stack NAME\n"
    "  demo-mem\n"
    "        two stacks on an in-memory wire exchange UDP (no root needed)\n"
    "  help\n"
    "        show this text\n"
    "\n"
    "links: tap:NAME, tun:NAME, packet:IFNAME, mem (an in-memory wire)\n"
    "`usock COMMAND --help` describes each command.\n";

/* One subcommand: its name and entry point. */
struct command {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"up", cmd_up},
    {"ss", cmd_ss},
    {"stats", cmd_stats},
    {"relay", cmd_relay},
    {"nc", cmd_nc},
    {"ping", cmd_ping},
    {"raw", cmd_raw},
    {"run", cmd_run},
    {"demo-mem", cmd_demo_memory},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_error("no command given (try 'usock help')");
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || cli_is_help(name)) {
        fputs(usage_text, stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    cli_error("unknown command '%s' (try 'usock help')", name);
    return CLI_EXIT_USAGE;
}
