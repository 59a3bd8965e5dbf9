//! The limits a public endpoint needs: the body cap, the header read timeout, the request
//! timeout and the bounded graceful shutdown. Clients that misbehave on purpose are played over
//! raw TCP, byte by byte.

use crate::cli::ServerProcess;
use crate::helpers::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KIB_64: usize = 64 * 1024;
const BULK: &str = "/personal-access-tokens/v1/bulk-update";
/// What the tests allow beyond a configured timeout before calling it missed: the machine is
/// small and shared.
const MARGIN: Duration = Duration::from_secs(3);

/// One connection, spoken to byte by byte.
struct Raw {
    stream: TcpStream,
}

/// A response read off a raw connection.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// How a body is sent: with `Content-Length`, or chunked with none.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Declared,
    Chunked,
}

impl Raw {
    async fn connect(app: &TestApp) -> Raw {
        Raw {
            stream: TcpStream::connect(address(app)).await.unwrap(),
        }
    }

    /// Writes `bytes`; a server that has already answered and closed may refuse the rest, which
    /// is its right, so write errors are ignored and the answer is read afterwards.
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Sends a whole request: `head` lines (without the framing header), then `body`.
    async fn request(&mut self, head: &str, body: &[u8], framing: Framing) {
        let mut bytes = head.as_bytes().to_vec();
        match framing {
            Framing::Declared => {
                bytes.extend(format!("content-length: {}\r\n\r\n", body.len()).bytes());
                bytes.extend_from_slice(body);
            }
            Framing::Chunked => {
                bytes.extend(b"transfer-encoding: chunked\r\n\r\n");
                for chunk in body.chunks(8 * 1024) {
                    bytes.extend(format!("{:x}\r\n", chunk.len()).bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend(b"\r\n");
                }
                bytes.extend(b"0\r\n\r\n");
            }
        }
        self.send(&bytes).await;
    }

    /// Reads one response (its body framed by `Content-Length`), failing past `within`.
    async fn response_within(&mut self, within: Duration) -> RawResponse {
        tokio::time::timeout(within, self.read_response())
            .await
            .expect("no response in time")
    }

    async fn response(&mut self) -> RawResponse {
        self.response_within(Duration::from_secs(30)).await
    }

    async fn read_response(&mut self) -> RawResponse {
        let mut bytes = Vec::new();
        let head_end = loop {
            if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole response head: {bytes:?}");
            bytes.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map(|(_, value)| value.parse().unwrap())
            .expect("every answer of patd has a Content-Length");
        let mut body = bytes[head_end + 4..].to_vec();
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed in the middle of a response body");
            body.extend_from_slice(&chunk[..n]);
        }
        RawResponse {
            status: status.parse().unwrap(),
            headers,
            body,
        }
    }

    /// How long the server took to close the connection, if it did within `within`. Whatever
    /// the server still sends is read and dropped; a reset counts as closed.
    async fn closed_within(&mut self, within: Duration) -> Option<Duration> {
        let started = Instant::now();
        let mut sink = Vec::new();
        tokio::time::timeout(within, self.stream.read_to_end(&mut sink))
            .await
            .ok()
            .map(|_| started.elapsed())
    }
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }

    /// The ErrorResponseDto's `(status, detailCode)`, its shape checked as `error_of` does.
    fn error(&self) -> (u16, String) {
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        let (code, _) = error_body_of(
            self.header("content-type").unwrap(),
            self.header("x-request-id").unwrap(),
            &body,
        );
        (self.status, code)
    }

    /// The token endpoint's OAuth error `(status, error)`: exactly `error` and
    /// `error_description`, JSON, never cached.
    fn oauth_error(&self) -> (u16, String) {
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error", "error_description"], "{body}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert!(self.header("x-request-id").is_some_and(is_hex32));
        (self.status, body["error"].as_str().unwrap().to_owned())
    }
}

fn address(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// A request's head up to (not including) its framing header and the blank line.
fn head(method: &str, path: &str, content_type: &str, bearer: Option<&str>) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nhost: patd\r\ncontent-type: {content_type}\r\n");
    if let Some(token) = bearer {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    head
}

/// A client-credentials exchange's parameters.
fn credentials<'a>(id: &'a str, secret: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ]
}

/// `json` followed by spaces, `size` bytes in all: still the same JSON.
fn json_of_size(json: &Value, size: usize) -> Vec<u8> {
    let mut bytes = json.to_string().into_bytes();
    assert!(bytes.len() <= size);
    bytes.resize(size, b' ');
    bytes
}

/// The form `fields` and a `pad` field, `size` bytes in all.
fn form_of_size(fields: &[(&str, &str)], size: usize) -> Vec<u8> {
    let mut form = serde_urlencoded::to_string(fields).unwrap();
    form.push_str("&pad=");
    assert!(form.len() <= size);
    let mut bytes = form.into_bytes();
    bytes.resize(size, b'a');
    bytes
}

const BOUNDARY: &str = "patd-limits-boundary";

/// A multipart body of `fields` and a `pad` field, `size` bytes in all.
fn multipart_of_size(fields: &[(&str, &str)], size: usize) -> Vec<u8> {
    let part = |name: &str, value: &str| {
        format!(
            "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let mut before_pad: String = fields
        .iter()
        .map(|(name, value)| part(name, value))
        .collect();
    before_pad.push_str(&format!(
        "--{BOUNDARY}\r\ncontent-disposition: form-data; name=\"pad\"\r\n\r\n"
    ));
    let after_pad = format!("\r\n--{BOUNDARY}--\r\n");
    let pad = size - before_pad.len() - after_pad.len();
    format!("{before_pad}{}{after_pad}", "a".repeat(pad)).into_bytes()
}

/// Every route that reads a body, with a body of `size` bytes that it would accept.
fn body_cases(app: &TestApp, size: usize) -> Vec<(&'static str, String, Vec<u8>)> {
    let id = app.bootstrap.id.as_str();
    let secret = app.bootstrap.secret.as_str();
    let token = app.admin_token.as_str();
    let credentials = credentials(id, secret);
    let rename = json!([{"op": "replace", "path": "/name", "value": format!("renamed {size}")}]);
    let bulk = json!({"ids": [id], "patch": [{"op": "replace", "path": "/expirationDate", "value": "2090-01-01T00:00:00Z"}]});
    vec![
        (
            "create",
            head("POST", CLASSIC, "application/json", Some(token)),
            json_of_size(&json!({"name": format!("big {size}")}), size),
        ),
        (
            "patch",
            head(
                "PATCH",
                &format!("{CLASSIC}/{id}"),
                "application/json-patch+json",
                Some(token),
            ),
            json_of_size(&rename, size),
        ),
        (
            "bulk update (POST)",
            head("POST", BULK, "application/json", Some(token)),
            json_of_size(&bulk, size),
        ),
        (
            "bulk update (PATCH)",
            head("PATCH", BULK, "application/json", Some(token)),
            json_of_size(&bulk, size),
        ),
        (
            "token form",
            head(
                "POST",
                "/oauth/token",
                "application/x-www-form-urlencoded",
                None,
            ),
            form_of_size(&credentials, size),
        ),
        (
            "token multipart",
            head(
                "POST",
                "/oauth/token",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
                None,
            ),
            multipart_of_size(&credentials, size),
        ),
    ]
}

async fn send_once(app: &TestApp, head: &str, body: &[u8], framing: Framing) -> RawResponse {
    let mut raw = Raw::connect(app).await;
    raw.request(head, body, framing).await;
    raw.response().await
}

#[tokio::test]
async fn bodies_are_capped_at_64_kib_on_every_route_that_reads_one_and_past_it_get_413() {
    let app = spawn_app().await;
    for framing in [Framing::Declared, Framing::Chunked] {
        for (route, head, body) in body_cases(&app, KIB_64 + 1) {
            let answer = send_once(&app, &head, &body, framing).await;
            // The token endpoint's clients read OAuth errors (RFC 6749 §5.2).
            if route.starts_with("token") {
                assert_eq!(
                    answer.oauth_error(),
                    (413, "invalid_request".to_owned()),
                    "{route}, {framing:?}"
                );
            } else {
                assert_eq!(
                    answer.error(),
                    (413, "413 Payload Too Large".to_owned()),
                    "{route}, {framing:?}"
                );
            }
        }
        // Exactly at the cap is accepted. The bodies of one framing rename the same PAT, so the
        // sizes differ to make the names differ.
        let size = KIB_64 - usize::from(framing == Framing::Chunked);
        for (route, head, body) in body_cases(&app, size) {
            let answer = send_once(&app, &head, &body, framing).await;
            assert_eq!(
                answer.status,
                200,
                "{route}, {framing:?}, {size} bytes: {}",
                String::from_utf8_lossy(&answer.body)
            );
        }
    }
}

#[tokio::test]
async fn a_token_request_whose_body_cannot_be_read_gets_400_invalid_request_never_quoting_it() {
    let app = spawn_app().await;
    let form = "application/x-www-form-urlencoded";
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    let cases: [(&str, &str, Option<&str>, &[u8]); 4] = [
        // A chunk size that is not hexadecimal: the body breaks off while it is read.
        (
            "broken chunking",
            form,
            Some("transfer-encoding: chunked"),
            b"zz-secret\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "a form naming a parameter twice",
            form,
            None,
            b"grant_type=client_credentials&grant_type=zz-x",
        ),
        (
            "multipart without a boundary",
            "multipart/form-data",
            None,
            b"zz-secret",
        ),
        (
            "multipart cut short",
            &multipart,
            None,
            b"--patd-limits-boundary\r\nzz-secret: x\r\n",
        ),
    ];
    for (case, content_type, framing, body) in cases {
        let framing =
            framing.map_or_else(|| format!("content-length: {}", body.len()), str::to_owned);
        let mut raw = Raw::connect(&app).await;
        raw.send(
            format!(
                "{}{framing}\r\n\r\n",
                head("POST", "/oauth/token", content_type, None)
            )
            .as_bytes(),
        )
        .await;
        raw.send(body).await;
        let answer = raw.response().await;
        assert_eq!(
            answer.oauth_error(),
            (400, "invalid_request".to_owned()),
            "{case}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(
            !String::from_utf8_lossy(&answer.body).contains("zz"),
            "{case}: the answer quotes the body"
        );
    }
}

#[tokio::test]
async fn a_configured_smaller_body_limit_is_honoured() {
    let app = spawn_app_with(|config| config.max_body_size = 1000).await;
    for framing in [Framing::Declared, Framing::Chunked] {
        for (route, head, body) in body_cases(&app, 1001) {
            let answer = send_once(&app, &head, &body, framing).await;
            assert_eq!(answer.status, 413, "{route}, {framing:?}");
        }
    }
    let (_, head, body) = body_cases(&app, 1000)
        .into_iter()
        .find(|(route, _, _)| *route == "token form")
        .unwrap();
    let answer = send_once(&app, &head, &body, Framing::Declared).await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let app = spawn_app_with(|config| config.header_read_timeout = Duration::from_secs(1)).await;
    let mut raw = Raw::connect(&app).await;
    let closed = raw.closed_within(Duration::from_secs(1) + MARGIN).await;
    let closed = closed.expect("the idle connection was not closed");
    assert!(
        closed >= Duration::from_millis(900),
        "closed early: {closed:?}"
    );
}

#[tokio::test]
async fn a_connection_that_sends_half_its_headers_is_closed_after_the_header_read_timeout() {
    let app = spawn_app_with(|config| config.header_read_timeout = Duration::from_secs(1)).await;
    for half in [
        "GET /oauth/in",
        "GET /oauth/info HTTP/1.1\r\nhost: patd\r\n",
    ] {
        let mut raw = Raw::connect(&app).await;
        raw.send(half.as_bytes()).await;
        let closed = raw.closed_within(Duration::from_secs(1) + MARGIN).await;
        assert!(closed.is_some(), "{half:?} was not closed");
    }
}

#[tokio::test]
async fn a_keep_alive_connection_serves_several_requests_then_closes_once_idle_past_the_header_read_timeout(
) {
    let app = spawn_app_with(|config| config.header_read_timeout = Duration::from_secs(1)).await;
    let mut raw = Raw::connect(&app).await;
    for _ in 0..3 {
        raw.send(b"GET /oauth/info HTTP/1.1\r\nhost: patd\r\n\r\n")
            .await;
        let answer = raw.response().await;
        assert_eq!(answer.status, 200);
        assert_ne!(answer.header("connection"), Some("close"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let closed = raw.closed_within(Duration::from_secs(1) + MARGIN).await;
    assert!(
        closed.is_some(),
        "the idle keep-alive connection stayed open"
    );
    // A pooling client is not troubled: it reuses connections while they are open.
    for _ in 0..3 {
        let response = app.client.get(app.url("/oauth/info")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn a_request_whose_body_stalls_gets_503_after_the_request_timeout() {
    let app = spawn_app_with(|config| config.request_timeout = Duration::from_secs(1)).await;
    let mut raw = Raw::connect(&app).await;
    let started = Instant::now();
    raw.send(
        b"POST /oauth/token HTTP/1.1\r\nhost: patd\r\n\
          content-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\n\
          grant_type",
    )
    .await;
    let answer = raw.response_within(Duration::from_secs(1) + MARGIN).await;
    assert_eq!(answer.error(), (503, "503 Service Unavailable".to_owned()));
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn shutdown_answers_requests_in_flight_and_returns_within_the_shutdown_timeout_whatever_clients_hold(
) {
    let (trigger, triggered) = tokio::sync::oneshot::channel::<()>();
    let shutdown_timeout = Duration::from_secs(2);
    let (app, served) = spawn_app_until(
        |config| {
            // Long enough that only the shutdown can end the stalled connections.
            config.header_read_timeout = Duration::from_secs(60);
            config.shutdown_timeout = shutdown_timeout;
        },
        async {
            let _ = triggered.await;
        },
    )
    .await;
    let mut idle = Raw::connect(&app).await;
    idle.send(b"GET /oauth/info HTTP/1.1\r\nhost: patd\r\n\r\n")
        .await;
    assert_eq!(idle.response().await.status, 200);
    let mut half_sent = Raw::connect(&app).await;
    half_sent
        .send(b"GET /oauth/info HTTP/1.1\r\nhost: pa")
        .await;
    let mut silent = Raw::connect(&app).await;
    let form =
        serde_urlencoded::to_string(credentials(&app.bootstrap.id, &app.bootstrap.secret)).unwrap();
    let mut in_flight = Raw::connect(&app).await;
    in_flight
        .send(
            format!(
                "{}content-length: {}\r\n\r\n{}",
                head(
                    "POST",
                    "/oauth/token",
                    "application/x-www-form-urlencoded",
                    None
                ),
                form.len(),
                &form[..10]
            )
            .as_bytes(),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    trigger.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(address(&app)).await.is_err(),
        "still accepting after the shutdown signal"
    );
    in_flight.send(&form.as_bytes()[10..]).await;
    let answer = in_flight.response().await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("connection"), Some("close"));

    let result = tokio::time::timeout(shutdown_timeout + MARGIN, served)
        .await
        .expect("serve did not return within the shutdown timeout");
    result.unwrap().unwrap();
    assert!(started.elapsed() < shutdown_timeout + MARGIN);
    for (name, raw) in [
        ("idle", &mut idle),
        ("half-sent", &mut half_sent),
        ("silent", &mut silent),
    ] {
        let closed = raw.closed_within(Duration::from_secs(1)).await;
        assert!(closed.is_some(), "the {name} connection is still open");
    }
}

#[tokio::test]
async fn patd_serve_honours_max_body_size() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(dir.path()).await;
    let server = ServerProcess::start(&database, &["--max-body-size", "1000"], "info");
    let (id, secret) = server.bootstrap().unwrap();
    let credentials = credentials(&id, &secret);
    let client = reqwest::Client::new();
    for (size, want) in [(1001, 413), (1000, 200)] {
        let response = client
            .post(format!("{}/oauth/token", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_of_size(&credentials, size))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), want, "{size} bytes");
    }
}

#[tokio::test]
async fn patd_serve_exits_within_its_shutdown_timeout_while_a_client_holds_a_half_sent_request() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(dir.path()).await;
    let mut server = ServerProcess::start(
        &database,
        &["--shutdown-timeout", "1s", "--header-read-timeout", "1m"],
        "info",
    );
    let mut half_sent = TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    half_sent
        .write_all(b"GET /oauth/info HTTP/1.1\r\nho")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1) + MARGIN,
            "patd did not exit within its shutdown timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success());
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_after_the_body_read_timeout_and_its_connection_closes() {
    let app = spawn_app_with(|config| {
        config.body_read_timeout = Duration::from_secs(1);
        // Far off, so that only the body read timeout can answer.
        config.request_timeout = Duration::from_secs(60);
    })
    .await;
    let token = app.exchange(&app.bootstrap.id, &app.bootstrap.secret).await;
    let requests = [
        head(
            "POST",
            "/v3/personal-access-tokens",
            "application/json",
            Some(&token),
        ),
        head(
            "POST",
            "/oauth/token",
            "application/x-www-form-urlencoded",
            None,
        ),
    ];
    for (index, head) in requests.iter().enumerate() {
        let mut raw = Raw::connect(&app).await;
        let started = Instant::now();
        raw.send(format!("{head}content-length: 100\r\n\r\n{{\"na").as_bytes())
            .await;
        let answer = raw.response_within(Duration::from_secs(1) + MARGIN).await;
        assert!(started.elapsed() >= Duration::from_millis(900), "{head}");
        if index == 0 {
            assert_eq!(answer.error(), (408, "408 Request Timeout".to_owned()));
        } else {
            assert_eq!(answer.oauth_error(), (408, "invalid_request".to_owned()));
        }
        assert_eq!(answer.header("connection"), Some("close"), "{head}");
        assert!(
            raw.closed_within(MARGIN).await.is_some(),
            "the connection stayed open after the 408: {head}"
        );
    }
    // A body that arrives in time, slowly, is read.
    let mut raw = Raw::connect(&app).await;
    let body = br#"{"name":"slow but on time"}"#;
    raw.send(
        format!(
            "{}content-length: {}\r\n\r\n",
            requests[0].as_str(),
            body.len()
        )
        .as_bytes(),
    )
    .await;
    for part in body.chunks(body.len() / 3 + 1) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        raw.send(part).await;
    }
    assert_eq!(raw.response().await.status, 200);
}

#[tokio::test]
async fn past_max_connections_a_new_connection_waits_until_one_closes() {
    let app = spawn_app_with(|config| {
        // One slot is the test client's, kept alive in its pool since the admin's exchange.
        config.max_connections = 3;
        config.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let first = Raw::connect(&app).await;
    let mut second = Raw::connect(&app).await;
    second
        .send(b"GET /oauth/info HTTP/1.1\r\nhost: patd\r\n\r\n")
        .await;
    assert_eq!(second.response().await.status, 200);
    // Every slot is taken: the third connection is made by the kernel but not served.
    let mut third = Raw::connect(&app).await;
    third
        .send(b"GET /oauth/info HTTP/1.1\r\nhost: patd\r\n\r\n")
        .await;
    let waited = tokio::time::timeout(Duration::from_millis(700), third.read_response()).await;
    assert!(waited.is_err(), "a connection was served past the cap");
    drop(first);
    assert_eq!(third.response_within(MARGIN).await.status, 200);
}

/// The hard open-file limit of this process, which a child inherits.
fn hard_open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(4).unwrap().parse().unwrap()
}

/// The soft open-file limit of process `pid`.
fn soft_open_file_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// Opens `count` connections to `server` that never send a byte.
async fn idle_connections(server: &ServerProcess, count: usize) -> Vec<TcpStream> {
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    idle
}

/// Eight real requests on fresh connections, each an exchange (the database is used) or a read
/// of `/oauth/info`; how many were answered 200 within `within` each.
async fn real_requests_answered(server: &ServerProcess, within: Duration) -> usize {
    let (id, secret) = server.bootstrap().unwrap();
    let mut answered = 0;
    for round in 0..8 {
        let client = reqwest::Client::builder()
            .timeout(within)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let response = if round % 2 == 0 {
            client.get(server.url("/oauth/info")).send().await
        } else {
            client
                .post(server.url("/oauth/token"))
                .form(&credentials(&id, &secret))
                .send()
                .await
        };
        if response.is_ok_and(|response| response.status() == 200) {
            answered += 1;
        }
    }
    answered
}

/// The room this test process needs for its own end of the connections.
fn raise_own_open_file_limit() {
    rlimit::increase_nofile_limit(u64::MAX).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_connections_under_a_soft_limit_of_1024_leave_real_requests_answered() {
    raise_own_open_file_limit();
    let hard = hard_open_file_limit();
    assert!(
        hard >= 4096,
        "the hard open-file limit is {hard}: this test needs room above 1,024 to raise into"
    );
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(dir.path()).await;
    let nofile = format!("--nofile=1024:{hard}");
    let server = ServerProcess::start_under(
        &["prlimit", &nofile, "--"],
        &database,
        // Idle connections stay for the whole test: only the raised limit lets them all in.
        &["--header-read-timeout", "2m"],
        "info",
    );
    assert_eq!(soft_open_file_limit(server.child.id()), hard);
    let idle = idle_connections(&server, 1100).await;
    assert_eq!(
        real_requests_answered(&server, Duration::from_secs(3)).await,
        8
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_room_to_raise_the_connection_cap_keeps_descriptors_free_and_idle_ones_are_reaped()
{
    raise_own_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database_url(dir.path()).await;
    let server = ServerProcess::start_under(
        &["prlimit", "--nofile=1024:1024", "--"],
        &database,
        &["--header-read-timeout", "2s"],
        "info",
    );
    assert!(
        server
            .stderr
            .lock()
            .unwrap()
            .contains("max_connections=896"),
        "the cap is not the limit less 128"
    );
    // 896 are served (and closed after 2 s of silence); the rest wait in the backlog, then
    // the real requests behind them.
    let idle = idle_connections(&server, 1100).await;
    assert_eq!(
        real_requests_answered(&server, Duration::from_secs(10)).await,
        8
    );
    drop(idle);
    let stderr = server.stderr.lock().unwrap().clone();
    assert!(
        !stderr.contains("accepting a connection failed"),
        "descriptors ran out: {stderr}"
    );
}
