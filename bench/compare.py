#!/usr/bin/env python3
"""Side-by-side benchmark of this crate against what a user would otherwise pick.

Run through bench/compare.sh, which installs the tools and builds the examples and loadgen first.
Every contestant is started here on a free loopback port and stopped by its pid; every workload runs
against every contestant in the same invocation, alternating, for several rounds; the report gives
medians and ratios (this machine is shared and noisy: absolute numbers drift, ratios much less).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "target", "release", "examples")
# loadgen is a binary of the socketserver-bench package (bench/Cargo.toml), not an example.
LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
PY = [sys.executable, os.path.join(ROOT, "bench", "py_servers.py")]
STARTUP = 15  # seconds a contestant may take to listen
RUN_TIMEOUT = 120  # seconds any one client run may take before it is killed


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Contestant:
    """A server process: started in its own process group, stopped by that pid."""

    def __init__(self, name, argv, listens_line=True, port=None, cwd=None):
        self.name, self.argv, self.port = name, argv, port
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cwd)
        if listens_line:
            line = self._first_line()
            m = re.match(r"listening on 127\.0\.0\.1:(\d+)$", line.strip())
            if not m:
                self.stop()
                raise RuntimeError(f"{name}: expected 'listening on', got {line!r}")
            self.port = int(m.group(1))
        else:
            self._wait_port()

    def _first_line(self):
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(STARTUP):
            self.stop()
            raise RuntimeError(f"{self.name}: no 'listening on' line within {STARTUP} s")
        return self.proc.stdout.readline().decode()

    def _wait_port(self):
        deadline = time.time() + STARTUP
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name}: port {self.port} not open within {STARTUP} s")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# A pool worker serves one connection for as long as it lasts, so for connection workloads the
# pool is sized above the most concurrent clients (200); with fewer workers the extra clients
# wait in the queue and a client such as redis-benchmark, which needs all 50, stalls.
POOL_WORKERS = "256"
# `process` holds a child per connection for as long as it lasts, and stops accepting at
# `--max-children` (default 40, as in Python): above the most concurrent clients, for the same
# reason. Python's ForkingTCPServer runs without its cap here too (bench/py_servers.py).
MAX_CHILDREN = "256"


def ours(name, example, mode, *extra):
    if mode == "pool" and "udp" not in extra:
        extra = ("--workers", POOL_WORKERS) + extra
    if mode == "process":
        extra = ("--max-children", MAX_CHILDREN) + extra
    return lambda: Contestant(name, [os.path.join(EXAMPLES, example), "--addr", "127.0.0.1:0",
                                     "--mode", mode, *extra])


def python(name, proto, mode):
    return lambda: Contestant(name, PY + ["--addr", "127.0.0.1:0", "--proto", proto, "--mode", mode])


def plain(proto):
    return lambda: Contestant("plain std::net", [os.path.join(EXAMPLES, "std_echo"),
                                                 "--addr", "127.0.0.1:0", "--proto", proto])


def redis_server():
    port = free_port()
    return Contestant("redis-server", ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--daemonize", "no",
                                       "--protected-mode", "no", "--loglevel", "warning"],
                      listens_line=False, port=port)


def nginx():
    port = free_port()
    prefix = tempfile.mkdtemp(prefix="bench-nginx-")
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix};
    proxy_temp_path {prefix};
    fastcgi_temp_path {prefix};
    uwsgi_temp_path {prefix};
    scgi_temp_path {prefix};
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type text/plain; return 200 "hello\\n"; }}
    }}
}}
""")
    return Contestant("nginx (1 worker)", ["nginx", "-p", prefix, "-c", conf],
                      listens_line=False, port=port)


def run_client(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return out.stdout


def loadgen(port, workload, conns, size, duration, *extra):
    line = run_client([LOADGEN, "--addr", f"127.0.0.1:{port}",
                       "--workload", workload, "--conns", str(conns), "--size", str(size),
                       "--requests", "100000000", "--duration", str(duration), "--json", *extra])
    return json.loads(line.strip().splitlines()[-1])


def redis_bench(port, pipeline, requests):
    out = run_client(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "50",
                      "-n", str(requests), "-P", str(pipeline), "-t", "ping,set,get", "--csv"])
    rates = {}
    for row in out.splitlines():
        cells = [c.strip('"') for c in row.split(",")]
        if len(cells) > 1 and cells[0] != "test":
            rates[cells[0]] = float(cells[1])
    if not rates:
        raise RuntimeError(f"redis-benchmark printed no results: {out[-300:]}")
    return {"rps": statistics.mean(rates.values()), "tests": rates}


def wrk(port, duration):
    out = run_client(["wrk", "-t2", "-c50", f"-d{duration}s", "--latency",
                      f"http://127.0.0.1:{port}/"])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1, "ms": 1000, "s": 1_000_000}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise RuntimeError(f"wrk reported errors: {errors.group(0)}")
    return {"rps": rps, "p99_us": float(p99.group(1)) * scale[p99.group(2)] if p99 else None}


failures = []


def compare(title, contestants, measure, rounds, baseline):
    """Runs `measure(contestant)` on each contestant per round, alternating; returns result rows."""
    log(f"== {title}")
    started, samples = [], {}
    try:
        for make in contestants:
            c = make()
            started.append(c)
            samples[c.name] = []
        for r in range(rounds):
            for c in started:
                try:
                    result = measure(c)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError, AttributeError) as e:
                    # One failed run is reported, not fatal: the other contestants still count.
                    log(f"   round {r + 1} {c.name}: FAILED: {e}")
                    failures.append(f"{title}, {c.name}, round {r + 1}: {str(e)[:200]}")
                    continue
                samples[c.name].append(result)
                log(f"   round {r + 1} {c.name}: {result['rps']:.0f} req/s")
    finally:
        for c in started:
            c.stop()
    base = (statistics.median(s["rps"] for s in samples[baseline])
            if samples.get(baseline) else None)
    rows = []
    for name, results in samples.items():
        if not results:
            continue
        rps = statistics.median(s["rps"] for s in results)
        p99s = [s.get("p99_us") for s in results if s.get("p99_us") is not None]
        rows.append({"workload": title, "contestant": name, "rps": rps,
                     "p99_us": statistics.median(p99s) if p99s else None,
                     "ratio": rps / base if base else None, "baseline": baseline,
                     "rounds": [s["rps"] for s in results]})
    return rows


# Modes every example offers; the process-based ones join where an example's --help lists them.
THREAD_MODES = ["single", "threading", "pool"]
PROCESS_MODES = ["process", "prefork"]


def offered_modes(example):
    """The modes `example --help` lists on its `--mode MODE` option line, in THREAD_MODES +
    PROCESS_MODES order; the thread modes alone if the help cannot be read."""
    try:
        usage = subprocess.run([os.path.join(EXAMPLES, example), "--help"],
                               capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return THREAD_MODES
    for line in usage.splitlines():
        words = line.split()
        if words[:2] == ["--mode", "MODE"]:
            listed = set(re.findall(r"[a-z]+", line.split("MODE", 1)[1].split("(")[0]))
            return [m for m in THREAD_MODES + PROCESS_MODES if m in listed]
    return THREAD_MODES


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=int, default=3, help="seconds per loadgen/wrk run")
    p.add_argument("--quick", action="store_true", help="1 round, 1 s runs, fewer points")
    p.add_argument("--only", default="", help="comma-separated: echo,resp,http,churn,udp,idle")
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    a = p.parse_args()
    if a.quick:
        a.rounds, a.duration = 1, 1
    only = set(filter(None, a.only.split(",")))
    want = lambda w: not only or w in only
    rounds, d = a.rounds, a.duration
    conn_counts = [1, 10, 50] if a.quick else [1, 10, 50, 200]
    meta = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
            "load_start": loadavg(), "cores": os.cpu_count(),
            "kernel": os.uname().release, "command": " ".join(["bench/compare.sh"] + sys.argv[1:]),
            "rounds": rounds, "duration": d}
    modes = offered_modes("echo_server")
    http_modes = [m for m in offered_modes("http_hello") if m != "single"]
    # resp_kv keeps its store in the process's memory, shared by threads: it refuses the process
    # modes (each child would have a store of its own), whatever its --help lists.
    resp_modes = [m for m in offered_modes("resp_kv") if m in ("threading", "pool")]
    meta["modes"] = {"echo_server": modes, "http_hello": http_modes, "resp_kv": resp_modes}
    rows, chart = [], {}

    if want("echo"):
        for size in (64, 16384):
            for conns in conn_counts:
                title = f"framed echo {size} B, {conns} conns"
                cs = [plain("framed")] + [ours(f"socketserver {m}", "echo_server", m) for m in modes]
                cs += [python("Python ThreadingTCPServer", "framed", "threading"),
                       python("Python ForkingTCPServer", "framed", "forking")]
                got = compare(title, cs, lambda c: loadgen(c.port, "framed", conns, size, d),
                              rounds, "plain std::net")
                rows += got
                for row in got:
                    chart.setdefault(size, {}).setdefault(row["contestant"], []).append(
                        (conns, row["rps"]))

    if want("resp"):
        for pipeline, n in ((1, 20000 if a.quick else 50000), (16, 200000 if a.quick else 300000)):
            cs = [redis_server] + [ours(f"socketserver {m}", "resp_kv", m) for m in resp_modes]
            cs += [python("Python ThreadingTCPServer", "resp", "threading"),
                   python("Python ForkingTCPServer", "resp", "forking")]
            rows += compare(f"RESP redis-benchmark -c 50 -P {pipeline} (PING/SET/GET)", cs,
                            lambda c: redis_bench(c.port, pipeline, n), rounds, "redis-server")

    if want("http"):
        cs = [nginx] + [ours(f"socketserver {m}", "http_hello", m) for m in http_modes]
        cs += [python("Python ThreadingHTTPServer", "http", "threading")]
        rows += compare("HTTP wrk -t2 -c50", cs, lambda c: wrk(c.port, max(d, 2)), rounds, "nginx (1 worker)")

    if want("churn"):
        cs = [plain("framed")] + [ours(f"socketserver {m}", "echo_server", m) for m in modes]
        cs += [python("Python ThreadingTCPServer", "framed", "threading"),
               python("Python ForkingTCPServer", "framed", "forking")]
        rows += compare("connection churn (framed 64 B, new connection per request, 10 clients)", cs,
                        lambda c: loadgen(c.port, "framed", 10, 64, d, "--churn"), rounds, "plain std::net")

    if want("udp"):
        cs = [plain("udp")] + [ours(f"socketserver {m}", "echo_server", m, "--proto", "udp") for m in modes]
        cs += [python("Python UDPServer", "udp", "single"),
               python("Python ThreadingUDPServer", "udp", "threading")]
        rows += compare("UDP echo 64 B, 10 clients", cs,
                        lambda c: loadgen(c.port, "udp", 10, 64, d), rounds, "plain std::net")

    idle = None
    if want("idle"):
        idle = idle_test(a.idle, rounds, max(d, 3))

    meta["load_end"] = loadavg()
    meta["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    with open(os.path.join(ROOT, "bench", "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "idle": idle}, f, indent=1)
    chart_file = draw_chart(chart)
    write_report(a.out, meta, rows, idle, chart_file)
    log(f"wrote {a.out}")


def idle_test(idle, rounds, duration):
    """50 active clients with and without `idle` silent connections, threading mode."""
    log(f"== {idle} idle connections, threading mode")
    c = ours("socketserver threading", "echo_server", "threading")()
    base, loaded = [], []
    try:
        for r in range(rounds):
            base.append(loadgen(c.port, "framed", 50, 64, duration))
            loaded.append(loadgen(c.port, "framed", 50, 64, duration, "--idle", str(idle),
                                  "--server-pid", str(c.pid), "--timeout", "60"))
            log(f"   round {r + 1}: p99 {base[-1]['p99_us']} µs alone, {loaded[-1]['p99_us']} µs with idle")
    finally:
        c.stop()
    med = lambda xs, k: statistics.median(x[k] for x in xs)
    per_conn = statistics.median((x["rss_after_kib"] - x["rss_before_kib"]) / idle for x in loaded)
    return {"idle": idle, "p99_alone_us": med(base, "p99_us"), "p99_idle_us": med(loaded, "p99_us"),
            "rps_alone": med(base, "rps"), "rps_idle": med(loaded, "rps"),
            "rss_per_idle_kib": per_conn, "rss_after_kib": med(loaded, "rss_after_kib")}


def draw_chart(chart):
    if not chart:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no chart")
        return None
    fig, axes = plt.subplots(1, len(chart), figsize=(6 * len(chart), 4.5))
    axes = axes if len(chart) > 1 else [axes]
    for ax, (size, series) in zip(axes, sorted(chart.items())):
        for name, points in series.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xticks([x for x, _ in next(iter(series.values()))])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_title(f"framed echo, {size} B payload")
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel("requests/s (median)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(ROOT, "bench", "throughput.png")
    fig.savefig(path, dpi=100)
    return "bench/throughput.png"


NOTES = """
## Reading the numbers

- The load generator and the server share the two cores, and every client is a blocking
  ping-pong loop: at one connection each request costs two loopback round trips of syscalls and
  wake-ups on both sides, which hides most of any server's own cost. That is why the Python
  baselines come close at one connection, and why the "10× Python" goal is out of reach for
  every contestant here, the no-framework `std::net` server included; the gap opens with
  concurrency (Python's GIL), up to 3–5× against `ThreadingTCPServer`.
- `single` serves one connection at a time by design, so with many clients it runs at the
  one-connection rate. `threading` on UDP starts a thread per datagram (as Python's
  `ThreadingUDPServer` does); use `single` or `pool` for datagrams.
- At 200 connections `threading` pays for thread scheduling across 200 runnable threads; `pool`
  (sized to the connections) and the plain server fare better. Single-connection runs vary by
  ±20 % between rounds on this shared machine: compare the per-round columns before trusting a
  gap of that size.
- `process` starts a child per request by re-executing the program (no `fork()`): a connection
  for TCP, a datagram for UDP. On persistent connections that is paid once per client; on churn
  and UDP it is paid for every request, as Python's `ForkingTCPServer` pays a `fork()` — its
  baseline. `prefork` here is two worker processes (one per core), each with a thread per
  connection (the examples' `--mode prefork`), so on UDP it starts a thread per datagram, like
  `threading`. `resp_kv` offers neither: its store lives in one process's memory.
"""


def fmt(x, digits=0):
    return "—" if x is None else f"{x:,.{digits}f}"


def write_report(path, meta, rows, idle, chart_file):
    lines = ["# Benchmarks", "",
             f"Generated by `{meta['command']}` from {meta['started']} to {meta['finished']}, on "
             f"{meta['cores']} cores (Linux {meta['kernel']}); load average "
             f"{meta['load_start']} at the start, {meta['load_end']} at the end. The machine is "
             "shared: other work ran alongside, so absolute numbers drift; every ratio compares "
             "contestants measured in this same run, alternating, median of "
             f"{meta['rounds']} rounds of {meta['duration']} s. Client and server share the cores.", ""]
    if chart_file:
        lines += [f"![throughput against connection count]({chart_file})", ""]
    lines += ["| workload | contestant | req/s (median) | ratio | against | p99 µs | rounds |",
              "|---|---|---:|---:|---|---:|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['contestant']} | {fmt(r['rps'])} | "
                     f"{fmt(r['ratio'], 2)} | {r['baseline']} | {fmt(r['p99_us'], 0)} | "
                     f"{', '.join(fmt(x) for x in r['rounds'])} |")
    if idle:
        lines += ["", f"## {idle['idle']:,} idle connections (threading mode, framed echo, 50 active clients)", "",
                  "| | alone | with idle connections | ratio |", "|---|---:|---:|---:|",
                  f"| active clients' p99 (µs) | {fmt(idle['p99_alone_us'])} | {fmt(idle['p99_idle_us'])} | "
                  f"{fmt(idle['p99_idle_us'] / idle['p99_alone_us'], 2)} |",
                  f"| active clients' req/s | {fmt(idle['rps_alone'])} | {fmt(idle['rps_idle'])} | "
                  f"{fmt(idle['rps_idle'] / idle['rps_alone'], 2)} |",
                  "", f"Server RSS with them: {fmt(idle['rss_after_kib'] / 1024, 1)} MiB, "
                  f"**{fmt(idle['rss_per_idle_kib'], 1)} KiB per idle connection** (a thread each)."]
    lines += NOTES.splitlines()
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- {f}" for f in failures]
    lines += ["", "## Targets", ""] + targets(rows, idle)
    lines += ["", "Reproduce: `bench/compare.sh` (installs redis-server, redis-tools, wrk, nginx and "
              "matplotlib when missing; `--quick` for a short run, `--only resp,http` for a subset). "
              "Raw numbers: `bench/results.json`.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def targets(rows, idle):
    def best(workload_prefix, exclude=("Python", "plain", "redis", "nginx")):
        cands = [r for r in rows if r["workload"].startswith(workload_prefix)
                 and not r["contestant"].startswith(exclude)]
        return max(cands, key=lambda r: r["rps"]) if cands else None

    def rps_of(workload, contestant):
        return next((r["rps"] for r in rows if r["workload"] == workload and r["contestant"] == contestant), None)

    out = []

    def check(label, ratio, goal, detail):
        if ratio is None:
            out.append(f"- {label}: not measured")
        else:
            out.append(f"- {label}: **{ratio:.2f}×** (goal ≥ {goal}×) — {'met' if ratio >= goal else 'MISSED'}; {detail}")

    for p in (1, 16):
        b = best(f"RESP redis-benchmark -c 50 -P {p} ")
        check(f"RESP -P {p} vs redis-server", b and b["ratio"], 0.9 if p == 1 else 0.5,
              b and f"best mode: {b['contestant']}")
    b = best("HTTP")
    check("HTTP vs nginx (1 worker)", b and b["ratio"], 0.7, b and f"best mode: {b['contestant']}")
    echo = sorted({r["workload"] for r in rows if r["workload"].startswith("framed echo")})
    worst_plain, worst_py = None, None
    for w in echo:
        b = best(w)
        py = max((r["rps"] for r in rows if r["workload"] == w and r["contestant"].startswith("Python")), default=None)
        if b:
            worst_plain = min(worst_plain or (9e9, ""), (b["ratio"], w))
            if py:
                worst_py = min(worst_py or (9e9, ""), (b["rps"] / py, w))
    check("framed echo vs plain std::net (worst point, best mode)", worst_plain and worst_plain[0], 0.9,
          worst_plain and f"at {worst_plain[1]}")
    check("framed echo vs the best Python socketserver (worst point)", worst_py and worst_py[0], 10,
          worst_py and f"at {worst_py[1]}")
    churn = next((r for r in rows if r["workload"].startswith("connection churn")
                  and r["contestant"] == "socketserver process"), None)
    forking = churn and rps_of(churn["workload"], "Python ForkingTCPServer")
    if churn and forking:
        out.append(f"- connection churn, `process` vs Python ForkingTCPServer (a process per "
                   f"connection both): **{churn['rps'] / forking:.2f}×** "
                   f"({fmt(churn['rps'])} vs {fmt(forking)} req/s)")
    if idle:
        ratio = idle["p99_idle_us"] / idle["p99_alone_us"]
        out.append(f"- {idle['idle']:,} idle connections: active p99 {ratio:.2f}× of alone (goal ≤ 2×) — "
                   f"{'met' if ratio <= 2 else 'MISSED'}")
    return out


if __name__ == "__main__":
    main()
