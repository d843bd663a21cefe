//! The machinery behind the process-based modes ([`Process`](crate::Process) and
//! [`Prefork`](crate::Prefork)), done without `fork()` in Rust code and without the `nix` crate.
//!
//! A child is this same program started again with [`std::process::Command`] — same executable,
//! same arguments — with one socket inherited and its role in a private environment variable.
//! When the child's `main` builds the same server, the builder notices the role and, instead of
//! binding, adopts the inherited socket: a connection (or a datagram) to handle once, or the shared
//! server socket to serve as a worker. So handlers are rebuilt by the program's own code; a closure
//! works as long as the program builds it the same way on every run.

mod child;
mod handoff;
mod report;
mod role;
mod spawn;
mod upgrade;

pub(crate) use child::{adopt_socket, lifeline_watch, read_handoff};
pub(crate) use handoff::{Handoff, Received};
pub(crate) use report::{report_final, start_reporting, Reports};
pub use role::is_worker;
pub(crate) use role::{
    claim, decode_mark, inherited, inherited_fd, ProcessKind, Role, UPGRADE_VAR,
};
pub(crate) use spawn::{program, spawn_child, spawn_worker};
pub(crate) use upgrade::{Upgrade, UpgradeState};
