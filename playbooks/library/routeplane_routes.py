#!/usr/bin/python3
# -*- coding: utf-8 -*-
# routeplane: make the host's routes carrying routeplane's protocol marker match a desired
# set, in one `ip -batch`, never touching a route routeplane does not own.
from __future__ import annotations

import ipaddress
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

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
      optional via, dev, scope, src, onlink, force.
    type: list
    elements: dict
    default: []
"""

TABLE_NAMES = {"main": 254, "local": 255, "default": 253}
SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
FAILED_LINE = re.compile(r"Command failed -:(\d+)")


def ip_json(module, args):
    rc, out, err = module.run_command(["ip", "-j"] + args, check_rc=False)
    if rc != 0:
        module.fail_json(msg="ip %s failed: %s" % (" ".join(args), err.strip()), rc=rc)
    out = out.strip()
    return json.loads(out) if out else []


def table_id(value):
    if value is None:
        return 254
    if isinstance(value, int):
        return value
    return TABLE_NAMES.get(value, int(value) if str(value).isdigit() else value)


def normalize_dst(dst, family):
    if dst == "default":
        return "0.0.0.0/0" if family == 4 else "::/0"
    return str(ipaddress.ip_network(dst, strict=False))


def kernel_key(r, family):
    """The kernel's identity of a route: (table, destination, metric)."""
    metric = r.get("metric", 0 if family == 4 else 1024)
    return (table_id(r.get("table")), normalize_dst(r["dst"], family), metric)


def read_table(module, family):
    # -N: protocol, scope and table as numbers, whatever names the host's rt_* files define.
    routes = ip_json(module, ["-N", "-%d" % family, "route", "show", "table", "all"])
    # Local, broadcast and multicast entries are the kernel's own bookkeeping, not routes.
    return [r for r in routes if r.get("type", "unicast") == "unicast"]


def same_attrs(desired, actual):
    return (
        desired.get("via") == actual.get("gateway")
        and (desired.get("dev") is None or desired.get("dev") == actual.get("dev"))
        and (desired.get("src") is None or desired.get("src") == actual.get("prefsrc"))
        and (
            desired.get("scope") is None
            or SCOPES.get(desired["scope"]) == int(actual.get("scope", 0))
        )
        and bool(desired.get("onlink")) == ("onlink" in actual.get("flags", []))
    )


def route_args(d, proto):
    args = [d["to"]]
    if d.get("via"):
        args += ["via", d["via"]]
    if d.get("dev"):
        args += ["dev", d["dev"]]
    if d.get("src"):
        args += ["src", d["src"]]
    if d.get("scope"):
        args += ["scope", d["scope"]]
    args += ["table", str(d["table"]), "metric", str(d["metric"]), "proto", str(proto)]
    if d.get("onlink"):
        args.append("onlink")
    return args


def management_address():
    """The address Ansible reaches this host from: a route capturing it would cut us off."""
    conn = os.environ.get("SSH_CONNECTION", "").split()
    if not conn:
        return None
    try:
        return ipaddress.ip_address(conn[0].split("%")[0])
    except ValueError:
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            proto=dict(type="int", required=True),
            routes=dict(type="list", elements="dict", default=[]),
        ),
        supports_check_mode=True,
    )
    proto = module.params["proto"]
    desired = {}
    for d in module.params["routes"]:
        family = ipaddress.ip_network(d["to"], strict=False).version
        d["to"] = str(ipaddress.ip_network(d["to"], strict=False))
        d["table"] = int(d.get("table") or 254)
        d["metric"] = int(d["metric"]) if d.get("metric") is not None else (0 if family == 4 else 1024)
        desired[(family, d["table"], d["to"], d["metric"])] = d

    owned, foreign = {}, {}
    for family in (4, 6):
        for r in read_table(module, family):
            key = (family,) + kernel_key(r, family)
            if str(r.get("protocol")) == str(proto):
                owned[key] = r
            else:
                foreign[key] = r

    mgmt = management_address()
    lines, line_owner = [], []
    added, replaced, removed, unchanged, conflicts = [], [], [], [], []

    for key, d in desired.items():
        ref = {"id": d.get("id"), "to": d["to"], "table": d["table"], "metric": d["metric"]}
        if key in foreign:
            existing = foreign[key]
            conflicts.append(dict(ref, reason="unowned", existing=existing))
            continue
        net = ipaddress.ip_network(d["to"])
        if mgmt is not None and mgmt.version == net.version and mgmt in net and not d.get("force"):
            conflicts.append(dict(ref, reason="lockout", management_address=str(mgmt)))
            continue
        if key in owned:
            if same_attrs(d, owned[key]):
                unchanged.append(ref)
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
    if lines and not module.check_mode:
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
        if i not in failed_lines:
            {"add": added, "replace": replaced, "del": removed}[op].append(ref)

    module.exit_json(
        changed=bool(added or replaced or removed),
        added=added,
        replaced=replaced,
        removed=removed,
        unchanged=unchanged,
        conflicts=conflicts,
        errors=errors,
        management_address=str(mgmt) if mgmt else None,
    )


if __name__ == "__main__":
    main()
