//! The loop's connection table: a slot per connection, reused once it closes, with a generation
//! count so that a [`ConnectionId`] kept past its connection's end (by a `Sender`, a timer or a
//! worker's result) reaches nothing.

use super::connection::Conn;
use super::sender::ConnectionId;

struct Slot<H, F> {
    generation: u32,
    conn: Option<Conn<H, F>>,
}

/// The connections of one loop, by slot.
pub(super) struct Slots<H, F> {
    table: Vec<Slot<H, F>>,
    free: Vec<u32>,
    open: usize,
    /// The most slots there may be (tokens above belong to lingering sockets).
    capacity: usize,
    /// The loop these are the connections of, named in their ids.
    event_loop: u32,
}

impl<H, F> Slots<H, F> {
    pub(super) fn new(capacity: usize, event_loop: u32) -> Self {
        Slots {
            table: Vec::new(),
            free: Vec::new(),
            open: 0,
            capacity,
            event_loop,
        }
    }

    /// How many connections are open.
    pub(super) fn open(&self) -> usize {
        self.open
    }

    /// The connection `id` names, if it is still open.
    pub(super) fn get(&self, id: ConnectionId) -> Option<&Conn<H, F>> {
        let slot = self.table.get(id.slot as usize)?;
        (slot.generation == id.generation).then_some(slot.conn.as_ref()?)
    }

    /// The connection `id` names, if it is still open.
    pub(super) fn get_mut(&mut self, id: ConnectionId) -> Option<&mut Conn<H, F>> {
        let slot = self.table.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.conn.as_mut()
    }

    /// The id of the connection open in `slot` (a readiness event's token names a slot).
    pub(super) fn id_of(&self, slot: usize) -> Option<ConnectionId> {
        let s = self.table.get(slot)?;
        s.conn.as_ref()?;
        Some(ConnectionId {
            event_loop: self.event_loop,
            slot: u32::try_from(slot).ok()?,
            generation: s.generation,
        })
    }

    /// The ids of every open connection, at this moment.
    pub(super) fn ids(&self) -> Vec<ConnectionId> {
        (0..self.table.len())
            .filter_map(|slot| self.id_of(slot))
            .collect()
    }

    /// A free slot for a new connection, and its id; `None` when the table is full.
    pub(super) fn reserve(&mut self) -> Option<ConnectionId> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.table.len())
                    .ok()
                    .filter(|&n| (n as usize) < self.capacity)?;
                self.table.push(Slot {
                    generation: 0,
                    conn: None,
                });
                slot
            }
        };
        let generation = self.table[slot as usize].generation;
        Some(ConnectionId {
            event_loop: self.event_loop,
            slot,
            generation,
        })
    }

    /// Gives back a slot [`reserve`](Self::reserve) handed out that was not filled.
    pub(super) fn unreserve(&mut self, id: ConnectionId) {
        self.free.push(id.slot);
    }

    /// Puts the new connection `conn` in its reserved slot.
    pub(super) fn fill(&mut self, id: ConnectionId, conn: Conn<H, F>) {
        if let Some(slot) = self.table.get_mut(id.slot as usize) {
            slot.conn = Some(conn);
            self.open += 1;
        }
    }

    /// Takes the connection `id` names out of its slot, which is free again under a new
    /// generation.
    pub(super) fn take(&mut self, id: ConnectionId) -> Option<Conn<H, F>> {
        let slot = self.table.get_mut(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let conn = slot.conn.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.slot);
        self.open -= 1;
        Some(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_slot_has_a_new_generation_and_old_ids_reach_nothing() {
        let mut slots: Slots<(), ()> = Slots::new(2, 0);
        let first = slots.reserve().unwrap();
        assert_eq!(first, ConnectionId::of_slot(0));
        assert!(slots.get(first).is_none(), "reserved, not filled");
        slots.unreserve(first);
        let again = slots.reserve().unwrap();
        assert_eq!(again, first, "an unfilled reservation is reused as is");
        let second = slots.reserve().unwrap();
        assert_eq!(second, ConnectionId::of_slot(1));
        assert!(slots.reserve().is_none(), "full at its capacity");
        slots.unreserve(second);
        assert_eq!(slots.open(), 0);
        assert!(slots.take(again).is_none(), "nothing there to take");
    }

    #[test]
    fn ids_name_their_loop() {
        let mut slots: Slots<(), ()> = Slots::new(2, 3);
        let id = slots.reserve().unwrap();
        assert_eq!(id.event_loop, 3);
        assert_ne!(
            id,
            ConnectionId::of_slot(0),
            "the same slot of another loop"
        );
        assert_eq!(id.to_string(), "#0.0@3");
        assert_eq!(ConnectionId::of_slot(0).to_string(), "#0.0");
    }
}
