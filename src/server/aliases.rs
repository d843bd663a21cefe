//! The server aliases, Python's class names: [`TcpServer`], [`ThreadingUdpServer`],
//! [`ForkingTcpServer`], … — a transport and a mode for [`Server`].

use super::transport::{Tcp, Udp, UnixDatagram, UnixStream};
use super::Server;
use crate::mode::{Pool, Prefork, Process, Single, Threading};

/// A TCP server handling one request at a time (Python's `TCPServer`).
pub type TcpServer<H> = Server<Tcp, H, Single>;
/// A TCP server with a thread per connection (Python's `ThreadingTCPServer`).
pub type ThreadingTcpServer<H> = Server<Tcp, H, Threading>;
/// A TCP server with a pool of worker threads.
pub type PoolTcpServer<H> = Server<Tcp, H, Pool>;
/// A UDP server handling one datagram at a time (Python's `UDPServer`).
pub type UdpServer<H> = Server<Udp, H, Single>;
/// A UDP server with a thread per datagram (Python's `ThreadingUDPServer`).
pub type ThreadingUdpServer<H> = Server<Udp, H, Threading>;
/// A UDP server with a pool of worker threads.
pub type PoolUdpServer<H> = Server<Udp, H, Pool>;
/// A Unix stream server handling one connection at a time (Python's `UnixStreamServer`).
pub type UnixStreamServer<H> = Server<UnixStream, H, Single>;
/// A Unix stream server with a thread per connection (Python's `ThreadingUnixStreamServer`).
pub type ThreadingUnixStreamServer<H> = Server<UnixStream, H, Threading>;
/// A Unix stream server with a pool of worker threads.
pub type PoolUnixStreamServer<H> = Server<UnixStream, H, Pool>;
/// A Unix datagram server handling one datagram at a time (Python's `UnixDatagramServer`).
pub type UnixDatagramServer<H> = Server<UnixDatagram, H, Single>;
/// A Unix datagram server with a thread per datagram (Python's `ThreadingUnixDatagramServer`).
pub type ThreadingUnixDatagramServer<H> = Server<UnixDatagram, H, Threading>;
/// A Unix datagram server with a pool of worker threads.
pub type PoolUnixDatagramServer<H> = Server<UnixDatagram, H, Pool>;
/// A TCP server with a child process per connection (Python's `ForkingTCPServer`).
pub type ForkingTcpServer<H> = Server<Tcp, H, Process>;
/// A UDP server with a child process per datagram (Python's `ForkingUDPServer`).
pub type ForkingUdpServer<H> = Server<Udp, H, Process>;
/// A Unix stream server with a child process per connection (Python's `ForkingUnixStreamServer`).
pub type ForkingUnixStreamServer<H> = Server<UnixStream, H, Process>;
/// A Unix datagram server with a child process per datagram (Python's
/// `ForkingUnixDatagramServer`).
pub type ForkingUnixDatagramServer<H> = Server<UnixDatagram, H, Process>;
/// A TCP server with pre-started worker processes.
pub type PreforkTcpServer<H> = Server<Tcp, H, Prefork>;
/// A UDP server with pre-started worker processes.
pub type PreforkUdpServer<H> = Server<Udp, H, Prefork>;
