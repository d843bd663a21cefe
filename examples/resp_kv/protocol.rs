//! RESP2 requests in, replies out: an incremental parser that finds one complete command at the
//! front of the input without copying it, and helpers that append replies to an output buffer.
//!
//! The parser keeps its place between reads (the state of the command so far, the offset reached,
//! the length of the argument being received), so every byte is examined a bounded number of times
//! however the input is split: an argument's bytes are not looked at, only counted, and a header
//! line is scanned once. [`Parser::examined`] counts the bytes looked at, which the tests and
//! `INFO` use to show the work stays linear in the input.

use std::ops::Range;

/// Largest bulk string accepted in a request. Redis allows 512 MB; a benchmark example has no use
/// for more than this, and a bad peer cannot make it allocate more.
pub const MAX_BULK: usize = 16 * 1024 * 1024;
/// Most arguments in one multibulk command.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest inline command (a line of space-separated words), as in Redis.
pub const MAX_INLINE: usize = 64 * 1024;
/// Longest number (`*<count>` or `$<length>`) before its CR: more is not RESP.
const MAX_NUMBER: usize = 32;

/// What the front of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// One complete command of this many bytes; its arguments are in [`Parser::args`].
    Command(usize),
    /// An empty command (a blank line, `*0`) of this many bytes: skip it.
    Empty(usize),
    /// Not a whole command yet: read more, then call again with the same input and more after it.
    Incomplete,
    /// The argument table is full: make room with [`Parser::grow_args`], then call again.
    Full,
    /// Not RESP: reply with this error and close, as Redis does.
    Error(&'static str),
}

/// Where the parser is in the command at the front of the input. Offsets count from the command's
/// first byte, so they stay right when the caller moves the unfinished command in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing examined: the first byte says inline or multibulk.
    Start,
    /// An inline command, still looking for its newline.
    Inline,
    /// An inline command whose newline is at `newline`: splitting its words from `at`.
    Words { newline: usize, at: usize },
    /// `*<count>\r\n`: reading the count, whose digits start at offset 1.
    Count,
    /// `$<length>\r\n` of the next argument, at offset `line`; `left` arguments to go.
    Length { left: usize, line: usize },
    /// The next argument's `len` bytes from `from`, then CRLF; `left` arguments to go.
    Data {
        left: usize,
        from: usize,
        len: usize,
    },
    /// A complete command of this many bytes; [`Parser::reset`] before the next one.
    Done(usize),
}

/// Parses the command at the front of the input, resuming where the last call stopped.
#[derive(Debug)]
pub struct Parser {
    state: State,
    /// Offset of the next byte to examine in the current line.
    pos: usize,
    /// One range per argument of the current command, into the input.
    args: Vec<Range<usize>>,
    /// Bytes examined since the parser was made.
    examined: u64,
    /// Whether arguments are recorded in `args`; a [`boundaries`](Self::boundaries) parser only
    /// finds where commands end.
    record: bool,
}

impl Parser {
    /// A parser at the start of a command, with room for `args` arguments before it reports
    /// [`Parsed::Full`].
    pub fn new(args: usize) -> Parser {
        Parser {
            state: State::Start,
            pos: 0,
            args: Vec::with_capacity(args.max(1)),
            examined: 0,
            record: true,
        }
    }

    /// A parser that finds where each command ends, and its errors, exactly as [`new`](Self::new)
    /// does, but records no arguments: it holds no table and never reports [`Parsed::Full`].
    /// `--api message`'s framer uses it; the handler then parses the complete command again
    /// with a recording parser.
    #[cfg_attr(not(feature = "message"), allow(dead_code))]
    pub fn boundaries() -> Parser {
        Parser {
            state: State::Start,
            pos: 0,
            args: Vec::new(),
            examined: 0,
            record: false,
        }
    }

    /// Goes on parsing the command at the front of `input`: the same bytes as the last call, and
    /// maybe more after them — until [`reset`](Self::reset), which starts the next command.
    pub fn parse(&mut self, input: &[u8]) -> Parsed {
        loop {
            match self.state {
                State::Start => match input.first() {
                    None => return Parsed::Incomplete,
                    Some(b'*') => (self.state, self.pos) = (State::Count, 1),
                    Some(_) => (self.state, self.pos) = (State::Inline, 0),
                },
                State::Inline => {
                    // A newline may come at offset MAX_INLINE at the latest.
                    let limit = input.len().min(MAX_INLINE + 1);
                    let scan = &input[self.pos.min(limit)..limit];
                    match scan.iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            self.count(i + 1);
                            let newline = self.pos + i;
                            self.state = State::Words { newline, at: 0 };
                        }
                        None => {
                            self.count(scan.len());
                            self.pos = limit;
                            return if limit > MAX_INLINE {
                                Parsed::Error("too big inline request")
                            } else {
                                Parsed::Incomplete
                            };
                        }
                    }
                }
                State::Words { newline, at } => {
                    if let Some(parsed) = self.words(input, newline, at) {
                        return parsed;
                    }
                }
                State::Count => match self.number(input, 1) {
                    None => return Parsed::Incomplete,
                    Some(Err(())) => return Parsed::Error("invalid multibulk length"),
                    Some(Ok((n, next))) => {
                        if n <= 0 {
                            self.reset();
                            return Parsed::Empty(next);
                        }
                        if n as u64 > MAX_ARGS as u64 {
                            return Parsed::Error("invalid multibulk length");
                        }
                        let left = n as usize;
                        (self.state, self.pos) = (State::Length { left, line: next }, next);
                    }
                },
                State::Length { left, line } => {
                    if self.pos == line {
                        match input.get(line) {
                            None => return Parsed::Incomplete,
                            Some(b'$') => self.pos = line + 1,
                            Some(_) => return Parsed::Error("expected '$'"),
                        }
                        self.count(1);
                    }
                    match self.number(input, line + 1) {
                        None => return Parsed::Incomplete,
                        Some(Ok((len, from))) if (0..=MAX_BULK as i64).contains(&len) => {
                            let len = len as usize;
                            self.state = State::Data { left, from, len };
                        }
                        Some(_) => return Parsed::Error("invalid bulk length"),
                    }
                }
                State::Data { left, from, len } => {
                    // The argument's own bytes are only counted, never examined.
                    let end = from + len;
                    if input.len() < end + 2 {
                        return Parsed::Incomplete;
                    }
                    if self.record && self.args.len() == self.args.capacity() {
                        return Parsed::Full;
                    }
                    self.count(2);
                    if &input[end..end + 2] != b"\r\n" {
                        return Parsed::Error("bulk string not followed by CRLF");
                    }
                    if self.record {
                        self.args.push(from..end);
                    }
                    if left == 1 {
                        self.state = State::Done(end + 2);
                    } else {
                        let line = end + 2;
                        (self.state, self.pos) = (
                            State::Length {
                                left: left - 1,
                                line,
                            },
                            line,
                        );
                    }
                }
                State::Done(used) => return Parsed::Command(used),
            }
        }
    }

    /// Splits an inline command's words, from offset `at` to the newline; `None` once done, to go
    /// on to [`State::Done`] or the next command.
    fn words(&mut self, input: &[u8], newline: usize, mut at: usize) -> Option<Parsed> {
        // Whether any word was found, for a parser that does not record them.
        let mut any = !self.args.is_empty();
        let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\r');
        while at < newline {
            let begin = at
                + input[at..newline]
                    .iter()
                    .take_while(|&&b| is_space(b))
                    .count();
            let end = begin
                + input[begin..newline]
                    .iter()
                    .take_while(|&&b| !is_space(b))
                    .count();
            if end > begin {
                any = true;
                if !self.record {
                    // Only whether the line holds a word matters: the rest need not be split.
                    self.count(newline - at);
                    break;
                }
                if self.args.len() == self.args.capacity() {
                    self.state = State::Words { newline, at };
                    return Some(Parsed::Full);
                }
                self.args.push(begin..end);
            }
            self.count(end - at);
            at = end;
        }
        if !any {
            self.reset();
            return Some(Parsed::Empty(newline + 1));
        }
        self.state = State::Done(newline + 1);
        None
    }

    /// Reads the decimal number whose digits start at `digits` and end with CRLF, scanning on
    /// from [`pos`](Self::pos). `None`: the line is not complete yet; `Some(Err(()))`: it is not a
    /// number; otherwise the number and the offset after its line.
    fn number(&mut self, input: &[u8], digits: usize) -> Option<Result<(i64, usize), ()>> {
        let limit = input.len().min(digits + MAX_NUMBER);
        let scan = input.get(self.pos..limit).unwrap_or_default();
        let Some(i) = scan.iter().position(|&b| b == b'\r') else {
            self.count(scan.len());
            self.pos = self.pos.max(limit);
            return (limit == digits + MAX_NUMBER).then_some(Err(()));
        };
        // Stay on the CR until the byte after it has arrived.
        self.count(i);
        self.pos += i;
        let cr = self.pos;
        let lf = *input.get(cr + 1)?;
        self.count(2 + (cr - digits));
        if lf != b'\n' {
            return Some(Err(()));
        }
        Some(parse_i64(&input[digits..cr]).map(|n| (n, cr + 2)).ok_or(()))
    }

    fn count(&mut self, bytes: usize) {
        self.examined += bytes as u64;
    }

    /// The arguments of the command [`parse`](Self::parse) found complete, as ranges into its
    /// input (the first is the command name).
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// Forgets the current command, to parse the next one from its first byte.
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.pos = 0;
        self.args.clear();
    }

    /// Bytes examined so far, over every command.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// The length the current command will have at least, if the parser knows more than what it
    /// has seen: while its last argument arrives, its whole length.
    pub fn needed(&self) -> Option<usize> {
        match self.state {
            State::Data { left: 1, from, len } => Some(from + len + 2),
            _ => None,
        }
    }

    /// How many argument slots the current command needs in all, when known (a multibulk
    /// command announces its count; an inline one does not).
    pub fn args_wanted(&self) -> Option<usize> {
        match self.state {
            State::Length { left, .. } | State::Data { left, .. } => Some(self.args.len() + left),
            _ => None,
        }
    }

    /// Bytes the argument table takes.
    pub fn memory(&self) -> usize {
        self.args.capacity() * std::mem::size_of::<Range<usize>>()
    }

    /// Makes room for `slots` arguments in all.
    pub fn grow_args(&mut self, slots: usize) {
        self.args
            .reserve_exact(slots.saturating_sub(self.args.len()));
    }

    /// Gives back the argument table beyond `slots`, if no command holds arguments now.
    pub fn shrink_args(&mut self, slots: usize) {
        if self.args.is_empty() {
            self.args.shrink_to(slots);
        }
    }
}

/// Parses a whole decimal `i64` (optional `-`), as Redis's `string2ll`: no `+`, no spaces, no
/// leading zeros but `0` itself.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = if negative {
            value.checked_mul(10)?.checked_sub(digit)?
        } else {
            value.checked_mul(10)?.checked_add(digit)?
        };
    }
    if negative && value == 0 {
        return None;
    }
    Some(value)
}

/// Appends `+<text>\r\n`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `-<text>\r\n`.
pub fn error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `:<n>\r\n`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$<len>\r\n<data>\r\n`.
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    bulk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Most bytes a bulk reply adds to its data: `$`, 20 digits, two CRLFs.
pub const BULK_OVERHEAD: usize = 25;

/// Appends `$<len>\r\n`: a bulk reply whose data and final CRLF are sent separately.
pub fn bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    push_decimal(out, len as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends the null bulk string `$-1\r\n`.
pub fn nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends an array header `*<n>\r\n`; the caller appends the `n` elements.
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_decimal(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal without going through `fmt` (this runs for every reply).
pub fn push_decimal(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a client sees of its input, command by command.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Command(Vec<Vec<u8>>),
        Error(&'static str),
    }

    /// The parse of `input` delivered in pieces cut at `cuts`, as a server would see it: every
    /// outcome, whether the input ended in the middle of a command, and the bytes examined.
    fn parse_chunked(input: &[u8], cuts: &[usize]) -> (Vec<Outcome>, bool, u64) {
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        ends.push(input.len());
        ends.sort_unstable();
        let mut parser = Parser::new(1);
        let (mut received, mut start) = (0, 0);
        let mut outcomes = Vec::new();
        for end in ends {
            received = received.max(end);
            loop {
                let pending = &input[start..received];
                match parser.parse(pending) {
                    Parsed::Command(used) => {
                        let args = parser.args().iter().map(|r| pending[r.clone()].to_vec());
                        outcomes.push(Outcome::Command(args.collect()));
                        assert!(used <= pending.len());
                        start += used;
                        parser.reset();
                    }
                    Parsed::Empty(used) => {
                        assert!(used > 0 && used <= pending.len());
                        start += used;
                    }
                    Parsed::Full => {
                        let have = parser.args().len();
                        let wanted = parser.args_wanted().unwrap_or(have * 2);
                        assert!(wanted > have && wanted <= MAX_ARGS);
                        parser.grow_args((have * 2).min(wanted).max(have + 1));
                    }
                    Parsed::Incomplete => break,
                    Parsed::Error(what) => {
                        outcomes.push(Outcome::Error(what));
                        return (outcomes, false, parser.examined());
                    }
                }
            }
        }
        (outcomes, start < input.len(), parser.examined())
    }

    /// Where `parser` cuts `input` delivered in pieces cut at `cuts`: each command's or empty
    /// command's length, up to the first error.
    fn cuts_of(
        mut parser: Parser,
        input: &[u8],
        cuts: &[usize],
    ) -> Vec<Result<usize, &'static str>> {
        let mut ends: Vec<usize> = cuts.iter().map(|&c| c % (input.len() + 1)).collect();
        ends.push(input.len());
        ends.sort_unstable();
        let (mut start, mut found) = (0, Vec::new());
        for end in ends {
            loop {
                match parser.parse(&input[start..end.max(start)]) {
                    Parsed::Command(used) | Parsed::Empty(used) => {
                        found.push(Ok(used));
                        start += used;
                        parser.reset();
                    }
                    Parsed::Full => {
                        let have = parser.args().len();
                        parser.grow_args(have * 2 + 1);
                    }
                    Parsed::Incomplete => break,
                    Parsed::Error(what) => {
                        found.push(Err(what));
                        return found;
                    }
                }
            }
        }
        found
    }

    fn command(args: &[&str]) -> Outcome {
        Outcome::Command(args.iter().map(|a| a.as_bytes().to_vec()).collect())
    }

    #[test]
    fn parses_inline_multibulk_and_empty_commands() {
        let input = b"PING\r\n\r\n  set  k\tv \r\n*0\r\n*-1\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n*1\r\n$3\r\nGE";
        let (outcomes, unfinished, _) = parse_chunked(input, &[]);
        assert_eq!(
            outcomes,
            [
                command(&["PING"]),
                command(&["set", "k", "v"]),
                command(&["ECHO", ""])
            ]
        );
        assert!(unfinished);
    }

    #[test]
    fn refuses_what_is_not_resp() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*1\rX", "invalid multibulk length"),
            (b"*1048577\r\n", "invalid multibulk length"),
            (b"*1\r\nPING\r\n", "expected '$'"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$16777217\r\n", "invalid bulk length"),
            (b"*1\r\n$2\r\nabc\r\n", "bulk string not followed by CRLF"),
            // A line feed alone never ends a number: refused once the number is too long.
            (
                b"*1\n$4\nPING\n                          ",
                "invalid multibulk length",
            ),
        ];
        for (input, error) in cases {
            let (outcomes, _, _) = parse_chunked(input, &[]);
            assert_eq!(outcomes, [Outcome::Error(error)], "{input:?}");
        }
        let long_line = vec![b'a'; MAX_INLINE + 1];
        let (outcomes, _, _) = parse_chunked(&long_line, &[100, 5000]);
        assert_eq!(outcomes, [Outcome::Error("too big inline request")]);
        let mut longest = vec![b'a'; MAX_INLINE];
        longest.push(b'\n');
        assert_eq!(parse_chunked(&longest, &[7]).0.len(), 1);
    }

    #[test]
    fn a_command_trickled_a_byte_at_a_time_is_examined_once() {
        // The issue's attack: one command of many arguments, arriving slowly. Before, every read
        // parsed it again from its first byte.
        let count = 20_000;
        let mut input = format!("*{}\r\n", count + 1).into_bytes();
        for _ in 0..count {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
        let cuts: Vec<usize> = (0..input.len()).collect();
        let (outcomes, unfinished, examined) = parse_chunked(&input, &cuts);
        assert!(outcomes.is_empty() && unfinished);
        assert!(
            examined <= 2 * input.len() as u64,
            "{examined} for {}",
            input.len()
        );
        // A large argument's bytes are counted, not examined.
        let mut big = b"*2\r\n$3\r\nGET\r\n$1000000\r\n".to_vec();
        big.resize(big.len() + 1_000_000, b'v');
        big.extend_from_slice(b"\r\n");
        let cuts: Vec<usize> = (0..big.len()).step_by(100).collect();
        let (outcomes, _, examined) = parse_chunked(&big, &cuts);
        assert_eq!(outcomes.len(), 1);
        assert!(examined < 100, "{examined}");
    }

    /// A piece of input close to RESP, to reach every state of the parser: chosen by `kind`,
    /// filled from `n` (one cheap strategy of two numbers, rather than a `prop_oneof` per piece).
    fn resp_piece((kind, n): (u8, u64)) -> Vec<u8> {
        match kind {
            0 => b"*".to_vec(),
            1 => b"$".to_vec(),
            2 => b"\r\n".to_vec(),
            3 => b"\r".to_vec(),
            4 => b"\n".to_vec(),
            5 => b" ".to_vec(),
            6 => b"-1".to_vec(),
            7 => (n % 5).to_string().into_bytes(),
            8 => n.to_string().into_bytes(),
            9 => n.to_le_bytes()[..(n % 9) as usize].to_vec(),
            _ => (0..n % 7)
                .map(|i| b'a' + ((n >> (i * 5)) % 26) as u8)
                .collect(),
        }
    }

    /// Well-formed commands: each argument list, encoded inline (when it can be) or multibulk.
    fn commands() -> impl Strategy<Value = Vec<(Vec<Vec<u8>>, bool)>> {
        let arg = prop::collection::vec(any::<u8>(), 0..40);
        let args = prop::collection::vec(arg, 1..40);
        prop::collection::vec((args, any::<bool>()), 0..20)
    }

    fn encode(args: &[Vec<u8>], inline: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
        let plain = |a: &Vec<u8>| !a.is_empty() && !a.iter().any(|b| b" \t\r\n".contains(b));
        // A line starting with `*` is a multibulk header, not an inline command.
        if inline && args.iter().all(plain) && args[0][0] != b'*' {
            let mut line = args.join(&b' ');
            line.extend_from_slice(b"\r\n");
            return (line, args.to_vec());
        }
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        (out, args.to_vec())
    }

    /// `input` cut at `cuts` parses to what it parses to whole, examining each byte at most about
    /// three times.
    fn parses_the_same_in_linear_steps(input: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
        let whole = parse_chunked(input, &[]);
        let chunked = parse_chunked(input, cuts);
        prop_assert_eq!(&chunked.0, &whole.0);
        prop_assert_eq!(chunked.1, whole.1);
        prop_assert!(chunked.2 <= 3 * input.len() as u64 + 8);
        Ok(())
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_chunks_parse_the_same_in_linear_steps(
            input in prop::collection::vec(any::<u8>(), 0..3000),
            cuts in prop::collection::vec(any::<usize>(), 0..60),
        ) {
            parses_the_same_in_linear_steps(&input, &cuts)?;
        }

        #[test]
        fn near_resp_in_any_chunks_parses_the_same_in_linear_steps(
            pieces in prop::collection::vec((0u8..11, any::<u64>()), 0..400),
            cuts in prop::collection::vec(any::<usize>(), 0..100),
        ) {
            let input: Vec<u8> = pieces.into_iter().flat_map(resp_piece).collect();
            parses_the_same_in_linear_steps(&input, &cuts)?;
        }

        #[test]
        fn a_boundaries_parser_cuts_commands_where_a_recording_one_does(
            pieces in prop::collection::vec((0u8..11, any::<u64>()), 0..400),
            cuts in prop::collection::vec(any::<usize>(), 0..100),
        ) {
            let input: Vec<u8> = pieces.into_iter().flat_map(resp_piece).collect();
            let recorded = cuts_of(Parser::new(1), &input, &[]);
            prop_assert_eq!(&cuts_of(Parser::boundaries(), &input, &cuts), &recorded);
            prop_assert_eq!(&cuts_of(Parser::boundaries(), &input, &[]), &recorded);
        }

        #[test]
        fn well_formed_commands_come_out_as_sent(
            sent in commands(),
            cuts in prop::collection::vec(any::<usize>(), 0..100),
        ) {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for (args, inline) in &sent {
                let (bytes, args) = encode(args, *inline);
                input.extend_from_slice(&bytes);
                want.push(Outcome::Command(args));
            }
            let (outcomes, unfinished, examined) = parse_chunked(&input, &cuts);
            prop_assert_eq!(outcomes, want);
            prop_assert!(!unfinished);
            prop_assert!(examined <= 3 * input.len() as u64);
        }
    }
}
