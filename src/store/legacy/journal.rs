//! The journal's line format and the reading of segments.
//!
//! One event per line: its compact JSON, a TAB, the CRC32 of the JSON bytes
//! as 8 lowercase hex digits, `\n`. JSON escapes control characters inside
//! strings, so the last TAB on a line is always the separator.

use std::fmt;

use crate::engine::event::Event;

/// Appends `event` as one journal line to `buf`. On error `buf` is unchanged.
#[cfg(test)]
pub(crate) fn encode_line(event: &Event, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    use std::io::Write;
    let start = buf.len();
    if let Err(e) = serde_json::to_writer(&mut *buf, event) {
        buf.truncate(start);
        return Err(e);
    }
    let crc = crc32fast::hash(&buf[start..]);
    // Writing to a Vec cannot fail.
    let _ = writeln!(buf, "\t{crc:08x}");
    Ok(())
}

/// Why a line is not a good event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LineFault {
    /// The file ends without the line's `\n`.
    Unterminated,
    NoChecksum,
    BadChecksum,
    NotAnEvent(String),
}

impl fmt::Display for LineFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineFault::Unterminated => f.write_str("incomplete line at end of file"),
            LineFault::NoChecksum => f.write_str("no checksum"),
            LineFault::BadChecksum => f.write_str("checksum mismatch"),
            LineFault::NotAnEvent(e) => write!(f, "not an event: {e}"),
        }
    }
}

/// Decodes one line, without its `\n`.
pub(crate) fn decode_line(line: &[u8]) -> Result<Event, LineFault> {
    let tab = line
        .iter()
        .rposition(|&b| b == b'\t')
        .ok_or(LineFault::NoChecksum)?;
    let (json, crc) = (&line[..tab], &line[tab + 1..]);
    let want = parse_crc(crc).ok_or(LineFault::NoChecksum)?;
    if crc32fast::hash(json) != want {
        return Err(LineFault::BadChecksum);
    }
    serde_json::from_slice(json).map_err(|e| LineFault::NotAnEvent(e.to_string()))
}

/// Exactly 8 lowercase hex digits.
fn parse_crc(text: &[u8]) -> Option<u32> {
    if text.len() != 8 || !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok()
}

/// One line of a segment.
#[derive(Debug)]
pub(crate) struct Line {
    /// 1-based, for messages.
    pub number: usize,
    /// Byte range in the file, including the `\n` when there is one.
    pub start: usize,
    pub end: usize,
    pub event: Result<Event, LineFault>,
}

/// A segment's bytes, split into lines and decoded.
#[derive(Debug)]
pub(crate) struct Scan {
    pub lines: Vec<Line>,
}

impl Scan {
    pub(crate) fn new(bytes: &[u8]) -> Scan {
        let mut lines = Vec::new();
        let mut start = 0;
        while start < bytes.len() {
            let number = lines.len() + 1;
            let line = match bytes[start..].iter().position(|&b| b == b'\n') {
                Some(len) => Line {
                    number,
                    start,
                    end: start + len + 1,
                    event: decode_line(&bytes[start..start + len]),
                },
                None => Line {
                    number,
                    start,
                    end: bytes.len(),
                    event: Err(LineFault::Unterminated),
                },
            };
            start = line.end;
            lines.push(line);
        }
        Scan { lines }
    }

    pub(crate) fn bad(&self) -> impl Iterator<Item = (&Line, &LineFault)> {
        self.lines
            .iter()
            .filter_map(|l| l.event.as_ref().err().map(|f| (l, f)))
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.bad().next().is_none()
    }

    /// When every bad line comes after the last good one, the byte offset
    /// where the bad tail starts: the shape a crash mid-write leaves.
    pub(crate) fn bad_tail_start(&self) -> Option<usize> {
        let first_bad = self.lines.iter().position(|l| l.event.is_err())?;
        let after_last_good = self
            .lines
            .iter()
            .rposition(|l| l.event.is_ok())
            .map_or(0, |i| i + 1);
        (first_bad >= after_last_good).then(|| self.lines[first_bad].start)
    }

    /// The good lines' bytes, in order.
    pub(crate) fn good_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for l in self.lines.iter().filter(|l| l.event.is_ok()) {
            out.extend_from_slice(&bytes[l.start..l.end]);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::engine::event::EventKind;
    use jiff::Timestamp;
    use serde_json::json;

    /// A small event for task `t<seq % 3>`.
    pub(crate) fn ev(seq: u64) -> Event {
        Event {
            seq,
            at: Timestamp::from_second(1_700_000_000 + seq as i64).unwrap(),
            task: Some(format!("t{}", seq % 3)),
            kind: EventKind::TaskSubmitted {
                input: json!({ "n": seq, "text": "tab\there, quote\" and newline\n" }),
            },
        }
    }

    pub(crate) fn line(e: &Event) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_line(e, &mut buf).unwrap();
        buf
    }

    #[test]
    fn lines_round_trip() {
        let e = ev(7);
        let buf = line(&e);
        assert_eq!(buf.iter().filter(|&&b| b == b'\t').count(), 1);
        assert!(buf.ends_with(b"\n"));
        let text = std::str::from_utf8(&buf).unwrap();
        let (json, crc) = text.trim_end().rsplit_once('\t').unwrap();
        assert_eq!(crc, format!("{:08x}", crc32fast::hash(json.as_bytes())));
        assert_eq!(decode_line(&buf[..buf.len() - 1]), Ok(e));
    }

    #[test]
    fn faults_are_named() {
        let good = line(&ev(1));
        let body = &good[..good.len() - 1];
        assert_eq!(decode_line(b"{}"), Err(LineFault::NoChecksum));
        assert_eq!(decode_line(b"{}\tABCDEF01"), Err(LineFault::NoChecksum));
        let mut flipped = body.to_vec();
        flipped[3] ^= 0x01;
        assert_eq!(decode_line(&flipped), Err(LineFault::BadChecksum));
        let not_event = format!("{{}}\t{:08x}", crc32fast::hash(b"{}"));
        assert!(matches!(
            decode_line(not_event.as_bytes()),
            Err(LineFault::NotAnEvent(_))
        ));
    }

    #[test]
    fn scan_finds_torn_tails_and_middle_damage() {
        let mut bytes = [line(&ev(1)), line(&ev(2))].concat();
        let clean = Scan::new(&bytes);
        assert!(clean.is_clean());
        assert_eq!(clean.bad_tail_start(), None);

        let good_len = bytes.len();
        bytes.extend_from_slice(&line(&ev(3))[..10]);
        let torn = Scan::new(&bytes);
        assert_eq!(torn.bad_tail_start(), Some(good_len));
        assert_eq!(torn.good_bytes(&bytes).len(), good_len);

        let mut middle = [line(&ev(1)), b"garbage\n".to_vec(), line(&ev(2))].concat();
        let scan = Scan::new(&middle);
        assert_eq!(scan.bad_tail_start(), None);
        let bad: Vec<_> = scan.bad().map(|(l, _)| l.number).collect();
        assert_eq!(bad, vec![2]);
        middle = scan.good_bytes(&middle);
        assert_eq!(middle, [line(&ev(1)), line(&ev(2))].concat());

        // Nothing good at all still counts as a tail.
        assert_eq!(Scan::new(b"\0\0\0").bad_tail_start(), Some(0));
    }
}
