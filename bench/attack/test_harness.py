"""Checks of the harness's own helpers, without starting any server:
`python3 -m unittest discover -s bench/attack`."""
import os
import random
import socket
import subprocess
import threading
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import clients  # noqa: E402
import fuzz  # noqa: E402
import harness  # noqa: E402


class Numbers(unittest.TestCase):
    def test_percentile(self):
        values = [5, 1, 4, 2, 3]
        self.assertEqual(harness.percentile(values, 0), 1)
        self.assertEqual(harness.percentile(values, 50), 3)
        self.assertEqual(harness.percentile(values, 100), 5)
        self.assertIsNone(harness.percentile([], 50))

    def test_latency_summary_of_nothing(self):
        self.assertEqual(harness.latency_summary([])["p50_ms"], None)
        self.assertEqual(harness.latency_summary([0.001, 0.003])["max_ms"], 3.0)


class FileStats(unittest.TestCase):
    def test_lines_bytes_and_longest_line_across_reads(self):
        with tempfile.NamedTemporaryFile(delete=False) as f:
            # A line longer than one read (1 MiB) must be measured whole.
            f.write(b"short\n" + b"x" * (harness.MIB + 10) + b"\n" + b"tail")
        try:
            size, lines, longest = harness.file_stats(f.name)
            self.assertEqual(size, 6 + harness.MIB + 11 + 4)
            self.assertEqual(lines, 2)
            self.assertEqual(longest, harness.MIB + 10)
            self.assertEqual(harness.file_stats(f.name, start=6)[1], 1)
        finally:
            os.unlink(f.name)


class Proc(unittest.TestCase):
    def test_descendants_and_cpu_of_a_child(self):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        try:
            self.assertIn(child.pid, harness.descendants(os.getpid()))
            self.assertGreaterEqual(harness.cpu_ticks(child.pid), 0)
            self.assertGreater(harness.memory(child.pid)[0], 0)
        finally:
            child.kill()
            child.wait()
        self.assertEqual(harness.memory(child.pid), (0, 0))

    def test_cpu_meter_sees_a_busy_thread(self):
        meter = harness.CpuMeter(os.getpid()).start()
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            pass
        self.assertGreater(meter.stop() + meter.wanted_pct, 10)


class FuzzInputs(unittest.TestCase):
    def test_inputs_are_reproducible(self):
        seeds, crafted = [b"hello", b"world"], [b"crafted"]
        one = fuzz.inputs(random.Random(1), seeds, crafted, 50)
        two = fuzz.inputs(random.Random(1), seeds, crafted, 50)
        self.assertEqual(one, two)
        self.assertEqual(len(one), 50)
        self.assertEqual(one[0], b"crafted")

    def test_chunks_join_back(self):
        rng = random.Random(2)
        for _ in range(200):
            data = rng.randbytes(rng.randint(0, 100))
            self.assertEqual(b"".join(fuzz.chunked(rng, data)), data)

    def test_shell_inputs_are_comments(self):
        # What remote_cmd gets must be a single shell comment: `#` first, no newline.
        rng = random.Random(3)
        cases = fuzz.inputs(rng, [b"echo hi\n", b"\n\n#x"], [b"\nrm -rf x", b""], 500)
        for case in map(fuzz._safe_for_shell, cases):
            self.assertTrue(case.startswith(b"#"), case)
            self.assertNotIn(b"\n", case)


class TinyServer:
    """A loopback listener on a thread for the client helpers' checks: answers each connection's
    first bytes upper-cased (or, with `answer` false, reads them and closes it unanswered: closing
    with unread bytes would send a reset); bounded by a timeout."""

    def __init__(self, answer=True, limit=200):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=limit)
        self.sock.settimeout(5)
        self.addr = self.sock.getsockname()
        self.answer, self.limit = answer, limit
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for _ in range(self.limit):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(100)
                    if self.answer:
                        conn.sendall(data.upper())
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        self.thread.join(timeout=6)


class Clients(unittest.TestCase):
    def test_proxy_header_is_a_valid_v1_line(self):
        header = clients.proxy_v1(12345)
        self.assertTrue(header.startswith(b"PROXY TCP4 ") and header.endswith(b"\r\n"))
        self.assertLessEqual(len(header), 107)
        self.assertEqual(clients.frame(b"ab"), b"\x00\x00\x00\x02ab")

    def test_exchange_outcomes(self):
        answering, closing = TinyServer(), TinyServer(answer=False)
        try:
            self.assertEqual(clients.exchange(answering.addr, b"hi", b"HI", 2)[0], "answered")
            self.assertEqual(clients.exchange(answering.addr, b"hi", b"NO", 2)[0], "wrong")
            self.assertEqual(clients.exchange(closing.addr, b"hi", b"HI", 2)[0], "empty")
        finally:
            answering.close()
            closing.close()
        # The listener is closed now: nothing accepts on that port.
        self.assertEqual(clients.exchange(answering.addr, b"hi", b"HI", 2)[0], "refused")
        self.assertEqual(clients.tally(["empty", "empty"])["empty"], 2)

    def test_burst_counts_every_client_and_fires_once(self):
        server = TinyServer(limit=30)
        fired = []
        try:
            burst = clients.Burst(server.addr, 30, b"hi", b"HI", 3.0, 0.0, lambda: fired.append(1),
                                  send_delay=0.01)
            counts = burst.run()
        finally:
            server.close()
        self.assertEqual(sum(counts.values()), 30)
        self.assertEqual(counts["answered"], 30)
        self.assertEqual(fired, [1])

    def test_session_members_of_a_child_in_its_own_session(self):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"], start_new_session=True)
        try:
            self.assertEqual(harness.session_members(child.pid), [child.pid])
        finally:
            child.kill()
            child.wait()
        self.assertEqual(harness.session_members(child.pid), [])


if __name__ == "__main__":
    unittest.main()
