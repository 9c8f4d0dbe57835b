//! The child's pipes: the request in, the reply and trace lines out.
//!
//! Each function here is a future the call polls side by side with the
//! others, so a child that writes much before reading cannot deadlock us.
//! State that must survive the call giving up early (the bytes read so far,
//! a half-read line) lives in the caller's buffers, not in the futures.

use std::collections::VecDeque;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::task::MAX_TRACE_LINES;

/// Bytes kept of one stderr line; the rest of the line is dropped.
pub(super) const MAX_LINE_BYTES: usize = 4096;

/// Stderr lines remembered for failure messages.
const TAIL_LINES: usize = 3;

/// Writes the request and closes the pipe. Errors are ignored: a child may
/// exit or close stdin without reading, and that alone is no failure (what
/// it prints, and how it exits, decide the outcome).
pub(super) async fn write_request<W: AsyncWrite + Unpin>(mut stdin: W, request: Vec<u8>) {
    let _ = stdin.write_all(&request).await;
    let _ = stdin.shutdown().await;
}

/// Stdout grew past its cap.
#[derive(Debug)]
pub(super) struct Overflow;

/// Reads to end of file into `buf`, failing as soon as more than `cap` bytes
/// arrive, so a runaway child cannot take unbounded memory.
pub(super) async fn read_capped<R: AsyncRead + Unpin>(
    mut out: R,
    cap: usize,
    buf: &mut Vec<u8>,
) -> Result<(), Overflow> {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match out.read(&mut chunk).await {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if buf.len() + n > cap {
                    return Err(Overflow);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A pipe read does not fail in practice; treat it as the end.
            Err(_) => return Ok(()),
        }
    }
}

/// The trace of one attempt: every line goes to the live channel, the first
/// `MAX_TRACE_LINES` are kept, the rest are counted.
pub(super) struct TraceLog {
    live: Option<UnboundedSender<String>>,
    kept: Vec<String>,
    more: usize,
    tail: VecDeque<String>,
    /// The line being read, until its newline arrives.
    pending: Vec<u8>,
    pending_cut: bool,
}

impl TraceLog {
    pub(super) fn new(live: Option<UnboundedSender<String>>) -> TraceLog {
        TraceLog {
            live,
            kept: Vec::new(),
            more: 0,
            tail: VecDeque::new(),
            pending: Vec::new(),
            pending_cut: false,
        }
    }

    /// Takes bytes of the current line, keeping at most `MAX_LINE_BYTES`.
    fn extend_line(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES - self.pending.len();
        if bytes.len() > room {
            self.pending.extend_from_slice(&bytes[..room]);
            self.pending_cut = true;
        } else {
            self.pending.extend_from_slice(bytes);
        }
    }

    /// Ends the current line.
    fn end_line(&mut self) {
        let mut bytes = std::mem::take(&mut self.pending);
        let cut = std::mem::replace(&mut self.pending_cut, false);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        if cut {
            // Do not leave half a character where the line was cut.
            if let Err(e) = std::str::from_utf8(&bytes)
                && e.error_len().is_none()
            {
                bytes.truncate(e.valid_up_to());
            }
        }
        let mut line = String::from_utf8_lossy(&bytes).into_owned();
        if cut {
            line.push('…');
        }
        self.push(line);
    }

    /// Ends a last line that had no newline, if any.
    pub(super) fn flush(&mut self) {
        if !self.pending.is_empty() || self.pending_cut {
            self.end_line();
        }
    }

    fn push(&mut self, line: String) {
        if let Some(tx) = &self.live {
            // Nobody watching is fine.
            let _ = tx.send(line.clone());
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        if self.kept.len() < MAX_TRACE_LINES {
            self.kept.push(line);
        } else {
            self.more += 1;
        }
    }

    /// The last few lines, for failure messages.
    pub(super) fn tail(&self) -> impl Iterator<Item = &str> {
        self.tail.iter().map(String::as_str)
    }

    /// The kept lines, and a count of the others.
    pub(super) fn into_lines(mut self) -> Vec<String> {
        self.flush();
        if self.more > 0 {
            self.kept.push(format!("… {} more lines", self.more));
        }
        self.kept
    }
}

/// Reads stderr to end of file, line by line, into `log`.
pub(super) async fn read_lines<R: AsyncRead + Unpin>(err: R, log: &mut TraceLog) {
    let mut reader = BufReader::new(err);
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if buf.is_empty() {
            break;
        }
        let used = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                log.extend_line(&buf[..i]);
                log.end_line();
                i + 1
            }
            None => {
                log.extend_line(buf);
                buf.len()
            }
        };
        reader.consume(used);
    }
    log.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8]) -> Vec<String> {
        let mut log = TraceLog::new(None);
        read_lines(input, &mut log).await;
        log.into_lines()
    }

    #[tokio::test]
    async fn lines_are_split_trimmed_and_lossy() {
        let lines = lines_of(b"one\r\ntwo\n\nbad \xff byte\nlast").await;
        assert_eq!(lines, ["one", "two", "", "bad \u{fffd} byte", "last"]);
    }

    #[tokio::test]
    async fn long_lines_are_cut_on_a_character_boundary() {
        let mut input = "a".repeat(MAX_LINE_BYTES - 1).into_bytes();
        input.extend_from_slice("é and more".as_bytes());
        input.extend_from_slice(b"\nnext\n");
        let lines = lines_of(&input).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], format!("{}…", "a".repeat(MAX_LINE_BYTES - 1)));
        assert_eq!(lines[1], "next");
    }

    #[tokio::test]
    async fn lines_past_the_limit_are_counted_but_all_go_live() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut log = TraceLog::new(Some(tx));
        let input: String = (0..MAX_TRACE_LINES + 7)
            .map(|i| format!("l{i}\n"))
            .collect();
        read_lines(input.as_bytes(), &mut log).await;
        let tail: Vec<_> = log.tail().map(str::to_string).collect();
        assert_eq!(
            tail.last().map(String::as_str),
            Some(format!("l{}", MAX_TRACE_LINES + 6).as_str())
        );
        let lines = log.into_lines();
        assert_eq!(lines.len(), MAX_TRACE_LINES + 1);
        assert_eq!(lines.last().unwrap(), "… 7 more lines");
        let mut live = 0;
        while rx.try_recv().is_ok() {
            live += 1;
        }
        assert_eq!(live, MAX_TRACE_LINES + 7);
    }

    #[tokio::test]
    async fn reading_stops_past_the_cap() {
        let mut buf = Vec::new();
        assert!(read_capped(&[7u8; 100][..], 100, &mut buf).await.is_ok());
        let mut buf = Vec::new();
        assert!(read_capped(&[7u8; 101][..], 100, &mut buf).await.is_err());
        assert!(buf.len() <= 100);
    }
}
