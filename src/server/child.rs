//! A server in a child process of a process-based mode: built around the socket it inherited, it
//! handles the one request it was started for (`Process`), or serves until it stops and then
//! exits (a `Prefork` worker).

use std::io;
use std::sync::Arc;

use super::serve::run_request;
use super::stop::Settled;
use super::transport::Transport;
use super::{Builder, Server};
use crate::address::Address;
use crate::handler::RequestHandler;
use crate::mode::Mode;
use crate::process::{self, Role};
use crate::stats::Ending;

impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    /// Builds the server of a child process started by a process-based mode, around the socket
    /// it inherited, instead of binding.
    pub(crate) fn from_role(role: Role, handler: H, builder: Builder<M>) -> io::Result<Self> {
        match role {
            Role::Request { fd } => {
                let socket = process::adopt_socket(fd, T::socket_type())?;
                let max = builder.packet_limit();
                let handed = process::read_handoff(max)?;
                let local = handed.local.clone();
                let mut server = Self::assemble(None, None, local, handler, builder, Some(role))?;
                let request = T::adopt(socket, handed, &server.handle, &server.connection)?;
                server.adopted = Some(request);
                // Stdin stays open after the handoff: the parent closes it when a stop begins.
                process::lifeline_watch(server.handle(), None)?;
                Ok(server)
            }
            Role::Worker { fd, .. } => {
                let socket = process::adopt_socket(fd, T::socket_type())?;
                let local = Address::from_sockaddr(socket.local_addr()?);
                let server =
                    Self::assemble(Some(socket), None, local, handler, builder, Some(role))?;
                process::lifeline_watch(server.handle(), server.mode.drain_timeout())?;
                Ok(server)
            }
        }
    }

    /// A prefork worker that has taken its `max_requests` stops, to be replaced.
    pub(super) fn check_request_limit(&self) {
        if let Some(limit) = self.request_limit {
            if self.handle.shared.counters.accepted() >= limit && !self.handle.is_shutting_down() {
                log::info!(
                    "worker {} served {limit} requests; recycling",
                    std::process::id()
                );
                self.handle.shutdown();
            }
        }
    }

    /// A per-request child: handles the request it was started for, then ends the process with
    /// status 0, or 1 if the handler failed (the parent logs and counts that).
    pub(super) fn serve_adopted(&mut self, mut request: T::Request) -> ! {
        // A verify_request that waits for the PROXY header runs here, in the child; one that
        // does not already ran in the parent.
        let verify = self
            .hooks
            .verify_request
            .as_ref()
            .filter(|_| T::admits_late(&self.connection));
        let ending =
            run_request::<T, H>(&mut self.handler, &mut request, verify, &self.handle.shared);
        // The parent counts this child's request as completed: say here if the stop closed its
        // connection before a request arrived.
        if self.handle.shared.counters.closed_at_stop_counts().1 > 0 {
            log::info!(
                "child {}: the stop closed the connection from {} before its first request \
                 arrived",
                std::process::id(),
                T::peer(&request)
            );
        }
        let code = match ending {
            Ending::Failed => 1,
            Ending::Completed | Ending::Rejected | Ending::HandedOver => 0,
        };
        drop(request);
        std::process::exit(code)
    }

    /// A prefork worker that stopped serving: finishes its running requests within the drain
    /// timeout, then exits, leaving any still running (a client holding an idle connection).
    pub(super) fn exit_worker(&mut self) -> ! {
        let deadline = self.stop_deadline();
        match self.wind_down(|_| {}, Some(deadline)) {
            Settled::Idle => self.mode.join(),
            Settled::Running(running) => {
                self.mode.cut_off();
                log::warn!(
                    "worker {}: {running} request(s) still running after the drain timeout \
                     ({:?}) or the grace period, or at an immediate stop; exiting",
                    std::process::id(),
                    self.mode.drain_timeout().unwrap_or_default()
                );
            }
        }
        let shared = Arc::clone(&self.handle.shared);
        let counters = &shared.counters;
        self.handle.shared.flush_failures();
        process::report_final(&counters.snapshot());
        log::info!(
            "worker {} stopped{}",
            std::process::id(),
            counters.closed_at_stop_note()
        );
        std::process::exit(0)
    }
}
