//! Task events to containerd. The Publisher puts each event on one queue and
//! answers at once; one task forwards the queue in order (/tasks/oom before
//! /tasks/exit), retrying a failed forward before the next event goes, as
//! containerd's own shims do, so no request waits on containerd's event
//! service. `flush` waits (bounded) for the queue to empty before the shim
//! exits. Type URLs are spelled out rather than looked up through protobuf
//! reflection, which would pull every descriptor of the API into memory.

use std::time::Duration;

use containerd_shim::protos::events::task::*;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc::context;
use tokio::sync::{mpsc, oneshot};

pub trait TaskEvent: Message {
    const TOPIC: &'static str;
    const TYPE_URL: &'static str;
}

macro_rules! task_events {
    ($($t:ident => $topic:literal),* $(,)?) => {$(
        impl TaskEvent for $t {
            const TOPIC: &'static str = $topic;
            const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($t));
        }
    )*};
}

task_events! {
    TaskCreate => "/tasks/create",
    TaskStart => "/tasks/start",
    TaskDelete => "/tasks/delete",
    TaskExit => "/tasks/exit",
    TaskOOM => "/tasks/oom",
    TaskExecAdded => "/tasks/exec-added",
    TaskExecStarted => "/tasks/exec-started",
    TaskPaused => "/tasks/paused",
    TaskResumed => "/tasks/resumed",
}

/// Where the Task service's events go, in the order they are sent:
/// containerd's event service in the shim, a recorder in the core's tests.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    async fn send(&self, topic: &'static str, event: Any);
    /// Returns once what was sent has been delivered or given up, or `bound` passed.
    async fn flush(&self, _bound: Duration) {}
}

/// A task event as containerd's envelope carries it.
pub fn encode<E: TaskEvent>(event: &E) -> Result<Any, String> {
    let value = event.write_to_bytes().map_err(|e| e.to_string())?;
    Ok(Any { type_url: E::TYPE_URL.into(), value, ..Default::default() })
}

const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries after a failed forward (containerd restarting); later events wait.
const RETRY_DELAYS_MS: [u64; 5] = [100, 500, 1000, 2000, 4000];

enum Queued {
    Event(&'static str, ForwardRequest),
    /// Answered when every event queued before it was handled.
    Flush(oneshot::Sender<()>),
}

/// containerd's event service over ttrpc, connected on first use, fed by a queue.
pub struct Publisher {
    namespace: String,
    queue: mpsc::UnboundedSender<Queued>,
}

struct Conn {
    address: String,
    client: Option<EventsClient>,
}

impl Publisher {
    /// Starts the forwarding task; needs a tokio runtime.
    pub fn new(address: &str, namespace: &str) -> Publisher {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(forward_all(Conn { address: address.into(), client: None }, rx));
        Publisher { namespace: namespace.into(), queue }
    }

    fn request(&self, topic: &str, event: Any) -> Result<ForwardRequest, String> {
        let ts = containerd_shim::util::timestamp().map_err(|e| e.to_string())?;
        let envelope = Envelope {
            timestamp: MessageField::some(ts),
            namespace: self.namespace.clone(),
            topic: topic.into(),
            event: MessageField::some(event),
            ..Default::default()
        };
        Ok(ForwardRequest { envelope: MessageField::some(envelope), ..Default::default() })
    }
}

async fn forward_all(mut conn: Conn, mut rx: mpsc::UnboundedReceiver<Queued>) {
    while let Some(q) = rx.recv().await {
        let (topic, req) = match q {
            Queued::Event(topic, req) => (topic, req),
            Queued::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        if conn.forward(&req).await.is_ok() {
            continue;
        }
        let mut sent = false;
        for ms in RETRY_DELAYS_MS {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if conn.forward(&req).await.is_ok() {
                sent = true;
                break;
            }
        }
        if !sent {
            tracing::warn!(topic, "event dropped: containerd did not take it");
        }
    }
}

#[async_trait::async_trait]
impl EventSink for Publisher {
    async fn send(&self, topic: &'static str, event: Any) {
        let req = match self.request(topic, event) {
            Ok(r) => r,
            Err(e) => return tracing::warn!(topic, error = %e, "encode event failed"),
        };
        if self.queue.send(Queued::Event(topic, req)).is_err() {
            tracing::error!(topic, "event dropped: the forwarding task is gone");
        }
    }

    async fn flush(&self, bound: Duration) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Queued::Flush(done)).is_ok() && tokio::time::timeout(bound, flushed).await.is_err() {
            tracing::warn!(bound_ms = bound.as_millis() as u64, "exiting with events still queued: containerd did not take them in time");
        }
    }
}

impl Conn {
    async fn forward(&mut self, req: &ForwardRequest) -> Result<(), String> {
        if self.client.is_none() {
            let fd = containerd_shim::util::connect(&self.address).map_err(|e| e.to_string())?;
            // SAFETY: `connect` returned a connected unix socket that nothing else owns.
            self.client = Some(EventsClient::new(unsafe { Client::from_raw_unix_socket_fd(fd) }));
        }
        let c = self.client.as_ref().expect("connected above");
        match c.forward(context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64), req).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.client = None; // reconnect next time: containerd may have restarted
                tracing::debug!(error = %e, "forward event failed");
                Err(e.to_string())
            }
        }
    }
}
