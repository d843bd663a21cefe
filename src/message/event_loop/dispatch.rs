//! Frame dispatch: a connection's whole messages to its handler (inline, or batched to a worker,
//! or waiting for room in the workers' queue), the workers' results back to their connections,
//! and the commands other threads send the loop.

use super::*;

impl<H: MessageHandler, F: Framer> EventLoop<H, F> {
    /// Handles (inline) or hands to a worker the complete messages at the front of the input.
    /// `Err` closes the connection for that reason.
    pub(super) fn handle_buffered(&mut self, id: ConnectionId) -> Result<(), Closed> {
        let inline = self.workers.is_none();
        let max_pending = self.settings.max_pending_output;
        let server = &self.server;
        let Some(conn) = self.slots.get_mut(id) else {
            return Ok(());
        };
        if conn.waiting {
            return Ok(()); // its turn comes when the workers' queue has room
        }
        if self.workers.as_ref().is_some_and(|w| !w.has_room()) {
            conn.waiting = true;
            self.waitlist.push_back(id);
            return Ok(());
        }
        let mut consumed = 0;
        // Whether the loop stopped at an incomplete message (or none), not with whole ones left.
        let mut partial = false;
        let mut batch = self.spare_batches.pop().unwrap_or_default();
        let mut outcome = Ok(());
        let Some(mut handler) = conn.handler.take() else {
            return Ok(());
        };
        let input = std::mem::take(&mut conn.input);
        loop {
            let rest = &input[consumed..];
            if rest.is_empty() {
                partial = true;
                break;
            }
            let frame = match conn.framer.frame(rest) {
                Ok(Some(frame)) => frame,
                Ok(None) => {
                    if rest.len() >= conn.framer.limit() {
                        let error = io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "message of more than {} bytes (the framer's limit) from {}",
                                conn.framer.limit(),
                                conn.info.peer
                            ),
                        );
                        server
                            .shared
                            .report(&conn.info.peer, &Failure::Error(error));
                        outcome = Err(Closed::BadMessage);
                    }
                    partial = true;
                    break;
                }
                Err(e) => {
                    let error = io::Error::new(
                        e.kind(),
                        format!("bad message from {}: {e}", conn.info.peer),
                    );
                    server
                        .shared
                        .report(&conn.info.peer, &Failure::Error(error));
                    outcome = Err(Closed::BadMessage);
                    break;
                }
            };
            let m = frame.message.clone();
            let possible = m.start <= m.end
                && m.end <= frame.consumed
                && frame.consumed > 0
                && frame.consumed <= rest.len();
            if !possible {
                let error = io::Error::other(format!(
                    "the framer returned an impossible frame ({frame:?} of {} bytes)",
                    rest.len()
                ));
                server
                    .shared
                    .report(&conn.info.peer, &Failure::Error(error));
                outcome = Err(Closed::HandlerFailed);
                break;
            }
            let message = &rest[m];
            consumed += frame.consumed;
            if inline {
                let mut close = false;
                let began = Instant::now();
                let step = run_step(&mut conn.output, &mut close, &conn.info, |reply| {
                    handler.handle(message, reply)
                });
                server
                    .shared
                    .counters
                    .message_handled(&step, began.elapsed());
                if let Err(failure) = step {
                    server.shared.report(&conn.info.peer, &failure);
                    conn.close_later(Closed::HandlerFailed, LINGER);
                    break;
                }
                if close {
                    conn.close_later(Closed::ByHandler, LINGER);
                    break;
                }
                if conn.pending() > max_pending {
                    conn.held = true;
                    break;
                }
            } else {
                batch.push(message);
                if batch.messages.len() >= BATCH_MESSAGES || batch.bytes.len() >= BATCH_BYTES {
                    break;
                }
            }
        }
        conn.input = input;
        conn.consume_input(consumed);
        conn.rest_is_partial = partial;
        let now = Instant::now();
        if consumed > 0 || conn.input.is_empty() {
            conn.message_since = (!conn.input.is_empty()).then_some(now);
        } else if conn.message_since.is_none() {
            conn.message_since = Some(now);
        }
        if batch.is_empty() {
            conn.handler = Some(handler);
            if !inline {
                self.spare_batches.push(batch);
            }
            return outcome;
        }
        conn.on_worker = batch.bytes.capacity();
        let job = Job {
            handler,
            info: Arc::clone(&conn.info),
            batch,
        };
        if let Some(workers) = &self.workers {
            if let Err(job) = workers.submit(job) {
                // The workers are gone (the server is stopping): nothing will answer.
                if let Some(conn) = self.conn(id) {
                    conn.handler = Some(job.handler);
                }
                return Err(Closed::ServerStopped);
            }
        }
        outcome
    }

    /// Results from the workers: the handler comes home with its replies. Then the connections
    /// waiting for room in the workers' queue get it, in order.
    pub(super) fn take_results(&mut self) {
        self.take_done();
        while self.workers.as_ref().is_some_and(Workers::has_room) {
            let Some(id) = self.waitlist.pop_front() else {
                break;
            };
            let Some(conn) = self.conn(id) else {
                continue; // closed meanwhile
            };
            conn.waiting = false;
            self.service(id);
        }
    }

    pub(super) fn take_done(&mut self) {
        let Some(workers) = &self.workers else {
            return;
        };
        let mut all = std::mem::take(&mut self.done);
        workers.take_done(&mut all);
        for done in all.drain(..) {
            let Done {
                id,
                handler,
                out,
                close,
                failure,
                batch,
            } = done;
            // A batch that grew for a burst is let go; the usual small ones are kept.
            if self.spare_batches.len() < SPARE_BATCHES
                && batch.bytes.capacity() <= SPARE_BATCH_BYTES
            {
                self.spare_batches.push(batch);
            }
            let Some(conn) = self.slots.get_mut(id) else {
                continue;
            };
            conn.handler = Some(handler);
            conn.on_worker = 0;
            if let Some(failure) = &failure {
                self.server.shared.report(&conn.info.peer, failure);
            }
            if conn.abandoned {
                let reason = conn.closing.clone().unwrap_or(Closed::ServerStopped);
                self.finish(id, reason);
                continue;
            }
            conn.last_active = Instant::now();
            conn.queue(out);
            if failure.is_some() {
                conn.close_later(Closed::HandlerFailed, LINGER);
            } else if close {
                conn.close_later(Closed::ByHandler, LINGER);
            }
            self.service(id);
        }
        self.done = all;
    }

    pub(super) fn take_commands(&mut self) {
        loop {
            let command = match self.commands.try_recv() {
                Ok(command) => command,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return,
            };
            match command {
                Command::Open(connection, peer, ticket, accepted, seat) => {
                    self.open(connection, peer, ticket, accepted, seat);
                }
                Command::Push(id, bytes) => {
                    let max_pending = self.settings.max_pending_output;
                    let counters = &self.server.shared.counters;
                    let Some(conn) = self.slots.get_mut(id).filter(|c| !c.abandoned) else {
                        counters.pushed(false);
                        continue;
                    };
                    conn.push(bytes);
                    counters.pushed(conn.pending() <= max_pending);
                    if conn.pending() > max_pending {
                        log::debug!(
                            "{}: {} bytes pushed and not read; closing the connection",
                            conn.info.peer,
                            conn.pending()
                        );
                        self.close(id, Closed::SlowReader);
                        continue;
                    }
                    self.settle(id);
                }
                Command::AcceptingEnded => self.accepting = false,
                Command::Close(id) => {
                    let Some(conn) = self.conn(id) else {
                        continue;
                    };
                    conn.close_later(Closed::ByHandler, LINGER);
                    self.settle(id);
                }
            }
        }
    }
}
