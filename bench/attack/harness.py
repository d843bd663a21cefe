"""What every attack needs: start an example on a free loopback port, watch it through /proc, stop
it by its process group whatever happens, and a few bounded socket helpers.

Python 3.11 standard library only. Linux only (/proc).
"""
import os
import resource
import select
import shlex
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STARTUP_SECS = 10  # how long a server may take to print `listening on <addr>`
MIB = 1024 * 1024


class Context:
    """Options of one run, handed to every attack."""

    def __init__(self, bin_dir, quick, server_args, workdir):
        self.bin_dir = bin_dir
        self.quick = quick
        # attack name -> extra arguments for every server that attack starts
        self.server_args = server_args
        self.workdir = workdir
        self.attack = None  # name of the attack running, set by run.py

    def pick(self, full, quick):
        """The full-run value or the --quick one."""
        return quick if self.quick else full

    def extra_args(self):
        return list(self.server_args.get(self.attack, [])) + list(self.server_args.get("all", []))

    def server(self, name, args=(), env=None, cwd=None, addr="127.0.0.1:0"):
        """A started example, with this attack's extra server arguments appended."""
        return Server(self, name, list(args) + self.extra_args(), env=env, cwd=cwd, addr=addr)

    def try_server(self, name, args=(), env=None):
        """(server, None), or (None, why) when the example refuses its command line (exit status
        2: an option it does not have yet, say), so an attack can report the reason and go on."""
        try:
            return self.server(name, args, env=env), None
        except ServerStartError as e:
            if e.status != 2:
                raise
            first = e.stderr.strip().splitlines()[0] if e.stderr.strip() else "no message"
            return None, f"`{name} {' '.join(args)}` exits 2: {first}"


def raise_nofile_limit():
    """Soft RLIMIT_NOFILE up to the hard limit, for our clients and (inherited) the servers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ServerStartError(RuntimeError):
    """The server exited, or printed no `listening on` line, at start-up."""

    def __init__(self, message, status, stderr):
        super().__init__(message)
        self.status, self.stderr = status, stderr


class Program:
    """A program started in a session (and process group) of its own, stderr to a file, so what it
    logs can be counted in bytes and lines. Use it as a context manager: `stop()` runs on exit,
    error or not."""

    def __init__(self, ctx, name, argv, env=None, cwd=None, stdout=subprocess.DEVNULL):
        self.name = name
        full_env = dict(os.environ)
        full_env.pop("RUST_LOG", None)
        full_env.update(env or {})
        fd, self.stderr_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".stderr", dir=ctx.workdir)
        self._stderr = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=self._stderr,
            env=full_env,
            cwd=cwd or ctx.workdir,
            # Its own session, so stop() can signal the whole group; RLIMIT_NOFILE is inherited
            # from this process, raised by raise_nofile_limit() before any server starts.
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout):
        """Seconds until the process exited (from now), or None if it still runs after `timeout` s."""
        t0 = time.monotonic()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - t0

    def signal(self, sig):
        """Sends `sig` to the process alone (not its group), as `kill -SIG PID` does."""
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def stderr_bytes(self):
        self._stderr.flush()
        return os.path.getsize(self.stderr_path)

    def stderr_text(self, start=0, limit=64 * MIB):
        with open(self.stderr_path, "rb") as f:
            f.seek(start)
            return f.read(limit).decode("utf-8", "replace")

    def stderr_lines(self, start=0):
        """Lines written since byte offset `start`, counted without holding them all in memory."""
        count = 0
        with open(self.stderr_path, "rb") as f:
            f.seek(start)
            while chunk := f.read(MIB):
                count += chunk.count(b"\n")
        return count

    def stderr_stats(self, start=0):
        """(bytes, lines, longest line in bytes) written to stderr since byte offset `start`."""
        self._stderr.flush()
        return file_stats(self.stderr_path, start)

    def panics(self):
        """stderr lines that report a panic."""
        return [l for l in self.stderr_text().splitlines() if "panicked" in l]

    def tree(self):
        return descendants(self.pid, include_self=True)

    def stop(self):
        """SIGTERM the process group, then SIGKILL it and every process still under the program or
        in its session (one it started that outlived it: a binary upgrade's new program)."""
        pids = self.tree() if self.alive() else []
        for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            if sig == signal.SIGKILL:
                # Children in process groups of their own (remote_cmd's commands) too.
                for pid in pids + descendants(self.pid) + session_members(self.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            if _wait_gone(session_members, self.pid, grace):
                break
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class Server(Program):
    """An example binary started on 127.0.0.1:0 in its own session (process group); `addr` is the
    address it printed on its first stdout line."""

    def __init__(self, ctx, name, args, env=None, cwd=None, addr="127.0.0.1:0"):
        path = os.path.join(ctx.bin_dir, name)
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is not an executable: build with cargo build --release --examples")
        # Loopback only; a port other than 0 only to start a server again where it was (the
        # harness read that port from the first one's first line).
        if not addr.startswith("127.0.0.1:"):
            raise ValueError(f"{addr}: the attacks talk to 127.0.0.1 only")
        self.path = path
        argv = [path, "--addr", addr, *args]
        # For the report: the temporary folder's name changes with every run.
        self.cmdline = " ".join(shlex.quote(a) for a in [name, *argv[1:]]).replace(ctx.workdir, "$TMP")
        super().__init__(ctx, name, argv, env=env, cwd=cwd, stdout=subprocess.PIPE)
        try:
            self.addr = self._read_address()
        except BaseException:
            self.stop()
            raise

    def _read_address(self):
        deadline = time.monotonic() + STARTUP_SECS
        line = b""
        fd = self.proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                status = self.proc.poll()
                stderr = self.stderr_text(limit=4096)
                raise ServerStartError(
                    f"{self.cmdline}: no `listening on` line (exit {status}): {stderr[:300]}", status, stderr
                )
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1)
                if not chunk:
                    continue
                line += chunk
        text = line.decode().strip()
        if not text.startswith("listening on "):
            raise RuntimeError(f"{self.cmdline}: first line is {text!r}")
        host, port = text[len("listening on "):].rsplit(":", 1)
        return (host.strip("[]"), int(port))

    def more_stdout(self, wait=0.0):
        """Whatever else is on the server's stdout (a program it started shares it), read without
        blocking for longer than `wait` s in all; "" at its end."""
        fd = self.proc.stdout.fileno()
        out = b""
        deadline = time.monotonic() + wait
        while True:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
        return out.decode("utf-8", "replace")


def file_stats(path, start=0):
    """(bytes, lines, longest line in bytes) of the file at `path` from byte offset `start`, read
    a MiB at a time: a flooded server's stderr may be tens of MB."""
    size = lines = longest = current = 0
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(MIB):
            size += len(chunk)
            lines += chunk.count(b"\n")
            parts = chunk.split(b"\n")
            if len(parts) == 1:
                current += len(chunk)
            else:
                longest = max(longest, current + len(parts[0]), *(len(p) for p in parts[1:-1]))
                current = len(parts[-1])
    return size, lines, max(longest, current)


# ---- /proc ---------------------------------------------------------------------------------


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode()
    # The command name may hold spaces or parentheses: split after its closing parenthesis.
    return data[data.rindex(")") + 2:].split()


def children_map():
    """ppid -> [pid] for every process now."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(entry)[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def session_members(sid):
    """Every live process of session `sid` (a server's, started in a session of its own)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
            # fields after the name: state=0 ppid=1 pgrp=2 session=3
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                found.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _wait_gone(members, key, timeout):
    """Whether `members(key)` is empty within `timeout` s."""
    deadline = time.monotonic() + timeout
    while members(key):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def descendants(pid, include_self=False):
    kids = children_map()
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            found.append(c)
            todo.append(c)
    return ([pid] if include_self else []) + found


def cpu_ticks(pid):
    """utime+stime of `pid` and its live descendants, plus the reaped children's of `pid`."""
    total = 0
    for i, p in enumerate(descendants(pid, include_self=True)):
        try:
            f = _stat_fields(p)
        except (OSError, IndexError):
            continue
        # fields after the name: state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
        total += int(f[11]) + int(f[12])
        if i == 0:
            total += int(f[13]) + int(f[14])
    return total


def sched_ns(pid):
    """tid -> (ns on a CPU, ns runnable but waiting for one) for every thread of `pid` and its
    live descendants, from /proc/TID/schedstat."""
    out = {}
    for p in descendants(pid, include_self=True):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/schedstat") as f:
                    run, wait = f.read().split()[:2]
                out[int(tid)] = (int(run), int(wait))
            except (OSError, ValueError):
                continue
    return out


class CpuMeter:
    """CPU% of a server (its whole process tree) between start() and stop(); 100 % = one core.

    On a loaded machine a busy server gets only its share of the cores, so stop() also sets
    `wanted_pct`: time on a CPU plus time runnable but waiting for one, summed over the server's
    threads, which a thread reads every 50 ms (a thread born meanwhile counts from zero; one
    that lived less than that between two readings is missed). It reads near 100 % per thread
    that never blocks, however loaded the machine is.
    """

    def __init__(self, pid):
        self.pid = pid
        self.wanted_pct = None
        self._stop = threading.Event()

    def start(self):
        self.t0, self.c0 = time.monotonic(), cpu_ticks(self.pid)
        self._first = {t: r + w for t, (r, w) in sched_ns(self.pid).items()}
        self._last = dict(self._first)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            self._read()

    def _read(self):
        for tid, (r, w) in sched_ns(self.pid).items():
            self._first.setdefault(tid, 0)  # born during the interval
            self._last[tid] = r + w

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self._read()
        dt = time.monotonic() - self.t0
        used = (cpu_ticks(self.pid) - self.c0) / CLK_TCK
        busy = sum(self._last[t] - self._first[t] for t in self._last)
        self.wanted_pct = round(100.0 * busy / 1e9 / dt, 1) if dt > 0 else 0.0
        return round(100.0 * used / dt, 1) if dt > 0 else 0.0


def memory(pid):
    """(VmRSS, VmHWM) of `pid` in MiB, (0, 0) if it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return round(rss / 1024, 1), round(hwm / 1024, 1)


class Sampler:
    """Calls `fn()` every `period` s on a thread and keeps the largest value; bounded by stop()."""

    def __init__(self, fn, period=0.05):
        self.fn, self.period = fn, period
        self.peak = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                v = self.fn()
                self.peak = v if self.peak is None else max(self.peak, v)
            except Exception:
                pass
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        return False


# ---- sockets and numbers ------------------------------------------------------------------


def connect(addr, timeout=2.0, nodelay=True):
    s = socket.create_connection(addr, timeout=timeout)
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(sock, n):
    """n bytes, or fewer if the peer closed; socket.timeout propagates."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def run_threads(targets, timeout):
    """Starts a thread per callable, joins them all within `timeout` s; the count still running."""
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    return sum(t.is_alive() for t in threads)


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


def latency_summary(latencies):
    """p50/p99/max in ms of a list of seconds."""
    return {
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies)) if latencies else None,
        "mean_ms": ms(statistics.fmean(latencies)) if latencies else None,
    }
