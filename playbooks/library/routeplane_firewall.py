#!/usr/bin/python
# -*- coding: utf-8 -*-
# routeplane: replaces routeplane's nftables table (inet routeplane) on a host, atomically.
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.routeplane_fence import fence_base, take_fence

DOCUMENTATION = r"""
module: routeplane_firewall
short_description: Replace routeplane's nftables table in one transaction
description:
  - Replaces the table C(inet routeplane) with the given text in one C(nft -f) transaction
    (the table is created empty, deleted and defined again in the same file), so on any error
    nothing on the host changes. Nothing outside that table is touched.
  - An apply is a no-op when the desired text is the one last applied and the live table,
    without handles and counters, is the one recorded after that apply; a hand edit inside the
    table is therefore reverted by the next apply.
options:
  table:
    description: The whole definition of C(table inet routeplane { ... }), rendered on the
      controller from a template. Required with I(state=present).
    type: str
  state:
    description: C(present) keeps the table as given; C(absent) deletes routeplane's table
      (releasing the host) and nothing else.
    type: str
    choices: [present, absent]
    default: present
  fence:
    description: The run's host fence, as routeplane_routes takes it.
    type: dict
"""

TABLE = "inet routeplane"
# A rule's nft comment carries only its id: errors are mapped back to rules through it.
RULE_COMMENT = re.compile(r'comment "rp:([0-9a-fA-F-]{36})"')
# nft -f reports "<file>:<line>:<col>-<col>: Error: ..."
ERROR_LINE = re.compile(r":(\d+):\d+(?:-\d+)?: Error: (.*)")
PREAMBLE = "table %s\ndelete table %s\n" % (TABLE, TABLE)
TOP_LEVEL_TABLE = re.compile(r"^\s*table\s+(\S+)\s+(\S+)")


def nft(module, args, data=None):
    return module.run_command(["nft"] + args, data=data, check_rc=False, binary_data=True)


def live_table(module):
    """routeplane's table as nft -j lists it, or None when the host has none."""
    rc, out, err = nft(module, ["-j", "list", "table"] + TABLE.split())
    if rc != 0:
        if "No such file or directory" in err or "does not exist" in err:
            return None
        module.fail_json(msg="nft list table %s failed: %s" % (TABLE, err.strip()), rc=rc)
    return json.loads(out)


def normalized(listing):
    """The listing without what changes by itself: handles, counters' figures, nft's metainfo."""

    def strip(value):
        if isinstance(value, dict):
            out = {}
            for key, inner in value.items():
                if key == "handle":
                    continue
                if key == "counter" and isinstance(inner, dict):
                    out[key] = {}
                    continue
                out[key] = strip(inner)
            return out
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    items = [i for i in listing.get("nftables", []) if "metainfo" not in i]
    return strip(items)


def digest(value):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def state_path(fence):
    # Beside the fence: per host name and network namespace, in /run like the table itself (a
    # reboot loses both).
    return fence_base((fence or {}).get("name", "host")) + ".firewall.json"


def read_state(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_state(path, state):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def check_scope(module, text):
    # Templates come from files, but a group's own template could still name another table:
    # this module only ever defines routeplane's.
    for line in text.splitlines():
        m = TOP_LEVEL_TABLE.match(line)
        if m and "%s %s" % (m.group(1), m.group(2)) != TABLE:
            module.fail_json(msg="routeplane_firewall: the table text defines %s %s; only %s "
                             "may be defined" % (m.group(1), m.group(2), TABLE))
    if not any(TOP_LEVEL_TABLE.match(line) for line in text.splitlines()):
        module.fail_json(msg="routeplane_firewall: the table text does not define %s" % TABLE)


def rule_of_error(text, err):
    """The id of the rule on the line nft's error names, and nft's message."""
    lines = text.splitlines()
    for line in err.splitlines():
        m = ERROR_LINE.search(line)
        if not m:
            continue
        number = int(m.group(1)) - PREAMBLE.count("\n")
        rule = None
        if 1 <= number <= len(lines):
            found = RULE_COMMENT.search(lines[number - 1])
            rule = found.group(1) if found else None
        return rule, m.group(2).strip()
    return None, err.strip()


def apply(module, text):
    fd, path = tempfile.mkstemp(prefix="routeplane-nft-", suffix=".nft")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(PREAMBLE + text + ("" if text.endswith("\n") else "\n"))
        return nft(module, ["-f", path])
    finally:
        os.unlink(path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            table=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            fence=dict(type="dict"),
        ),
        required_if=[("state", "present", ["table"])],
        supports_check_mode=True,
    )
    fence = module.params["fence"]
    take_fence(module, fence)
    path = state_path(fence)
    before = live_table(module)

    if module.params["state"] == "absent":
        if before is None:
            module.exit_json(changed=False, present=False)
        if not module.check_mode:
            rc, _out, err = nft(module, ["delete", "table"] + TABLE.split())
            if rc != 0:
                module.fail_json(msg="nft delete table %s failed: %s" % (TABLE, err.strip()))
            try:
                os.unlink(path)
            except OSError:
                pass
        module.exit_json(changed=True, present=False)

    text = module.params["table"]
    check_scope(module, text)
    recorded = read_state(path)
    live_hash = None if before is None else digest(normalized(before))
    wanted = digest(text)
    if before is not None and recorded.get("desired") == wanted and recorded.get("live") == live_hash:
        module.exit_json(changed=False, present=True, hash=live_hash)
    # A hand edit inside the table shows as a live hash other than the one recorded.
    drifted = before is not None and recorded.get("desired") == wanted
    if module.check_mode:
        rc, _out, err = nft(module, ["-c", "-f", "-"], data=PREAMBLE + text)
        if rc != 0:
            rule, msg = rule_of_error(text, err)
            module.fail_json(msg="nft refused the table: %s" % msg, rule=rule, nft_error=err.strip())
        module.exit_json(changed=True, present=True, drifted=drifted)
    rc, _out, err = apply(module, text)
    if rc != 0:
        rule, msg = rule_of_error(text, err)
        module.fail_json(msg="nft refused the table: %s" % msg, rule=rule, nft_error=err.strip())
    after = live_table(module)
    after_hash = digest(normalized(after or {}))
    write_state(path, {"desired": wanted, "live": after_hash})
    module.exit_json(changed=True, present=True, hash=after_hash, previous_hash=live_hash,
                     drifted=drifted)


if __name__ == "__main__":
    main()
