//! The line transport (`--transport stdio`): each input line is `<from bare JID> <text>`,
//! each output line `<to bare JID> <text>`. Used to drive the real binary in tests (crash
//! and restart) and behind a process supervisor.
//!
//! Lines are served concurrently; a reply line is written only after its message was fully
//! handled, so a Success line means the publication is committed. The line length is
//! bounded while reading: the bytes of an overlong line are discarded as they arrive.

use crate::limits::LimitKind;
use crate::service::Service;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// Longest accepted input line (a JID, a space and the largest message).
fn max_line(service: &Service) -> usize {
    service.options().limits.max_message_bytes + crate::service::MAX_JID_LEN + 2
}

/// What [`read_line_bounded`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineRead {
    /// A line (without its newline) is in the buffer.
    Line,
    /// A line longer than the limit was read and discarded; its length.
    TooLong(usize),
    /// End of input, nothing buffered.
    Eof,
}

/// Reads one `\n`-terminated line into `buf` (cleared first), keeping at most `limit`
/// bytes: the rest of an overlong line is consumed and dropped as it arrives, so memory
/// stays bounded by `limit` plus the reader's buffer whatever the input. The last line
/// may end without a newline. Not cancel-safe (a cancelled read loses the partial line).
pub async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    input: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<LineRead> {
    buf.clear();
    let mut discarded: Option<usize> = None;
    loop {
        let avail = input.fill_buf().await?;
        if avail.is_empty() {
            return Ok(match discarded {
                Some(n) => LineRead::TooLong(n),
                None if buf.is_empty() => LineRead::Eof,
                None => LineRead::Line,
            });
        }
        let newline = avail.iter().position(|b| *b == b'\n');
        let chunk = avail
            .get(..newline.unwrap_or(avail.len()))
            .unwrap_or_default();
        let used = chunk.len() + usize::from(newline.is_some());
        match &mut discarded {
            Some(n) => *n = n.saturating_add(chunk.len()),
            None if buf.len() + chunk.len() > limit => {
                discarded = Some(buf.len() + chunk.len());
                buf.clear();
                buf.shrink_to(limit.min(64 * 1024));
            }
            None => buf.extend_from_slice(chunk),
        }
        input.consume(used);
        if newline.is_some() {
            return Ok(discarded.map_or(LineRead::Line, LineRead::TooLong));
        }
    }
}

/// Serves lines from `input`, writing replies to `output`, until end of input or
/// `shutdown`; then finishes the lines in flight.
pub async fn run<R, W>(
    service: Arc<Service>,
    input: R,
    mut output: W,
    mut shutdown: watch::Receiver<bool>,
    max_in_flight: usize,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let writer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            output.write_all(line.as_bytes()).await?;
            output.flush().await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    let mut input = input;
    let limit = max_line(&service);
    service.set_transport_up(true);
    let mut buf = Vec::new();
    loop {
        let read = tokio::select! {
            r = read_line_bounded(&mut input, &mut buf, limit) => r?,
            _ = shutdown.changed() => { info!("shutting down: finishing in-flight lines"); LineRead::Eof }
        };
        match read {
            LineRead::Eof => break,
            LineRead::TooLong(len) => {
                debug!(len, limit, "input line too long, dropped");
                service.hit(LimitKind::LineTooLong);
                continue;
            }
            LineRead::Line => {}
        }
        let Ok(line) = std::str::from_utf8(&buf) else {
            service.hit(LimitKind::LineNotUtf8);
            continue;
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        let Some((from, text)) = line.split_once(' ') else {
            if !line.trim().is_empty() {
                warn!("input line without a sender, dropped");
            }
            continue;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (service, tx, from, text) = (
            service.clone(),
            tx.clone(),
            from.to_owned(),
            text.to_owned(),
        );
        tasks.spawn(async move {
            let out = tokio::task::spawn_blocking(move || {
                let h = service.handle(&from, &text);
                (from, h.replies)
            })
            .await;
            if let Ok((from, replies)) = out {
                for r in replies {
                    let _ = tx.send(format!("{from} {r}\n")).await;
                }
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .is_err()
    {
        warn!("in-flight lines did not finish within 30 s");
    }
    service.set_transport_up(false);
    drop(tx);
    match writer.await {
        Ok(r) => r,
        Err(e) => Err(std::io::Error::other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceOptions;
    use crate::storage::memory::MemoryStorage;
    use otr4::hazmat::crypto::ed448::KeyPair;
    use otr4::hazmat::wire::codec::Codec;

    #[tokio::test]
    async fn lines_in_replies_out() {
        let service = Arc::new(Service::new(
            KeyPair::generate(&mut rand::rng()),
            Arc::new(MemoryStorage::new()),
            ServiceOptions::new("prekey.example.org"),
        ));
        let q = otr4::hazmat::prekey::messages::EnsembleQuery {
            sender_tag: otr4::InstanceTag(0x1000),
            identity: b"bob@example.org".to_vec(),
            versions: b"4".to_vec(),
        };
        let input = format!(
            "alice@example.org {}\n\nnospace\nbob@example.org garbage\n",
            otr4::hazmat::wire::encoded::encode_prekey(&q.encode())
        );
        let (_tx, rx) = watch::channel(false);
        let (client, server) = tokio::io::duplex(1 << 16);
        run(service, input.as_bytes(), server, rx, 4).await.unwrap();
        let mut out = String::new();
        let mut client = client;
        tokio::io::AsyncReadExt::read_to_string(&mut client, &mut out)
            .await
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let (to, text) = lines[0].split_once(' ').unwrap();
        assert_eq!(to, "alice@example.org");
        let m = crate::testkit::decode_replies(&[text.to_owned()]).unwrap();
        assert!(matches!(
            m[0],
            otr4::PrekeyServerMessage::NoPrekeyEnsembles(_)
        ));
    }

    /// An endless line: yields `len` bytes of `a` in 8 KiB chunks, then `tail`.
    struct Flood {
        left: usize,
        chunk: Vec<u8>,
        tail: std::io::Cursor<Vec<u8>>,
    }

    impl tokio::io::AsyncRead for Flood {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            out: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.left > 0 {
                let n = self.left.min(self.chunk.len()).min(out.remaining());
                out.put_slice(&self.chunk[..n]);
                self.left -= n;
                return std::task::Poll::Ready(Ok(()));
            }
            std::pin::Pin::new(&mut self.tail).poll_read(cx, out)
        }
    }

    #[tokio::test]
    async fn overlong_line_discarded_while_reading() {
        let tail = b"\nalice@x hello\nlast-without-newline".to_vec();
        let mut r = tokio::io::BufReader::new(Flood {
            left: 50 << 20,
            chunk: vec![b'a'; 8192],
            tail: std::io::Cursor::new(tail),
        });
        let mut buf = Vec::new();
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 1000).await.unwrap(),
            LineRead::TooLong(50 << 20)
        );
        assert!(
            buf.capacity() <= 64 * 1024,
            "the buffer never held the line: capacity {}",
            buf.capacity()
        );
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 1000).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"alice@x hello");
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 1000).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"last-without-newline");
        assert_eq!(
            read_line_bounded(&mut r, &mut buf, 1000).await.unwrap(),
            LineRead::Eof
        );
    }

    #[tokio::test]
    async fn overlong_and_non_utf8_lines_counted_server_keeps_serving() {
        let service = Arc::new(Service::new(
            KeyPair::generate(&mut rand::rng()),
            Arc::new(MemoryStorage::new()),
            ServiceOptions::new("prekey.example.org"),
        ));
        let q = otr4::hazmat::prekey::messages::EnsembleQuery {
            sender_tag: otr4::InstanceTag(0x1000),
            identity: b"bob@example.org".to_vec(),
            versions: b"4".to_vec(),
        };
        let mut input = vec![b'x'; 2 << 20];
        input.extend_from_slice(b"\nbob@x \xff\xfe\n");
        input.extend_from_slice(
            format!(
                "alice@example.org {}\n",
                otr4::hazmat::wire::encoded::encode_prekey(&q.encode())
            )
            .as_bytes(),
        );
        let (_tx, rx) = watch::channel(false);
        let (mut client, server) = tokio::io::duplex(1 << 16);
        run(service.clone(), input.as_slice(), server, rx, 4)
            .await
            .unwrap();
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut client, &mut out)
            .await
            .unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with("alice@example.org "));
        let hits = service.limit_hits();
        assert_eq!(hits.count(LimitKind::LineTooLong), 1);
        assert_eq!(hits.count(LimitKind::LineNotUtf8), 1);
    }
}
