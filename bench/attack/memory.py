"""Attacks 2, 3b, 3c: cheap input that makes a server hold a lot of memory.

Each opens its connections, keeps them open for a while (sampling the server's VmRSS every 50 ms),
then closes them and checks the server still answers an ordinary request.
"""
import socket
import struct
import time

from harness import MIB, Sampler, close_all, connect, memory, recv_exact, run_threads


def _hold(server, open_conns, hold_secs):
    """Runs open_conns() (returns the sockets), samples RSS while they are held; figures."""
    rss_before, _ = memory(server.pid)
    socks = []
    try:
        with Sampler(lambda: memory(server.pid)[0]) as peak:
            t0 = time.monotonic()
            socks = open_conns()
            opened = time.monotonic() - t0
            time.sleep(hold_secs)
            rss_during, hwm = memory(server.pid)
    finally:
        close_all(socks)
    time.sleep(0.5)
    rss_after, hwm = memory(server.pid)
    return {
        "conns": len(socks),
        "rss_before_mib": rss_before,
        "rss_during_mib": rss_during,
        "rss_peak_mib": peak.peak,
        "hwm_mib": hwm,
        "rss_after_close_mib": rss_after,
        "open_secs": round(opened, 2),
    }


def _section(title, rows, extra_columns=()):
    columns = ["server", "conns", "RSS before", "RSS during", "RSS peak (sampled)", "VmHWM",
               "RSS after close", *[c for c, _ in extra_columns], "served after", "alive"]
    table = [
        [r["server"], r["conns"], r["rss_before_mib"], r["rss_during_mib"], r["rss_peak_mib"], r["hwm_mib"],
         r["rss_after_close_mib"], *[r.get(k) for _, k in extra_columns],
         "yes" if r["served_after"] else "NO", "yes" if r["alive"] else "NO"]
        for r in rows
    ]
    return {"title": title, "columns": columns, "rows": table, "data": rows}


# ---- 2. echo_server --proto framed ---------------------------------------------------------


def _framed_echo_ok(addr):
    try:
        with connect(addr) as s:
            s.sendall(struct.pack(">I", 5) + b"hello")
            return recv_exact(s, 9) == struct.pack(">I", 5) + b"hello"
    except OSError:
        return False


def framed(ctx):
    n = ctx.pick(50, 20)
    hold = ctx.pick(3.0, 1.0)
    announced = 16 * MIB
    with ctx.server("echo_server", ["--proto", "framed"]) as server:

        def open_conns():
            socks = []
            for _ in range(n):
                s = connect(server.addr)
                s.sendall(struct.pack(">I", announced))
                socks.append(s)
            return socks

        row = _hold(server, open_conns, hold)
        row.update(server=server.cmdline, served_after=_framed_echo_ok(server.addr), alive=server.alive())
    return _section(f"echo_server framed: {n} connections each send only a 4-byte length of 16 MiB, "
                    f"held {hold:g} s (MiB)", [row])


# ---- 3. resp_kv ----------------------------------------------------------------------------


def resp_command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_ping_ok(addr):
    try:
        with connect(addr) as s:
            s.sendall(resp_command("PING"))
            return recv_exact(s, 7) == b"+PONG\r\n"
    except OSError:
        return False


def resp_get(ctx):
    n = ctx.pick(50, 10)
    hold = ctx.pick(3.0, 1.0)
    size = 16 * MIB
    with ctx.server("resp_kv") as server:
        with connect(server.addr, timeout=20) as s:
            s.sendall(resp_command("SET", "big", b"v" * size))
            set_reply = recv_exact(s, 5)
        if set_reply != b"+OK\r\n":
            raise RuntimeError(f"SET of the 16 MiB value answered {set_reply!r}")

        def open_conns():
            socks = []
            for _ in range(n):
                s = connect(server.addr)
                # A small receive buffer, never read: the reply piles up in the server.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(resp_command("GET", "big"))
                socks.append(s)
            return socks

        row = _hold(server, open_conns, hold)
        row.update(server=server.cmdline, served_after=resp_ping_ok(server.addr), alive=server.alive())
    return _section(f"resp_kv: {n} connections each GET a 16 MiB value and never read the reply, "
                    f"held {hold:g} s (MiB)", [row])


def resp_arg(ctx):
    n = ctx.pick(20, 5)
    hold = ctx.pick(3.0, 1.0)
    size = 15 * MIB
    head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % size
    body = b"a" * (size - 1)  # one byte short: the argument never completes
    with ctx.server("resp_kv") as server:
        sent = []

        def open_conns():
            socks = [connect(server.addr, timeout=15) for _ in range(n)]

            def send(s):
                try:
                    s.sendall(head)
                    s.sendall(body)
                    sent.append(1)
                except OSError:
                    pass

            run_threads([lambda s=s: send(s) for s in socks], timeout=30)
            return socks

        row = _hold(server, open_conns, hold)
        row.update(server=server.cmdline, served_after=resp_ping_ok(server.addr), alive=server.alive(),
                   fully_sent=len(sent))
    return _section(f"resp_kv: {n} connections each send an unfinished 15 MiB argument, held {hold:g} s (MiB)",
                    [row], extra_columns=[("fully sent", "fully_sent")])
