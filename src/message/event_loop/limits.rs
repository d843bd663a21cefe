//! The loop's limits: each connection's next time limit on the timer heap (with TLS, its
//! handshake's deadline first), closing those past it, and the memory budget's shedding.

use super::*;

impl<H: MessageHandler, F: Framer> EventLoop<H, F> {
    /// When the connection's next limit passes, and which. During a TLS handshake only the
    /// handshake's deadline counts (the reason given is unused: a late handshake is refused).
    pub(super) fn next_limit(&self, conn: &Conn<H, F>) -> Option<(Instant, Closed)> {
        #[cfg(feature = "tls")]
        if let Some(by) = conn.tls.as_ref().and_then(|tls| tls.deadline()) {
            return Some((by, Closed::Error(io::ErrorKind::TimedOut)));
        }
        let s = &self.settings;
        let mut next: Option<(Instant, Closed)> = None;
        let mut consider = |at: Option<Instant>, why: Closed| {
            if let Some(at) = at {
                if next.as_ref().is_none_or(|(t, _)| at < *t) {
                    next = Some((at, why));
                }
            }
        };
        let after =
            |from: Instant, limit: Option<Duration>| limit.and_then(|d| from.checked_add(d));
        consider(after(conn.opened_at, s.lifetime), Closed::Lifetime);
        if !conn.busy() {
            consider(after(conn.last_active, s.idle), Closed::IdleTimeout);
            // Messages held back because the peer does not read its replies are not late: the
            // idle timeout (no byte moving either way) covers that peer.
            let held = conn.pending() > s.max_pending_output;
            if let Some(since) = conn.message_since.filter(|_| !held) {
                consider(after(since, s.message), Closed::MessageTimeout);
            }
        }
        if let Some(by) = conn.close_by {
            let why = conn.closing.clone().unwrap_or(Closed::ByHandler);
            consider(Some(by), why);
        }
        if conn.draining && !conn.received && conn.closing.is_none() {
            consider(
                conn.opened_at.checked_add(s.first_wait),
                Closed::ServerStopped,
            );
        }
        next
    }

    /// Makes sure the timers look at `id` no later than its next limit.
    pub(super) fn arm(&mut self, id: ConnectionId) {
        let Some(conn) = self.slots.get(id) else {
            return;
        };
        let Some((at, _)) = self.next_limit(conn) else {
            return;
        };
        if conn.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        self.timers.arm(at, id);
        if let Some(conn) = self.conn(id) {
            conn.armed = Some(at);
        }
    }

    /// Closes the connections whose limits have passed.
    pub(super) fn expire(&mut self, now: Instant) {
        while let Some(id) = self.timers.pop_due(now) {
            let Some(conn) = self.conn(id) else { continue };
            conn.armed = None;
            let Some(conn) = self.slots.get(id) else {
                continue;
            };
            match self.next_limit(conn) {
                Some((at, why)) if at <= now => {
                    #[cfg(feature = "tls")]
                    if let Some(tls) = conn.tls.as_ref().filter(|_| !conn.opened) {
                        let late = tls.late();
                        self.refuse(id, late);
                        continue;
                    }
                    log::debug!("{}: connection {id}: {why}", conn.info.peer);
                    self.close(id, why);
                }
                _ => self.arm(id),
            }
        }
    }

    /// Over the memory budget: closes the connections that hold the most.
    pub(super) fn shed(&mut self) {
        let mut holders: Vec<(ConnectionId, usize)> = self
            .slots
            .ids()
            .into_iter()
            .filter_map(|id| {
                let conn = self.slots.get(id)?;
                // One closed already waits for its handler to come back from a worker.
                (!conn.abandoned).then_some((id, conn.charge))
            })
            .collect();
        let used = self.budget.used();
        let victims = self.budget.victims(&mut holders);
        let largest = holders.first().map_or(0, |h| h.1);
        for &id in &victims {
            self.close(id, Closed::OverBudget);
        }
        self.shed += victims.len() as u64;
        if let Some(held_back) = self.shed_log.admit() {
            log::warn!(
                "message server: its connections held {used} bytes in their buffers, over the \
                 budget of {} (MessageBuilder::max_buffered_memory); closed the {} holding the most \
                 (the largest held {largest}); {} closed for the budget so far ({held_back} \
                 such reports not logged)",
                self.budget.limit(),
                victims.len(),
                self.shed
            );
        }
    }
}
