//! The scenario servers' side: what a scenario server does once built.

use std::io::{self, BufRead, Write};
use std::thread;

use socketserver::transport::Transport;
use socketserver::{is_worker, Mode, RequestHandler, Server, StreamRequest};

/// The library's log on stderr, at `default_filter` unless `RUST_LOG` says otherwise: the
/// driver collects it, and prints it when a test fails.
pub fn init_logger(default_filter: &str) {
    let _ =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
            .is_test(false)
            .try_init();
}

/// Serves until this process's stdin closes (parent only: a child's stdin belongs to the mode),
/// then closes the server and prints its stats.
pub fn serve_and_report<T, H, M>(mut server: Server<T, H, M>) -> io::Result<()>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    if !is_worker() {
        println!("listening on {}", server.local_addr());
        io::stdout().flush()?;
        let handle = server.handle();
        thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            handle.shutdown();
        });
    }
    let handle = server.handle();
    server.serve_forever()?;
    server.server_close()?;
    // After server_close, which waited for every request (child process) to end.
    let stats = handle.stats();
    println!(
        "stats accepted={} completed={} failed={} workers_recycled={} workers_restarted={}",
        stats.accepted,
        stats.completed,
        stats.failed,
        stats.workers_recycled,
        stats.workers_restarted
    );
    Ok(())
}

/// Answers one line with `<pid> <LINE>`: which process served it, and the line upper-cased.
pub fn pid_upper_line(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    writeln!(
        req,
        "{} {}",
        std::process::id(),
        line.trim_end().to_uppercase()
    )
}

/// [`pid_upper_line`] for each line the connection sends, waiting for each with
/// `wait_for_request`, the first one included (as `echo_upper` does): a stop ends the
/// connection between two lines.
pub fn pid_upper_requests(req: &mut StreamRequest) -> io::Result<()> {
    while req.wait_for_request()? {
        pid_upper_line(req)?;
    }
    Ok(())
}
