//! [`PreforkRequests`]: what the signal relay asks of a prefork supervisor, kept with the state
//! every part of a server shares.

use std::sync::atomic::{AtomicBool, AtomicUsize};

/// What SIGTTIN, SIGTTOU and SIGHUP ask of a prefork parent: set by the signal relay, taken by
/// the supervisor on its next wake-up.
#[derive(Debug, Default)]
pub(crate) struct PreforkRequests {
    /// Workers to add (SIGTTIN).
    pub(crate) more: AtomicUsize,
    /// Workers to remove (SIGTTOU).
    pub(crate) fewer: AtomicUsize,
    /// A rolling reload (SIGHUP).
    pub(crate) reload: AtomicBool,
    /// A binary upgrade (SIGUSR2).
    pub(crate) upgrade: AtomicBool,
    /// Set once a binary upgrade's new program serves the socket: this server must leave the
    /// socket file of a Unix server in place when it closes.
    pub(crate) handed_over: AtomicBool,
}
