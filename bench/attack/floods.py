"""Attacks 5 and 8: how much a server writes to stderr under a flood, and under ordinary load.

Log volume is a cost an attacker controls: disk, journald and the CPU that formats the lines.
"""
import os
import socket
import threading
import time

from harness import CpuMeter, connect, recv_exact

# ---- 5. UDP flood ----------------------------------------------------------------------------


def _flood(addr, size, seconds, counts, index):
    """Sends datagrams of `size` bytes as fast as the socket takes them for `seconds`."""
    payload = os.urandom(size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        end = time.monotonic() + seconds
        sent = 0
        while time.monotonic() < end:
            try:
                s.sendto(payload, addr)
                sent += 1
            except (BlockingIOError, OSError):
                time.sleep(0.0005)
        counts[index] = sent


def udp_flood(ctx):
    seconds = ctx.pick(5.0, 1.0)
    senders = 2
    cases = [
        ("udp_upper", [], {}, 9000, "over its 8192-byte limit"),
        ("udp_upper", [], {"RUST_LOG": "info"}, 9000, "over its 8192-byte limit"),
        ("udp_upper", [], {}, 8192, "at its limit: content logged"),
        ("echo_server", ["--proto", "udp"], {}, 65507, "IPv4 maximum; no datagram can exceed its limit"),
        ("echo_server", ["--proto", "udp"], {"RUST_LOG": "info"}, 65507, "IPv4 maximum"),
    ]
    rows, data = [], []
    for name, args, env, size, why in cases:
        with ctx.server(name, args, env=env) as server:
            time.sleep(0.2)
            start = server.stderr_bytes()
            counts = [0] * senders
            meter = CpuMeter(server.pid).start()
            threads = [threading.Thread(target=_flood, args=(server.addr, size, seconds, counts, i), daemon=True)
                       for i in range(senders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=seconds + 5)
            cpu = meter.stop()
            time.sleep(0.3)  # let the last lines reach the file
            size_b, lines, longest = server.stderr_stats(start)
            alive = server.alive()
        level = env.get("RUST_LOG", "default")
        row = [f"{name} {' '.join(args)}".strip(), level, f"{size} ({why})", sum(counts), lines,
               round(size_b / 1e6, 2), longest, cpu, meter.wanted_pct, "yes" if alive else "NO"]
        rows.append(row)
        data.append(dict(zip(["server", "log_level", "datagram", "sent", "stderr_lines", "stderr_mb",
                              "longest_line", "cpu_pct", "wanted_pct", "alive"], row)))
    return {
        "title": f"UDP flood: {senders} senders, as fast as they can for {seconds:g} s; what the server writes to stderr",
        "columns": ["server", "RUST_LOG", "datagram bytes", "datagrams sent", "stderr lines", "stderr MB",
                    "longest line", "CPU%", "CPU% wanted", "alive"],
        "rows": rows,
        "data": data,
    }


# ---- 8. log volume of ordinary requests ------------------------------------------------------


def _time_requests(addr, n):
    ok = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        for _ in range(n):
            try:
                s.sendto(b"%H:%M:%S", addr)
                s.recvfrom(2048)
                ok += 1
            except OSError:
                pass
    return ok


def _chat_requests(addr, n, participants=4):
    """Round-robin over a few participants; each waits for its own reply (not a relay: `[`)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(participants)]
    ok = 0
    try:
        for s in socks:
            s.settimeout(1.0)
        for i in range(n):
            s = socks[i % participants]
            try:
                s.sendto(b"hello room %d" % i, addr)
                for _ in range(participants + 10):
                    reply, _ = s.recvfrom(4096)
                    if not reply.startswith(b"["):
                        ok += 1
                        break
            except OSError:
                pass
    finally:
        for s in socks:
            s.close()
    return ok


def _chat_newcomers(addr, n):
    """A new socket (a new participant, as a seed client run) per request."""
    ok = 0
    for i in range(n):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            try:
                s.sendto(b"hello room %d" % i, addr)
                ok += 1 if s.recvfrom(4096)[0] else 0
            except OSError:
                pass
    return ok


def _echo_requests(addr, n):
    """One connection per request, as the seeds' clients do."""
    ok = 0
    for _ in range(n):
        try:
            with connect(addr) as s:
                s.sendall(b"hello")
                ok += recv_exact(s, 5) == b"HELLO"
        except OSError:
            pass
    return ok


def log_volume(ctx):
    n = ctx.pick(2000, 300)
    cases = [
        ("time_server", "UDP, one socket", _time_requests),
        ("chat", "UDP, 4 participants round-robin", _chat_requests),
        ("chat", "UDP, a new socket each", _chat_newcomers),
        ("echo_upper", "TCP, one connection each", _echo_requests),
    ]
    rows, data = [], []
    for name, how, fn in cases:
        with ctx.server(name) as server:
            time.sleep(0.2)
            start = server.stderr_bytes()
            t0 = time.monotonic()
            ok = fn(server.addr, n)
            secs = time.monotonic() - t0
            time.sleep(0.3)
            size_b, lines, longest = server.stderr_stats(start)
        row = [name, how, f"{ok}/{n}", round(secs, 2), size_b, lines, round(size_b / n, 1), longest]
        rows.append(row)
        data.append(dict(zip(["server", "requests", "ok", "secs", "stderr_bytes", "stderr_lines",
                              "bytes_per_request", "longest_line"], row)))
    return {
        "title": f"stderr at the default log level under {n} ordinary requests",
        "columns": ["server", "requests", "answered", "s", "stderr bytes", "stderr lines", "bytes/request",
                    "longest line"],
        "rows": rows,
        "data": data,
    }
