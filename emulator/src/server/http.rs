//! The hyper side of a request: reading it into an `Incoming`, and writing an `Outcome` back,
//! including the truncated body of `Fault::TruncatedBody`, the chunked body of variance mode and the
//! dropped connection of the connection faults.

use crate::wire::proto::Outcome;
use crate::wire::request::Incoming;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming as Body;
use hyper::{Request, Response};

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
pub struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by injected fault")
    }
}
impl std::error::Error for Dropped {}

/// A body that announces `len` bytes, sends `first`, waits for it to be flushed, then fails:
/// hyper aborts the connection mid-body.
pub struct Truncated {
    first: Option<Bytes>,
    len: u64,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for Truncated {
    type Data = Bytes;
    type Error = Dropped;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Dropped>>> {
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
        }
        // Pending lets hyper write out what it has before the error tears the connection down.
        std::future::Future::poll(self.pause.as_mut(), cx).map(|()| Some(Err(Dropped)))
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len)
    }
}

/// A body sent in pieces with no length announced: hyper writes it with `Transfer-Encoding: chunked`.
pub struct Chunked {
    pieces: std::collections::VecDeque<Bytes>,
}

impl hyper::body::Body for Chunked {
    type Data = Bytes;
    type Error = Dropped;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Dropped>>> {
        std::task::Poll::Ready(self.pieces.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }
}

pub type Reply = Response<Either<Full<Bytes>, Either<Truncated, Chunked>>>;

/// How the body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`, the whole body.
    Sized,
    /// `Content-Length` of the whole body, half of it, then the connection breaks.
    Truncated,
    /// `Transfer-Encoding: chunked`, in three pieces.
    Chunked,
}

pub async fn read(req: Request<Body>) -> Incoming {
    let (parts, body) = req.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    Incoming {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body: body.collect().await.map(|c| c.to_bytes()).unwrap_or_default(),
    }
}

pub fn respond(out: &Outcome, framing: Framing) -> Reply {
    let mut builder = Response::builder().status(out.status);
    for (k, v) in &out.headers {
        builder = builder.header(k, v);
    }
    let body = Bytes::from(out.body.clone());
    let body = match framing {
        Framing::Sized => Either::Left(Full::new(body)),
        Framing::Truncated => {
            let len = body.len() as u64;
            builder = builder.header("content-length", len.to_string());
            let pause = Box::pin(tokio::time::sleep(std::time::Duration::from_millis(100)));
            Either::Right(Either::Left(Truncated { first: Some(body.slice(..body.len() / 2)), len, pause }))
        }
        Framing::Chunked => {
            let third = body.len().div_ceil(3).max(1);
            let pieces = body.chunks(third).map(Bytes::copy_from_slice).collect();
            Either::Right(Either::Right(Chunked { pieces }))
        }
    };
    builder.body(body).unwrap_or_else(|_| Response::new(Either::Left(Full::new(Bytes::new()))))
}
