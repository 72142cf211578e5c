/*
 * counters.h - every counter the stack keeps, named as the Linux MIBs name
 * them (RFC 4293 IP/ICMP/UDP groups), plus one named counter for every
 * reason a received packet is dropped.  The list is an X-macro so the enum,
 * the name table and `usock stats` can never disagree.
 */
#ifndef USOCK_COUNTERS_H
#define USOCK_COUNTERS_H

#define USOCK_COUNTER_LIST(X)                                                    \
    /* link and Ethernet */                                                      \
    X(LinkInFrames) X(LinkOutFrames) X(LinkOutErrors) X(LinkInChecksumOffloaded)  \
    X(LinkInSuperSegments) X(LinkOutSuperSegments)                               \
    X(EthInRunts) X(EthInNotForUs) X(EthInUnknownTypes)                          \
    /* ARP and the neighbour cache */                                            \
    X(ArpInRequests) X(ArpInReplies) X(ArpInTruncated) X(ArpInUnsupported)       \
    X(ArpInBadSender) X(ArpInNotForUs) X(ArpOutRequests) X(ArpOutReplies)        \
    X(ArpOutGratuitous) X(ArpResolveFailed) X(ArpQueueOverflows)                 \
    X(ArpCacheFull)                                                              \
    /* IPv4 (RFC 4293 names first) */                                            \
    X(IpInReceives) X(IpInHdrErrors) X(IpInAddrErrors) X(IpInUnknownProtos)      \
    X(IpInDiscards) X(IpInDelivers) X(IpOutRequests) X(IpOutDiscards)            \
    X(IpOutNoRoutes) X(IpFragOKs) X(IpFragFails) X(IpFragCreates)                \
    X(IpInTruncated) X(IpInBadVersion) X(IpInBadHeaderLength)                    \
    X(IpInBadTotalLength) X(IpInCsumErrors) X(IpInBadOptions)                    \
    X(IpInMartians) X(IpLoopbackOverflows) X(IpInMulticastFiltered)              \
    X(IpReasmReqds) X(IpReasmOKs) X(IpReasmFails) X(IpReasmTimeout)              \
    X(IpReasmOverlaps) X(IpReasmDuplicates) X(IpReasmOversize)                   \
    X(IpReasmTinyFirst) X(IpReasmMalformed) X(IpReasmMemoryDrops)                \
    /* ICMP */                                                                   \
    X(IcmpInMsgs) X(IcmpInErrors) X(IcmpInCsumErrors) X(IcmpInTruncated)         \
    X(IcmpInEchos) X(IcmpInEchoReps) X(IcmpInDestUnreachs)                       \
    X(IcmpInTimeExcds) X(IcmpInOther) X(IcmpInErrorsNoSocket)                    \
    X(IcmpOutMsgs) X(IcmpOutErrors) X(IcmpOutEchoReps) X(IcmpOutDestUnreachs)    \
    X(IcmpOutRateLimited) X(IcmpOutSuppressed)                                   \
    /* UDP */                                                                    \
    X(UdpInDatagrams) X(UdpNoPorts) X(UdpInErrors) X(UdpOutDatagrams)            \
    X(UdpRcvbufErrors) X(UdpSndbufErrors) X(UdpInCsumErrors) X(UdpMemErrors)     \
    X(UdpInTruncated) X(UdpInBadLength) X(UdpOutErrors)                         \
    X(RawRcvbufErrors) X(RawMemErrors) X(PingRcvbufErrors) X(PingMemErrors)      \
    /* IGMP */                                                                   \
    X(IgmpInMsgs) X(IgmpInErrors) X(IgmpInQueries) X(IgmpInReports)              \
    X(IgmpInLeaves) X(IgmpOutReports) X(IgmpOutLeaves) X(IgmpReportsSuppressed)  \
    /* TCP (RFC 4022 names first, then Linux TcpExt-style) */                   \
    X(TcpActiveOpens) X(TcpPassiveOpens) X(TcpAttemptFails) X(TcpEstabResets)    \
    X(TcpInSegs) X(TcpOutSegs) X(TcpRetransSegs) X(TcpInErrs) X(TcpOutRsts)      \
    X(TcpInCsumErrors) X(TcpInTruncated) X(TcpInBadHeaderLength)                 \
    X(TcpInBadOptions) X(TcpInNotUnicast) X(TcpInNoSocket)                       \
    X(TcpInUnacceptable) X(TcpInAckTooNew) X(TcpListenOverflows)                 \
    X(TcpListenDrops) X(TcpOutOfOrderQueued) X(TcpOutOfOrderDrops)               \
    X(TcpTimeouts) X(TcpSynRetrans) X(TcpFastRetrans) X(TcpRecoveries)           \
    X(TcpDelayedAcks) X(TcpPersistProbes) X(TcpKeepaliveProbes)                  \
    X(TcpTimeWaitOverflows) X(TcpAbortOnData) X(TcpAbortOnClose)                 \
    X(TcpAbortOnLinger) X(TcpAbortOnTimeout) X(TcpChallengeAcks)                 \
    X(TcpRstsReceived) X(TcpInWindowRstsIgnored) X(TcpPawsEstabRejected)        \
    X(TcpSackRecoveries) X(TcpSackDiscard) X(TcpDsackReceived) X(TcpDsackSent)   \
    X(TcpSackBlocksSent) X(TcpSpuriousRecoveryUndo) X(TcpSpuriousRtoUndo)       \
    X(TcpLostRetransmit) X(TcpLossProbes) X(TcpTimeWaitRstsIgnored)  \
    X(TcpUrgentPointersIgnored) X(TcpSynCookiesSent) X(TcpSynCookiesRecv)       \
    X(TcpSynCookiesFailed) X(TcpMemoryPressures) X(TcpMemoryDrops)     \
    X(TcpHeaderPredictedData) X(TcpHeaderPredictedAcks)                          \
    X(TcpAckSkippedSeq) X(TcpAckSkippedPaws)                                     \
    X(TcpChallengeAcksSkipped) X(TcpInAckTooOld)

enum counter_id {
#define USOCK_COUNTER_ENUM(name) COUNTER_##name,
    USOCK_COUNTER_LIST(USOCK_COUNTER_ENUM)
#undef USOCK_COUNTER_ENUM
    COUNTER_COUNT
};

#endif
