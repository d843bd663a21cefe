"""Binary upgrade (SIGUSR2), rolling reload (SIGHUP) and rolling restarts behind HAProxy under a
steady request load; and what socket activation (`--systemd`) says when the descriptors it was
promised are not sockets.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from clients import OUTCOMES, exchange, spread_exchanges, tally
from harness import Program, session_members

REQUEST, ANSWER = b"hello\n", b"HELLO\n"  # echo_upper


# ---- SIGUSR2 ---------------------------------------------------------------------------------


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _same_binary(path):
    """Live processes running the example binary at `path` (whatever their session)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/exe") == path:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def upgrade(ctx):
    rows = []
    for signals in (1, 2):
        with ctx.server("echo_upper", ["--mode", "prefork", "--workers", "2"]) as server:
            original = server.addr
            before = [exchange(original, REQUEST, ANSWER, 3.0)[0] for _ in range(3)]
            t0 = time.monotonic()
            for i in range(signals):
                if i:
                    time.sleep(0.02)
                server.signal(signal.SIGUSR2)
            waited = server.wait_exit(10)
            old_exit = None if waited is None else round(time.monotonic() - t0, 2)
            printed = server.more_stdout(wait=0.5)
            addresses = re.findall(r"listening on (\S+)", printed)
            # Ten at once: each may wait its whole timeout on a socket nobody accepts from.
            outcomes = [o for o, _ in spread_exchanges(original, REQUEST, ANSWER, 10, 0, 0, 3.0)]
            new_served = None
            if addresses:
                host, port = addresses[-1].rsplit(":", 1)
                new_served = sum(o == "answered" for o, _ in
                                 spread_exchanges((host, int(port)), REQUEST, ANSWER, 10, 0, 0, 3.0))
            members = session_members(server.pid)
            tree = sorted({" ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(_cmdline(p)[:6]))
                           for p in members})
            log = [l.replace(ctx.bin_dir + "/", "") for l in server.stderr_text().splitlines()
                   if "SIGUSR2" in l or "upgrade" in l.lower()]
            server.stop()
            leftover = [p for p in _same_binary(server.path) if p in members]
            rows.append({
                "sigusr2": signals,
                "served_before": before.count("answered"),
                "old_parent_exit_s": old_exit,
                "old_parent_exit_code": server.proc.poll() if waited is not None else None,
                "original_addr": f"{original[0]}:{original[1]}",
                "new_addresses": addresses,
                "served_original": outcomes.count("answered"),
                "outcomes_original": tally(outcomes),
                "served_new_addr": new_served,
                "processes_after": len(members),
                "process_cmdlines": tree,
                "log": log[:6],
                "left_running_after_cleanup": leftover,
                "server": server.cmdline,
            })
    return {
        "title": "echo_upper --mode prefork --workers 2 on 127.0.0.1:0: SIGUSR2 to the parent (once; twice 20 ms "
        "apart), wait up to 10 s for the old parent to exit, then 10 connections to the ORIGINAL address",
        "columns": ["SIGUSR2", "old parent exited after s", "its exit code", "served at original address",
                    "failures there", "address(es) the new program printed", "served at that address",
                    "processes left in the session"],
        "rows": [[r["sigusr2"], r["old_parent_exit_s"] if r["old_parent_exit_s"] is not None else "> 10",
                  r["old_parent_exit_code"], f'{r["served_original"]}/10',
                  ", ".join(f"{k} {v}" for k, v in r["outcomes_original"].items() if v and k != "answered") or "–",
                  ", ".join(r["new_addresses"]) or "none", r["served_new_addr"], r["processes_after"]] for r in rows],
        "data": rows,
        "notes": [f'SIGUSR2 ×{r["sigusr2"]}: log: ' + " · ".join(re.sub(r"^\[[^\]]*\] ?", "", l)[:140]
                                                               for l in r["log"][:3]) for r in rows if r["log"]]
        + [f'SIGUSR2 ×{r["sigusr2"]}: {len(r["left_running_after_cleanup"])} process(es) of the binary '
           "still running after the cleanup" for r in rows if r["left_running_after_cleanup"]],
    }


# ---- a steady load ---------------------------------------------------------------------------


class Load:
    """`threads` client threads making exchanges (a new connection each) on `addr` until stopped
    or `max_requests` were made; outcomes counted."""

    def __init__(self, addr, threads, max_requests, timeout=3.0):
        self.addr, self.max_requests, self.timeout = addr, max_requests, timeout
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.sent = 0
        self.first_failures = []  # (seconds since start, outcome) of the first few
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        self.t0 = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            with self._lock:
                if self.sent >= self.max_requests:
                    return
                self.sent += 1
            outcome, _ = exchange(self.addr, REQUEST, ANSWER, self.timeout)
            with self._lock:
                self.counts[outcome] += 1
                if outcome != "answered" and len(self.first_failures) < 20:
                    self.first_failures.append((round(time.monotonic() - self.t0, 2), outcome))

    def done(self):
        return self.sent >= self.max_requests

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 2)
        self.seconds = round(time.monotonic() - self.t0, 1)
        return self

    def summary(self):
        lost = self.sent - self.counts["answered"]
        return {"sent": self.sent, "answered": self.counts["answered"], "lost": lost, "outcomes": self.counts,
                "seconds": self.seconds, "first_failures": self.first_failures}


def _lost_row(label, s, extra=()):
    return [label, s["sent"], s["lost"], *[s["outcomes"][o] for o in OUTCOMES[1:]], *extra]


# ---- SIGHUP ----------------------------------------------------------------------------------


def reload(ctx):
    hups = ctx.pick(47, 10)
    over = ctx.pick(10.0, 3.0)
    threads = ctx.pick(4, 2)
    with ctx.server("echo_upper", ["--mode", "prefork", "--workers", "4"]) as server:
        time.sleep(0.5)  # workers up
        load = Load(server.addr, threads, max_requests=500_000).start()
        time.sleep(0.5)
        for i in range(hups):
            server.signal(signal.SIGHUP)
            time.sleep(over / hups)
        time.sleep(1.0)
        s = load.stop().summary()
        text = server.stderr_text()
        done = text.count("reload done")
        started = len(re.findall(r"worker \d+ started", text))
        alive = server.alive()
    s.update(sighup=hups, over_s=over, reloads_done=done, workers_started=started, alive=alive, server=server.cmdline)
    return {
        "title": f"echo_upper --mode prefork --workers 4: {threads} client threads, a new connection per `hello` "
        f"(3 s timeout), while {hups} SIGHUPs go to the parent over {over:g} s (and 1 s after)",
        "columns": ["run", "requests", "lost", *OUTCOMES[1:], "`reload done` lines", "workers started", "alive"],
        "rows": [_lost_row("SIGHUP", s, (done, started, "yes" if alive else "NO"))],
        "data": [s],
        "notes": [f"first failures (s since start, kind): {s['first_failures'][:10]}"] if s["first_failures"] else [],
    }


# ---- rolling restart behind HAProxy ----------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HAPROXY_CFG = """global
    maxconn 4096
defaults
    mode tcp
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    retries 3
    option redispatch
    balance roundrobin
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    default-server check inter 100ms fall 1 rise 2
{servers}
"""


def rolling_restart(ctx):
    haproxy = shutil.which("haproxy")
    if not haproxy:
        return {"title": "rolling restart behind HAProxy", "columns": ["skipped"],
                "rows": [["haproxy is not installed (apt-get install -y haproxy)"]], "data": []}
    requests = ctx.pick(10_000, 2_000)
    rounds = ctx.pick(3, 1)
    threads = ctx.pick(4, 2)
    instances = []
    try:
        for _ in range(3):
            instances.append(ctx.server("echo_upper"))
        ports = [s.addr[1] for s in instances]
        port = _free_port()
        cfg = os.path.join(ctx.workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(port=port, servers="\n".join(
                f"    server s{i} 127.0.0.1:{p}" for i, p in enumerate(ports))))
        with Program(ctx, "haproxy", [haproxy, "-db", "-f", cfg]) as proxy:
            addr = ("127.0.0.1", port)
            deadline = time.monotonic() + 5
            while exchange(addr, REQUEST, ANSWER, 1.0)[0] != "answered":
                if time.monotonic() > deadline or not proxy.alive():
                    raise RuntimeError(f"haproxy does not answer: {proxy.stderr_text()[:300]}")
                time.sleep(0.1)
            time.sleep(0.5)  # every server checked up
            load = Load(addr, threads, max_requests=requests).start()
            restarts, failures, stop_secs = 0, [], []
            # The restarts spread evenly over the requests: one each `step` requests.
            step = requests // (rounds * len(ports) + 1)
            deadline = time.monotonic() + 60
            for k in range(rounds * len(ports)):
                i, p = k % len(ports), ports[k % len(ports)]
                while load.sent < (k + 1) * step and not load.done() and time.monotonic() < deadline:
                    time.sleep(0.01)
                t0 = time.monotonic()
                instances[i].signal(signal.SIGTERM)
                if instances[i].wait_exit(5) is None:
                    failures.append(f"s{i} did not stop within 5 s")
                stop_secs.append(time.monotonic() - t0)
                instances[i].stop()
                try:
                    instances[i] = ctx.server("echo_upper", addr=f"127.0.0.1:{p}")
                    restarts += 1
                except RuntimeError as e:
                    failures.append(f"s{i} restart: {' '.join(str(e).split())[:160]}")
                time.sleep(0.4)  # back in HAProxy's rotation (rise 2 × 100 ms) before the next
            while not load.done() and time.monotonic() < deadline:
                time.sleep(0.1)
            s = load.stop().summary()
            proxy_alive = proxy.alive()
    finally:
        for inst in instances:
            inst.stop()
    s.update(rounds=rounds, restarts=restarts, restart_failures=failures, haproxy_alive=proxy_alive,
             max_stop_s=round(max(stop_secs), 3) if stop_secs else None)
    return {
        "title": f"3 echo_upper instances behind HAProxy (tcp, check inter 100ms fall 1 rise 2, retries 3, option "
        f"redispatch): {threads} client threads, {requests} `hello`s through HAProxy (a connection each), while "
        f"each instance in turn gets SIGTERM and is started again on its port, {rounds} round(s)",
        "columns": ["run", "requests", "lost", *OUTCOMES[1:], "restarts", "longest stop s"],
        "rows": [_lost_row("rolling restart", s, (restarts, s["max_stop_s"]))],
        "data": [s],
        "notes": ([f"restart problems: {failures}"] if failures else [])
        + ([f"first failures (s since start, kind): {s['first_failures'][:10]}"] if s["first_failures"] else []),
    }


# ---- socket activation with descriptors that are not sockets ---------------------------------

# `$$` is the shell's pid, which `exec` hands on to the example: LISTEN_PID must name it.
ACTIVATE = 'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"'


def systemd_errors(ctx):
    regular = os.path.join(ctx.workdir, "not-a-socket.txt")
    with open(regular, "w") as f:
        f.write("plain file\n")
    cases = [
        ("LISTEN_FDS=5, no descriptor 3-7", "5", ""),
        ("LISTEN_FDS=1, descriptor 3 a pipe", "1", " 3<&0"),
        ("LISTEN_FDS=1, descriptor 3 a regular file", "1", ' 3<"$ACTIVATION_FILE"'),
    ]
    programs = [("echo_upper", []), ("echo_server", ["--api", "message", "--mode", "single"])]
    rows = []
    for name, args in programs:
        path = os.path.join(ctx.bin_dir, name)
        for label, fds, redirect in cases:
            argv = ["/bin/sh", "-c", ACTIVATE + redirect, path, "--systemd", *args, *ctx.extra_args()]
            env = dict(os.environ, LISTEN_FDS=fds, ACTIVATION_FILE=regular)
            for var in ("LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "RUST_LOG"):
                env.pop(var, None)
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, cwd=ctx.workdir, start_new_session=True)
            try:
                out, err = proc.communicate(timeout=3)
                status = proc.returncode
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                status = "still running after 3 s (killed)"
            message = " ".join(err.decode("utf-8", "replace").split())
            rows.append({"program": name, "case": label, "exit_status": status, "stderr": message[:300],
                         "stdout": out.decode("utf-8", "replace").strip()[:200]})
    return {
        "title": "--systemd with LISTEN_FDS/LISTEN_PID set (LISTEN_PID the program's own pid) but no listening "
        "socket on the descriptors",
        "columns": ["program", "case", "exit status", "what it printed on stderr"],
        "rows": [[r["program"] + (" --api message" if r["program"] == "echo_server" else ""), r["case"],
                  r["exit_status"], f'`{r["stderr"]}`' if r["stderr"] else "nothing"] for r in rows],
        "data": rows,
    }
