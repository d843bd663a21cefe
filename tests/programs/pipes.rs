//! The low-level parts: a guard that kills and reaps a child, a bounded wait for its exit, and
//! threads that drain its output pipes so it never blocks on a full one.

use std::io::Read;
use std::process::{Child, ExitStatus};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

/// Kills and reaps a child unless it was taken out.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// The child, still running.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child is guarded")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `child` until it exits or `timeout` passes (`None`).
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("cannot wait for a child process: {e}"),
        }
    }
}

/// Output collected by a thread reading a pipe to its end.
pub struct Drained {
    text: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Drained {
    /// What has been read so far.
    pub fn snapshot(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// Waits at most `timeout` for the pipe to close (the child and any process sharing the pipe
    /// have exited) and its last bytes to be read.
    pub fn wait_closed(&self, timeout: Duration) {
        // Once the thread is done its sender is gone: a second call returns at once.
        let _ = self.done.recv_timeout(timeout);
    }

    /// Everything, once the pipe has closed (which it does when the child exits).
    pub fn all(self, what: &str) -> String {
        if self.done.recv_timeout(IO_TIMEOUT).is_err() {
            panic!("{what}: its output pipe stayed open after it exited");
        }
        self.snapshot()
    }
}

/// Starts a thread reading `pipe` to its end.
pub fn drain(mut pipe: impl Read + Send + 'static) -> Drained {
    let text = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&text);
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
        let _ = done_tx.send(());
    });
    Drained { text, done }
}
