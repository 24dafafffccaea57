//! Request attributes: what a tower layer reads from an HTTP request ([`Attributes`]),
//! who reads it ([`Extractor`]: [`HeaderExtractor`] on the server, [`HostExtractor`] on
//! the client), and the engine [`Request`](tollgate::Request) built from them.

mod attributes;
pub mod forwarded;
mod header;
mod host;

pub use attributes::{Attributes, Extractor};
pub use forwarded::TrustedProxies;
pub use header::{FromExtensions, HeaderExtractor};
pub use host::HostExtractor;
