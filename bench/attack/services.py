"""Attacks 6 and 7: the seeds' services, file_server and remote_cmd.

Both speak the seeds' header + body messages: `struct.pack('i', len(header))` (native byte order),
a UTF-8 JSON header, then the body it announces.
"""
import json
import os
import socket
import struct
import threading
import time

from harness import Sampler, close_all, connect, descendants, recv_exact, run_threads


def send_header(sock, header):
    data = json.dumps(header).encode()
    sock.sendall(struct.pack("i", len(data)) + data)


def read_header(sock):
    """The next JSON header, or None if the peer closed first."""
    field = recv_exact(sock, 4)
    if len(field) < 4:
        return None
    (n,) = struct.unpack("i", field)
    if not 0 <= n <= 16 * 1024 * 1024:
        raise OSError(f"bad header length {n}")
    data = recv_exact(sock, n)
    if len(data) < n:
        return None
    return json.loads(data)


# ---- 6. file_server --------------------------------------------------------------------------


def _uploader(addr, index, end, size, counts):
    body = os.urandom(size)
    sock, k = None, 0
    while time.monotonic() < end and k < 100_000:
        try:
            sock = sock or connect(addr, timeout=3)
            send_header(sock, {"cmd": "put", "filename": f"up{index}_{k % 5}.bin", "filesize": size})
            sock.sendall(body)
            status = read_header(sock)
            if not status or status.get("status") != "ok":
                raise OSError(f"upload refused: {status}")
            counts["uploads"] += 1
        except (OSError, ValueError):
            counts["upload_failures"] += 1
            if sock:
                sock.close()
            sock = None
        k += 1
    if sock:
        sock.close()


def _lister(addr, end, counts):
    sock = None
    while time.monotonic() < end and counts["lists"] + counts["list_failures"] < 200_000:
        try:
            sock = sock or connect(addr, timeout=3)
            send_header(sock, {"cmd": "list"})
            status = read_header(sock)
            if not status or status.get("status") != "ok":
                raise OSError(f"list failed: {status}")
            counts["lists"] += 1
        except (OSError, ValueError):
            counts["list_failures"] += 1
            if sock:
                sock.close()
            sock = None
    if sock:
        sock.close()


def _symlink_check(addr, root, workdir):
    """A link in the root to a file outside it: is it listed, served, written through?"""
    outside = os.path.join(workdir, "outside-the-root.txt")
    secret = b"a file outside the served folder\n"
    with open(outside, "wb") as f:
        f.write(secret)
    link = os.path.join(root, "link.txt")
    os.symlink(outside, link)
    result = {}
    with connect(addr, timeout=3) as s:
        send_header(s, {"cmd": "list"})
        status = read_header(s) or {}
        result["listed"] = any(f.get("name") == "link.txt" for f in status.get("files", []))
        send_header(s, {"cmd": "get", "filename": "link.txt"})
        status = read_header(s) or {}
        served = status.get("status") == "ok" and recv_exact(s, int(status.get("filesize", 0))) == secret
        result["served"] = served
        result["get_reply"] = status.get("message", status.get("status"))
        body = b"overwritten through the link\n"
        send_header(s, {"cmd": "put", "filename": "link.txt", "filesize": len(body)})
        s.sendall(body)
        status = read_header(s) or {}
    with open(outside, "rb") as f:
        result["outside_changed_by_put"] = f.read() != secret
    result["put_reply"] = status.get("message", status.get("status"))
    return result


def file_server(ctx):
    seconds = ctx.pick(6.0, 2.0)
    uploaders = 4
    size = 4096  # small files: many temporary files appear and vanish per second
    root = os.path.join(ctx.workdir, "file_server_root")
    os.makedirs(root, exist_ok=True)
    with ctx.server("file_server", ["--root", root]) as server:
        counts = {"uploads": 0, "upload_failures": 0, "lists": 0, "list_failures": 0}
        end = time.monotonic() + seconds
        # Each uploader keeps its own counters (no shared += across threads), summed after.
        per = [{"uploads": 0, "upload_failures": 0} for _ in range(uploaders)]
        targets = [lambda i=i: _uploader(server.addr, i, end, size, per[i]) for i in range(uploaders)]
        targets.append(lambda: _lister(server.addr, end, counts))
        run_threads(targets, seconds + 10)
        for p in per:
            counts["uploads"] += p["uploads"]
            counts["upload_failures"] += p["upload_failures"]
        link = _symlink_check(server.addr, root, ctx.workdir)
        alive = server.alive()
        cmdline = server.cmdline
    total = counts["lists"] + counts["list_failures"]
    return [
        {
            "title": f"file_server: `list` in a loop while {uploaders} clients upload {size}-byte files for {seconds:g} s",
            "columns": ["server", "uploads ok", "uploads failed", "lists", "lists failed", "failed %", "alive"],
            "rows": [[cmdline, counts["uploads"], counts["upload_failures"], total, counts["list_failures"],
                      round(100 * counts["list_failures"] / total, 1) if total else None,
                      "yes" if alive else "NO"]],
            "data": counts,
        },
        {
            "title": "file_server: `link.txt` in the root, a symlink to a file outside it",
            "columns": ["listed", "served by get", "get reply", "outside file overwritten by put", "put reply"],
            "rows": [["YES" if link["listed"] else "no", "YES" if link["served"] else "no", link["get_reply"],
                      "YES" if link["outside_changed_by_put"] else "no", link["put_reply"]]],
            "data": link,
        },
    ]


# ---- 7. remote_cmd ---------------------------------------------------------------------------


def _read_replies(sock, wait, quiet=0.5, most=10):
    """Command replies (header, output) arriving within `wait` s, stopping `quiet` s after the
    last one or at `most` replies."""
    replies = []
    end = time.monotonic() + wait
    while len(replies) < most and (left := end - time.monotonic()) > 0:
        sock.settimeout(min(left, quiet) if replies else left)
        try:
            header = read_header(sock)
            if header is None:
                break
            output = recv_exact(sock, int(header.get("total_size", 0)))
            replies.append((header, output))
        except (OSError, ValueError):  # includes the timeout
            break
    return replies


def _describe(replies):
    return "; ".join(
        f"exit {h.get('exit_code')}: {out[:40].decode('utf-8', 'replace').strip()!r}"
        + (f"… ({len(out)} B)" if len(out) > 40 else "")
        for h, out in replies
    ) or "no reply"


def remote_cmd(ctx):
    conns = ctx.pick(200, 40)
    sleep = ctx.pick(2, 1)
    with ctx.server("remote_cmd") as server:
        # (a) a command in two fragments, 50 ms apart
        with connect(server.addr, timeout=3) as s:
            s.sendall(b"ec")
            time.sleep(0.05)
            s.sendall(b"ho split")
            fragments = _read_replies(s, 3.0)
        # (b) a 10,000-byte command (harmless if cut: only 'a's after `echo `)
        long_command = b"echo " + b"a" * 9995
        with connect(server.addr, timeout=3) as s:
            s.sendall(long_command)
            long_replies = _read_replies(s, 3.0)
        # (c) many concurrent `sleep`s: how many processes does the server run at once?
        socks = []
        answered = []
        try:
            for _ in range(conns):
                socks.append(connect(server.addr, timeout=5))
            with Sampler(lambda: len(descendants(server.pid))) as peak:
                for s in socks:
                    s.sendall(b"sleep %d" % sleep)

                def collect(s):
                    answered.append(_read_replies(s, sleep + 6.0, most=1))

                run_threads([lambda s=s: collect(s) for s in socks], sleep + 8.0)
        finally:
            close_all(socks)
        ok = sum(1 for r in answered if r and r[0][0].get("exit_code") == 0)
        refused = sum(1 for r in answered if r and r[0][0].get("exit_code") != 0)
        alive = server.alive()
        cmdline = server.cmdline
    rows = [
        ["`ec`, 50 ms, `ho split`", len(fragments), _describe(fragments)],
        ["10,000-byte `echo aaa…`", len(long_replies), _describe(long_replies)],
        [f"{conns} connections × `sleep {sleep}`", f"{ok} ok, {refused} not 0",
         f"peak processes under the server: {peak.peak}"],
    ]
    return {
        "title": "remote_cmd: fragments, a command longer than one read, concurrent commands",
        "columns": ["input", "replies", "what ran"],
        "rows": rows,
        "notes": [f"server `{cmdline}`, alive at the end: {'yes' if alive else 'NO'}"],
        "data": {"fragment_replies": len(fragments), "long_command_replies": len(long_replies),
                 "sleep_ok": ok, "sleep_not_zero": refused, "peak_processes": peak.peak, "alive": alive},
    }
