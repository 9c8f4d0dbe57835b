//! A small HTTP/1.1 server on 127.0.0.1 that answers each request with the
//! next scripted step: a whole reply, a server-sent event stream (which may
//! wait for the test or break off), or nothing at all. It records every
//! request. Runs on its own thread, so sync and async tests can both use it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

/// A piece of a streamed reply.
#[derive(Clone)]
pub enum Piece {
    /// Bytes sent as one chunk.
    Data(String),
    /// Waits until the test notifies.
    Wait(Arc<Notify>),
    /// Drops the connection without ending the body.
    Cut,
}

/// How the server answers one request.
#[derive(Clone)]
pub enum Step {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Stream {
        headers: Vec<(String, String)>,
        pieces: Vec<Piece>,
    },
    /// Reads the request, then never answers.
    Hang,
}

impl Step {
    pub fn json(status: u16, body: serde_json::Value) -> Step {
        Step::Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Step {
        match &mut self {
            Step::Reply { headers, .. } | Step::Stream { headers, .. } => {
                headers.push((name.into(), value.into()));
            }
            Step::Hang => {}
        }
        self
    }

    /// An event stream of `events`, each `(event name, data)`.
    pub fn sse(events: &[(Option<&str>, String)]) -> Step {
        Step::Stream {
            headers: Vec::new(),
            pieces: events
                .iter()
                .map(|(name, data)| Piece::Data(sse_event(*name, data)))
                .collect(),
        }
    }
}

pub fn sse_event(name: Option<&str>, data: &str) -> String {
    match name {
        Some(n) => format!("event: {n}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Server {
    /// Serves `steps` in order, one per request; the last one repeats.
    pub fn start(steps: Vec<Step>) -> Server {
        assert!(!steps.is_empty());
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = requests.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().unwrap()).unwrap();
                let steps = Arc::new(steps);
                let mut n = 0usize;
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        return;
                    };
                    let step = steps[n.min(steps.len() - 1)].clone();
                    n += 1;
                    let log = log.clone();
                    tokio::spawn(async move {
                        let _ = serve(conn, step, log).await;
                    });
                }
            });
        });
        let addr = rx.recv().expect("server address");
        Server { addr, requests }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Recorded {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        529 => "Overloaded",
        _ => "Status",
    }
}

async fn serve(
    mut conn: TcpStream,
    step: Step,
    log: Arc<Mutex<Vec<Recorded>>>,
) -> std::io::Result<()> {
    let req = read_request(&mut conn).await?;
    log.lock().unwrap().push(req);
    match step {
        Step::Hang => {
            // Hold the connection open until the client gives up.
            let mut sink = [0u8; 64];
            while conn.read(&mut sink).await? > 0 {}
            Ok(())
        }
        Step::Reply {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for (n, v) in &headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str(&format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            ));
            conn.write_all(head.as_bytes()).await?;
            conn.write_all(body.as_bytes()).await?;
            conn.shutdown().await
        }
        Step::Stream { headers, pieces } => {
            let mut head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n".to_string();
            for (n, v) in &headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            conn.write_all(head.as_bytes()).await?;
            for piece in pieces {
                match piece {
                    Piece::Data(d) => {
                        conn.write_all(format!("{:x}\r\n{d}\r\n", d.len()).as_bytes())
                            .await?;
                        conn.flush().await?;
                    }
                    Piece::Wait(n) => n.notified().await,
                    Piece::Cut => return Ok(()),
                }
            }
            conn.write_all(b"0\r\n\r\n").await?;
            conn.shutdown().await
        }
    }
}
