//! A minimal HTTP/1.1 keep-alive client over a tokio `TcpStream`: write one request,
//! read one answer (status line, headers, a `Content-Length` or chunked body). Written by
//! hand because it costs the shared CPU far less than a general client, and the load
//! generator and the server share the machine's cores. No pipelining: one request in
//! flight per connection. Every read is bounded by the caller's timeout.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest answer head or body accepted: anything bigger is a broken answer.
const MAX_MESSAGE: usize = 1 << 20;

/// One answer, with only what the scenarios look at.
#[derive(Debug, Default)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// `X-Refreshed-Token`, when the server minted a token for the caller.
    pub refreshed_token: Option<String>,
    /// The server said `Connection: close`: the connection must be opened again.
    pub close: bool,
}

impl Response {
    /// The body as text, cut short, for error messages.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(160).collect()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|err| format!("answer is not JSON: {err}"))
    }
}

/// Appends a request to `out`. `body` is `(content type, bytes)`.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        Some((content_type, bytes)) => {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(
                format!("\r\nContent-Length: {}\r\n\r\n", bytes.len()).as_bytes(),
            );
            out.extend_from_slice(bytes);
        }
        None if method == "GET" => out.extend_from_slice(b"\r\n"),
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by earlier answers.
    start: usize,
}

impl Conn {
    /// Opens a connection with Nagle off (small requests must not wait for ACKs).
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
            start: 0,
        })
    }

    /// Sends the request bytes and reads the whole answer.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Response, String> {
        self.stream
            .write_all(request)
            .await
            .map_err(|err| format!("write: {err}"))?;
        self.read_response().await
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.len() > MAX_MESSAGE {
            return Err("answer too large".into());
        }
        let old = self.buf.len();
        self.buf.resize(old + 16 * 1024, 0);
        let read = self.stream.read(&mut self.buf[old..]).await;
        match read {
            Ok(0) => {
                self.buf.truncate(old);
                Err("connection closed by the server".into())
            }
            Ok(n) => {
                self.buf.truncate(old + n);
                Ok(())
            }
            Err(err) => {
                self.buf.truncate(old);
                Err(format!("read: {err}"))
            }
        }
    }

    /// Reads until `buf[start..]` holds at least `n` bytes.
    async fn need(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() - self.start < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// Reads a line ending in CRLF (without it), starting at `start`.
    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(at) = find(&self.buf[self.start..], b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[self.start..self.start + at]).into();
                self.start += at + 2;
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn read_response(&mut self) -> Result<Response, String> {
        let head_end = loop {
            if let Some(at) = find(&self.buf[self.start..], b"\r\n\r\n") {
                break self.start + at;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.start..head_end])
            .map_err(|_| "answer head is not UTF-8".to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut response = Response {
            status,
            ..Response::default()
        };
        let mut length = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("bad content-length {value:?}"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                response.close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("x-refreshed-token") {
                response.refreshed_token = Some(value.to_string());
            }
        }
        self.start = head_end + 4;
        let no_body = status == 204 || status == 304 || (100..200).contains(&status);
        if no_body {
            return Ok(response);
        }
        if chunked {
            response.body = self.read_chunked().await?;
        } else if let Some(length) = length {
            if length > MAX_MESSAGE {
                return Err("answer body too large".into());
            }
            self.need(length).await?;
            response.body = self.buf[self.start..self.start + length].to_vec();
            self.start += length;
        } else {
            return Err("answer without content-length on a keep-alive connection".into());
        }
        Ok(response)
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let size_line = self.line().await?;
            let size_text = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            if body.len() + size > MAX_MESSAGE {
                return Err("chunked body too large".into());
            }
            if size == 0 {
                // Trailers, then the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            self.need(size + 2).await?;
            body.extend_from_slice(&self.buf[self.start..self.start + size]);
            self.start += size + 2;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
