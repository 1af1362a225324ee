#!/usr/bin/python
# -*- coding: utf-8 -*-
# routeplane: replaces routeplane's nftables table (inet routeplane) on a host, atomically, and
# (like a router's "commit confirmed") reverts it unless the controller confirms over a new SSH
# connection in time.
from __future__ import annotations

import fcntl
import glob
import hashlib
import ipaddress
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.routeplane_fence import fence_base, take_fence

DOCUMENTATION = r"""
module: routeplane_firewall
short_description: Replace routeplane's nftables table in one transaction, commit-confirmed
description:
  - Replaces the table C(inet routeplane) with the given text in one C(nft -f) transaction
    (the table is created empty, deleted and defined again in the same file), so on any error
    nothing on the host changes. Nothing outside that table is touched.
  - An apply is a no-op when the desired text is the one last applied and the live table,
    without handles and counters, is the one recorded after that apply; a hand edit inside the
    table is therefore reverted by the next apply.
  - Commit confirmed, with I(confirm_s) > 0 and a table that changes: before applying, the
    previous table (or the fact there was none) is saved beside the state file and a revert is
    armed, a detached C(setsid) Python sleeper with no inherited file descriptors (so it never
    holds the SSH session open). Unless I(state=confirm) with the returned token removes the
    pending token within I(confirm_s) seconds, the sleeper restores the previous table in one
    C(nft -f) transaction and forgets the recorded state, so the next apply applies again.
    Applies while a revert is pending keep the saved table: a chain of unconfirmed applies
    reverts to the last confirmed one. Releasing (I(state=absent)) cancels a pending revert.
options:
  table:
    description: The whole definition of C(table inet routeplane { ... }), rendered on the
      controller from a template. Required with I(state=present).
    type: str
  state:
    description: C(present) keeps the table as given; C(absent) deletes routeplane's table
      (releasing the host) and nothing else; C(confirm) confirms the apply that returned
      I(token) (a failed confirm is reported by routeplane, which knows the host reverts).
    type: str
    choices: [present, absent, confirm]
    default: present
  confirm_s:
    description: With I(state=present), seconds the applied table has to be confirmed before
      the host reverts to the previous one; 0 applies without a revert (a local connection has
      nothing to cut).
    type: int
    default: 0
  token:
    description: With I(state=confirm), the token the apply returned.
    type: str
  zones:
    description: Zone name to interface names (the inventory's C(routeplane_zones)). Each zone
      set the table declares (C(z_<zone>_4), C(z_<zone>_6)) is filled with the networks of the
      host's own addresses on those interfaces, read at each apply. In check mode (preview)
      the module returns the final text, nft -c's verdict and the other tables' base chains
      on the same hooks (C(other_hooks)), changing nothing.
    type: dict
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


ZONE_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")


def zone_elements(module, text, zones):
    """`add element` lines filling each zone set the text declares (z_<zone>_4 and _6) with
    the networks of the host's own addresses on the zone's interfaces, read now: a rule on a
    zone follows the host's addresses at each apply. Link-local addresses are left out."""
    wanted = {}
    for zone, ifaces in sorted((zones or {}).items()):
        if not ZONE_NAME.match(str(zone)) or ("set z_%s_4 {" % zone) not in text:
            continue
        wanted[zone] = set(str(i) for i in (ifaces if isinstance(ifaces, list) else [ifaces]))
    if not wanted:
        return ""
    rc, out, err = module.run_command(["ip", "-j", "addr", "show"], check_rc=False)
    if rc != 0:
        module.fail_json(msg="routeplane_firewall: ip -j addr show failed: %s" % err.strip())
    links = json.loads(out or "[]")
    lines = []
    for zone, ifaces in wanted.items():
        nets = {"4": set(), "6": set()}
        for link in links:
            if link.get("ifname") not in ifaces:
                continue
            for a in link.get("addr_info", []):
                if a.get("scope") == "link" or "local" not in a:
                    continue
                net = ipaddress.ip_interface("%s/%s" % (a["local"], a.get("prefixlen", 128))).network
                nets["4" if net.version == 4 else "6"].add(net)
        for fam in ("4", "6"):
            if nets[fam]:
                elements = ", ".join(str(n) for n in sorted(nets[fam]))
                lines.append("add element %s z_%s_%s { %s }\n" % (TABLE, zone, fam, elements))
    return "".join(lines)


def other_hooks(module):
    """Base chains of other tables on the hooks routeplane's table uses: nftables evaluates
    every table on a hook, so their verdicts stand beside routeplane's."""
    rc, out, _err = nft(module, ["-j", "list", "ruleset"])
    if rc != 0:
        return []
    hooks = []
    for item in json.loads(out or "{}").get("nftables", []):
        chain = item.get("chain")
        if not chain or "hook" not in chain:
            continue
        if "%s %s" % (chain.get("family"), chain.get("table")) == TABLE:
            continue
        hooks.append({k: chain[k] for k in ("family", "table", "name", "hook", "type", "policy", "prio")
                      if k in chain})
    for h in hooks:
        h["chain"] = h.pop("name", "")
    return hooks


def apply(module, text):
    fd, path = tempfile.mkstemp(prefix="routeplane-nft-", suffix=".nft")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(PREAMBLE + text + ("" if text.endswith("\n") else "\n"))
        return nft(module, ["-f", path])
    finally:
        os.unlink(path)


# Commit confirmed. Beside the state file (same base: per host name and network namespace):
#   <base>.firewall.previous.nft        what a revert loads: PREAMBLE and the last confirmed
#                                       table's listing (PREAMBLE alone: there was none)
#   <base>.firewall.pending-<token>     an armed revert not yet confirmed: {"pid": sleeper}
#   <base>.firewall.pending-<token>.reverting   the same, claimed by its sleeper
#   <base>.firewall.reverted            the last revert that fired, reported by the next apply
# A token file is claimed once, atomically: the confirm unlinks it, the sleeper renames it, and
# a later apply (holding the fence) unlinks it; whoever fails to claim it does nothing. Every
# module run and every sleeper about to revert holds the fence's flock, so outside of it at
# most one token is pending.
REVERT_TAG = "routeplane-firewall-revert"
TOKEN = re.compile(r"^[0-9a-f]{32}$")
# How long an expired sleeper waits for a module run holding the fence before reverting anyway.
REVERT_LOCK_WAIT_S = 120
# The sleeper: python3 -c SLEEPER <tag> <base> <token> <confirm_s> <nft>. It runs in its own
# session with /dev/null for stdin, stdout and stderr and no other inherited descriptor, so the
# SSH session that started it ends when the module does.
SLEEPER = r"""
import fcntl, json, os, subprocess, sys, time
tag, base, token, delay, nft = sys.argv[1:6]
time.sleep(float(delay))
lock = os.open(base + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
deadline = time.monotonic() + %d
while True:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
pending = base + ".firewall.pending-" + token
claimed = pending + ".reverting"
try:
    os.rename(pending, claimed)
except OSError:
    sys.exit(0)
# Forget the recorded state first: whatever happens next, the next apply applies again.
try:
    os.unlink(base + ".firewall.json")
except OSError:
    pass
script = base + ".firewall.previous.nft"
run = subprocess.run([nft, "-f", script], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
report = {"at": time.time(), "token": token, "rc": run.returncode,
          "error": run.stderr.decode("utf-8", "replace").strip()[-2000:], "fallback": False}
if run.returncode != 0:
    # The saved table did not load back: drop routeplane's table, leaving the host's own rules.
    drop = subprocess.run([nft, "-f", "-"],
                          input=b"table inet routeplane\ndelete table inet routeplane\n",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report["fallback"] = True
    report["fallback_rc"] = drop.returncode
with open(base + ".firewall.reverted.tmp", "w") as f:
    json.dump(report, f)
os.replace(base + ".firewall.reverted.tmp", base + ".firewall.reverted")
for path in (claimed, script):
    try:
        os.unlink(path)
    except OSError:
        pass
""" % REVERT_LOCK_WAIT_S


def base_of(path):
    return path[: -len(".firewall.json")]


def pending_path(base, token):
    return "%s.firewall.pending-%s" % (base, token)


def previous_path(base):
    return base + ".firewall.previous.nft"


def pending_tokens(base):
    """Tokens of armed reverts not yet confirmed (not those a sleeper has claimed)."""
    prefix = base + ".firewall.pending-"
    return sorted(p[len(prefix):] for p in glob.glob(glob.escape(prefix) + "*")
                  if TOKEN.match(p[len(prefix):]))


def live_pending(base, tidy):
    """Pending tokens whose sleeper is alive. A token whose sleeper is gone (killed, or left by
    an earlier namespace with the same inode) can never revert anything: it and the table saved
    for it are dropped, so they never stand for the last confirmed table."""
    alive = []
    for token in pending_tokens(base):
        if is_sleeper(sleeper_pid(base, token), token):
            alive.append(token)
        elif tidy:
            remove(pending_path(base, token))
    if not alive and tidy:
        remove(previous_path(base))
    return alive


def remove(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def write_file(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def hold_lock(base):
    """The fence's flock without its epoch, for a run with no fence: a sleeper never reverts
    while a module run holds it."""
    fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def sleeper_pid(base, token):
    try:
        with open(pending_path(base, token)) as f:
            return int(json.load(f).get("pid") or 0)
    except (OSError, ValueError, AttributeError):
        return 0


def is_sleeper(pid, token):
    """Whether `pid` is the sleeper of `token` (its command line says so; a zombie has none)."""
    if pid <= 0:
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    # python3 -c SLEEPER <tag> <base> <token> ...
    return len(argv) >= 6 and argv[3] == REVERT_TAG.encode() and argv[5] == token.encode()


def kill_sleeper(pid, token):
    """Ends the sleeper of `token`: only a process whose command line is that sleeper's."""
    if not is_sleeper(pid, token):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        return True
    except OSError:
        return False


def cancel(base, token):
    """Claims an armed revert so it never fires; True when this call claimed it."""
    pid = sleeper_pid(base, token)
    if not remove(pending_path(base, token)):
        return False
    kill_sleeper(pid, token)
    return True


def listing(module):
    rc, out, err = nft(module, ["list", "table"] + TABLE.split())
    if rc != 0:
        module.fail_json(msg="nft list table %s failed: %s" % (TABLE, err.strip()), rc=rc)
    return out if isinstance(out, str) else out.decode("utf-8")


def save_previous(module, base, present):
    """Saves what a revert loads: the live table, or (none) only the preamble. A listing nft
    cannot load back (checked now) is saved as the preamble alone, so a revert at least removes
    the new table; the result says so."""
    text = PREAMBLE + (listing(module) if present else "")
    if present:
        rc, _out, err = nft(module, ["-c", "-f", "-"], data=text)
        if rc != 0:
            module.warn("routeplane_firewall: the live table would not load back (%s); a "
                        "revert removes routeplane's table instead" % err.strip())
            write_file(previous_path(base), PREAMBLE)
            return "remove"
    write_file(previous_path(base), text)
    return "restore" if present else "remove"


def arm(module, base, confirm_s):
    token = secrets.token_hex(16)
    path = pending_path(base, token)
    write_file(path, json.dumps({"pid": 0}))
    nft_bin = module.get_bin_path("nft", required=True)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", SLEEPER, REVERT_TAG, base, token, str(confirm_s), nft_bin],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=True, start_new_session=True, cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"},
        )
    except OSError as e:
        remove(path)
        module.fail_json(msg="routeplane_firewall: could not arm the revert: %s" % e)
    # The sleeper only reads the token file after confirm_s (>= 1 s): the pid is there by then.
    write_file(path, json.dumps({"pid": proc.pid, "armed_at": time.time(), "confirm_s": confirm_s}))
    return token, proc.pid


def last_revert(base):
    """The revert that fired since the last apply, if any (reported once)."""
    path = base + ".firewall.reverted"
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return None
    remove(path)
    return report


def confirm(module, base, token):
    if not TOKEN.match(token or ""):
        module.fail_json(msg="routeplane_firewall: not a confirm token: %r" % token)
    pid = sleeper_pid(base, token)
    if remove(pending_path(base, token)):
        killed = kill_sleeper(pid, token)
        remove(previous_path(base))
        module.exit_json(changed=False, confirmed=True, token=token, sleeper_ended=killed)
    if os.path.exists(pending_path(base, token) + ".reverting"):
        why = "its revert is restoring the previous table"
    elif (read_json(base + ".firewall.reverted") or {}).get("token") == token:
        why = "its revert had already restored the previous table"
    elif pending_tokens(base):
        why = "a later apply replaced it; that apply's confirm is pending"
    else:
        why = "no revert is pending for it"
    module.fail_json(msg="routeplane_firewall: confirmed too late: %s" % why, confirmed=False,
                     token=token)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            table=dict(type="str"),
            state=dict(type="str", choices=["present", "absent", "confirm"],
                       default="present"),
            confirm_s=dict(type="int", default=0),
            token=dict(type="str", no_log=False),
            fence=dict(type="dict"),
            zones=dict(type="dict", default={}),
        ),
        required_if=[("state", "present", ["table"]), ("state", "confirm", ["token"])],
        supports_check_mode=True,
    )
    state = module.params["state"]
    fence = module.params["fence"]
    path = state_path(fence)
    base = base_of(path)
    if take_fence(module, fence) is None and not module.check_mode:
        hold_lock(base)
    if state == "confirm":
        if module.check_mode:
            module.exit_json(changed=False, confirmed=False)
        confirm(module, base, module.params["token"])
    before = live_table(module)
    pending = live_pending(base, tidy=not module.check_mode)

    if state == "absent":
        if before is None and not pending:
            module.exit_json(changed=False, present=False)
        if not module.check_mode:
            if before is not None:
                rc, _out, err = nft(module, ["delete", "table"] + TABLE.split())
                if rc != 0:
                    module.fail_json(msg="nft delete table %s failed: %s" % (TABLE, err.strip()))
            # Released: a pending revert must not bring routeplane's table back.
            for token in pending:
                cancel(base, token)
            for leftover in (path, previous_path(base), base + ".firewall.reverted"):
                remove(leftover)
        module.exit_json(changed=True, present=False)

    text = module.params["table"]
    confirm_s = max(0, module.params["confirm_s"] or 0)
    check_scope(module, text)
    text = text + ("" if text.endswith("\n") else "\n") + zone_elements(module, text, module.params["zones"])
    if module.check_mode:
        # Preview: the text as it would be loaded, nft's verdict, and the other tables on
        # routeplane's hooks; nothing on the host changes.
        hooks = other_hooks(module)
        rc, _out, err = nft(module, ["-c", "-f", "-"], data=PREAMBLE + text)
        if rc != 0:
            rule, msg = rule_of_error(text, err)
            module.fail_json(msg="nft refused the table: %s" % msg, rule=rule, nft_error=err.strip(),
                             table=text, other_hooks=hooks)
        module.exit_json(changed=before is None, present=True, table=text, other_hooks=hooks)
    recorded = read_state(path)
    live_hash = None if before is None else digest(normalized(before))
    wanted = digest(text)
    # A table still waiting for its confirm is not settled, even when it is the one wanted.
    if (before is not None and not pending and recorded.get("desired") == wanted
            and recorded.get("live") == live_hash):
        module.exit_json(changed=False, present=True, hash=live_hash)
    # A hand edit inside the table shows as a live hash other than the one recorded.
    drifted = before is not None and recorded.get("desired") == wanted
    reverted = last_revert(base)
    armed = None
    revert = None
    if confirm_s > 0:
        # While a revert is pending, the saved table is the last confirmed one: keep it.
        if pending and os.path.exists(previous_path(base)):
            revert = "kept"
        else:
            revert = save_previous(module, base, before is not None)
        armed = arm(module, base, confirm_s)
    rc, _out, err = apply(module, text)
    if rc != 0:
        # Nothing changed: the new revert goes, an older one stays armed for the live table.
        if armed:
            cancel(base, armed[0])
            if not pending:
                remove(previous_path(base))
        rule, msg = rule_of_error(text, err)
        module.fail_json(msg="nft refused the table: %s" % msg, rule=rule, nft_error=err.strip(),
                         reverted=reverted)
    # Older reverts are replaced by this one, or (no confirm) by this table as it is.
    for token in pending:
        cancel(base, token)
    if not armed:
        remove(previous_path(base))
    after = live_table(module)
    after_hash = digest(normalized(after or {}))
    write_state(path, {"desired": wanted, "live": after_hash})
    result = dict(changed=True, present=True, hash=after_hash, previous_hash=live_hash,
                  drifted=drifted, reverted=reverted, armed=armed is not None)
    if armed:
        result.update(token=armed[0], pid=armed[1], confirm_s=confirm_s, revert=revert)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
