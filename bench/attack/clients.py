"""Client-side pieces shared by the attacks on stops, reloads, PROXY headers and message servers:
one exchange classified by how it ended, crowds of idle or trickling connections on one poll
thread, and a burst of connections that each make one exchange.

Everything is bounded in count and in time, and talks to the address it is given (loopback).
"""
import errno
import random
import select
import socket
import struct
import threading
import time

from harness import close_all, latency_summary, run_threads

# How an exchange can end, in the order the reports list them.
OUTCOMES = ("answered", "refused", "reset", "empty", "timeout", "wrong", "other")


def proxy_v1(client_port=40000):
    """A valid PROXY protocol v1 header from a made-up client (192.0.2.1, TEST-NET-1)."""
    return b"PROXY TCP4 192.0.2.1 127.0.0.1 %d 80\r\n" % client_port


def frame(payload):
    """A 4-byte big-endian length and the payload: echo_server's framed protocol."""
    return struct.pack(">I", len(payload)) + payload


def resp(*args):
    """A RESP command (resp_kv)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def classify_error(e):
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)):
        return "reset"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    return "other"


def exchange(addr, request, expected, timeout):
    """One request on a new connection: (outcome, seconds) with outcome one of OUTCOMES
    ("empty": the server closed without a byte of answer; "wrong": another or a partial answer)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
            s.sendall(request)
            got = b""
            while len(got) < len(expected):
                chunk = s.recv(len(expected) - len(got))
                if not chunk:
                    break
                got += chunk
    except OSError as e:
        return classify_error(e), time.monotonic() - t0
    if got == expected:
        return "answered", time.monotonic() - t0
    return ("empty" if not got else "wrong"), time.monotonic() - t0


def tally(outcomes):
    """{outcome: count} with every outcome of OUTCOMES present."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return counts


def spread_exchanges(addr, request, expected, count, start_in, gap, timeout, one_exchange=exchange):
    """`count` exchanges, the i-th started at start_in + i*gap s from now on its own thread (a
    stuck one does not delay the next): their (outcome, seconds) in order. `one_exchange` makes
    each (`exchange`'s arguments and result; a TLS one, say)."""
    results = [("other", None)] * count
    t0 = time.monotonic()

    def one(i):
        delay = t0 + start_in + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        results[i] = one_exchange(addr, request, expected, timeout)

    run_threads([lambda i=i: one(i) for i in range(count)], start_in + count * gap + timeout + 2)
    return results


def served_summary(results):
    """answered count, latency summary of the answered ones, tally of all."""
    ok = [t for o, t in results if o == "answered"]
    return len(ok), latency_summary(ok), tally(o for o, _ in results)


class Crowd:
    """`count` connections opened without waiting (non-blocking connects) on one poll thread and
    held for `duration` s. Each sends `script` `chunk` bytes (one by default) every `byte_gap` s
    from its connection on (nothing if `script` is empty); with `reconnect`, one the server
    closes is opened again (`reconnect_delay` s later, give or take half of it), so the pressure
    lasts. With `source`, the
    connections come from that loopback address (so the server's log tells them from other
    clients). Counts what the server did to them."""

    def __init__(self, addr, count, duration, script=b"", byte_gap=1.0, reconnect=False, chunk=1,
                 source=None, reconnect_delay=0.0):
        self.addr, self.count, self.duration = addr, count, duration
        self.script, self.byte_gap, self.reconnect = script, byte_gap, reconnect
        self.chunk, self.source, self.reconnect_delay = chunk, source, reconnect_delay
        self._rng = random.Random(7)
        self.opened = self.established = self.closed_by_server = self.connect_failed = 0
        self.bytes_sent = 0
        self.up = threading.Event()  # set once every first connect was attempted
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def join(self):
        self._thread.join(timeout=self.duration + 10)

    def _open(self, poller, conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if self.source:
            s.bind((self.source, 0))
        self.opened += 1
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            self.connect_failed += 1
            s.close()
            return
        conns[s.fileno()] = {"sock": s, "state": "connecting", "sent": 0, "next": 0.0}
        poller.register(s.fileno(), select.POLLOUT)

    def _drop(self, poller, conns, fd):
        poller.unregister(fd)
        conns.pop(fd)["sock"].close()

    def _run(self):
        poller = select.poll()
        conns = {}
        later = []  # when to open again the connections the server closed
        end = time.monotonic() + self.duration
        try:
            for _ in range(self.count):
                self._open(poller, conns)
            self.up.set()
            while (now := time.monotonic()) < end:
                reopen = 0
                for fd, ev in poller.poll(min(50, max(1, int((end - now) * 1000)))):
                    c = conns.get(fd)
                    if c is None:
                        continue
                    s = c["sock"]
                    if c["state"] == "connecting":
                        if ev & select.POLLERR or s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                            self.connect_failed += 1
                            self._drop(poller, conns, fd)
                            reopen += self.reconnect
                            continue
                        self.established += 1
                        c["state"] = "open"
                        c["next"] = time.monotonic()
                        poller.modify(fd, select.POLLIN)
                        continue
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        self.closed_by_server += 1
                        self._drop(poller, conns, fd)
                        reopen += self.reconnect
                if self.script:
                    now = time.monotonic()
                    for fd, c in list(conns.items()):
                        if c["state"] != "open" or c["next"] > now or c["sent"] >= len(self.script):
                            continue
                        try:
                            sent = c["sock"].send(self.script[c["sent"]:c["sent"] + self.chunk])
                            self.bytes_sent += sent
                            c["sent"] += sent
                            c["next"] = now + self.byte_gap
                        except BlockingIOError:
                            pass
                        except OSError:
                            self.closed_by_server += 1
                            self._drop(poller, conns, fd)
                            reopen += self.reconnect
                now = time.monotonic()
                # Spread over ±half the delay: connections the server closed together come back
                # as a steady stream, not as one burst a delay later.
                later += [now + self.reconnect_delay * (0.5 + self._rng.random())
                          for _ in range(reopen)]
                due = [t for t in later if t <= now]
                later = [t for t in later if t > now]
                for _ in due:
                    if now < end:
                        self._open(poller, conns)
        finally:
            self.up.set()
            close_all(c["sock"] for c in conns.values())


class Burst:
    """`count` clients that each connect (non-blocking, `pace` s apart), send `request`
    `send_delay` s after the connection is established and read until `expected` arrived, the
    server closed, or `timeout` s passed since its connect began; all on one poll thread.
    `on_first_answer()` runs (once, on that thread) when the first client got its answer;
    `fire_after` s after the first connect it runs anyway if none has. Outcomes as in OUTCOMES."""

    def __init__(self, addr, count, request, expected, timeout, pace, on_first_answer, fire_after=1.0,
                 send_delay=0.0):
        self.addr, self.count, self.request, self.expected = addr, count, request, expected
        self.timeout, self.pace, self.fire_after = timeout, pace, fire_after
        self.send_delay = send_delay
        self.on_first_answer = on_first_answer
        self.outcomes = []
        self.fired_at = None  # seconds from the first connect to on_first_answer()
        self.connects_before_fire = None

    def _fire(self, t0):
        if self.fired_at is None:
            self.fired_at = time.monotonic() - t0
            self.connects_before_fire = self._started
            self.on_first_answer()

    def run(self):
        poller = select.poll()
        conns = {}
        t0 = time.monotonic()
        self._started = 0
        deadline = t0 + self.count * self.pace + self.timeout + 2

        def finish(fd, outcome):
            self.outcomes.append(outcome)
            poller.unregister(fd)
            conns.pop(fd)["sock"].close()

        try:
            while (now := time.monotonic()) < deadline and (self._started < self.count or conns):
                while self._started < self.count and now >= t0 + self._started * self.pace:
                    self._started += 1
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    err = s.connect_ex(self.addr)
                    if err not in (0, errno.EINPROGRESS):
                        self.outcomes.append("refused" if err == errno.ECONNREFUSED else "other")
                        s.close()
                        continue
                    conns[s.fileno()] = {"sock": s, "state": "connecting", "got": b"", "t": now}
                    poller.register(s.fileno(), select.POLLOUT)
                if self.fired_at is None and now - t0 >= self.fire_after:
                    self._fire(t0)
                for fd, ev in poller.poll(1):
                    c = conns[fd]
                    s = c["sock"]
                    if c["state"] == "connecting":
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            finish(fd, "refused" if err == errno.ECONNREFUSED else
                                   "reset" if err == errno.ECONNRESET else "other")
                            continue
                        c["state"] = "connected"
                        c["send_at"] = time.monotonic() + self.send_delay
                        poller.modify(fd, select.POLLIN)
                    if c["state"] == "connected":
                        # Not sent yet: only a close or a reset can come in.
                        try:
                            if s.recv(1, socket.MSG_PEEK) == b"":
                                finish(fd, "empty")
                        except BlockingIOError:
                            pass
                        except OSError as e:
                            finish(fd, classify_error(e))
                        continue
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        finish(fd, classify_error(e))
                        continue
                    if not data:
                        finish(fd, "empty" if not c["got"] else "wrong")
                        continue
                    c["got"] += data
                    if len(c["got"]) >= len(self.expected):
                        finish(fd, "answered" if c["got"] == self.expected else "wrong")
                        self._fire(t0)
                now = time.monotonic()
                for fd in [fd for fd, c in conns.items() if c["state"] == "connected" and c["send_at"] <= now]:
                    try:
                        conns[fd]["sock"].send(self.request)  # a few bytes: fits the empty send buffer
                        conns[fd]["state"] = "reading"
                    except OSError as e:
                        finish(fd, classify_error(e))
                for fd in [fd for fd, c in conns.items() if now - c["t"] > self.timeout]:
                    finish(fd, "timeout")
        finally:
            for fd in list(conns):
                finish(fd, "timeout")
            if self.fired_at is None:
                self._fire(t0)
        self.outcomes += ["other"] * (self.count - len(self.outcomes))
        return tally(self.outcomes)


def peer_closed(sock):
    """Whether the server closed (or reset) this connection, looked at without blocking (the
    socket is left non-blocking)."""
    sock.setblocking(False)  # with a timeout set, recv would first wait for data that long
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
