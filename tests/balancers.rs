//! The examples behind real load balancers sending the PROXY protocol: `HAProxy` (`mode tcp` with
//! `send-proxy` and `send-proxy-v2`) and nginx's `stream` module (`proxy_protocol on`), started
//! on loopback with generated configurations and stopped by pid. Through each, `http_hello`'s
//! page names the test client's own address and port, not the balancer's.
//!
//! `.ci/run` installs haproxy, nginx and its stream module where they are missing (with apt-get,
//! as root); where one is missing, the test that needs it says it skipped (see `tests/skip`), or
//! fails under `SOCKETSERVER_TEST_REQUIRE_ALL`.

mod programs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use programs::{scratch, Run, Server, IO_TIMEOUT, RUN_TIMEOUT, STARTUP_TIMEOUT};

/// A balancer process, killed and reaped when dropped (by its pid, through `Child`).
struct Balancer {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The program's path (its Debian package has its name); `None`, with the test skipped (or
/// failed under `SOCKETSERVER_TEST_REQUIRE_ALL`, see [`skip`](programs::skip)), when it is not
/// installed.
fn find(program: &str) -> Option<PathBuf> {
    programs::skip::program(program, program)
}

/// A port free on loopback right now, for a balancer's listener (a balancer cannot report
/// the port it picked, as the examples do).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe listener");
    listener.local_addr().expect("its address").port()
}

fn start(name: &'static str, mut command: Command, log: PathBuf, addr: SocketAddr) -> Balancer {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the balancer's log"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut balancer = Balancer { child, name, log };
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = balancer.child.try_wait() {
            panic!("{name} exited with {status}:\n{}", balancer.log_text());
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {addr} within {STARTUP_TIMEOUT:?}:\n{}",
            balancer.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    balancer
}

impl Balancer {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn haproxy(
    program: &Path,
    dir: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
    send: &str,
) -> Balancer {
    haproxy_with(program, dir, listen, backend, send, "")
}

/// `HAProxy` with `global` lines added to its `global` section (a stats socket, say).
fn haproxy_with(
    program: &Path,
    dir: &Path,
    listen: SocketAddr,
    backend: SocketAddr,
    send: &str,
    global: &str,
) -> Balancer {
    let config = format!(
        "global\n\
         \x20   maxconn 100\n\
         {global}\
         defaults\n\
         \x20   mode tcp\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 10s\n\
         \x20   timeout server 10s\n\
         frontend front\n\
         \x20   bind {listen}\n\
         \x20   default_backend instances\n\
         backend instances\n\
         \x20   server one {backend} {send}\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).expect("write haproxy.cfg");
    let mut command = Command::new(program);
    command.arg("-f").arg(&path).arg("-db");
    start("haproxy", command, dir.join("haproxy.log"), listen)
}

/// Where Debian's `libnginx-mod-stream` puts nginx's stream module, which Debian builds as a
/// dynamic module (other builds have it built in, or not at all).
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// `nginx` (at `program`) in the foreground, on a configuration in `dir` whose `stream` block
/// holds `stream`, loading [`STREAM_MODULE`] first where that file exists.
fn nginx_command(program: &Path, dir: &Path, stream: &str) -> Command {
    let module = Path::new(STREAM_MODULE);
    let load = if module.is_file() {
        format!("load_module {};\n", module.display())
    } else {
        String::new()
    };
    let config = format!(
        "{load}\
         master_process off;\n\
         error_log {dir}/error.log;\n\
         pid {dir}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         stream {{\n{stream}}}\n",
        dir = dir.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx.conf");
    let mut command = Command::new(program);
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"]);
    command
}

/// Whether nginx has its stream module (built in, or loaded from [`STREAM_MODULE`]): `nginx -t`
/// accepts a configuration with a `stream` block. When it has not (Debian's `nginx` without
/// `libnginx-mod-stream`), the test is skipped, or fails under `SOCKETSERVER_TEST_REQUIRE_ALL`;
/// any other failure of `nginx -t` fails the test with nginx's words.
fn has_stream_module(program: &Path, dir: &Path) -> bool {
    let mut command = nginx_command(program, dir, "");
    command.arg("-t");
    let run = Run::to_completion(command, RUN_TIMEOUT);
    if run.status.success() {
        return true;
    }
    assert!(
        run.stderr.contains("unknown directive \"stream\""),
        "nginx -t failed on a configuration with an empty stream block: {run}"
    );
    programs::skip::missing("nginx has no stream module", "libnginx-mod-stream");
    false
}

fn nginx(program: &Path, dir: &Path, listen: SocketAddr, backend: SocketAddr) -> Balancer {
    let stream = format!(
        "\x20   server {{\n\
         \x20       listen {listen};\n\
         \x20       proxy_pass {backend};\n\
         \x20       proxy_protocol on;\n\
         \x20   }}\n"
    );
    let command = nginx_command(program, dir, &stream);
    start("nginx", command, dir.join("nginx.log"), listen)
}

/// `GET /` through the balancer: the page must name this client's own address and port.
fn assert_client_seen(balancer: &Balancer, listen: SocketAddr) {
    let mut stream = TcpStream::connect_timeout(&listen, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let me = stream.local_addr().expect("client address");
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the page");
    assert!(
        reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with(&format!("\r\n\r\nhello {me}\n")),
        "through {}: expected the page to name {me}, got {reply:?}\n{}",
        balancer.name,
        balancer.log_text()
    );
}

fn backend() -> Server {
    Server::start(
        "http_hello",
        &["--proxy-protocol", "any", "--trusted-proxy", "127.0.0.1/32"],
    )
}

#[test]
fn haproxy_send_proxy_v1_and_v2_give_the_client_address() {
    let Some(program) = find("haproxy") else {
        return;
    };
    let server = backend();
    for send in ["send-proxy", "send-proxy-v2"] {
        let dir = scratch(&format!("haproxy_{send}"));
        let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let balancer = haproxy(&program, &dir, listen, server.addr, send);
        assert_client_seen(&balancer, listen);
    }
}

#[test]
fn nginx_stream_proxy_protocol_gives_the_client_address() {
    let Some(program) = find("nginx") else {
        return;
    };
    let dir = scratch("nginx_stream");
    if !has_stream_module(&program, &dir) {
        return;
    }
    let server = backend();
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let balancer = nginx(&program, &dir, listen, server.addr);
    assert_client_seen(&balancer, listen);
}

#[test]
fn a_direct_client_is_refused_by_a_server_expecting_the_balancer() {
    // Without a balancer in front: no header, so the connection is closed unanswered.
    let server = backend();
    let mut stream = TcpStream::connect_timeout(&server.addr, IO_TIMEOUT).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("send");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
}

/// The `status` column of server `one` in the `show stat` of `HAProxy`, over its stats socket.
fn haproxy_status(socket: &Path) -> String {
    haproxy_named_status(socket, "one")
}

/// The `status` column of server `name` of the backend `instances`.
fn haproxy_named_status(socket: &Path, name: &str) -> String {
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
        return "no stats socket yet".to_string();
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let _ = stream.write_all(b"show stat\n");
    let mut csv = String::new();
    let _ = stream.read_to_string(&mut csv);
    let header: Vec<&str> = csv
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let Some(column) = header.iter().position(|name| *name == "status") else {
        return format!("no status column in {csv:?}");
    };
    csv.lines()
        .find(|line| line.starts_with(&format!("instances,{name},")))
        .and_then(|line| line.split(',').nth(column))
        .map_or_else(|| format!("no row for server {name}"), ToString::to_string)
}

fn wait_for_status(socket: &Path, want: &str, balancer: &Balancer) {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let status = haproxy_status(socket);
        if status.starts_with(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server one never became {want} (last: {status}):\n{}",
            balancer.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn haproxy_health_checks_with_the_header_mark_a_stopped_instance_down_and_a_restarted_one_up() {
    let Some(program) = find("haproxy") else {
        return;
    };
    let args = ["--proxy-protocol", "v2", "--trusted-proxy", "127.0.0.1"];
    let env = [("RUST_LOG", "debug")];
    let mut server = Server::start_with_env("http_hello", &args, &env);
    let backend = server.addr;
    let dir = scratch("haproxy_health");
    let socket = dir.join("admin.sock");
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let global = format!("    stats socket {}\n", socket.display());
    let balancer = haproxy_with(
        &program,
        &dir,
        listen,
        backend,
        "send-proxy-v2 check check-send-proxy inter 100ms fall 1 rise 1",
        &global,
    );
    wait_for_status(&socket, "UP", &balancer);
    // The checks arrive as version 2 LOCAL headers: closed without running the handler.
    server.wait_for_log("PROXY protocol LOCAL connection (a health check)");
    assert_client_seen(&balancer, listen);

    server.signal(libc::SIGTERM);
    assert!(
        server
            .wait_exit(STARTUP_TIMEOUT)
            .is_some_and(|s| s.success()),
        "the instance stops gracefully on SIGTERM:\n{}",
        server.log_so_far()
    );
    wait_for_status(&socket, "DOWN", &balancer);

    let port = backend.port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let restarted = Server::start(
        "http_hello",
        &[&["--addr", addr.as_str()][..], &args[..]].concat(),
    );
    assert_eq!(restarted.addr, backend, "restarted on the same address");
    wait_for_status(&socket, "UP", &balancer);
    assert_client_seen(&balancer, listen);
}

/// One `GET /` through the balancer, sent `pause` after connecting, checked; its latency.
fn one_request(listen: SocketAddr, pause: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&listen, IO_TIMEOUT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let me = stream.local_addr().map_err(|e| e.to_string())?;
    std::thread::sleep(pause);
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    if reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with(&format!("hello {me}\n")) {
        Ok(start.elapsed())
    } else {
        Err(format!("unexpected reply {reply:?}"))
    }
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default()
}

/// What a client of [`rolling_restarts_behind_haproxy_fail_no_request`] saw: the latencies of
/// its requests while an instance restarted and while none did, and its failures.
#[derive(Default)]
struct Seen {
    calm: Vec<Duration>,
    during: Vec<Duration>,
    failures: Vec<String>,
}

/// Three instances behind `HAProxy` with TCP health checks (`inter 50ms fall 1 rise 2`),
/// `retries` and `option redispatch`, restarted one at a time, 20 restarts in all, while three
/// clients make requests on connections of their own, each sent a millisecond after
/// connecting (so an instance may take the connection before the request arrives): no request
/// fails. Each instance stops gracefully on SIGTERM: it serves what was queued, and the
/// balancer sends the rest elsewhere once the instance refuses connections.
#[test]
fn rolling_restarts_behind_haproxy_fail_no_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const RESTARTS: usize = 20;
    const CLIENTS: usize = 3;
    /// Per client: a bound on the loop, far above what the restarts take.
    const MAX_REQUESTS: usize = 100_000;
    let Some(program) = find("haproxy") else {
        return;
    };
    let args = ["--proxy-protocol", "v2", "--trusted-proxy", "127.0.0.1"];
    let names = ["one", "two", "three"];
    let mut instances: Vec<Server> = names
        .iter()
        .map(|_| Server::start("http_hello", &args))
        .collect();
    let addrs: Vec<SocketAddr> = instances.iter().map(|s| s.addr).collect();
    let dir = scratch("haproxy_rolling");
    let socket = dir.join("admin.sock");
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let servers: String = names
        .iter()
        .zip(&addrs)
        .map(|(name, addr)| {
            format!(
                "    server {name} {addr} send-proxy-v2 check check-send-proxy inter 50ms fall 1 rise 2\n"
            )
        })
        .collect();
    let config = format!(
        "global\n    maxconn 200\n    stats socket {}\n\
         defaults\n    mode tcp\n    retries 3\n    option redispatch 1\n\
         \x20   timeout connect 1s\n    timeout client 10s\n    timeout server 10s\n\
         frontend front\n    bind {listen}\n    default_backend instances\n\
         backend instances\n    balance roundrobin\n{servers}",
        socket.display()
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).expect("write haproxy.cfg");
    let mut command = Command::new(&program);
    command.arg("-f").arg(&path).arg("-db");
    let balancer = start("haproxy", command, dir.join("haproxy.log"), listen);
    for name in names {
        wait_for_named_status(&socket, name, "UP", &balancer);
    }

    let restarting = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (restarting, done) = (Arc::clone(&restarting), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut seen = Seen::default();
                let deadline = Instant::now() + Duration::from_secs(120);
                for _ in 0..MAX_REQUESTS {
                    if done.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        break;
                    }
                    let busy = restarting.load(Ordering::SeqCst);
                    match one_request(listen, Duration::from_millis(1)) {
                        Ok(latency) if busy => seen.during.push(latency),
                        Ok(latency) => seen.calm.push(latency),
                        Err(e) => seen.failures.push(e),
                    }
                }
                seen
            })
        })
        .collect();
    for restart in 0..RESTARTS {
        let (i, name) = (restart % names.len(), names[restart % names.len()]);
        // A moment of calm load between two restarts.
        std::thread::sleep(Duration::from_millis(50));
        restarting.store(true, Ordering::SeqCst);
        instances[i].signal(libc::SIGTERM);
        assert!(
            instances[i]
                .wait_exit(STARTUP_TIMEOUT)
                .is_some_and(|s| s.success()),
            "instance {name} stops gracefully:\n{}",
            instances[i].log_so_far()
        );
        wait_for_named_status(&socket, name, "DOWN", &balancer);
        let addr = addrs[i].to_string();
        instances[i] = Server::start(
            "http_hello",
            &[&["--addr", addr.as_str()][..], &args[..]].concat(),
        );
        wait_for_named_status(&socket, name, "UP", &balancer);
        restarting.store(false, Ordering::SeqCst);
    }
    done.store(true, Ordering::SeqCst);
    let mut all = Seen::default();
    for client in clients {
        let seen = client.join().expect("a client thread");
        all.calm.extend(seen.calm);
        all.during.extend(seen.during);
        all.failures.extend(seen.failures);
    }
    let sent = all.calm.len() + all.during.len() + all.failures.len();
    println!(
        "{RESTARTS} rolling restarts: {sent} requests, {} failed; p99 {:?} during the restarts \
         ({} requests) against {:?} without ({} requests)",
        all.failures.len(),
        p99(&mut all.during),
        all.during.len(),
        p99(&mut all.calm),
        all.calm.len()
    );
    assert!(!all.during.is_empty(), "no request ran during the restarts");
    assert!(
        all.failures.is_empty(),
        "{} of {sent} requests failed: {:?}\n{}",
        all.failures.len(),
        &all.failures[..all.failures.len().min(5)],
        balancer.log_text()
    );
}

fn wait_for_named_status(socket: &Path, name: &str, want: &str, balancer: &Balancer) {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let status = haproxy_named_status(socket, name);
        if status.starts_with(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server {name} never became {want} (last: {status}):\n{}",
            balancer.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
