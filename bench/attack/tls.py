"""Hostile TLS handshakes: 1,000 connections that send a real ClientHello one byte a second, or
random bytes, while well-behaved TLS clients (a full handshake, one request, the answer, on a new
connection each) want an answer; and a plaintext client on the TLS port.

Each server runs with `--tls-cert/--tls-key` (one P-256 certificate, made per run with the
openssl CLI) and the library's debug log, which names every connection handed to the mode
(`request from ADDR`, stream servers) or opened to the handler by the event loop (`ADDR:
connection N: TLS handshake done`, message servers). The attacking connections come from 127.0.0.2, the good clients from
127.0.0.1, so the log says whether an attacking connection ever got past its handshake.
"""
import multiprocessing
import os
import random
import re
import resource
import shutil
import socket
import ssl
import statistics
import sys
import time

from clients import Crowd, resp, served_summary, spread_exchanges, classify_error
from harness import CpuMeter, Program, Sampler, memory, ms

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tls_setup  # noqa: E402  (bench/tls_setup.py, shared with bench/compare.py)

ATTACKER = "127.0.0.2"
REDIS = "redis-server --tls-port (for comparison)"
# The library's debug lines (which name each connection's peer), nothing else's: rustls and the
# examples' own debug output would only add log volume to the measured servers.
LOG = {"RUST_LOG": "warn,socketserver=debug"}

# (label, example, arguments, request, expected answer)
SERVERS = [
    ("echo_upper threading", "echo_upper", ["--mode", "threading"], b"hello", b"HELLO"),
    ("echo_upper pool", "echo_upper", ["--mode", "pool"], b"hello", b"HELLO"),
    ("echo_upper prefork (2 workers)", "echo_upper", ["--mode", "prefork", "--workers", "2"],
     b"hello", b"HELLO"),
    ("resp_kv message single", "resp_kv", ["--api", "message", "--mode", "single"], resp("PING"),
     b"+PONG\r\n"),
    ("resp_kv message pool", "resp_kv", ["--api", "message", "--mode", "pool"], resp("PING"),
     b"+PONG\r\n"),
    # For comparison: what the same clients and attack do to a server outside this crate.
    (REDIS, "redis-server", [], resp("PING"), b"+PONG\r\n"),
]


class RedisTls(Program):
    """redis-server on a free loopback port, TLS only, with the run's certificate: the attacks'
    point of comparison (its log does not name connections, so "reached a handler" is n/a)."""

    def __init__(self, ctx, certs):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = ["redis-server", *tls_setup.redis_tls_args(port, certs), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                "--loglevel", "warning"]
        super().__init__(ctx, "redis-server", argv)
        self.addr = ("127.0.0.1", port)
        self.cmdline = "redis-server --port 0 --tls-port PORT (the run's certificate)"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(self.addr, timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or not self.alive():
                    self.stop()
                    raise RuntimeError("redis-server did not listen within 10 s")
                time.sleep(0.05)


def _start(ctx, example, args, certs):
    """(server, None) or (None, why)."""
    if example == "redis-server":
        if not shutil.which("redis-server"):
            return None, "redis-server is not installed"
        return RedisTls(ctx, certs), None
    tls = ["--tls-cert", certs["cert"], "--tls-key", certs["key"]]
    return ctx.try_server(example, [*args, *tls], env=LOG)


def certificates(ctx):
    """The run's certificate files, made once in the run's temporary folder."""
    if getattr(ctx, "tls_certs", None) is None:
        folder = os.path.join(ctx.workdir, "tls")
        os.makedirs(folder, exist_ok=True)
        ctx.tls_certs = tls_setup.make_certificates(folder)
    return ctx.tls_certs


def client_hello():
    """The first flight of Python's TLS client (OpenSSL's defaults: TLS 1.3 with 1.2 offered,
    an X25519 key share), as a client would send it: a real ClientHello record."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    if not hello.startswith(b"\x16\x03"):
        raise RuntimeError(f"not a TLS handshake record: {hello[:8].hex()}")
    return hello


def garbage(size=512, seed=11):
    """Random bytes whose first one is no TLS record type (so no server can take them for the
    start of a record and wait for the rest)."""
    rng = random.Random(seed)
    first = rng.choice([b for b in range(256) if b not in (20, 21, 22, 23, 24)])
    return bytes([first]) + bytes(rng.getrandbits(8) for _ in range(size - 1))


def tls_exchanger(certs):
    """An `exchange` over TLS: a new connection, a full handshake (no session offered), the
    request and its answer; (outcome, seconds) as clients.exchange."""
    context = tls_setup.client_context(certs)

    def one(addr, request, expected, timeout):
        t0 = time.monotonic()
        got = b""
        try:
            with socket.create_connection(addr, timeout=timeout) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                raw.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
                with context.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(request)
                    while len(got) < len(expected):
                        chunk = s.recv(len(expected) - len(got))
                        if not chunk:
                            break
                        got += chunk
        except (OSError, ssl.SSLError) as e:
            return classify_error(e), time.monotonic() - t0
        if got == expected:
            return "answered", time.monotonic() - t0
        return ("empty" if not got else "wrong"), time.monotonic() - t0

    return one


def reached(server, source, message):
    """Connections from `source` the server's log shows past the handshake: handed to the mode
    (stream servers, whose intake hands over only handshaken connections) or opened to the
    handler (`message` servers, whose loop does the handshakes)."""
    text = server.stderr_text()
    if message:
        # What the loop opens to the handler it announces first. (Its "request from ADDR" line
        # comes at accept, before the handshake.)
        pattern = rf"{re.escape(source)}:\d+: connection \S+: TLS handshake done"
    else:
        # The debug line ends with the address; the failure lines ("request from ADDR failed:
        # ...") are the handshakes that did not get through.
        pattern = rf"request from {re.escape(source)}:\d+\s*$"
    return len(re.findall(pattern, text, re.M))


class CrowdProcess:
    """A `Crowd` run in a child process, so that its loop over a thousand sockets does not hold
    this process's interpreter lock while the good clients here measure their latencies. The
    same start / up / join interface and counters."""

    COUNTERS = ("opened", "established", "closed_by_server", "connect_failed", "bytes_sent")
    REPORTED = COUNTERS + ("cpu_pct",)

    def __init__(self, *args, **kwargs):
        context = multiprocessing.get_context("fork")
        self._pipe, child = context.Pipe()
        self._proc = context.Process(target=_crowd_child, args=(child, args, kwargs), daemon=True)
        self.duration = kwargs.get("duration", args[2] if len(args) > 2 else 0)
        for name in self.REPORTED:
            setattr(self, name, 0)

    def start(self):
        self._proc.start()
        return self

    def wait_up(self, timeout):
        """Whether every first connect was attempted within `timeout` s."""
        return self._pipe.poll(timeout) and self._pipe.recv() == "up"

    def join(self):
        if self._pipe.poll(self.duration + 15):
            for name, value in self._pipe.recv().items():
                setattr(self, name, value)
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=5)


def _crowd_child(pipe, args, kwargs):
    crowd = Crowd(*args, **kwargs).start()
    crowd.up.wait(timeout=30)
    pipe.send("up")
    t0 = time.monotonic()
    crowd.join()
    counters = {name: getattr(crowd, name) for name in CrowdProcess.COUNTERS}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # The attacker's own share of the two cores the server and the good clients use.
    counters["cpu_pct"] = round(100 * (usage.ru_utime + usage.ru_stime) / (time.monotonic() - t0), 1)
    pipe.send(counters)


GOOD = (250, 30)  # well-behaved exchanges per phase (full, quick)
GAP = (0.024, 0.05)  # seconds between their starts
ROUNDS = (2, 1)  # alone-then-attacked rounds per server


def _phase(ctx, server, certs, request, expected):
    """Well-behaved TLS exchanges spread over a few seconds: (answered, latency summary, tally)."""
    good = ctx.pick(*GOOD)
    results = spread_exchanges(server.addr, request, expected, good, 0.0, ctx.pick(*GAP), 5.0,
                               one_exchange=tls_exchanger(certs))
    ok, lat, counts = served_summary(results)
    return {"total": good, "ok": ok, "latency": lat, "outcomes": counts}


def _round(ctx, server, certs, request, expected, crowd_args):
    """The good clients alone, then during the attack: both phases, the attack's counters, the
    server's CPU and peak RSS during the attacked phase."""
    alone = _phase(ctx, server, certs, request, expected)
    ramp = 2.0  # every attacking connection up (and trickling) before the good clients come
    # Long enough for the attack to outlast the good clients' phase (their gaps and timeout).
    duration = ramp + ctx.pick(*GOOD) * ctx.pick(*GAP) + 5.0 + 2.0
    crowd = CrowdProcess(server.addr, ctx.pick(1000, 150), duration, reconnect=True,
                         source=ATTACKER, **crowd_args).start()
    crowd.wait_up(timeout=15)
    time.sleep(ramp)
    meter = CpuMeter(server.pid).start()
    with Sampler(lambda: tree_rss(server)) as rss:
        attacked = _phase(ctx, server, certs, request, expected)
    cpu = meter.stop()
    crowd.join()
    time.sleep(0.5)
    p99s = (alone["latency"]["p99_ms"], attacked["latency"]["p99_ms"])
    return {"alone": alone, "attacked": attacked,
            "p99_ratio": round(p99s[1] / p99s[0], 2) if all(p99s) else None,
            "attack": {name: getattr(crowd, name) for name in CrowdProcess.REPORTED},
            "cpu_pct": cpu, "cpu_wanted_pct": meter.wanted_pct, "rss_peak_mib": rss.peak}


def _attack(ctx, label, example, args, request, expected, crowd_args):
    certs = certificates(ctx)
    server, why = _start(ctx, example, args, certs)
    if server is None:
        return {"label": label, "skipped": why}
    with server:
        time.sleep(0.5)  # a prefork parent's workers start
        rss_fresh = tree_rss(server)
        rounds = [_round(ctx, server, certs, request, expected, crowd_args)
                  for _ in range(ctx.pick(*ROUNDS))]
        message = "message" in args
        ours = example != "redis-server"
        return {
            "label": label,
            "server": server.cmdline,
            "rounds": rounds,
            "attack_opened": sum(r["attack"]["opened"] for r in rounds),
            "attack_closed_by_server": sum(r["attack"]["closed_by_server"] for r in rounds),
            "reached_handler": reached(server, ATTACKER, message) if ours else None,
            "good_reached": reached(server, "127.0.0.1", message) if ours else None,
            "good_total": sum(r[p]["total"] for r in rounds for p in ("alone", "attacked")),
            "good_ok": {p: sum(r[p]["ok"] for r in rounds) for p in ("alone", "attacked")},
            "p99_ratio": _median([r["p99_ratio"] for r in rounds]),
            "cpu_pct": max(r["cpu_pct"] for r in rounds),
            "attacker_cpu_pct": max(r["attack"]["cpu_pct"] for r in rounds),
            "cpu_wanted_pct": max(r["cpu_wanted_pct"] for r in rounds),
            "rss_fresh_mib": rss_fresh,
            "rss_peak_mib": max(r["rss_peak_mib"] or 0 for r in rounds),
            "rss_after_mib": tree_rss(server),
            "stderr_bytes": server.stderr_bytes(),
            "alive": server.alive(),
            "panics": len(server.panics()),
        }


def tree_rss(server):
    """VmRSS of the server and its processes (a prefork parent's workers), MiB."""
    return round(sum(memory(pid)[0] for pid in server.tree()), 1)


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


COLUMNS = ["server", "attack conns opened / closed by server", "reached a handler",
           "good answered (alone / attacked)", "good p50 ms per round (alone / attacked)",
           "good p99 ms per round (alone / attacked)", "p99 ratio (median of rounds)",
           "server CPU% (wanted), attacked", "attacker CPU%", "RSS MiB (fresh / peak)", "alive"]


def _row(r):
    if "skipped" in r:
        return [r["label"], "skipped: " + r["skipped"]] + ["–"] * (len(COLUMNS) - 2)
    per_round = lambda key: ", ".join(
        f'{x["alone"]["latency"][key]} / {x["attacked"]["latency"][key]}' for x in r["rounds"])
    half = r["good_total"] // 2
    reach = ("n/a" if r["reached_handler"] is None else
             f'{r["reached_handler"]} (good clients: {r["good_reached"]} of {r["good_total"]})')
    return [r["label"], f'{r["attack_opened"]} / {r["attack_closed_by_server"]}', reach,
            f'{r["good_ok"]["alone"]}/{half} / {r["good_ok"]["attacked"]}/{half}',
            per_round("p50_ms"), per_round("p99_ms"), r["p99_ratio"],
            f'{r["cpu_pct"]} ({r["cpu_wanted_pct"]})', r["attacker_cpu_pct"],
            f'{r["rss_fresh_mib"]} / {r["rss_peak_mib"]}',
            "yes" if r["alive"] and not r["panics"] else f'NO (panics: {r["panics"]})']


def _run(ctx, what, crowd_args):
    rows = [_attack(ctx, label, example, args, request, expected, crowd_args)
            for label, example, args, request, expected in SERVERS]
    return {
        "title": f"{ctx.pick(1000, 150)} connections from {ATTACKER} {what} while "
        f"{ctx.pick(*GOOD)} well-behaved TLS clients (a new connection, a full handshake, one "
        "request and its answer, 5 s timeout) come one every "
        f"{int(ctx.pick(*GAP) * 1000)} ms: alone, then during the attack, on the same server, "
        f"{ctx.pick(*ROUNDS)} rounds",
        "columns": COLUMNS,
        "rows": [_row(r) for r in rows],
        "data": rows,
        "notes": ["reached a handler: attacking connections the server's debug log shows handed to "
                  "the mode (`request from 127.0.0.2:…`, stream servers) or opened to the handler "
                  "(`127.0.0.2:…: connection N: TLS handshake done`, message servers)",
                  "CPU% and RSS are the server's during the attacked phase (100 % = one core)"],
    }


def slow_hello(ctx):
    hello = client_hello()
    return _run(ctx, f"sending a real ClientHello ({len(hello)} bytes) one byte a second (each "
                "opened again when the server closes it)",
                dict(script=hello, byte_gap=1.0))


def garbage_flood(ctx):
    junk = garbage()
    # Opened again a second after the server closes one: about 1,000 garbage connections a
    # second, rather than as many as this client's one thread can make (which would take a core
    # from the two the server and the good clients share).
    return _run(ctx, f"sending {len(junk)} random bytes at once (opened again 1 s after the server "
                "closes it)", dict(script=junk, chunk=len(junk), reconnect_delay=1.0))


def plaintext(ctx):
    """A plaintext request on the TLS port: how the server ends it (a TLS alert and a close, or a
    close at the handshake deadline), never a hang."""
    certs = certificates(ctx)
    rows, data = [], []
    for label, example, args, request, _ in SERVERS:
        server, why = _start(ctx, example, args, certs)
        if server is None:
            rows.append([label, "skipped: " + why, "–", "–", "–"])
            continue
        with server:
            for what, payload in (("a plaintext request", request), ("3 plaintext bytes", b"hi\n")):
                got, how, seconds = _plain_exchange(server.addr, payload, timeout=15.0)
                alert = got[:1] == b"\x15"
                data.append({"label": label, "sent": what, "bytes": len(got), "alert": alert,
                             "ended": how, "seconds": round(seconds, 3)})
                rows.append([label, f"{what} ({len(payload)} B)",
                             f"{len(got)} B" + (" (a TLS alert record)" if alert else ""), how,
                             ms(seconds)])
    return {
        "title": "A plaintext client on the TLS port: what it gets back and when the server closes",
        "columns": ["server", "sent", "got back", "ended by", "after ms"],
        "rows": rows,
        "data": data,
    }


def _plain_exchange(addr, payload, timeout):
    """Sends `payload` in the clear and reads until the server closes: (bytes, how it ended,
    seconds)."""
    t0 = time.monotonic()
    got = b""
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.sendall(payload)
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return got, "close", time.monotonic() - t0
                got += chunk
    except (socket.timeout, TimeoutError):
        return got, f"no close within {timeout:g} s", time.monotonic() - t0
    except OSError as e:
        return got, f"{classify_error(e)} ({type(e).__name__})", time.monotonic() - t0
