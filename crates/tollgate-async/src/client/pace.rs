//! [`PaceLayer`] and its [`PaceService`]: wait for the engine before each outbound call,
//! and hold the call's limits when the provider asks for a wait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;

use super::provider::provider_wait;
use crate::clock::nanos;
use crate::extract::{Attributes, Extractor, HostExtractor};
use crate::gate::{Gate, Refused};

/// A tower [`Layer`] pacing outbound HTTP calls with a [`Gate`] and adapting to the
/// provider's 429s. See the [module docs](crate::client).
#[derive(Debug)]
pub struct PaceLayer<X = HostExtractor> {
    gate: Gate,
    extractor: Arc<X>,
    adapt: bool,
    max_hold: Duration,
}

impl<X> Clone for PaceLayer<X> {
    fn clone(&self) -> Self {
        PaceLayer {
            gate: self.gate.clone(),
            extractor: Arc::clone(&self.extractor),
            adapt: self.adapt,
            max_hold: self.max_hold,
        }
    }
}

impl PaceLayer<HostExtractor> {
    /// A layer pacing calls with `gate`, keyed by [`HostExtractor`], adapting to the
    /// provider's answers, holding at most an hour.
    pub fn new(gate: Gate) -> Self {
        PaceLayer {
            gate,
            extractor: Arc::new(HostExtractor),
            adapt: true,
            max_hold: Duration::from_secs(3600),
        }
    }
}

impl<X> PaceLayer<X> {
    /// The same layer with another extractor.
    pub fn extractor<Y>(self, extractor: Y) -> PaceLayer<Y> {
        PaceLayer {
            gate: self.gate,
            extractor: Arc::new(extractor),
            adapt: self.adapt,
            max_hold: self.max_hold,
        }
    }

    /// Whether the provider's answers hold the local limits back (default: yes).
    /// Without it the layer only paces by the local policy.
    pub fn adapt(mut self, adapt: bool) -> Self {
        self.adapt = adapt;
        self
    }

    /// The longest hold one response can ask for (default: one hour).
    pub fn max_hold(mut self, max: Duration) -> Self {
        self.max_hold = max;
        self
    }
}

impl<S, X> Layer<S> for PaceLayer<X> {
    type Service = PaceService<S, X>;

    fn layer(&self, inner: S) -> Self::Service {
        PaceService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`PaceLayer`].
///
/// Its future waits for the engine (cancellation-safe: dropped while waiting, it took
/// nothing), then for the inner service's readiness, then sends the call; on the response
/// it applies the provider's wait. Refusals that waiting cannot change (a cost that can
/// never pass, a revoked key, ...) are [`PaceError::Refused`] at once.
#[derive(Debug)]
pub struct PaceService<S, X = HostExtractor> {
    inner: S,
    layer: PaceLayer<X>,
}

impl<S: Clone, X> Clone for PaceService<S, X> {
    fn clone(&self) -> Self {
        PaceService {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

/// The error of [`PaceService`].
#[derive(Debug)]
#[non_exhaustive]
pub enum PaceError<E> {
    /// The local engine refused the call, and waiting does not help.
    Refused(Refused),
    /// The inner service failed.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for PaceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaceError::Refused(r) => r.fmt(f),
            PaceError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for PaceError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PaceError::Refused(r) => Some(r),
            PaceError::Inner(e) => Some(e),
        }
    }
}

/// The future of [`PaceService`].
pub type PaceFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, PaceError<E>>> + Send>>;

impl<S, X, B, RB> Service<http::Request<B>> for PaceService<S, X>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    X: Extractor<B>,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = PaceError<S::Error>;
    type Future = PaceFuture<http::Response<RB>, S::Error>;

    /// Always ready: the future waits for the engine, then for the inner service.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let attrs = self
            .layer
            .extractor
            .extract(&req)
            .map(Attributes::into_owned);
        let mut inner = self.inner.clone();
        let gate = self.layer.gate.clone();
        let (adapt, max_hold) = (self.layer.adapt, self.layer.max_hold);
        Box::pin(async move {
            if let Some(a) = &attrs {
                gate.until_ready_attributes(a)
                    .await
                    .map_err(PaceError::Refused)?;
            }
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(PaceError::Inner)?;
            let res = inner.call(req).await.map_err(PaceError::Inner)?;
            if let (Some(a), true) = (&attrs, adapt) {
                if let Some(wait) = provider_wait(res.status(), res.headers()) {
                    let until = gate.now().saturating_add(nanos(wait.min(max_hold)));
                    a.with_request(|r| gate.hold(r, until));
                }
            }
            Ok(res)
        })
    }
}
