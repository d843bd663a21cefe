//! The state every part of a server shares, on the ground floor so that every layer can reach it
//! without importing the server: the handle and what it holds ([`ServerHandle`], the counters'
//! owner), the stop signal, the failure log, the line to systemd, and what signals ask of a
//! prefork supervisor. Nothing here imports the server, the modes, the handlers or the loops.

pub(crate) mod failure_log;
pub(crate) mod handle;
pub(crate) mod notify;
pub(crate) mod prefork_requests;
pub(crate) mod stop;
#[cfg(feature = "message")]
mod ticket;

pub use handle::ServerHandle;
pub(crate) use handle::Shared;
pub(crate) use notify::Notifier;
pub(crate) use prefork_requests::PreforkRequests;
pub(crate) use stop::{StopSignal, FIRST_REQUEST_WAIT};
#[cfg(feature = "message")]
pub(crate) use ticket::Ticket;
