//! A scripted HTTP/1.1 server on loopback for the adapters' unit tests (the
//! integration tests have `harness::FakePlatform`): each connection's
//! request is read whole (its head, then the body its `Content-Length`
//! gives), answered with the next reply of the script, and closed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// One reply: bytes to write, or `None` to close without answering.
pub type Reply = Option<String>;

/// A reply with this status line and body (and its length).
pub fn reply(status: &str, body: &str) -> Reply {
    Some(format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()))
}

/// Starts the server: its base URL, and the requests it read (as text),
/// once the script is done.
pub async fn scripted(script: Vec<Reply>) -> (String, JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for answer in script {
            let (mut socket, _) = listener.accept().await.unwrap();
            seen.push(read_request(&mut socket).await);
            if let Some(answer) = answer {
                socket.write_all(answer.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        }
        seen
    });
    (base, server)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut request = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.unwrap();
        request.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&request);
        let whole = text.find("\r\n\r\n").is_some_and(|end| {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .map_or(0, |v| v.parse::<usize>().unwrap());
            request.len() >= end + 4 + length
        });
        if whole || n == 0 {
            return text.into_owned();
        }
    }
}
