/*
 * tcp.c - TCP header and options parse (validate, then read) and emit; see
 * tcp.h.
 *
 * Parsing checks, in order, that the fixed header arrived, that the data
 * offset is sane, that the checksum holds over the pseudo-header and the
 * whole segment, and that the option list is well formed; the options it
 * knows are read during that same walk into a zeroed struct tcp_options
 * that is copied out only when the whole segment is accepted, so *out is
 * written only on TCP_PARSE_OK.
 *
 * Emitting lays options out as Linux does (tcp_options_write), so that a
 * capture of usock reads like a capture of Linux and each option sits on
 * its natural alignment:
 *
 *   MSS                        02 04 mm mm
 *   SACK-permitted + stamps    04 02 08 0a vvvvvvvv eeeeeeee
 *   stamps alone               01 01 08 0a vvvvvvvv eeeeeeee
 *   SACK-permitted alone       01 01 04 02
 *   window scale               01 03 03 ss
 *   SACK blocks                01 01 05 (2+8n) n * (left, right)
 *
 * Every piece is a multiple of 4 bytes, so no trailing padding is needed.
 * The fixed pieces take at most 20 bytes; SACK blocks fill what is left of
 * the 40-byte option space and the ones that do not fit are dropped from
 * the end (the first block reports the most recent data, RFC 2018 4).
 */
#include "wire/tcp.h"

#include "wire/bytes.h"
#include "wire/checksum.h"

#define TCP_PROTOCOL 6
#define TCP_OPTIONS_MAX (TCP_HEADER_MAX - TCP_HEADER_LENGTH)

#define TCP_OPTION_MSS_LENGTH 4
#define TCP_OPTION_WINDOW_SCALE_LENGTH 3
#define TCP_OPTION_SACK_PERMITTED_LENGTH 2
#define TCP_OPTION_TIMESTAMPS_LENGTH 10
#define TCP_OPTION_SACK_BASE_LENGTH 2
#define TCP_SACK_BLOCK_LENGTH 8

/* Reads one option whose kind and length the caller has already checked to
 * lie inside the header (option points at the kind byte, length >= 2).
 * Known options of the wrong length are ignored, as Linux does
 * (tcp_parse_options), rather than rejecting the segment. */
static void tcp_option_read(const uint8_t *option, uint8_t length, struct tcp_options *out)
{
    switch (option[0]) {
    case TCP_OPTION_MSS:
        if (length == TCP_OPTION_MSS_LENGTH) {
            out->has_mss = true;
            out->mss = load_be16(option + 2);
        }
        break;
    case TCP_OPTION_WINDOW_SCALE:
        /* RFC 7323 2.3: the receiver clamps a shift above 14 and logs it;
         * the view reports what was sent. */
        if (length == TCP_OPTION_WINDOW_SCALE_LENGTH) {
            out->has_window_scale = true;
            out->window_scale = option[2];
        }
        break;
    case TCP_OPTION_SACK_PERMITTED:
        if (length == TCP_OPTION_SACK_PERMITTED_LENGTH)
            out->sack_permitted = true;
        break;
    case TCP_OPTION_TIMESTAMPS:
        if (length == TCP_OPTION_TIMESTAMPS_LENGTH) {
            out->has_timestamps = true;
            out->timestamp_value = load_be32(option + 2);
            out->timestamp_echo = load_be32(option + 6);
        }
        break;
    case TCP_OPTION_SACK: {
        if ((length - TCP_OPTION_SACK_BASE_LENGTH) % TCP_SACK_BLOCK_LENGTH != 0)
            break;
        size_t count = (size_t)(length - TCP_OPTION_SACK_BASE_LENGTH) / TCP_SACK_BLOCK_LENGTH;
        /* 40 bytes of options hold at most 4 blocks; the clamp keeps the
         * array safe whatever the header limit. */
        if (count > TCP_SACK_BLOCKS_MAX)
            count = TCP_SACK_BLOCKS_MAX;
        const uint8_t *block = option + TCP_OPTION_SACK_BASE_LENGTH;
        for (size_t i = 0; i < count; i++, block += TCP_SACK_BLOCK_LENGTH) {
            out->sack_blocks[i].left = load_be32(block);
            out->sack_blocks[i].right = load_be32(block + 4);
        }
        out->sack_block_count = (uint8_t)count;
        break;
    }
    default:
        break; /* RFC 9293 3.1: unknown options are skipped by length */
    }
}

/* Walks the length bytes of options, reading the known ones into out.
 * Returns false for a malformed list: a length byte missing, below 2, or
 * running past the header (the class of bug AMNESIA:33 and Ripple20 found).
 * End of Option List stops the walk; what follows it is padding and is not
 * looked at (RFC 9293 3.2). */
static bool tcp_options_read(const uint8_t *options, size_t length, struct tcp_options *out)
{
    size_t offset = 0;
    while (offset < length) {
        uint8_t kind = options[offset];
        if (kind == TCP_OPTION_END)
            return true;
        if (kind == TCP_OPTION_NOP) {
            offset++;
            continue;
        }
        if (offset + 1 >= length)
            return false;
        uint8_t option_length = options[offset + 1];
        if (option_length < 2 || option_length > length - offset)
            return false;
        tcp_option_read(options + offset, option_length, out);
        offset += option_length;
    }
    return true;
}

enum tcp_parse_result tcp_parse(const uint8_t *segment, size_t length, uint32_t source,
                                uint32_t destination, bool verify_checksum,
                                struct tcp_header *out)
{
    if (length < TCP_HEADER_LENGTH)
        return TCP_PARSE_TRUNCATED;
    /* The low nibble of byte 12 holds reserved bits (and AccECN's AE); they
     * do not count toward the data offset. */
    size_t header_length = (size_t)(segment[12] >> 4) * 4;
    if (header_length < TCP_HEADER_LENGTH || header_length > length)
        return TCP_PARSE_BAD_HEADER_LENGTH;
    /* An IPv4 payload is at most 65515 bytes, so length fits the
     * pseudo-header's 16 bits. */
    if (verify_checksum) {
        uint32_t sum = checksum_pseudo_header(source, destination, TCP_PROTOCOL,
                                              (uint16_t)length);
        if (checksum_finish(checksum_add(sum, segment, length)) != 0)
            return TCP_PARSE_BAD_CHECKSUM;
    }
    struct tcp_options options = {0};
    if (!tcp_options_read(segment + TCP_HEADER_LENGTH, header_length - TCP_HEADER_LENGTH,
                          &options))
        return TCP_PARSE_BAD_OPTIONS;
    out->source_port = load_be16(segment);
    out->destination_port = load_be16(segment + 2);
    out->sequence = load_be32(segment + 4);
    out->acknowledgment = load_be32(segment + 8);
    out->header_length = (uint8_t)header_length;
    out->flags = segment[13];
    out->window = load_be16(segment + 14);
    out->checksum = load_be16(segment + 16);
    out->urgent_pointer = load_be16(segment + 18);
    out->options = options;
    return TCP_PARSE_OK;
}

/* Bytes the options other than SACK blocks take when emitted: at most 20. */
static size_t tcp_fixed_options_length(const struct tcp_options *options)
{
    size_t length = 0;
    if (options->has_mss)
        length += 4;
    if (options->has_timestamps)
        length += 12; /* with SACK-permitted in place of the two NOPs */
    else if (options->sack_permitted)
        length += 4;
    if (options->has_window_scale)
        length += 4;
    return length;
}

/* How many of the requested SACK blocks fit in the option space left after
 * fixed_length bytes: the rest are dropped from the end. */
static size_t tcp_sack_blocks_fitting(const struct tcp_options *options, size_t fixed_length)
{
    size_t count = options->sack_block_count;
    if (count > TCP_SACK_BLOCKS_MAX)
        count = TCP_SACK_BLOCKS_MAX;
    size_t room = TCP_OPTIONS_MAX - fixed_length;
    if (room < 4 + TCP_SACK_BLOCK_LENGTH)
        return 0;
    size_t fitting = (room - 4) / TCP_SACK_BLOCK_LENGTH;
    return count < fitting ? count : fitting;
}

size_t tcp_options_length(const struct tcp_options *options)
{
    size_t fixed_length = tcp_fixed_options_length(options);
    size_t blocks = tcp_sack_blocks_fitting(options, fixed_length);
    return fixed_length + (blocks > 0 ? 4 + blocks * TCP_SACK_BLOCK_LENGTH : 0);
}

/* Writes the options in the layout described at the top of this file and
 * returns the bytes written (tcp_options_length(options)). */
static size_t tcp_options_write(const struct tcp_options *options, uint8_t *out)
{
    uint8_t *p = out;
    if (options->has_mss) {
        p[0] = TCP_OPTION_MSS;
        p[1] = TCP_OPTION_MSS_LENGTH;
        store_be16(p + 2, options->mss);
        p += 4;
    }
    if (options->has_timestamps) {
        if (options->sack_permitted) {
            p[0] = TCP_OPTION_SACK_PERMITTED;
            p[1] = TCP_OPTION_SACK_PERMITTED_LENGTH;
        } else {
            p[0] = TCP_OPTION_NOP;
            p[1] = TCP_OPTION_NOP;
        }
        p[2] = TCP_OPTION_TIMESTAMPS;
        p[3] = TCP_OPTION_TIMESTAMPS_LENGTH;
        store_be32(p + 4, options->timestamp_value);
        store_be32(p + 8, options->timestamp_echo);
        p += 12;
    } else if (options->sack_permitted) {
        p[0] = TCP_OPTION_NOP;
        p[1] = TCP_OPTION_NOP;
        p[2] = TCP_OPTION_SACK_PERMITTED;
        p[3] = TCP_OPTION_SACK_PERMITTED_LENGTH;
        p += 4;
    }
    if (options->has_window_scale) {
        p[0] = TCP_OPTION_NOP;
        p[1] = TCP_OPTION_WINDOW_SCALE;
        p[2] = TCP_OPTION_WINDOW_SCALE_LENGTH;
        p[3] = options->window_scale;
        p += 4;
    }
    size_t blocks = tcp_sack_blocks_fitting(options, (size_t)(p - out));
    if (blocks > 0) {
        p[0] = TCP_OPTION_NOP;
        p[1] = TCP_OPTION_NOP;
        p[2] = TCP_OPTION_SACK;
        p[3] = (uint8_t)(TCP_OPTION_SACK_BASE_LENGTH + blocks * TCP_SACK_BLOCK_LENGTH);
        p += 4;
        for (size_t i = 0; i < blocks; i++, p += TCP_SACK_BLOCK_LENGTH) {
            store_be32(p, options->sack_blocks[i].left);
            store_be32(p + 4, options->sack_blocks[i].right);
        }
    }
    return (size_t)(p - out);
}

/* Writes the header and options with a zero checksum; returns their length. */
static size_t tcp_emit_header(const struct tcp_header *header, uint8_t *out)
{
    size_t header_length = TCP_HEADER_LENGTH + tcp_options_write(&header->options,
                                                                 out + TCP_HEADER_LENGTH);
    store_be16(out, header->source_port);
    store_be16(out + 2, header->destination_port);
    store_be32(out + 4, header->sequence);
    store_be32(out + 8, header->acknowledgment);
    out[12] = (uint8_t)(header_length / 4 << 4); /* reserved bits zero */
    out[13] = header->flags;
    store_be16(out + 14, header->window);
    store_be16(out + 16, 0);
    store_be16(out + 18, header->urgent_pointer);
    return header_length;
}

size_t tcp_emit(const struct tcp_header *header, uint32_t source, uint32_t destination,
                uint8_t *out, size_t payload_length)
{
    size_t header_length = tcp_emit_header(header, out);
    size_t segment_length = header_length + payload_length;
    uint32_t sum = checksum_pseudo_header(source, destination, TCP_PROTOCOL,
                                          (uint16_t)segment_length);
    /* Unlike UDP, TCP has no "no checksum" value: a computed 0 goes out as
     * 0 (RFC 9293 3.1). */
    store_be16(out + 16, checksum_finish(checksum_add(sum, out, segment_length)));
    return header_length;
}

size_t tcp_emit_checksum_partial(const struct tcp_header *header, uint32_t source,
                                 uint32_t destination, uint8_t *out, size_t payload_length)
{
    size_t header_length = tcp_emit_header(header, out);
    uint32_t sum = checksum_pseudo_header(source, destination, TCP_PROTOCOL,
                                          (uint16_t)(header_length + payload_length));
    /* Folded to 16 bits and stored uncomplemented: the finisher sums the
     * whole segment, this field included, and complements. */
    store_be16(out + 16, (uint16_t)~checksum_finish(sum));
    return header_length;
}
