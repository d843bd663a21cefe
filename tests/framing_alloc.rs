//! Hostile lengths never cause large allocations: this binary counts the largest single
//! allocation while the framing reads malformed input.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use socketserver::framing::{ByteOrder, Framing, LengthPrefix, Width};

/// The system allocator, noting the largest request it served since the last reset.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Tests in this binary measure one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `read` on `input` and returns its error and the largest allocation made meanwhile.
fn measure(framing: Framing, input: &[u8]) -> (io::Error, usize) {
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    LARGEST.store(0, Ordering::Relaxed);
    let result = framing.read_frame(&mut &input[..]);
    let largest = LARGEST.load(Ordering::Relaxed);
    (
        result.expect_err("malformed input must be an error"),
        largest,
    )
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
