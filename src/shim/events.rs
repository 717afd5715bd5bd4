//! Task events to containerd. Each event is forwarded before the request that
//! caused it returns, so events keep their order (/tasks/oom before /tasks/exit)
//! and none sits in a queue when the shim exits. Type URLs are spelled out rather
//! than looked up through protobuf reflection, which would pull every descriptor
//! of the API into memory.

use std::sync::Arc;
use std::time::Duration;

use containerd_shim::protos::events::task::*;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::event::Envelope;
use containerd_shim::protos::shim::events::ForwardRequest;
use containerd_shim::protos::shim_async::{Client, EventsClient};
use containerd_shim::protos::ttrpc::context;
use tokio::sync::Mutex;

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

/// Where the Task service's events go, one at a time in the order they are
/// sent: containerd's event service in the shim, a recorder in the core's tests.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    async fn send(&self, topic: &'static str, event: Any);
}

/// A task event as containerd's envelope carries it.
pub fn encode<E: TaskEvent>(event: &E) -> Result<Any, String> {
    let value = event.write_to_bytes().map_err(|e| e.to_string())?;
    Ok(Any { type_url: E::TYPE_URL.into(), value, ..Default::default() })
}

const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries after a failed forward (containerd restarting), in the background.
const RETRY_DELAYS_MS: [u64; 5] = [100, 500, 1000, 2000, 4000];

/// containerd's event service over ttrpc, connected on first use.
pub struct Publisher {
    namespace: String,
    conn: Arc<Conn>,
}

struct Conn {
    address: String,
    client: Mutex<Option<EventsClient>>,
}

impl Publisher {
    pub fn new(address: &str, namespace: &str) -> Publisher {
        Publisher { namespace: namespace.into(), conn: Arc::new(Conn { address: address.into(), client: Mutex::new(None) }) }
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

#[async_trait::async_trait]
impl EventSink for Publisher {
    async fn send(&self, topic: &'static str, event: Any) {
        let req = match self.request(topic, event) {
            Ok(r) => r,
            Err(e) => return tracing::warn!(topic, error = %e, "encode event failed"),
        };
        if self.conn.forward(&req).await.is_ok() {
            return;
        }
        let conn = self.conn.clone();
        tokio::spawn(async move {
            for ms in RETRY_DELAYS_MS {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if conn.forward(&req).await.is_ok() {
                    return;
                }
            }
            tracing::warn!(topic, "event dropped: containerd did not take it");
        });
    }
}

impl Conn {
    async fn forward(&self, req: &ForwardRequest) -> Result<(), String> {
        let mut client = self.client.lock().await;
        if client.is_none() {
            let fd = containerd_shim::util::connect(&self.address).map_err(|e| e.to_string())?;
            // SAFETY: `connect` returned a connected unix socket that nothing else owns.
            *client = Some(EventsClient::new(unsafe { Client::from_raw_unix_socket_fd(fd) }));
        }
        let c = client.as_ref().expect("connected above");
        match c.forward(context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64), req).await {
            Ok(_) => Ok(()),
            Err(e) => {
                *client = None; // reconnect next time: containerd may have restarted
                tracing::debug!(error = %e, "forward event failed");
                Err(e.to_string())
            }
        }
    }
}
