#!/usr/bin/env python3
"""How long a scrape of the admin listener (`--metrics`, the library's `metrics` feature) takes
while a prefork server holds many open connections: the time from connecting to the last byte of
`GET /metrics`, over 50 scrapes, once the server reports every connection open.

    cargo build --release --features metrics --examples
    python3 bench/scrape_time.py [--connections 10000] [--workers 4]

Runs `echo_server --mode prefork` in both APIs (`--api message`, and the stream API with a
thread per connection in each worker) on loopback, and prints one line per run.
"""
import argparse
import os
import resource
import socket
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ECHO = os.path.join(ROOT, "target", "release", "examples", "echo_server")
WAIT = 60  # seconds the server may take to report every connection open


def scrape(addr):
    with socket.create_connection(addr, timeout=10) as s:
        s.settimeout(10)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.decode()


def value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def run(label, extra, connections, workers):
    argv = [ECHO, "--addr", "127.0.0.1:0", "--proto", "line", "--mode", "prefork",
            "--workers", str(workers), "--metrics", "127.0.0.1:0", *extra]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, text=True)
    clients = []
    try:
        port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
        host, mport = server.stdout.readline().strip().rsplit(" ", 1)[1].rsplit(":", 1)
        admin = (host, int(mport))
        for _ in range(connections):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        deadline = time.time() + WAIT
        while value(scrape(admin), "socketserver_active") != connections:
            if time.time() > deadline:
                raise SystemExit(f"{label}: the server never reported {connections} open")
            time.sleep(0.1)
        took = []
        for _ in range(50):
            began = time.perf_counter()
            text = scrape(admin)
            took.append((time.perf_counter() - began) * 1000)
        took.sort()
        print(f"{label}: {connections} connections open, "
              f"{value(text, 'socketserver_prefork_workers'):.0f} workers: scrape median "
              f"{statistics.median(took):.2f} ms, p90 {took[44]:.2f} ms, max {took[-1]:.2f} ms")
    finally:
        for c in clients:
            c.close()
        server.terminate()
        server.wait(10)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--workers", type=int, default=4)
    a = p.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run("message API (event loops)", ["--api", "message"], a.connections, a.workers)
    run("stream API (a thread per connection)", ["--stack-size", "65536"], a.connections, a.workers)


if __name__ == "__main__":
    main()
