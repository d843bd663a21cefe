//! Property tests for `file_server`'s header path — the framed JSON header
//! (`Framing::read_header`) and the example's reading of it (`examples/file_server/command.rs`,
//! compiled in here) — fed arbitrary and adversarial bytes in arbitrary chunkings, the way the
//! server's connection loop consumes them: no panic, memory bounded by the header limit whatever
//! the input's length, and work linear in the input. Work is counted, never timed: the reads
//! the parser makes and the allocations it makes, through a counting allocator.

// file_server itself needs these features (`required-features`), and so does its header code.
#![cfg(all(feature = "json", feature = "checksum"))]

#[path = "../examples/file_server/command.rs"]
mod command;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read};

use command::{header_framing, interpret, Command, Refusal, MAX_HEADER};
use proptest::prelude::*;
use socketserver::framing::copy_exact;

// ---------------------------------------------------------------------------------------------
// Counting, per thread (tests run on several threads at once).

/// The system allocator, counting for the current thread the allocations made and the most
/// bytes live at once.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn note(grown: i64, allocation: bool) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + grown;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
    if allocation {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, true);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64), false);
        System.dealloc(ptr, layout);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64, true);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// `input`, handed out in pieces of the sizes in `cuts` (cycled), counting the reads.
struct Chunked<'a> {
    input: &'a [u8],
    cuts: &'a [usize],
    next_cut: usize,
    /// Bytes left in the current piece.
    piece_left: usize,
    reads: u64,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.piece_left == 0 {
            self.piece_left = self.cuts[self.next_cut % self.cuts.len()].max(1);
            self.next_cut += 1;
        }
        let n = buf.len().min(self.piece_left).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        self.piece_left -= n;
        Ok(n)
    }
}

/// What driving the header path over one input cost.
#[derive(Debug)]
struct Cost {
    headers: u64,
    reads: u64,
    allocations: u64,
    /// The most bytes live at once, above what was live before.
    peak: i64,
}

/// The server's largest upload in these tests: bodies are skipped as the server skips them.
const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Consumes `input` as `file_server`'s connection loop does: a header, its reading, the body
/// skipped when there is one, until the input ends or the server would close the connection.
/// (Putting and getting files is the library's `receive_file` and plain file I/O; the bytes of a
/// body are skipped here in the same way as a refused upload's.)
fn drive(input: &[u8], cuts: &[usize]) -> Cost {
    let framing = header_framing();
    let mut reader = Chunked {
        input,
        cuts,
        next_cut: 0,
        piece_left: 0,
        reads: 0,
    };
    let before_allocations = ALLOCATIONS.with(Cell::get);
    let live_before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(live_before));
    let mut headers = 0;
    // Until the client leaves, or a bad frame makes the server reply and close.
    while let Ok(Some(header)) = framing.read_header(&mut reader) {
        headers += 1;
        let body = match interpret(&header, MAX_FILE_SIZE) {
            Ok(Command::Put { name, size, .. }) => {
                assert!(!name.is_empty() && !name.contains('/') && !name.starts_with('.'));
                assert!(size <= MAX_FILE_SIZE);
                size
            }
            Ok(Command::Get { name }) => {
                assert!(!name.is_empty() && !name.contains('/') && !name.starts_with('.'));
                0
            }
            Ok(Command::List) => 0,
            Err(Refusal::Skip { body, message }) => {
                assert!(!message.is_empty());
                body
            }
            Err(Refusal::Close { message }) => {
                assert!(!message.is_empty());
                break;
            }
        };
        if copy_exact(&mut reader, &mut io::sink(), body).is_err() {
            break;
        }
    }
    Cost {
        headers,
        reads: reader.reads,
        allocations: ALLOCATIONS.with(Cell::get) - before_allocations,
        peak: PEAK.with(Cell::get) - live_before,
    }
}

/// Memory: the header frame, its JSON (a JSON value costs at most a few dozen bytes per byte of
/// input), and the fixed buffers (a 64 KiB read step, the body skipping's chunk) — bounded by
/// the header limit, however long the input or however large the lengths it announces.
fn memory_bound(input_len: usize) -> i64 {
    64 * (input_len as i64).min(MAX_HEADER as i64) + 512 * 1024
}

/// Work: every read returns at least one byte but for the final end of input, and a read is
/// cut short only at a piece's end or where a header, its length or a body ends; every
/// allocation stands for at least one byte of input consumed.
fn check_linear(input: &[u8], cuts: &[usize], cost: &Cost) {
    let len = input.len() as u64;
    let pieces = cuts.len() as u64 + len / cuts.iter().copied().min().unwrap_or(1).max(1) as u64;
    assert!(
        cost.reads <= pieces + 4 * (cost.headers + 1) + len / 1024 + 4,
        "{cost:?} for {len} bytes in {pieces} pieces"
    );
    assert!(
        cost.allocations <= 4 * len + 16 * (cost.headers + 1),
        "{cost:?} for {len} bytes"
    );
    assert!(
        cost.peak <= memory_bound(input.len()),
        "{cost:?} for {len} bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// `struct 'i'` frames around `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_ne_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// JSON values, shallow or deeply nested, with the values the server looks at most.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            "put",
            "get",
            "list",
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "a\0b",
            "电影.mp4",
            "5d41402abc4b2a76b9719d911017c592",
            "\u{202e}txt.exe",
        ])
        .prop_map(|s| Value::String(s.to_string())),
        prop::collection::vec(any::<char>(), 0..300)
            .prop_map(|c| Value::String(c.into_iter().collect())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "cmd",
            "filename",
            "file_name",
            "filesize",
            "file_size",
            "md5",
            "sha256",
            "",
        ])
        .prop_map(str::to_string),
        prop::collection::vec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect()),
    ]
}

/// A header object: mostly the fields the server reads, with any values.
fn header_object() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((key(), json_value()), 0..8).prop_map(|entries| {
        let map: serde_json::Map<String, serde_json::Value> = entries.into_iter().collect();
        serde_json::to_vec(&map).unwrap_or_default()
    })
}

/// JSON text the serializer would never write: deep nesting, huge numbers, long runs.
fn hostile_payload() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        "\"",
        ",",
        ":",
        " ",
        "\n",
        "\\",
        "\\u0000",
        "\\ud800",
        "0",
        "9",
        "-",
        "1e400",
        "18446744073709551616",
        "\"filesize\":",
        "\"cmd\":\"put\"",
        "\"filename\":\"a\"",
        "null",
        "true",
        "\u{fffd}",
        "\u{0}",
    ]);
    (prop::collection::vec((pieces, 1usize..200), 0..40)).prop_map(|runs| {
        runs.into_iter()
            .flat_map(|(piece, times)| piece.repeat(times).into_bytes())
            .collect()
    })
}

/// A message on the wire: a frame around a header (well-formed or not, with a length that is
/// right, short, negative or huge), and some body bytes.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let payload = prop_oneof![
        header_object(),
        hostile_payload(),
        prop::collection::vec(any::<u8>(), 0..200),
    ];
    let length = prop_oneof![
        6 => Just(None),
        1 => any::<i32>().prop_map(Some),
        1 => prop::sample::select(vec![-1i32, i32::MIN, i32::MAX, MAX_HEADER as i32 + 1, 0]).prop_map(Some),
    ];
    (payload, length, prop::collection::vec(any::<u8>(), 0..64)).prop_map(
        |(payload, length, body)| {
            let mut out = match length {
                None => frame(&payload),
                Some(n) => {
                    let mut out = n.to_ne_bytes().to_vec();
                    out.extend_from_slice(&payload);
                    out
                }
            };
            out.extend_from_slice(&body);
            out
        },
    )
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1]),
        prop::collection::vec(1usize..9, 1..16),
        prop::collection::vec(1usize..5000, 1..8),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_in_arbitrary_pieces(
        input in prop::collection::vec(any::<u8>(), 0..4096),
        cuts in cuts(),
    ) {
        let cost = drive(&input, &cuts);
        check_linear(&input, &cuts, &cost);
    }

    #[test]
    fn streams_of_framed_headers_good_and_bad(
        messages in prop::collection::vec(message(), 0..12),
        cuts in cuts(),
    ) {
        let input = messages.concat();
        let cost = drive(&input, &cuts);
        check_linear(&input, &cuts, &cost);
    }
}

// ---------------------------------------------------------------------------------------------
// Worst cases, and work that grows with the input as a straight line

/// Inputs of `n` units of the worst kinds: many small headers, one header of deep nesting, of
/// whitespace, of a long string, of many keys, and a frame announcing far more than it sends.
fn worst_cases(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let list = frame(br#"{"cmd": "list"}"#);
    let refused = frame(br#"{"cmd": "get", "filename": "../../etc/passwd"}"#);
    let skipped = [
        frame(br#"{"cmd": "put", "filename": "../x", "filesize": 3}"#),
        b"abc".to_vec(),
    ]
    .concat();
    let many_keys: String = (0..n / 4).map(|i| format!("\"k{i}\":{i},")).collect();
    vec![
        ("many list headers", list.repeat(n)),
        ("many refused headers", refused.repeat(n)),
        ("many skipped bodies", skipped.repeat(n)),
        ("deep nesting", frame(&b"[".repeat(n))),
        (
            "whitespace",
            frame(&[b"{".as_slice(), &b" ".repeat(n), b"}"].concat()),
        ),
        (
            "a long string",
            frame(
                format!(
                    "{{\"cmd\":\"put\",\"filename\":\"{}\",\"filesize\":0}}",
                    "a".repeat(n)
                )
                .as_bytes(),
            ),
        ),
        (
            "many keys",
            frame(format!("{{{many_keys}\"cmd\":\"list\"}}").as_bytes()),
        ),
        (
            "a huge announced length",
            [i32::MAX.to_ne_bytes().as_slice(), &b"{".repeat(n)].concat(),
        ),
    ]
}

#[test]
fn worst_cases_stay_bounded_and_linear() {
    // Sizes that keep the single-header cases under the 64 KiB limit, so they are parsed.
    let (small, large) = (2_000, 4_000);
    for ((name, a), (_, b)) in worst_cases(small).into_iter().zip(worst_cases(large)) {
        for cuts in [&[1usize][..], &[7, 3, 1], &[65_536]] {
            let (cost_a, cost_b) = (drive(&a, cuts), drive(&b, cuts));
            check_linear(&a, cuts, &cost_a);
            check_linear(&b, cuts, &cost_b);
            // About twice the input, no more than about twice the work: the work per byte of
            // the larger input is at most 10 % over that of the smaller.
            let growth = b.len() as f64 / a.len() as f64;
            for (what, x, y) in [
                ("reads", cost_a.reads, cost_b.reads),
                ("allocations", cost_a.allocations, cost_b.allocations),
            ] {
                assert!(
                    y as f64 <= 1.1 * growth * x as f64 + 64.0,
                    "{name}, pieces {cuts:?}: {what} grew from {x} to {y} when the input grew from {} to {} bytes",
                    a.len(),
                    b.len()
                );
            }
        }
    }
}

#[test]
fn a_header_over_the_limit_is_refused_before_it_is_read() {
    for len in [MAX_HEADER as i32 + 1, i32::MAX] {
        let input = [len.to_ne_bytes().as_slice(), &[b' '; 100_000]].concat();
        let cost = drive(&input, &[4096]);
        assert_eq!(cost.headers, 0, "{cost:?}");
        // Only the length was read: nothing of the announced frame.
        assert!(cost.reads <= 2, "{cost:?}");
        assert!(cost.peak < 64 * 1024, "{cost:?}");
    }
}
