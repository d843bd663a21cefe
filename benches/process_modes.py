#!/usr/bin/env python3
"""Process-mode costs, measured side by side in one run (loopback only, bounded).

1. Spawn cost per request: N sequential connections (connect, one line, reply, close) against
   `echo_upper --mode process` (a re-executed child per connection) and Python's ForkingTCPServer
   (a fork per connection), with `echo_upper --mode threading` as the no-process reference.
2. Throughput: C client processes each doing R round trips on one connection, against
   `echo_upper` in threading, pool and prefork modes.

Usage: python3 benches/process_modes.py [--churn N] [--clients C] [--roundtrips R]
Builds the example in release mode first. Prints medians of 3 rounds, alternating contestants.
"""
import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "echo_upper")
TIMEOUT = 10


def start_rust(mode, *extra):
    proc = subprocess.Popen(
        [EXAMPLE, "--addr", "127.0.0.1:0", "--mode", mode, *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "error"},
    )
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("listening on "), line
    host, port = line[len("listening on "):].rsplit(":", 1)
    return proc, (host, int(port))


# Python's ForkingTCPServer runs in a process of its own: forked in the client's process, its
# children would inherit the client's sockets and never see EOF.
PYTHON_FORKING = """
import socketserver, sys
class UpperHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                return
            self.request.sendall(data.upper())
socketserver.ForkingTCPServer.allow_reuse_address = True
server = socketserver.ForkingTCPServer(("127.0.0.1", 0), UpperHandler)
print("listening on %s:%d" % server.server_address, flush=True)
server.serve_forever()
"""


def start_python_forking():
    proc = subprocess.Popen([sys.executable, "-c", PYTHON_FORKING], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("listening on "), line
    host, port = line[len("listening on "):].rsplit(":", 1)
    return proc, (host, int(port))


def churn(addr, n):
    start = time.perf_counter()
    for i in range(n):
        with socket.create_connection(addr, timeout=TIMEOUT) as s:
            s.sendall(b"hello %d" % i)
            reply = s.recv(1024)
            assert reply == (b"HELLO %d" % i), reply
    return n / (time.perf_counter() - start)


def client_worker(addr, roundtrips, out):
    with socket.create_connection(addr, timeout=TIMEOUT) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 64
        for _ in range(roundtrips):
            s.sendall(payload)
            got = b""
            while len(got) < 64:
                chunk = s.recv(64 - len(got))
                assert chunk, "server closed"
                got += chunk
    out.put(roundtrips)


def throughput(addr, clients, roundtrips):
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client_worker, args=(addr, roundtrips, out)) for _ in range(clients)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    total = sum(out.get(timeout=120) for _ in procs)
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join(timeout=TIMEOUT)
    return total / elapsed


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--churn", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--roundtrips", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "echo_upper"], cwd=ROOT, check=True)

    print(f"1. spawn cost: {args.churn} sequential connections, one round trip each, median of {args.rounds}")
    results = {"rust process": [], "python ForkingTCPServer": [], "rust threading": []}
    for _ in range(args.rounds):
        for name in results:
            if name == "python ForkingTCPServer":
                proc, addr = start_python_forking()
            else:
                proc, addr = start_rust(name.split()[1])
            results[name].append(churn(addr, args.churn))
            stop(proc)
    base = statistics.median(results["python ForkingTCPServer"])
    for name, rates in results.items():
        rate = statistics.median(rates)
        print(f"   {name:26} {rate:9.0f} conn/s  {1000 / rate:6.3f} ms/conn  {rate / base:5.2f}x python forking")

    print(f"\n2. throughput: {args.clients} client processes x {args.roundtrips} round trips of 64 B, median of {args.rounds}")
    modes = {"threading": [], "pool": [], "prefork": []}
    for _ in range(args.rounds):
        for mode in modes:
            extra = ["--workers", "2"] if mode == "prefork" else []
            proc, addr = start_rust(mode, *extra)
            modes[mode].append(throughput(addr, args.clients, args.roundtrips))
            stop(proc)
    base = statistics.median(modes["threading"])
    for mode, rates in modes.items():
        rate = statistics.median(rates)
        print(f"   {mode:10} {rate:9.0f} round trips/s  {rate / base:5.2f}x threading")


if __name__ == "__main__":
    sys.exit(main())
