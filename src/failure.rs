//! [`Failure`]: what went wrong with one request, as passed to `handle_error`.

use std::any::Any;
use std::fmt;
use std::io;

/// Why a request failed. Passed, with the peer's address, to the server's `handle_error` hook
/// (see [`Builder::handle_error`](crate::Builder::handle_error)); the default hook logs it with
/// `log::error!`, throttled. A failure costs only its own request: the server keeps serving.
#[derive(Debug)]
#[non_exhaustive]
pub enum Failure {
    /// `setup`, `handle` or `finish` returned an error.
    Error(io::Error),
    /// `setup`, `handle` or `finish` panicked; the panic message is kept.
    Panic(String),
    /// A datagram was larger than the server's `max_packet_size` and was dropped rather than
    /// handed to the handler cut short.
    Truncated {
        /// The configured limit the datagram exceeded.
        max_packet_size: usize,
    },
}

impl Failure {
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        Failure::Panic(message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(e) => write!(f, "handler error: {e}"),
            Failure::Panic(message) => write!(f, "handler panicked: {message}"),
            Failure::Truncated { max_packet_size } => write!(
                f,
                "datagram larger than max_packet_size ({max_packet_size} bytes) was dropped as truncated"
            ),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Error(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_messages() {
        let from_str = Failure::from_panic(Box::new("boom"));
        let from_string = Failure::from_panic(Box::new(String::from("bang")));
        let other = Failure::from_panic(Box::new(42u8));
        assert_eq!(from_str.to_string(), "handler panicked: boom");
        assert_eq!(from_string.to_string(), "handler panicked: bang");
        assert!(matches!(other, Failure::Panic(m) if m.contains("non-string")));
    }
}
