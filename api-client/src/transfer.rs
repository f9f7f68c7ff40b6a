//! Streamed transfers, for a disk's bytes (xapi's `PUT /import_raw_vdi` and `GET
//! /export_raw_vdi`): an upload read from its source as it is sent and a download read a chunk
//! at a time, so that neither is ever held whole in memory.

use tokio::io::AsyncRead;
use tokio_util::io::ReaderStream;

use crate::client::{Client, Reply, read_reply};
use crate::error::ClientError;

/// The most bytes read from an upload's source for one piece of the body.
const CHUNK_BYTES: usize = 256 * 1024;

/// An answer whose body is read a chunk at a time.
#[derive(Debug)]
pub struct Download {
    url: String,
    response: reqwest::Response,
    /// The longest body `into_reply` reads, in bytes.
    max_reply_bytes: usize,
}

impl Download {
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    /// The next piece of the body, `None` after the last; a body cut short is an error.
    pub async fn chunk(&mut self) -> Result<Option<impl AsRef<[u8]> + use<>>, ClientError> {
        self.response
            .chunk()
            .await
            .map_err(|source| ClientError::Request {
                url: self.url.clone(),
                source,
            })
    }

    /// The whole answer, within the client's reply limit: for one that is not the data (an
    /// error).
    pub async fn into_reply(self) -> Result<Reply, ClientError> {
        read_reply(&self.url, self.response, self.max_reply_bytes).await
    }
}

impl Client {
    /// PUTs to `path` with `query` the `length` bytes `body` gives, read as they are sent; the
    /// answer is read whole, within the reply limit.
    pub async fn put_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: impl AsyncRead + Send + 'static,
        length: u64,
    ) -> Result<Reply, ClientError> {
        let url = self.url(path);
        let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(body, CHUNK_BYTES));
        let request = self
            .http
            .put(&url)
            .header("content-length", length)
            .body(body);
        let reply = self.send(&url, request, query).await?;
        read_reply(&url, reply, self.max_reply_bytes).await
    }

    /// GETs `path` with `query`; the answer's body is read by the caller, a chunk at a time.
    pub async fn get_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Download, ClientError> {
        let url = self.url(path);
        let response = self.send(&url, self.http.get(&url), query).await?;
        Ok(Download {
            url,
            response,
            max_reply_bytes: self.max_reply_bytes,
        })
    }

    /// Sends `request` to `url` with `query` added, its values escaped.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let failed = |source| ClientError::Request {
            url: url.to_owned(),
            source,
        };
        let mut request = request.build().map_err(failed)?;
        request.url_mut().query_pairs_mut().extend_pairs(query);
        self.http.execute(request).await.map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// A plain-HTTP server on loopback that reads one request (headers, then a body of its
    /// `content-length`), answers `reply` and sends back what it read; and its address.
    async fn recording(reply: String) -> (String, tokio::sync::oneshot::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("bound").to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("a connection");
            let mut stream = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                stream.read_line(&mut line).await.expect("a header line");
                if let Some(value) = line.to_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().expect("a length");
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            stream.read_exact(&mut body).await.expect("the body");
            let _ = stream.get_mut().write_all(reply.as_bytes()).await;
            let _ = tx.send(head + &String::from_utf8_lossy(&body));
        });
        (address, rx)
    }

    /// An upload sends the source's bytes with its length and the escaped query, and reads the
    /// answer.
    #[tokio::test]
    async fn upload_sends_the_source_with_its_query() {
        let (address, request) =
            recording("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_owned()).await;
        let client = Client::http(&address).build().expect("a client");
        let source: &'static [u8] = b"disk bytes";
        let reply = client
            .put_stream("/import", &[("vdi", "a b&c")], source, 10)
            .await
            .expect("an answer");
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"ok"[..]));
        let seen = request.await.expect("the request");
        assert!(
            seen.starts_with("PUT /import?vdi=a+b%26c HTTP/1.1\r\n"),
            "{seen}"
        );
        assert!(seen.ends_with("\r\n\r\ndisk bytes"), "{seen}");
    }

    /// A download gives its body a chunk at a time, and an error answer whole.
    #[tokio::test]
    async fn download_reads_the_body_in_chunks() {
        let (address, _) =
            recording("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nimage".to_owned()).await;
        let client = Client::http(&address).build().expect("a client");
        let mut download = client.get_stream("/export", &[]).await.expect("an answer");
        assert_eq!(download.status(), 200);
        let mut body = Vec::new();
        while let Some(chunk) = download.chunk().await.expect("a chunk") {
            body.extend_from_slice(chunk.as_ref());
        }
        assert_eq!(body, b"image");
        let (address, _) =
            recording("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n[]".to_owned()).await;
        let client = Client::http(&address).build().expect("a client");
        let download = client.get_stream("/export", &[]).await.expect("an answer");
        let reply = download.into_reply().await.expect("the answer");
        assert_eq!((reply.status, reply.body.as_slice()), (404, &b"[]"[..]));
    }
}
