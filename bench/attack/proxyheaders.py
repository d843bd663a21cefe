"""PROXY protocol headers that never come, or come a byte a second, while well-behaved clients
(a valid v1 header, then a request) want an answer within a few seconds: on a message server
(`--api message`) and on a stream server's pool.
"""

from clients import Crowd, frame, proxy_v1, resp, served_summary, spread_exchanges

TRUSTED = ["--proxy-protocol", "v1", "--trusted-proxy", "127.0.0.1"]

# Message servers with a request and the answer it gets, after the PROXY header. echo_server is
# the one the scenario names; resp_kv is a message server that has the PROXY options today.
MESSAGE_SERVERS = [
    ("echo_server", ["--api", "message"], frame(b"hello"), frame(b"hello")),
    ("resp_kv", ["--api", "message"], resp("PING"), b"+PONG\r\n"),
]


def _variants(ctx):
    silent = ctx.pick(1000, 150)
    return [
        (f"{silent} silent connections", dict(count=silent)),
        ("1 connection trickling its header at 1 byte/s (reopened when closed)",
         dict(count=1, script=proxy_v1(), byte_gap=1.0, reconnect=True)),
    ]


def _measure(ctx, server, crowd_args, request, expected):
    good = ctx.pick(40, 10)
    timeout = ctx.pick(3.0, 2.0)
    ramp = ctx.pick(1.0, 0.5)  # the attack's connections land first
    gap = ctx.pick(0.05, 0.1)
    duration = ramp + good * gap + timeout + 1
    crowd = Crowd(server.addr, duration=duration, **crowd_args).start()
    crowd.up.wait(timeout=10)
    results = spread_exchanges(server.addr, proxy_v1(41000) + request, expected, good, ramp, gap, timeout)
    crowd.join()
    ok, lat, counts = served_summary(results)
    return {
        "good_total": good,
        "good_ok": ok,
        "timeout_s": timeout,
        "latency": lat,
        "outcomes": counts,
        "attack_established": crowd.established,
        "attack_opened": crowd.opened,
        "closed_by_server": crowd.closed_by_server,
        "alive": server.alive(),
        "server": server.cmdline,
    }


def _row(r):
    return [r["label"], r["variant"], f'{r["attack_established"]}/{r["attack_opened"]}', r["closed_by_server"],
            f'{r["good_ok"]}/{r["good_total"]}', r["latency"]["p50_ms"], r["latency"]["max_ms"],
            ", ".join(f"{k} {v}" for k, v in r["outcomes"].items() if v and k != "answered") or "–"]


COLUMNS = ["server", "attack", "attack conns up/opened", "closed by server", "good answered",
           "good p50 ms", "good max ms", "good failures"]


def message_server(ctx):
    rows, notes = [], []
    for name, api, request, expected in MESSAGE_SERVERS:
        for mode in ("single", "pool"):
            for label, crowd_args in _variants(ctx):
                server, why = ctx.try_server(name, [*api, "--mode", mode, *TRUSTED])
                if server is None:
                    notes.append(f"skipped {name} --mode {mode}: {why}")
                    break
                with server:
                    row = _measure(ctx, server, crowd_args, request, expected)
                row.update(variant=label, label=f"{name} {mode}")
                rows.append(row)
    return {
        "title": "PROXY header on a message server (--proxy-protocol v1, trusted 127.0.0.1): well-behaved clients "
        f"(header + one request, {ctx.pick(3, 2)} s timeout, one every {ctx.pick(50, 100)} ms) during the attack",
        "columns": COLUMNS,
        "rows": [_row(r) for r in rows],
        "data": rows,
        "notes": notes,
    }


def stream_pool(ctx):
    trickle = ctx.pick(40, 10)
    silent = ctx.pick(1000, 150)
    variants = [
        (f"{trickle} connections trickling their header at 1 byte/s (reopened when closed)",
         dict(count=trickle, script=proxy_v1(), byte_gap=1.0, reconnect=True)),
        (f"{silent} silent connections", dict(count=silent)),
    ]
    rows = []
    for label, crowd_args in variants:
        with ctx.server("echo_upper", ["--mode", "pool", *TRUSTED]) as server:
            row = _measure(ctx, server, crowd_args, b"hello", b"HELLO")
        row.update(variant=label, label="echo_upper pool")
        rows.append(row)
    return {
        "title": "PROXY header on echo_upper --mode pool (default workers, --proxy-protocol v1, trusted "
        f"127.0.0.1): well-behaved clients (header + `hello`, {ctx.pick(3, 2)} s timeout) during the attack",
        "columns": COLUMNS,
        "rows": [_row(r) for r in rows],
        "data": rows,
    }
