//! A real HTTP receiver on 127.0.0.1:0 that reports every request and answers as told.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Lower-case header names and their values.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// Request path.
    pub path: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// The `X-Beema-Delivery` of a request.
pub fn delivery_of(r: &Received) -> String {
    r.header("x-beema-delivery")
        .expect("X-Beema-Delivery header")
        .to_string()
}

/// The event id in a request's body.
pub fn event_of(r: &Received) -> String {
    r.json()["id"]
        .as_str()
        .expect("event id in the body")
        .to_string()
}

/// How the receiver answers a request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (e.g. Retry-After).
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Body.
    pub body: String,
}

impl Reply {
    /// A plain status.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            delay: Duration::ZERO,
            body: String::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    /// Answers after a delay.
    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// Sets the body.
    pub fn body(mut self, b: &str) -> Self {
        self.body = b.to_string();
        self
    }
}

struct Shared {
    /// Replies used in order, then `default` forever.
    script: VecDeque<Reply>,
    default: Reply,
    tx: mpsc::UnboundedSender<Received>,
}

/// The receiver; stops when dropped.
pub struct TestReceiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    rx: mpsc::UnboundedReceiver<Received>,
    _server: LocalServer,
}

impl TestReceiver {
    /// A receiver answering `status` to everything.
    pub fn start(status: u16) -> Self {
        Self::scripted(vec![], Reply::status(status))
    }

    /// A receiver answering `script` in order, then `default`.
    pub fn scripted(script: Vec<Reply>, default: Reply) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared {
            script: script.into(),
            default,
            tx,
        }));
        let state = shared.clone();
        let server = LocalServer::start(move |req, body| handle(req, body, state.clone()));
        Self {
            url: format!("http://{}/hook", server.addr),
            shared,
            rx,
            _server: server,
        }
    }

    /// Changes what it answers from now on (clears the script).
    pub fn set_reply(&self, reply: Reply) {
        let mut s = self.shared.lock().expect("lock");
        s.script.clear();
        s.default = reply;
    }

    /// The next request, or None after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next request; panics after `timeout`.
    pub async fn expect(&mut self, timeout: Duration) -> Received {
        self.next(timeout)
            .await
            .expect("the receiver got nothing in time")
    }

    /// Everything received so far without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            out.push(r);
        }
        out
    }
}

/// An actix-web server on 127.0.0.1:0, in a thread of its own, answering every request with
/// `answer`; stops when dropped.
pub struct LocalServer {
    /// Where it listens.
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

impl LocalServer {
    /// Starts it; returns once it is listening.
    pub fn start<F, Fut>(answer: F) -> Self
    where
        F: Fn(HttpRequest, web::Bytes) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = HttpResponse> + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server =
                    HttpServer::new(move || App::new().default_service(web::to(answer.clone())))
                        .workers(1)
                        .disable_signals()
                        .listen(listener)
                        .expect("listen")
                        .run();
                let _ = handle_tx.send(server.handle());
                let _ = server.await;
            })
        });
        let handle = handle_rx.recv().expect("receiver started");
        Self { addr, handle }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let h = self.handle.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(h.stop(false));
            }
        });
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, state: Arc<Mutex<Shared>>) -> HttpResponse {
    let received = Received {
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
        path: req.path().to_string(),
        at: std::time::Instant::now(),
    };
    let reply = {
        let mut s = state.lock().expect("lock");
        let _ = s.tx.send(received);
        let default = s.default.clone();
        s.script.pop_front().unwrap_or(default)
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(reply.status).expect("status"));
    for (k, v) in &reply.headers {
        resp.insert_header((k.as_str(), v.as_str()));
    }
    resp.body(reply.body)
}
