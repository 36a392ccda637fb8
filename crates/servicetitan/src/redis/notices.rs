//! Wake-ups for processes waiting on another's token fetch: the fetcher publishes on the
//! token's channel when it is done, and every process listens on one pub/sub connection (a
//! pattern for all the tokens under its prefix), so a waiter wakes within a round trip of the
//! token landing instead of at its next poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::watch;

/// How long a waiter waits for the listener to be subscribed (the first wait of a process
/// connects it) before it falls back to polling.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);

/// The listener's connect and subscribe timeout, and the longest pause between its reconnects.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(2);

/// The channel a fetcher publishes on when it has finished fetching the token stored under
/// `token_key` (whether it got one or not).
pub(super) fn channel(token_key: &str) -> String {
    format!("{token_key}:fetched")
}

/// The pattern matching [`channel`] for every token under `prefix` (its glob characters
/// escaped: a prefix is matched as written).
fn pattern(prefix: &str) -> String {
    let mut escaped = String::with_capacity(prefix.len() + 16);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("{escaped}:token:*:fetched")
}

/// The listener of one backend, started on first use, stopped when the backend is dropped.
pub(super) struct FetchNotices {
    client: redis::Client,
    pattern: String,
    shared: Arc<Shared>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
}

struct Shared {
    // One sender per channel someone waits on; entries nobody waits on any more are swept as
    // the map grows (each registration looks at most at a map twice the size of the last sweep).
    waiters: Mutex<Waiters>,
    listening: watch::Sender<Listening>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Listening {
    /// Connecting for the first time.
    Starting,
    Subscribed,
    /// Not subscribed (failed, or reconnecting): waiters poll without waiting for it.
    Down,
}

struct Waiters {
    by_channel: HashMap<String, watch::Sender<()>>,
    sweep_at: usize,
}

const SWEEP_FROM: usize = 64;

impl Shared {
    fn wake(&self, channel: &str) {
        if let Some(sender) = crate::sync::lock(&self.waiters).by_channel.get(channel) {
            sender.send_replace(());
        }
    }

    /// After a lost connection: a message may have been missed, so everyone looks again.
    fn wake_all(&self) {
        for sender in crate::sync::lock(&self.waiters).by_channel.values() {
            sender.send_replace(());
        }
    }
}

impl FetchNotices {
    pub(super) fn new(client: redis::Client, prefix: &str) -> Self {
        FetchNotices {
            client,
            pattern: pattern(prefix),
            shared: Arc::new(Shared {
                waiters: Mutex::new(Waiters { by_channel: HashMap::new(), sweep_at: SWEEP_FROM }),
                listening: watch::channel(Listening::Starting).0,
            }),
            listener: Mutex::new(None),
        }
    }

    /// A future that completes when `channel` is published on, once the listener is
    /// subscribed (so that a publish from now on is seen); `None` when it cannot be (no
    /// runtime, or Redis refuses pub/sub), and the caller polls instead.
    pub(super) async fn watch(&self, channel: String) -> Option<BoxFuture<'static, ()>> {
        self.start()?;
        let mut changed = {
            let mut waiters = crate::sync::lock(&self.shared.waiters);
            if waiters.by_channel.len() >= waiters.sweep_at {
                waiters.by_channel.retain(|_, sender| sender.receiver_count() > 0);
                waiters.sweep_at = (2 * waiters.by_channel.len()).max(SWEEP_FROM);
            }
            waiters.by_channel.entry(channel).or_insert_with(|| watch::channel(()).0).subscribe()
        };
        let mut listening = self.shared.listening.subscribe();
        let subscribed =
            match tokio::time::timeout(SUBSCRIBE_WAIT, listening.wait_for(|s| *s != Listening::Starting)).await {
                Ok(Ok(state)) => *state == Listening::Subscribed,
                _ => false,
            };
        if !subscribed {
            return None;
        }
        Some(Box::pin(async move {
            // An error means the sender was swept, which only happens to channels nobody
            // waits on: not this one while it waits. Either way, the caller looks again.
            let _ = changed.changed().await;
        }))
    }

    fn start(&self) -> Option<()> {
        let mut listener = crate::sync::lock(&self.listener);
        if listener.as_ref().is_some_and(|task| !task.is_finished()) {
            return Some(());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (client, pattern, shared) = (self.client.clone(), self.pattern.clone(), self.shared.clone());
        *listener = Some(runtime.spawn(listen(client, pattern, shared)).abort_handle());
        Some(())
    }
}

impl Drop for FetchNotices {
    fn drop(&mut self) {
        if let Some(task) = crate::sync::lock(&self.listener).take() {
            task.abort();
        }
    }
}

/// Subscribes and hands each message to its waiters; reconnects, with a growing pause, when
/// the connection fails.
async fn listen(client: redis::Client, pattern: String, shared: Arc<Shared>) {
    let mut pause = Duration::from_millis(50);
    loop {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                pause = Duration::from_millis(50);
                shared.listening.send_replace(Listening::Subscribed);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    shared.wake(message.get_channel_name());
                }
                shared.listening.send_replace(Listening::Down);
                shared.wake_all();
                tracing::debug!("the Redis pub/sub connection for token fetches closed; reconnecting");
            }
            Ok(Err(e)) => {
                shared.listening.send_replace(Listening::Down);
                // The kind only: the driver's message may name the host and user.
                tracing::debug!(kind = ?e.kind(), "cannot subscribe to token fetches in Redis; waiters poll");
            }
            Err(_) => {
                shared.listening.send_replace(Listening::Down);
                tracing::debug!("subscribing to token fetches in Redis timed out; waiters poll");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_matches_the_prefix_as_written() {
        assert_eq!(pattern("servicetitan"), "servicetitan:token:*:fetched");
        assert_eq!(pattern("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\:token:*:fetched");
        assert_eq!(channel("p:token:{ab}"), "p:token:{ab}:fetched");
    }
}
