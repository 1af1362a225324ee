#!/usr/bin/python3
# -*- coding: utf-8 -*-
# routeplane: make the host's routes carrying routeplane's protocol marker match a desired
# set, in one `ip -batch`, never touching a route routeplane does not own.
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.routeplane_fence import take_fence
from ansible.module_utils.routeplane_kernel import (
    MAIN_TABLE,
    best_match,
    canonical_address,
    canonical_prefix,
    captures,
    kernel_metric,
    management_ip,
    nexthop_set,
    route_identity,
    same_nexthops,
    table_id,
)

DOCUMENTATION = r"""
module: routeplane_routes
short_description: Converge the routes owned by routeplane (proto N) to a desired set
options:
  proto:
    description: Routing protocol id that marks routeplane's routes.
    type: int
    required: true
  routes:
    description: >
      Desired routes, each a dict with id, to (a prefix), table (int), metric (int) and
      optional via, dev, scope, src, onlink, force. Either a list, or one string holding that
      list as base64 of its JSON (what routeplane sends; see "Why a string" below).
      A multipath (ECMP) route gives nexthops in place of via: a list of dicts with via (an
      address), optional dev and optional weight (1..256, default 1). A top-level dev is the
      dev of each member that names none; onlink applies to every member. One member is the
      same route as a plain via (the kernel keeps no weight for it). The forwarding is compared
      as a set: the kernel holding the same members in another order is unchanged.
    type: raw
    default: []
  management_address:
    description: >
      The controller's source address towards this host (computed by routeplane). Protected
      together with the client address of SSH_CONNECTION when there is one: a desired route
      that would change the main table's longest-prefix match for either is a conflict
      (reason lockout) unless it says force.
    type: str
  local_connection:
    description: >
      Ansible reaches this host without a network (connection local). Without it, the module
      refuses to run when it has no address to protect.
    type: bool
    default: false
  repair:
    description: >
      Make the host match. When false, only report what differs (added, replaced and removed
      then name what would change) and change nothing.
    type: bool
    default: true
  fence:
    description: >
      The host-side fence (module_utils/routeplane_fence.py), a dict with name (the inventory
      host name) and epoch (the run's lock epoch): the module waits for any other run on the
      host and refuses to run if a newer one has held it.
    type: dict
"""

RETURN = r"""
added:
  description: Ids of the desired routes added (or that would be, without repair).
  type: list
  elements: str
replaced:
  description: Ids of the desired routes whose attributes were replaced.
  type: list
  elements: str
removed:
  description: >
    Owned routes not in the desired set that were removed, as id (null), to, table, metric.
  type: list
  elements: dict
added_count: {description: len(added), type: int}
replaced_count: {description: len(replaced), type: int}
removed_count: {description: len(removed), type: int}
unchanged_count: {description: Desired routes the kernel already had as desired., type: int}
conflicts:
  description: Desired routes not applied (reason unowned or lockout), as id, to, table, metric.
  type: list
  elements: dict
errors:
  description: Lines of the batch the kernel refused, as id (null for a removal), to, op, error.
  type: list
  elements: dict
"""

# Why a string: with 1,000 routes as a list, Ansible (2.14, non-native Jinja) deep-copies the
# list from the host's vars file at every variable lookup, walks it to wrap every value as
# unsafe, and, because `{{ routeplane_routes.routes }}` renders to text starting with "[",
# parses that text back with ast.literal_eval: about 0.2 s of controller CPU per host, more than
# the whole floor (`ip -batch` fed by an ansible.builtin.command task) spends. Base64 text is one
# opaque scalar to Ansible: nothing to copy, wrap or re-parse, whatever the number of routes.
ROUTE_KEYS = {
    "id": (str,),
    "to": (str,),
    "table": (int, str),
    "metric": (int, str),
    "via": (str,),
    "dev": (str,),
    "scope": (str,),
    "src": (str,),
    "onlink": (bool,),
    "force": (bool,),
    "nexthops": (list,),
}
NEXTHOP_KEYS = {"via": (str,), "dev": (str,), "weight": (int,)}
MAX_WEIGHT = 256

SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
FAILED_LINE = re.compile(r"Command failed -:(\d+)")
# Every value becomes one word of an `ip -batch` line: whitespace (a newline above all) would
# make it more words, or another line, so no value may hold any.
NOT_ONE_WORD = re.compile(r"[\s\x00-\x1f\x7f]")
LOCAL_HINT = "set local_connection: true for a host Ansible reaches without a network"


def ip_json(module, args):
    rc, out, err = module.run_command(["ip", "-j"] + args, check_rc=False)
    if rc != 0:
        module.fail_json(msg="ip %s failed: %s" % (" ".join(args), err.strip()), rc=rc)
    out = out.strip()
    return json.loads(out) if out else []


def read_table(module, family):
    # -N: protocol, scope and table as numbers, whatever names the host's rt_* files define.
    return ip_json(module, ["-N", "-%d" % family, "route", "show", "table", "all"])


def is_unicast(r):
    # Local, broadcast and multicast entries are the kernel's own bookkeeping, not routes.
    return r.get("type", "unicast") == "unicast"


def desired_nexthops(d):
    """A desired route's forwarding as members for same_nexthops: its nexthops (two or more,
    see single_path), or its via and dev."""
    if d.get("nexthops"):
        return [(h["via"], h.get("dev"), h.get("weight") or 1) for h in d["nexthops"]]
    return [(d.get("via"), d.get("dev"), 1)]


def onlink_flags(actual):
    """Whether each path of a kernel route is onlink: a multipath route flags each nexthop."""
    paths = actual.get("nexthops") or [actual]
    return set("onlink" in (p.get("flags") or []) for p in paths)


def same_attrs(desired, actual):
    # A desired member without dev matches a kernel member on any device, as a plain route
    # without dev always did.
    return (
        same_nexthops(desired_nexthops(desired), nexthop_set(actual))
        and (desired.get("src") is None or desired.get("src") == actual.get("prefsrc"))
        and (
            desired.get("scope") is None
            or SCOPES.get(desired["scope"]) == int(actual.get("scope", 0))
        )
        and onlink_flags(actual) == set([bool(desired.get("onlink"))])
    )


def route_args(d, proto):
    args = [d["to"]]
    if d.get("via"):
        args += ["via", d["via"]]
    if d.get("dev") and not d.get("nexthops"):
        args += ["dev", d["dev"]]
    if d.get("src"):
        args += ["src", d["src"]]
    if d.get("scope"):
        args += ["scope", d["scope"]]
    # Before any nexthop: iproute2 reads everything after the first as nexthop attributes.
    args += ["table", str(d["table"]), "metric", str(d["metric"]), "proto", str(proto)]
    if d.get("nexthops"):
        for h in d["nexthops"]:
            args += ["nexthop", "via", h["via"]]
            if h.get("dev"):
                args += ["dev", h["dev"]]
            args += ["weight", str(h.get("weight") or 1)]
            if d.get("onlink"):
                args.append("onlink")
    elif d.get("onlink"):
        args.append("onlink")
    return args


def check_nexthops(module, i, d):
    """Refuses a nexthops argument that is not a non-empty list of {via, dev?, weight?}."""
    hops = d["nexthops"]
    where = "routes[%d] (%s): nexthops" % (i, d["to"])
    if d.get("via") is not None:
        module.fail_json(msg="%s: give either via or nexthops, not both" % where)
    if not hops:
        module.fail_json(msg="%s: expected at least one member" % where)
    for j, h in enumerate(hops):
        if not isinstance(h, dict):
            module.fail_json(msg="%s[%d]: expected a dict, got %r" % (where, j, h))
        for k, v in h.items():
            kinds = NEXTHOP_KEYS.get(k)
            if kinds is None:
                module.fail_json(msg="%s[%d]: unknown key %r" % (where, j, k))
            if v is not None and (not isinstance(v, kinds) or isinstance(v, bool)):
                module.fail_json(msg="%s[%d]: %s has type %s" % (where, j, k, type(v).__name__))
            if isinstance(v, str) and NOT_ONE_WORD.search(v):
                module.fail_json(msg="%s[%d]: %s %r is not one word" % (where, j, k, v))
        if not isinstance(h.get("via"), str):
            module.fail_json(msg="%s[%d]: via (an address) is required" % (where, j))
        try:
            canonical_address(h["via"])
        except ValueError:
            module.fail_json(msg="%s[%d]: via %r is not an address" % (where, j, h["via"]))
        w = h.get("weight")
        if w is not None and not 1 <= w <= MAX_WEIGHT:
            module.fail_json(msg="%s[%d]: weight %d is not 1..%d" % (where, j, w, MAX_WEIGHT))


def single_path(d):
    """A desired route with nexthops, as the kernel will hold it: one member is a plain via
    (and dev); two or more keep their members, each with the route's dev when it names none."""
    hops = d.pop("nexthops", None)
    if not hops:
        return
    if len(hops) == 1:
        d["via"] = hops[0]["via"]
        d["dev"] = hops[0].get("dev") or d.get("dev")
        return
    d["nexthops"] = [dict(h, dev=h.get("dev") or d.get("dev")) for h in hops]


def merge_paths(prev, r):
    """Kernels before 4.11 list an IPv6 multipath route as one entry per nexthop: the entries
    of one identity, as the single multipath entry newer kernels print."""
    hops = []
    for e in (prev, r):
        hops += e.get("nexthops") or [
            {"gateway": e.get("gateway"), "dev": e.get("dev"), "weight": 1, "flags": e.get("flags", [])}
        ]
    merged = dict(prev, nexthops=hops, flags=[])
    merged.pop("gateway", None)
    merged.pop("dev", None)
    return merged


def desired_routes(module):
    """The routes argument as a list of dicts, checked lightly: one pass over plain dicts in place
    of AnsibleModule's per-item validation (routeplane validated every field already; a direct
    caller gets a clear error naming the route)."""
    raw = module.params["routes"]
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError) as e:
            module.fail_json(msg="routes: a string must be base64 of a JSON list (%s)" % e)
    if not isinstance(raw, list):
        module.fail_json(msg="routes: expected a list, got %s" % type(raw).__name__)
    for i, d in enumerate(raw):
        if not isinstance(d, dict) or not isinstance(d.get("to"), str):
            module.fail_json(msg="routes[%d]: expected a dict with to (a prefix), got %r" % (i, d))
        for k, v in d.items():
            kinds = ROUTE_KEYS.get(k)
            if kinds is None:
                module.fail_json(msg="routes[%d] (%s): unknown key %r" % (i, d["to"], k))
            # bool is an int in Python: a table or metric of true is refused by table_id and
            # kernel_metric below.
            if v is not None and not isinstance(v, kinds):
                module.fail_json(msg="routes[%d] (%s): %s has type %s" % (i, d["to"], k, type(v).__name__))
            if isinstance(v, str) and NOT_ONE_WORD.search(v):
                module.fail_json(msg="routes[%d] (%r): %s %r is not one word" % (i, d["to"], k, v))
        if d.get("nexthops") is not None:
            check_nexthops(module, i, d)
    return raw


def management_addresses(module):
    """The addresses Ansible reaches this host from: a route capturing one would cut us off.
    routeplane's own view (its source address towards the host) and SSH_CONNECTION's client,
    when each is known."""
    found = []
    given = module.params.get("management_address")
    if given:
        addr = management_ip(given)
        if addr is None:
            module.fail_json(msg="management_address %r is not an IP address" % given)
        found.append(addr)
    conn = os.environ.get("SSH_CONNECTION", "").split()
    addr = management_ip(conn[0]) if conn else None
    if addr is not None and addr not in found:
        found.append(addr)
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            proto=dict(type="int", required=True),
            # raw: a list or base64 text (see "Why a string"), checked by desired_routes.
            routes=dict(type="raw", default=[]),
            management_address=dict(type="str"),
            local_connection=dict(type="bool", default=False),
            repair=dict(type="bool", default=True),
            fence=dict(type="dict"),
        ),
        supports_check_mode=True,
    )
    take_fence(module, module.params["fence"])
    proto = module.params["proto"]
    changing = module.params["repair"] and not module.check_mode
    mgmt = management_addresses(module)
    if not mgmt and not module.params["local_connection"]:
        # Fail closed: without an address to protect, a route could cut the host off.
        module.fail_json(
            msg="routeplane_routes: no management address to protect (no management_address "
            "given and no SSH_CONNECTION); refusing to change routes. " + LOCAL_HINT
        )
    routes = desired_routes(module)
    desired = {}
    for i, d in enumerate(routes):
        try:
            family = ipaddress.ip_network(d["to"], strict=False).version
            d["to"] = canonical_prefix(d["to"], family)
            d["table"] = table_id(d.get("table"))
            d["metric"] = kernel_metric(d.get("metric"), family)
        except ValueError as e:
            module.fail_json(msg="routes[%d] (%s): %s" % (i, d.get("to"), e))
        single_path(d)
        desired[(family, d["table"], d["to"], d["metric"])] = d

    owned, foreign = {}, {}
    main_routes = {4: [], 6: []}
    for family in (4, 6):
        for r in read_table(module, family):
            key = route_identity(r, family)
            if key[1] == MAIN_TABLE:
                # Every type takes part in the main table's longest-prefix match.
                main_routes[family].append({"dst": key[2], "metric": key[3]})
            if not is_unicast(r):
                continue
            if str(r.get("protocol")) == str(proto):
                owned[key] = merge_paths(owned[key], r) if key in owned and family == 6 else r
            else:
                foreign[key] = r
    current_best = [(addr, best_match(main_routes[addr.version], addr)) for addr in mgmt]

    lines, line_owner = [], []
    added, replaced, removed, conflicts = [], [], [], []
    unchanged = 0

    for key, d in desired.items():
        ref = {"id": d.get("id"), "to": d["to"], "table": d["table"], "metric": d["metric"]}
        if key in foreign:
            existing = foreign[key]
            conflicts.append(dict(ref, reason="unowned", existing=existing))
            continue
        captured = [
            addr
            for addr, best in current_best
            if d["table"] == MAIN_TABLE and captures({"dst": d["to"], "metric": d["metric"]}, best, addr)
        ]
        if captured and not d.get("force"):
            conflicts.append(dict(ref, reason="lockout", management_address=str(captured[0])))
            continue
        if key in owned:
            if same_attrs(d, owned[key]):
                unchanged += 1
                continue
            lines.append("route replace " + " ".join(route_args(d, proto)))
            line_owner.append(("replace", ref))
        else:
            lines.append("route add " + " ".join(route_args(d, proto)))
            line_owner.append(("add", ref))

    for key, r in owned.items():
        if key in desired:
            continue
        family, table, dst, metric = key
        lines.append("route del %s table %d metric %d proto %d" % (dst, table, metric, proto))
        # No id: this route is not in the desired set. A failed removal is still reported (under
        # errors, op del), and the reconciler fails the host for it so that it is retried.
        line_owner.append(("del", {"id": None, "to": dst, "table": table, "metric": metric}))

    errors = []
    failed_lines = {}
    if lines and changing:
        # -force keeps going past a failing line; its error names the line, so each failure is
        # reported against its own route while the rest of the batch still applies.
        rc, out, err = module.run_command(
            ["ip", "-force", "-batch", "-"], data="\n".join(lines) + "\n", check_rc=False
        )
        pending_msgs = []
        for text in err.splitlines():
            m = FAILED_LINE.search(text)
            if m:
                failed_lines[int(m.group(1))] = "; ".join(pending_msgs) or text
                pending_msgs = []
            elif text.strip():
                pending_msgs.append(text.strip())
        for i, (op, ref) in enumerate(line_owner, start=1):
            if i in failed_lines:
                errors.append(dict(ref, op=op, error=failed_lines[i]))
        if rc != 0 and not failed_lines:
            module.fail_json(msg="ip -batch failed: %s" % err.strip(), rc=rc)
    # By line, not by id: a failed removal has no id, and the same destination may be removed
    # from several tables in one batch.
    for i, (op, ref) in enumerate(line_owner, start=1):
        if i in failed_lines:
            continue
        if op == "del":
            removed.append(ref)
        else:
            # Ids only: a bulk's 1,000 additions are 1,000 short strings, not 1,000 dicts for
            # Ansible to copy, clean and print, and for routeplane to parse and store.
            (added if op == "add" else replaced).append(ref["id"])

    # Counts and changes only: a host's unchanged routes (thousands) are not worth a result row.
    module.exit_json(
        # As Ansible's check mode: changed says what would change when nothing was applied.
        changed=bool(added or replaced or removed),
        repaired=changing,
        added=added,
        replaced=replaced,
        removed=removed,
        added_count=len(added),
        replaced_count=len(replaced),
        removed_count=len(removed),
        unchanged_count=unchanged,
        conflicts=conflicts,
        errors=errors,
        management_address=str(mgmt[0]) if mgmt else None,
        management_addresses=[str(a) for a in mgmt],
        # Ansible echoes every argument back unless told otherwise: that would be the whole
        # desired set again, on every run, for nothing to read it (routeplane drops it).
        invocation={"module_args": dict(module.params, routes="(%d routes)" % len(routes))},
    )


if __name__ == "__main__":
    main()
