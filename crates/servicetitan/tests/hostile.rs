//! The hostile-server cases shared by the Rust, Python and Node suites (`tests/hostile.json`),
//! played against the engine by a small hostile server written here on raw TCP (so that it can
//! send what no HTTP library would: bare CRs, floods, stalls, resets, drips, endless bodies,
//! gzip bombs), with a capture server on another port that must never see a connection.
//!
//! The file's `vocabulary` says what every reply and expectation means. Unknown keys fail the
//! run, so a new kind of reply is never silently skipped. Besides each case's expectations,
//! every case checks that the capture server saw nothing, that no error text or log line
//! carries the app key or the client secret, that no request asked for a compressed answer or
//! went to a redirect's target, and that a normal call on the same client succeeds afterwards.
//!
//! `HOSTILE_FILE=/path/to/copy.json` plays another copy of the file (to check that the runner
//! fails when an expectation is broken); `HOSTILE_CASE=id` plays one case.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use servicetitan::{Client, Method, TenantCredentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Longest one case may take before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest log line a case may produce: text from a server is cut long before this.
const MAX_LOG_LINE: usize = 16 * 1024;

// ---------------------------------------------------------------------------------------------
// The file

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    version: u32,
    #[allow(dead_code)]
    about: String,
    #[allow(dead_code)]
    vocabulary: BTreeMap<String, String>,
    credentials: Credentials,
    defaults: Defaults,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    app_key: String,
    tenant: i64,
    client_id: String,
    client_secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    client: Settings,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    limits_off: Option<bool>,
    max_attempts: Option<u32>,
    backoff_base_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    attempt_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
}

impl Settings {
    /// `self` with `over`'s settings on top.
    fn merged(&self, over: &Settings) -> Settings {
        Settings {
            limits_off: over.limits_off.or(self.limits_off),
            max_attempts: over.max_attempts.or(self.max_attempts),
            backoff_base_ms: over.backoff_base_ms.or(self.backoff_base_ms),
            backoff_max_ms: over.backoff_max_ms.or(self.backoff_max_ms),
            attempt_timeout_ms: over.attempt_timeout_ms.or(self.attempt_timeout_ms),
            timeout_ms: over.timeout_ms.or(self.timeout_ms),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    #[allow(dead_code)]
    about: String,
    #[serde(default)]
    client: Settings,
    token: Option<Vec<ReplySpec>>,
    api: Option<Vec<ReplySpec>>,
    call: Option<CallSpec>,
    expect: Expect,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct ReplySpec {
    status: Option<u16>,
    headers: Option<BTreeMap<String, String>>,
    json: Option<Value>,
    text: Option<String>,
    redirect: Option<String>,
    body_bytes: Option<usize>,
    endless: Option<bool>,
    content_length: Option<u64>,
    gzip_zeros: Option<u64>,
    body_hex: Option<String>,
    nested: Option<usize>,
    raw_head: Option<String>,
    headers_flood: Option<usize>,
    stall: Option<bool>,
    reset: Option<bool>,
    drip_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallSpec {
    method: String,
    path: String,
    json: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    ok: bool,
    error: Option<ErrorExpect>,
    api_requests: Option<Count>,
    token_requests: Option<Count>,
    elapsed_ms: Option<Count>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorExpect {
    code: String,
    message_contains: Option<Vec<String>>,
    max_message_chars: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    eq: Option<u64>,
    lte: Option<u64>,
}

impl Count {
    fn check(&self, what: &str, actual: u64) -> Result<(), String> {
        if self.eq.is_none() && self.lte.is_none() {
            return Err(format!("{what}: neither eq nor lte"));
        }
        match (self.eq, self.lte) {
            (Some(eq), _) if actual != eq => Err(format!("{what}: {actual}, expected {eq}")),
            (_, Some(lte)) if actual > lte => Err(format!("{what}: {actual}, expected at most {lte}")),
            _ => Ok(()),
        }
    }
}

fn suite_path() -> PathBuf {
    match std::env::var_os("HOSTILE_FILE") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/hostile.json"),
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// What the hostile server does with one request.
#[derive(Clone, Debug)]
enum Action {
    /// A complete response (head and body), the connection kept.
    Respond { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// A chunked body of '[' then `spaces` spaces (`None`: without end), then the connection closed.
    Chunked { status: u16, spaces: Option<usize> },
    /// A Content-Length of `announced` with a short body, then the connection closed.
    LyingLength { status: u16, announced: u64, body: Vec<u8> },
    /// Bytes written as given, then the connection closed.
    Raw(Vec<u8>),
    /// Nothing: wait for the client to give up.
    Stall,
    /// A TCP reset.
    Reset,
    /// A head announcing 1,000,000 bytes, then one byte per period.
    Drip(Duration),
}

impl ReplySpec {
    /// The action, or why the spec makes no sense.
    fn action(&self, capture: SocketAddr) -> Result<Action, String> {
        let kinds = [
            self.json.is_some(),
            self.text.is_some() && self.content_length.is_none(),
            self.redirect.is_some(),
            self.body_bytes.is_some(),
            self.endless.is_some(),
            self.content_length.is_some(),
            self.gzip_zeros.is_some(),
            self.body_hex.is_some(),
            self.nested.is_some(),
            self.raw_head.is_some(),
            self.headers_flood.is_some(),
            self.stall.is_some(),
            self.reset.is_some(),
            self.drip_ms.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err("a reply mixes several kinds".into());
        }
        let needs_status = self.raw_head.is_none()
            && self.headers_flood.is_none()
            && self.stall.is_none()
            && self.reset.is_none()
            && self.drip_ms.is_none();
        let status = match (self.status, needs_status) {
            (Some(s), true) => s,
            (None, false) => 200,
            (None, true) => return Err("a reply without a status".into()),
            (Some(_), false) => return Err("a status on a reply that takes none".into()),
        };
        if self.headers.is_some() && (self.json.is_none() && self.text.is_none() && kinds.iter().any(|k| *k)) {
            return Err("headers on a reply that takes none".into());
        }
        let mut headers: Vec<(String, String)> =
            self.headers.iter().flatten().map(|(k, v)| (k.clone(), v.clone())).collect();
        let flag = |v: Option<bool>, name: &str| match v {
            Some(true) => Ok(()),
            _ => Err(format!("{name} must be true")),
        };
        let json_reply = |body: Vec<u8>, mut headers: Vec<(String, String)>| {
            headers.push(("Content-Type".into(), "application/json".into()));
            Action::Respond { status, headers, body }
        };
        Ok(if let Some(value) = &self.json {
            json_reply(expand(value).to_string().into_bytes(), headers)
        } else if let Some(n) = self.content_length {
            let text = self.text.clone().ok_or("content_length needs a text")?;
            Action::LyingLength { status, announced: n, body: text.into_bytes() }
        } else if let Some(text) = &self.text {
            headers.push(("Content-Type".into(), "text/plain".into()));
            Action::Respond { status, headers, body: text.clone().into_bytes() }
        } else if let Some(target) = &self.redirect {
            let location = match target.as_str() {
                "capture" => format!("http://{capture}/steal"),
                "same_origin" => "/elsewhere".to_owned(),
                other => return Err(format!("redirect to {other:?}: expected capture or same_origin")),
            };
            Action::Respond { status, headers: vec![("Location".into(), location)], body: Vec::new() }
        } else if let Some(n) = self.body_bytes {
            Action::Chunked { status, spaces: Some(n) }
        } else if self.endless.is_some() {
            flag(self.endless, "endless")?;
            Action::Chunked { status, spaces: None }
        } else if let Some(n) = self.gzip_zeros {
            headers.push(("Content-Encoding".into(), "gzip".into()));
            json_reply(gzip_of_zeros(n), headers)
        } else if let Some(hex) = &self.body_hex {
            json_reply(unhex(hex)?, headers)
        } else if let Some(n) = self.nested {
            json_reply(vec![b'['; n], headers)
        } else if let Some(head) = &self.raw_head {
            Action::Raw(head.clone().into_bytes())
        } else if let Some(n) = self.headers_flood {
            let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
            for i in 0..n {
                // 1,000 bytes a header line, CRLF included.
                let name = format!("X-Flood-{i:05}: ");
                head.push_str(&name);
                head.push_str(&"f".repeat(1000 - name.len() - 2));
                head.push_str("\r\n");
            }
            head.push_str("Content-Length: 2\r\n\r\n[]");
            Action::Raw(head.into_bytes())
        } else if self.stall.is_some() {
            flag(self.stall, "stall")?;
            Action::Stall
        } else if self.reset.is_some() {
            flag(self.reset, "reset")?;
            Action::Reset
        } else if let Some(ms) = self.drip_ms {
            Action::Drip(Duration::from_millis(ms))
        } else {
            Action::Respond { status, headers, body: Vec::new() }
        })
    }
}

/// `value` with every string `"@N"` replaced by N letters 'x'.
fn expand(value: &Value) -> Value {
    match value {
        Value::String(s) => match s.strip_prefix('@').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => Value::String("x".repeat(n)),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(expand).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), expand(v))).collect()),
        other => other.clone(),
    }
}

fn unhex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("body_hex {hex:?}: odd length"));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("body_hex {hex:?}: {e}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A gzip bomb, made here (no compression library needed): one deflate block with fixed
// Huffman codes, a literal zero, then matches of 258 bytes at distance 1 (13 bits for 258
// bytes: 256 MiB of zeros in 1.7 MB).

struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    /// `count` bits of `value`, least significant first (deflate's order for header fields).
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }
}

fn gzip_of_zeros(n: u64) -> Vec<u8> {
    let mut bits = Bits { out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff], acc: 0, n: 0 };
    bits.put(1, 1); // the final block
    bits.put(1, 2); // fixed Huffman codes
    let literal_zero = |bits: &mut Bits| bits.code(0x30, 8);
    if n > 0 {
        literal_zero(&mut bits);
        let rest = n - 1;
        for _ in 0..rest / 258 {
            bits.code(0xc5, 8); // length 258 (code 285)
            bits.code(0, 5); // distance 1
        }
        for _ in 0..rest % 258 {
            literal_zero(&mut bits);
        }
    }
    bits.code(0, 7); // end of block
    if bits.n > 0 {
        bits.put(0, 8 - bits.n);
    }
    let mut out = bits.out;
    out.extend_from_slice(&crc32_of_zeros(n).to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out
}

/// CRC-32 of `n` zero bytes without reading them: feeding zeros multiplies the register by
/// x^(8n) modulo the polynomial (zlib's `crc32_combine` arithmetic).
fn crc32_of_zeros(n: u64) -> u32 {
    const POLY: u32 = 0xedb8_8320;
    fn mul(a: u32, mut b: u32) -> u32 {
        let mut product = 0;
        let mut m = 1u32 << 31;
        while m != 0 {
            if a & m != 0 {
                product ^= b;
            }
            m >>= 1;
            b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        }
        product
    }
    // x^(2^k) for k = 3, 4, …: x^8 is one byte.
    let mut power = 1u32 << 30; // x^1
    for _ in 0..3 {
        power = mul(power, power);
    }
    let (mut n, mut register) = (n, 0xffff_ffffu32);
    while n > 0 {
        if n & 1 != 0 {
            register = mul(power, register);
        }
        power = mul(power, power);
        n >>= 1;
    }
    !register
}

/// The plain bitwise CRC-32, to check the shortcut above.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------------------------
// The hostile server and the capture server

#[derive(Default)]
struct Script {
    token: Vec<Action>,
    api: Vec<Action>,
}

#[derive(Default)]
struct Shared {
    script: Mutex<Script>,
    token_requests: AtomicUsize,
    api_requests: AtomicUsize,
    /// Requests that followed a same-origin redirect.
    elsewhere: AtomicUsize,
    /// `Accept-Encoding` values seen (none expected: no compression is negotiated).
    encodings: Mutex<Vec<String>>,
}

struct Hostile {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Hostile {
    async fn start() -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                tokio::spawn(serve(socket, state.clone()));
            }
        });
        Hostile { addr, shared }
    }

    /// Plays `token` and `api` from now on (empty: normal answers), counters at zero.
    fn script(&self, token: Vec<Action>, api: Vec<Action>) {
        *self.shared.script.lock().unwrap() = Script { token, api };
        self.shared.token_requests.store(0, Ordering::SeqCst);
        self.shared.api_requests.store(0, Ordering::SeqCst);
        self.shared.elsewhere.store(0, Ordering::SeqCst);
        self.shared.encodings.lock().unwrap().clear();
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

/// Reads one request (head and Content-Length body); `None` when the client closed.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buffer.len() > 1 << 20 {
            return None;
        }
        let mut chunk = [0u8; 16 * 1024];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    while buffer.len() < head_end + 4 + length {
        let mut chunk = [0u8; 16 * 1024];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    buffer.drain(..head_end + 4 + length);
    Some(Request { method, path, headers })
}

async fn serve(mut socket: TcpStream, shared: Arc<Shared>) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut socket, &mut buffer).await {
        if let Some((_, v)) = request.headers.iter().find(|(k, _)| k == "accept-encoding") {
            shared.encodings.lock().unwrap().push(v.clone());
        }
        if request.path.starts_with("/elsewhere") {
            shared.elsewhere.fetch_add(1, Ordering::SeqCst);
        }
        let is_token = request.method == "POST" && request.path.starts_with("/connect/token");
        let counter = if is_token { &shared.token_requests } else { &shared.api_requests };
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let replies = {
            let script = shared.script.lock().unwrap();
            if is_token {
                script.token.clone()
            } else {
                script.api.clone()
            }
        };
        let action = match replies.get(n.min(replies.len().saturating_sub(1))) {
            Some(action) => action.clone(),
            None if is_token => Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: json!({"access_token": format!("tok-{}", n + 1), "expires_in": 900, "token_type": "Bearer"})
                    .to_string()
                    .into_bytes(),
            },
            None => Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: json!({"page": 1, "pageSize": 1, "hasMore": false, "data": [{"id": 1}]}).to_string().into_bytes(),
            },
        };
        if !play(&mut socket, action).await {
            return;
        }
    }
}

/// Plays one action; `false` when the connection is done with.
async fn play(socket: &mut TcpStream, action: Action) -> bool {
    let head = |status: u16, headers: &[(String, String)], framing: &str| {
        let mut head = format!("HTTP/1.1 {status} Hostile\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(framing);
        head.push_str("\r\n");
        head.into_bytes()
    };
    match action {
        Action::Respond { status, headers, body } => {
            let mut out = head(status, &headers, &format!("Content-Length: {}\r\n", body.len()));
            out.extend_from_slice(&body);
            socket.write_all(&out).await.is_ok()
        }
        Action::Chunked { status, spaces } => {
            let framing = "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n";
            if socket.write_all(&head(status, &[], framing)).await.is_err() {
                return false;
            }
            let mut chunk = b"1\r\n[\r\n".to_vec();
            let block = vec![b' '; 64 * 1024];
            let mut left = spaces;
            loop {
                let size = left.map_or(block.len(), |l| l.min(block.len()));
                if size == 0 {
                    chunk.extend_from_slice(b"0\r\n\r\n");
                    let _ = socket.write_all(&chunk).await;
                    return false;
                }
                chunk.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                chunk.extend_from_slice(&block[..size]);
                chunk.extend_from_slice(b"\r\n");
                if socket.write_all(&chunk).await.is_err() {
                    return false;
                }
                chunk.clear();
                left = left.map(|l| l - size);
            }
        }
        Action::LyingLength { status, announced, body } => {
            let framing = format!("Content-Type: application/json\r\nContent-Length: {announced}\r\n");
            let mut out = head(status, &[], &framing);
            out.extend_from_slice(&body);
            let _ = socket.write_all(&out).await;
            false
        }
        Action::Raw(bytes) => {
            let _ = socket.write_all(&bytes).await;
            false
        }
        Action::Stall => {
            let mut sink = [0u8; 1024];
            let _ =
                tokio::time::timeout(CASE_TIMEOUT, async { while let Ok(1..) = socket.read(&mut sink).await {} }).await;
            false
        }
        Action::Reset => {
            let _ = socket.set_zero_linger();
            false
        }
        Action::Drip(every) => {
            let framing = "Content-Type: application/json\r\nContent-Length: 1000000\r\n";
            if socket.write_all(&head(200, &[], framing)).await.is_err() {
                return false;
            }
            let started = Instant::now();
            while started.elapsed() < CASE_TIMEOUT {
                if socket.write_all(b" ").await.is_err() {
                    return false;
                }
                tokio::time::sleep(every).await;
            }
            false
        }
    }
}

/// A server that must never be reached: counts its connections.
async fn capture_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, count)
}

// ---------------------------------------------------------------------------------------------
// Logs, captured while a case runs

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Everything the client side logs at debug and above (the engine, and through `log` its
        // HTTP stack), with span events, where a secret could show.
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG);
        tracing_subscriber::registry().with(layer).try_init().expect("the only global subscriber of this binary");
    });
}

fn take_log() -> String {
    let mut log = LOG.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&std::mem::take(&mut *log)).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Playing the cases

fn build_client(settings: &Settings, creds: &Credentials, base: &str) -> Client {
    let mut b = Client::builder()
        .app_key(creds.app_key.clone())
        .auth_url(base)
        .api_url(base)
        // Nothing from the machine's environment (a proxy, say) leaks in.
        .env_lookup(|_| None);
    if settings.limits_off == Some(true) {
        b = b.disable_rate_limits();
    }
    if let Some(n) = settings.max_attempts {
        b = b.max_attempts(n);
    }
    if settings.backoff_base_ms.is_some() || settings.backoff_max_ms.is_some() {
        b = b.backoff(
            Duration::from_millis(settings.backoff_base_ms.unwrap_or(250)),
            Duration::from_millis(settings.backoff_max_ms.unwrap_or(20_000)),
        );
    }
    if let Some(ms) = settings.attempt_timeout_ms {
        b = b.attempt_timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = settings.timeout_ms {
        b = b.timeout(Duration::from_millis(ms));
    }
    b.build().expect("the client builds")
}

/// Plays one case; the list of what went wrong (empty: passed).
async fn play_case(suite: &Suite, case: &Case, hostile: &Hostile, capture: (SocketAddr, &AtomicUsize)) -> Vec<String> {
    let mut failures = Vec::new();
    let actions = |replies: &Option<Vec<ReplySpec>>| -> Result<Vec<Action>, String> {
        replies.iter().flatten().map(|r| r.action(capture.0)).collect()
    };
    let (token, api) = match (actions(&case.token), actions(&case.api)) {
        (Ok(t), Ok(a)) => (t, a),
        (Err(e), _) | (_, Err(e)) => return vec![format!("bad reply in the file: {e}")],
    };
    let creds = &suite.credentials;
    let secrets = [creds.app_key.as_str(), creds.client_secret.as_str()];
    hostile.script(token, api);
    capture.1.store(0, Ordering::SeqCst);
    let settings = suite.defaults.client.merged(&case.client);
    let client = build_client(&settings, creds, &format!("http://{}", hostile.addr));
    let tenant =
        client.tenant(TenantCredentials::new(creds.tenant, creds.client_id.clone(), creds.client_secret.clone()));
    let (method, path, body) = match &case.call {
        Some(c) => match Method::from_bytes(c.method.as_bytes()) {
            Ok(m) => (m, c.path.clone(), c.json.clone()),
            Err(e) => return vec![format!("call.method {:?}: {e}", c.method)],
        },
        None => (Method::GET, "crm/customers".to_owned(), None),
    };
    take_log();

    let started = Instant::now();
    let call = tenant.request(method, path).json_value(body).send_json();
    let result = match tokio::time::timeout(CASE_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => return vec![format!("the call hung for {CASE_TIMEOUT:?}")],
    };
    let elapsed = started.elapsed();
    let token_requests = hostile.shared.token_requests.load(Ordering::SeqCst) as u64;
    let api_requests = hostile.shared.api_requests.load(Ordering::SeqCst) as u64;

    // The case's own expectations.
    let expect = &case.expect;
    let outcome = match &result {
        Ok(v) => format!("ok {}", excerpt(&v.to_string())),
        Err(e) => format!("{} error: {}", e.code(), excerpt(&e.to_string())),
    };
    match (&result, expect.ok) {
        (Ok(_), false) => failures.push(format!("succeeded, expected an error ({outcome})")),
        (Err(_), true) => failures.push(format!("failed, expected success ({outcome})")),
        _ => {}
    }
    if let (Some(want), Err(e)) = (&expect.error, &result) {
        let text = e.to_string();
        if e.code().as_str() != want.code {
            failures.push(format!("code {}, expected {} ({outcome})", e.code(), want.code));
        }
        for part in want.message_contains.iter().flatten() {
            if !text.contains(part.as_str()) {
                failures.push(format!("message lacks {part:?} ({outcome})"));
            }
        }
        if let Some(max) = want.max_message_chars {
            let chars = text.chars().count();
            if chars > max {
                failures.push(format!("message of {chars} characters, expected at most {max}"));
            }
        }
    }
    if let Some(c) = &expect.token_requests {
        failures.extend(c.check("token_requests", token_requests).err());
    }
    if let Some(c) = &expect.api_requests {
        failures.extend(c.check("api_requests", api_requests).err());
    }
    if let Some(c) = &expect.elapsed_ms {
        failures.extend(c.check("elapsed_ms", elapsed.as_millis() as u64).err());
    }

    // Every case: no secret in the error's text, nothing sent to a redirect's target, no
    // compressed answer asked for.
    if let Err(e) = &result {
        for text in [e.to_string(), format!("{e:?}"), e.title().unwrap_or_default().to_owned()] {
            for secret in secrets {
                if text.contains(secret) {
                    failures.push(format!("the error's text carries a secret: {}", excerpt(&text)));
                }
            }
        }
    }
    let followed = hostile.shared.elsewhere.load(Ordering::SeqCst);
    if followed > 0 {
        failures.push(format!("{followed} requests followed a same-origin redirect"));
    }
    let encodings = hostile.shared.encodings.lock().unwrap().clone();
    if !encodings.is_empty() {
        failures.push(format!("the client asked for compressed answers: Accept-Encoding {encodings:?}"));
    }

    // Every case: the same client still works once the server behaves.
    hostile.script(Vec::new(), Vec::new());
    match tokio::time::timeout(CASE_TIMEOUT, tenant.get("crm/customers").send_json()).await {
        Ok(Ok(page)) if page["data"][0]["id"] == 1 => {}
        Ok(Ok(page)) => failures.push(format!("afterwards, an unexpected answer: {}", excerpt(&page.to_string()))),
        Ok(Err(e)) => {
            failures.push(format!("afterwards, a normal call failed: {} error: {}", e.code(), excerpt(&e.to_string())))
        }
        Err(_) => failures.push("afterwards, a normal call hung".into()),
    }
    let seen = capture.1.load(Ordering::SeqCst);
    if seen > 0 {
        failures.push(format!("the capture server saw {seen} connections"));
    }
    let log = take_log();
    for secret in secrets {
        if log.contains(secret) {
            failures.push("a log line carries a secret".into());
        }
    }
    if let Some(line) = log.lines().find(|l| l.len() > MAX_LOG_LINE) {
        failures.push(format!("a log line of {} bytes: {}", line.len(), excerpt(line)));
    }
    println!("  {:<32} {:>6} ms  {}", case.id, elapsed.as_millis(), excerpt(&outcome));
    failures
}

fn excerpt(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_case() {
    install_log_capture();
    let path = suite_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let suite: Suite = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(suite.version, 1, "{}: a version this runner does not know", path.display());
    let only = std::env::var("HOSTILE_CASE").ok();

    let hostile = Hostile::start().await;
    let (capture, seen) = capture_server().await;
    let started = Instant::now();
    let (mut played, mut failed) = (0, Vec::new());
    for case in suite.cases.iter().filter(|c| only.as_deref().is_none_or(|id| id == c.id)) {
        played += 1;
        let failures = play_case(&suite, case, &hostile, (capture, &seen)).await;
        if !failures.is_empty() {
            failed.push(format!("{}:\n    {}", case.id, failures.join("\n    ")));
        }
    }
    println!(
        "hostile cases: {}/{played} passed in {:.1} s ({})",
        played - failed.len(),
        started.elapsed().as_secs_f64(),
        path.display()
    );
    assert!(played > 0, "no case matched HOSTILE_CASE={only:?}");
    assert!(failed.is_empty(), "{} of {played} hostile cases failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn the_gzip_bomb_is_a_valid_gzip_stream() {
    for n in [0u64, 1, 2, 3, 257, 258, 259, 1000, 70_000] {
        assert_eq!(crc32_of_zeros(n), crc32(&vec![0; n as usize]), "crc of {n} zeros");
    }
    // Checked once against a real inflater: `python3 -c "import gzip,sys;
    // print(len(gzip.decompress(sys.stdin.buffer.read())))"` reads 268435456 zeros.
    let bomb = gzip_of_zeros(256 << 20);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    assert_eq!(&bomb[..3], &[0x1f, 0x8b, 8]);
}
