//! Which event loop takes a new connection, when a message server runs several
//! ([`MessageBuilder::loops`](crate::message::MessageBuilder::loops)): the one with the fewest
//! connections open, among those not stuck in a handler. The accepting thread hands each
//! connection over (rather than each loop accepting on a `SO_REUSEPORT` socket of its own), so
//! no connection waits in a queue that a stuck loop does not read, and a stop loses none queued
//! on a closing socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::sender::Link;

/// A loop busy with one turn for longer than this (a handler that has not returned) is passed
/// over for new connections, unless every loop is.
const STALL: Duration = Duration::from_millis(100);

/// The loops of one message server, as the accepting thread sees them.
pub(crate) struct Spread {
    lanes: Vec<Lane>,
    /// Where the search for the least loaded loop starts: among equals, the loops take turns.
    turn: AtomicUsize,
    /// How long a turn may last before its loop counts as stuck ([`STALL`]).
    stall: Duration,
}

/// One loop: its link, and how many connections were handed to it and are not closed yet.
struct Lane {
    link: Arc<Link>,
    open: Arc<AtomicUsize>,
}

/// A connection's place on its loop: counted among the loop's open connections until dropped
/// (with the connection, or with the command that carried it if the loop had ended).
pub(crate) struct Seat(Arc<AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Seat {
    /// A seat on no loop, for unit tests.
    #[cfg(test)]
    pub(crate) fn detached() -> Seat {
        Seat(Arc::new(AtomicUsize::new(1)))
    }
}

impl Spread {
    /// The loops reached through `links`, in order (at least one).
    pub(crate) fn new(links: Vec<Arc<Link>>) -> Spread {
        let lanes = links
            .into_iter()
            .map(|link| Lane {
                link,
                open: Arc::new(AtomicUsize::new(0)),
            })
            .collect();
        Spread {
            lanes,
            turn: AtomicUsize::new(0),
            stall: STALL,
        }
    }

    /// The loop with the fewest open connections among those not stuck in a handler (among all,
    /// if every one is), and a seat there for a new connection. `None` only if there is no loop
    /// at all.
    pub(crate) fn pick(&self) -> Option<(&Arc<Link>, Seat)> {
        let lane = match self.lanes.as_slice() {
            [only] => only,
            lanes => {
                let start = self.turn.fetch_add(1, Ordering::Relaxed) % lanes.len();
                let in_turn = (0..lanes.len()).map(|i| &lanes[(start + i) % lanes.len()]);
                let open = |lane: &&Lane| lane.open.load(Ordering::Relaxed);
                let free = in_turn
                    .clone()
                    .filter(|lane| !lane.link.stalled(self.stall));
                free.min_by_key(open).or_else(|| in_turn.min_by_key(open))?
            }
        };
        lane.open.fetch_add(1, Ordering::Relaxed);
        Some((&lane.link, Seat(Arc::clone(&lane.open))))
    }

    /// Every loop's link, in order.
    pub(crate) fn links(&self) -> impl Iterator<Item = &Arc<Link>> {
        self.lanes.iter().map(|lane| &lane.link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(loops: usize) -> Spread {
        let links = (0..loops)
            .map(|_| {
                let poll = mio::Poll::new().unwrap();
                let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
                Link::new(waker).0
            })
            .collect();
        Spread::new(links)
    }

    /// The index of the loop `pick` chose.
    fn picked(spread: &Spread, seats: &mut Vec<Seat>) -> usize {
        let (link, seat) = spread.pick().unwrap();
        seats.push(seat);
        spread.links().position(|l| Arc::ptr_eq(l, link)).unwrap()
    }

    #[test]
    fn equal_loops_take_turns() {
        let spread = spread(3);
        let mut seats = Vec::new();
        let mut counts = [0; 3];
        for _ in 0..30 {
            counts[picked(&spread, &mut seats)] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn a_loop_whose_connections_stay_open_gets_no_new_ones_until_the_others_catch_up() {
        let spread = spread(2);
        let mut stuck = Vec::new();
        let mut others = Vec::new();
        // Ten connections each; then every connection of one loop closes, none of the other's.
        for _ in 0..20 {
            let mut seats = Vec::new();
            let at = picked(&spread, &mut seats);
            match at {
                0 => stuck.extend(seats),
                _ => others.extend(seats),
            }
        }
        assert_eq!((stuck.len(), others.len()), (10, 10));
        others.clear();
        let mut seats = Vec::new();
        let next: Vec<usize> = (0..10).map(|_| picked(&spread, &mut seats)).collect();
        assert_eq!(next, [1; 10], "all to the loop with none open");
        assert_eq!(picked(&spread, &mut seats) + picked(&spread, &mut seats), 1);
    }

    #[test]
    fn a_loop_stuck_in_a_turn_is_passed_over_unless_all_are() {
        let mut spread = spread(3);
        spread.stall = Duration::ZERO;
        let links: Vec<Arc<Link>> = spread.links().cloned().collect();
        links[1].turn_begins();
        std::thread::sleep(Duration::from_millis(5));
        let mut seats = Vec::new();
        let chosen: Vec<usize> = (0..6).map(|_| picked(&spread, &mut seats)).collect();
        assert!(!chosen.contains(&1), "{chosen:?}");
        // Waiting for events again, it is back; with every loop stuck, all are candidates.
        links[1].turn_ends();
        assert_eq!(picked(&spread, &mut seats), 1, "the least loaded again");
        for link in &links {
            link.turn_begins();
        }
        std::thread::sleep(Duration::from_millis(5));
        // Three open on 0 and 2, one on 1.
        let chosen: Vec<usize> = (0..2).map(|_| picked(&spread, &mut seats)).collect();
        assert_eq!(chosen, [1, 1]);
    }

    #[test]
    fn a_turn_counts_as_stalled_only_past_the_limit_and_until_it_ends() {
        let spread = spread(1);
        let link = spread.links().next().unwrap();
        assert!(!link.stalled(Duration::ZERO), "waiting, not in a turn");
        link.turn_begins();
        std::thread::sleep(Duration::from_millis(5));
        assert!(link.stalled(Duration::ZERO));
        assert!(!link.stalled(Duration::from_secs(3600)));
        link.turn_ends();
        assert!(!link.stalled(Duration::ZERO));
    }
}
