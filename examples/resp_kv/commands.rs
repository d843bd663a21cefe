//! The commands: each reads its arguments and appends its reply to the output buffer.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use crate::output::{Large, Output};
use crate::protocol::{self, parse_i64};
use crate::shared::Shared;
use crate::store::{Store, Value};

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Continue,
    /// `QUIT`: send the replies so far and close.
    Close,
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// A parsed command: its arguments as ranges into the input buffer.
pub struct Argv<'a> {
    /// The input the ranges point into.
    pub input: &'a [u8],
    /// One range per argument; the first is the command name.
    pub ranges: &'a [Range<usize>],
}

impl Argv<'_> {
    fn get(&self, i: usize) -> &[u8] {
        &self.input[self.ranges[i].clone()]
    }

    fn len(&self) -> usize {
        self.ranges.len()
    }
}

/// Every command served: name, then the smallest and largest argument count including the name
/// (0: no limit).
const COMMANDS: &[(&str, usize, usize)] = &[
    ("PING", 1, 2),
    ("GET", 2, 2),
    ("SET", 3, 3),
    ("INCR", 2, 2),
    ("LPUSH", 3, 0),
    ("RPUSH", 3, 0),
    ("LPOP", 2, 2),
    ("RPOP", 2, 2),
    ("DEL", 2, 0),
    ("ECHO", 2, 2),
    ("CONFIG", 1, 0),
    ("COMMAND", 1, 0),
    ("INFO", 1, 2),
    ("QUIT", 1, 0),
];

/// Runs one command, appending its reply to `output`: at most
/// [`MAX_SMALL_REPLY`](crate::output::MAX_SMALL_REPLY) bytes, or a bulk value sent from where it
/// is.
pub fn execute(shared: &Shared, argv: &Argv<'_>, output: &mut Output) -> Next {
    let store = &shared.store;
    let name = argv.get(0);
    let Some(&(command, min, max)) = COMMANDS
        .iter()
        .find(|(known, _, _)| name.eq_ignore_ascii_case(known.as_bytes()))
    else {
        unknown(argv, output.buf());
        return Next::Continue;
    };
    if argv.len() < min || (max != 0 && argv.len() > max) {
        wrong_arity(command, output.buf());
        return Next::Continue;
    }
    match command {
        "PING" if argv.len() == 1 => protocol::simple(output.buf(), "PONG"),
        "PING" | "ECHO" => {
            let range = argv.ranges[1].clone();
            output.bulk(argv.get(1), || Large::Arg(range));
        }
        "GET" => get(store, argv.get(1), output),
        "SET" => {
            set(store, argv.get(1), argv.get(2));
            protocol::simple(output.buf(), "OK");
        }
        "INCR" => incr(store, argv.get(1), output.buf()),
        "LPUSH" | "RPUSH" => push(store, argv, command == "LPUSH", output.buf()),
        "LPOP" | "RPOP" => pop(store, argv.get(1), command == "LPOP", output),
        "DEL" => {
            let removed = (1..argv.len())
                .filter(|&i| store.shard(argv.get(i)).remove(argv.get(i)).is_some())
                .count();
            protocol::integer(output.buf(), removed as i64);
        }
        "QUIT" => {
            protocol::simple(output.buf(), "OK");
            return Next::Close;
        }
        "CONFIG" => config(argv, output.buf()),
        "INFO" => protocol::bulk(output.buf(), shared.info().as_bytes()),
        // redis-cli asks for command docs first; an empty list means "none to offer".
        _ => protocol::array(output.buf(), 0),
    }
    Next::Continue
}

/// The settings that describe this server, for `CONFIG GET` (redis-benchmark reads `save` and
/// `appendonly` first): it keeps everything in memory and never persists.
const SETTINGS: &[(&str, &str)] = &[("save", ""), ("appendonly", "no")];

fn config(argv: &Argv<'_>, out: &mut Vec<u8>) {
    if argv.len() != 3 || !argv.get(1).eq_ignore_ascii_case(b"GET") {
        return protocol::error(out, "ERR only CONFIG GET <parameter> is supported");
    }
    let wanted = argv.get(2);
    match SETTINGS
        .iter()
        .find(|(name, _)| wanted.eq_ignore_ascii_case(name.as_bytes()))
    {
        Some((name, value)) => {
            protocol::array(out, 2);
            protocol::bulk(out, name.as_bytes());
            protocol::bulk(out, value.as_bytes());
        }
        None => protocol::array(out, 0),
    }
}

fn get(store: &Store, key: &[u8], output: &mut Output) {
    match store.shard(key).get(key) {
        None => protocol::nil(output.buf()),
        // A large value is shared, not copied: the lock is released before it is sent.
        Some(Value::Str(value)) => output.bulk(value, || Large::Value(Arc::clone(value))),
        Some(Value::List(_)) => protocol::error(output.buf(), WRONGTYPE),
    }
}

fn set(store: &Store, key: &[u8], value: &[u8]) {
    let mut shard = store.shard(key);
    // Overwriting a string reuses its allocation: the benchmarks SET the same keys over and over.
    // A value still being sent to some client is left to it, and replaced.
    if let Some(Value::Str(old)) = shard.get_mut(key) {
        if let Some(old) = Arc::get_mut(old) {
            old.clear();
            old.extend_from_slice(value);
            return;
        }
    }
    shard.insert(key.to_vec(), Value::Str(Arc::new(value.to_vec())));
}

fn incr(store: &Store, key: &[u8], out: &mut Vec<u8>) {
    let mut shard = store.shard(key);
    let current = match shard.get(key) {
        None => 0,
        Some(Value::Str(text)) => match parse_i64(text) {
            Some(n) => n,
            None => return protocol::error(out, NOT_INTEGER),
        },
        Some(Value::List(_)) => return protocol::error(out, WRONGTYPE),
    };
    let Some(next) = current.checked_add(1) else {
        return protocol::error(out, "ERR increment or decrement would overflow");
    };
    let mut text = Vec::with_capacity(20);
    protocol::push_decimal(&mut text, next);
    shard.insert(key.to_vec(), Value::Str(Arc::new(text)));
    protocol::integer(out, next);
}

fn push(store: &Store, argv: &Argv<'_>, front: bool, out: &mut Vec<u8>) {
    let key = argv.get(1);
    let mut shard = store.shard(key);
    let list = match shard
        .entry(key.to_vec())
        .or_insert_with(|| Value::List(VecDeque::new()))
    {
        Value::List(list) => list,
        Value::Str(_) => return protocol::error(out, WRONGTYPE),
    };
    for i in 2..argv.len() {
        let item = argv.get(i).to_vec();
        if front {
            list.push_front(item);
        } else {
            list.push_back(item);
        }
    }
    protocol::integer(out, list.len() as i64);
}

fn pop(store: &Store, key: &[u8], front: bool, output: &mut Output) {
    let mut shard = store.shard(key);
    let Some(value) = shard.get_mut(key) else {
        return protocol::nil(output.buf());
    };
    let Value::List(list) = value else {
        return protocol::error(output.buf(), WRONGTYPE);
    };
    let item = if front {
        list.pop_front()
    } else {
        list.pop_back()
    };
    if list.is_empty() {
        shard.remove(key);
    }
    drop(shard);
    match item {
        Some(item) => output.bulk_owned(item),
        None => protocol::nil(output.buf()),
    }
}

fn wrong_arity(command: &str, out: &mut Vec<u8>) {
    let message = format!(
        "ERR wrong number of arguments for '{}' command",
        command.to_lowercase()
    );
    protocol::error(out, &message);
}

/// Redis's wording, so clients that match on it behave the same.
fn unknown(argv: &Argv<'_>, out: &mut Vec<u8>) {
    let quoted: String = (1..argv.len())
        .take(20)
        .map(|i| format!("'{}' ", printable(argv.get(i))))
        .collect();
    let message = format!(
        "ERR unknown command '{}', with args beginning with: {quoted}",
        printable(argv.get(0))
    );
    protocol::error(out, &message);
}

/// Text safe inside a one-line error reply: no CR or LF, at most 128 characters.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
