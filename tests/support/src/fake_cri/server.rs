//! Serving both services on a unix socket in a temporary directory, and
//! stopping when the last handle goes away.

use std::sync::Arc;
use std::task::{Context, Poll};

use cri_proto::v1::image_service_server::ImageServiceServer;
use cri_proto::v1::runtime_service_server::RuntimeServiceServer;
use tokio::sync::oneshot;

use super::images::Images;
use super::runtime::Runtime;
use super::shared::Shared;

/// Owns the socket's directory and the server task; dropping it ends open
/// event streams, asks the server to shut down and removes the socket.
pub(super) struct ServerGuard {
    pub endpoint: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
        if let Some(stop) = self.stop.take() {
            // The server may already be gone with its runtime.
            let _ = stop.send(());
        }
    }
}

/// Binds `<tempdir>/fake.sock` and serves on it from a task of the current
/// tokio runtime.
pub(super) fn serve(shared: Arc<Shared>) -> ServerGuard {
    let dir = tempfile::Builder::new()
        .prefix("berth-fake-cri-")
        .tempdir()
        .expect("cannot create a temporary directory for the fake CRI socket");
    let path = dir.path().join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&path)
        .unwrap_or_else(|e| panic!("cannot listen on {}: {e}", path.display()));
    let router = CriRouter {
        runtime: RuntimeServiceServer::new(Runtime(Arc::clone(&shared))),
        image: ImageServiceServer::new(Images(Arc::clone(&shared))),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(router, incoming, shutdown)
            .await
        {
            eprintln!("fake CRI server stopped with an error: {e}");
        }
    });
    ServerGuard {
        endpoint: format!("unix://{}", path.display()),
        shared,
        stop: Some(stop),
        _dir: dir,
    }
}

/// Sends each request to the service its path names (tonic's `router`
/// feature is off in this workspace).
#[derive(Clone)]
struct CriRouter {
    runtime: RuntimeServiceServer<Runtime>,
    image: ImageServiceServer<Images>,
}

impl tower::Service<http::Request<tonic::body::Body>> for CriRouter {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future =
        <RuntimeServiceServer<Runtime> as tower::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let image = <ImageServiceServer<Images> as tonic::server::NamedService>::NAME;
        let is_image = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(image))
            .is_some_and(|rest| rest.starts_with('/'));
        if is_image {
            self.image.call(req)
        } else {
            self.runtime.call(req)
        }
    }
}
