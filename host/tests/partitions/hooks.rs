//! Webhook receivers, one inside each host's namespace on that namespace's own loopback (hosts
//! allow plain http to 127.0.0.1 only), so the receiver that records a wake names the host that
//! delivered it. Every wake is answered `{"done": true}` and recorded as `Kind::Wake`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ds_history_check::Kind;

use super::cluster::{System, HOSTS};
use super::workload::Recorder;

/// The port every receiver listens on (each in its own namespace).
pub const PORT: u16 = 9797;

/// The receivers; they stop when this is dropped.
pub struct Receivers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts a receiver in every host's namespace, recording into `rec`.
pub fn start(sys: &System, rec: Arc<Recorder>) -> Receivers {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for h in HOSTS {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, rec) = (stop.clone(), rec.clone());
        let entered = sys.net.enter_fn(h);
        threads.push(std::thread::spawn(move || {
            entered().expect("enter the host's namespace");
            let l = TcpListener::bind(("127.0.0.1", PORT)).expect("bind the webhook receiver");
            l.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((conn, _)) => serve(conn, h, &rec),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }));
        ready_rx.recv_timeout(Duration::from_secs(5)).expect("the webhook receiver started");
    }
    Receivers { stop, threads }
}

fn serve(mut conn: std::net::TcpStream, host: &str, rec: &Recorder) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        let subscription = v["subscription_id"].as_str().unwrap_or("?").to_string();
        let generation = v["generation"].as_u64().unwrap_or(0);
        rec.note(host, "", Kind::Wake { subscription, generation });
    }
    let answer = "{\"done\":true}";
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
}
