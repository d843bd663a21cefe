//! Socket plumbing below the server: creating and binding sockets with their options, waiting for
//! readiness, and classifying `accept`/`recv` errors.

pub(crate) mod bind;
pub(crate) mod errors;
pub(crate) mod gate;
pub(crate) mod options;
pub(crate) mod poll;
pub(crate) mod unix_path;
pub(crate) mod write;
