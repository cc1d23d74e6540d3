//! A request as the services see it: fully read off the connection, headers lower-cased as hyper
//! delivers them. The server builds it; everything above the wire layer only reads it.

use bytes::Bytes;

/// A request fully read off the wire.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}
