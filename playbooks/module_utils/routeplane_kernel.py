# -*- coding: utf-8 -*-
# routeplane: the kernel's view of a route, in one place for every routeplane module.
#
# `ip -j` and `ip -N -j` spell the same route differently (table "main" or 254, "default" or
# 0.0.0.0/0, a host route without its length), and the kernel stores an IPv6 route's metric 0
# as 1024. Everything here is pure standard library, so it is imported the same way by the
# modules (`from ansible.module_utils.routeplane_kernel import ...`) and by routeplane's tests
# (PYTHONPATH=playbooks/module_utils). src/routes/kernel-route.ts is its TypeScript twin; the
# test tests/integration/routes/kernel-normalise.test.ts runs both on the same inputs.
from __future__ import annotations

import glob
import ipaddress
import re

MAIN_TABLE = 254
# The names iproute2 always knows; others come from the host's rt_tables files.
TABLE_IDS = {"unspec": 0, "default": 253, "main": 254, "local": 255}
TABLE_NAMES = {253: "default", 254: "main", 255: "local"}
# What the kernel stores when a route names no metric, and what it makes of metric 0.
DEFAULT_METRIC = {4: 0, 6: 1024}
UINT32_MAX = 4294967295

RT_TABLES_FILES = (
    "/etc/iproute2/rt_tables",
    "/usr/share/iproute2/rt_tables",
    "/usr/lib/iproute2/rt_tables",
)
RT_TABLES_DIRS = ("/etc/iproute2/rt_tables.d", "/usr/share/iproute2/rt_tables.d")


def family_of(value):
    """4 or 6 from "inet"/"inet6", 4/6, or an address or prefix."""
    if value in (4, "4", "inet"):
        return 4
    if value in (6, "6", "inet6"):
        return 6
    text = str(value)
    if text == "default":
        raise ValueError("'default' has no family of its own")
    return ipaddress.ip_network(text.split("%")[0], strict=False).version


def canonical_address(value):
    """An address as the kernel prints it: IPv4-mapped IPv6 keeps its dotted tail."""
    addr = ipaddress.ip_address(str(value).split("%")[0])
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return "::ffff:%s" % addr.ipv4_mapped
    return str(addr)


def canonical_prefix(dst, family=None):
    """A destination as a full prefix: `default` is 0.0.0.0/0 or ::/0, host routes get /32 or
    /128, host bits are cleared, IPv6 is compressed and IPv4-mapped keeps its dotted tail."""
    text = str(dst)
    if text == "default":
        if family is None:
            raise ValueError("'default' needs a family")
        return "0.0.0.0/0" if family_of(family) == 4 else "::/0"
    net = ipaddress.ip_network(text, strict=False)
    if family is not None and net.version != family_of(family):
        raise ValueError("%s is not IPv%d" % (text, family_of(family)))
    return "%s/%d" % (canonical_address(net.network_address), net.prefixlen)


def read_table_names():
    """Custom table names of this host, as iproute2 reads them (name -> id)."""
    names = {}
    files = list(RT_TABLES_FILES)
    for d in RT_TABLES_DIRS:
        files += sorted(glob.glob(d + "/*.conf"))
    for path in files:
        try:
            with open(path) as f:
                for line in f:
                    m = re.match(r"\s*(0x[0-9a-fA-F]+|\d+)\s+(\S+)", line)
                    if m:
                        names.setdefault(m.group(2), int(m.group(1), 0))
        except (IOError, OSError):
            continue
    return names


def table_id(value, names=None):
    """A table as a number: absent is main; main/local/default, numbers and numeric strings,
    and names from `names` (a host's rt_tables). An unknown name is a ValueError."""
    if value is None or value == "":
        return MAIN_TABLE
    if isinstance(value, bool):
        raise ValueError("table %r is not a table" % (value,))
    if isinstance(value, int):
        n = value
    else:
        text = str(value).strip()
        if re.match(r"^\d+$", text):
            n = int(text)
        elif text in TABLE_IDS:
            n = TABLE_IDS[text]
        elif names and text in names:
            n = int(names[text])
        else:
            raise ValueError("unknown table %r" % (value,))
    if n < 0 or n > UINT32_MAX:
        raise ValueError("table %r is out of range" % (value,))
    return n


def table_name(table):
    """How `ip -j` names a table: main, local or default, otherwise its number as text."""
    n = table_id(table)
    return TABLE_NAMES.get(n, str(n))


def kernel_metric(metric, family):
    """The metric the kernel stores: the family's default when absent, and 1024 for an IPv6
    metric 0 (the kernel's IP6_RT_PRIO_USER)."""
    fam = family_of(family)
    if metric is None or metric == "":
        return DEFAULT_METRIC[fam]
    if isinstance(metric, bool):
        raise ValueError("metric %r is not a number" % (metric,))
    n = int(metric)
    if n < 0 or n > UINT32_MAX:
        raise ValueError("metric %r is out of range" % (metric,))
    if fam == 6 and n == 0:
        return DEFAULT_METRIC[6]
    return n


def normalize_route(raw, family=None, names=None):
    """The kernel-facing identity of one route as `ip -j` or `ip -N -j` prints it:
    {"family": 4|6, "dst", "table", "metric"}. `family` is needed for `default` unless the
    entry says (`family: inet6`)."""
    fam = family_of(family if family is not None else raw.get("family") or raw["dst"])
    return {
        "family": fam,
        "dst": canonical_prefix(raw["dst"], fam),
        "table": table_id(raw.get("table"), names),
        "metric": kernel_metric(raw.get("metric"), fam),
    }


def route_identity(raw, family=None, names=None):
    """(family, table, destination, metric): one kernel route per identity."""
    n = normalize_route(raw, family, names)
    return (n["family"], n["table"], n["dst"], n["metric"])


def management_ip(value):
    """An address to protect, as an ip_address; IPv4-mapped IPv6 (sshd on a dual-stack
    socket reports IPv4 clients so) is the IPv4 address it carries. None when unusable."""
    if value is None:
        return None
    try:
        addr = ipaddress.ip_address(str(value).strip().split("%")[0])
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def best_match(routes, addr):
    """The route the main table would use for `addr`: longest prefix, then lowest metric.
    `routes` are normalised (dst, metric) dicts of one table; None when none contains it."""
    best = None
    for r in routes:
        net = ipaddress.ip_network(r["dst"])
        if net.version != addr.version or addr not in net:
            continue
        rank = (net.prefixlen, -r["metric"])
        if best is None or rank > best[0]:
            best = (rank, r)
    return best[1] if best else None


def captures(route, current_best, addr):
    """Whether installing `route` (normalised, main table) changes the longest-prefix match
    for `addr`: it contains `addr` and beats the current best (longer prefix, or the same
    prefix with a lower metric). A route already being the best match captures nothing."""
    net = ipaddress.ip_network(route["dst"])
    if net.version != addr.version or addr not in net:
        return False
    if current_best is None:
        return True
    best_len = ipaddress.ip_network(current_best["dst"]).prefixlen
    if net.prefixlen != best_len:
        return net.prefixlen > best_len
    return route["metric"] < current_best["metric"]


# Multipath (ECMP). Seen on Linux 6.18 with iproute2 6.1, both families alike: a route of two
# or more nexthops has no top-level gateway or dev, and lists them under `nexthops`, each
# {"gateway", "dev", "weight", "flags"} (flags such as "onlink", "linkdown", "dead" are per
# nexthop), in the order they were given:
#   {"dst": "198.51.100.0/24", "protocol": "147", "metric": 10, "flags": [],
#    "nexthops": [{"gateway": "192.0.2.2", "dev": "d0", "weight": 1, "flags": []},
#                 {"gateway": "10.9.0.2", "dev": "d1", "weight": 3, "flags": []}]}
#   {"dst": "2001:db8:ff::/48", "protocol": "147", "metric": 10, "flags": [], "pref": "medium",
#    "nexthops": [{"gateway": "2001:db8:1::2", "dev": "d0", "weight": 1, "flags": []}, ...]}
# A route given one `nexthop` is stored as a plain gateway (its weight is dropped). Kernels
# before 4.11 list an IPv6 multipath route as one entry per nexthop (same destination, table
# and metric, each with its own gateway); older iproute2 may leave `weight` out (it is 1).


def _text(value):
    return value if isinstance(value, str) and value != "" else None


def _gateway(value):
    text = _text(value)
    if text is None:
        return None
    try:
        return canonical_address(text)
    except ValueError:
        return text  # not an address (nothing the kernel prints today): kept as printed


def _weight(value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return 1


def _hop_key(hop):
    return (hop[0] or "", hop[1] or "", hop[2])


def nexthop_set(raw):
    """A route entry's forwarding as `ip -j` prints it, as a set: a sorted tuple of
    (canonical gateway or None, dev or None, weight) from its `nexthops` (multipath), or from
    its top-level gateway and dev (single path, weight 1)."""
    hops = raw.get("nexthops")
    if isinstance(hops, list) and hops:
        found = [
            (_gateway(h.get("gateway")), _text(h.get("dev")), _weight(h.get("weight")))
            for h in hops
            if isinstance(h, dict)
        ]
    else:
        found = [(_gateway(raw.get("gateway")), _text(raw.get("dev")), 1)]
    return tuple(sorted(found, key=_hop_key))


def same_nexthops(desired, actual):
    """Whether a desired forwarding (members as nexthop_set gives them; dev None matches any
    device) is the kernel's `actual` one, whatever the order of either."""
    want = [(_gateway(g), _text(d), _weight(w)) for g, d, w in desired]
    left = [(_gateway(g), _text(d), _weight(w)) for g, d, w in actual]
    if len(want) != len(left):
        return False
    # Members naming a device take their exact match first; members without one then take any
    # remaining member of the same gateway and weight (they are interchangeable among
    # themselves, so taking the first is as good as any).
    for hop in sorted(want, key=lambda h: h[1] is None):
        for i, have in enumerate(left):
            if have[0] == hop[0] and have[2] == hop[2] and (hop[1] is None or have[1] == hop[1]):
                del left[i]
                break
        else:
            return False
    return True
