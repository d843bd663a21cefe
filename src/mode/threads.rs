//! Naming and sizing the threads the modes start.

use std::io;
use std::thread::{Builder, JoinHandle};

/// How mode threads are named and sized ([`Builder::thread_name`](crate::Builder::thread_name),
/// [`Builder::thread_stack_size`](crate::Builder::thread_stack_size)).
#[derive(Debug, Clone)]
pub struct ThreadSettings {
    pub(crate) prefix: String,
    pub(crate) stack_size: Option<usize>,
}

impl Default for ThreadSettings {
    fn default() -> Self {
        ThreadSettings {
            prefix: "socketserver".to_string(),
            stack_size: None,
        }
    }
}

impl ThreadSettings {
    /// Starts a thread named `<prefix>-<role>`, e.g. `socketserver-pool-3`.
    pub(crate) fn spawn<F>(&self, role: &str, body: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() + Send + 'static,
    {
        let mut builder = Builder::new().name(format!("{}-{role}", self.prefix));
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        builder.spawn(body)
    }
}
