#!/usr/bin/env python3
"""Python `socketserver` baselines for bench/compare.py: the same protocols as the Rust examples,
written the way a Python user would with the standard library.

    python3 bench/py_servers.py --proto framed|line|resp|udp|http --mode threading|forking|single

Prints `listening on HOST:PORT` first (the examples' convention), then serves until killed.
"""
import argparse
import http.server
import socketserver
import struct
import sys


class Framed(socketserver.StreamRequestHandler):
    """4-byte big-endian length, then the payload; echoed back in one sendall."""

    def handle(self):
        read, write = self.rfile.read, self.wfile.write
        while True:
            header = read(4)
            if len(header) < 4:
                return
            (n,) = struct.unpack(">I", header)
            if n > 16 * 1024 * 1024:
                return
            body = read(n)
            if len(body) < n:
                return
            write(header + body)


class Line(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


STORE = {}


class Resp(socketserver.BaseRequestHandler):
    """RESP2 PING/SET/GET/INCR/DEL/CONFIG; pipelined commands answered in one sendall."""

    def handle(self):
        sock = self.request
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return
            buf += data
            out = []
            while True:
                parsed = parse(buf)
                if parsed is None:
                    break
                args, used = parsed
                buf = buf[used:]
                if args:
                    out.append(execute(args))
            if out:
                sock.sendall(b"".join(out))


def parse(buf):
    """(args, bytes used) for the command at the front of buf, or None if incomplete."""
    if not buf:
        return None
    if buf[:1] != b"*":
        end = buf.find(b"\n")
        return None if end < 0 else (buf[:end].split(), end + 1)
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    count, pos, args = int(buf[1:end]), end + 2, []
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        n = int(buf[pos + 1:end])
        start = end + 2
        if len(buf) < start + n + 2:
            return None
        args.append(buf[start:start + n])
        pos = start + n + 2
    return args, pos


def bulk(value):
    return b"$-1\r\n" if value is None else b"$%d\r\n%s\r\n" % (len(value), value)


def execute(args):
    name = args[0].upper()
    if name == b"PING":
        return b"+PONG\r\n"
    if name == b"SET" and len(args) == 3:
        STORE[args[1]] = args[2]
        return b"+OK\r\n"
    if name == b"GET" and len(args) == 2:
        return bulk(STORE.get(args[1]))
    if name == b"INCR" and len(args) == 2:
        value = int(STORE.get(args[1], b"0")) + 1
        STORE[args[1]] = b"%d" % value
        return b":%d\r\n" % value
    if name == b"DEL":
        return b":%d\r\n" % sum(STORE.pop(k, None) is not None for k in args[1:])
    if name == b"CONFIG":
        return b"*0\r\n"
    return b"-ERR unknown command\r\n"


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects

    def do_GET(self):
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", default="127.0.0.1:0")
    p.add_argument("--proto", choices=["framed", "line", "resp", "udp", "http"], default="framed")
    p.add_argument("--mode", choices=["single", "threading", "forking"], default="threading")
    a = p.parse_args()
    host, port = a.addr.rsplit(":", 1)
    if a.proto == "http":
        server_class = {"threading": http.server.ThreadingHTTPServer}.get(a.mode)
        handler = Hello
    elif a.proto == "udp":
        server_class = {
            "single": socketserver.UDPServer,
            "threading": socketserver.ThreadingUDPServer,
            "forking": socketserver.ForkingUDPServer,
        }[a.mode]
        handler = Udp
    else:
        server_class = {
            "single": socketserver.TCPServer,
            "threading": socketserver.ThreadingTCPServer,
            "forking": socketserver.ForkingTCPServer,
        }[a.mode]
        handler = {"framed": Framed, "line": Line, "resp": Resp}[a.proto]
    if server_class is None:
        sys.exit(f"py_servers: --proto http runs only with --mode threading")
    server_class.allow_reuse_address = True
    server_class.daemon_threads = True
    server_class.request_queue_size = 1024
    # ForkingMixIn stops accepting at 40 live children; the benchmarks hold up to 200 connections
    # (redis-benchmark needs all 50 of its own), so lift the cap as a user running them would.
    server_class.max_children = 1024
    with server_class((host, int(port)), handler) as server:
        print("listening on %s:%d" % server.server_address[:2], flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
