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
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import tls_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "target", "release", "examples")
# The same examples built without the `tls` feature (bench/compare.sh builds them into a target
# directory of their own): the plaintext figures with the feature compiled in and without.
EXAMPLES_NO_TLS = os.path.join(ROOT, "target", "bench-notls", "release", "examples")
# loadgen is a binary of the socketserver-bench package (bench/Cargo.toml), not an example.
LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
PY = [sys.executable, os.path.join(ROOT, "bench", "py_servers.py")]
STARTUP = 15  # seconds a contestant may take to listen
RUN_TIMEOUT = 120  # seconds any one client run may take before it is killed
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
        # What the server says on stderr is kept, for the report when a run against it fails.
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL,
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

    def why(self):
        """For a failed run: whether the server is still running, and its last stderr lines."""
        status = self.proc.poll()
        state = "running" if status is None else f"exited with {status}"
        self.stderr.seek(0)
        tail = self.stderr.read()[-600:].decode(errors="replace").strip().replace("\n", " | ")
        return f"[server {state}; stderr: {tail or 'empty'}]"

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


class Scraped(Contestant):
    """A contestant started with `--metrics 127.0.0.1:0` (the library's `metrics` feature), its
    admin listener scraped once a second while it runs, as Prometheus would: what metrics on
    costs the server, counted in its CPU."""

    def __init__(self, name, argv):
        import threading
        super().__init__(name, argv + ["--metrics", "127.0.0.1:0"])
        # Printed right after `listening on` (which may have brought it into the buffer already).
        line = self.proc.stdout.readline().decode().strip()
        m = re.match(r"metrics on (127\.0\.0\.1):(\d+)$", line)
        if not m:
            self.stop()
            raise RuntimeError(f"{name}: expected 'metrics on', got {line!r}")
        self.metrics = (m.group(1), int(m.group(2)))
        self.stopping = threading.Event()
        self.scrapes = 0
        self.scraper = threading.Thread(target=self._scrape, daemon=True)
        self.scraper.start()

    def _scrape(self):
        while not self.stopping.is_set():
            try:
                with socket.create_connection(self.metrics, timeout=5) as s:
                    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                    while s.recv(65536):
                        pass
                self.scrapes += 1
            except OSError:
                pass
            self.stopping.wait(1.0)

    def stop(self):
        if hasattr(self, "stopping"):
            self.stopping.set()
            self.scraper.join(10)
        super().stop()


def scraped(name, example, *args):
    """`example --metrics ...` (see `Scraped`), with the arguments `ours`/`message` would give."""
    return lambda: Scraped(name, [os.path.join(EXAMPLES, example), "--addr", "127.0.0.1:0", *args])


# A pool worker serves one connection for as long as it lasts, so for connection workloads the
# pool is sized above the most concurrent clients (200); with fewer workers the extra clients
# wait in the queue and a client such as redis-benchmark, which needs all 50, stalls.
POOL_WORKERS = "256"
# `process` holds a child per connection for as long as it lasts, and stops accepting at
# `--max-children` (default 40, as in Python): above the most concurrent clients, for the same
# reason. Python's ForkingTCPServer runs without its cap here too (bench/py_servers.py).
MAX_CHILDREN = "256"


def ours(name, example, mode, *extra, bin_dir=EXAMPLES):
    if mode == "pool" and "udp" not in extra:
        extra = ("--workers", POOL_WORKERS) + extra
    if mode == "process":
        extra = ("--max-children", MAX_CHILDREN) + extra
    return lambda: Contestant(name, [os.path.join(bin_dir, example), "--addr", "127.0.0.1:0",
                                     "--mode", mode, *extra])


# In message mode (`--api message`, issue 12) a pool worker runs one message's handler, not a
# connection: a few per core, whatever the connection count.
MESSAGE_WORKERS = "4"
# Prefork's workers in message mode: one event loop each, one per core (nginx's layout).
PREFORK_WORKERS = "2"
TOKIO_ECHO = os.path.join(ROOT, "target", "release", "tokio_echo")


def message(name, example, mode, *extra, bin_dir=EXAMPLES):
    """`example --api message` in `mode`: the readiness-driven message mode."""
    if mode == "pool":
        extra = ("--workers", MESSAGE_WORKERS) + extra
    if mode == "prefork":
        extra = ("--workers", PREFORK_WORKERS) + extra
    return lambda: Contestant(name, [os.path.join(bin_dir, example), "--addr", "127.0.0.1:0",
                                     "--api", "message", "--mode", mode, *extra])


def tls_args(certs):
    """The examples' options for TLS with the shared certificate."""
    return ("--tls-cert", certs["cert"], "--tls-key", certs["key"])


def tokio_echo():
    return Contestant("tokio (multi-thread runtime)", [TOKIO_ECHO, "--addr", "127.0.0.1:0"])


def python(name, proto, mode):
    return lambda: Contestant(name, PY + ["--addr", "127.0.0.1:0", "--proto", proto, "--mode", mode])


def plain(proto):
    return lambda: Contestant("plain std::net", [os.path.join(EXAMPLES, "std_echo"),
                                                 "--addr", "127.0.0.1:0", "--proto", proto])


def redis_server(certs=None):
    """redis-server; with `certs`, on a TLS port only, with that certificate."""
    port = free_port()
    listen = tls_setup.redis_tls_args(port, certs) if certs else ["--port", str(port)]
    return Contestant("redis-server" + (" (TLS)" if certs else ""),
                      ["redis-server", *listen, "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no", "--daemonize", "no",
                       "--protected-mode", "no", "--loglevel", "warning"],
                      listens_line=False, port=port)


def nginx(certs=None, workers=1):
    """nginx with `workers` workers, the hello response; with `certs`, over TLS 1.3 with that
    certificate."""
    port = free_port()
    prefix = tempfile.mkdtemp(prefix="bench-nginx-")
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(tls_setup.nginx_conf(prefix, port, certs, tls=certs is not None, workers=workers))
    name = "nginx (1 worker)" if workers == 1 else f"nginx ({workers} workers)"
    return Contestant(name + (" (TLS 1.3)" if certs else ""),
                      ["nginx", "-p", prefix, "-c", conf], listens_line=False, port=port)


# `--api message --loops 2`: two event loops in one process, handlers on the loops.
MESSAGE_LOOPS = ("--loops", "2")


def run_client(argv, allow_status=(0,)):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if out.returncode not in allow_status:
        raise RuntimeError(f"{argv[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return out.stdout


def loadgen(port, workload, conns, size, duration, *extra, allow_failed=False):
    """One loadgen run's JSON line. With `allow_failed`, a run in which some clients got no
    reply (exit status 1: a starved server) still returns its line, with `failed_clients`."""
    line = run_client([LOADGEN, "--addr", f"127.0.0.1:{port}",
                       "--workload", workload, "--conns", str(conns), "--size", str(size),
                       "--requests", "100000000", "--duration", str(duration), "--json", *extra],
                      allow_status=(0, 1) if allow_failed else (0,))
    if not line.strip():
        raise RuntimeError("loadgen printed no result")
    result = json.loads(line.strip().splitlines()[-1])
    result["requests"] = result["ok"]
    return result


def redis_bench(port, pipeline, requests, certs=None):
    """redis-benchmark's PING (inline and bulk), SET and GET, `requests` each; over TLS with
    `certs` (trusting their CA)."""
    tls = ["--tls", "--cacert", certs["ca"]] if certs else []
    out = run_client(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), *tls, "-c", "50",
                      "-n", str(requests), "-P", str(pipeline), "-t", "ping,set,get", "--csv"])
    rates = {}
    for row in out.splitlines():
        cells = [c.strip('"') for c in row.split(",")]
        if len(cells) > 1 and cells[0] != "test":
            rates[cells[0]] = float(cells[1])
    if not rates:
        raise RuntimeError(f"redis-benchmark printed no results: {out[-300:]}")
    return {"rps": statistics.mean(rates.values()), "tests": rates,
            "requests": requests * len(rates)}


def wrk(port, duration, conns=50, scheme="http", close=False, timeout=None):
    """wrk's GET / from 2 threads over `conns` connections; with `close`, each request says
    `Connection: close`, so each is a new connection (and over https a new handshake). `timeout`
    (s): how long wrk waits for a response before it counts a timeout (its default: 2)."""
    header = ["-H", "Connection: close"] if close else []
    if timeout:
        header += ["--timeout", f"{timeout}s"]
    out = run_client(["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency", *header,
                      f"{scheme}://127.0.0.1:{port}/"])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1, "ms": 1000, "s": 1_000_000}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        raise RuntimeError(f"wrk reported errors: {errors.group(0)}")
    return {"rps": rps, "p99_us": float(p99.group(1)) * scale[p99.group(2)] if p99 else None,
            "requests": requests}


failures = []


def cpu_ticks(pid):
    """User + system CPU of `pid` and its live descendants (clock ticks, /proc/PID/stat), plus
    what the children `pid` reaped used: a server's whole CPU however its mode spreads it."""
    total = 0
    for i, p in enumerate(proc_tree(pid)):
        try:
            with open(f"/proc/{p}/stat") as f:
                data = f.read()
        except OSError:
            continue
        # After the command name (which may hold spaces): utime=11 stime=12 cutime=13 cstime=14.
        fields = data[data.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
        if i == 0:
            total += int(fields[13]) + int(fields[14])
    return total


def children_cpu():
    """User + system seconds of the client programs this process ran and reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(c, measure):
    """`measure(c)`, with the server's CPU time per request it reports (`cpu_us`): the server's
    user + system time over the run, divided by the requests the client counted; and the
    client's own (`client_cpu_us`: the load generator's, which shares the two cores, to tell
    which side a run was bound by)."""
    before, client_before = cpu_ticks(c.pid), children_cpu()
    result = measure(c)
    used, client_used = cpu_ticks(c.pid) - before, children_cpu() - client_before
    if result.get("requests"):
        result["cpu_us"] = used / CLK_TCK * 1e6 / result["requests"]
        result["client_cpu_us"] = client_used * 1e6 / result["requests"]
    return result


def compare(title, contestants, measure, rounds, baseline, probe=None):
    """Runs `measure(contestant)` on each contestant per round, alternating; returns result rows.
    `probe(contestant)`, if given, runs once on each after it started (what it negotiates, say):
    its answer goes into the contestant's row."""
    log(f"== {title}")
    started, samples, probes = [], {}, {}
    try:
        for make in contestants:
            try:
                c = make()
            except (RuntimeError, OSError) as e:
                # One contestant that cannot start (a build without it, say) is reported.
                log(f"   FAILED to start: {e}")
                failures.append(f"{title}: {str(e)[:200]}")
                continue
            started.append(c)
            samples[c.name] = []
            if probe:
                try:
                    probes[c.name] = probe(c)
                except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as e:
                    probes[c.name] = {"error": str(e)[:200]}
                log(f"   {c.name}: {probes[c.name]}")
        for r in range(rounds):
            for c in started:
                try:
                    result = measured(c, measure)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError, AttributeError) as e:
                    # One failed run is reported, not fatal: the other contestants still count.
                    log(f"   round {r + 1} {c.name}: FAILED: {e} {c.why()}")
                    failures.append(f"{title}, {c.name}, round {r + 1}: {str(e)[:200]} {c.why()}")
                    continue
                samples[c.name].append(result)
                cpu = (f", {result['cpu_us']:.1f} µs CPU/request (client "
                       f"{result['client_cpu_us']:.1f})" if "cpu_us" in result else "")
                log(f"   round {r + 1} {c.name}: {result['rps']:.0f} req/s{cpu}")
    finally:
        for c in started:
            c.stop()

    def median_of(results, key):
        values = [s[key] for s in results if s.get(key) is not None]
        return statistics.median(values) if values else None

    base = median_of(samples.get(baseline, []), "rps")
    base_cpu = median_of(samples.get(baseline, []), "cpu_us")

    def per_round(results, key):
        """Each round's figure over the baseline's in the same round (measured a few seconds
        apart); None unless every round of both counted."""
        mine, theirs = [s.get(key) for s in results], [s.get(key) for s in samples.get(baseline, [])]
        if len(mine) != rounds or len(theirs) != rounds or None in mine + theirs or 0 in theirs:
            return None
        return [m / t for m, t in zip(mine, theirs)]

    def paired(results, key):
        """The median of the per-round ratios: steadier than a ratio of medians when the
        machine's load drifts between rounds."""
        ratios = per_round(results, key)
        return statistics.median(ratios) if ratios else None

    rows = []
    for name, results in samples.items():
        if not results:
            continue
        rps = median_of(results, "rps")
        cpu = median_of(results, "cpu_us")
        row = {"workload": title, "contestant": name, "rps": rps,
               "p99_us": median_of(results, "p99_us"),
               "ratio": rps / base if base else None, "baseline": baseline,
               "rounds": [s["rps"] for s in results],
               "cpu_us": cpu, "cpu_ratio": cpu / base_cpu if cpu and base_cpu else None,
               "cpu_rounds": [s.get("cpu_us") for s in results],
               "client_cpu_us": median_of(results, "client_cpu_us"),
               "paired_ratio": paired(results, "rps"), "paired_cpu_ratio": paired(results, "cpu_us"),
               "ratio_rounds": per_round(results, "rps"),
               "cpu_ratio_rounds": per_round(results, "cpu_us")}
        if name in probes:
            row["probe"] = probes[name]
        rows.append(row)
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
    p.add_argument("--only", default="",
                   help="comma-separated: echo,resp,http,metrics,churn,udp,idle,slowloris,echo1k,"
                        "resp-tls,http-tls,handshakes,plain-tls-build; the report keeps the "
                        "previous run's rows of the workloads not run")
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--idle-max", type=int, default=20000,
                   help="the larger idle-connection count (message mode only)")
    p.add_argument("--slowloris", type=int, default=1000)
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
                cs += [message("socketserver message loops 2", "echo_server", "single", *MESSAGE_LOOPS),
                       tokio_echo]
                cs += [python("Python ThreadingTCPServer", "framed", "threading"),
                       python("Python ForkingTCPServer", "framed", "forking")]
                got = compare(title, cs, lambda c: loadgen(c.port, "framed", conns, size, d),
                              rounds, "plain std::net")
                rows += got
                for row in got:
                    chart.setdefault(size, {}).setdefault(row["contestant"], []).append(
                        (conns, row["rps"]))

    if want("echo1k"):
        # Issue 12: a thread per connection against one readiness loop, and against tokio.
        cs = [ours("socketserver threading", "echo_server", "threading"),
              message("socketserver message single", "echo_server", "single"),
              message("socketserver message pool", "echo_server", "pool"),
              message("socketserver message loops 2", "echo_server", "single", *MESSAGE_LOOPS),
              tokio_echo]
        # 4 client threads of 250 connections each (loadgen --per-thread): 1,000 client threads
        # would spend the two cores on the client's own scheduling, whichever server it drives.
        rows += compare(ECHO1K, cs, lambda c: loadgen(c.port, "framed", 1000, 64, d, "--timeout", "30",
                                                      "--per-thread", "250"),
                        rounds, "socketserver threading")
        # The same with one client thread per connection (loadgen's default).
        cs = [ours("socketserver threading", "echo_server", "threading"),
              message("socketserver message loops 2", "echo_server", "single", *MESSAGE_LOOPS),
              tokio_echo]
        rows += compare(ECHO1K_THREADS, cs, lambda c: loadgen(c.port, "framed", 1000, 64, d, "--timeout", "30"),
                        rounds, "socketserver threading")

    if want("resp"):
        for pipeline, n in ((1, 20000 if a.quick else 50000), (16, 200000 if a.quick else 300000)):
            cs = [redis_server] + [ours(f"socketserver {m}", "resp_kv", m) for m in resp_modes]
            cs += [message("socketserver message single", "resp_kv", "single"),
                   message("socketserver message pool", "resp_kv", "pool"),
                   message("socketserver message loops 2", "resp_kv", "single", *MESSAGE_LOOPS)]
            cs += [python("Python ThreadingTCPServer", "resp", "threading"),
                   python("Python ForkingTCPServer", "resp", "forking")]
            rows += compare(f"RESP redis-benchmark -c 50 -P {pipeline} (PING/SET/GET)", cs,
                            lambda c: redis_bench(c.port, pipeline, n), rounds, "redis-server")

    if want("http"):
        cs = [nginx] + [ours(f"socketserver {m}", "http_hello", m) for m in http_modes]
        cs += [message("socketserver message single", "http_hello", "single"),
               message("socketserver message loops 2", "http_hello", "single", *MESSAGE_LOOPS),
               lambda: nginx(workers=2), python("Python ThreadingHTTPServer", "http", "threading")]
        rows += compare("HTTP wrk -t2 -c50", cs, lambda c: wrk(c.port, max(d, 2)), rounds, "nginx (1 worker)")
        # 1,000 connections: a pool sized for 200 would leave most of them waiting, so threading
        # stands for the stream API.
        cs = [nginx, ours("socketserver threading", "http_hello", "threading"),
              message("socketserver message single", "http_hello", "single"),
              message("socketserver message loops 2", "http_hello", "single", *MESSAGE_LOOPS),
              lambda: nginx(workers=2)]
        rows += compare("HTTP wrk -t2 -c1000", cs, lambda c: wrk(c.port, max(d, 2), 1000), rounds,
                        "nginx (1 worker)")

    if want("metrics"):
        # The counters are always on; `--metrics` adds the admin listener, scraped once a second.
        n = 20000 if a.quick else 50000
        cs = [message("socketserver message single", "resp_kv", "single"),
              scraped("socketserver message single, metrics on", "resp_kv", "--api", "message",
                      "--mode", "single")]
        rows += compare(METRICS_RESP, cs, lambda c: redis_bench(c.port, 1, n), rounds,
                        "socketserver message single")
        cs = [ours("socketserver threading", "http_hello", "threading"),
              scraped("socketserver threading, metrics on", "http_hello", "--mode", "threading"),
              message("socketserver message single", "http_hello", "single"),
              scraped("socketserver message single, metrics on", "http_hello", "--api", "message",
                      "--mode", "single")]
        rows += compare(METRICS_HTTP, cs, lambda c: wrk(c.port, max(d, 2)), rounds,
                        "socketserver threading")

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

    tls = None
    if any(want(w) for w in TLS_WORKLOADS):
        certs = tls_setup.make_certificates(tempfile.mkdtemp(prefix="bench-tls-"))
        tls = {"certificate": certs["description"], "run": meta["started"]}
        rows += tls_workloads(want, certs, rounds, d, a.quick)

    idle = slow = None
    if want("idle"):
        idle = idle_test(a.idle, a.idle_max, rounds, max(d, 3))
    if want("slowloris"):
        slow = slowloris_test(a.slowloris, rounds, max(d, 3))

    meta["load_end"] = loadavg()
    meta["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
    for row in rows + [x for x in (idle, slow) if x]:
        row["run"] = meta["started"]
    results = os.path.join(ROOT, "bench", "results.json")
    runs, rows, idle, slow, tls = merge_previous(results, only, meta, rows, idle, slow, tls)
    with open(results, "w") as f:
        json.dump({"runs": runs, "rows": rows, "idle": idle, "slowloris": slow, "tls": tls}, f,
                  indent=1)
    chart_file = draw_chart(chart) if chart else previous_chart(rows)
    write_report(a.out, runs, rows, idle, slow, chart_file, tls)
    log(f"wrote {a.out}")


ECHO1K = "echo1k: framed echo 64 B, 1000 conns (4 client threads)"
ECHO1K_THREADS = "echo1k: framed echo 64 B, 1000 conns (a client thread per connection)"
METRICS_RESP = "metrics off/on: RESP redis-benchmark -c 50 -P 1 (PING/SET/GET), scraped 1/s"
METRICS_HTTP = "metrics off/on: HTTP wrk -t2 -c50, scraped 1/s"

# The TLS workloads (`--only` names), measured with the examples built with `--features tls`.
TLS_WORKLOADS = ("resp-tls", "http-tls", "handshakes", "plain-tls-build")
TLS_RESP = "TLS: RESP redis-benchmark --tls -c 50 -P {} (PING/SET/GET)"
TLS_HTTP = "TLS: HTTPS wrk -t2 -c{}"
TLS_CLOSE = "TLS: new handshake per request, HTTPS wrk -t2 -c50 -H 'Connection: close'"
TLS_FULL = "TLS: full handshakes, openssl s_time -new, 2 clients"
PLAIN_BUILD = "plaintext, built with and without the tls feature: {}, {}"
HTTP_GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
RESP_PING = b"*1\r\n$4\r\nPING\r\n"


def tls_probe(certs, request, reconnects=False):
    """What a TLS contestant negotiates with OpenSSL's client defaults and whether it resumes a
    session; with `reconnects`, also how many connections the server accepted during a short
    `wrk -H 'Connection: close'` run against the requests wrk made (one each, if wrk really
    reconnects), counted by `strace -c` on the server's threads."""
    def probe(c):
        reused, note = tls_setup.resumes(c.port, certs, request)
        out = {"negotiated": tls_setup.negotiated(c.port, certs), "resumes": reused,
               "resumption": note}
        if reconnects:
            out.update(accept_count(c, lambda: wrk(c.port, 1, 10, "https", close=True)))
        return out
    return probe


def accept_count(c, run):
    """Connections the server accepted (accept4 calls that returned one, over its threads) while
    `run()` ran, and the requests `run()` reported; needs strace (skipped without it)."""
    if not shutil.which("strace"):
        return {"accepted": None, "check": "strace not installed"}
    with tempfile.NamedTemporaryFile(mode="r", suffix=".strace") as out:
        tracer = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=accept,accept4", "-o", out.name,
                                   "-p", str(c.pid)], stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # attached to every thread
        try:
            result = run()
        finally:
            time.sleep(0.3)
            tracer.send_signal(signal.SIGINT)
            tracer.wait(10)
        accepted = 0
        for line in out.read().splitlines():
            cells = line.split()
            if cells and cells[-1] in ("accept", "accept4"):
                numbers = [int(x) for x in cells[3:-1]]  # calls [errors]
                accepted += numbers[0] - (numbers[1] if len(numbers) > 1 else 0)
    return {"accepted": accepted, "requests": result["requests"], "conns": 10}


def s_time(port, duration, clients=2):
    """`clients` parallel `openssl s_time -new`: each connects, makes a full handshake (no
    session offered), sends `GET / HTTP/1.0` and reads until the server closes, in a loop for
    `duration` s. The rate is the connections made over the wall time of the run."""
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", "-time", str(duration),
            "-www", "/"]
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(clients)]
    total = 0
    try:
        for p in procs:
            out, err = p.communicate(timeout=RUN_TIMEOUT)
            m = re.search(r"(\d+) connections in \d+ real seconds", out)
            if p.returncode != 0 or not m:
                raise RuntimeError(f"s_time failed ({p.returncode}): {(out + err).strip()[-300:]}")
            total += int(m.group(1))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return {"rps": total / (time.monotonic() - t0), "requests": total}


def tls_workloads(want, certs, rounds, d, quick):
    """The TLS comparisons: our examples with `--tls-cert/--tls-key` (message API first, the
    stream API's threading and pool modes for context) against redis-server and nginx with the
    same certificate, and the plaintext workloads with the feature compiled in and without."""
    tls = tls_args(certs)
    redis = "redis-server (TLS)"
    rows = []

    def section(got):
        for r in got:
            r["section"] = "tls"
        return got

    if want("resp-tls"):
        for pipeline, n in ((1, 20000 if quick else 50000), (16, 200000 if quick else 300000)):
            cs = [lambda: redis_server(certs),
                  message("socketserver message single", "resp_kv", "single", *tls),
                  ours("socketserver threading", "resp_kv", "threading", *tls),
                  ours("socketserver pool", "resp_kv", "pool", *tls)]
            rows += section(compare(TLS_RESP.format(pipeline), cs,
                                    lambda c: redis_bench(c.port, pipeline, n, certs), rounds, redis,
                                    tls_probe(certs, RESP_PING)))
    web = "nginx (1 worker) (TLS 1.3)"
    if want("http-tls"):
        for conns in (50, 1000):
            cs = [lambda: nginx(certs),
                  message("socketserver message single", "http_hello", "single", *tls),
                  ours("socketserver threading", "http_hello", "threading", *tls)]
            if conns == 50:
                cs.append(ours("socketserver pool", "http_hello", "pool", *tls))
            # 1,000 connections start with 1,000 handshakes at once, a second or two of the
            # server's CPU: the runs are longer, so that the keep-alive requests dominate, and
            # wrk waits for a response as long as the handshakes may take.
            duration, timeout = (max(d, 2), None) if conns == 50 else (max(d, 10), 10)
            rows += section(compare(TLS_HTTP.format(conns), cs,
                                    lambda c: wrk(c.port, duration, conns, "https", timeout=timeout),
                                    rounds, web, tls_probe(certs, HTTP_GET)))
    if want("handshakes"):
        cs = [lambda: nginx(certs),
              message("socketserver message single", "http_hello", "single", *tls),
              ours("socketserver threading", "http_hello", "threading", *tls),
              ours("socketserver pool", "http_hello", "pool", *tls)]
        rows += section(compare(TLS_CLOSE, cs,
                                lambda c: wrk(c.port, max(d, 2), 50, "https", close=True), rounds,
                                web, tls_probe(certs, HTTP_GET, reconnects=True)))
        cs = cs[:3]
        rows += section(compare(TLS_FULL, cs, lambda c: s_time(c.port, max(d, 2)), rounds, web))
    if want("plain-tls-build"):
        for mode, make in (("message single", message), ("threading", ours)):
            plainly = "single" if mode == "message single" else mode
            for label, example, measure in (
                    ("framed echo 64 B, 50 conns", "echo_server",
                     lambda c: loadgen(c.port, "framed", 50, 64, d)),
                    ("RESP redis-benchmark -c 50 -P 16", "resp_kv",
                     lambda c: redis_bench(c.port, 16, 200000 if quick else 300000)),
                    ("HTTP wrk -t2 -c50", "http_hello", lambda c: wrk(c.port, max(d, 2)))):
                without = f"socketserver {mode}, built without tls"
                cs = [make(without, example, plainly, bin_dir=EXAMPLES_NO_TLS),
                      make(f"socketserver {mode}, built with tls (unused)", example, plainly)]
                rows += section(compare(PLAIN_BUILD.format(label, mode), cs, measure, rounds,
                                        without))
    return rows


def merge_previous(path, only, meta, rows, idle, slow, tls):
    """With `--only`, what the previous results hold for the workloads not run this time is kept
    (rows whose workload title was not measured now, the idle, slowloris and TLS sections), each
    with the run it came from: the report then says which run measured which table."""
    runs = [meta]
    if not only or not os.path.exists(path):
        return runs, rows, idle, slow, tls
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError) as e:
        log(f"note: cannot read the previous {path} ({e}): the report has this run only")
        return runs, rows, idle, slow, tls
    old_runs = old.get("runs") or [old["meta"]]
    measured = {r["workload"] for r in rows}
    kept = [dict(r, run=r.get("run", old_runs[0]["started"])) for r in old.get("rows", [])
            if r["workload"] not in measured]
    if idle is None and old.get("idle", {}).get("rows"):
        idle = old["idle"]
    if slow is None and old.get("slowloris"):
        slow = old["slowloris"]
    if tls is None and old.get("tls"):
        tls = old["tls"]
    used = {r["run"] for r in kept} | {x.get("run") for x in (idle, slow, tls) if x}
    runs += [m for m in old_runs if m["started"] in used and m["started"] != meta["started"]]
    return runs, kept + rows, idle, slow, tls


def previous_chart(rows):
    """The chart of the framed echo rows, when they come from a previous run (`--only`)."""
    if os.path.exists(os.path.join(ROOT, "bench", "throughput.png")) and any(
            r["workload"].startswith("framed echo") for r in rows):
        return "bench/throughput.png"
    return None


def proc_tree(pid):
    """`pid` and its descendants (a prefork parent and its workers), from /proc."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        # Each thread lists the children it started: a child of any thread is the process's.
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
    return pids


def tree_status(pids):
    """Summed VmRSS (KiB), Threads and open descriptors of `pids`."""
    rss = threads = fds = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                text = f.read()
            rss += int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))
            threads += int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except (OSError, AttributeError):
            pass
    return {"rss_kib": rss, "threads": threads, "fds": fds}


# Source addresses for the idle connections: one address gives ~28k ephemeral ports, and the
# connections closed by one round wait in TIME_WAIT during the next.
IDLE_SOURCES = "127.0.0.2,127.0.0.3"
# For what loadgen cannot hold itself under the descriptor limit (20,000 idle connections with a
# hard limit of 20,000 per process): this process holds the rest, from another address.
HOLDER_SOURCE = "127.0.0.4"


def hold_idle(port, count, timeout=10):
    """`count` silent connections from HOLDER_SOURCE, opened one after another (bounded by the
    count and each connect's timeout); the caller closes them."""
    held = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT, as loadgen does
            s.bind((HOLDER_SOURCE, 0))
            s.settimeout(timeout)
            s.connect(("127.0.0.1", port))
            held.append(s)
    except OSError:
        for s in held:
            s.close()
        raise
    return held


def wait_fds(pids, at_least, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and tree_status(pids)["fds"] < at_least:
        time.sleep(0.05)


def fd_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def idle_test(idle, idle_max, rounds, duration):
    """50 active clients' p99 with and without `idle` silent connections, and the server's RSS
    and threads with them held: threading mode (a thread each) against the message mode, which
    waits on all of them in one loop. Then `idle_max` in the message mode: one process cannot
    hold more connections than its descriptor limit, so `single` holds what the limit allows and
    `prefork` (two workers, a loop each) the whole count."""
    limit = fd_limit()
    one_process = min(idle_max, limit - 150)  # its 50 active clients, listener, stdio, poller
    cases = [(ours("socketserver threading", "echo_server", "threading"), idle),
             (message("socketserver message single", "echo_server", "single"), idle),
             (message("socketserver message pool", "echo_server", "pool"), idle),
             (message("socketserver message single", "echo_server", "single"), one_process),
             (message(f"socketserver message prefork ({PREFORK_WORKERS} workers)", "echo_server",
                      "prefork"), idle_max)]
    out = []
    for make, count in cases:
        try:
            c = make()
        except (RuntimeError, OSError) as e:
            log(f"   FAILED to start: {e}")
            failures.append(f"{count:,} idle connections: {str(e)[:200]}")
            continue
        log(f"== {count:,} idle connections, {c.name}")
        # What loadgen cannot hold under its own descriptor limit, this process holds.
        extra = max(0, count - (limit - 500))
        base, loaded = [], []
        try:
            time.sleep(0.5)  # prefork: let the workers start
            pids = proc_tree(c.pid)
            # Memory a server has used stays with it (the allocator keeps it), so every round's
            # RSS with the idle connections is counted from the fresh server's, not from the
            # round's own start.
            fresh = tree_status(pids)
            for r in range(rounds):
                try:
                    alone = loadgen(c.port, "framed", 50, 64, duration)
                    start = tree_status(pids)
                    held = hold_idle(c.port, extra)
                    try:
                        wait_fds(pids, start["fds"] + extra, 60)
                        got = loadgen(c.port, "framed", 50, 64, duration, "--idle", str(count - extra),
                                      "--idle-from", IDLE_SOURCES, "--server-pid",
                                      ",".join(map(str, pids)), "--timeout", "60")
                    finally:
                        for s in held:
                            s.close()
                    got["start"] = start
                    base.append(alone)
                    loaded.append(got)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as e:
                    log(f"   round {r + 1}: FAILED: {e} {c.why()}")
                    failures.append(f"{count:,} idle connections, {c.name}, round {r + 1}: "
                                    f"{str(e)[:200]} {c.why()}")
                    continue
                log(f"   round {r + 1}: p99 {base[-1]['p99_us']} µs alone, {got['p99_us']} µs with idle; "
                    f"RSS {start['rss_kib']} -> {got['rss_after_kib']} KiB, "
                    f"threads {start['threads']} -> {got['threads_after']}")
        finally:
            c.stop()
        if not (base and loaded):
            continue
        med = lambda xs, f: statistics.median(f(x) for x in xs)
        out.append({"contestant": c.name, "idle": count, "held_by_bench": extra,
                    "p99_alone_us": med(base, lambda x: x["p99_us"]),
                    "p99_idle_us": med(loaded, lambda x: x["p99_us"]),
                    # Each round's with-idle p99 over its own alone p99, measured back to back:
                    # steadier than a ratio of medians when the machine's load drifts.
                    "p99_ratios": [g["p99_us"] / b["p99_us"] for b, g in zip(base, loaded)],
                    "rps_alone": med(base, lambda x: x["rps"]), "rps_idle": med(loaded, lambda x: x["rps"]),
                    "rss_per_idle_kib": med(loaded, lambda x: (x["rss_after_kib"] - fresh["rss_kib"]) / count),
                    "rss_fresh_kib": fresh["rss_kib"],
                    "rss_after_kib": med(loaded, lambda x: x["rss_after_kib"]),
                    "threads_before": med(loaded, lambda x: x["start"]["threads"]),
                    "threads_after": med(loaded, lambda x: x["threads_after"]),
                    "fds_after": med(loaded, lambda x: x["fds_after"]),
                    "processes": len(pids)})
    return {"rows": out, "fd_limit": limit, "rounds": rounds, "duration": duration}


def slowloris_test(conns, rounds, duration):
    """10 well-behaved framed-echo clients' p99 alone and with `conns` slowloris connections
    held (half a frame each, then a byte every 2 s, reconnecting when closed), in the message
    mode (single and pool) and, for contrast, the stream API's threading and pool modes."""
    cases = [message("socketserver message single", "echo_server", "single"),
             message("socketserver message pool", "echo_server", "pool"),
             # The default message deadline (30 s) outlasts a run: with 1 s the loop closes the
             # trickling connections during it, and they reconnect (an attack that keeps coming).
             message("socketserver message single, --message-timeout 1", "echo_server", "single",
                     "--message-timeout", "1"),
             ours("socketserver threading", "echo_server", "threading"),
             ours("socketserver pool", "echo_server", "pool")]
    out = []
    for make in cases:
        try:
            c = make()
        except (RuntimeError, OSError) as e:
            log(f"   FAILED to start: {e}")
            failures.append(f"slowloris: {str(e)[:200]}")
            continue
        log(f"== {conns:,} slowloris connections, {c.name}")
        base, attacked = [], []
        try:
            for r in range(rounds):
                try:
                    alone = loadgen(c.port, "framed", 10, 64, duration)
                    # A starved server leaves the good clients without replies: that is a result
                    # (failed_clients), not a failed run. 5 s is each one's patience.
                    attacked.append(loadgen(c.port, "framed", 10, 64, duration, "--slowloris", str(conns),
                                            "--slow-interval", "2", "--timeout", "5", allow_failed=True))
                    base.append(alone)
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                    log(f"   round {r + 1}: FAILED: {e} {c.why()}")
                    failures.append(f"slowloris, {c.name}, round {r + 1}: {str(e)[:200]} {c.why()}")
                    continue
                a = attacked[-1]
                log(f"   round {r + 1}: p99 {base[-1]['p99_us']} µs alone, {a['p99_us']} µs attacked "
                    f"({a['failed_clients']} of 10 clients starved, {a['ok']} replies; "
                    f"{a['slow_opened']} slow connections opened, {a['slow_closed_by_server']} closed by the server)")
        finally:
            c.stop()
        if not (base and attacked):
            continue
        med = lambda xs, k: statistics.median(x[k] for x in xs)
        served = [x for x in attacked if x["failed_clients"] < 10 and x["ok"] > 0]
        out.append({"contestant": c.name, "slowloris": conns,
                    "p99_alone_us": med(base, "p99_us"), "rps_alone": med(base, "rps"),
                    "p99_attack_us": med(served, "p99_us") if served else None,
                    "p99_ratios": [a["p99_us"] / b["p99_us"] for b, a in zip(base, attacked)
                                   if a["failed_clients"] < 10 and a["ok"] > 0],
                    "rps_attack": med(attacked, "rps"),
                    "starved_clients": med(attacked, "failed_clients"),
                    "slow_opened": med(attacked, "slow_opened"),
                    "slow_closed_by_server": med(attacked, "slow_closed_by_server")})
    return {"rows": out, "rounds": rounds, "duration": duration}


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
- The message mode (`--api message`, issue 12) waits on every connection in one readiness loop
  and calls the handler with whole messages: in `single` on the loop itself, in `pool` on
  4 handler workers (a worker per message, not per connection), in `prefork` a loop in each of
  2 worker processes. `tokio_echo` (bench/tokio_echo.rs) is tokio's multi-threaded runtime
  (a worker per core) with a task per connection, the same framed protocol. At 1,000
  connections (`echo1k`) loadgen runs 4 threads of 250 connections each in lockstep
  (`--per-thread 250`: a request on each, then each reply), so that the client's own thread
  scheduling does not take the cores: its latencies include waiting for the other 249 replies.
- The message `pool` hands every message to a worker and its reply back to the loop: two
  thread wake-ups per message, which for a handler as cheap as an echo costs more than the
  workers give on two cores (`single` runs it on the loop). The pool is for handlers that block
  or compute; the `idle` and `slowloris` rows show it holding connections as cheaply as `single`.
- The `metrics off/on` rows: the counters (`Stats`) are always on, so "metrics on" adds the
  admin listener (`--metrics`, the `metrics` feature) and a scraper reading `/metrics` once a
  second, whose cost lands in the server's CPU. What the counters themselves cost per message
  (two clock reads, a histogram bucket and a few per-thread relaxed atomics: about 130 ns here,
  where a clock read alone takes 65 ns) is well under 2 % of the 13 µs of server CPU a RESP
  request takes. `bench/scrape_time.py` times a scrape of a prefork server (4 workers) holding
  10,000 open connections: the parent answers from the workers' last reports, so the scrape
  does not grow with the connections (2026-12-08, load average 110 from other builds: median
  0.36 ms, max 1.2 ms with the message API; median 1.3 ms, max 7.6 ms with a thread per
  connection; an earlier run saw one 252 ms outlier in 50 under load; the target is 50 ms).
- p99 figures move by 2× between rounds on this machine when other builds run (load averages
  above are from /proc/loadavg at the start and end): read the p99 ratios with the per-round
  logs of `bench/compare.sh`, and the RSS and thread counts, which do not move, as the firm part.
"""


def fmt(x, digits=0):
    return "—" if x is None else f"{x:,.{digits}f}"


def p99_ratio(x, key_with, key_alone):
    """The median of the per-round paired ratios where recorded, else the ratio of medians."""
    if x.get("p99_ratios"):
        return statistics.median(x["p99_ratios"])
    return x[key_with] / x[key_alone] if x.get(key_with) else None


def describe_run(meta):
    return (f"`{meta['command']}` from {meta['started']} to {meta['finished']}, on "
            f"{meta['cores']} cores (Linux {meta['kernel']}); load average "
            f"{meta['load_start']} at the start, {meta['load_end']} at the end; median of "
            f"{meta['rounds']} rounds of {meta['duration']} s")


def write_report(path, runs, rows, idle, slow, chart_file, tls=None):
    lines = ["# Benchmarks", ""]
    shared = ("The machine is shared: other work ran alongside, so absolute numbers drift; every "
              "ratio compares contestants measured in the same run, alternating. Client and server "
              "share the cores.")
    if len(runs) == 1:
        lines += [f"Generated by {describe_run(runs[0])}. {shared}", ""]
    else:
        lines += ["Generated by bench/compare.sh in several runs (`--only` regenerates some "
                  "workloads and keeps the others' rows); each table says which run measured it. "
                  + shared, ""]
        lines += [f"- run {i + 1}: {describe_run(m)}" for i, m in enumerate(runs)] + [""]
    number = {m["started"]: i + 1 for i, m in enumerate(runs)}
    if chart_file:
        lines += [f"![throughput against connection count]({chart_file})", ""]
    for m in runs:
        mine = [r for r in rows if r.get("run", runs[0]["started"]) == m["started"]
                and r.get("section") != "tls"]
        if not mine:
            continue
        if len(runs) > 1:
            lines += [f"### Measured in run {number[m['started']]} ({m['started']})", ""]
        lines += ["| workload | contestant | req/s (median) | ratio | against | server CPU µs/req "
                  "| CPU ratio | p99 µs | rounds |",
                  "|---|---|---:|---:|---|---:|---:|---:|---|"]
        for r in mine:
            lines.append(f"| {r['workload']} | {r['contestant']} | {fmt(r['rps'])} | "
                         f"{fmt(r['ratio'], 2)} | {r['baseline']} | {fmt(r.get('cpu_us'), 1)} | "
                         f"{fmt(r.get('cpu_ratio'), 2)} | {fmt(r['p99_us'], 0)} | "
                         f"{', '.join(fmt(x) for x in r['rounds'])} |")
        lines.append("")
    run_of = lambda x: (f" (run {number[x['run']]})" if len(runs) > 1 and x.get("run") in number else "")
    if idle and idle.get("rows"):
        lines += [f"## Idle connections (framed echo, 50 active clients){run_of(idle)}", "",
                  f"Median of {idle['rounds']} rounds of {idle['duration']} s. RSS and threads are the "
                  "server's (all its processes) while the idle connections are held; the per-connection "
                  "figure is the RSS growth from the freshly started server's, divided by their count "
                  "(memory once used stays with the process, so a round's own start would hide it). The "
                  f"descriptor limit here is {idle['fd_limit']:,} per process (hard limit, not raisable "
                  "in this container), so one process cannot hold 20,000: `single` holds what the limit "
                  "allows and `prefork` (two worker processes, an event loop each) the whole 20,000; "
                  "where loadgen itself would pass its limit, compare.py holds the rest from 127.0.0.4. "
                  "The p99 ratio is the median over the rounds of each round's with-idle p99 over the "
                  "alone p99 measured just before it.", "",
                  "| server | idle conns | p99 alone µs | p99 with idle µs | p99 ratio | req/s ratio "
                  "| RSS with idle MiB | KiB per idle conn | threads (before → with idle) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for x in idle["rows"]:
            lines.append(f"| {x['contestant']} | {x['idle']:,} | {fmt(x['p99_alone_us'])} | "
                         f"{fmt(x['p99_idle_us'])} | {fmt(p99_ratio(x, 'p99_idle_us', 'p99_alone_us'), 2)} | "
                         f"{fmt(x['rps_idle'] / x['rps_alone'], 2)} | {fmt(x['rss_after_kib'] / 1024, 1)} | "
                         f"**{fmt(x['rss_per_idle_kib'], 2)}** | {fmt(x['threads_before'])} → "
                         f"{fmt(x['threads_after'])} |")
        lines.append("")
    if slow and slow.get("rows"):
        n = slow["rows"][0]["slowloris"]
        lines += [f"## {n:,} slowloris connections (framed echo, 10 well-behaved clients){run_of(slow)}", "",
                  f"Median of {slow['rounds']} rounds of {slow['duration']} s. Each slowloris connection "
                  "sends half a 68-byte frame, then one byte every 2 s, and reconnects when closed "
                  "(`loadgen --slowloris`); they are all open before the good clients connect. A good "
                  "client that gets no reply within 5 s counts as starved. The p99 ratio is the median over the "
                  "rounds of each round's attacked p99 over the alone p99 measured just before it.", "",
                  "| server | p99 alone µs | p99 attacked µs | p99 ratio | req/s alone | req/s attacked "
                  "| good clients starved | slow conns opened | closed by server |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for x in slow["rows"]:
            ratio = p99_ratio(x, "p99_attack_us", "p99_alone_us")
            lines.append(f"| {x['contestant']} | {fmt(x['p99_alone_us'])} | {fmt(x['p99_attack_us'])} | "
                         f"{fmt(ratio, 2)} | {fmt(x['rps_alone'])} | {fmt(x['rps_attack'])} | "
                         f"{fmt(x['starved_clients'])} of 10 | {fmt(x['slow_opened'])} | "
                         f"{fmt(x['slow_closed_by_server'])} |")
        lines.append("")
    lines += tls_report(rows, tls, run_of)
    lines += NOTES.splitlines()
    if failures:
        lines += ["", "## Failed runs", ""] + [f"- {f}" for f in failures]
    lines += (["", "## Targets", ""] + targets(rows, idle, slow) + tls_targets(rows)
              + loops_targets(rows))
    lines += ["", "Reproduce: `bench/compare.sh` (installs redis-server, redis-tools, wrk, nginx and "
              "matplotlib when missing; `--quick` for a short run, `--only resp,http` for a subset). "
              "Raw numbers: `bench/results.json`.", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


TLS_NOTES = """
How these are measured: every contestant presents the same certificate (above) and is driven by
the same client over loopback; OpenSSL's client defaults pick TLS 1.3 with the cipher suite and
key exchange the table of contestants shows. **Server CPU µs/request** is the server process's
user + system time (its threads and child processes, from /proc/PID/stat, in clock ticks of
10 ms) over the client run, divided by the requests the client counted; on two cores shared with
the client it is the steadier figure (a server that gets less CPU serves fewer requests/s, but
spends the same per request). Its ratio is against the first contestant's (redis-server or
nginx): below 1 is cheaper. **Client CPU µs/request** is the load generator's (its user +
system time, from getrusage of the reaped client): where it is most of the two cores, the
client set the pace, and requests/s ratios near 1 say only that both servers kept up with it.
The contestants take turns within each round, so each ratio here is the **median over the
rounds of that round's ratio** (the load of this shared machine drifts between rounds more than
within one). redis-benchmark runs PING (inline and bulk), SET and GET, each with
its 50 connections made anew (50 handshakes per test, a few hundred in a run of
hundreds of thousands of requests). wrk over https keeps its connections; with `Connection:
close` every request is a new connection, and wrk offers the previous connection's session
ticket (it reuses its OpenSSL object with `SSL_clear`), so where a server resumes sessions
those handshakes are resumptions (an ECDHE exchange, no certificate signature); `openssl s_time
-new` makes full handshakes (no session offered), one connection at a time per client.
"""


def tls_report(rows, tls, run_of):
    """The TLS section: the certificate, what each contestant negotiated, a table per workload
    (requests/s and server CPU per request, each with its ratio to the first contestant)."""
    mine = [r for r in rows if r.get("section") == "tls"]
    if not mine:
        return []
    lines = [f"## TLS{run_of(tls) if tls else ''}", ""]
    if tls:
        lines += [f"Certificate: {tls['certificate']}.", ""]
    lines += TLS_NOTES.strip().splitlines() + [""]
    probed = {}
    for r in mine:
        if r.get("probe") and "negotiated" in r["probe"]:
            probed.setdefault(r["contestant"], r["probe"])
    if probed:
        lines += ["| contestant | negotiated with `openssl s_client` | resumes a TLS 1.3 session |",
                  "|---|---|---|"]
        for name, p in probed.items():
            lines.append(f"| {name} | {p['negotiated']} | {'yes' if p['resumes'] else 'no'} "
                         f"({p['resumption']}) |")
        lines.append("")
    for title in dict.fromkeys(r["workload"] for r in mine):
        got = [r for r in mine if r["workload"] == title]
        lines += [f"### {title}", "",
                  f"Against {got[0]['baseline']}. Median of {len(got[0]['rounds'])} rounds"
                  f"{run_of(got[0])}; the ratios are the median of each round's ratio (see "
                  "above).", "",
                  "| contestant | req/s | ratio | server CPU µs/req | CPU ratio | client CPU µs/req "
                  "| p99 µs | rounds req/s | rounds server CPU µs/req |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in got:
            lines.append(f"| {r['contestant']} | {fmt(r['rps'])} | **{fmt(ratio_of(r), 2)}** | "
                         f"{fmt(r.get('cpu_us'), 1)} | **{fmt(cpu_ratio_of(r), 2)}** | "
                         f"{fmt(r.get('client_cpu_us'), 1)} | {fmt(r['p99_us'])} | "
                         f"{', '.join(fmt(x) for x in r['rounds'])} | "
                         f"{', '.join(fmt(x, 1) for x in r.get('cpu_rounds', []))} |")
        checks = [(r["contestant"], r["probe"]) for r in got
                  if r.get("probe") and r["probe"].get("accepted") is not None]
        if checks:
            lines += ["", "New connection per request, checked on a 1 s run with 10 connections "
                      "(`strace -c` counting the server's accepted connections): " + "; ".join(
                          f"{name}: {p['accepted']:,} accepted for {p['requests']:,} requests"
                          for name, p in checks)]
        lines.append("")
    return lines


def ratio_of(r):
    """A row's requests/s against the baseline: the paired ratio where every round counted."""
    return r.get("paired_ratio") or r["ratio"]


def cpu_ratio_of(r):
    return r.get("paired_cpu_ratio") or r.get("cpu_ratio")


def tls_targets(rows):
    """The TLS targets: each measured ratio, met or not."""
    def row(workload, contestant):
        return next((r for r in rows if r["workload"] == workload and r["contestant"] == contestant),
                    None)

    out = ["", "### TLS", ""]
    msg = "socketserver message single"

    def both(label, r, goal, cpu_goal=True):
        if r is None:
            out.append(f"- {label}: not measured")
            return
        ok = ratio_of(r) >= goal
        text = f"- {label}: **{ratio_of(r):.2f}×** requests/s (goal ≥ {goal}×)"
        if cpu_goal:
            ok_cpu = cpu_ratio_of(r) is not None and cpu_ratio_of(r) <= 1.0
            text += (f", **{fmt(cpu_ratio_of(r), 2)}×** server CPU per request (goal ≤ 1.0×: "
                     f"{fmt(r.get('cpu_us'), 1)} µs)")
            ok = ok and ok_cpu
        out.append(text + f" — {'met' if ok else 'not met'}")

    for p in (1, 16):
        both(f"RESP over TLS -P {p}, resp_kv message single vs redis-server",
             row(TLS_RESP.format(p), msg), 1.0)
    both("HTTPS wrk -c50, http_hello message single vs nginx", row(TLS_HTTP.format(50), msg), 1.0)
    both("HTTPS wrk -c1000, http_hello message single vs nginx", row(TLS_HTTP.format(1000), msg),
         0.9, cpu_goal=False)
    both("new handshakes (wrk Connection: close), http_hello message single vs nginx",
         row(TLS_CLOSE, msg), 1.0, cpu_goal=False)
    r = row(TLS_FULL, msg)
    if r:
        out.append(f"- (context) full handshakes (s_time -new), message single vs nginx: "
                   f"**{ratio_of(r):.2f}×**, server CPU per handshake **{fmt(cpu_ratio_of(r), 2)}×**")
    for r in rows:
        if not (r["workload"].startswith("plaintext, built with") and "with tls" in r["contestant"]):
            continue
        ratios, cpu_ratios = r.get("ratio_rounds"), r.get("cpu_ratio_rounds")
        if not ratios or not cpu_ratios:
            out.append(f"- plaintext {r['workload'].split(': ', 1)[1]}: a round failed, no "
                       "per-round ratios")
            continue
        # Slower (or costlier) beyond noise only if every round says so and the median by more
        # than 3 %; rounds that disagree on which build is faster are noise.
        slower = max(ratios) < 1 and statistics.median(ratios) < 0.97
        costlier = min(cpu_ratios) > 1 and statistics.median(cpu_ratios) > 1.03
        faster = min(ratios) > 1 and statistics.median(ratios) > 1.03
        verdict = ("slower in every round — not met" if slower else
                   "more CPU per request in every round — not met" if costlier else
                   "faster in every round (not a regression)" if faster
                   else "unchanged within noise")
        span = lambda x: f"rounds {min(x):.2f}–{max(x):.2f}"
        out.append(f"- plaintext {r['workload'].split(': ', 1)[1]}: the build with tls (unused) "
                   f"**{ratio_of(r):.2f}×** requests/s ({span(ratios)}), "
                   f"**{fmt(cpu_ratio_of(r), 2)}×** server CPU per request ({span(cpu_ratios)}) of "
                   f"the build without — {verdict}")
    return out


def paired_between(a, b):
    """Median over rounds of a's requests/s (or `key`) over b's, both measured in each round."""
    xs = [x / y for x, y in zip(a.get("rounds") or [], b.get("rounds") or []) if x and y]
    return statistics.median(xs) if xs else (a["rps"] / b["rps"] if b["rps"] else None)


def paired_cpu_between(a, b):
    xs = [x / y for x, y in zip(a.get("cpu_rounds") or [], b.get("cpu_rounds") or []) if x and y]
    return statistics.median(xs) if xs else None


def loops_targets(rows):
    """The targets for message servers on every core and a pool that costs little more than a
    loop: each measured ratio, met or not."""
    def row(workload, contestant):
        return next((r for r in rows if r["workload"] == workload and r["contestant"] == contestant),
                    None)

    out = ["", "### Message servers on every core", ""]
    loops = "socketserver message loops 2"

    def rps_goal(label, workload, ours, theirs, goal):
        a, b = row(workload, ours), row(workload, theirs)
        if not a or not b:
            out.append(f"- {label}: not measured")
            return
        ratio = paired_between(a, b)
        cpu = paired_cpu_between(a, b)
        cpu_text = f"; server CPU per request {fmt(cpu, 2)}×" if cpu else ""
        out.append(f"- {label}: **{ratio:.2f}×** requests/s (goal ≥ {goal}×){cpu_text} — "
                   f"{'met' if ratio >= goal else 'not met'}")

    def cpu_goal(label, workload, ours, theirs, goal):
        a, b = row(workload, ours), row(workload, theirs)
        cpu = a and b and paired_cpu_between(a, b)
        if not cpu:
            out.append(f"- {label}: not measured")
            return
        out.append(f"- {label}: **{cpu:.2f}×** server CPU per request (goal ≤ {goal}×: "
                   f"{fmt(a.get('cpu_us'), 1)} vs {fmt(b.get('cpu_us'), 1)} µs; requests/s "
                   f"{paired_between(a, b):.2f}×) — {'met' if cpu <= goal else 'not met'}")

    echo50 = "framed echo 64 B, 50 conns"
    rps_goal("framed echo 64 B, 50 conns: message loops 2 vs plain std::net", echo50, loops,
             "plain std::net", 1.15)
    rps_goal("framed echo 64 B, 50 conns: message loops 2 vs tokio", echo50, loops,
             "tokio (multi-thread runtime)", 1.25)
    rps_goal("framed echo 64 B, 1000 conns (4 client threads): message loops 2 vs tokio", ECHO1K,
             loops, "tokio (multi-thread runtime)", 1.3)
    rps_goal("framed echo 64 B, 1000 conns (a client thread each): message loops 2 vs tokio",
             ECHO1K_THREADS, loops, "tokio (multi-thread runtime)", 1.3)
    for p in (1, 16):
        w = f"RESP redis-benchmark -c 50 -P {p} (PING/SET/GET)"
        cpu_goal(f"RESP -P {p}: resp_kv message single vs redis-server", w,
                 "socketserver message single", "redis-server", 0.8)
        cpu_goal(f"RESP -P {p}: resp_kv message pool vs redis-server", w,
                 "socketserver message pool", "redis-server", 1.0)
    for c in (50, 1000):
        w = f"HTTP wrk -t2 -c{c}"
        rps_goal(f"HTTP wrk -c{c}: http_hello message loops 2 vs nginx (2 workers)", w, loops,
                 "nginx (2 workers)", 1.0)
        cpu_goal(f"HTTP wrk -c{c}: http_hello message loops 2 vs nginx (2 workers)", w, loops,
                 "nginx (2 workers)", 0.8)
    return out


def targets(rows, idle, slow):
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
            out.append(f"- {label}: **{ratio:.2f}×** (goal ≥ {goal}×) — {'met' if ratio >= goal else 'not met'}; {detail}")

    for p in (1, 16):
        b = best(f"RESP redis-benchmark -c 50 -P {p} ")
        check(f"RESP -P {p} vs redis-server", b and b["ratio"], 0.9 if p == 1 else 0.5,
              b and f"best mode: {b['contestant']}")
    b = best("HTTP wrk -t2 -c50")
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
    for workload in (METRICS_RESP, METRICS_HTTP):
        for on in [r for r in rows if r["workload"] == workload
                   and r["contestant"].endswith(", metrics on")]:
            name = on["contestant"][: -len(", metrics on")]
            off = next((r for r in rows if r["workload"] == workload and r["contestant"] == name),
                       None)
            if off and off.get("cpu_us") and on.get("cpu_us"):
                ratio = on["cpu_us"] / off["cpu_us"]
                out.append(f"- {workload}, {name}: server CPU per request with metrics on "
                           f"**{ratio:.2f}×** off (goal ≤ 1.02×) — "
                           f"{'met' if ratio <= 1.02 else 'not met'}")
    churn = next((r for r in rows if r["workload"].startswith("connection churn")
                  and r["contestant"] == "socketserver process"), None)
    forking = churn and rps_of(churn["workload"], "Python ForkingTCPServer")
    if churn and forking:
        out.append(f"- connection churn, `process` vs Python ForkingTCPServer (a process per "
                   f"connection both): **{churn['rps'] / forking:.2f}×** "
                   f"({fmt(churn['rps'])} vs {fmt(forking)} req/s)")
    out += ["", "### Issue 12: the message mode (`--api message`)", ""]

    def verdict(ok):
        return "met" if ok else "not met"

    for x in (idle or {}).get("rows", []):
        p99 = p99_ratio(x, "p99_idle_us", "p99_alone_us")
        grown = x["threads_after"] - x["threads_before"]
        ok = x["rss_per_idle_kib"] <= 2 and grown < x["idle"] / 100 and p99 <= 1.2
        goal = "" if "message" in x["contestant"] else " (the stream API, for contrast)"
        out.append(f"- {x['idle']:,} idle connections, {x['contestant']}{goal}: "
                   f"**{x['rss_per_idle_kib']:.2f} KiB** per idle connection (goal ≤ 2), threads "
                   f"{x['threads_before']:.0f} → {x['threads_after']:.0f} (goal: none per connection), "
                   f"active p99 **{p99:.2f}×** of without (goal ≤ 1.2×) — {verdict(ok)}")
    for x in (slow or {}).get("rows", []):
        goal = "" if "message" in x["contestant"] else " (the stream API, for contrast)"
        if x["p99_attack_us"] is None:
            out.append(f"- {x['slowloris']:,} slowloris connections, {x['contestant']}{goal}: the good "
                       f"clients were starved (no reply within 5 s) — not met")
            continue
        ratio = p99_ratio(x, "p99_attack_us", "p99_alone_us")
        starved = f", {x['starved_clients']:.0f} of 10 good clients starved" if x["starved_clients"] else ""
        out.append(f"- {x['slowloris']:,} slowloris connections, {x['contestant']}{goal}: good clients' "
                   f"p99 **{ratio:.2f}×** of without (goal ≤ 2×){starved} — "
                   f"{verdict(ratio <= 2 and not x['starved_clients'])}")

    msg = "socketserver message single"
    for p, w in ((1, "RESP redis-benchmark -c 50 -P 1 (PING/SET/GET)"),
                 (16, "RESP redis-benchmark -c 50 -P 16 (PING/SET/GET)")):
        r = next((r for r in rows if r["workload"] == w and r["contestant"] == msg), None)
        check(f"RESP -P {p}, resp_kv message single vs redis-server", r and r["ratio"], 1.0,
              r and f"{fmt(r['rps'])} vs {fmt(rps_of(w, 'redis-server'))} req/s")
    for w, goal in (("HTTP wrk -t2 -c50", 1.0), ("HTTP wrk -t2 -c1000", 0.9)):
        r = next((r for r in rows if r["workload"] == w and r["contestant"] == msg), None)
        check(f"{w}, http_hello message single vs nginx (1 worker)", r and r["ratio"], goal,
              r and f"{fmt(r['rps'])} vs {fmt(rps_of(w, 'nginx (1 worker)'))} req/s")
    tokio = rps_of(ECHO1K, "tokio (multi-thread runtime)")
    for mode in ("single", "pool"):
        r = next((r for r in rows if r["workload"] == ECHO1K
                  and r["contestant"] == f"socketserver message {mode}"), None)
        check(f"framed echo at 1,000 connections, message {mode} vs threading", r and r["ratio"], 1.5,
              r and f"{fmt(r['rps'])} vs {fmt(rps_of(ECHO1K, 'socketserver threading'))} req/s")
        check(f"framed echo at 1,000 connections, message {mode} vs tokio",
              r and tokio and r["rps"] / tokio, 1.0, r and tokio and f"{fmt(r['rps'])} vs {fmt(tokio)} req/s")
    return out


if __name__ == "__main__":
    main()
