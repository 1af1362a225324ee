# routeplane: health-check candidate gateways from one checking point, and print the results.
#
# routeplane sends this file over the host's watch connection (one ssh session, or a local
# python for the controller's own checks) as the first stdin line, base64, and runs it with a
# constant bootstrap; it also runs as a plain file (tests). Standard library only, Python 3.
#
# Protocol, one JSON object a line:
#   out  {"type":"hello","pid":..,"python":"3.x","icmp4":"raw"|"dgram"|null,"icmp6":..,
#         "icmp4_error":null|"why","icmp6_error":..}
#   in   {"checks":[{"id":"c1","type":"icmp","target":"198.51.100.3","interval":2,"timeout":1},
#                   {"id":"c2","type":"tcp","target":"198.51.100.4","port":22,...}]}
#        Each line replaces the whole set: a check whose id and parameters are unchanged keeps
#        its schedule (and its probe in flight), a new or changed one runs at once, a removed one
#        stops (its probe in flight is dropped, never reported).
#   out  {"type":"checks","count":N}  the set was accepted
#   out  {"type":"error","error":".."}  the line was refused; the previous set stays
#   out  {"type":"result","id":"c1","ok":true,"rtt_ms":0.42}
#        {"type":"result","id":"c1","ok":false,"error":"timeout after 1.0 s"}
#        {"type":"result","id":"c1","unavailable":"no ICMP socket: ..."}
# End of stdin (routeplane stopped, or the session died) ends this process.
#
# Everything runs in one thread and one poll loop over a heap of due times: a fleet's worth of
# checks costs one process and one ICMP socket per address family, never a process per probe
# (and no `ping` binary, which hosts do not all have or let a non-root user run).
import errno
import heapq
import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time

MIN_INTERVAL_S = 0.2
MAX_CHECKS = 10000
MAX_ID_LEN = 200
MAX_LINE_BYTES = 4 * 1024 * 1024
FIELDS = {"id", "type", "target", "port", "interval", "timeout"}
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
# Linux socket options the socket module does not name: they keep unrelated ICMP (neighbour
# discovery, router advertisements, other hosts' pings) from waking the loop at all.
SOL_RAW, ICMP_FILTER = 255, 1
ICMP6_FILTER = 1
# An echo reply carries this back, so a reply to another program's ping with the same id and
# sequence is never taken for ours.
TOKEN = os.urandom(8)
PAYLOAD = TOKEN + b"routeplane"
IDENT = os.getpid() & 0xFFFF

UNREACH4 = {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable",
            3: "port unreachable", 9: "network administratively prohibited",
            10: "host administratively prohibited", 13: "administratively prohibited"}
UNREACH6 = {0: "no route to destination", 1: "administratively prohibited",
            3: "address unreachable", 4: "port unreachable", 5: "source address failed policy",
            6: "reject route to destination"}
ERRNO_TEXT = {errno.ECONNREFUSED: "connection refused", errno.ENETUNREACH: "network unreachable",
              errno.EHOSTUNREACH: "host unreachable", errno.ECONNRESET: "connection reset",
              errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
              errno.EADDRNOTAVAIL: "address not available"}


class Gone(Exception):
    """stdout is closed: routeplane is not reading any more."""


def emit(obj):
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")
    view = memoryview(data)
    try:
        while view:
            n = os.write(1, view)
            view = view[n:]
    except OSError as e:
        if e.errno == errno.EPIPE:
            raise Gone()
        raise


# The checking host's own shortage (descriptors, buffers, memory), not the gateway's failure.
LOCAL_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


def reason(err):
    code = getattr(err, "errno", None)
    if code in ERRNO_TEXT:
        return ERRNO_TEXT[code]
    if code is not None:
        return os.strerror(code).lower()
    return str(err) or type(err).__name__


def strerror(err):
    return os.strerror(err.errno) if err.errno else str(err)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def split_target(target):
    """(address, scope or None); a scope only on IPv6 link-local (fe80::1%eth0)."""
    addr, _, scope = target.partition("%")
    ip = ipaddress.ip_address(addr)
    if scope:
        if ip.version != 6 or not ip.is_link_local:
            raise ValueError("only an IPv6 link-local address takes a %scope")
        if not scope.replace("-", "").replace("_", "").replace(".", "").isalnum() \
                or len(scope) > 15:
            raise ValueError("bad scope %r" % scope)
    return str(ip), scope or None


def sockaddr(family, target, port):
    addr, scope = split_target(target)
    if family == socket.AF_INET:
        return (addr, port)
    index = 0
    if scope:
        index = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    return (addr, port, 0, index)


def plain(addr):
    """A reply's source as the key it is matched on: canonical text, no scope."""
    try:
        return str(ipaddress.ip_address(addr.partition("%")[0]))
    except ValueError:
        return addr


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v \
        and v not in (float("inf"), float("-inf"))


class BadChecks(ValueError):
    pass


def parse_checks(line):
    try:
        msg = json.loads(line)
    except ValueError as e:
        raise BadChecks("not JSON: %s" % e)
    if not isinstance(msg, dict) or set(msg) != {"checks"}:
        raise BadChecks('expected an object with "checks" only')
    items = msg["checks"]
    if not isinstance(items, list):
        raise BadChecks("checks is not a list")
    if len(items) > MAX_CHECKS:
        raise BadChecks("more than %d checks" % MAX_CHECKS)
    checks = {}
    for i, c in enumerate(items):
        where = "checks[%d]" % i
        if not isinstance(c, dict):
            raise BadChecks("%s is not an object" % where)
        unknown = sorted(set(c) - FIELDS)
        if unknown:
            raise BadChecks("%s: unknown field %s" % (where, unknown[0]))
        cid = c.get("id")
        if not isinstance(cid, str) or not cid or len(cid) > MAX_ID_LEN:
            raise BadChecks("%s: id must be a string of 1 to %d characters" % (where, MAX_ID_LEN))
        where = "check %s" % json.dumps(cid)
        if cid in checks:
            raise BadChecks("%s: duplicate id" % where)
        kind = c.get("type")
        if kind not in ("icmp", "tcp"):
            raise BadChecks("%s: type must be icmp or tcp" % where)
        target = c.get("target")
        if not isinstance(target, str):
            raise BadChecks("%s: target must be an IP address" % where)
        try:
            split_target(target)
        except ValueError as e:
            raise BadChecks("%s: target %s is not an IP address: %s"
                            % (where, json.dumps(target), e))
        port = c.get("port")
        if kind == "tcp":
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise BadChecks("%s: port must be an integer 1..65535" % where)
        elif port is not None:
            raise BadChecks("%s: an icmp check has no port" % where)
        interval, timeout = c.get("interval"), c.get("timeout")
        if not is_number(interval) or interval < MIN_INTERVAL_S:
            raise BadChecks("%s: interval must be a number >= %s" % (where, MIN_INTERVAL_S))
        if not is_number(timeout) or not 0 < timeout <= interval:
            raise BadChecks("%s: timeout must be a number > 0 and <= interval" % where)
        checks[cid] = Check(cid, kind, target, port, float(interval), float(timeout))
    return checks


class Check(object):
    def __init__(self, cid, kind, target, port, interval, timeout):
        self.id, self.kind, self.target, self.port = cid, kind, target, port
        self.interval, self.timeout = interval, timeout
        self.family = socket.AF_INET6 if ":" in target else socket.AF_INET
        self.addr = plain(target)  # what a reply's source is compared with
        self.live = True
        self.due = None
        self.probe = None

    def params(self):
        return (self.kind, self.target, self.port, self.interval, self.timeout)


class Probe(object):
    """One probe in flight: at most one per check."""

    def __init__(self, check, started, due):
        self.check = check
        self.started = started
        # Never past the next round (a loop running late must not make it skip one): a timeout
        # equal to the interval is allowed.
        self.deadline = min(started + check.timeout, due + check.interval)
        self.done = False
        self.sock = None  # tcp
        self.key = None  # icmp: (family, sequence)


class IcmpSocket(object):
    """One ICMP socket of a family, shared by every check of that family."""

    def __init__(self, family):
        self.family = family
        self.v6 = family == socket.AF_INET6
        self.sock, self.kind, self.error = None, None, None
        self.seq = 0
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        try:
            self.sock = socket.socket(family, socket.SOCK_RAW, proto)
            self.kind = "raw"
        except OSError as raw_err:
            try:
                self.sock = socket.socket(family, socket.SOCK_DGRAM, proto)
                self.kind = "dgram"
            except OSError as dgram_err:
                self.error = ("no ICMP socket: raw needs root or CAP_NET_RAW (%s), datagram needs "
                              "a group in net.ipv4.ping_group_range (%s)"
                              % (strerror(raw_err), strerror(dgram_err)))
                return
        self.sock.setblocking(False)
        if self.kind == "raw":
            self._filter()

    def _filter(self):
        try:
            if self.v6:
                # A set bit blocks the type: all but echo reply, unreachable, time exceeded.
                words = [0xFFFFFFFF] * 8
                for t in (ICMP6_ECHO_REPLY, 1, 3):
                    words[t >> 5] &= ~(1 << (t & 31)) & 0xFFFFFFFF
                self.sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER,
                                     struct.pack("=8I", *words))
            else:
                allowed = (1 << ICMP_ECHO_REPLY) | (1 << 3) | (1 << 11)
                self.sock.setsockopt(SOL_RAW, ICMP_FILTER,
                                     struct.pack("=I", ~allowed & 0xFFFFFFFF))
        except OSError:
            pass  # only an optimisation: replies are matched one by one anyway

    def next_seq(self, outstanding):
        for _ in range(0x10000):
            self.seq = (self.seq + 1) & 0xFFFF
            if (self.family, self.seq) not in outstanding:
                return self.seq
        raise RuntimeError("every ICMP sequence number is in flight")

    def send(self, target, seq):
        kind = ICMP6_ECHO_REQUEST if self.v6 else ICMP_ECHO_REQUEST
        header = struct.pack("!BBHHH", kind, 0, 0, IDENT, seq)
        if not self.v6:
            # The kernel fills in ICMPv6's checksum (it covers a pseudo-header), not ICMPv4's.
            header = struct.pack("!BBHHH", kind, 0, checksum(header + PAYLOAD), IDENT, seq)
        self.sock.sendto(header + PAYLOAD, sockaddr(self.family, target, 0))

    def parse(self, data, source):
        """(sequence, target, None) for our echo reply, (sequence, target, why) for an ICMP error
        about one of our requests, else None."""
        raw = self.kind == "raw"
        if not self.v6 and raw:
            if len(data) < 20:
                return None
            data = data[(data[0] & 0x0F) * 4:]  # a raw IPv4 socket gets the IP header too
        if len(data) < 8:
            return None
        kind, code = data[0], data[1]
        ident, seq = struct.unpack("!HH", data[4:8])
        reply = ICMP6_ECHO_REPLY if self.v6 else ICMP_ECHO_REPLY
        if kind == reply:
            # A datagram socket's id is the kernel's: it only hands this socket its own replies.
            if (raw and ident != IDENT) or data[8:8 + len(TOKEN)] != TOKEN:
                return None
            return seq, plain(source), None
        if not raw:
            return None
        inner = data[8:]
        if self.v6:
            if kind not in (1, 3) or len(inner) < 48 or inner[6] != socket.IPPROTO_ICMPV6:
                return None
            dst = socket.inet_ntop(socket.AF_INET6, inner[24:40])
            echo = inner[40:48]
            why = "time exceeded" if kind == 3 else UNREACH6.get(code)
            request = ICMP6_ECHO_REQUEST
        else:
            if kind not in (3, 11) or len(inner) < 20 or inner[9] != socket.IPPROTO_ICMP:
                return None
            ihl = (inner[0] & 0x0F) * 4
            dst = socket.inet_ntoa(inner[16:20])
            echo = inner[ihl:ihl + 8]
            why = "time exceeded" if kind == 11 else UNREACH4.get(code)
            request = ICMP_ECHO_REQUEST
        why = why or "destination unreachable (code %d)" % code
        if len(echo) < 8 or echo[0] != request:
            return None
        e_ident, e_seq = struct.unpack("!HH", echo[4:8])
        if e_ident != IDENT:
            return None
        dst, src = plain(dst), plain(source)
        return e_seq, dst, why if src == dst else "%s (from %s)" % (why, src)


class Prober(object):
    def __init__(self):
        self.icmp = {socket.AF_INET: IcmpSocket(socket.AF_INET),
                     socket.AF_INET6: IcmpSocket(socket.AF_INET6)}
        self.checks = {}
        self.heap = []  # (time, order, kind, item): "due" a check, "deadline" a probe
        self.order = 0
        self.outstanding = {}  # (family, seq) -> icmp Probe
        self.connecting = {}  # fd -> tcp Probe
        self.icmp_fds = dict((i.sock.fileno(), i) for i in self.icmp.values() if i.sock is not None)
        # poll, not select: a large set of tcp checks may hold more than FD_SETSIZE sockets.
        self.poll = select.poll()

    def hello(self):
        v4, v6 = self.icmp[socket.AF_INET], self.icmp[socket.AF_INET6]
        emit({"type": "hello", "pid": os.getpid(), "python": sys.version.split()[0],
              "icmp4": v4.kind, "icmp6": v6.kind, "icmp4_error": v4.error,
              "icmp6_error": v6.error})

    def push(self, at, kind, item):
        self.order += 1
        heapq.heappush(self.heap, (at, self.order, kind, item))

    def replace(self, checks, now):
        for cid, old in list(self.checks.items()):
            new = checks.get(cid)
            if new is not None and new.params() == old.params():
                checks[cid] = old
                continue
            old.live = False
            if old.probe is not None:
                self.drop(old.probe)
        for c in checks.values():
            if c.due is None:
                c.due = now
                self.push(now, "due", c)
        self.checks = checks

    def drop(self, probe):
        """Ends a probe without a result: its check is gone or changed."""
        probe.done = True
        probe.check.probe = None
        if probe.sock is not None:
            if self.connecting.pop(probe.sock.fileno(), None) is not None:
                self.poll.unregister(probe.sock.fileno())
            probe.sock.close()
        if probe.key is not None:
            self.outstanding.pop(probe.key, None)

    def finish(self, probe, now, error=None, unavailable=None):
        self.drop(probe)
        result = {"type": "result", "id": probe.check.id}
        if unavailable is not None:
            result["unavailable"] = unavailable
        elif error is None:
            result["ok"] = True
            result["rtt_ms"] = round((now - probe.started) * 1000.0, 3)
        else:
            result["ok"] = False
            result["error"] = error
        emit(result)

    def start(self, check, now, due):
        probe = Probe(check, now, due)
        check.probe = probe
        try:
            if check.kind == "icmp":
                icmp = self.icmp[check.family]
                if icmp.sock is None:
                    # No socket is not the gateway's fault: never a failure.
                    return self.finish(probe, now, unavailable=icmp.error)
                seq = icmp.next_seq(self.outstanding)
                probe.key = (check.family, seq)
                self.outstanding[probe.key] = probe
                icmp.send(check.target, seq)
            else:
                probe.sock = socket.socket(check.family, socket.SOCK_STREAM)
                probe.sock.setblocking(False)
                # Closed with a reset: a check every few seconds leaves no TIME_WAIT behind.
                probe.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                err = probe.sock.connect_ex(sockaddr(check.family, check.target, check.port))
                if err == 0:
                    return self.finish(probe, time.monotonic())
                if err not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                    return self.finish(probe, now, error=reason(OSError(err, os.strerror(err))))
                self.connecting[probe.sock.fileno()] = probe
                self.poll.register(probe.sock.fileno(), select.POLLOUT)
        except Gone:
            raise
        except Exception as e:  # one check's trouble is never the loop's
            if not probe.done:
                if getattr(e, "errno", None) in LOCAL_ERRNOS:
                    # Out of descriptors or buffers here: says nothing of the gateway.
                    self.finish(probe, now, unavailable="cannot probe from here: " + reason(e))
                else:
                    self.finish(probe, now, error=reason(e))
            return
        self.push(probe.deadline, "deadline", probe)

    def run_due(self, now):
        while self.heap and self.heap[0][0] <= now:
            at, _, kind, item = heapq.heappop(self.heap)
            if kind == "deadline":
                if not item.done:
                    self.finish(item, now, error="timeout after %s s" % item.check.timeout)
                continue
            check = item
            if not check.live or check.due != at:
                continue
            # A probe still running skips this round: a check never overlaps itself.
            if check.probe is None:
                self.start(check, now, at)
            nxt = at + check.interval
            while nxt <= now:
                nxt += check.interval
            check.due = nxt
            self.push(nxt, "due", check)

    def read_icmp(self, icmp):
        while True:
            try:
                data, source = icmp.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # a queued error of a datagram socket: the probe times out instead
            now = time.monotonic()
            try:
                got = icmp.parse(data, source[0])
            except (ValueError, IndexError, struct.error, OSError):
                continue  # a malformed packet is not ours
            if got is None:
                continue
            seq, addr, why = got
            probe = self.outstanding.get((icmp.family, seq))
            if probe is None or probe.check.addr != addr:
                continue
            self.finish(probe, now, error=why)

    def tcp_ready(self, fd):
        probe = self.connecting.get(fd)
        if probe is None:
            return
        now = time.monotonic()
        try:
            err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as e:
            err = e.errno or errno.EIO
        if err == 0:
            self.finish(probe, now)
        else:
            self.finish(probe, now, error=reason(OSError(err, os.strerror(err))))

    def close(self):
        for check in self.checks.values():
            if check.probe is not None:
                self.drop(check.probe)
        for icmp in self.icmp.values():
            if icmp.sock is not None:
                icmp.sock.close()

    def loop(self):
        self.hello()
        pending = b""
        skipping = False  # inside a line over MAX_LINE_BYTES: dropped up to its newline
        for icmp in self.icmp.values():
            if icmp.sock is not None:
                self.poll.register(icmp.sock.fileno(), select.POLLIN)
        self.poll.register(0, select.POLLIN)
        while True:
            # Answers already waiting are read before any deadline is judged: a prober that
            # was not scheduled for a while must not call an answered probe a timeout.
            self.handle(self.poll.poll(0))
            self.run_due(time.monotonic())
            timeout = None
            if self.heap:
                timeout = max(0, int((self.heap[0][0] - time.monotonic()) * 1000) + 1)
            try:
                events = self.poll.poll(timeout)
            except InterruptedError:
                continue
            if not self.handle(events):
                continue
            data = os.read(0, 65536)
            if not data:
                return  # end of stdin: routeplane is gone
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if skipping:
                    skipping = False
                else:
                    self.command(line)
            if len(pending) > MAX_LINE_BYTES:
                pending = b""
                if not skipping:
                    skipping = True
                    emit({"type": "error", "error": "line longer than %d bytes" % MAX_LINE_BYTES})

    def handle(self, events):
        """Reads the ICMP sockets and TCP connects that are ready; True when stdin is."""
        stdin = False
        for fd, _ in events:
            if fd == 0:
                stdin = True
            elif fd in self.icmp_fds:
                self.read_icmp(self.icmp_fds[fd])
            else:
                self.tcp_ready(fd)
        return stdin

    def command(self, line):
        if not line.strip():
            return
        try:
            checks = parse_checks(line.decode("utf-8"))
        except (BadChecks, UnicodeDecodeError) as e:
            emit({"type": "error", "error": str(e)})
            return
        self.replace(checks, time.monotonic())
        emit({"type": "checks", "count": len(checks)})


def main():
    prober = Prober()
    try:
        prober.loop()
    except Gone:
        pass
    finally:
        prober.close()


try:
    main()
except KeyboardInterrupt:
    pass
os._exit(0)
