# routeplane: watch one host's links, addresses, routes and firewall, and print its state.
#
# routeplane sends this file over one ssh session (or runs it locally) with the source of
# playbooks/module_utils/routeplane_kernel.py in front of it, so each route's destination and
# table leave here exactly as routeplane_state reports them. `ip monitor` and `nft monitor`
# are only triggers (their text is never parsed), one monitor per part of the state (links and
# addresses, IPv4 routes, IPv6 routes, nftables): a change, or a burst of them, is followed by
# one direct re-read of the parts whose monitor fired, and each re-read prints one JSON line
# with the module's result shape (the parts not re-read as they were last read).
#
# stdin, after the line that carried this script: "resync" forces a re-read; end of file
# (routeplane stopped, or the session died) ends the monitors and this process, so nothing is
# left on the host. Standard library only, Python 3.
import json
import os
import select
import signal
import subprocess
import sys
import time

try:
    canonical_prefix  # noqa: B018 - given by the routeplane_kernel source sent in front of this
except NameError:  # run as a file (tests): the module is on PYTHONPATH
    from routeplane_kernel import canonical_prefix, read_table_names, table_id

# A change is read once nothing has changed for DEBOUNCE_S, and at the latest MAX_DELAY_S after
# the first change of a burst (a host that never stops changing is still re-read).
DEBOUNCE_S = 0.08
MAX_DELAY_S = 1.0
READ_TIMEOUT_S = 30
MONITOR_RESTART_S = 5.0
MONITOR_RESTART_MAX_S = 300.0
# Ansible's get_bin_path looks in these too: a non-root login's PATH often lacks them.
SBIN = ("/sbin", "/usr/sbin", "/usr/local/sbin")


def find_bin(name):
    dirs = os.environ.get("PATH", "").split(os.pathsep) + list(SBIN)
    for d in dirs:
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def emit(obj):
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")
    view = memoryview(data)
    while view:
        n = os.write(1, view)
        view = view[n:]


def run(argv):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=READ_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return -1, "", "timed out after %d s" % READ_TIMEOUT_S
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class ReadError(Exception):
    pass


def ip_json(ip, args):
    rc, out, err = run([ip, "-j"] + args)
    if rc != 0:
        raise ReadError("ip %s failed: %s" % (" ".join(args), err.strip()))
    out = out.strip()
    try:
        return json.loads(out) if out else []
    except ValueError as e:
        raise ReadError("ip %s printed no JSON: %s" % (" ".join(args), e))


def firewall_state():
    # As routeplane_state: a host without nft is reported as such, never a failed read.
    nft = find_bin("nft")
    if not nft:
        return {"available": False, "table": None, "ruleset": None, "error": "nft is not installed"}
    rc, out, err = run([nft, "-j", "list", "table", "inet", "routeplane"])
    table = None
    if rc == 0 and out.strip():
        try:
            table = [i for i in json.loads(out).get("nftables", []) if "metainfo" not in i]
        except (ValueError, AttributeError):
            table = None
    rc, text, err = run([nft, "list", "ruleset"])
    return {
        "available": True,
        "table": table,
        "ruleset": text if rc == 0 else None,
        "error": None if rc == 0 else err.strip(),
    }


PARTS = ("links", "routes4", "routes6", "firewall")


def read_routes(ip, family):
    routes = ip_json(ip, ["-%d" % family, "route", "show", "table", "all"])
    names = read_table_names()
    for r in routes:
        r["family"] = "inet" if family == 4 else "inet6"
        try:
            r["dst"] = canonical_prefix(r["dst"], family)
        except (KeyError, ValueError):
            pass
        try:
            r["table"] = table_id(r.get("table"), names)
        except ValueError:
            pass
    return routes


def read_part(ip, part):
    if part == "links":
        return ip_json(ip, ["addr", "show"])
    if part == "routes4":
        return read_routes(ip, 4)
    if part == "routes6":
        return read_routes(ip, 6)
    return firewall_state()


def read_state(ip, known, parts):
    """Re-reads `parts` into `known` and returns the module's result: raw links, normalised
    routes, firewall. ReadError when ip fails (then `known` is left as it was)."""
    if not ip:
        raise ReadError("ip (iproute2) is not installed")
    fresh = dict((p, read_part(ip, p)) for p in PARTS if p in parts or p not in known)
    known.update(fresh)
    return {"links": known["links"], "routes": known["routes4"] + known["routes6"],
            "firewall": known["firewall"]}


def _die_with_parent():
    # A monitor outlives a killed watcher otherwise (it writes only when something changes).
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Monitor(object):
    """One long-lived `... monitor` process whose output only says "`parts` changed"."""

    def __init__(self, name, argv, parts):
        self.name = name
        self.argv = argv
        self.parts = parts
        self.proc = None
        self.started_at = 0.0
        self.retry_at = 0.0
        self.failures = 0
        # Whether a re-read is due once it is back: a monitor that ran a while missed changes.
        self.missed = False

    def start(self, now):
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
            self.started_at = now
        except OSError:
            self.proc = None
            self.ended(now, 0.0)

    def ended(self, now, ran_for):
        # One that keeps failing (nft monitor without CAP_NET_ADMIN) is retried ever more
        # rarely and costs no re-read; the periodic resync covers what it would have seen.
        if ran_for >= MONITOR_RESTART_S:
            self.failures = 0
            self.missed = True
        else:
            self.failures += 1
        self.retry_at = now + min(MONITOR_RESTART_MAX_S, MONITOR_RESTART_S * 2 ** self.failures)

    def fd(self):
        return self.proc.stdout.fileno() if self.proc else None

    def drain(self, now):
        """Reads what is pending; False when the monitor has ended (restarted later)."""
        try:
            data = os.read(self.fd(), 65536)
        except OSError:
            data = b""
        if data:
            return True
        self.stop()
        self.ended(now, now - self.started_at)
        return False

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        try:
            p.terminate()
        except OSError:
            pass
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()


def main():
    ip = find_bin("ip")
    monitors = []
    if ip:
        # A link or address going down takes routes with it, and IPv4 does not always say so.
        monitors.append(Monitor("ip monitor", [ip, "monitor", "link", "address"],
                                ("links", "routes4", "routes6")))
        monitors.append(Monitor("ip -4 monitor", [ip, "-4", "monitor", "route"], ("routes4",)))
        monitors.append(Monitor("ip -6 monitor", [ip, "-6", "monitor", "route"], ("routes6",)))
    nft = find_bin("nft")
    if nft:
        monitors.append(Monitor("nft monitor", [nft, "monitor"], ("firewall",)))

    def finish(*_):
        for m in monitors:
            m.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGHUP, finish)
    signal.signal(signal.SIGINT, finish)
    try:
        watch(ip, monitors)
    finally:
        for m in monitors:
            m.stop()


def watch(ip, monitors):
    now = time.monotonic()
    for m in monitors:
        m.start(now)
    emit({"type": "hello", "pid": os.getpid(), "python": sys.version.split()[0],
          "monitors": [m.name for m in monitors if m.proc]})

    seq = 0
    stdin_buf = b""
    known = {}
    dirty = set(PARTS)
    # A re-read is pending while first_change is set; the first one is due at once.
    first_change = now - MAX_DELAY_S
    last_change = now - DEBOUNCE_S
    while True:
        now = time.monotonic()
        timeout = None
        if first_change is not None:
            due = min(last_change + DEBOUNCE_S, first_change + MAX_DELAY_S)
            if now >= due:
                first_change = None
                seq += 1
                parts, dirty = dirty, set()
                try:
                    state = read_state(ip, known, parts)
                except ReadError as e:
                    dirty |= parts  # read again with the next change or resync
                    emit({"type": "error", "seq": seq, "error": str(e)})
                else:
                    state.update({"type": "state", "seq": seq})
                    emit(state)
                continue
            timeout = due - now
        for m in monitors:
            if m.proc is None and now >= m.retry_at:
                m.start(now)
                if m.proc is not None and m.missed:
                    m.missed = False
                    dirty.update(m.parts)
                    if first_change is None:
                        first_change = now
                    last_change = now
        restarts = [m.retry_at - now for m in monitors if m.proc is None]
        if restarts:
            wait = max(0.0, min(restarts))
            timeout = wait if timeout is None else min(timeout, wait)
        fds = [0] + [m.fd() for m in monitors if m.proc is not None]
        ready, _, _ = select.select(fds, [], [], timeout)
        now = time.monotonic()
        for m in monitors:
            if m.proc is not None and m.fd() in ready and m.drain(now):
                dirty.update(m.parts)
                if first_change is None:
                    first_change = now
                last_change = now
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                return  # end of stdin: routeplane is gone
            stdin_buf += data
            while b"\n" in stdin_buf:
                line, stdin_buf = stdin_buf.split(b"\n", 1)
                if line.strip() == b"resync":
                    # Read now, all of it: the safety net must not wait behind a burst.
                    dirty = set(PARTS)
                    first_change = now - MAX_DELAY_S
                    last_change = now - DEBOUNCE_S
            stdin_buf = stdin_buf[-4096:]


try:
    main()
except BrokenPipeError:  # routeplane went away mid-line; main() has stopped the monitors
    pass
os._exit(0)
