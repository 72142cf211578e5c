/*
 * relay.c - `usock relay`: a two-port bridge between links, optionally
 * impairing what crosses it.
 *
 * Theory of operation: two links are opened from their specs.  With
 * --impair, the first link is wrapped in usock_link_impair, which impairs
 * frames in both directions, so every frame crossing the relay is impaired
 * exactly once whichever way it travels.  With --pcap, the first link is
 * then wrapped outermost in a pcap writer, so the file shows the frames as
 * the relay received them from and sent them to that side.  The loop then poll()s on both links' descriptors and a signalfd for
 * SIGINT/SIGTERM, with a timeout until the earliest held-back frame is due
 * (usock_link_deadline), and moves every waiting frame to the other link.
 * A link that cannot take a frame drops it, as a switch port would; the
 * drops are counted and reported at exit.  Both links must carry the same
 * thing (Ethernet frames, or IP packets).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"

/* Frames moved from one link per wakeup before the other gets a turn. */
#define RELAY_BURST 256
/* Largest frame a link hands over (64 KiB IP packet, Ethernet, VLAN). */
#define RELAY_FRAME_MAX (65535 + 18)

static const char relay_usage[] =
    "usage: usock relay LINK LINK [--impair SPEC] [--pcap FILE]\n"
    "\n"
    "Forwards frames between two links until SIGINT or SIGTERM.\n"
    "  LINK           tap:NAME, tun:NAME or packet:IFNAME (both of one layer)\n"
    "  --impair SPEC  impair frames in both directions, e.g.\n"
    "                 loss=2%,dup=1%,reorder=10%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=N\n"
    "  --pcap FILE    write the frames crossing the first link to FILE\n";

/* One side of the relay and what happened to frames sent out of it. */
struct relay_port {
    struct usock_link *link;
    const char *spec;
    uint64_t forwarded;
    uint64_t dropped;
};

/*
 * Moves up to RELAY_BURST waiting frames from `from` to `to`.  Returns 1 when
 * frames may still be waiting, 0 when `from` is drained, or a negative errno
 * when receiving failed (the link is unusable).
 */
static int relay_move(struct relay_port *from, struct relay_port *to, uint8_t *frame)
{
    for (int moved = 0; moved < RELAY_BURST; moved++) {
        uint64_t now = usock_monotonic_ns(NULL);
        ssize_t length = usock_link_receive(from->link, frame, RELAY_FRAME_MAX, now);
        if (length == -EAGAIN)
            return 0;
        if (length == -EINTR)
            continue;
        if (length < 0)
            return (int)length;
        if (usock_link_send(to->link, frame, (size_t)length, now) < 0)
            to->dropped++;
        else
            to->forwarded++;
    }
    return 1;
}

/* Milliseconds poll() should wait for the earlier of the two links'
 * deadlines: -1 when neither holds a frame, rounded up so a wakeup is never
 * early. */
static int relay_timeout_ms(struct relay_port ports[2])
{
    uint64_t now = usock_monotonic_ns(NULL);
    uint64_t deadline = USOCK_NEVER;

    for (int i = 0; i < 2; i++) {
        uint64_t due = usock_link_deadline(ports[i].link, now);
        if (due < deadline)
            deadline = due;
    }
    if (deadline == USOCK_NEVER)
        return -1;
    if (deadline <= now)
        return 0;
    uint64_t milliseconds = (deadline - now + 999999) / 1000000;
    return milliseconds > 60000 ? 60000 : (int)milliseconds;
}

/* Parses the relay's arguments.  Returns -1 for --help, 0, or
 * CLI_EXIT_USAGE after printing the problem. */
static int relay_parse(int argc, char **argv, const char *specs[2], const char **impair_spec,
                       struct usock_impairment *impairment, const char **pcap_path)
{
    int spec_count = 0;
    const char *value;

    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(relay_usage, stdout);
            return -1;
        }
        int taken = cli_take_value(argc, argv, &i, "--impair", &value);
        if (taken == 1) {
            if (cli_parse_impairment(value, impairment) < 0)
                return CLI_EXIT_USAGE;
            *impair_spec = value;
            continue;
        }
        if (taken == 0)
            taken = cli_take_value(argc, argv, &i, "--pcap", &value);
        if (taken == 1) {
            *pcap_path = value;
            continue;
        }
        if (taken < 0)
            return CLI_EXIT_USAGE;
        if (argv[i][0] == '-') {
            cli_error("unknown option '%s' (try 'usock relay --help')", argv[i]);
            return CLI_EXIT_USAGE;
        }
        if (spec_count == 2) {
            cli_error("too many links: '%s' (a relay joins two)", argv[i]);
            return CLI_EXIT_USAGE;
        }
        specs[spec_count++] = argv[i];
    }
    if (spec_count < 2) {
        cli_error("a relay needs two links (e.g. usock relay tap:tap0 tap:tap1)");
        return CLI_EXIT_USAGE;
    }
    if (strcmp(specs[0], specs[1]) == 0) {
        cli_error("cannot relay %s to itself", specs[0]);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cmd_relay(int argc, char **argv)
{
    const char *specs[2] = {NULL, NULL};
    const char *impair_spec = NULL, *pcap_path = NULL;
    struct usock_impairment impairment;
    struct relay_port ports[2] = {{0}};
    struct usock_link *unused;
    uint8_t *frame = NULL;
    int status;

    status = relay_parse(argc, argv, specs, &impair_spec, &impairment, &pcap_path);
    if (status < 0)
        return CLI_EXIT_OK;
    if (status != 0)
        return status;

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    /* Background jobs of a shell start with SIGINT ignored; see up.c. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
    if (signal_fd < 0) {
        cli_error("signalfd: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }

    for (int i = 0; i < 2; i++) {
        ports[i].spec = specs[i];
        status = cli_open_link(specs[i], false, &ports[i].link, &unused);
        if (status != CLI_EXIT_OK)
            goto fail_close_links;
    }
    if (usock_link_carries_ip(ports[0].link) != usock_link_carries_ip(ports[1].link)) {
        cli_error("cannot relay between %s and %s: one carries Ethernet frames, the other IP",
                  specs[0], specs[1]);
        status = CLI_EXIT_USAGE;
        goto fail_close_links;
    }
    /* One impairment wrapper already acts on both directions (usock.h), so
     * only the first link gets one: wrapping both would impair every frame
     * twice, once on receipt and once on sending. */
    status = cli_wrap_link(&ports[0].link, impair_spec ? &impairment : NULL, pcap_path);
    if (status != CLI_EXIT_OK)
        goto fail_close_links;
    frame = malloc(RELAY_FRAME_MAX);
    if (!frame) {
        cli_error("out of memory");
        status = CLI_EXIT_FAILURE;
        goto fail_close_links;
    }

    fprintf(stderr, "usock: relaying %s <-> %s%s%s\n", specs[0], specs[1],
            impair_spec ? " with impairment " : "", impair_spec ? impair_spec : "");
    status = CLI_EXIT_OK;
    for (bool stopping = false; !stopping;) {
        struct pollfd fds[3] = {
            {.fd = signal_fd, .events = POLLIN},
            {.fd = usock_link_wait_fd(ports[0].link), .events = POLLIN},
            {.fd = usock_link_wait_fd(ports[1].link), .events = POLLIN},
        };
        int timeout = relay_timeout_ms(ports);
        /* A link without a descriptor can only be polled by time. */
        if ((fds[1].fd < 0 || fds[2].fd < 0) && (timeout < 0 || timeout > 10))
            timeout = 10;
        if (poll(fds, 3, timeout) < 0 && errno != EINTR) {
            cli_error("poll: %s", strerror(errno));
            status = CLI_EXIT_FAILURE;
            break;
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo info;
            if (read(signal_fd, &info, sizeof(info)) > 0)
                stopping = true;
        }
        /* Keep moving while either side may still have frames, so a burst
         * is not left waiting for a descriptor that will not wake again. */
        for (int busy = 1; busy && !stopping;) {
            busy = 0;
            for (int i = 0; i < 2; i++) {
                int moved = relay_move(&ports[i], &ports[1 - i], frame);
                if (moved < 0) {
                    cli_error("cannot receive from %s: %s", ports[i].spec, strerror(-moved));
                    status = CLI_EXIT_FAILURE;
                    stopping = true;
                    break;
                }
                busy |= moved;
            }
        }
    }
    fprintf(stderr,
            "usock: relay stopped; to %s: %llu forwarded, %llu dropped; to %s: %llu "
            "forwarded, %llu dropped\n",
            specs[0], (unsigned long long)ports[0].forwarded,
            (unsigned long long)ports[0].dropped, specs[1],
            (unsigned long long)ports[1].forwarded, (unsigned long long)ports[1].dropped);
    free(frame);

fail_close_links:
    for (int i = 0; i < 2; i++) {
        if (ports[i].link)
            usock_link_close(ports[i].link);
    }
    close(signal_fd);
    return status;
}
