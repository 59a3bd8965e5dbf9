//! The web page over HTTP (EXTENSIONS E12): sign-in links used once, sessions that end, CSRF
//! refusals, the rights of the admin pages, the audit trail of the page's actions, and sessions
//! shared by two nodes. A real browser drives the same pages in `ui-checks/`.

use crate::helpers::*;
use patd_server::admin;
use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// A browser without a browser: it keeps cookies and does not follow redirects.
struct Browser {
    client: Client,
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            client: Client::builder().redirect(Policy::none()).build().unwrap(),
            base: base.to_owned(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn get(&mut self, path: &str) -> Response {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let response = self
            .client
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// The page at `path` and its CSRF token.
    async fn page(&mut self, path: &str) -> (String, String) {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        let html = response.text().await.unwrap();
        let csrf = field(&html, "csrf").unwrap_or_default();
        (html, csrf)
    }

    /// Signs in by a fresh link for `who`.
    async fn sign_in(&mut self, app: &TestApp, who: &str) {
        let link = admin::sign_in_link(app.store.as_ref(), who, None, &self.base)
            .await
            .unwrap();
        let response = self.use_link(&link).await;
        assert_eq!(response.status(), 303, "the link signs in");
        assert_eq!(location(&response), "/ui/");
    }

    /// Opens a link's page and presses its button.
    async fn use_link(&mut self, link: &str) -> Response {
        let response = self.get(link).await;
        if response.status() != 200 {
            return response;
        }
        let html = response.text().await.unwrap();
        let token = field(&html, "token").unwrap();
        let csrf = field(&html, "csrf").unwrap();
        self.post("/ui/sign-in/link", &[("token", &token), ("csrf", &csrf)])
            .await
    }
}

/// The value of the form field `name` in `html`.
fn field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// The text of the element with id `id` in `html`.
fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = html.find(&marker).unwrap() + marker.len();
    let end = html[start..].find('<').unwrap() + start;
    html[start..end].to_owned()
}

fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn events_of(app: &TestApp, kind: &str) -> Vec<Value> {
    let url = app.url(&format!(
        "/patd/v1/audit-events?filters={}",
        urlencode(&format!("type eq \"{kind}\""))
    ));
    let response = app
        .client
        .get(url)
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("q", text)]).unwrap()[2..].to_owned()
}

/// The PAT id in the row named `name` of the my-tokens table.
fn row_id(html: &str, name: &str) -> Option<String> {
    html.split("<tr data-id=\"").skip(1).find_map(|row| {
        let (id, rest) = row.split_once('"')?;
        rest.split("</tr>")
            .next()?
            .contains(&format!(">{name}</th>"))
            .then(|| id.to_owned())
    })
}

#[tokio::test]
async fn a_link_signs_in_once_and_the_session_manages_tokens_as_the_api_does() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base);
    let link = admin::sign_in_link(app.store.as_ref(), "admin", None, &app.base)
        .await
        .unwrap();
    assert!(link.starts_with(&format!("{}/ui/sign-in/link?token=", app.base)));
    // Opening the link uses nothing up: a mail scanner may follow it.
    assert_eq!(browser.get(&link).await.status(), 200);
    let response = browser.use_link(&link).await;
    assert_eq!(response.status(), 303);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .find(|value| value.starts_with("patd_session="))
        .unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Secure"), "http: no Secure: {cookie}");
    // Used once: a second browser gets the refusal page.
    let mut other = Browser::new(&app.base);
    let reused = other.use_link(&link).await;
    assert_eq!(reused.status(), 400);
    assert!(reused
        .text()
        .await
        .unwrap()
        .contains("Sign-in link not valid"));

    let (html, csrf) = browser.page("/ui/").await;
    assert!(html.contains("<h1>Your tokens</h1>") && html.contains(">bootstrap</th>"));
    // Create: the POST's own answer shows the secret once.
    let response = browser
        .post(
            "/ui/tokens",
            &[
                ("csrf", &csrf),
                ("name", "ci deploy"),
                ("scope", "idn:my-personal-access-tokens:read"),
                ("expires", "7"),
                ("validity", "900"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.unwrap();
    let (id, secret) = (text_of(&html, "client-id"), text_of(&html, "client-secret"));
    assert!(secret.starts_with("patd_"), "{html}");
    assert_eq!(app.exchange_status(&id, &secret).await, 200);
    let (html, _) = browser.page("/ui/").await;
    assert_eq!(row_id(&html, "ci deploy").as_deref(), Some(id.as_str()));
    assert!(html.contains("Expires soon"), "a 7-day token is badged");

    // The audit trail says who, and that it came through the page.
    let created = events_of(&app, "pat.created").await;
    let event = created
        .iter()
        .find(|event| event["target"]["id"] == id.as_str())
        .unwrap();
    assert_eq!(event["actor"]["type"], "IDENTITY");
    assert_eq!(event["actor"]["name"], "admin");
    assert_eq!(event["details"]["via"], "web");
    assert_eq!(events_of(&app, "session.created").await.len(), 1);

    // Rename.
    let (_, csrf) = browser.page(&format!("/ui/tokens/{id}/rename")).await;
    let response = browser
        .post(
            &format!("/ui/tokens/{id}/rename"),
            &[("csrf", &csrf), ("name", "ci release")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let (html, _) = browser.page("/ui/").await;
    assert_eq!(row_id(&html, "ci release").as_deref(), Some(id.as_str()));
    // A taken name: the form again, in the API's words.
    let response = browser
        .post(
            &format!("/ui/tokens/{id}/rename"),
            &[("csrf", &csrf), ("name", "bootstrap")],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("class=\"error\""));

    // Rotate: the new secret works, the old one no longer.
    let (_, csrf) = browser.page(&format!("/ui/tokens/{id}/rotate")).await;
    let response = browser
        .post(
            &format!("/ui/tokens/{id}/rotate"),
            &[("csrf", &csrf), ("grace", "0")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    let rotated = text_of(&html, "client-secret");
    assert_ne!(rotated, secret);
    assert_eq!(app.exchange_status(&id, &rotated).await, 200);
    assert_eq!(app.exchange_status(&id, &secret).await, 401);

    // Delete.
    let (_, csrf) = browser.page(&format!("/ui/tokens/{id}/delete")).await;
    let response = browser
        .post(&format!("/ui/tokens/{id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(app.exchange_status(&id, &rotated).await, 401);
    let deleted = events_of(&app, "pat.deleted").await;
    assert!(deleted
        .iter()
        .any(|event| event["target"]["id"] == id.as_str() && event["details"]["via"] == "web"));

    // Sign out: the old cookie opens nothing.
    let old = browser.cookie_header();
    let (_, csrf) = browser.page("/ui/sign-out").await;
    let response = browser.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/ui/sign-in");
    let replay = browser
        .client
        .get(app.url("/ui/"))
        .header("cookie", old)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
    assert_eq!(location(&replay), "/ui/sign-in");
    assert_eq!(events_of(&app, "session.ended").await.len(), 1);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_changes_nothing() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base);
    browser.sign_in(&app, "admin").await;
    let mut other = Browser::new(&app.base);
    other.sign_in(&app, "admin").await;
    let (_, other_csrf) = other.page("/ui/").await;
    let wrong = "0".repeat(64);
    for form in [
        vec![("name", "sneaky")],
        vec![("name", "sneaky"), ("csrf", wrong.as_str())],
        // Another session's token is no better.
        vec![("name", "sneaky"), ("csrf", other_csrf.as_str())],
    ] {
        let response = browser.post("/ui/tokens", &form).await;
        assert_eq!(response.status(), 403);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("<h1>Not allowed</h1>"));
    }
    let response = browser
        .post(&format!("/ui/tokens/{}/delete", app.bootstrap.id), &[])
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        app.exchange_status(&app.bootstrap.id, &app.bootstrap.secret)
            .await,
        200,
        "the PAT is still there"
    );
    let listed = app.list_ok(&app.admin_token, AWARE, "").await;
    assert_eq!(listed.len(), 1, "nothing was created");
    // Sign-in's own form: without the cookie it set, the link is not used up.
    let link = admin::sign_in_link(app.store.as_ref(), "admin", None, &app.base)
        .await
        .unwrap();
    let token = link.split("token=").nth(1).unwrap();
    let mut stranger = Browser::new(&app.base);
    let response = stranger
        .post("/ui/sign-in/link", &[("token", token), ("csrf", "x")])
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(stranger.use_link(&link).await.status(), 303, "still usable");
}

#[tokio::test]
async fn sessions_end_when_idle_and_links_when_expired() {
    let app =
        spawn_app_with(|config| config.session_policy.idle = time::Duration::seconds(1)).await;
    let mut browser = Browser::new(&app.base);
    browser.sign_in(&app, "admin").await;
    assert_eq!(browser.get("/ui/").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let response = browser.get("/ui/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/ui/sign-in");
    assert!(
        !browser.cookies.contains_key("patd_session"),
        "the cookie is cleared"
    );

    let link = admin::sign_in_link(
        app.store.as_ref(),
        "admin",
        Some(Duration::from_secs(1)),
        &app.base,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(browser.use_link(&link).await.status(), 400);
    for valid in [Duration::ZERO, Duration::from_secs(25 * 3600)] {
        assert!(
            admin::sign_in_link(app.store.as_ref(), "admin", Some(valid), &app.base)
                .await
                .is_err(),
            "{valid:?}"
        );
    }
}

#[tokio::test]
async fn a_user_sees_only_their_own_pages() {
    let app = spawn_app().await;
    let alice = app.identity("alice", "USER", &[]).await;
    let mut browser = Browser::new(&app.base);
    browser.sign_in(&app, "alice").await;
    let (html, _) = browser.page("/ui/").await;
    assert!(html.contains("You have no tokens yet."));
    assert!(!html.contains("/ui/admin/"), "no admin links for a USER");
    for page in ["/ui/admin/tokens", "/ui/admin/audit", "/ui/admin/webhooks"] {
        let response = browser.get(page).await;
        assert_eq!(response.status(), 403, "{page}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("<h1>Not allowed</h1>"));
    }
    // Another identity's PAT is as unknown as a missing one.
    let response = browser
        .get(&format!("/ui/tokens/{}/rename", app.bootstrap.id))
        .await;
    assert_eq!(response.status(), 404);
    // The scopes offered are the rights alice holds.
    let (html, _) = browser.page("/ui/tokens/new").await;
    assert!(html.contains("idn:my-personal-access-tokens:manage"));
    assert!(!html.contains("idn:all-personal-access-tokens:manage"));
    assert_eq!(alice.levels, vec!["USER".to_owned()]);

    let mut admin_browser = Browser::new(&app.base);
    admin_browser.sign_in(&app, "admin").await;
    let (html, _) = admin_browser.page("/ui/admin/tokens").await;
    assert!(html.contains("id=\"all-tokens\"") && html.contains(">bootstrap"));
    let (html, _) = admin_browser
        .page("/ui/admin/tokens?filters=name+sw+%22boot%22&sorters=-created")
        .await;
    assert!(html.contains(">bootstrap"));
    let response = admin_browser
        .get("/ui/admin/tokens?filters=name+%3D%3D+oops")
        .await;
    assert_eq!(response.status(), 400, "a bad filter is told, not a crash");
    let (html, _) = admin_browser.page("/ui/admin/audit").await;
    assert!(html.contains("session.created"));
    let (_, csrf) = admin_browser.page("/ui/admin/webhooks").await;
    let response = admin_browser
        .post(
            "/ui/admin/webhooks",
            &[
                ("csrf", &csrf),
                ("url", "https://hooks.example.com/patd"),
                ("event", "pat.deleted"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("id=\"webhook-secret\""));
    let (html, _) = admin_browser.page("/ui/admin/webhooks").await;
    assert!(html.contains("https://hooks.example.com/patd"));
}

#[tokio::test]
async fn every_page_sends_a_strict_policy_and_works_without_a_session() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base);
    for page in ["/ui/", "/ui/tokens/new", "/ui/admin/tokens"] {
        let response = browser.get(page).await;
        assert_eq!(response.status(), 303, "{page}: anonymous goes to sign-in");
        assert_eq!(location(&response), "/ui/sign-in");
    }
    let response = browser.get("/ui/sign-in").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let css = browser.get("/ui/assets/app.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(browser.get("/ui/assets/nope.js").await.status(), 404);
    assert_eq!(browser.get("/ui/no/such/page").await.status(), 404);
    // A cookie that is no session's sends the browser to sign in, and is cleared.
    browser
        .cookies
        .insert("patd_session".to_owned(), "f".repeat(64));
    let response = browser.get("/ui/").await;
    assert_eq!(response.status(), 303);
    assert!(!browser.cookies.contains_key("patd_session"));
}

#[tokio::test]
async fn two_nodes_share_sessions_and_a_link_raced_on_both_opens_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    // Started at the same moment on PostgreSQL, as a deployment starts; a SQLite file's
    // migrations take one process at a time, so there the second node starts after the first.
    let (node_a, node_b) = if on_postgres() {
        tokio::join!(
            PreparedNode::new(&url, |_| {}, |store| store),
            PreparedNode::new(&url, |_| {}, |store| store)
        )
    } else {
        let first = PreparedNode::new(&url, |_| {}, |store| store).await;
        (first, PreparedNode::new(&url, |_| {}, |store| store).await)
    };
    let (a, b) = (node_a.base.clone(), node_b.base.clone());
    let store = node_a.store.clone();
    admin::bootstrap(store.as_ref(), 10).await.unwrap().unwrap();
    node_a.serve(std::future::pending());
    node_b.serve(std::future::pending());
    for round in 0..5 {
        let link = admin::sign_in_link(store.as_ref(), "admin", None, &a)
            .await
            .unwrap();
        let token = link.split("token=").nth(1).unwrap().to_owned();
        let (mut on_a, mut on_b) = (Browser::new(&a), Browser::new(&b));
        // Each opens the page on its own node (the form's cookie), then both press at once.
        let csrf_a = field(&on_a.get(&link).await.text().await.unwrap(), "csrf").unwrap();
        let link_b = link.replace(&a, &b);
        let csrf_b = field(&on_b.get(&link_b).await.text().await.unwrap(), "csrf").unwrap();
        let form_a = [("token", token.as_str()), ("csrf", csrf_a.as_str())];
        let form_b = [("token", token.as_str()), ("csrf", csrf_b.as_str())];
        let (answer_a, answer_b) = tokio::join!(
            on_a.post("/ui/sign-in/link", &form_a),
            on_b.post("/ui/sign-in/link", &form_b)
        );
        let mut statuses = [answer_a.status().as_u16(), answer_b.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [303, 400], "round {round}: one session per link");
        // The winner's session works on the other node too.
        let (winner, other_base) = if answer_a.status() == 303 {
            (on_a, b.clone())
        } else {
            (on_b, a.clone())
        };
        let response = winner
            .client
            .get(format!("{other_base}/ui/"))
            .header("cookie", winner.cookie_header())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "round {round}: shared sessions");
    }
}

#[tokio::test]
async fn odd_requests_get_pages_not_faults() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app.base);
    // A field twice, an address that is not UTF-8: 400 pages, not 500s.
    let twice = browser.get("/ui/sign-in/link?token=a&token=b").await;
    assert_eq!(twice.status(), 400);
    assert_eq!(browser.get("/ui/assets/%FF").await.status(), 400);
    // A method a page does not take: a page too, with the page's headers.
    let put = browser
        .client
        .put(app.url("/ui/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    assert!(put.headers().contains_key("content-security-policy"));
    assert!(put.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // A form another site posts is refused, whatever token it carries.
    browser.sign_in(&app, "admin").await;
    let (_, csrf) = browser.page("/ui/tokens/new").await;
    let response = browser
        .client
        .post(app.url("/ui/tokens"))
        .header("cookie", browser.cookie_header())
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str()), ("name", "from elsewhere")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(app.list_ok(&app.admin_token, AWARE, "").await.len(), 1);

    // Signing in again ends the session the browser had.
    let old = browser.cookie_header();
    browser.sign_in(&app, "admin").await;
    let replay = browser
        .client
        .get(app.url("/ui/"))
        .header("cookie", old)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "the replaced session is over");
    assert_eq!(browser.get("/ui/").await.status(), 200);
}

#[tokio::test]
async fn a_person_and_a_sign_in_address_each_have_a_request_budget() {
    use patd_server::ratelimit::Limit;
    let app = spawn_app_with(|config| {
        config.rate_limit = Limit::PerWindow {
            requests: 3,
            seconds: 60,
        }
    })
    .await;
    let mut browser = Browser::new(&app.base);
    browser.sign_in(&app, "admin").await;
    let statuses = [
        browser.get("/ui/").await.status().as_u16(),
        browser.get("/ui/").await.status().as_u16(),
        browser.get("/ui/").await.status().as_u16(),
        browser.get("/ui/").await.status().as_u16(),
    ];
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Sign-in attempts from one address: the fourth is refused before any link is looked at.
    let mut stranger = Browser::new(&app.base);
    let mut last = 0;
    for _ in 0..3 {
        last = stranger
            .post("/ui/sign-in/link", &[("token", "x"), ("csrf", "y")])
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "the sign-in above spent one of three");
}
