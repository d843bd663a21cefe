//! What the user types, and what the client prints.

use std::io::{self, BufRead, IsTerminal, Write};

/// The messages to send: the words given on the command line as one message, or else every
/// non-blank line of stdin until it ends. Lines are trimmed, as the tutorial's clients `strip()`
/// them. `prompt` is shown before each line when stdin is a terminal, and never into a pipe.
pub fn messages(
    args: &[String],
    prompt: &'static str,
) -> Box<dyn Iterator<Item = Result<Vec<u8>, String>>> {
    if args.is_empty() {
        Box::new(Lines::new(prompt))
    } else {
        Box::new(std::iter::once(Ok(args.join(" ").into_bytes())))
    }
}

/// The trimmed, non-blank lines of stdin, as bytes: a line need not be UTF-8.
struct Lines {
    prompt: Option<&'static str>,
}

impl Lines {
    fn new(prompt: &'static str) -> Lines {
        let interactive = io::stdin().is_terminal();
        Lines {
            prompt: interactive.then_some(prompt),
        }
    }
}

impl Iterator for Lines {
    type Item = Result<Vec<u8>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut stdin = io::stdin().lock();
        loop {
            if let Some(prompt) = self.prompt {
                let mut out = io::stdout().lock();
                let _ = out.write_all(prompt.as_bytes()).and_then(|()| out.flush());
            }
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return None, // end of input: the client is done
                Ok(_) => {
                    let trimmed = line.trim_ascii();
                    if !trimmed.is_empty() {
                        return Some(Ok(trimmed.to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(format!("cannot read stdin: {e}"))),
            }
        }
    }
}

/// Prints `bytes` (invalid UTF-8 shown as U+FFFD) and a newline, flushed at once so a pipe sees
/// each reply as it comes.
pub fn print_line(bytes: &[u8]) -> Result<(), String> {
    let mut out = io::stdout().lock();
    out.write_all(String::from_utf8_lossy(bytes).as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}
