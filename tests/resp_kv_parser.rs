//! The unit tests of `resp_kv`'s parser, query buffer and memory budget, which live in the
//! example's own files (`cargo test` does not run an example's unit tests): arbitrary and
//! adversarial bytes in arbitrary chunkings, memory bounds, work linear in the input.

// The example's modules, compiled here for their tests; not everything in them is used.
#[allow(dead_code)]
#[path = "../examples/resp_kv/budget.rs"]
mod budget;
#[allow(dead_code)]
#[path = "../examples/resp_kv/output.rs"]
mod output;
#[allow(dead_code)]
#[path = "../examples/resp_kv/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "../examples/resp_kv/query.rs"]
mod query;
