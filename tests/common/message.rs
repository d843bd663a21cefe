//! Message servers in tests: one serving on its own thread until the test ends it, and small
//! handlers and readers the tests share.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socketserver::message::{
    message_handler, Closed, ConnectionId, Framer, MessageHandler, MessageServer, Reply, Sender,
};
use socketserver::transport::Transport;
use socketserver::Address;
use socketserver::{ServerHandle, StreamRequest};

use super::WAIT;

/// A message server serving on its own thread until the test ends it.
pub struct Running {
    pub handle: ServerHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Running {
    pub fn start<T, H, F>(mut server: MessageServer<T, H, F>) -> Running
    where
        T: Transport<Request = StreamRequest>,
        H: MessageHandler,
        F: Framer,
    {
        let handle = server.handle();
        let thread = std::thread::spawn(move || {
            server.serve_forever()?;
            server.server_close()
        });
        Running {
            handle,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        super::inet_addr(&self.handle)
    }

    /// Shuts the server down and waits (boundedly) for `serve_forever` and `server_close`.
    pub fn stop(mut self) -> io::Result<()> {
        self.handle.shutdown();
        let thread = self.thread.take().expect("stopped once");
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the message server did not stop within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().expect("the serving thread panicked")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

pub fn upper_lines() -> impl MessageHandler {
    message_handler(|line, reply| {
        reply.write_all(&line.to_ascii_uppercase())?;
        reply.write_all(b"\n")
    })
}

pub fn read_lines(stream: &TcpStream, n: usize) -> Vec<String> {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    (0..n)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a reply line");
            line.trim_end().to_string()
        })
        .collect()
}

/// This process's threads whose name starts with `prefix`, from /proc (where a name is cut to
/// 15 bytes).
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// A chat room: every line goes to every other member through their [`Sender`]s. A member is
/// greeted with `greeting()` and a newline when it joins.
#[derive(Clone)]
pub struct Room {
    pub members: Arc<Mutex<HashMap<ConnectionId, Sender>>>,
    greeting: fn() -> String,
}

impl Default for Room {
    fn default() -> Room {
        Room::greeting(|| "joined".to_string())
    }
}

impl Room {
    /// A room that greets each member with `greeting()`.
    pub fn greeting(greeting: fn() -> String) -> Room {
        Room {
            members: Arc::default(),
            greeting,
        }
    }
}

impl MessageHandler for Room {
    fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
        self.members
            .lock()
            .unwrap()
            .insert(reply.id(), reply.sender());
        writeln!(reply, "{}", (self.greeting)())
    }
    fn handle(&mut self, line: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        let mut text = line.to_vec();
        text.push(b'\n');
        for (id, member) in self.members.lock().unwrap().iter() {
            if *id != reply.id() {
                member.send(text.clone());
            }
        }
        Ok(())
    }
    fn closed(&mut self, id: ConnectionId, _peer: &Address, _reason: &Closed) {
        self.members.lock().unwrap().remove(&id);
    }
}
