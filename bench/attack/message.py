"""Memory of a message server (`echo_server --api message`, framed): clients that pipeline and
never read the replies; a thousand unfinished 16 MiB frames; what is left after they close.
"""
import socket
import struct
import threading
import time

from clients import frame, peer_closed, served_summary, spread_exchanges
from harness import MIB, CpuMeter, Sampler, close_all, connect, memory, run_threads

RSS_CAP_MIB = 4096  # an attack stops early past this, to keep the machine usable


def _framed_echo(addr, count, start_in, gap, timeout):
    return spread_exchanges(addr, frame(b"hello"), frame(b"hello"), count, start_in, gap, timeout)


# ---- pipelining clients that never read ------------------------------------------------------


def _pipeliner(addr, end, stop, counts):
    """Sends small frames as fast as the server takes them until `end`; never reads."""
    chunk = frame(b"12345678") * (65536 // 12)
    try:
        s = connect(addr, timeout=0.5)
    except OSError:
        counts["connect_failed"] += 1
        return
    try:
        while time.monotonic() < end and not stop.is_set():
            try:
                s.sendall(chunk)
                counts["bytes"] += len(chunk)
            except socket.timeout:
                continue  # the server is not reading: keep trying until the end
            except OSError:
                counts["closed_by_server"] += 1
                return
    finally:
        s.close()


def backpressure(ctx):
    attackers = ctx.pick(50, 10)
    duration = ctx.pick(40.0, 8.0)
    good = ctx.pick(30, 6)
    timeout = 3.0
    rows = []
    for mode in ("pool", "single"):
        with ctx.server("echo_server", ["--api", "message", "--mode", mode]) as server:
            rss_before, _ = memory(server.pid)
            counts = {"bytes": 0, "connect_failed": 0, "closed_by_server": 0}
            stop = threading.Event()
            series = []
            t0 = time.monotonic()
            end = t0 + duration
            meter = CpuMeter(server.pid).start()
            threads = [threading.Thread(target=_pipeliner, args=(server.addr, end, stop, counts), daemon=True)
                       for _ in range(attackers)]
            for t in threads:
                t.start()
            good_results = []
            prober = threading.Thread(
                target=lambda: good_results.extend(
                    _framed_echo(server.addr, good, 1.0, (duration - 1.0 - timeout) / good, timeout)),
                daemon=True)
            prober.start()
            capped = False
            while (now := time.monotonic()) < end:
                rss = memory(server.pid)[0]
                series.append((round(now - t0, 1), rss, round(counts["bytes"] / 1e6, 1)))
                if rss > RSS_CAP_MIB:
                    capped = True
                    stop.set()
                    break
                time.sleep(0.5)
            rss_end = memory(server.pid)[0]
            stop.set()
            for t in threads:
                t.join(timeout=3)
            prober.join(timeout=timeout + 5)
            cpu = meter.stop()
            time.sleep(0.5)
            rss_closed = memory(server.pid)[0]
            ok, lat, outcomes = served_summary(good_results)
            quarter = [series[min(len(series) - 1, int(len(series) * f))][1] for f in (0.25, 0.5, 0.75)] \
                if series else [None] * 3
            half_mb = series[len(series) // 2][2] if series else None
            rows.append({
                "mode": mode,
                "attackers": attackers,
                "seconds": round(time.monotonic() - t0, 1),
                "mb_sent": round(counts["bytes"] / 1e6, 1),
                "mb_sent_by_half": half_mb,
                "attack_closed_by_server": counts["closed_by_server"],
                "rss_before_mib": rss_before,
                "rss_quarters_mib": quarter,
                "rss_end_mib": rss_end,
                "rss_peak_mib": max([r for _, r, _ in series] + [rss_end]),
                "rss_after_close_mib": rss_closed,
                "series_s_rss_mbsent": series,
                "stopped_at_cap": capped,
                "cpu_pct": cpu,
                "cpu_wanted_pct": meter.wanted_pct,
                "good_ok": ok,
                "good_total": good,
                "good_latency": lat,
                "good_outcomes": outcomes,
                "alive": server.alive(),
                "server": server.cmdline,
            })
    return {
        "title": f"echo_server --api message (framed): {attackers} clients pipeline 12-byte frames as fast as they "
        f"can for {duration:g} s and never read; {good} well-behaved exchanges ({timeout:g} s timeout) spread "
        "over the run (RSS in MiB)",
        "columns": ["mode", "MB sent (by half-time / in all)", "RSS before", "RSS at 1/4, 1/2, 3/4", "RSS at the end", "RSS peak",
                    "RSS 0.5 s after the clients closed", "CPU%", "CPU% wanted", "good answered", "good p50 ms",
                    "attack conns closed", "alive"],
        "rows": [[r["mode"], f'{r["mb_sent_by_half"]} / {r["mb_sent"]}', r["rss_before_mib"], " / ".join(str(q) for q in r["rss_quarters_mib"]),
                  r["rss_end_mib"], r["rss_peak_mib"], r["rss_after_close_mib"], r["cpu_pct"], r["cpu_wanted_pct"],
                  f'{r["good_ok"]}/{r["good_total"]}', r["good_latency"]["p50_ms"],
                  r["attack_closed_by_server"], "yes" if r["alive"] else "NO"] for r in rows],
        "data": rows,
        "notes": [f"a run stops early when RSS passes {RSS_CAP_MIB} MiB (stopped early: "
                  f"{', '.join(r['mode'] for r in rows if r['stopped_at_cap']) or 'none'})"],
    }


# ---- unfinished frames held open -------------------------------------------------------------


def _open_unfinished(addr, conns, announced, body_bytes, send_timeout):
    """`conns` connections that each send a length of `announced` and `body_bytes` of the frame,
    8 sender threads; the sockets and how many sent everything / were closed while sending."""
    socks = []
    for _ in range(conns):
        try:
            socks.append(connect(addr, timeout=send_timeout))
        except OSError:
            pass
    body = memoryview(b"a" * body_bytes)
    stats = {"fully_sent": 0, "send_timeout": 0, "closed_while_sending": 0}
    lock = threading.Lock()

    def send(group):
        for s in group:
            try:
                s.sendall(struct.pack(">I", announced))
                s.sendall(body)
                key = "fully_sent"
            except socket.timeout:
                key = "send_timeout"
            except OSError:
                key = "closed_while_sending"
            with lock:
                stats[key] += 1

    groups = [socks[i::8] for i in range(8)]
    run_threads([lambda g=g: send(g) for g in groups], timeout=conns * send_timeout / 8 + 30)
    return socks, stats


def _unfinished_run(ctx, mode, conns, announced, body_bytes, hold, after_close_wait, good):
    with ctx.server("echo_server", ["--api", "message", "--mode", mode]) as server:
        rss_before, _ = memory(server.pid)
        socks = []
        try:
            with Sampler(lambda: memory(server.pid)[0]) as peak:
                t0 = time.monotonic()
                socks, stats = _open_unfinished(server.addr, conns, announced, body_bytes, 5.0)
                opened = time.monotonic() - t0
                good_results = _framed_echo(server.addr, good, 0.2, 0.05, 3.0) if good else []
                time.sleep(max(0.0, hold - (time.monotonic() - t0 - opened)))
                rss_during, _ = memory(server.pid)
                closed = sum(peer_closed(s) for s in socks)
        finally:
            close_all(socks)
        samples = []
        for wait in after_close_wait:
            time.sleep(wait - (samples[-1][0] if samples else 0))
            samples.append((wait, memory(server.pid)[0]))
        _, hwm = memory(server.pid)
        ok, lat, _ = served_summary(good_results)
        return {
            "mode": mode,
            "conns": len(socks),
            "open_secs": round(opened, 1),
            **stats,
            "closed_by_server": closed,
            "rss_before_mib": rss_before,
            "rss_during_mib": rss_during,
            "rss_peak_mib": peak.peak,
            "hwm_mib": hwm,
            "rss_after_close_mib": dict(samples),
            "good_ok": ok,
            "good_total": good,
            "good_latency": lat,
            "alive": server.alive(),
            "server": server.cmdline,
        }


def buffered_total(ctx):
    conns = ctx.pick(1000, 150)
    good = ctx.pick(20, 5)
    hold = ctx.pick(3.0, 1.0)
    rows = [_unfinished_run(ctx, mode, conns, 16 * MIB, MIB, hold, [1.0], good) for mode in ("single", "pool")]
    return {
        "title": f"echo_server --api message (framed): {conns} connections each send a 16 MiB length and 1 MiB of "
        f"the frame, held {hold:g} s; {good} well-behaved exchanges meanwhile (RSS in MiB)",
        "columns": ["mode", "conns", "sent all / timed out / closed while sending", "closed by server (at the end)",
                    "RSS before", "RSS during", "RSS peak (sampled)", "VmHWM", "RSS 1 s after close",
                    "good answered", "good p50 ms", "alive"],
        "rows": [[r["mode"], r["conns"], f'{r["fully_sent"]} / {r["send_timeout"]} / {r["closed_while_sending"]}',
                  r["closed_by_server"], r["rss_before_mib"], r["rss_during_mib"], r["rss_peak_mib"], r["hwm_mib"],
                  r["rss_after_close_mib"][1.0], f'{r["good_ok"]}/{r["good_total"]}', r["good_latency"]["p50_ms"],
                  "yes" if r["alive"] else "NO"] for r in rows],
        "data": rows,
    }


def rss_release(ctx):
    conns = ctx.pick(1000, 200)
    hold = ctx.pick(2.0, 1.0)
    body = 60_000
    rows = [_unfinished_run(ctx, mode, conns, 100_000, body, hold, [0.5, 2.0], 0) for mode in ("single", "pool")]
    return {
        "title": f"echo_server --api message (framed): {conns} connections each send 60 KB of a 100 KB frame, "
        f"held {hold:g} s, then all close (RSS in MiB)",
        "columns": ["mode", "conns", "RSS before", "RSS during", "RSS peak (sampled)", "RSS 0.5 s after close",
                    "RSS 2 s after close", "alive"],
        "rows": [[r["mode"], r["conns"], r["rss_before_mib"], r["rss_during_mib"], r["rss_peak_mib"],
                  r["rss_after_close_mib"][0.5], r["rss_after_close_mib"][2.0], "yes" if r["alive"] else "NO"]
                 for r in rows],
        "data": rows,
    }
