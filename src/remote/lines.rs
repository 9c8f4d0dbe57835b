//! Reading lines of at most a given size from a stream, so that a client
//! that never sends a newline cannot make the reader grow without bound.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its newline.
    Full(Vec<u8>),
    /// The stream ended cleanly between lines.
    End,
    /// The stream ended in the middle of a line: these bytes never got their newline.
    Partial(Vec<u8>),
    /// The line ran past the cap; the stream cannot be trusted to resync.
    TooLong,
}

/// Reads the next line of at most `cap` bytes (newline included).
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    cap: usize,
) -> std::io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                Line::End
            } else {
                Line::Partial(line)
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > cap {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(Line::Full(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], cap: usize) -> Vec<Line> {
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader, cap).await.unwrap();
            let stop = !matches!(line, Line::Full(_));
            out.push(line);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_and_tells_how_the_stream_ended() {
        assert_eq!(
            all(b"ab\r\ncdefgh\n", 100).await,
            vec![
                Line::Full(b"ab".to_vec()),
                Line::Full(b"cdefgh".to_vec()),
                Line::End
            ]
        );
        assert_eq!(
            all(b"ab\ncd", 100).await,
            vec![Line::Full(b"ab".to_vec()), Line::Partial(b"cd".to_vec())]
        );
    }

    #[tokio::test]
    async fn a_line_past_the_cap_is_refused_without_reading_it_all() {
        assert_eq!(
            all(b"0123456789\n", 10).await,
            vec![Line::TooLong],
            "eleven bytes with the newline"
        );
        assert_eq!(
            all(b"012345678\n", 10).await,
            vec![Line::Full(b"012345678".to_vec()), Line::End]
        );
    }
}
