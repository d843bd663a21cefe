//! The stream API's conveniences over real connections: a request split into a read half and a
//! write half used together, a mode chosen at run time, and closures whose argument type is
//! inferred.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::time::Duration;

use common::{Serving, WAIT};
use socketserver::{
    stream_handler, AnyMode, Builder, Deadline, Limit, LimitExceeded, Pool, StreamRequest,
};

#[test]
fn the_halves_of_a_split_request_read_lines_and_answer_them_together() {
    let server = Builder::new()
        .mode(AnyMode::from(Pool::new(2)))
        .bind_tcp(
            "127.0.0.1:0",
            stream_handler(|req| {
                // A greeting line read through the request first: the halves must see what the
                // request had already buffered after it.
                let mut greeting = String::new();
                req.read_line(&mut greeting)?;
                let (reader, mut writer) = req.split();
                writeln!(writer, "hello {}", greeting.trim())?;
                for line in reader.lines() {
                    writeln!(writer, "{}", line?.to_uppercase())?;
                }
                Ok(())
            }),
        )
        .expect("bind");
    let serving = Serving::start(server);
    let mut client = common::tcp_client(common::inet_addr(&serving.handle));
    // One write, so the greeting and both lines arrive in one segment and one server read.
    client.write_all(b"ann\nabc\ndef\n").expect("send");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut reply = String::new();
    client.read_to_string(&mut reply).expect("the answers");
    assert_eq!(reply, "hello ann\nABC\nDEF\n");
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn the_read_half_honours_the_request_deadline() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let server = Builder::new()
        .mode("threading".parse::<AnyMode>().expect("a mode name"))
        .bind_tcp(
            "127.0.0.1:0",
            stream_handler(move |req| {
                req.set_deadline(Deadline::after(Duration::from_millis(200)).named("line"));
                let (mut reader, _writer) = req.split();
                let mut line = String::new();
                let err = reader.read_line(&mut line).expect_err("nothing is sent");
                let _ =
                    tx.send(LimitExceeded::find(&err).map(|l| (l.limit(), l.name().to_owned())));
                Ok(())
            }),
        )
        .expect("bind");
    let serving = Serving::start(server);
    let client = common::tcp_client(common::inet_addr(&serving.handle));
    let limit = common::recv(&rx, "the deadline to pass");
    assert_eq!(limit, Some((Limit::Deadline, "line".to_string())));
    drop(client);
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn every_thread_mode_chosen_by_name_serves() {
    for name in ["single", "threading", "pool"] {
        let mode: AnyMode = name.parse().expect("a mode name");
        let server = Builder::new()
            .mode(mode)
            .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| -> io::Result<()> {
                let mut line = String::new();
                req.read_line(&mut line)?;
                req.write_all(line.as_bytes())
            })
            .expect("bind");
        let serving = Serving::start(server);
        let mut client = common::tcp_client(common::inet_addr(&serving.handle));
        client.write_all(b"ping\n").expect("send");
        let mut echoed = String::new();
        BufReader::new(&client)
            .read_line(&mut echoed)
            .expect("the echo");
        assert_eq!(echoed, "ping\n", "mode {name}");
        serving.finish(WAIT).expect("clean stop");
    }
    let err = "fork".parse::<AnyMode>().expect_err("not a mode");
    assert!(err
        .to_string()
        .contains("expected one of single, threading, pool, process, prefork"));
}
