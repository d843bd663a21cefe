"""Checks of the harness's own helpers, without starting any server:
`python3 -m unittest discover -s bench/attack`."""
import os
import random
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

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


if __name__ == "__main__":
    unittest.main()
