//! [`HostExtractor`], the client's default [`Extractor`]: the called host, the method
//! and the path.

use std::borrow::Cow;

use super::attributes::{Attributes, Extractor};

/// The default [`Extractor`] of [`PaceLayer`](crate::PaceLayer): the attribute `host`
/// (the URI's host, or the `Host` header), the method, and the path as the route.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostExtractor;

impl<B> Extractor<B> for HostExtractor {
    fn extract<'r>(&self, req: &'r http::Request<B>) -> Option<Attributes<'r>> {
        let host = req.uri().host().or_else(|| {
            let h = req.headers().get(http::header::HOST)?.to_str().ok()?;
            Some(h.split(':').next().unwrap_or(h))
        })?;
        Some(Attributes {
            method: Some(Cow::Borrowed(req.method().as_str())),
            route: Some(Cow::Borrowed(req.uri().path())),
            other: vec![(Cow::Borrowed("host"), Cow::Borrowed(host))],
            ..Attributes::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_extractor() {
        let r = http::Request::get("http://api.example:8080/v1/items?x=1")
            .body(())
            .unwrap();
        let a = Extractor::<()>::extract(&HostExtractor, &r).unwrap();
        assert_eq!(a.other, vec![(Cow::from("host"), Cow::from("api.example"))]);
        assert_eq!(a.route.as_deref(), Some("/v1/items"));
        assert_eq!(a.method.as_deref(), Some("GET"));
        let r = http::Request::post("/v1/items")
            .header("host", "127.0.0.1:9000")
            .body(())
            .unwrap();
        let a = Extractor::<()>::extract(&HostExtractor, &r).unwrap();
        assert_eq!(a.other, vec![(Cow::from("host"), Cow::from("127.0.0.1"))]);
        let r = http::Request::get("/no-host").body(()).unwrap();
        assert!(Extractor::<()>::extract(&HostExtractor, &r).is_none());
    }
}
