//! Building a [`Server`] around its socket: the shared state, the mode, the signal relay and the
//! line to systemd.

use std::io;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use socket2::Socket;

use super::builder::BuiltParts;
use super::transport::Transport;
use super::{Builder, Server, ServerHandle};
use crate::address::Address;
use crate::control::{failure_log, Notifier, Shared, StopSignal};
use crate::handler::RequestHandler;
use crate::mode::Mode;
use crate::process::Role;
use crate::socket::errors::Backoff;
#[cfg(feature = "tls")]
use crate::socket::options::HandshakeBy;
use crate::socket::unix_path::UnixPathGuard;
use crate::throttle::Throttle;

impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    pub(crate) fn from_parts(
        socket: Socket,
        unix_path: Option<UnixPathGuard>,
        handler: H,
        builder: Builder<M>,
    ) -> io::Result<Self> {
        let local = Address::from_sockaddr(socket.local_addr()?);
        Self::assemble(Some(socket), unix_path, local, handler, builder, None)
    }

    pub(super) fn assemble(
        socket: Option<Socket>,
        unix_path: Option<UnixPathGuard>,
        local: Address,
        handler: H,
        builder: Builder<M>,
        role: Option<Role>,
    ) -> io::Result<Self> {
        let BuiltParts {
            mut mode,
            #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
            mut connection,
            threads,
            timeout,
            service_interval,
            close_timeout,
            hooks,
            on_error,
            stopping,
            notify_systemd,
            #[cfg(feature = "metrics")]
            metrics,
        } = builder.into_parts();
        // The parent serves the metrics, for the whole server; children of a process mode none.
        #[cfg(feature = "metrics")]
        let admin = match metrics.as_ref().filter(|_| role.is_none()) {
            Some(addr) => Some(crate::metrics::admin::bind(addr, &local)?),
            None => None,
        };
        if let (true, Some(socket)) = (T::STREAM, &socket) {
            // Non-blocking so a connection that vanishes between poll and accept (or that another
            // process sharing the listener took first) cannot block the loop.
            socket.set_nonblocking(true)?;
        }
        // Only the process systemd started reports to it, not the children of a process mode.
        let notify = (notify_systemd && role.is_none())
            .then(Notifier::from_env)
            .flatten()
            .map(|n| {
                n.with_label(format!(
                    "{} server on {local} ({} mode)",
                    T::NAME,
                    mode.name()
                ))
                .hold_ready_while(crate::systemd::upgrade_unclaimed)
            });
        let shared = Arc::new(Shared {
            stop: StopSignal::new()?,
            abort: StopSignal::new()?,
            abort_reason: OnceLock::new(),
            grace: stopping.grace,
            counters: Default::default(),
            local,
            on_error,
            failure_log: failure_log::FailureLog::new(),
            notify,
            prefork: Default::default(),
            #[cfg(feature = "metrics")]
            metrics_addr: admin.as_ref().map(|a| a.local.clone()),
        });
        #[cfg(feature = "metrics")]
        let admin = match admin {
            Some(bound) => {
                let title = format!(
                    "{} server on {} ({} mode)",
                    T::NAME,
                    shared.local,
                    mode.name()
                );
                Some(crate::metrics::admin::Admin::start(
                    bound,
                    Arc::clone(&shared),
                    title,
                )?)
            }
            None => None,
        };
        // A per-request child does its connection's handshake, not the parent that hands it over.
        #[cfg(feature = "tls")]
        if let Some(tls) = connection.tls.as_mut() {
            if role.is_none() && mode.wants_handoff() && tls.handshake == HandshakeBy::Server {
                tls.handshake = HandshakeBy::Child;
            }
        }
        let worker = matches!(role, Some(Role::Worker { .. }));
        if let Some(Role::Worker { index, .. }) = role {
            mode.become_worker(index);
        }
        // A per-request child runs its one request inline: no mode machinery to start.
        if !matches!(role, Some(Role::Request { .. })) {
            mode.start(&threads)?;
        }
        let request_limit = mode.worker_request_limit().filter(|_| worker);
        #[cfg(feature = "signals")]
        let signals = match stopping.signals {
            false => None,
            true => {
                let handle = ServerHandle {
                    shared: Arc::clone(&shared),
                };
                let child = matches!(role, Some(Role::Request { .. }));
                // SIGHUP reloads the certificates, except in a prefork parent (where it starts
                // fresh workers, which load them) and a per-request child (its one connection
                // has its certificate).
                #[cfg(feature = "tls")]
                let reload = connection.tls.as_ref().map(|t| t.tls.clone());
                #[cfg(not(feature = "tls"))]
                let reload = None;
                Some(super::signals::SignalRelay::start(
                    handle,
                    child,
                    mode.supervises(),
                    reload.filter(|_| !child && !mode.supervises()),
                )?)
            }
        };
        Ok(Server {
            socket: socket.map(Arc::new),
            unix_path,
            handler,
            mode,
            handle: ServerHandle { shared },
            hooks,
            connection,
            timeout,
            service_interval,
            close_timeout,
            recv_buf: Vec::new(),
            backoff: Backoff::new(),
            error_log: Throttle::new(Duration::from_secs(1)),
            closed: false,
            adopted: None,
            worker,
            request_limit,
            #[cfg(feature = "signals")]
            _signals: signals,
            served_as: None,
            #[cfg(any(feature = "proxy", feature = "tls"))]
            intake: None,
            #[cfg(any(feature = "proxy", feature = "tls"))]
            threads,
            owns_listener: false,
            door_shut: false,
            served: false,
            #[cfg(feature = "metrics")]
            _admin: admin,
            transport: PhantomData,
        })
    }
}
