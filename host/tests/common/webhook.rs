//! A webhook receiver on a free loopback port: records every delivery (signature header and JSON
//! body) and answers 500 until told to succeed, then `{"done":true}`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A webhook receiver that answers 500 until told to answer `{"done":true}`.
pub struct Receiver {
    pub port: u16,
    pub succeed: Arc<Mutex<bool>>,
    pub seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let succeed = Arc::new(Mutex::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s2, seen2) = (succeed.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let (mut len, mut sig) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("webhook-signature:") {
                        sig = line["webhook-signature:".len()..].trim().to_string();
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                if let Ok(v) = serde_json::from_slice(&body) {
                    seen2.lock().unwrap().push((sig, v));
                }
                let reply = if *s2.lock().unwrap() {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"done\":true}"
                } else {
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = conn.write_all(reply.as_bytes());
            }
        });
        Receiver { port, succeed, seen }
    }
}
