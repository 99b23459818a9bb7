//! The client side of containerd's streaming server, as `kubectl exec/attach/port-forward` reach it through the
//! API server: a WebSocket to the URL that Exec, Attach or PortForward returned, subprotocol
//! `v4.channel.k8s.io`, every binary message prefixed with its channel (exec/attach: 0 stdin, 1 stdout, 2 stderr,
//! 3 the final status as JSON; port-forward: 0 data, 1 error, each starting with the port).
//!
//! The streaming server listens on 127.0.0.1 of containerd's own network namespace, so the socket is made by a
//! thread that has joined that namespace (`setns` changes only the calling thread's).

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

/// What one session received, by channel, and how it ended.
#[derive(Debug, Default)]
pub struct Session {
    /// Bytes per channel, in arrival order (the channel byte stripped).
    pub channels: Vec<Vec<u8>>,
}

impl Session {
    pub fn text(&self, channel: usize) -> String {
        self.channels
            .get(channel)
            .map(|b| String::from_utf8_lossy(b).to_string())
            .unwrap_or_default()
    }
}

/// Opens `url` from containerd's network namespace (`netns_pid`'s), sends each of `input` (channel, bytes) in
/// order, and reads until the server closes or `until` holds of what arrived.
pub fn session(
    netns_pid: i32,
    url: &str,
    input: Vec<(u8, Vec<u8>)>,
    until: impl Fn(&Session) -> bool + Send + 'static,
) -> Result<Session, String> {
    let url = url.to_string();
    let worker = std::thread::spawn(move || -> Result<Session, String> {
        let ns = std::fs::File::open(format!("/proc/{netns_pid}/ns/net"))
            .map_err(|e| format!("open containerd's netns: {e}"))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns into containerd's netns: {e}"))?;
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http URL: {url}"))?;
        let host = rest.split('/').next().unwrap_or_default();
        let tcp = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut req = format!("ws://{rest}")
            .into_client_request()
            .map_err(|e| format!("request {url}: {e}"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            tungstenite::http::HeaderValue::from_static("v4.channel.k8s.io"),
        );
        let (mut ws, _) =
            tungstenite::client::client(req, tcp).map_err(|e| format!("upgrade {url}: {e}"))?;
        for (ch, bytes) in input {
            let mut msg = vec![ch];
            msg.extend_from_slice(&bytes);
            ws.send(Message::Binary(msg.into()))
                .map_err(|e| format!("send: {e}"))?;
        }
        let mut got = Session::default();
        loop {
            match ws.read() {
                Ok(Message::Binary(data)) if !data.is_empty() => {
                    let ch = usize::from(data[0]);
                    if got.channels.len() <= ch {
                        got.channels.resize(ch + 1, Vec::new());
                    }
                    got.channels[ch].extend_from_slice(&data[1..]);
                    if until(&got) {
                        let _ = ws.close(None);
                        return Ok(got);
                    }
                }
                Ok(Message::Close(_)) => return Ok(got),
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(got)
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    return Ok(got)
                }
                Err(e) => return Err(format!("read {url}: {e} (so far {got:?})")),
            }
        }
    });
    worker
        .join()
        .unwrap_or_else(|_| Err("stream thread panicked".into()))
}
