/*
 * igmp.c - host side of IGMP: which groups (and sources) the interface
 * receives, and the messages that tell routers so.
 *
 * State.  Each socket asks for a group in a filter mode with a source list
 * (RFC 3376 3.1: IP_ADD_MEMBERSHIP is EXCLUDE with no sources,
 * IP_ADD_SOURCE_MEMBERSHIP adds to an INCLUDE list, IP_BLOCK_SOURCE to an
 * EXCLUDE list).  The interface keeps, per group, how many sockets are in
 * each mode and, per source, how many sockets of each mode list it.  From
 * those counts follows the interface's state (RFC 3376 3.2): EXCLUDE when
 * any socket excludes, listing the sources every EXCLUDE socket blocks and
 * no INCLUDE socket wants; otherwise INCLUDE, listing every source some
 * socket includes.  A group entry lives while any socket asks for it.
 *
 * Reports.  A change of the interface's state is reported at once as
 * IGMPv3 state-change records (RFC 3376 5.1): CHANGE_TO_INCLUDE/EXCLUDE
 * with the new list when the mode changed, else ALLOW_NEW_SOURCES and
 * BLOCK_OLD_SOURCES with the difference; the report is sent once more a
 * second later (robustness 2), merged with any change made meanwhile.  The
 * last socket leaving sends the change to INCLUDE{} (v3) or a leave (v2).
 * Queries (RFC 3376 5.2) are answered after a random delay below their
 * maximum response time: general and group-specific queries with the
 * current state (MODE_IS_INCLUDE/EXCLUDE), group-and-source-specific ones
 * with MODE_IS_INCLUDE of the queried sources the interface still wants
 * (nothing when none), accumulating the sources of queries that arrive
 * while an answer is pending.  Hearing a v2 query switches to IGMPv2 for
 * the Older Version Querier Present timeout: sources are then ignored,
 * joins and answers are v2 reports and a report from another host for the
 * same group suppresses ours (RFC 2236 3).  Reports go out with TTL 1 and
 * the Router Alert option; 224.0.0.1 is never reported.
 */
#include "net/igmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/ipv4.h"
#include "stack.h"
#include "wire/igmp.h"

#define IGMP_ALL_HOSTS 0xe0000001u     /* 224.0.0.1, host order */
#define IGMP_ALL_ROUTERS 0xe0000002u   /* 224.0.0.2 */
#define IGMP_V3_REPORTS 0xe0000016u    /* 224.0.0.22 */
#define IGMP_ROBUSTNESS 2
/* The largest report sent: two records (ALLOW and BLOCK) of every source. */
#define IGMP_REPORT_MAX                                                                  \
    (IGMP_V3_REPORT_HEADER_LENGTH + 2 * (IGMP_V3_RECORD_HEADER_LENGTH + 4 * IGMP_GROUP_SOURCES_MAX))

struct igmp_source {
    uint32_t address;
    unsigned include_count;  /* sockets in INCLUDE mode listing it */
    unsigned exclude_count;  /* sockets in EXCLUDE mode listing it */
};

/* A set of sources, bounded like the group's list. */
struct igmp_source_set {
    unsigned count;
    uint32_t addresses[IGMP_GROUP_SOURCES_MAX];
};

/* The interface's state for a group (RFC 3376 3.2). */
struct igmp_state {
    enum igmp_filter_mode mode;
    struct igmp_source_set sources;
};

struct igmp_group {
    struct igmp_group *next;
    uint32_t group;
    unsigned include_users, exclude_users;
    struct igmp_source sources[IGMP_GROUP_SOURCES_MAX];
    unsigned source_count;
    /* State-change report retransmission. */
    struct timer change_timer;
    unsigned changes_left;
    bool mode_change_pending;      /* retransmit CHANGE_TO_* of the current state */
    struct igmp_source_set allow_pending, block_pending;
    /* Query answer. */
    struct timer query_timer;
    bool answer_whole_state;       /* else: answer_sources only */
    struct igmp_source_set answer_sources;
};

static uint32_t address_of(uint32_t host_order)
{
    return htonl(host_order);
}

static bool igmp_v2_mode(const struct usock_stack *stack, uint64_t now)
{
    return now < stack->igmp.v2_querier_until;
}

static bool source_set_contains(const struct igmp_source_set *set, uint32_t address)
{
    for (unsigned i = 0; i < set->count; i++)
        if (set->addresses[i] == address)
            return true;
    return false;
}

/* Adds address unless present; false when the set is full. */
static bool source_set_add(struct igmp_source_set *set, uint32_t address)
{
    if (source_set_contains(set, address))
        return true;
    if (set->count >= IGMP_GROUP_SOURCES_MAX)
        return false;
    set->addresses[set->count++] = address;
    return true;
}

static void source_set_remove(struct igmp_source_set *set, uint32_t address)
{
    for (unsigned i = 0; i < set->count; i++) {
        if (set->addresses[i] == address) {
            set->addresses[i] = set->addresses[--set->count];
            return;
        }
    }
}

/* Index of address in entry's sources, or -1. */
static int igmp_source_index(const struct igmp_group *entry, uint32_t address)
{
    for (unsigned i = 0; i < entry->source_count; i++)
        if (entry->sources[i].address == address)
            return (int)i;
    return -1;
}

/* Whether the interface, in the state its counts give, takes address. */
static bool igmp_group_accepts(const struct igmp_group *entry, uint32_t address)
{
    int index = igmp_source_index(entry, address);
    const struct igmp_source *source = index >= 0 ? &entry->sources[index] : NULL;
    if (entry->exclude_users > 0)
        return !(source && source->include_count == 0 &&
                 source->exclude_count == entry->exclude_users);
    return source && source->include_count > 0;
}

static void igmp_current_state(const struct igmp_group *entry, struct igmp_state *out)
{
    out->mode = entry->exclude_users > 0 ? IGMP_MODE_EXCLUDE : IGMP_MODE_INCLUDE;
    out->sources.count = 0;
    for (unsigned i = 0; i < entry->source_count; i++) {
        const struct igmp_source *source = &entry->sources[i];
        bool listed = out->mode == IGMP_MODE_EXCLUDE
                          ? source->include_count == 0 &&
                                source->exclude_count == entry->exclude_users
                          : source->include_count > 0;
        if (listed)
            out->sources.addresses[out->sources.count++] = source->address;
    }
}

/* INCLUDE{} receives nothing; anything else receives something. */
static bool igmp_state_receives(const struct igmp_state *state)
{
    return state->mode == IGMP_MODE_EXCLUDE || state->sources.count > 0;
}

static bool igmp_states_equal(const struct igmp_state *a, const struct igmp_state *b)
{
    if (a->mode != b->mode || a->sources.count != b->sources.count)
        return false;
    for (unsigned i = 0; i < a->sources.count; i++)
        if (!source_set_contains(&b->sources, a->sources.addresses[i]))
            return false;
    return true;
}

static void igmp_send(struct usock_stack *stack, const uint8_t *message, size_t length,
                      uint32_t destination, uint64_t now)
{
    if (!stack->interface.link || stack->interface.address == 0)
        return;
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, length);
    if (!buffer)
        return;
    memcpy(packet_buffer_put(buffer, length), message, length);
    struct ipv4_send send = {
        .source = stack->interface.address,
        .destination = destination,
        .protocol = IPPROTO_IGMP,
        .time_to_live = 1,
        .type_of_service = 0xc0, /* internetwork control, as Linux */
        .router_alert = true,
    };
    ipv4_output(stack, buffer, &send, now);
}

static void igmp_send_v2(struct usock_stack *stack, uint8_t type, uint32_t group, uint64_t now)
{
    uint8_t message[IGMP_V2_LENGTH];
    uint32_t destination = type == IGMP_TYPE_V2_LEAVE ? address_of(IGMP_ALL_ROUTERS) : group;
    igmp_send(stack, message, igmp_emit_v2(type, group, message), destination, now);
    if (type == IGMP_TYPE_V2_REPORT)
        COUNT(stack, IgmpOutReports);
}

static void igmp_send_v3(struct usock_stack *stack, const struct igmp_record *records,
                         unsigned count, uint64_t now)
{
    uint8_t message[IGMP_REPORT_MAX];
    if (count == 0 || igmp_v3_report_length(records, count) > sizeof(message))
        return;
    igmp_send(stack, message, igmp_emit_v3_report(records, count, message),
              address_of(IGMP_V3_REPORTS), now);
    COUNT(stack, IgmpOutReports);
}

/* Sends the pending state-change report of entry: CHANGE_TO_* of the
 * current state after a mode change, else the sources allowed and blocked
 * since the last report settled (v2: a report while the group is wanted). */
static void igmp_send_change(struct usock_stack *stack, struct igmp_group *entry, uint64_t now)
{
    struct igmp_state current;
    igmp_current_state(entry, &current);
    if (igmp_v2_mode(stack, now)) {
        if (igmp_state_receives(&current))
            igmp_send_v2(stack, IGMP_TYPE_V2_REPORT, entry->group, now);
        return;
    }
    struct igmp_record records[2];
    unsigned count = 0;
    if (entry->mode_change_pending) {
        records[count++] = (struct igmp_record){
            .type = current.mode == IGMP_MODE_INCLUDE ? IGMP_RECORD_CHANGE_TO_INCLUDE
                                                      : IGMP_RECORD_CHANGE_TO_EXCLUDE,
            .group = entry->group,
            .sources = current.sources.addresses,
            .source_count = current.sources.count,
        };
    } else {
        if (entry->allow_pending.count > 0)
            records[count++] = (struct igmp_record){
                .type = IGMP_RECORD_ALLOW_NEW_SOURCES,
                .group = entry->group,
                .sources = entry->allow_pending.addresses,
                .source_count = entry->allow_pending.count,
            };
        if (entry->block_pending.count > 0)
            records[count++] = (struct igmp_record){
                .type = IGMP_RECORD_BLOCK_OLD_SOURCES,
                .group = entry->group,
                .sources = entry->block_pending.addresses,
                .source_count = entry->block_pending.count,
            };
    }
    igmp_send_v3(stack, records, count, now);
}

static void igmp_change_timer_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct igmp_group *entry = container_of(timer, struct igmp_group, change_timer);
    if (entry->changes_left == 0)
        return;
    entry->changes_left--;
    igmp_send_change(stack, entry, now);
    if (entry->changes_left > 0) {
        stack_timer_arm(stack, &entry->change_timer, now + IGMP_UNSOLICITED_INTERVAL_NS);
        return;
    }
    entry->mode_change_pending = false;
    entry->allow_pending.count = 0;
    entry->block_pending.count = 0;
}

/* Adds the sources of from missing in to: to allow_pending (allow true) or
 * block_pending, taking them out of the other; false on overflow. */
static bool igmp_merge_difference(struct igmp_group *entry, const struct igmp_source_set *from,
                                  const struct igmp_source_set *to, bool allow)
{
    struct igmp_source_set *add = allow ? &entry->allow_pending : &entry->block_pending;
    struct igmp_source_set *other = allow ? &entry->block_pending : &entry->allow_pending;
    for (unsigned i = 0; i < from->count; i++) {
        uint32_t address = from->addresses[i];
        if (source_set_contains(to, address))
            continue;
        source_set_remove(other, address);
        if (!source_set_add(add, address))
            return false;
    }
    return true;
}

/* Reports the change of entry's state from before (RFC 3376 5.1) and
 * frees the entry when no socket asks for the group any more. */
static void igmp_state_changed(struct usock_stack *stack, struct igmp_group *entry,
                               const struct igmp_state *before, uint64_t now)
{
    struct igmp_state after;
    igmp_current_state(entry, &after);
    bool unused = entry->include_users == 0 && entry->exclude_users == 0;
    if (!igmp_states_equal(before, &after) && entry->group != address_of(IGMP_ALL_HOSTS)) {
        bool was_receiving = igmp_state_receives(before);
        bool receiving = igmp_state_receives(&after);
        if (igmp_v2_mode(stack, now)) {
            if (!was_receiving && receiving)
                igmp_send_v2(stack, IGMP_TYPE_V2_REPORT, entry->group, now);
            else if (was_receiving && !receiving)
                igmp_send_v2(stack, IGMP_TYPE_V2_LEAVE, entry->group, now);
        } else {
            if (before->mode != after.mode) {
                entry->mode_change_pending = true;
            } else if (!entry->mode_change_pending) {
                /* INCLUDE: new sources are allowed, gone ones blocked;
                 * EXCLUDE the other way round. */
                bool include = after.mode == IGMP_MODE_INCLUDE;
                if (!igmp_merge_difference(entry, &after.sources, &before->sources, include) ||
                    !igmp_merge_difference(entry, &before->sources, &after.sources, !include))
                    entry->mode_change_pending = true; /* too much to list: send the state */
            }
            if (entry->mode_change_pending) {
                entry->allow_pending.count = 0;
                entry->block_pending.count = 0;
            }
            igmp_send_change(stack, entry, now);
        }
        if (was_receiving && !receiving)
            COUNT(stack, IgmpOutLeaves);
        entry->changes_left = IGMP_ROBUSTNESS - 1;
        if (!unused && receiving)
            stack_timer_arm(stack, &entry->change_timer, now + IGMP_UNSOLICITED_INTERVAL_NS);
        else
            timer_cancel(&stack->timers, &entry->change_timer);
    }
    if (unused) {
        struct igmp_group **link = &stack->igmp.groups;
        while (*link && *link != entry)
            link = &(*link)->next;
        if (*link)
            *link = entry->next;
        timer_cancel(&stack->timers, &entry->change_timer);
        timer_cancel(&stack->timers, &entry->query_timer);
        stack->igmp.count--;
        free(entry);
    }
}

static struct igmp_group *igmp_find(const struct usock_stack *stack, uint32_t group)
{
    for (struct igmp_group *entry = stack->igmp.groups; entry; entry = entry->next)
        if (entry->group == group)
            return entry;
    return NULL;
}

bool igmp_is_member(const struct usock_stack *stack, uint32_t group)
{
    return group == address_of(IGMP_ALL_HOSTS) || igmp_find(stack, group) != NULL;
}

bool igmp_accepts(const struct usock_stack *stack, uint32_t group, uint32_t source)
{
    if (group == address_of(IGMP_ALL_HOSTS))
        return true;
    const struct igmp_group *entry = igmp_find(stack, group);
    return entry && igmp_group_accepts(entry, source);
}

/* Adds (delta +1) or takes away (-1) one socket's filter in the counts. */
static void igmp_count_filter(struct igmp_group *entry, const struct igmp_socket_filter *filter,
                              int delta)
{
    bool include = filter->mode == IGMP_MODE_INCLUDE;
    unsigned *users = include ? &entry->include_users : &entry->exclude_users;
    *users = (unsigned)((int)*users + delta);
    for (unsigned i = 0; i < filter->source_count; i++) {
        int index = igmp_source_index(entry, filter->sources[i]);
        if (index < 0) {
            /* igmp_change_socket_filter checked there is room. */
            if (delta < 0 || entry->source_count >= IGMP_GROUP_SOURCES_MAX)
                continue;
            index = (int)entry->source_count++;
            entry->sources[index] = (struct igmp_source){.address = filter->sources[i]};
        }
        struct igmp_source *source = &entry->sources[index];
        unsigned *count = include ? &source->include_count : &source->exclude_count;
        *count = (unsigned)((int)*count + delta);
    }
    /* Forget sources no socket lists any more. */
    for (unsigned i = 0; i < entry->source_count;) {
        if (entry->sources[i].include_count == 0 && entry->sources[i].exclude_count == 0)
            entry->sources[i] = entry->sources[--entry->source_count];
        else
            i++;
    }
}

static unsigned igmp_sources_missing(const struct igmp_group *entry,
                                     const struct igmp_socket_filter *filter)
{
    unsigned missing = 0;
    for (unsigned i = 0; i < filter->source_count; i++)
        if (igmp_source_index(entry, filter->sources[i]) < 0)
            missing++;
    return missing;
}

static void igmp_query_timer_fire(struct usock_stack *stack, struct timer *timer, uint64_t now);

int igmp_change_socket_filter(struct usock_stack *stack, uint32_t group,
                              const struct igmp_socket_filter *from,
                              const struct igmp_socket_filter *to, uint64_t now)
{
    if (ipv4_address_kind(stack, group) != ADDRESS_MULTICAST)
        return -EINVAL;
    struct igmp_group *entry = igmp_find(stack, group);
    bool created = false;
    if (!entry) {
        if (!to)
            return 0;
        if (stack->igmp.count >= IGMP_GROUP_LIMIT)
            return -ENOBUFS;
        entry = calloc(1, sizeof(*entry));
        if (!entry)
            return -ENOMEM;
        entry->group = group;
        timer_init(&entry->change_timer, igmp_change_timer_fire);
        timer_init(&entry->query_timer, igmp_query_timer_fire);
        entry->next = stack->igmp.groups;
        stack->igmp.groups = entry;
        stack->igmp.count++;
        created = true;
    }
    struct igmp_state before;
    igmp_current_state(entry, &before);
    if (from)
        igmp_count_filter(entry, from, -1);
    if (to && entry->source_count + igmp_sources_missing(entry, to) > IGMP_GROUP_SOURCES_MAX) {
        if (from)
            igmp_count_filter(entry, from, +1);
        if (created)
            igmp_state_changed(stack, entry, &before, now); /* frees it, reports nothing */
        return -ENOBUFS;
    }
    if (to)
        igmp_count_filter(entry, to, +1);
    igmp_state_changed(stack, entry, &before, now);
    return 0;
}

void igmp_layer_destroy(struct usock_stack *stack)
{
    while (stack->igmp.groups) {
        struct igmp_group *entry = stack->igmp.groups;
        stack->igmp.groups = entry->next;
        timer_cancel(&stack->timers, &entry->change_timer);
        timer_cancel(&stack->timers, &entry->query_timer);
        free(entry);
    }
    stack->igmp.count = 0;
}

/* Answers a query now (RFC 3376 5.2): the whole current state, or
 * MODE_IS_INCLUDE of the queried sources still wanted. */
static void igmp_query_timer_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct igmp_group *entry = container_of(timer, struct igmp_group, query_timer);
    struct igmp_state current;
    igmp_current_state(entry, &current);
    bool whole_state = entry->answer_whole_state;
    entry->answer_whole_state = false;
    if (!igmp_state_receives(&current)) {
        entry->answer_sources.count = 0;
        return;
    }
    if (igmp_v2_mode(stack, now)) {
        entry->answer_sources.count = 0;
        igmp_send_v2(stack, IGMP_TYPE_V2_REPORT, entry->group, now);
        return;
    }
    struct igmp_record record = {.group = entry->group};
    struct igmp_source_set wanted = {0};
    if (whole_state) {
        record.type = current.mode == IGMP_MODE_INCLUDE ? IGMP_RECORD_MODE_IS_INCLUDE
                                                        : IGMP_RECORD_MODE_IS_EXCLUDE;
        record.sources = current.sources.addresses;
        record.source_count = current.sources.count;
    } else {
        for (unsigned i = 0; i < entry->answer_sources.count; i++)
            if (igmp_group_accepts(entry, entry->answer_sources.addresses[i]))
                wanted.addresses[wanted.count++] = entry->answer_sources.addresses[i];
        record.type = IGMP_RECORD_MODE_IS_INCLUDE;
        record.sources = wanted.addresses;
        record.source_count = wanted.count;
    }
    entry->answer_sources.count = 0;
    /* An empty source-specific answer is not sent (RFC 3376 5.2). */
    if (whole_state || wanted.count > 0)
        igmp_send_v3(stack, &record, 1, now);
}

/* Schedules an answer to query for entry within max_delay (RFC 3376 5.2
 * rules 3-5): a group query makes it a whole-state answer, a source query
 * adds its sources unless that is already pending; the earlier deadline
 * stands. */
static void igmp_schedule_answer(struct usock_stack *stack, struct igmp_group *entry,
                                 const struct igmp_message *query, uint64_t max_delay,
                                 uint64_t now)
{
    if (entry->group == address_of(IGMP_ALL_HOSTS))
        return;
    bool pending = timer_is_armed(&entry->query_timer);
    bool source_query = query->group != 0 && query->source_count > 0;
    if (!pending) {
        entry->answer_whole_state = false;
        entry->answer_sources.count = 0;
    }
    if (!source_query) {
        entry->answer_whole_state = true;
        entry->answer_sources.count = 0;
    } else if (!entry->answer_whole_state) {
        for (unsigned i = 0; i < query->source_count; i++) {
            if (!source_set_add(&entry->answer_sources, igmp_query_source(query, i))) {
                entry->answer_whole_state = true; /* too many to track: say everything */
                entry->answer_sources.count = 0;
                break;
            }
        }
    }
    uint64_t deadline = now + (max_delay ? random_below(&stack->random, max_delay) : 0);
    if (pending && entry->query_timer.deadline <= deadline)
        return;
    stack_timer_arm(stack, &entry->query_timer, deadline);
}

void igmp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now)
{
    struct igmp_message message;
    COUNT(stack, IgmpInMsgs);
    if (igmp_parse(packet->payload, packet->payload_length,
                   stack->verify_checksums && !packet->from_loopback, &message) != IGMP_PARSE_OK) {
        COUNT(stack, IgmpInErrors);
        return;
    }
    switch (message.type) {
    case IGMP_TYPE_QUERY: {
        COUNT(stack, IgmpInQueries);
        if (!message.is_v3_query && message.max_response_code != 0)
            stack->igmp.v2_querier_until = now + IGMP_V2_QUERIER_TIMEOUT_NS;
        uint64_t max_delay = igmp_max_response_ns(&message);
        for (struct igmp_group *entry = stack->igmp.groups; entry; entry = entry->next)
            if (message.group == 0 || message.group == entry->group)
                igmp_schedule_answer(stack, entry, &message, max_delay, now);
        return;
    }
    case IGMP_TYPE_V1_REPORT:
    case IGMP_TYPE_V2_REPORT: {
        COUNT(stack, IgmpInReports);
        struct igmp_group *entry = igmp_find(stack, message.group);
        /* RFC 2236 3: another member answered; ours is not needed. */
        if (entry && timer_is_armed(&entry->query_timer) && igmp_v2_mode(stack, now)) {
            timer_cancel(&stack->timers, &entry->query_timer);
            COUNT(stack, IgmpReportsSuppressed);
        }
        return;
    }
    case IGMP_TYPE_V2_LEAVE:
        COUNT(stack, IgmpInLeaves);
        return;
    default:
        return;
    }
}
