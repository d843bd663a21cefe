#!/usr/bin/env python3
"""Reruns attacks (slow and malformed clients, floods, stops, reloads) against the release build of
the examples; prints a Markdown report (and writes JSON with --json).

    cargo build --release --examples
    python3 bench/attack/run.py --bin-dir target/release/examples [--only NAME[,NAME]] [--quick]
        [--server-args NAME='--flag value'] [--out report.md] [--json report.json]

Every server is started on 127.0.0.1:0 in its own process group and stopped by it at the end,
error or not; every client loop is bounded in count and time. See bench/attack/README.md.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cpu  # noqa: E402
import floods  # noqa: E402
import fuzz  # noqa: E402
import memory  # noqa: E402
import message  # noqa: E402
import proxyheaders  # noqa: E402
import reloads  # noqa: E402
import services  # noqa: E402
import slowloris  # noqa: E402
import stops  # noqa: E402
import tls  # noqa: E402
from harness import Context, raise_nofile_limit  # noqa: E402

# name -> (function, what it measures); in the order they run.
ATTACKS = {
    "slowloris": (slowloris.run, "1. slow connections vs well-behaved requests, every mode"),
    "framed_memory": (memory.framed, "2. echo_server framed: 16 MiB length fields, no payload"),
    "resp_cpu": (cpu.resp_trickle, "3a. resp_kv: 6 MB unfinished command, then 5 KB/s"),
    "resp_get_memory": (memory.resp_get, "3b. resp_kv: GET of a 16 MiB value, replies never read"),
    "resp_arg_memory": (memory.resp_arg, "3c. resp_kv: unfinished 15 MiB arguments"),
    "http_blank_lines": (cpu.http_blank_lines, "4. http_hello: bare line feeds at 250 KB/s"),
    "udp_flood": (floods.udp_flood, "5. UDP flood of oversized datagrams: log volume, CPU"),
    "file_server": (services.file_server, "6. file_server: list during uploads; symlink out of root"),
    "remote_cmd": (services.remote_cmd, "7. remote_cmd: fragments, long command, 200 sleeps"),
    "log_volume": (floods.log_volume, "8. stderr volume of 2,000 ordinary requests"),
    "fuzz": (fuzz.run, "9. random and crafted inputs to seven servers"),
    # Stops, reloads, PROXY headers and message servers.
    "message_proxy_wait": (proxyheaders.message_server, "message server: silent / trickled PROXY headers"),
    "message_backpressure": (message.backpressure, "message server: pipelining clients that never read"),
    "message_unfinished_frames": (message.buffered_total, "message server: 1,000 unfinished 16 MiB frames"),
    "stream_proxy_wait": (proxyheaders.stream_pool, "echo_upper pool: trickled / silent PROXY headers"),
    "stop_in_flight": (stops.in_flight, "SIGTERM while each connection has half a line sent"),
    "stop_new_connections": (stops.new_connections, "SIGTERM while 500 new connections arrive"),
    "stop_idle_peers": (stops.idle_peers, "message server: SIGTERM with idle clients connected"),
    "upgrade_address": (reloads.upgrade, "prefork SIGUSR2: where the new program listens"),
    "reload_load": (reloads.reload, "prefork: 47 SIGHUPs under a steady request load"),
    "rolling_restart": (reloads.rolling_restart, "3 instances behind HAProxy restarted in turn under load"),
    "systemd_errors": (reloads.systemd_errors, "--systemd with descriptors that are not sockets"),
    "message_rss_release": (message.rss_release, "message server: RSS after 1,000 buffering peers close"),
    # TLS (examples built with --features tls).
    "tls_slow_hello": (tls.slow_hello, "TLS: 1,000 ClientHellos sent a byte a second vs TLS clients"),
    "tls_garbage": (tls.garbage_flood, "TLS: 1,000 connections sending random bytes vs TLS clients"),
    "tls_plaintext": (tls.plaintext, "TLS: a plaintext client on the TLS port"),
}


def parse_server_args(items):
    result = {}
    for item in items:
        name, sep, args = item.partition("=")
        if not sep or (name not in ATTACKS and name != "all"):
            sys.exit(f"--server-args expects NAME='ARGS' with NAME one of: all, {', '.join(ATTACKS)}")
        result.setdefault(name, []).extend(shlex.split(args))
    return result


def cell(value):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("|", "\\|")


def markdown(results, header):
    out = [header, ""]
    for name, result in results.items():
        out.append(f"## {name} ({result['seconds']:.1f} s)")
        out.append("")
        if "error" in result:
            error = " ".join(result["error"].split())
            out += [f"**harness error**: {error}", ""]
            continue
        for section in result["sections"]:
            out += [f"{section['title']}", ""]
            out.append("| " + " | ".join(section["columns"]) + " |")
            out.append("|" + "---|" * len(section["columns"]))
            for row in section["rows"]:
                out.append("| " + " | ".join(cell(v) for v in row) + " |")
            for note in section.get("notes", []):
                out += ["", f"- {note}"]
            out.append("")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", default="target/release/examples", help="where the example binaries are")
    p.add_argument("--only", default="", help="comma-separated attack names (default: all): " + ", ".join(ATTACKS))
    p.add_argument("--quick", action="store_true", help="a few seconds per attack, smaller counts")
    p.add_argument(
        "--server-args",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="extra arguments for every server attack NAME starts (NAME 'all': every attack); repeatable",
    )
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (servers' stderr files)")
    p.add_argument("--list", action="store_true", help="list the attacks and exit")
    opts = p.parse_args()
    if opts.list:
        for name, (_, what) in ATTACKS.items():
            print(f"{name:26} {what}")
        return 0
    names = [n for n in opts.only.split(",") if n] or list(ATTACKS)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        sys.exit(f"unknown attack(s): {', '.join(unknown)}; --list shows them")
    nofile = raise_nofile_limit()
    bin_dir = os.path.abspath(opts.bin_dir)
    workdir = tempfile.mkdtemp(prefix="attack-")
    started = time.monotonic()
    results = {}
    try:
        ctx = Context(bin_dir, opts.quick, parse_server_args(opts.server_args), workdir)
        for name in names:
            fn, what = ATTACKS[name]
            print(f"[attack] {name}: {what} ...", file=sys.stderr, flush=True)
            ctx.attack = name
            t0 = time.monotonic()
            try:
                sections = fn(ctx)
                results[name] = {"sections": sections if isinstance(sections, list) else [sections]}
            except Exception as e:  # one broken attack must not lose the others' figures
                traceback.print_exc()
                results[name] = {"error": f"{type(e).__name__}: {e}"}
            results[name]["seconds"] = round(time.monotonic() - t0, 1)
            results[name]["server_args"] = ctx.extra_args()
            print(f"[attack] {name}: {results[name]['seconds']} s", file=sys.stderr, flush=True)
    finally:
        if opts.keep:
            print(f"[attack] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    wall = time.monotonic() - started
    load = os.getloadavg()
    header = (
        f"# Attack run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}\n\n"
        f"- mode: {'quick' if opts.quick else 'full'}; binaries: `{bin_dir}`; extra server args: "
        f"{parse_server_args(opts.server_args) or 'none'}\n"
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}, load average at the end "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; RLIMIT_NOFILE {nofile}\n"
        f"- wall time of the run: {wall:.1f} s\n"
        "- CPU% is of one core (200 % = both of two); RSS/HWM from /proc/PID/status, in MiB."
    )
    report = markdown(results, header)
    print(report)
    if opts.out:
        with open(opts.out, "w") as f:
            f.write(report + "\n")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"wall_seconds": round(wall, 1), "quick": opts.quick, "attacks": results}, f, indent=1)
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
