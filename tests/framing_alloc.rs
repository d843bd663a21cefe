//! Hostile lengths never cause large allocations, and a steady echo allocates nothing per frame:
//! this binary counts allocations, and the largest one, while the framing reads and writes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;

use socketserver::framing::{ByteOrder, Framing, LengthPrefix, Width};

/// The system allocator, noting for each thread how many requests it served and the largest.
struct Counting;

thread_local! {
    // Per thread, as other tests run meanwhile on other threads. Const-initialised and without
    // a destructor, so the allocator may use them.
    /// The largest allocation or reallocation this thread made since the last reset.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// How many allocations and reallocations this thread made.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `read_frame` on `input` and returns its error and the largest allocation made
/// meanwhile; then the same for `read_frame_into` with an empty buffer, which must fail the same
/// way and allocate no more.
fn measure(framing: Framing, input: &[u8]) -> (io::Error, usize) {
    LARGEST.set(0);
    let result = framing.read_frame(&mut &input[..]);
    let largest = LARGEST.get();
    let err = result.expect_err("malformed input must be an error");

    let mut buf = Vec::new();
    LARGEST.set(0);
    let into = framing.read_frame_into(&mut &input[..], &mut buf);
    let largest_into = LARGEST.get();
    let err_into = into.expect_err("malformed input must be an error for read_frame_into too");
    assert_eq!(err_into.kind(), err.kind());
    assert!(buf.is_empty());
    assert!(
        largest_into < SMALL,
        "read_frame_into allocated {largest_into} bytes"
    );
    (err, largest)
}

/// How many allocations this thread made while `f` ran, and the largest.
fn count(f: impl FnOnce()) -> (usize, usize) {
    LARGEST.set(0);
    let before = ALLOCATIONS.with(Cell::get);
    f();
    (ALLOCATIONS.with(Cell::get) - before, LARGEST.get())
}

const SMALL: usize = 256 * 1024;

#[test]
fn a_struct_i_header_announcing_2_31_minus_1_bytes_allocates_nothing_large() {
    let mut input = i32::MAX.to_ne_bytes().to_vec();
    input.extend_from_slice(b"{\"cmd\": \"put\"}");
    let (err, largest) = measure(Framing::python_struct_i(), &input);
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("2147483647"), "{err}");
    assert!(largest < SMALL, "allocated {largest} bytes");
}

#[test]
fn an_eight_byte_length_of_u64_max_allocates_nothing_large() {
    let framing = Framing::new()
        .prefix(LengthPrefix::new(Width::Eight, ByteOrder::Little, false))
        .max_frame_len(u64::MAX);
    let (err, largest) = measure(framing, &[0xff; 8]);
    // Accepted by the limit, but the stream ends long before: memory grew only with the input.
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(largest < SMALL, "allocated {largest} bytes");
}

#[test]
fn a_frame_under_the_limit_but_cut_short_allocates_only_what_arrived() {
    let mut input = (8u32 * 1024 * 1024).to_be_bytes().to_vec();
    input.extend_from_slice(&[7u8; 100]);
    let (err, largest) = measure(Framing::new(), &input);
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(err.to_string().contains("100 of 8388608"), "{err}");
    assert!(largest < SMALL, "allocated {largest} bytes");
}

#[test]
fn negative_lengths_allocate_nothing_large() {
    for value in [-1i32, i32::MIN] {
        let (err, largest) = measure(Framing::python_struct_i(), &value.to_ne_bytes());
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(largest < SMALL, "allocated {largest} bytes");
    }
}

#[test]
fn a_16_mib_length_with_no_payload_allocates_nothing_large() {
    // echo_server's framing: frames of up to 16 MiB. The length is accepted, nothing follows.
    let framing = Framing::new().max_frame_len(16 * 1024 * 1024);
    let (err, largest) = measure(framing, &(16u32 * 1024 * 1024).to_be_bytes());
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    assert!(largest < SMALL, "allocated {largest} bytes");
}

/// A writer into a buffer of fixed capacity that takes everything at once, vectored or not, like
/// a socket with room in its send buffer; it never allocates.
struct Wire {
    sent: Vec<u8>,
}

impl io::Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.sent.len() + total > self.sent.capacity() {
            return Err(io::Error::other("the test's wire is full"));
        }
        for buf in bufs {
            self.sent.extend_from_slice(buf);
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_steady_echo_of_same_size_frames_allocates_nothing_per_frame() {
    const FRAMES: usize = 200;
    let framing = Framing::new();
    for size in [64usize, 16 * 1024, 100 * 1024] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut input = Vec::new();
        for _ in 0..FRAMES + 1 {
            framing.write_frame(&mut input, &payload).unwrap();
        }
        let mut reader = &input[..];
        let mut wire = Wire {
            sent: Vec::with_capacity(input.len()),
        };
        // The first frame sizes the connection's buffer; every later one reuses it.
        let mut frame = Vec::new();
        assert!(framing.read_frame_into(&mut reader, &mut frame).unwrap());
        framing.write_frame_vectored(&mut wire, &frame).unwrap();
        let (allocations, largest) = count(|| {
            for _ in 0..FRAMES {
                assert!(framing.read_frame_into(&mut reader, &mut frame).unwrap());
                framing.write_frame_vectored(&mut wire, &frame).unwrap();
            }
            assert!(!framing.read_frame_into(&mut reader, &mut frame).unwrap());
        });
        assert_eq!(
            allocations, 0,
            "{FRAMES} echoed frames of {size} bytes made {allocations} allocations (largest {largest} bytes)"
        );
        assert!(wire.sent == input, "the echo of {size}-byte frames differs");
    }
}
