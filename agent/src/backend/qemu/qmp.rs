//! A small QMP client: one Unix socket to one QEMU, one JSON object per line, an `id` on each
//! command, events broadcast to whoever listens, and a deadline on every command.
//!
//! Typed bindings generated for one QEMU version break on another (see qemu.md), so commands
//! and answers are `serde_json::Value`s and the driver reads the few fields it needs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot, watch};

use crate::backend::lock;

/// Why a QMP command got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("cannot reach QMP at {path}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP connection failed")]
    Io(#[from] std::io::Error),
    #[error("QMP connection closed")]
    Closed,
    #[error("QMP sent a line that is not a JSON object: {line}")]
    Garbled { line: String },
    #[error("{command} had no answer within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    /// QEMU refused the command.
    #[error("{command} failed: {class}: {desc}")]
    Refused {
        command: String,
        class: String,
        desc: String,
    },
}

/// One event QEMU sent, with its data (`{}` when it has none).
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
}

impl QmpEvent {
    /// Whether this is the event `name` whose data has each string field of `fields`.
    pub fn is(&self, name: &str, fields: &[(&str, &str)]) -> bool {
        self.name == name
            && fields
                .iter()
                .all(|(key, value)| self.data.get(*key).and_then(Value::as_str) == Some(*value))
    }
}

/// The events of one QEMU from some point on.
pub struct QmpEvents(broadcast::Receiver<QmpEvent>);

impl QmpEvents {
    /// The next event; `None` once the connection has ended. Events a slow reader missed are
    /// logged and skipped.
    pub async fn next(&mut self) -> Option<QmpEvent> {
        loop {
            match self.0.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "QMP events missed");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event `matches` accepts; `Closed` if the connection ends first.
    pub async fn next_matching(
        &mut self,
        mut matches: impl FnMut(&QmpEvent) -> bool,
    ) -> Result<QmpEvent, QmpError> {
        while let Some(event) = self.next().await {
            if matches(&event) {
                return Ok(event);
            }
        }
        Err(QmpError::Closed)
    }
}

type Pending = HashMap<u64, oneshot::Sender<Result<Value, (String, String)>>>;

/// A connection to one QEMU's monitor, in command mode.
pub struct Qmp {
    stream: Arc<UnixStream>,
    /// One write at a time: lines must not interleave.
    writing: tokio::sync::Mutex<()>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
    events: broadcast::Sender<QmpEvent>,
    /// Becomes true once the socket has reached its end (QEMU exited or closed it).
    closed: watch::Receiver<bool>,
}

/// How many events a slow listener may fall behind before it misses some.
const EVENT_BACKLOG: usize = 64;

impl Qmp {
    /// Dials the monitor at `path`, reads its greeting and enters command mode, all within
    /// `timeout`.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QmpError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        let stream = Arc::new(stream);
        let pending = Arc::new(Mutex::new(Pending::new()));
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let (closed_tx, closed) = watch::channel(false);
        let (greeting_tx, greeting) = oneshot::channel();
        tokio::spawn(read_replies(
            stream.clone(),
            pending.clone(),
            events.clone(),
            closed_tx,
            greeting_tx,
        ));
        let qmp = Qmp {
            stream,
            writing: tokio::sync::Mutex::new(()),
            pending,
            next_id: AtomicU64::new(1),
            events,
            closed,
        };
        match tokio::time::timeout(timeout, greeting).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(QmpError::Closed),
            Err(_) => {
                return Err(QmpError::Timeout {
                    command: "the greeting".to_owned(),
                    timeout,
                });
            }
        }
        qmp.execute("qmp_capabilities", json!({}), timeout).await?;
        Ok(qmp)
    }

    /// Runs `command` with `arguments` and returns its `return` value.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        self.execute_inner(command, arguments, timeout).await
    }

    /// Events from now on.
    pub fn events(&self) -> QmpEvents {
        QmpEvents(self.events.subscribe())
    }

    /// Resolves once the connection has reached its end.
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        // An error means the reader is gone, which also means closed.
        let _ = closed.wait_for(|closed| *closed).await;
    }

    async fn execute_inner(
        &self,
        command: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (answer_tx, answer) = oneshot::channel();
        lock(&self.pending).insert(id, answer_tx);
        let forget = || {
            lock(&self.pending).remove(&id);
        };
        if *self.closed.borrow() {
            forget();
            return Err(QmpError::Closed);
        }
        let mut line = json!({"execute": command, "arguments": arguments, "id": id}).to_string();
        line.push('\n');
        let sent = tokio::time::timeout(timeout, self.send(line.as_bytes())).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                forget();
                return Err(err);
            }
            Err(_) => {
                forget();
                return Err(QmpError::Timeout {
                    command: command.to_owned(),
                    timeout,
                });
            }
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err((class, desc)))) => Err(QmpError::Refused {
                command: command.to_owned(),
                class,
                desc,
            }),
            Ok(Err(_)) => Err(QmpError::Closed),
            Err(_) => {
                forget();
                Err(QmpError::Timeout {
                    command: command.to_owned(),
                    timeout,
                })
            }
        }
    }

    /// Writes all of `bytes`.
    async fn send(&self, mut bytes: &[u8]) -> Result<(), QmpError> {
        let _writing = self.writing.lock().await;
        while !bytes.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(bytes) {
                Ok(0) => return Err(QmpError::Closed),
                Ok(count) => bytes = &bytes[count..],
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

/// Reads lines until the end: answers go to their command, events to the listeners, the
/// greeting to `greeting`. At the end every pending command fails and `closed` turns true.
async fn read_replies(
    stream: Arc<UnixStream>,
    pending: Arc<Mutex<Pending>>,
    events: broadcast::Sender<QmpEvent>,
    closed: watch::Sender<bool>,
    greeting: oneshot::Sender<()>,
) {
    let mut greeting = Some(greeting);
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    'read: loop {
        if stream.readable().await.is_err() {
            break;
        }
        let count = match stream.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(count) => count,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(err) => {
                tracing::debug!(error = &err as &dyn std::error::Error, "QMP read failed");
                break;
            }
        };
        buffer.extend_from_slice(&chunk[..count]);
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let message: Value = match serde_json::from_slice(&line) {
                Ok(Value::Object(message)) => Value::Object(message),
                _ => {
                    let line = String::from_utf8_lossy(&line).trim().to_owned();
                    tracing::warn!(error = %QmpError::Garbled { line }, "QMP");
                    break 'read;
                }
            };
            if message.get("QMP").is_some() {
                if let Some(greeting) = greeting.take() {
                    let _ = greeting.send(());
                }
            } else if let Some(name) = message.get("event").and_then(Value::as_str) {
                let data = message.get("data").cloned().unwrap_or_else(|| json!({}));
                let _ = events.send(QmpEvent {
                    name: name.to_owned(),
                    data,
                });
            } else if let Some(id) = message.get("id").and_then(Value::as_u64) {
                let answer = match (message.get("return"), message.get("error")) {
                    (Some(value), _) => Ok(value.clone()),
                    (None, Some(error)) => Err((text(error, "class"), text(error, "desc"))),
                    (None, None) => Ok(Value::Null),
                };
                if let Some(waiter) = lock(&pending).remove(&id) {
                    let _ = waiter.send(answer);
                }
            }
        }
    }
    // Closed first: a command registered after the clear sees it and does not wait.
    let _ = closed.send(true);
    lock(&pending).clear();
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixListener;

    const SECOND: Duration = Duration::from_secs(1);

    /// A monitor that greets, answers each command with `answer(command)`, and sends an event
    /// before its first answer.
    async fn fake_monitor(dir: &Path, answer: fn(&Value) -> Option<Value>) -> std::path::PathBuf {
        let path = dir.join("qmp");
        let listener = UnixListener::bind(&path).expect("bind");
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let (read, mut write) = socket.into_split();
            write
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .await
                .expect("greet");
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let command: Value = serde_json::from_str(&line).expect("JSON");
                write
                    .write_all(b"{\"event\": \"RESUME\", \"timestamp\": {}}\n")
                    .await
                    .expect("event");
                if let Some(mut reply) = answer(&command) {
                    reply["id"] = command["id"].clone();
                    write
                        .write_all(format!("{reply}\n").as_bytes())
                        .await
                        .expect("answer");
                }
            }
        });
        path
    }

    /// Answers come back to their command, an error as `Refused` with QEMU's class, and events
    /// in between reach a listener.
    #[tokio::test]
    async fn answers_reach_their_command_and_events_their_listeners() {
        let dir = tempfile::tempdir().expect("dir");
        let path = fake_monitor(dir.path(), |command| match command["execute"].as_str() {
            Some("query-status") => Some(json!({"return": {"status": "running"}})),
            _ if command["execute"] == "qmp_capabilities" => Some(json!({"return": {}})),
            _ => Some(json!({"error": {"class": "CommandNotFound", "desc": "no"}})),
        })
        .await;
        let qmp = Qmp::connect(&path, SECOND).await.expect("connected");
        let mut events = qmp.events();
        let status = qmp.execute("query-status", json!({}), SECOND).await;
        assert_eq!(status.expect("status")["status"], "running");
        assert_eq!(events.next().await.expect("an event").name, "RESUME");
        let refused = qmp.execute("frobnicate", json!({}), SECOND).await;
        assert!(
            matches!(refused, Err(QmpError::Refused { class, .. }) if class == "CommandNotFound")
        );
    }

    /// A command QEMU never answers fails after its deadline, and one after the monitor has
    /// gone fails as closed rather than hanging.
    #[tokio::test]
    async fn a_silent_or_gone_monitor_fails_the_command() {
        let dir = tempfile::tempdir().expect("dir");
        let path = fake_monitor(dir.path(), |command| {
            (command["execute"] == "qmp_capabilities").then(|| json!({"return": {}}))
        })
        .await;
        let qmp = Qmp::connect(&path, SECOND).await.expect("connected");
        let silent = qmp
            .execute("query-status", json!({}), Duration::from_millis(50))
            .await;
        assert!(matches!(silent, Err(QmpError::Timeout { .. })));

        let gone = dir.path().join("gone");
        let listener = UnixListener::bind(&gone).expect("bind");
        let monitor = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let (read, mut write) = socket.into_split();
            write.write_all(b"{\"QMP\": {}}\n").await.expect("greet");
            let mut lines = BufReader::new(read).lines();
            let _capabilities = lines.next_line().await.expect("a command");
            write
                .write_all(b"{\"return\": {}, \"id\": 1}\n")
                .await
                .expect("answer");
        });
        let qmp = Qmp::connect(&gone, SECOND).await.expect("connected");
        monitor.await.expect("monitor");
        qmp.closed().await;
        let after = qmp.execute("query-status", json!({}), SECOND).await;
        assert!(matches!(after, Err(QmpError::Closed | QmpError::Io(_))));
    }
}
