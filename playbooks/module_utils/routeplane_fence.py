# -*- coding: utf-8 -*-
# routeplane: the host-side fence every apply module takes before it changes anything.
#
# The controller's host lock (a Postgres advisory lock) can be lost while a run is already
# changing a host, and a change sent to a host cannot be recalled. So the module itself takes an
# exclusive flock on a file named for the host, and compares the run's lock epoch with the one
# stored there: an older run than the last one to hold the fence is refused. Two runs are then
# never on one host at once, and a stale run never undoes a newer one.
from __future__ import annotations

import atexit
import fcntl
import os
import re
import time

WAIT_S = 120.0
LOG_MAX_BYTES = 65536


def _netns_id():
    # What the fence protects is the kernel's tables, which belong to a network namespace:
    # namespaces that share /run (the lab's hosts, containers) must not share a fence.
    try:
        return str(os.stat("/proc/self/ns/net").st_ino)
    except OSError:
        return "0"


def fence_base(name):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))[:100]
    directory = "/run/lock" if os.path.isdir("/run/lock") else "/tmp"
    return os.path.join(directory, "routeplane-%s-%s" % (safe, _netns_id()))


def _log(base, what, epoch):
    path = base + ".log"
    try:
        if os.path.exists(path) and os.path.getsize(path) > LOG_MAX_BYTES:
            os.replace(path, path + ".1")
        with open(path, "a") as f:
            f.write("%.6f %s %d %d\n" % (time.time(), what, epoch, os.getpid()))
    except OSError:
        pass


def take_fence(module, fence):
    """Holds the host's fence until the module process exits; fails the task if a newer run
    has held it. `fence` is {"name": inventory_hostname, "epoch": int} or None (no fence)."""
    if not fence:
        return None
    epoch = int(fence["epoch"])
    base = fence_base(fence["name"])
    fd = os.open(base + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                module.fail_json(msg="routeplane fence: another run held %s.lock for %ds" % (base, WAIT_S))
            time.sleep(0.05)
    raw = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    stored = int(raw) if raw.isdigit() else 0
    if stored > epoch:
        module.fail_json(
            msg="routeplane fence: superseded; a newer run (lock epoch %d) has held this host, "
            "this run's epoch is %d" % (stored, epoch),
            superseded=True,
        )
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(epoch).encode("ascii"), 0)
    os.fsync(fd)
    _log(base, "start", epoch)
    # The flock goes with the process; the log says when this run let go.
    atexit.register(_log, base, "end", epoch)
    return fd
