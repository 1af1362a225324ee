#!/usr/bin/python3
# -*- coding: utf-8 -*-
# routeplane: read a host's links, addresses and routes as iproute2 reports them (ip -j).
# One module call per host replaces a task per command; parsing happens in routeplane.
from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule

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


def main():
    module = AnsibleModule(
        argument_spec=dict(tables=dict(type="str", default="all")),
        supports_check_mode=True,
    )
    tables = module.params["tables"]
    links = ip_json(module, ["addr", "show"])
    routes4 = ip_json(module, ["-4", "route", "show", "table", tables])
    routes6 = ip_json(module, ["-6", "route", "show", "table", tables])
    for r in routes4:
        r["family"] = "inet"
    for r in routes6:
        r["family"] = "inet6"
    module.exit_json(changed=False, links=links, routes=routes4 + routes6)


if __name__ == "__main__":
    main()
