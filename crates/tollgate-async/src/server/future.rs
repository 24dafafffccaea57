//! [`ResponseFuture`], the future of [`RateLimitService`](crate::server::RateLimitService): the
//! inner service's response with the headers added, or the refusal built at once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tollgate::RateLimitHeaders;

use super::response::add_headers;

pin_project_lite::pin_project! {
    /// The future of [`RateLimitService`](crate::server::RateLimitService): the inner service's response with the
    /// headers added, or the refusal.
    pub struct ResponseFuture<F, RB> {
        #[pin]
        state: State<F, RB>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, RB> {
        Inner { #[pin] fut: F, headers: Option<RateLimitHeaders> },
        Refused { res: Option<http::Response<RB>> },
    }
}

impl<F, RB> ResponseFuture<F, RB> {
    pub(super) fn inner(fut: F, headers: Option<RateLimitHeaders>) -> Self {
        ResponseFuture {
            state: State::Inner { fut, headers },
        }
    }

    pub(super) fn refused(res: http::Response<RB>) -> Self {
        ResponseFuture {
            state: State::Refused { res: Some(res) },
        }
    }
}

impl<F, RB> std::fmt::Debug for ResponseFuture<F, RB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<F, RB, E> Future for ResponseFuture<F, RB>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = Result<http::Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { fut, headers } => {
                let mut res = std::task::ready!(fut.poll(cx))?;
                if let Some(h) = headers.take() {
                    add_headers(res.headers_mut(), h);
                }
                Poll::Ready(Ok(res))
            }
            StateProj::Refused { res } => Poll::Ready(Ok(res
                .take()
                .expect("ResponseFuture polled after completion"))),
        }
    }
}
