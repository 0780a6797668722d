/**
 * rtnetlink constants, from the kernel's uapi headers (`linux/netlink.h`, `linux/rtnetlink.h`,
 * `linux/if_link.h`, `linux/if_addr.h`, `linux/veth.h`, `linux/if.h`). Plain constants only: the
 * pinned thread imports this file.
 *
 * @internal
 */

// linux/netlink.h: message header and flags
export const NLMSG_HDRLEN = 16
export const NLMSG_NOOP = 1
export const NLMSG_ERROR = 2
export const NLMSG_DONE = 3
export const NLMSG_OVERRUN = 4

export const NLM_F_REQUEST = 0x1
export const NLM_F_MULTI = 0x2
export const NLM_F_ACK = 0x4
export const NLM_F_DUMP_INTR = 0x10
/** GET requests. */
export const NLM_F_DUMP = 0x300
/** NEW requests. */
export const NLM_F_REPLACE = 0x100
export const NLM_F_EXCL = 0x200
export const NLM_F_CREATE = 0x400
/** Flags of an ack (`NLMSG_ERROR`): the request is not copied whole; TLVs follow. */
export const NLM_F_CAPPED = 0x100
export const NLM_F_ACK_TLVS = 0x200

/** Extended ack attributes (`enum nlmsgerr_attrs`). */
export const NLMSGERR_ATTR_MSG = 1
export const NLMSGERR_ATTR_OFFS = 2

export const NLA_F_NESTED = 0x8000
export const NLA_TYPE_MASK = 0x3fff

// linux/rtnetlink.h: message types
export const RTM_NEWLINK = 16
export const RTM_DELLINK = 17
export const RTM_GETLINK = 18
export const RTM_SETLINK = 19
export const RTM_NEWADDR = 20
export const RTM_DELADDR = 21
export const RTM_GETADDR = 22
export const RTM_NEWROUTE = 24
export const RTM_DELROUTE = 25
export const RTM_GETROUTE = 26

export const AF_UNSPEC = 0
export const AF_INET = 2
export const AF_INET6 = 10

// linux/if_link.h: link attributes
export const IFLA_ADDRESS = 1
export const IFLA_BROADCAST = 2
export const IFLA_IFNAME = 3
export const IFLA_MTU = 4
export const IFLA_LINK = 5
export const IFLA_MASTER = 10
export const IFLA_OPERSTATE = 16
export const IFLA_LINKINFO = 18
export const IFLA_NET_NS_FD = 28
export const IFLA_EXT_MASK = 29
export const IFLA_LINK_NETNSID = 37
export const IFLA_INFO_KIND = 1
export const IFLA_INFO_DATA = 2
export const IFLA_INFO_SLAVE_KIND = 4
/** linux/veth.h */
export const VETH_INFO_PEER = 1
/** `IFLA_EXT_MASK` bits (linux/rtnetlink.h). */
export const RTEXT_FILTER_SKIP_STATS = 1 << 3

// linux/if.h: link flags
export const IFF_UP = 0x1
export const IFF_LOOPBACK = 0x8
export const IFF_RUNNING = 0x40
export const IFF_LOWER_UP = 0x10000

// linux/if_addr.h: address attributes and flags
export const IFA_ADDRESS = 1
export const IFA_LOCAL = 2
export const IFA_LABEL = 3
export const IFA_FLAGS = 8
export const IFA_F_NODAD = 0x02
export const IFA_F_TENTATIVE = 0x40
export const IFA_F_PERMANENT = 0x80

// linux/rtnetlink.h: route attributes, tables, protocols, scopes, types
export const RTA_DST = 1
export const RTA_SRC = 2
export const RTA_OIF = 4
export const RTA_GATEWAY = 5
export const RTA_PRIORITY = 6
export const RTA_PREFSRC = 7
export const RTA_TABLE = 15

export const RT_TABLE_UNSPEC = 0
export const RT_TABLE_MAIN = 254
export const RT_TABLE_LOCAL = 255

export const RTPROT_BOOT = 3
export const RTPROT_STATIC = 4

export const RT_SCOPE_UNIVERSE = 0
export const RT_SCOPE_LINK = 253
export const RT_SCOPE_HOST = 254
export const RT_SCOPE_NOWHERE = 255

export const RTN_UNICAST = 1
