#!/usr/bin/python3
# -*- coding: utf-8 -*-
# routeplane: read a host's links, addresses and routes as iproute2 reports them (ip -j), and
# its firewall: routeplane's nftables table (nft -j) and the whole ruleset as text.
# One module call per host replaces a task per command; parsing happens in routeplane, but each
# route's destination and table leave here already in the kernel's canonical spelling (the same
# normalisation as routeplane_routes: module_utils/routeplane_kernel.py).
from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.routeplane_kernel import canonical_prefix, read_table_names, table_id

DOCUMENTATION = r"""
module: routeplane_state
short_description: Report links, addresses and routes of the host (read-only)
options:
  tables:
    description: Routing tables to read, as `ip route show table` accepts them.
    type: str
    default: all
"""


def ip_json(module, args):
    rc, out, err = module.run_command(["ip", "-j"] + args, check_rc=False)
    if rc != 0:
        module.fail_json(msg="ip %s failed: %s" % (" ".join(args), err.strip()), rc=rc)
    out = out.strip()
    return json.loads(out) if out else []


def firewall_state(module):
    # A host without nft has no firewall routeplane could read: reported as such, never a
    # failure of the gather (which would hide its links and routes).
    nft = module.get_bin_path("nft")
    if not nft:
        return {"available": False, "table": None, "ruleset": None, "error": "nft is not installed"}
    rc, out, err = module.run_command([nft, "-j", "list", "table", "inet", "routeplane"], check_rc=False)
    table = None
    if rc == 0 and out.strip():
        table = [i for i in json.loads(out).get("nftables", []) if "metainfo" not in i]
    rc, text, err = module.run_command([nft, "list", "ruleset"], check_rc=False)
    return {
        "available": True,
        "table": table,
        "ruleset": text if rc == 0 else None,
        "error": None if rc == 0 else err.strip(),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(tables=dict(type="str", default="all")),
        supports_check_mode=True,
    )
    tables = module.params["tables"]
    links = ip_json(module, ["addr", "show"])
    routes4 = ip_json(module, ["-4", "route", "show", "table", tables])
    routes6 = ip_json(module, ["-6", "route", "show", "table", tables])
    names = read_table_names()
    for family, routes in ((4, routes4), (6, routes6)):
        for r in routes:
            r["family"] = "inet" if family == 4 else "inet6"
            # `default` as 0.0.0.0/0 or ::/0, host routes with their length, and the table as
            # a number whatever name the host's rt_tables gives it. The metric stays as the
            # kernel prints it (absent for an IPv4 metric 0).
            try:
                r["dst"] = canonical_prefix(r["dst"], family)
            except (KeyError, ValueError):
                pass  # nothing the kernel prints today; kept as it came
            try:
                r["table"] = table_id(r.get("table"), names)
            except ValueError:
                pass  # a name no rt_tables file defines: kept as ip printed it
    module.exit_json(changed=False, links=links, routes=routes4 + routes6,
                     firewall=firewall_state(module))


if __name__ == "__main__":
    main()
