//! The framing codec's own cost, with Criterion, in memory (no sockets): writing and reading
//! length-prefixed frames of 64 B, 16 KiB and 1 MiB with the default prefix (big-endian `u32`)
//! and the seeds' `struct.pack('i', n)` prefix; reading from a source that hands out one byte
//! per `read` (the worst a socket can do) against one that hands out everything at once; and a
//! JSON header written and read back (feature `json`).
//!
//! `cargo bench -p socketserver-bench --bench framing` — about half a minute: every benchmark is
//! bounded by the short warm-up and measurement times configured at the bottom. Throughput is
//! reported in bytes per second of payload.

use std::hint::black_box;
use std::io::{self, Read};
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use socketserver::framing::Framing;

/// Payload sizes: a small message, the benchmarks' large echo, and a file-sized frame.
const SIZES: [usize; 3] = [64, 16 * 1024, 1024 * 1024];

/// The two prefixes worth telling apart: the default and the seeds' (native-order, signed).
fn framings() -> [(&'static str, Framing); 2] {
    [
        ("u32 big-endian", Framing::new()),
        ("python struct i", Framing::python_struct_i()),
    ]
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

fn label(size: usize) -> String {
    match size {
        s if s >= 1024 * 1024 => format!("{} MiB", s / (1024 * 1024)),
        s if s >= 1024 => format!("{} KiB", s / 1024),
        s => format!("{s} B"),
    }
}

/// One frame on the wire, as `write_frame` produces it.
fn wire(framing: Framing, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    framing
        .write_frame(&mut out, payload)
        .expect("a frame under the limit");
    out
}

/// A reader that returns one byte per `read`, like a socket whose segments arrive byte by byte.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    // Not inlined, as a socket's `read` never is: otherwise the compiler fuses the codec's read
    // loop with this one into a plain byte copy and the per-call cost disappears from the numbers.
    #[inline(never)]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&byte, rest)), Some(slot)) => {
                *slot = byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

/// Decodes one frame and checks its length, so the work cannot be optimised away or go wrong
/// unnoticed.
fn decode(framing: Framing, reader: &mut impl Read, size: usize) {
    let frame = framing
        .read_frame(reader)
        .expect("a well-formed frame")
        .expect("a frame, not the end of the stream");
    assert_eq!(frame.len(), size);
    black_box(frame);
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing encode");
    for size in SIZES {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        for (name, framing) in framings() {
            // The output buffer is reused, as a connection's would be: what is measured is the
            // codec (length field, coalescing copy), not the allocator growing a fresh Vec.
            let mut out = Vec::with_capacity(size + 8);
            group.bench_with_input(BenchmarkId::new(name, label(size)), &data, |b, data| {
                b.iter(|| {
                    out.clear();
                    framing
                        .write_frame(&mut out, black_box(data))
                        .expect("a frame under the limit");
                    black_box(&out);
                });
            });
        }
    }
    group.finish();
}

fn decode_whole(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing decode, whole reads");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for (name, framing) in framings() {
            let bytes = wire(framing, &payload(size));
            group.bench_with_input(BenchmarkId::new(name, label(size)), &bytes, |b, bytes| {
                b.iter(|| decode(framing, &mut black_box(&bytes[..]), size));
            });
        }
    }
    group.finish();
}

fn decode_one_byte(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing decode, 1-byte reads");
    // A 1 MiB frame read byte by byte takes milliseconds per iteration: flat sampling keeps the
    // run inside the measurement time instead of Criterion stretching it.
    group.sampling_mode(SamplingMode::Flat);
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for (name, framing) in framings() {
            let bytes = wire(framing, &payload(size));
            group.bench_with_input(BenchmarkId::new(name, label(size)), &bytes, |b, bytes| {
                b.iter(|| decode(framing, &mut OneByte(black_box(&bytes[..])), size));
            });
        }
    }
    group.finish();
}

fn header(c: &mut Criterion) {
    use socketserver::framing::{header_u64, Header};

    // A typical upload header, as the seeds' file-transfer programs send it.
    let header: Header = match serde_json::json!({
        "cmd": "put",
        "filename": "holiday-photos-2024.tar.gz",
        "filesize": 734_003_200u64,
        "md5": "9e107d9d372bb6826bd81d3542a419d6",
    }) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    };
    let framing = Framing::python_struct_i();
    let bytes = {
        let mut out = Vec::new();
        framing
            .write_header(&mut out, &header)
            .expect("a header under the limit");
        out
    };

    let mut group = c.benchmark_group("framing JSON header");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut out = Vec::with_capacity(bytes.len());
    group.bench_function("write", |b| {
        b.iter(|| {
            out.clear();
            framing
                .write_header(&mut out, black_box(&header))
                .expect("a header under the limit");
            black_box(&out);
        });
    });
    group.bench_function("read", |b| {
        b.iter(|| {
            let got = framing
                .read_header(&mut black_box(&bytes[..]))
                .expect("a well-formed header")
                .expect("a header, not the end of the stream");
            assert_eq!(header_u64(&got, &["filesize"]).ok(), Some(734_003_200));
            black_box(got);
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000))
        .sample_size(20);
    targets = encode, decode_whole, decode_one_byte, header
}
criterion_main!(benches);
