//! What all connections share: the store, the memory budget, and the counters `INFO` reports.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::budget::Budget;
use crate::store::Store;

/// The server's state, one for all connections.
#[derive(Debug)]
pub struct Shared {
    /// The keys and values.
    pub store: Store,
    /// `--max-memory`: what the connections' buffers may take together.
    pub budget: Budget,
    /// Counters for `INFO`.
    pub stats: Stats,
}

/// Counters kept for `INFO`. A connection adds its bytes and steps every 16 KiB or so and when it
/// ends, not on every read, so the figures may lag that much per open connection.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now.
    pub connections: AtomicUsize,
    /// Bytes received over all connections.
    pub input_bytes: AtomicU64,
    /// Bytes the parsers examined plus bytes moved or zeroed in query buffers: linear in
    /// `input_bytes` however the input is split.
    pub parser_steps: AtomicU64,
}

impl Shared {
    /// The `INFO` text: Redis's `key:value` lines under `# Section` headers.
    pub fn info(&self) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        format!(
            "# Clients\r\nconnected_clients:{}\r\n\
             # Memory\r\nconnection_buffers_bytes:{}\r\nmax_memory_bytes:{}\r\n\
             oom_refusals:{}\r\n\
             # Stats\r\ntotal_net_input_bytes:{}\r\nparser_steps:{}\r\n",
            self.stats.connections.load(Ordering::Relaxed),
            self.budget.used(),
            self.budget.limit(),
            self.budget.refusals(),
            load(&self.stats.input_bytes),
            load(&self.stats.parser_steps),
        )
    }
}
