//! The kubelet's main loop (the Go kubelet's `syncLoop`): source updates and
//! runtime events in, pod worker updates out.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use crate::pleg::PlegEvent;
use crate::pod_workers::PodWorkers;
use crate::podconfig::PodConfig;
use crate::prober::ProbeUpdate;

/// A full snapshot from one source.
#[derive(Debug)]
pub struct SourceUpdate {
    pub source: &'static str,
    /// Shared with the source, which keeps the same Arc while a pod is unchanged.
    pub pods: Vec<Arc<Pod>>,
}

/// Runs until PLEG's channel closes. Pods keep running when it ends:
/// stopping the kubelet never stops pods (as with the Go kubelet).
pub async fn run(
    mut config: PodConfig,
    workers: Arc<PodWorkers>,
    mut sources: mpsc::Receiver<SourceUpdate>,
    mut pleg: mpsc::UnboundedReceiver<PlegEvent>,
    mut probes: mpsc::UnboundedReceiver<ProbeUpdate>,
) {
    let mut sources_open = true;
    loop {
        tokio::select! {
            update = sources.recv(), if sources_open => match update {
                Some(u) => {
                    if config.set_source(u.source, u.pods) {
                        workers.update(&config.desired());
                    }
                }
                None => sources_open = false,
            },
            Some(u) = probes.recv() => workers.notify(&u.uid),
            ev = pleg.recv() => match ev {
                Some(PlegEvent::PodChanged(uid)) => workers.notify(&uid),
                Some(PlegEvent::Relisted(uids)) => {
                    // Only once every source has spoken: before that, an
                    // absent pod may simply not have been read yet.
                    if config.sources_ready() {
                        let desired = config.desired();
                        for uid in uids {
                            if !desired.contains_key(&uid) && !workers.has_worker(&uid) {
                                workers.terminate_orphan(&uid);
                            }
                        }
                    }
                }
                None => return,
            },
        }
    }
}
