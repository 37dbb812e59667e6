//! The kubelet API's Prometheus endpoints (Go's `pkg/kubelet/server`
//! metrics handlers and `pkg/kubelet/metrics/collectors`), in the text
//! format 0.0.4, GET (and HEAD) only:
//!
//! - `/metrics`: the kubelet's own series ([`registry`]);
//! - `/metrics/resource`: node, pod and container CPU and memory for
//!   metrics-server ([`resource`]);
//! - `/metrics/probes`: `prober_probe_total` and
//!   `prober_probe_duration_seconds` ([`crate::prober::probe_metrics`]);
//! - `/metrics/cadvisor`: cAdvisor's main container series ([`cadvisor`]).
//!
//! Authentication and authorization (`nodes/metrics`) happen before the
//! handler runs. A scrape renders from memory only: the stats summary the
//! stats provider keeps, the pod cache, the prober's counters, and
//! `/proc/self` for the process series; it makes no runtime call.
//!
//! What each endpoint lacks against Go is in its module's doc.

pub mod cadvisor;
pub mod registry;
pub mod resource;
pub mod text;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;

use super::api::{Body, Handler, reply};
use crate::container::PodCache;
use crate::prober::probe_metrics::ProberMetrics;
use crate::stats::StatsProvider;
use crate::stats::summary::Summary;
use crate::status::StatusManager;

/// The content type of every answer: the text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the endpoints read.
pub struct MetricsSources {
    pub node_name: String,
    /// `None` when stats collection is off: the stats endpoints then
    /// answer only their scrape-error gauge, set.
    pub stats: Option<Arc<StatsProvider>>,
    pub pod_cache: Arc<PodCache>,
    /// The pods' statuses, for the images `/metrics/cadvisor` names.
    pub status: Option<Arc<StatusManager>>,
    pub prober: ProberMetrics,
}

/// The endpoints, with their registries built once.
pub struct MetricsEndpoints {
    stats: Option<Arc<StatsProvider>>,
    pod_cache: Arc<PodCache>,
    status: Option<Arc<StatusManager>>,
    kubelet: Registry,
    probes: Registry,
}

impl MetricsEndpoints {
    pub fn new(sources: MetricsSources) -> Self {
        Self::with_proc(sources, std::path::PathBuf::from("/proc"))
    }

    /// [`MetricsEndpoints::new`], reading process figures under `proc`.
    pub fn with_proc(sources: MetricsSources, proc: std::path::PathBuf) -> Self {
        let kubelet = registry::KubeletCollector {
            node_name: sources.node_name,
            pod_cache: sources.pod_cache.clone(),
            proc_self: proc,
        }
        .registry();
        let mut probes = Registry::default();
        sources.prober.register(&mut probes);
        MetricsEndpoints {
            stats: sources.stats,
            pod_cache: sources.pod_cache,
            status: sources.status,
            kubelet,
            probes,
        }
    }

    /// Answers `method` on `path`: 405 for other methods than GET and
    /// HEAD, 404 for paths other than the four.
    pub fn answer(&self, method: &Method, path: &str) -> Response<Body> {
        let known = matches!(
            path,
            "/metrics" | "/metrics/resource" | "/metrics/probes" | "/metrics/cadvisor"
        );
        if !known {
            return reply(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "404 page not found\n",
            );
        }
        if method != Method::GET && method != Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                format!("{method} is not allowed on {path}\n"),
            );
        }
        let summary = || self.stats.as_ref().and_then(|s| s.summary());
        let body = match path {
            "/metrics/resource" => Ok(resource::render_resource(summary().as_deref())),
            "/metrics/cadvisor" => {
                let summary = summary();
                let images = self.status_images(summary.as_deref());
                Ok(cadvisor::render_cadvisor(
                    summary.as_deref(),
                    &self.pod_cache.pods(),
                    &images,
                ))
            }
            "/metrics/probes" => encode(&self.probes),
            _ => encode(&self.kubelet),
        };
        match body {
            Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body),
            Err(e) => {
                tracing::warn!(path, "rendering metrics: {e}");
                reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                    format!("rendering {path}: {e}\n"),
                )
            }
        }
    }
}

impl MetricsEndpoints {
    /// The images the statuses of `summary`'s pods name, by pod UID and
    /// container name.
    fn status_images(&self, summary: Option<&Summary>) -> cadvisor::StatusImages {
        let mut images = cadvisor::StatusImages::new();
        let (Some(status), Some(summary)) = (&self.status, summary) else {
            return images;
        };
        for pod in &summary.pods {
            let uid = &pod.pod_ref.uid;
            let Some(st) = status.get(uid) else { continue };
            let all = st.init_container_statuses.iter().flatten();
            for c in all.chain(st.container_statuses.iter().flatten()) {
                if !c.image.is_empty() {
                    images.insert((uid.clone(), c.name.clone()), c.image.clone());
                }
            }
        }
        images
    }
}

/// Why an endpoint could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("encoding the registry: {0}")]
    Encode(#[from] std::fmt::Error),
}

fn encode(registry: &Registry) -> Result<String, MetricsError> {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// The handler for `/metrics` and below, for [`super::api::KubeletApi::route`].
pub fn handler(sources: MetricsSources) -> Handler {
    let endpoints = Arc::new(MetricsEndpoints::new(sources));
    Arc::new(move |req: Request<Incoming>| {
        let resp = endpoints.answer(req.method(), req.uri().path());
        Box::pin(async move { resp })
    })
}
