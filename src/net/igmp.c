/*
 * igmp.c - host side of IGMP: which groups the interface belongs to, and
 * the messages that tell routers so.
 *
 * The stack keeps one entry per joined group with a count of the sockets
 * that asked for it (IP_ADD_MEMBERSHIP); the interface receives a group
 * while the count is above zero.  Joining sends an unsolicited report, once
 * more a second later (robustness 2); the last leave sends a leave (v2) or a
 * change-to-include record (v3).  Queries (general or for one group) are
 * answered after a random delay below their maximum response time, and in
 * v2 mode a report from another host for the same group suppresses ours
 * (RFC 2236 3).  Hearing a v2 query switches to v2 for the Older Version
 * Querier Present timeout.  Reports go out with TTL 1 and the Router Alert
 * option.
 */
#include "net/igmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>

#include "net/ipv4.h"
#include "stack.h"
#include "wire/igmp.h"

struct igmp_group {
    struct igmp_group *next;
    uint32_t group;
    unsigned users;
    unsigned unsolicited_left;  /* join reports still to send */
    bool answering_query;       /* the timer answers a query */
    struct timer timer;
};

static uint32_t address_of(uint32_t host_order)
{
    return htonl(host_order);
}

static bool igmp_v2_mode(const struct usock_stack *stack, uint64_t now)
{
    return now < stack->igmp.v2_querier_until;
}

static void igmp_send(struct usock_stack *stack, const uint8_t *message, size_t length,
                      uint32_t destination, uint64_t now)
{
    if (!stack->interface.link || stack->interface.address == 0)
        return;
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, length);
    if (!buffer)
        return;
    uint8_t *out = packet_buffer_put(buffer, length);
    for (size_t i = 0; i < length; i++)
        out[i] = message[i];
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

/* Reports membership of group: a v2 report, or a v3 record of type. */
static void igmp_send_report(struct usock_stack *stack, uint32_t group, uint8_t record_type,
                             uint64_t now)
{
    uint8_t message[16];
    if (igmp_v2_mode(stack, now)) {
        igmp_send(stack, message, igmp_emit_v2(IGMP_TYPE_V2_REPORT, group, message), group, now);
    } else {
        igmp_send(stack, message, igmp_emit_v3_report(record_type, group, message),
                  address_of(0xe0000016), now); /* 224.0.0.22 */
    }
    COUNT(stack, IgmpOutReports);
}

static void igmp_timer_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct igmp_group *entry = container_of(timer, struct igmp_group, timer);
    if (entry->answering_query) {
        entry->answering_query = false;
        igmp_send_report(stack, entry->group, 2 /* MODE_IS_EXCLUDE */, now);
    } else if (entry->unsolicited_left > 0) {
        entry->unsolicited_left--;
        igmp_send_report(stack, entry->group, IGMP_RECORD_CHANGE_TO_EXCLUDE, now);
    }
    if (entry->unsolicited_left > 0)
        stack_timer_arm(stack, &entry->timer, now + IGMP_UNSOLICITED_INTERVAL_NS);
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
    return group == address_of(0xe0000001) || igmp_find(stack, group) != NULL;
}

int igmp_join(struct usock_stack *stack, uint32_t group, uint64_t now)
{
    if (ipv4_address_kind(stack, group) != ADDRESS_MULTICAST)
        return -EINVAL;
    struct igmp_group *entry = igmp_find(stack, group);
    if (entry) {
        entry->users++;
        return 0;
    }
    if (stack->igmp.count >= IGMP_GROUP_LIMIT)
        return -ENOBUFS;
    entry = calloc(1, sizeof(*entry));
    if (!entry)
        return -ENOMEM;
    entry->group = group;
    entry->users = 1;
    timer_init(&entry->timer, igmp_timer_fire);
    entry->next = stack->igmp.groups;
    stack->igmp.groups = entry;
    stack->igmp.count++;
    /* 224.0.0.1 is never reported (RFC 2236 6, RFC 3376 5). */
    if (group != address_of(0xe0000001)) {
        igmp_send_report(stack, group, IGMP_RECORD_CHANGE_TO_EXCLUDE, now);
        entry->unsolicited_left = 1;
        stack_timer_arm(stack, &entry->timer, now + IGMP_UNSOLICITED_INTERVAL_NS);
    }
    return 0;
}

static void igmp_group_free(struct usock_stack *stack, struct igmp_group *entry)
{
    struct igmp_group **link = &stack->igmp.groups;
    while (*link && *link != entry)
        link = &(*link)->next;
    if (*link)
        *link = entry->next;
    timer_cancel(&stack->timers, &entry->timer);
    stack->igmp.count--;
    free(entry);
}

void igmp_leave(struct usock_stack *stack, uint32_t group, uint64_t now)
{
    struct igmp_group *entry = igmp_find(stack, group);
    if (!entry || --entry->users > 0)
        return;
    if (group != address_of(0xe0000001)) {
        if (igmp_v2_mode(stack, now)) {
            uint8_t message[8];
            igmp_send(stack, message, igmp_emit_v2(IGMP_TYPE_V2_LEAVE, group, message),
                      address_of(0xe0000002), now); /* all routers */
        } else {
            igmp_send_report(stack, group, IGMP_RECORD_CHANGE_TO_INCLUDE, now);
        }
        COUNT(stack, IgmpOutLeaves);
    }
    igmp_group_free(stack, entry);
}

void igmp_layer_destroy(struct usock_stack *stack)
{
    while (stack->igmp.groups)
        igmp_group_free(stack, stack->igmp.groups);
}

/* Schedules an answer for entry within max_delay, unless one is due sooner. */
static void igmp_schedule_answer(struct usock_stack *stack, struct igmp_group *entry,
                                 uint64_t max_delay, uint64_t now)
{
    if (entry->group == address_of(0xe0000001))
        return;
    uint64_t delay = max_delay ? random_below(&stack->random, max_delay) : 0;
    if (entry->answering_query && timer_is_armed(&entry->timer) &&
        entry->timer.deadline <= now + delay)
        return;
    entry->answering_query = true;
    stack_timer_arm(stack, &entry->timer, now + delay);
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
                igmp_schedule_answer(stack, entry, max_delay, now);
        return;
    }
    case IGMP_TYPE_V1_REPORT:
    case IGMP_TYPE_V2_REPORT: {
        COUNT(stack, IgmpInReports);
        struct igmp_group *entry = igmp_find(stack, message.group);
        /* RFC 2236 3: another member answered; ours is not needed. */
        if (entry && entry->answering_query && igmp_v2_mode(stack, now)) {
            entry->answering_query = false;
            if (entry->unsolicited_left == 0)
                timer_cancel(&stack->timers, &entry->timer);
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
