//! Per-request dispatch cost, with Criterion: one request/response through a `socketserver`
//! server against the same exchange with a bare `std::net` socket loop measured in the same run.
//! The difference is what the framework adds per request (building the request, cloning the
//! handler, the mode's hand-off, stats).
//!
//! `cargo bench -p socketserver-bench --bench dispatch`. Loopback only; each benchmark is bounded
//! by Criterion's measurement time. The framing codec's own cost is measured apart, in memory, by
//! `bench/benches/framing.rs`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use socketserver::transport::Transport;
use socketserver::{
    Builder, DatagramRequest, Mode, Pool, RequestHandler, Server, ServerHandle, Single,
    StreamRequest, Threading,
};

const PAYLOAD: usize = 64;

/// Serves `server` on its own thread; shut down and joined when dropped.
struct Running {
    handle: ServerHandle,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve<T, H, M>(mut server: Server<T, H, M>) -> (SocketAddr, Running)
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    let addr = server.local_addr().as_inet().expect("an inet server");
    let handle = server.handle();
    let thread = thread::spawn(move || {
        let _ = server.serve_forever();
        let _ = server.server_close();
    });
    (
        addr,
        Running {
            handle,
            thread: Some(thread),
        },
    )
}

fn udp_reply(req: &mut DatagramRequest) -> io::Result<()> {
    req.reply(req.data())
}

fn tcp_echo(req: &mut StreamRequest) -> io::Result<()> {
    let mut buf = [0u8; PAYLOAD];
    loop {
        match req.read_exact(&mut buf) {
            Ok(()) => req.write_all(&buf)?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The bare UDP loop: no framework. Ends when it has no datagram for a second after the bench.
fn bare_udp() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let addr = socket.local_addr().expect("addr");
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if socket.send_to(&buf[..n], peer).is_err() {
                break;
            }
        }
    });
    addr
}

/// The bare TCP echo: a thread for the one connection.
fn bare_tcp() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.set_nodelay(true);
            let mut buf = [0u8; PAYLOAD];
            while conn.read_exact(&mut buf).is_ok() {
                if conn.write_all(&buf).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

fn udp_client(server: SocketAddr) -> UdpSocket {
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.connect(server).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    client
}

fn udp_round_trip(client: &UdpSocket) {
    let mut buf = [0u8; PAYLOAD];
    client.send(&[7u8; PAYLOAD]).expect("send");
    let n = client.recv(&mut buf).expect("a reply within 5 s");
    assert_eq!(n, PAYLOAD);
}

fn tcp_client(server: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(server).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    client
}

fn tcp_round_trip(client: &mut TcpStream) {
    let mut buf = [0u8; PAYLOAD];
    client.write_all(&[7u8; PAYLOAD]).expect("send");
    client.read_exact(&mut buf).expect("a reply within 5 s");
}

/// Every datagram is one request: the full per-request path of the server.
fn datagram_dispatch(c: &mut Criterion) {
    let mut group = c.benchmark_group("udp request (64 B)");
    let bare = udp_client(bare_udp());
    group.bench_function("bare std::net loop", |b| b.iter(|| udp_round_trip(&bare)));

    let (addr, _single) = serve(
        Builder::new()
            .mode(Single)
            .bind_udp("127.0.0.1:0", udp_reply)
            .expect("bind"),
    );
    let client = udp_client(addr);
    group.bench_function("socketserver single", |b| {
        b.iter(|| udp_round_trip(&client));
    });

    let (addr, _pool) = serve(
        Builder::new()
            .mode(Pool::new(2))
            .bind_udp("127.0.0.1:0", udp_reply)
            .expect("bind"),
    );
    let client = udp_client(addr);
    group.bench_function("socketserver pool", |b| b.iter(|| udp_round_trip(&client)));
    group.finish();
}

/// One connection, many messages: the cost of `StreamRequest` reads and writes once dispatched.
fn stream_messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp echo on one connection (64 B)");
    let mut bare = tcp_client(bare_tcp());
    group.bench_function("bare std::net thread", |b| {
        b.iter(|| tcp_round_trip(&mut bare));
    });
    let (addr, _threading) = serve(
        Builder::new()
            .mode(Threading::new())
            .bind_tcp("127.0.0.1:0", tcp_echo)
            .expect("bind"),
    );
    let mut client = tcp_client(addr);
    group.bench_function("socketserver threading", |b| {
        b.iter(|| tcp_round_trip(&mut client));
    });
    drop(client);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = datagram_dispatch, stream_messages
}
criterion_main!(benches);
