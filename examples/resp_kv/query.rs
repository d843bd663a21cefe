//! One connection's query buffer: the bytes received and not yet answered, and the parser's
//! place in them.
//!
//! The buffer grows only when it is full of an unfinished command, so its size follows the bytes
//! that have arrived: it doubles, or grows to the exact length of a command whose last argument is
//! arriving, never past [`MAX_QUERY`], and only with the [`Charge`]'s consent. It shrinks back
//! once the connection has caught up. An unfinished command is moved to the front at most once,
//! so with the incremental [`Parser`] the work per byte received is bounded whatever the chunking:
//! [`Query::steps`] counts it.

use std::ops::Range;

use crate::budget::Charge;
use crate::protocol::{Parsed, Parser, MAX_BULK};

/// Initial size of the buffer.
pub const INITIAL: usize = 16 * 1024;
/// Free space wanted before a read: at least the `StreamRequest`'s own buffer, so the read skips
/// that buffer and lands here directly.
pub const READ_CHUNK: usize = 8 * 1024;
/// Most input one connection may hold unanswered (a command still arriving): a `SET` of a key
/// and a value of [`MAX_BULK`] each, and some.
pub const MAX_QUERY: usize = 2 * MAX_BULK + 64 * 1024;
/// Argument slots to start with; the table doubles as a command needs more.
pub const INITIAL_ARGS: usize = 16;
/// A buffer larger than this goes back to [`INITIAL`] once it holds little.
const SHRINK_ABOVE: usize = 4 * INITIAL;
/// An argument table larger than this goes back to [`INITIAL_ARGS`] between commands.
const SHRINK_ARGS_ABOVE: usize = 64 * INITIAL_ARGS;

/// What [`Query::next`] found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A complete command: see [`Query::command`], then [`Query::consume`] it.
    Command,
    /// No complete command: read more with [`Query::room`] and [`Query::filled`].
    Incomplete,
    /// Not RESP: reply with this error and close.
    Error(&'static str),
    /// The command needs more argument slots than the budget allows.
    OutOfMemory,
}

/// Why [`Query::room`] has no room for a read.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The unfinished command is over [`MAX_QUERY`].
    TooBig,
    /// The budget cannot hold a larger buffer.
    OutOfMemory,
}

/// The bytes received on one connection and the parser's place in them.
#[derive(Debug)]
pub struct Query {
    /// Received bytes are `buf[start..filled]`; the rest is zeroed room for reads.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// Length of the complete command at `start`, after [`Step::Command`].
    used: usize,
    parser: Parser,
    /// Bytes moved or zeroed in the buffer.
    moved: u64,
}

impl Query {
    /// What a new query takes: reserve it before [`new`](Self::new).
    pub const INITIAL_MEMORY: usize = INITIAL + INITIAL_ARGS * std::mem::size_of::<Range<usize>>();

    /// An empty query of [`INITIAL_MEMORY`](Self::INITIAL_MEMORY) bytes.
    pub fn new() -> Query {
        Query {
            buf: vec![0; INITIAL],
            start: 0,
            filled: 0,
            used: 0,
            parser: Parser::new(INITIAL_ARGS),
            moved: 0,
        }
    }

    /// Bytes the buffer and the argument table take.
    pub fn memory(&self) -> usize {
        self.buf.capacity() + self.parser.memory()
    }

    /// Bytes received and not yet consumed.
    pub fn pending(&self) -> usize {
        self.filled - self.start
    }

    /// Work done so far: bytes the parser examined, plus bytes moved or zeroed in the buffer.
    pub fn steps(&self) -> u64 {
        self.parser.examined() + self.moved
    }

    /// Parses on from where the last call stopped, skipping empty commands.
    pub fn next(&mut self, charge: &mut Charge) -> Step {
        loop {
            match self.parser.parse(&self.buf[self.start..self.filled]) {
                Parsed::Command(used) => {
                    self.used = used;
                    return Step::Command;
                }
                Parsed::Empty(used) => self.start += used,
                Parsed::Incomplete => return Step::Incomplete,
                Parsed::Error(what) => return Step::Error(what),
                Parsed::Full => {
                    if !grow_args(&mut self.parser, charge) {
                        return Step::OutOfMemory;
                    }
                }
            }
        }
    }

    /// The complete command found by [`next`](Self::next): its bytes, and its arguments as ranges
    /// into them.
    pub fn command(&self) -> (&[u8], &[Range<usize>]) {
        (&self.buf[self.start..self.filled], self.parser.args())
    }

    /// Drops the command found by [`next`](Self::next), to parse the one after it.
    pub fn consume(&mut self) {
        self.start += self.used;
        self.used = 0;
        self.parser.reset();
    }

    /// Room to read into, at least [`READ_CHUNK`] bytes when the limits allow: moves an
    /// unfinished command to the front, or grows the buffer within the budget.
    pub fn room(&mut self, charge: &mut Charge) -> Result<&mut [u8], Refused> {
        if self.start == self.filled {
            (self.start, self.filled) = (0, 0);
        }
        if self
            .parser
            .needed()
            .is_some_and(|needed| needed > MAX_QUERY)
        {
            return Err(Refused::TooBig);
        }
        if self.buf.len() - self.filled < READ_CHUNK && self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.moved += self.pending() as u64;
            (self.start, self.filled) = (0, self.pending());
        }
        if self.buf.len() - self.filled < READ_CHUNK {
            // Here the command starts at 0, so `needed` is a length of buffer too.
            let len = self.buf.len();
            if len >= MAX_QUERY {
                return Err(Refused::TooBig);
            }
            let mut new_len = len * 2;
            if let Some(needed) = self.parser.needed() {
                new_len = new_len.min(needed.max(self.filled + READ_CHUNK));
            }
            let new_len = new_len.min(MAX_QUERY);
            let before = self.buf.capacity();
            if !charge.grow(new_len.saturating_sub(before)) {
                return Err(Refused::OutOfMemory);
            }
            self.buf.reserve_exact(new_len - len);
            self.buf.resize(new_len, 0);
            self.moved += (new_len - len) as u64;
            settle(charge, new_len.max(before), self.buf.capacity());
        }
        Ok(&mut self.buf[self.filled..])
    }

    /// Records that a read put `n` bytes into the [`room`](Self::room).
    pub fn filled(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Gives back memory a burst left behind, once little is pending: call it when the
    /// connection has answered everything it can and is about to wait for more.
    pub fn relax(&mut self, charge: &mut Charge) {
        if self.buf.len() > SHRINK_ABOVE && self.pending() <= INITIAL - READ_CHUNK {
            let before = self.buf.capacity();
            let mut fresh = vec![0; INITIAL];
            fresh[..self.pending()].copy_from_slice(&self.buf[self.start..self.filled]);
            self.moved += (INITIAL + self.pending()) as u64;
            (self.buf, self.start, self.filled) = (fresh, 0, self.pending());
            settle(charge, before, self.buf.capacity());
        }
        relax_args(&mut self.parser, charge);
    }
}

/// Doubles `parser`'s argument table (or grows it to what the command announced), within budget:
/// `false` if the budget cannot hold it.
pub fn grow_args(parser: &mut Parser, charge: &mut Charge) -> bool {
    let have = parser.args().len();
    let slots = match parser.args_wanted() {
        Some(wanted) => (have * 2).min(wanted),
        None => have * 2,
    }
    .max(have + 1);
    let before = parser.memory();
    let after = slots * std::mem::size_of::<Range<usize>>();
    if !charge.grow(after.saturating_sub(before)) {
        return false;
    }
    parser.grow_args(slots);
    settle(charge, after, parser.memory());
    true
}

/// Gives back what a command of many arguments left in `parser`'s table, between commands.
pub fn relax_args(parser: &mut Parser, charge: &mut Charge) {
    if parser.memory() > SHRINK_ARGS_ABOVE * std::mem::size_of::<Range<usize>>() {
        let before = parser.memory();
        parser.shrink_args(INITIAL_ARGS);
        settle(charge, before, parser.memory());
    }
}

/// Brings the charge from `charged` to `actual` bytes, when an allocation came out other than
/// planned (a shrink, or an allocator that gave more).
fn settle(charge: &mut Charge, charged: usize, actual: usize) {
    if actual < charged {
        charge.shrink(charged - actual);
    } else if actual > charged {
        // Already allocated: record it, even past the limit, so the count stays true.
        if !charge.grow(actual - charged) {
            charge.force(actual - charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Budget;
    use proptest::prelude::*;

    /// What a connection makes of its input, command by command.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Command(Vec<Vec<u8>>),
        Error(&'static str),
        OutOfMemory,
        TooBig,
    }

    /// Feeds `input` to a query as a connection does (answer every complete command, relax, make
    /// room, read), in reads cut at `cuts` and never larger than the room; after every step
    /// checks that the budget counts exactly what the query holds.
    fn serve(input: &[u8], cuts: &[usize], budget: &Budget) -> (Vec<Outcome>, Query) {
        let mut charge = Charge::new(budget, Query::INITIAL_MEMORY).expect("room to start");
        let mut query = Query::new();
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        ends.push(input.len());
        ends.sort_unstable();
        let (mut received, mut outcomes) = (0, Vec::new());
        let check = |query: &Query, charge: &Charge| {
            assert_eq!(charge.held(), query.memory(), "the budget is out of step");
            assert!(budget.used() <= budget.limit());
            assert!(query.memory() <= MAX_QUERY + 2 * crate::protocol::MAX_ARGS * 16);
        };
        let mut ends = ends.into_iter().peekable();
        loop {
            // Answer every complete command.
            loop {
                match query.next(&mut charge) {
                    Step::Command => {
                        let (bytes, args) = query.command();
                        let args = args.iter().map(|r| bytes[r.clone()].to_vec()).collect();
                        outcomes.push(Outcome::Command(args));
                        query.consume();
                    }
                    Step::Incomplete => break,
                    Step::Error(what) => {
                        outcomes.push(Outcome::Error(what));
                        return (outcomes, query);
                    }
                    Step::OutOfMemory => {
                        outcomes.push(Outcome::OutOfMemory);
                        return (outcomes, query);
                    }
                }
                check(&query, &charge);
            }
            // Then read, up to the next cut.
            while ends.next_if(|&end| end <= received).is_some() {}
            let Some(&end) = ends.peek() else {
                return (outcomes, query);
            };
            query.relax(&mut charge);
            check(&query, &charge);
            let room = match query.room(&mut charge) {
                Ok(room) => room,
                Err(refused) => {
                    outcomes.push(match refused {
                        Refused::TooBig => Outcome::TooBig,
                        Refused::OutOfMemory => Outcome::OutOfMemory,
                    });
                    return (outcomes, query);
                }
            };
            let n = room.len().min(end - received);
            room[..n].copy_from_slice(&input[received..received + n]);
            query.filled(n);
            received += n;
            check(&query, &charge);
        }
    }

    /// A command of `count` arguments, each `x`.
    fn many_args(count: usize) -> Vec<u8> {
        let mut input = format!("*{count}\r\n").into_bytes();
        for _ in 0..count {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
        input
    }

    #[test]
    fn a_trickled_command_costs_steps_linear_in_its_bytes() {
        // The attack on the connection: a burst, then a few bytes per read.
        let mut input = many_args(63_001);
        input.truncate(input.len() - 7);
        let burst = input.len() - 3000 * 7;
        let cuts: Vec<usize> = std::iter::once(burst)
            .chain((burst..input.len()).step_by(5))
            .collect();
        let budget = Budget::new(usize::MAX);
        let (outcomes, query) = serve(&input, &cuts, &budget);
        assert!(outcomes.is_empty());
        assert_eq!(query.pending(), input.len());
        assert!(
            query.steps() <= 4 * input.len() as u64,
            "{} steps for {} bytes",
            query.steps(),
            input.len()
        );
    }

    #[test]
    fn a_large_argument_takes_about_its_size_and_only_as_it_arrives() {
        let len = 3 * 1024 * 1024 + 12345;
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${len}\r\n").into_bytes();
        input.resize(input.len() + len, b'v');
        input.extend_from_slice(b"\r\n");
        let budget = Budget::new(usize::MAX);
        // Half of it: the buffer has grown with what arrived, not to the announced length.
        let (outcomes, query) = serve(&input[..input.len() / 2], &[], &budget);
        assert!(outcomes.is_empty());
        assert!(query.memory() <= input.len(), "{}", query.memory());
        // All of it: one buffer of about its size, not the next power of two.
        let (outcomes, query) = serve(&input, &[], &budget);
        assert_eq!(outcomes.len(), 1);
        assert!(
            query.memory() <= input.len() + 2 * READ_CHUNK,
            "{}",
            query.memory()
        );
        // Within a budget that cannot hold it: refused, and never past the budget.
        let small = Budget::new(1024 * 1024);
        let (outcomes, _) = serve(&input, &[100, 500_000], &small);
        assert_eq!(outcomes, [Outcome::OutOfMemory]);
        assert!(small.used() <= small.limit());
        assert!(small.refusals() >= 1);
    }

    #[test]
    fn memory_goes_back_after_a_burst() {
        let mut input = many_args(100_000);
        input.extend_from_slice(b"PING\r\n");
        let budget = Budget::new(usize::MAX);
        let (outcomes, mut query) = serve(&input, &[], &budget);
        assert_eq!(outcomes.len(), 2);
        assert!(query.memory() > 1024 * 1024);
        let mut charge = Charge::new(&budget, 0).unwrap();
        // `serve`'s charge is gone with it; account the query afresh to watch it shrink.
        charge.force(query.memory());
        query.relax(&mut charge);
        assert_eq!(query.memory(), Query::INITIAL_MEMORY);
        assert_eq!(charge.held(), Query::INITIAL_MEMORY);
    }

    /// Bytes close to RESP: pieces chosen by `kind`, filled from `n`.
    fn piece((kind, n): (u8, u64)) -> Vec<u8> {
        match kind {
            0 => b"*".to_vec(),
            1 => b"$".to_vec(),
            2 => b"\r\n".to_vec(),
            3 => (n % 4).to_string().into_bytes(),
            4 => (n % 40_000).to_string().into_bytes(),
            5 => vec![b'x'; (n % 20_000) as usize],
            6 => b"$1\r\nx\r\n".repeat((n % 3000) as usize),
            _ => n.to_le_bytes()[..(n % 9) as usize].to_vec(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_input_stays_within_the_budget_and_parses_as_with_no_limit(
            pieces in prop::collection::vec((0u8..8, any::<u64>()), 0..60),
            cuts in prop::collection::vec(any::<usize>(), 0..80),
            limit in 20_000usize..400_000,
        ) {
            let input: Vec<u8> = pieces.into_iter().flat_map(piece).collect();
            let free = Budget::new(usize::MAX);
            let (unlimited, query) = serve(&input, &cuts, &free);
            prop_assert!(query.steps() <= 8 * input.len() as u64 + 64);
            let (whole, _) = serve(&input, &[], &free);
            prop_assert_eq!(&whole, &unlimited);
            // Within a budget: the same, or the same up to a refusal.
            let budget = Budget::new(limit);
            let (limited, _) = serve(&input, &cuts, &budget);
            prop_assert!(budget.used() == 0);
            match limited.split_last() {
                Some((Outcome::OutOfMemory, before)) => {
                    prop_assert!(before.len() <= unlimited.len());
                    prop_assert_eq!(before, &unlimited[..before.len()]);
                }
                _ => prop_assert_eq!(&limited, &unlimited),
            }
        }
    }
}
