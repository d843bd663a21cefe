//! [`Ticket`]: a request that goes on after its handler returned, still counted as active until
//! whatever took it over ends it.

use std::sync::Arc;

use super::Shared;
use crate::stats::Ending;

/// A request passed on (a message server's accepting handler hands each connection to its loop):
/// it stays active in the server's counters until the ticket is dropped, which ends it as
/// [`end`](Self::end) last said — `Rejected` if nothing took it over.
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    ending: Ending,
}

impl Ticket {
    /// A ticket for a request already counted as started.
    pub(crate) fn new(shared: Arc<Shared>) -> Ticket {
        Ticket {
            shared,
            ending: Ending::Rejected,
        }
    }

    /// How the request will have ended when the ticket is dropped.
    pub(crate) fn end(&mut self, ending: Ending) {
        self.ending = ending;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.counters.request_ended(self.ending);
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("ending", &self.ending)
            .finish_non_exhaustive()
    }
}
