/*
 * cli.c - helpers the subcommands share: messages, options, parsers, links.
 *
 * Theory of operation: every parser here validates the whole text before
 * storing anything, and on failure prints exactly one line naming the bad
 * value, so a subcommand can return CLI_EXIT_USAGE without printing more.
 * Link specs are checked for their kind before usock_link_open sees them, so
 * a typo gets a message listing the kinds rather than a bare EINVAL; errors
 * from usock_link_open are then turned into messages a user can act on
 * (no permission -> run as root).  Nothing here keeps state between calls.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "cli.h"

void cli_error(const char *format, ...)
{
    va_list arguments;

    va_start(arguments, format);
    fputs("usock: ", stderr);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int cli_take_value(int argc, char **argv, int *index, const char *name, const char **value)
{
    const char *arg = argv[*index];
    size_t name_length = strlen(name);

    if (strncmp(arg, name, name_length) != 0)
        return 0;
    if (arg[name_length] == '=') {
        *value = arg + name_length + 1;
    } else if (arg[name_length] == '\0') {
        /* A following option is taken for a forgotten value, not a value. */
        if (*index + 1 >= argc || strncmp(argv[*index + 1], "--", 2) == 0) {
            cli_error("option '%s' needs a value", name);
            return -1;
        }
        *index += 1;
        *value = argv[*index];
    } else {
        return 0; /* "--addresses" is not "--addr" */
    }
    if (**value == '\0') {
        cli_error("option '%s' needs a value", name);
        return -1;
    }
    return 1;
}

/* Parses a dotted quad strictly (inet_pton, not inet_aton's "1.2" forms). */
static bool parse_dotted_quad(const char *text, struct in_addr *address)
{
    return inet_pton(AF_INET, text, address) == 1;
}

/* Parses a decimal number without sign, spaces or trailing junk.  Returns
 * false when text is not one; *overflow tells a number too large for
 * unsigned long apart from garbage. */
static bool parse_decimal(const char *text, unsigned long *value, bool *overflow)
{
    *overflow = false;
    if (*text < '0' || *text > '9')
        return false;
    char *end;
    errno = 0;
    *value = strtoul(text, &end, 10);
    if (*end != '\0')
        return false;
    if (errno == ERANGE)
        *overflow = true;
    return true;
}

int cli_parse_prefix(const char *text, struct in_addr *address, unsigned *prefix_length)
{
    char host[INET_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t host_length = slash ? (size_t)(slash - text) : strlen(text);

    if (host_length >= sizeof(host))
        goto bad_address;
    memcpy(host, text, host_length);
    host[host_length] = '\0';
    if (!parse_dotted_quad(host, address))
        goto bad_address;
    if (!slash) {
        *prefix_length = 32;
        return 0;
    }
    unsigned long length;
    bool overflow;
    if (!parse_decimal(slash + 1, &length, &overflow))
        goto bad_address;
    if (overflow || length > 32) {
        cli_error("prefix length %s is over 32", slash + 1);
        return -EINVAL;
    }
    *prefix_length = (unsigned)length;
    return 0;

bad_address:
    cli_error("bad address '%s'", text);
    return -EINVAL;
}

int cli_parse_address(const char *text, const char *what, struct in_addr *address)
{
    if (parse_dotted_quad(text, address))
        return 0;
    cli_error("bad %s address '%s'", what, text);
    return -EINVAL;
}

int cli_parse_mac(const char *text, uint8_t mac[6])
{
    unsigned octets[6];
    char tail;

    if (strlen(text) != 17 ||
        sscanf(text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &octets[0], &octets[1], &octets[2],
               &octets[3], &octets[4], &octets[5], &tail) != 6) {
        cli_error("bad MAC address '%s' (expected aa:bb:cc:dd:ee:ff)", text);
        return -EINVAL;
    }
    for (size_t i = 0; i < 6; i++)
        mac[i] = (uint8_t)octets[i];
    if (mac[0] & 0x01) {
        cli_error("MAC address '%s' is a multicast address", text);
        return -EINVAL;
    }
    return 0;
}

int cli_parse_unsigned(const char *text, const char *what, unsigned minimum, unsigned maximum,
                       unsigned *value)
{
    unsigned long number;
    bool overflow;

    if (!parse_decimal(text, &number, &overflow) || overflow || number < minimum ||
        number > maximum) {
        cli_error("bad %s '%s' (expected %u..%u)", what, text, minimum, maximum);
        return -EINVAL;
    }
    *value = (unsigned)number;
    return 0;
}

int cli_parse_size(const char *text, const char *what, size_t *value)
{
    static const size_t maximum = (size_t)1 << 40;
    char digits[32];
    size_t length = strlen(text);
    size_t scale = 1;
    if (length > 0 && length < sizeof(digits)) {
        switch (text[length - 1]) {
        case 'k': case 'K': scale = (size_t)1 << 10; break;
        case 'm': case 'M': scale = (size_t)1 << 20; break;
        case 'g': case 'G': scale = (size_t)1 << 30; break;
        default: break;
        }
    }
    if (length == 0 || length >= sizeof(digits))
        goto bad;
    memcpy(digits, text, length + 1);
    if (scale != 1)
        digits[length - 1] = '\0';
    unsigned long number;
    bool overflow;
    if (!parse_decimal(digits, &number, &overflow) || overflow || number == 0 ||
        number > maximum / scale)
        goto bad;
    *value = (size_t)number * scale;
    return 0;
bad:
    cli_error("bad %s '%s' (expected bytes, 1 to 1T, with an optional K, M or G)", what, text);
    return -EINVAL;
}

int cli_check_name(const char *name)
{
    if (*name == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0) {
        cli_error("bad name '%s' (a name may not be empty or contain '/')", name);
        return -EINVAL;
    }
    return 0;
}

const char *cli_rundir(void)
{
    const char *rundir = getenv("USOCK_RUNDIR");

    return rundir && *rundir ? rundir : CLI_RUNDIR_DEFAULT;
}

int cli_control_path(const char *name, char *path, size_t size)
{
    struct sockaddr_un unix_address;
    int length = snprintf(path, size, "%s/%s.sock", cli_rundir(), name);

    if (length < 0 || (size_t)length >= size ||
        (size_t)length >= sizeof(unix_address.sun_path)) {
        cli_error("control endpoint path '%s/%s.sock' is too long", cli_rundir(), name);
        return -ENAMETOOLONG;
    }
    return 0;
}

int cli_api_path(const char *name, char *path, size_t size)
{
    struct sockaddr_un unix_address;
    int length = snprintf(path, size, "%s/%s.api", cli_rundir(), name);

    if (length < 0 || (size_t)length >= size ||
        (size_t)length >= sizeof(unix_address.sun_path)) {
        cli_error("sockets API path '%s/%s.api' is too long", cli_rundir(), name);
        return -ENAMETOOLONG;
    }
    return 0;
}

int cli_unix_address(const char *path, struct sockaddr_un *address)
{
    size_t length = strlen(path);

    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    if (length >= sizeof(address->sun_path))
        return -ENAMETOOLONG;
    memcpy(address->sun_path, path, length + 1);
    return 0;
}

/* The device-backed link kinds usock_link_open knows. */
static const char *const device_kinds[] = {"tap", "tun", "packet"};

int cli_open_link(const char *spec, bool allow_memory, struct usock_link **link_out,
                  struct usock_link **far_end)
{
    *link_out = NULL;
    *far_end = NULL;
    if (strcmp(spec, "mem") == 0) {
        if (!allow_memory) {
            cli_error("link 'mem' cannot be used here (expected tap:, tun: or packet:)");
            return CLI_EXIT_USAGE;
        }
        int error = usock_link_mem_pair(link_out, far_end);
        if (error < 0) {
            cli_error("cannot make an in-memory link: %s", strerror(-error));
            return CLI_EXIT_FAILURE;
        }
        return CLI_EXIT_OK;
    }

    const char *colon = strchr(spec, ':');
    size_t kind_length = colon ? (size_t)(colon - spec) : strlen(spec);
    bool known = false;
    for (size_t i = 0; i < sizeof(device_kinds) / sizeof(device_kinds[0]); i++) {
        if (colon && strlen(device_kinds[i]) == kind_length &&
            strncmp(spec, device_kinds[i], kind_length) == 0)
            known = true;
    }
    if (!known) {
        cli_error("unknown link kind '%.*s' (expected tap:, tun:, packet: or mem)",
                  (int)kind_length, spec);
        return CLI_EXIT_USAGE;
    }
    const char *device = colon + 1;
    if (*device == '\0') {
        cli_error("link '%s' needs a device name (e.g. %stap0)", spec, spec);
        return CLI_EXIT_USAGE;
    }
    if (strlen(device) >= IFNAMSIZ || strpbrk(device, "/: \t\n")) {
        cli_error("bad device name '%s' (at most %d characters, no '/', ':' or spaces)", device,
                  IFNAMSIZ - 1);
        return CLI_EXIT_USAGE;
    }

    int error = usock_link_open(spec, link_out);
    switch (error) {
    case 0:
        return CLI_EXIT_OK;
    case -EPERM:
    case -EACCES:
        cli_error("no permission to open %s (run as root)", spec);
        return CLI_EXIT_USAGE;
    case -ENODEV:
    case -ENXIO:
        cli_error("cannot open %s: no such device", spec);
        return CLI_EXIT_USAGE;
    case -EINVAL:
        cli_error("bad link '%s'", spec);
        return CLI_EXIT_USAGE;
    default:
        cli_error("cannot open %s: %s", spec, strerror(error < 0 ? -error : EIO));
        return CLI_EXIT_FAILURE;
    }
}

int cli_parse_impairment(const char *spec, struct usock_impairment *impairment)
{
    char reason[128] = "";

    if (usock_impairment_parse(spec, impairment, reason, sizeof(reason)) == 0)
        return 0;
    if (reason[0])
        cli_error("%s (in --impair '%s')", reason, spec);
    else
        cli_error("bad impairment '%s'", spec);
    return -EINVAL;
}

int cli_wrap_link(struct usock_link **link, const struct usock_impairment *impairment,
                  const char *pcap_path)
{
    int error;

    if (impairment) {
        error = usock_link_impair(*link, impairment, link);
        if (error < 0) {
            *link = NULL; /* closed by usock_link_impair */
            cli_error("cannot apply impairment: %s", strerror(-error));
            return CLI_EXIT_FAILURE;
        }
    }
    if (pcap_path) {
        error = usock_link_pcap(*link, pcap_path, link);
        if (error < 0) {
            *link = NULL; /* closed by usock_link_pcap */
            cli_error("cannot write pcap file '%s': %s", pcap_path, strerror(-error));
            return error == -EACCES || error == -ENOENT || error == -EISDIR
                       ? CLI_EXIT_USAGE
                       : CLI_EXIT_FAILURE;
        }
    }
    return CLI_EXIT_OK;
}

/* ---- stack options ---- */

/* The stack options, each with a value. */
enum cli_stack_option_kind {
    STACK_OPTION_LINK,
    STACK_OPTION_ADDR,
    STACK_OPTION_GATEWAY,
    STACK_OPTION_MAC,
    STACK_OPTION_MTU,
    STACK_OPTION_PCAP,
    STACK_OPTION_IMPAIR,
    STACK_OPTION_COUNT,
};

static const char *const stack_option_names[] = {
    [STACK_OPTION_LINK] = "--link",       [STACK_OPTION_ADDR] = "--addr",
    [STACK_OPTION_GATEWAY] = "--gateway", [STACK_OPTION_MAC] = "--mac",
    [STACK_OPTION_MTU] = "--mtu",         [STACK_OPTION_PCAP] = "--pcap",
    [STACK_OPTION_IMPAIR] = "--impair",
};
_Static_assert(sizeof(stack_option_names) / sizeof(stack_option_names[0]) == STACK_OPTION_COUNT,
               "a name for each stack option");

void cli_stack_options_init(struct cli_stack_options *options)
{
    memset(options, 0, sizeof(*options));
    options->gateway.s_addr = htonl(INADDR_ANY);
}

int cli_stack_option(int argc, char **argv, int *index, struct cli_stack_options *options)
{
    const char *value = NULL;
    enum cli_stack_option_kind option;

    if (strcmp(argv[*index], "--no-offload") == 0) {
        options->no_offloads = true;
        return 1;
    }
    for (option = 0; option < STACK_OPTION_COUNT; option++) {
        int taken = cli_take_value(argc, argv, index, stack_option_names[option], &value);
        if (taken < 0)
            return -1;
        if (taken)
            break;
    }
    int error = 0;
    switch (option) {
    case STACK_OPTION_LINK:
        options->link_spec = value;
        break;
    case STACK_OPTION_ADDR:
        options->address_text = value;
        error = cli_parse_prefix(value, &options->address, &options->prefix_length);
        break;
    case STACK_OPTION_GATEWAY:
        error = cli_parse_address(value, "gateway", &options->gateway);
        break;
    case STACK_OPTION_MAC:
        error = cli_parse_mac(value, options->mac);
        break;
    case STACK_OPTION_MTU:
        error = cli_parse_unsigned(value, "MTU", 68, 65535, &options->mtu);
        break;
    case STACK_OPTION_PCAP:
        options->pcap_path = value;
        break;
    case STACK_OPTION_IMPAIR:
        options->impaired = true;
        error = cli_parse_impairment(value, &options->impairment);
        break;
    case STACK_OPTION_COUNT:
        return 0;
    }
    return error < 0 ? -1 : 1;
}

int cli_stack_options_check(const struct cli_stack_options *options)
{
    if (!options->link_spec) {
        cli_error("missing --link (e.g. --link tap:tap0)");
        return CLI_EXIT_USAGE;
    }
    if (!options->address_text) {
        cli_error("missing --addr (e.g. --addr 198.18.0.2/24)");
        return CLI_EXIT_USAGE;
    }

    uint32_t address = ntohl(options->address.s_addr);
    uint32_t gateway = ntohl(options->gateway.s_addr);
    uint32_t mask = options->prefix_length == 0 ? 0 : ~0u << (32 - options->prefix_length);

    /* RFC 1122 3.2.1.3: 0.0.0.0, loopback, class D/E and broadcast are not
     * host addresses. */
    if (address == 0 || (address >> 24) == 127 || (address >> 28) >= 0xe) {
        cli_error("address '%s' cannot be an interface's address", options->address_text);
        return CLI_EXIT_USAGE;
    }
    if (gateway != INADDR_ANY && ((gateway ^ address) & mask) != 0) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &options->gateway, text, sizeof(text));
        cli_error("gateway %s is not on %s", text, options->address_text);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_stack_create(const struct cli_stack_options *options, const char *name,
                     struct usock_stack **stack_out, struct usock_link **far_end)
{
    struct usock_link *link = NULL;
    int status;

    *stack_out = NULL;
    status = cli_open_link(options->link_spec, true, &link, far_end);
    if (status != CLI_EXIT_OK)
        return status;
    status = cli_wrap_link(&link, options->impaired ? &options->impairment : NULL,
                           options->pcap_path);
    if (status != CLI_EXIT_OK)
        goto fail_close_far_end;

    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link; /* the stack's now, even if usock_stack_new fails */
    config.address = options->address;
    config.prefix_length = options->prefix_length;
    config.gateway = options->gateway;
    memcpy(config.mac, options->mac, sizeof(config.mac));
    config.mtu = options->mtu;
    config.no_offloads = options->no_offloads;
    config.name = name;
    struct usock_stack *stack = usock_stack_new(&config);
    if (!stack) {
        int reason = errno;
        cli_error("cannot make the stack: %s", strerror(reason));
        status = reason == EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
        goto fail_close_far_end;
    }
    int error = usock_stack_start(stack);
    if (error < 0) {
        cli_error("cannot start the stack: %s", strerror(-error));
        usock_stack_free(stack);
        status = CLI_EXIT_FAILURE;
        goto fail_close_far_end;
    }
    *stack_out = stack;
    return CLI_EXIT_OK;

fail_close_far_end:
    if (*far_end) {
        usock_link_close(*far_end);
        *far_end = NULL;
    }
    return status;
}

void cli_stack_destroy(struct usock_stack *stack, struct usock_link *far_end)
{
    if (stack) {
        usock_stack_stop(stack);
        usock_stack_free(stack);
    }
    if (far_end)
        usock_link_close(far_end);
}
