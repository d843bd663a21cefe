"""Graceful stops (SIGTERM with `--grace`): a message half-sent when the stop begins, connections
arriving while it begins, idle peers that should not hold it.
"""
import re
import signal
import socket
import time

from clients import OUTCOMES, Burst, classify_error, frame, tally
from harness import close_all, connect, recv_exact

INFO = {"RUST_LOG": "info"}  # echo_server logs at warn by default; the stop's lines are info


def _stop_lines(server):
    """The stderr lines about the stop, and the sum of the N in `took N request(s) queued`."""
    keys = ("took ", "queue", "cut off", "graceful stop", "stopped", "shutdown", "closing connection",
            "closed ", "grace")
    lines = [l for l in server.stderr_text().splitlines() if any(k in l for k in keys)]
    took = sum(int(m.group(1)) for l in lines if (m := re.search(r"took (\d+) request", l)))
    return lines, took


def _notable(line):
    """A stop's log line that says connections or requests were lost."""
    return any(k in line for k in ("still waiting", "cut off", "stopped at once", "closing connection"))


def _short(line, limit=160):
    line = re.sub(r"^\[[^\]]*\] ?", "", line)  # env_logger's [LEVEL target] prefix
    return line if len(line) <= limit else line[:limit] + "…"


# ---- a message half-sent when the stop begins ------------------------------------------------


def in_flight(ctx):
    count = ctx.pick(20, 5)
    servers = [
        ("message pool", ["--proto", "line", "--api", "message", "--mode", "pool", "--grace", "10"]),
        ("stream (default mode)", ["--proto", "line", "--api", "stream", "--grace", "10"]),
    ]
    rows = []
    for label, args in servers:
        with ctx.server("echo_server", args, env=INFO) as server:
            socks, outcomes = [], []
            try:
                for i in range(count):
                    s = connect(server.addr, timeout=3.0)
                    s.sendall(b"hello wor")
                    socks.append(s)
                time.sleep(0.3)  # the server has read the first part
                t_stop = time.monotonic()
                server.signal(signal.SIGTERM)
                time.sleep(1.0)
                for i, s in enumerate(socks):
                    line = b"hello world %d\n" % i
                    try:
                        s.sendall(line[len(b"hello wor"):])
                        got = recv_exact(s, len(line))
                        outcomes.append("answered" if got == line else "empty" if not got else "wrong")
                    except OSError as e:
                        outcomes.append(classify_error(e))
            finally:
                close_all(socks)
            waited = server.wait_exit(12)
            exit_after = None if waited is None else round(time.monotonic() - t_stop, 2)
            lines, _ = _stop_lines(server)
            counts = tally(outcomes)
            rows.append({"api": label, "count": count, "outcomes": counts, "answered": counts["answered"],
                         "exit_after_sigterm_s": exit_after, "exit_code": server.proc.poll(),
                         "stop_lines": lines[:8], "server": server.cmdline})
    return {
        "title": f"echo_server --proto line --grace 10: {count} connections each send part of a line, SIGTERM, "
        "then each sends the rest 1 s later and waits 3 s for its echo",
        "columns": ["api", "answered", *OUTCOMES[1:], "exit after SIGTERM s", "exit code"],
        "rows": [[r["api"], f'{r["answered"]}/{r["count"]}', *[r["outcomes"][o] for o in OUTCOMES[1:]],
                  r["exit_after_sigterm_s"] if r["exit_after_sigterm_s"] is not None else "> 12",
                  r["exit_code"]] for r in rows],
        "data": rows,
        "notes": [f'{r["api"]}: ' + " · ".join(_short(l) for l in r["stop_lines"][:4]) for r in rows if r["stop_lines"]],
    }


# ---- connections arriving while the stop begins ----------------------------------------------

STOP_TARGETS = [
    ("echo_upper threading", "echo_upper", ["--mode", "threading"], b"hello\n", b"HELLO\n"),
    ("echo_upper pool", "echo_upper", ["--mode", "pool"], b"hello\n", b"HELLO\n"),
    ("echo_upper prefork", "echo_upper", ["--mode", "prefork"], b"hello\n", b"HELLO\n"),
    ("echo_server message pool", "echo_server", ["--api", "message", "--mode", "pool", "--proto", "line"],
     b"hello\n", b"hello\n"),
]


def new_connections(ctx):
    count = ctx.pick(500, 100)
    runs = ctx.pick(3, 1)
    # (label, s between two connects, s from a connection's establishment to its line)
    variants = [
        ("back to back, line at once", 0.0, 0.0),
        ("back to back, line 20 ms after connecting", 0.0, 0.02),
        (f"one per 0.2 ms, line 20 ms after connecting", 0.0002, 0.02),
    ]
    rows = []
    for label, name, args, request, expected in STOP_TARGETS:
        for variant, pace, delay in variants:
            per_run = []
            for _ in range(runs):
                with ctx.server(name, [*args, "--grace", "10"], env=INFO) as server:
                    time.sleep(0.3 if "prefork" in args else 0.05)  # workers up
                    burst = Burst(server.addr, count, request, expected, 5.0, pace,
                                  lambda: server.signal(signal.SIGTERM), send_delay=delay)
                    counts = burst.run()
                    waited = server.wait_exit(12)
                    lines, took = _stop_lines(server)
                    per_run.append({
                        "outcomes": counts, "sigterm_after_s": round(burst.fired_at, 3),
                        "connects_before_sigterm": burst.connects_before_fire, "took_queued": took,
                        "exit_code": server.proc.poll() if waited is not None else "still running",
                        "stop_lines": lines[:12], "cmd": server.cmdline,
                    })
            rows.append({"server": label, "variant": variant, "count": count, "runs": per_run})

    def runs_of(r, key):
        return " / ".join(str(key(run)) for run in r["runs"])

    return {
        "title": f"SIGTERM (--grace 10, RUST_LOG=info) while {count} clients connect (non-blocking connects); each "
        "sends a line once connected (at once or 20 ms later) and waits 5 s for its answer; SIGTERM goes to the "
        f"server's process as soon as the first client is answered. {runs} run(s) each, figures per run (a / b)",
        "columns": ["server", "clients", "connects before SIGTERM", *OUTCOMES, "took N queued (log)", "exit code"],
        "rows": [[r["server"], r["variant"], runs_of(r, lambda x: x["connects_before_sigterm"]),
                  *[runs_of(r, lambda x, o=o: x["outcomes"][o]) for o in OUTCOMES],
                  runs_of(r, lambda x: x["took_queued"]), runs_of(r, lambda x: x["exit_code"])] for r in rows],
        "data": rows,
        "notes": ["refused: connect refused; reset: ECONNRESET; empty: closed with no answer (or before the line "
                  "was sent); other: another error or never resolved; the 20 ms stand for a client whose first "
                  "bytes come a little after its handshake (a loaded client, a TLS or proxy hop)"] + [
            f'{r["server"]}, {r["variant"]}, run {i + 1}: ' + " · ".join(_short(l, 110) for l in run["stop_lines"]
                                                                         if _notable(l))
            for r in rows for i, run in enumerate(r["runs"]) if any(_notable(l) for l in run["stop_lines"])],
    }


# ---- idle peers at the stop ------------------------------------------------------------------


def idle_peers(ctx):
    rows = []
    for mode in ("single", "pool"):
        for idle in (0, 1, 10):
            with ctx.server("echo_server", ["--api", "message", "--mode", mode]) as server:
                socks = []
                try:
                    for _ in range(idle):
                        s = connect(server.addr, timeout=3.0)
                        s.sendall(frame(b"hi"))
                        if recv_exact(s, 6) != frame(b"hi"):
                            raise RuntimeError("no echo before the stop")
                        socks.append(s)
                    t0 = time.monotonic()
                    server.signal(signal.SIGTERM)
                    waited = server.wait_exit(12)
                    exit_s = None if waited is None else round(time.monotonic() - t0, 3)
                    closed = sum(_closed_within(s, 0.2) for s in socks)
                finally:
                    close_all(socks)
                rows.append({"mode": mode, "idle": idle, "exit_after_sigterm_s": exit_s,
                             "exit_code": server.proc.poll(), "idle_closed": closed, "server": server.cmdline})
    return {
        "title": "echo_server --api message (framed, default grace): clients that made one exchange and stay "
        "connected, idle; SIGTERM; seconds until the process exits",
        "columns": ["mode", "idle clients", "exit after SIGTERM s", "exit code", "idle clients closed by then"],
        "rows": [[r["mode"], r["idle"], r["exit_after_sigterm_s"] if r["exit_after_sigterm_s"] is not None else "> 12",
                  r["exit_code"], r["idle_closed"]] for r in rows],
        "data": rows,
    }


def _closed_within(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True
