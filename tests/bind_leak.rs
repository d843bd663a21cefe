//! A failed bind leaks no file descriptor (CPython's `test_tcpserver_bind_leak`, ×1000 and for
//! every transport). This file holds a single test so no other test opens descriptors while it
//! counts them: each file in `tests/` runs as its own process.

mod skip;

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;

use socketserver::{
    Builder, DatagramRequest, Pool, StreamRequest, TcpServer, UdpServer, UnixStreamServer,
};

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(Iterator::count)
        .unwrap_or(0)
}

fn stream_handler(_: &mut StreamRequest) -> io::Result<()> {
    Ok(())
}

fn datagram_handler(_: &mut DatagramRequest) -> io::Result<()> {
    Ok(())
}

#[test]
fn a_thousand_failed_binds_leak_no_descriptor() {
    if !std::path::Path::new("/proc/self/fd").exists() {
        skip::skipped("/proc/self/fd is not available to count descriptors");
        return;
    }
    let tcp_holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp_holder.local_addr().unwrap();
    let udp_holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_addr = udp_holder.local_addr().unwrap();
    let dir = std::env::temp_dir().join(format!("socketserver-bind-leak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unix_path = dir.join("taken.sock");
    let _ = std::fs::remove_file(&unix_path);
    let unix_holder = UnixListener::bind(&unix_path).unwrap();

    let before = open_descriptors();
    for _ in 0..1000 {
        let tcp = TcpServer::bind(tcp_addr, stream_handler).unwrap_err();
        assert_eq!(tcp.kind(), io::ErrorKind::AddrInUse, "{tcp}");
        let udp = UdpServer::bind(udp_addr, datagram_handler).unwrap_err();
        assert_eq!(udp.kind(), io::ErrorKind::AddrInUse, "{udp}");
        let unix = UnixStreamServer::bind(&unix_path, stream_handler).unwrap_err();
        assert_eq!(unix.kind(), io::ErrorKind::AddrInUse, "{unix}");
        // Fails after the socket and the shutdown pipe exist: those must be released too.
        let late = Builder::new()
            .mode(Pool::new(0))
            .bind_tcp("127.0.0.1:0", stream_handler)
            .unwrap_err();
        assert_eq!(late.kind(), io::ErrorKind::InvalidInput, "{late}");
    }
    let after = open_descriptors();
    assert_eq!(
        before, after,
        "descriptors before and after 4000 failed binds"
    );
    assert!(
        unix_path.exists(),
        "a failed bind must not remove another server's socket file"
    );

    drop((tcp_holder, udp_holder, unix_holder));
    let _ = std::fs::remove_dir_all(&dir);
}
