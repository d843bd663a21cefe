"""Attack 1: slowloris on every mode of echo_upper.

Many connections each send one byte every few seconds, so a read timeout never trips; meanwhile a
well-behaved client makes a fixed number of request/response exchanges, each on a new connection
with its own timeout, started on a fixed schedule. What counts is how many of those are served.
"""
import errno
import select
import socket
import threading
import time

from harness import close_all, connect, latency_summary, ms, recv_exact, run_threads

MODES = ["single", "threading", "pool", "process", "prefork"]


class Trickle:
    """`count` connections that each send one byte on connecting and then one every `interval` s,
    for `duration` s, on one thread with poll(): bounded in count and time."""

    def __init__(self, addr, count, interval, duration):
        self.addr, self.count, self.interval, self.duration = addr, count, interval, duration
        self.established = 0
        self.closed_by_server = 0
        self.connect_failed = 0
        self.bytes_sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def join(self):
        self._thread.join(timeout=self.duration + 5)

    def _run(self):
        socks, state = {}, {}
        poller = select.poll()
        try:
            for _ in range(self.count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex(self.addr)
                if err not in (0, errno.EINPROGRESS):
                    self.connect_failed += 1
                    s.close()
                    continue
                socks[s.fileno()] = s
                state[s.fileno()] = "connecting"
                poller.register(s.fileno(), select.POLLOUT)
            end = time.monotonic() + self.duration
            next_tick = time.monotonic() + self.interval
            while (now := time.monotonic()) < end:
                for fd, ev in poller.poll(min(100, max(1, int((end - now) * 1000)))):
                    s = socks[fd]
                    if state[fd] == "connecting":
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0 or ev & select.POLLERR:
                            self.connect_failed += 1
                            self._drop(poller, socks, state, fd)
                            continue
                        state[fd] = "open"
                        self.established += 1
                        self._send(poller, socks, state, fd)
                        if fd in state:
                            poller.modify(fd, select.POLLIN)
                    elif ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        try:
                            data = s.recv(4096)
                        except BlockingIOError:
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            self.closed_by_server += 1
                            self._drop(poller, socks, state, fd)
                if time.monotonic() >= next_tick:
                    next_tick += self.interval
                    for fd in [fd for fd, st in state.items() if st == "open"]:
                        self._send(poller, socks, state, fd)
        finally:
            close_all(socks.values())

    def _send(self, poller, socks, state, fd):
        try:
            self.bytes_sent += socks[fd].send(b"x")
        except BlockingIOError:
            pass
        except OSError:
            self.closed_by_server += 1
            self._drop(poller, socks, state, fd)

    @staticmethod
    def _drop(poller, socks, state, fd):
        poller.unregister(fd)
        state.pop(fd, None)
        socks.pop(fd).close()


def exchange(addr, timeout):
    """One well-behaved request on a new connection: its latency in s, or None if it failed."""
    t0 = time.monotonic()
    try:
        with connect(addr, timeout=timeout) as s:
            s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
            s.sendall(b"hello")
            if recv_exact(s, 5) != b"HELLO":
                return None
        return time.monotonic() - t0
    except OSError:
        return None


def scheduled_exchanges(addr, count, start_in, gap, timeout):
    """`count` exchanges, the i-th started at start_in + i*gap s from now, each on its own
    thread so a stuck one does not delay the next; their results in order."""
    results = [None] * count
    t0 = time.monotonic()

    def one(i):
        delay = t0 + start_in + i * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        results[i] = exchange(addr, timeout)

    run_threads([lambda i=i: one(i) for i in range(count)], start_in + count * gap + timeout + 2)
    return results


def time_to_serve(addr, bound):
    """Seconds after the attack until a well-behaved exchange succeeds again, or None past `bound`
    (a process-mode server, say, still working through the backlog the attack left)."""
    t0 = time.monotonic()
    while (left := bound - (time.monotonic() - t0)) > 0:
        if exchange(addr, min(1.0, left)) is not None:
            return round(time.monotonic() - t0, 2)
        time.sleep(0.05)
    return None


def run(ctx):
    conns = ctx.pick(1000, 150)
    duration = ctx.pick(10.0, 2.5)
    interval = ctx.pick(3.0, 1.0)
    good = ctx.pick(8, 3)
    timeout = ctx.pick(3.0, 1.0)  # per well-behaved exchange
    rows = []
    for mode in MODES:
        with ctx.server("echo_upper", ["--mode", mode]) as server:
            baseline = [exchange(server.addr, timeout) for _ in range(3)]
            trickle = Trickle(server.addr, conns, interval, duration).start()
            # Let the connections land, then spread the good requests so that each ends (served
            # or timed out) while the attack is still on: one served only after the attack
            # stopped does not count.
            ramp = min(1.0, duration / 6)
            gap = (duration - ramp - timeout) / good
            results = scheduled_exchanges(server.addr, good, ramp, gap, timeout)
            trickle.join()
            ok = [r for r in results if r is not None]
            recovery = time_to_serve(server.addr, ctx.pick(10.0, 3.0))
            rows.append(
                {
                    "mode": mode,
                    "attack_conns": conns,
                    "established": trickle.established,
                    "closed_by_server": trickle.closed_by_server,
                    "good_ok": len(ok),
                    "good_total": good,
                    "good_latency": latency_summary(ok),
                    "baseline_ok": sum(r is not None for r in baseline),
                    "baseline_p50_ms": latency_summary([r for r in baseline if r])["p50_ms"],
                    "recovery_s": recovery,
                    "alive": server.alive(),
                    "server": server.cmdline,
                }
            )
    table = [
        [
            r["mode"],
            f'{r["established"]}/{r["attack_conns"]}',
            r["closed_by_server"],
            f'{r["good_ok"]}/{r["good_total"]}',
            r["good_latency"]["p50_ms"],
            r["good_latency"]["max_ms"],
            r["baseline_p50_ms"],
            r["recovery_s"] if r["recovery_s"] is not None else f"> {ctx.pick(10, 3)}",
        ]
        for r in rows
    ]
    return {
        "title": f"slowloris on echo_upper: {conns} connections, 1 byte every {interval:g} s for {duration:g} s; "
        f"{good} well-behaved exchanges (timeout {timeout:g} s each) during it",
        "columns": [
            "mode",
            "attack conns up",
            "closed by server",
            "good ok",
            "good p50 ms",
            "good max ms",
            "p50 ms before attack",
            "s to serve after",
        ],
        "rows": table,
        "data": rows,
    }
