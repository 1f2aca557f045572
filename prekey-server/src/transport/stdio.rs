//! The line transport (`--transport stdio`): each input line is `<from bare JID> <text>`,
//! each output line `<to bare JID> <text>`. Used to drive the real binary in tests (crash
//! and restart) and behind a process supervisor.
//!
//! Lines are served concurrently; a reply line is written only after its message was fully
//! handled, so a Success line means the publication is committed.

use crate::service::Service;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Longest accepted input line (a JID, a space and the largest message).
fn max_line(service: &Service) -> usize {
    service.options().limits.max_message_bytes + crate::service::MAX_JID_LEN + 2
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
    R: AsyncBufRead + Unpin,
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
    let mut lines = input.lines();
    let limit = max_line(&service);
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l?,
            _ = shutdown.changed() => { info!("shutting down: finishing in-flight lines"); None }
        };
        let Some(line) = line else { break };
        if line.len() > limit {
            warn!(len = line.len(), "input line too long, dropped");
            continue;
        }
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
    use otr4::crypto::ed448::KeyPair;

    #[tokio::test]
    async fn lines_in_replies_out() {
        let service = Arc::new(Service::new(
            KeyPair::generate(&mut rand::rng()),
            Arc::new(MemoryStorage::new()),
            ServiceOptions::new("prekey.example.org"),
        ));
        let q = otr4::wire::prekey_messages::EnsembleQuery {
            sender_tag: otr4::InstanceTag(0x1000),
            identity: b"bob@example.org".to_vec(),
            versions: b"4".to_vec(),
        };
        let input = format!(
            "alice@example.org {}\n\nnospace\nbob@example.org garbage\n",
            otr4::wire::encoded::encode_prekey(&q.encode())
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
            otr4::wire::prekey_messages::PrekeyServerMessage::NoPrekeyEnsembles(_)
        ));
    }
}
