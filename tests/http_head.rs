//! The unit and property tests of `http_hello`'s request-head scanner and parser
//! (`examples/http_hello/head.rs`): `cargo test` does not run an example's own tests, so this
//! test binary includes the module.

#[allow(dead_code)]
#[path = "../examples/http_hello/head.rs"]
mod head;
