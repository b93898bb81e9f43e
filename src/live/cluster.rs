//! The registry's side of cluster mode: a publish acquires its stream's
//! lease before it starts and continues the playlist from storage (another
//! node may have written it last); a keeper renews the lease; the end of a
//! reconnect grace period ends the playlist only under the lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::stream::Stream;
use super::{LiveSettings, PublishControl};
use crate::cluster::lease::{Holder, Policy};
use crate::cluster::redis::{Redis, RedisTarget};
use crate::cluster::{Acquired, Leases};
use crate::config::{ClusterConfig, ConfigError, RedisUrl, RtmpConfig};
use crate::rtmp::PublishRefused;

/// The lease client `[cluster]` describes.
pub fn leases_from_config(cluster: &ClusterConfig, rtmp: &RtmpConfig) -> Result<Arc<Leases>, ConfigError> {
    let url = RedisUrl::parse(&cluster.redis_url)
        .map_err(|why| ConfigError::one(format!("cluster.redis_url {:?} {why}", cluster.redis_url)))?;
    let target = RedisTarget {
        url,
        username: cluster.redis_username.clone(),
        password: cluster.resolve_password()?,
        tls_ca_file: cluster.redis_tls_ca_file.clone(),
        timeout: Duration::from_millis(cluster.redis_timeout_ms),
    };
    let policy = Policy {
        ttl: Duration::from_secs(cluster.lease_ttl_secs),
        takeover_idle: (rtmp.takeover_idle_secs > 0).then(|| Duration::from_secs(rtmp.takeover_idle_secs)),
    };
    Ok(Arc::new(Leases::new(
        Redis::new(target),
        cluster.node_id.clone(),
        cluster.lease_key_prefix.clone(),
        policy,
    )))
}

/// A lease held by one publish, until the registry releases it.
pub(super) struct HeldLease {
    leases: Arc<Leases>,
    stream: String,
    holder: Holder,
    keeper: tokio::task::JoinHandle<()>,
}

impl HeldLease {
    /// Stops renewing and gives the lease up (it may already be gone).
    pub(super) async fn release(self) {
        self.keeper.abort();
        let _ = self.keeper.await;
        if let Err(error) = self.leases.release(&self.stream, &self.holder).await {
            warn!(stream = %self.stream, %error, "releasing the publish lease failed; it expires by itself");
        }
    }
}

/// Takes `stream`'s lease for a new publish (from a holder quiet for
/// `takeover_idle`, too). Refused while another publisher holds it, and
/// when Redis cannot answer: without the lease nothing may be written.
pub(super) async fn acquire(
    leases: &Leases,
    stream: &Stream,
    publish_id: &str,
) -> Result<(Holder, Instant), PublishRefused> {
    let name = stream.name.to_string();
    let holder = leases.holder(publish_id);
    let takeover = leases.policy().takeover_idle.is_some();
    match leases.acquire(&name, &holder, takeover).await {
        Ok(Acquired::Granted { previous, sent_at }) => {
            if let Some(previous) = previous {
                info!(
                    stream = %name,
                    previous_node = %previous.holder.node_id,
                    "took the publish lease over from a publisher that sent no media for takeover_idle_secs"
                );
            }
            Ok((holder, sent_at))
        }
        Ok(Acquired::Held(value)) => {
            let node = value.split(' ').next().unwrap_or("?").to_owned();
            info!(stream = %name, holder_node = %node, "publish refused: the stream's lease is held");
            Err(PublishRefused::AlreadyLive)
        }
        Err(error) => {
            warn!(stream = %name, %error, "publish refused: the publish lease cannot be taken (redis)");
            Err(PublishRefused::Unavailable)
        }
    }
}

/// Starts the keeper of an acquired lease.
pub(super) fn keep(
    leases: &Arc<Leases>,
    stream: &Stream,
    holder: Holder,
    sent_at: Instant,
    control: &Arc<PublishControl>,
) -> HeldLease {
    let name = stream.name.to_string();
    let keeper = tokio::spawn(Arc::clone(leases).keep(name.clone(), holder.clone(), sent_at, Arc::clone(control)));
    HeldLease {
        leases: Arc::clone(leases),
        stream: name,
        holder,
        keeper,
    }
}

/// The playlist as storage holds it now (another node may have written it
/// since this node read it).
pub(super) async fn playlist_from_storage(
    stream: &Arc<Stream>,
    settings: &LiveSettings,
) -> Option<crate::hls::MediaPlaylist> {
    super::stored::read_stored_playlist(stream, settings).await
}

/// The end of a reconnect grace period in cluster mode: the playlist is
/// ended only by a node that can take the free lease (nobody publishes it
/// anywhere), from what storage holds.
pub(super) async fn end_under_lease(settings: &LiveSettings, leases: &Leases, stream: &Arc<Stream>, generation: u64) {
    let Ok(ender) = crate::names::random_publish_id() else {
        return;
    };
    let holder = leases.holder(&format!("end-{ender}"));
    let name = stream.name.to_string();
    match leases.acquire(&name, &holder, false).await {
        Ok(Acquired::Granted { .. }) => {}
        Ok(Acquired::Held(_)) => return,
        Err(error) => {
            warn!(stream = %name, %error, "cannot take the lease to end the playlist; left open");
            return;
        }
    }
    let stored = playlist_from_storage(stream, settings).await;
    if stream.replace_playlist_if_idle(generation, stored) {
        stream.end_playlist_if(generation).await;
    }
    if let Err(error) = leases.release(&name, &holder).await {
        warn!(stream = %name, %error, "releasing the publish lease failed; it expires by itself");
    }
}
