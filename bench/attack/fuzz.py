"""Attack 9: fuzz smoke. Random bytes, mutations of valid requests and hand-crafted edge cases, in
random chunkings, to seven servers; afterwards each must be alive, answer a good request and have
written no panic to stderr.

Inputs come from a seeded random generator (the seed is in the report), so a run can be repeated.
remote_cmd runs what it receives with `sh -c`: every input sent to it starts with `#` and holds no
newline, so the shell sees only a comment, and it is sent in one write (an input cut in two by
the server would otherwise run its tail); the server also runs with PATH pointing at an empty
folder and in a temporary working directory.
"""
import hashlib
import hmac
import json
import os
import random
import socket
import struct
import threading
import time

from harness import connect, recv_exact
from memory import resp_command, resp_ping_ok
from services import read_header, send_header

SEED = 9
_FIXED = random.Random(SEED)  # the random parts of the crafted inputs, the same in every run
SECRET = b"attack harness secret"


def mutate(rng, data):
    """One random edit of `data`: flip, insert, delete, duplicate, truncate or splice random bytes."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(data))
        if op == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 2:
            del data[pos:pos + rng.randint(1, 16)]
        elif op == 3:
            data[pos:pos] = data[pos:pos + rng.randint(1, 64)] * rng.randint(1, 20)
        elif op == 4:
            del data[pos:]
        else:
            data[pos:pos] = rng.choice([b"\r\n", b"\n", b"\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                        b"9999999999", b"-1", b"*", b"$", b":", b"{", b"\"", b"%"])
    return bytes(data)


def inputs(rng, seeds, crafted, count):
    """`count` inputs: the crafted ones first, then random bytes and mutations of the seeds."""
    out = list(crafted)[:count]
    while len(out) < count:
        r = rng.random()
        if r < 0.25:
            out.append(rng.randbytes(rng.choice([rng.randint(0, 16), rng.randint(0, 512), rng.randint(0, 4096)])))
        else:
            base = rng.choice(seeds)
            out.append(mutate(rng, base * rng.choice([1, 1, 1, 2, 5])))
    return out


def chunked(rng, data):
    """Splits `data` into 1-5 pieces at random points (sent with TCP_NODELAY, one send each)."""
    if len(data) < 2 or rng.random() < 0.3:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 4))))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


# ---- per-server inputs and good requests ---------------------------------------------------


def _echo_upper():
    seeds = [b"hello", b"x" * 1024, b"\xff\xfe\x00abc", "ünïcödé".encode()]
    crafted = [b"", b"\x00", b"a" * 1025, b"a" * 65536, _FIXED.randbytes(100_000)]

    def good(addr):
        with connect(addr) as s:
            s.sendall(b"still there")
            return recv_exact(s, 11) == b"STILL THERE"

    return ["echo_upper", [], {}], seeds, crafted, good


def _framed():
    def frame(p):
        return struct.pack(">I", len(p)) + p

    seeds = [frame(b"hello"), frame(b""), frame(b"x" * 300) + frame(b"y"), frame(_FIXED.randbytes(64))]
    crafted = [b"\x00", b"\x00\x00\x00", struct.pack(">I", 16 * 1024 * 1024 + 1), b"\xff\xff\xff\xff",
               struct.pack(">I", 16 * 1024 * 1024) + b"abc", struct.pack(">I", 5) + b"ab",
               frame(b"") * 1000, struct.pack(">I", 0x80000000)]

    def good(addr):
        with connect(addr) as s:
            s.sendall(frame(b"alive?"))
            return recv_exact(s, 10) == frame(b"alive?")

    return ["echo_server", ["--proto", "framed"], {}], seeds, crafted, good


def _resp():
    seeds = [resp_command("SET", "k", "v"), resp_command("GET", "k"), resp_command("INCR", "n"),
             resp_command("LPUSH", "l", "a", "b"), resp_command("RPOP", "l"), resp_command("DEL", "k"),
             resp_command("ECHO", "hi"), b"PING\r\n", b"SET a b\r\nGET a\r\n", resp_command("PING") * 20]
    crafted = [b"*-1\r\n", b"*0\r\n", b"*2147483648\r\n", b"*1\r\n$-5\r\n", b"*1\r\n$16777217\r\n",
               b"*1\r\n$99999999999999999999\r\n", b"*1\r\n*1\r\n", b"$5\r\nhello\r\n", b"\r\n" * 1000,
               b"a" * 70_000, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nabcXY", resp_command("INCR", "k"),
               resp_command("SET", "n", "9223372036854775807") + resp_command("INCR", "n"),
               b"*1048577\r\n", resp_command("LPOP", "missing"), resp_command("QUIT")]

    return ["resp_kv", [], {}], seeds, crafted, resp_ping_ok


def _http():
    get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    seeds = [get, b"HEAD / HTTP/1.0\r\n\r\n", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
             get * 5, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"]
    crafted = [b"\n" * 9000, b"\r\n" * 5000 + get, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 2000 + b"\r\n",
               b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
               b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
               b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n",
               b"G\x00T / HTTP/1.1\r\n\r\n", b"GET " + b"/" * 9000 + b" HTTP/1.1\r\n\r\n", b" \r\n\r\n",
               b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", b"GET / HTTP/1.1\r\n:\r\n\r\n"]

    def good(addr):
        with connect(addr) as s:
            s.sendall(get)
            reply = b""
            while not reply.endswith(b"hello\n") and len(reply) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello\n")

    return ["http_hello", [], {}], seeds, crafted, good


def _file_server(root):
    def msg(header, body=b""):
        data = json.dumps(header).encode()
        return struct.pack("i", len(data)) + data + body

    seeds = [msg({"cmd": "list"}), msg({"cmd": "get", "filename": "a.txt"}),
             msg({"cmd": "put", "filename": "a.txt", "filesize": 5}, b"hello"),
             msg({"file_name": "b.txt", "file_size": 3}, b"abc")]
    crafted = [struct.pack("i", -1), struct.pack("i", 2**31 - 1), struct.pack("i", 0), b"\x05\x00\x00\x00{\"cmd",
               msg({"cmd": "put", "filename": "../escape.txt", "filesize": 3}, b"abc"),
               msg({"cmd": "put", "filename": "x" * 240, "filesize": 1}, b"z"),
               msg({"cmd": "put", "filename": "y" * 300, "filesize": 1}, b"z"),
               msg({"cmd": "put", "filename": "big.bin", "filesize": 10**30}),
               msg({"cmd": "put", "filename": "neg.bin", "filesize": -5}),
               msg({"cmd": "put", "filename": "cut.bin", "filesize": 1_000_000}, b"only a little"),
               msg({"cmd": "put", "filename": ".hidden", "filesize": 1}, b"h"),
               msg({"cmd": "put", "filename": "a\x00b", "filesize": 1}, b"h"),
               msg({"cmd": "put", "filename": "m.txt", "filesize": 2, "md5": "00"}, b"hi"),
               msg({"cmd": "get", "filename": "."}), msg({"cmd": "get", "filename": "/etc/hostname"}),
               msg({"cmd": 5}), msg([1, 2, 3]), msg("just a string"), msg({"cmd": "list"}) * 50]

    def good(addr):
        with connect(addr) as s:
            send_header(s, {"cmd": "list"})
            return (read_header(s) or {}).get("status") == "ok"

    return ["file_server", ["--root", root], {}], seeds, crafted, good


def _auth_echo():
    seeds = [_FIXED.randbytes(32), _FIXED.randbytes(32) + b"hello", _FIXED.randbytes(16)]
    crafted = [b"", b"\x00" * 32, b"\x00" * 31, b"a" * 10_000]

    def good(addr):
        with connect(addr, timeout=3) as s:
            challenge = recv_exact(s, 32)
            s.sendall(hmac.new(SECRET, challenge, hashlib.sha256).digest())
            s.sendall(b"ok?")
            return recv_exact(s, 3) == b"OK?"

    return ["auth_echo", [], {"SOCKETSERVER_SECRET": SECRET.decode()}], seeds, crafted, good


def _remote_cmd(empty_dir):
    seeds = [b"# echo hi", b"#" + _FIXED.randbytes(64), b"# $(true) `true` ; | & > y", "# ünï".encode()]
    crafted = [b"#", b"#\x00", b"#" + b"\xff" * 100, b"#" + b"x" * 8191, b"#" + b"x" * 8200, b"#\r\r\r"]

    def good(addr):
        with connect(addr, timeout=5) as s:
            s.sendall(b"echo alive")
            header = read_header(s) or {}
            return recv_exact(s, int(header.get("total_size", 0))) == b"alive\n"

    return ["remote_cmd", [], {"PATH": empty_dir}], seeds, crafted, good


def _safe_for_shell(data):
    """A comment to sh: `#` first, no newline anywhere."""
    return b"#" + data.replace(b"\n", b" ").lstrip(b"#")


# ---- driver --------------------------------------------------------------------------------


def _send_all(addr, cases, rng_seed, threads, deadline, one_write, read_reply):
    """Sends every input on its own connection, from `threads` threads, until `deadline`."""
    stats = [{"sent": 0, "connect_errors": 0} for _ in range(threads)]
    lock = threading.Lock()
    queue = list(reversed(cases))

    def worker(i):
        rng = random.Random(rng_seed + i)
        while time.monotonic() < deadline:
            with lock:
                if not queue:
                    return
                data = queue.pop()
            try:
                s = connect(addr, timeout=1.0)
            except OSError:
                stats[i]["connect_errors"] += 1
                continue
            try:
                for piece in [data] if one_write else chunked(rng, data):
                    s.sendall(piece)
                if read_reply:
                    s.settimeout(3.0)
                    s.recv(65536)
                elif rng.random() < 0.25:
                    if rng.random() < 0.5:
                        s.shutdown(socket.SHUT_WR)
                    s.settimeout(0.01)
                    s.recv(65536)
            except OSError:
                pass
            finally:
                s.close()
            stats[i]["sent"] += 1

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    return sum(s["sent"] for s in stats), sum(s["connect_errors"] for s in stats)


def run(ctx):
    count = ctx.pick(2000, 200)
    budget = ctx.pick(12.0, 4.0)  # seconds per server at most
    root = os.path.join(ctx.workdir, "fuzz_root")
    empty = os.path.join(ctx.workdir, "empty_path")
    os.makedirs(root, exist_ok=True)
    os.makedirs(empty, exist_ok=True)
    targets = [_echo_upper(), _framed(), _resp(), _http(), _file_server(root), _auth_echo(), _remote_cmd(empty)]
    rows, data = [], []
    for index, ((name, args, env), seeds, crafted, good) in enumerate(targets):
        rng = random.Random(SEED * 1000 + index)
        cases = inputs(rng, seeds, crafted, count)
        shell = name == "remote_cmd"
        if shell:
            cases = [_safe_for_shell(c) for c in cases]
        with ctx.server(name, args, env=env) as server:
            t0 = time.monotonic()
            sent, connect_errors = _send_all(server.addr, cases, SEED * 1000 + index, 8 if not shell else 4,
                                             t0 + budget, one_write=shell, read_reply=shell)
            secs = time.monotonic() - t0
            time.sleep(0.2)
            try:
                good_ok = good(server.addr)
            except (OSError, ValueError):
                good_ok = False
            alive = server.alive()
            panics = server.panics()
            size, lines, _ = server.stderr_stats()
            cmdline = server.cmdline
        row = [cmdline, f"{sent}/{len(cases)}", connect_errors, round(secs, 1), "yes" if alive else "NO",
               "yes" if good_ok else "NO", len(panics), lines, size]
        rows.append(row)
        data.append(dict(zip(["server", "sent", "connect_errors", "secs", "alive", "good_after", "panics",
                              "stderr_lines", "stderr_bytes"], row), panic_lines=panics[:5]))
    return {
        "title": f"fuzz smoke: {count} inputs per server (crafted, random, mutated; random chunking; seed {SEED}), "
        f"at most {budget:g} s each",
        "columns": ["server", "inputs sent", "connect errors", "s", "alive", "good request after", "panic lines",
                    "stderr lines", "stderr bytes"],
        "rows": rows,
        "data": data,
    }
