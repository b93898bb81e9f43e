//! `sealcast::ingest::serve` alone on 127.0.0.1:0, with the one test publish
//! authorizer of the suite: it grants app "live" + key "sk_good" and hands
//! each publish's media channel to the test, so a test sees exactly which
//! messages the RTMP driver forwards and when the channel closes, which the
//! whole server (it feeds them to the pipeline) cannot show.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sealcast::ingest::{IngestLimits, MediaMessage, PublishAuthorizer, PublishGrant, PublishRefused, serve};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The key the authorizer grants (on app "live").
pub const GOOD_KEY: &str = "sk_good";

/// One `authorize` call: app, key, query.
pub type Call = (String, String, Option<String>);
/// A granted publish: its stream name and its media channel.
pub type Grant = (String, mpsc::Receiver<MediaMessage>);

/// Grants app "live" + [`GOOD_KEY`] as stream "live/demo" with a small channel
/// (so backpressure is exercised), records every call.
struct TestAuthorizer {
    calls: Mutex<Vec<Call>>,
    grants: mpsc::UnboundedSender<Grant>,
}

#[async_trait::async_trait]
impl PublishAuthorizer for TestAuthorizer {
    async fn authorize(
        &self,
        app: &str,
        stream_key: &str,
        query: Option<&str>,
        _peer: SocketAddr,
    ) -> Result<PublishGrant, PublishRefused> {
        self.calls
            .lock()
            .unwrap()
            .push((app.to_owned(), stream_key.to_owned(), query.map(str::to_owned)));
        if app != "live" || stream_key != GOOD_KEY {
            return Err(PublishRefused::BadKey);
        }
        let (media, rx) = mpsc::channel(4);
        let stream = format!("{app}/demo");
        self.grants.send((stream.clone(), rx)).unwrap();
        Ok(PublishGrant { stream, media })
    }
}

/// The RTMP ingest alone, with [`TestAuthorizer`].
pub struct IngestServer {
    pub addr: SocketAddr,
    authorizer: Arc<TestAuthorizer>,
    /// Granted publishes, in order.
    pub grants: mpsc::UnboundedReceiver<Grant>,
    pub shutdown: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl IngestServer {
    pub async fn start(limits: IngestLimits) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("sealcast=debug")
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (grants_tx, grants) = mpsc::unbounded_channel();
        let authorizer = Arc::new(TestAuthorizer {
            calls: Mutex::new(Vec::new()),
            grants: grants_tx,
        });
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let dyn_authorizer: Arc<dyn PublishAuthorizer> = authorizer.clone();
        let task = tokio::spawn(serve(listener, dyn_authorizer, limits, async move {
            let _ = shutdown_rx.await;
        }));
        Self {
            addr,
            authorizer,
            grants,
            shutdown: Some(shutdown_tx),
            task,
        }
    }

    /// Every `authorize` call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.authorizer.calls.lock().unwrap().clone()
    }
}

/// An expected [`Call`].
pub fn call(app: &str, key: &str, query: Option<&str>) -> Call {
    (app.to_owned(), key.to_owned(), query.map(str::to_owned))
}

/// Collects a publish's media until its channel closes.
pub fn collect(mut rx: mpsc::Receiver<MediaMessage>) -> JoinHandle<Vec<MediaMessage>> {
    tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(message) = rx.recv().await {
            got.push(message);
        }
        got
    })
}
