//! The unit tests of `dns_zone`'s zone-file parser, wire format and answers, which live in the
//! example's own files (`cargo test` does not run an example's unit tests): the master-file
//! subset and its errors, name compression, truncation, and arbitrary bytes that must never
//! panic.

// The example's modules, compiled here for their tests; not everything in them is used.
#[allow(dead_code)]
#[path = "../examples/dns_zone/answer.rs"]
mod answer;
#[allow(dead_code)]
#[path = "../examples/dns_zone/wire.rs"]
mod wire;
#[allow(dead_code)]
#[path = "../examples/dns_zone/zone.rs"]
mod zone;
