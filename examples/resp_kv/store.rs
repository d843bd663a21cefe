//! The shared key-value store: strings and lists in a fixed number of shards, each behind its own
//! lock, so connections touching different keys rarely wait for each other.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// A power of two, so a key's shard is a mask of its hash.
const SHARDS: usize = 64;

/// A stored value.
#[derive(Debug)]
pub enum Value {
    /// Set by `SET` or `INCR`. Shared, so a large value is sent to a slow client without holding
    /// the shard's lock and without a copy; `SET` overwrites it in place when no reply holds it.
    Str(Arc<Vec<u8>>),
    /// Built by `LPUSH`/`RPUSH`; removed when it becomes empty, as in Redis.
    List(VecDeque<Vec<u8>>),
}

/// One shard's keys.
pub type Shard = HashMap<Vec<u8>, Value>;

/// Keys spread over [`SHARDS`] locked maps.
#[derive(Debug)]
pub struct Store {
    shards: Vec<Mutex<Shard>>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Locks the shard holding `key`. A handler that panicked while holding the lock left the map
    /// itself consistent (every update is a single map operation), so a poisoned lock is used as is.
    pub fn shard(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        let index = (fnv1a(key) as usize) & (SHARDS - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// FNV-1a: cheap and good enough to spread keys over shards (the maps hash again with SipHash).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
