//! Many nodes on one PostgreSQL: shared keys, and every node honouring another's writes within a
//! second. Skipped, saying so, without `PATD_TEST_POSTGRES_URL`.

use crate::helpers::*;
use patd_server::ratelimit::Limit;
use patd_server::ServerConfig;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A second node on the same database as `app`.
async fn second_node(
    database_url: &str,
    adjust: impl FnOnce(&mut ServerConfig),
) -> (String, reqwest::Client) {
    let node = PreparedNode::new(database_url, adjust, |store| store).await;
    let base = node.base.clone();
    node.serve(std::future::pending());
    (base, reqwest::Client::new())
}

fn skip() -> Option<String> {
    match postgres_url() {
        Some(url) => Some(url),
        None => {
            eprintln!(
                "skipped: PATD_TEST_POSTGRES_URL is not set, so the many-node tests did not run"
            );
            None
        }
    }
}

async fn exchange(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_delete_on_one_node_is_honoured_by_another_within_a_second() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let a = spawn_app_on(&url).await;
    // The same iss on both nodes, as behind one load balancer.
    let public_url = a.base.clone();
    let (b, client) = second_node(&url, |config| config.public_url = public_url).await;

    let created = a
        .create_ok(&a.admin_token, CLASSIC, json!({"name": "shared"}))
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    // B mints a token and caches the PAT.
    let body: Value = exchange(&client, &b, id, secret)
        .await
        .json()
        .await
        .unwrap();
    let token_from_b = body["access_token"].as_str().unwrap().to_owned();
    let token_from_a = a.exchange(id, secret).await;
    for token in [&token_from_a, &token_from_b] {
        let response = client
            .get(format!("{b}{CLASSIC}?owner-id=me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    assert_eq!(a.delete(&a.admin_token, CLASSIC, id).await.status(), 204);
    let deleted_at = Instant::now();
    loop {
        let exchange_refused = exchange(&client, &b, id, secret).await.status() == 401;
        let mut tokens_refused = true;
        for token in [&token_from_a, &token_from_b] {
            let response = client
                .get(format!("{b}{CLASSIC}?owner-id=me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            tokens_refused &= response.status() == 401;
        }
        if exchange_refused && tokens_refused {
            break;
        }
        assert!(
            deleted_at.elapsed() < Duration::from_secs(1),
            "node B still honours the deleted PAT"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "node B refused the deleted PAT after {:?}",
        deleted_at.elapsed()
    );
}

#[tokio::test]
async fn a_patch_on_one_node_is_seen_by_another() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let a = spawn_app_on(&url).await;
    let (b, client) = second_node(&url, |_| {}).await;
    let created = a
        .create_ok(&a.admin_token, CLASSIC, json!({"name": "scoped"}))
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    assert_eq!(exchange(&client, &b, id, secret).await.status(), 200);
    let patch = json!([{"op": "replace", "path": "/scope", "value": ["sp:scopes:default"]}]);
    assert_eq!(
        a.patch(&a.admin_token, CLASSIC, id, patch).await.status(),
        200
    );
    let started = Instant::now();
    loop {
        let body: Value = exchange(&client, &b, id, secret)
            .await
            .json()
            .await
            .unwrap();
        if body["scope"] == "sp:scopes:default" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node B mints with the old scope"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn nodes_share_keys_and_a_rotation_is_seen_by_all() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let a = spawn_app_on(&url).await;
    let public_url = a.base.clone();
    let (b, client) = second_node(&url, |config| config.public_url = public_url).await;
    let jwks = |base: String| {
        let client = client.clone();
        async move { jwks_of(&client, &base).await }
    };
    assert_eq!(
        jwks(a.base.clone()).await,
        jwks(b.clone()).await,
        "one key, generated once"
    );
    // A token from A works on B.
    let response = client
        .get(format!("{b}{CLASSIC}"))
        .bearer_auth(&a.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let store = patd_store::connect(&url).await.unwrap();
    let kid = patd_server::keys::rotate(store.as_ref(), None)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let (on_a, on_b) = (jwks(a.base.clone()).await, jwks(b.clone()).await);
        let signs_with = |set: &Value| set["keys"][0]["kid"] == kid.as_str();
        if signs_with(&on_a) && signs_with(&on_b) {
            assert_eq!(
                on_a["keys"].as_array().unwrap().len(),
                2,
                "the old key still verifies"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the rotation was not seen by both nodes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New tokens carry the new kid and verify on both nodes; old ones still verify.
    let fresh = a.exchange(&a.bootstrap.id, &a.bootstrap.secret).await;
    for base in [a.base.clone(), b.clone()] {
        for token in [&fresh, &a.admin_token] {
            let response = client
                .get(format!("{base}{CLASSIC}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{base}");
        }
    }
}

#[tokio::test]
async fn a_limit_shared_through_redis_holds_across_two_nodes() {
    let Some(redis_url) = std::env::var("PATD_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("skipped: PATD_TEST_REDIS_URL is not set, so the shared rate limit did not run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path()).await;
    let shared = |config: &mut ServerConfig| {
        config.rate_limit = Limit::PerWindow {
            requests: 6,
            seconds: 60,
        };
        config.rate_limit_redis = Some(redis_url.clone());
    };
    let a = spawn_app_full_on(&url, shared).await;
    let public_url = a.base.clone();
    let (b, client) = second_node(&url, |config| {
        shared(config);
        config.public_url = public_url;
    })
    .await;
    // Six requests in all, alternating nodes, use up the budget; the seventh is refused by
    // whichever node gets it.
    let mut statuses = Vec::new();
    for n in 0..8 {
        let base = if n % 2 == 0 {
            a.base.clone()
        } else {
            b.clone()
        };
        let response = client
            .get(format!("{base}{CLASSIC}"))
            .bearer_auth(&a.admin_token)
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            assert!(
                response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 429, 429],
        "one budget for both nodes"
    );
}

pub async fn list_status(client: &reqwest::Client, base: &str, token: &str) -> u16 {
    client
        .get(format!("{base}{CLASSIC}?owner-id=me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn jwks_of(client: &reqwest::Client, base: &str) -> Value {
    get_json(client, &format!("{base}/.well-known/jwks.json")).await
}

async fn token_from(client: &reqwest::Client, base: &str, id: &str, secret: &str) -> String {
    let response = exchange(client, base, id, secret).await;
    assert_eq!(response.status(), 200, "exchange on {base}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_nodes_prepared_together_accept_each_others_tokens_from_the_first_request() {
    let Some(base_url) = skip() else { return };
    let client = reqwest::Client::new();
    // The race was lost about one start in five: several rounds, each on a fresh schema.
    for round in 0..6 {
        let url = fresh_postgres_schema(&base_url).await;
        let (node_a, node_b) = tokio::join!(
            PreparedNode::new(&url, |_| {}, |store| store),
            PreparedNode::new(&url, |_| {}, |store| store)
        );
        let (a, b) = (node_a.base.clone(), node_b.base.clone());
        let store = node_a.store.clone();
        let boot = patd_server::admin::bootstrap(store.as_ref(), 10)
            .await
            .unwrap()
            .unwrap();
        node_a.serve(std::future::pending());
        node_b.serve(std::future::pending());
        let (token_a, token_b) = tokio::join!(
            token_from(&client, &a, &boot.id, &boot.secret),
            token_from(&client, &b, &boot.id, &boot.secret)
        );
        let (a_on_b, b_on_a, a_on_a, b_on_b) = tokio::join!(
            list_status(&client, &b, &token_a),
            list_status(&client, &a, &token_b),
            list_status(&client, &a, &token_a),
            list_status(&client, &b, &token_b)
        );
        assert_eq!(
            (a_on_b, b_on_a, a_on_a, b_on_b),
            (200, 200, 200, 200),
            "round {round}: tokens must work on both nodes at once"
        );
        assert_eq!(
            store.signing_keys().await.unwrap().len(),
            1,
            "round {round}: the first key is created once"
        );
        assert_eq!(
            jwks_of(&client, &a).await,
            jwks_of(&client, &b).await,
            "round {round}"
        );
    }
}

#[tokio::test]
async fn two_patd_processes_started_together_accept_each_others_tokens() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let mut a = crate::cli::ServerProcess::spawn(&url, &[], "info");
    let mut b = crate::cli::ServerProcess::spawn(&url, &[], "info");
    a.wait_listening();
    b.wait_listening();
    let printed: Vec<_> = [a.bootstrap(), b.bootstrap()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(printed.len(), 1, "one node bootstraps the database");
    let (id, secret) = &printed[0];
    let client = reqwest::Client::new();
    let (token_a, token_b) = tokio::join!(
        token_from(&client, &a.base, id, secret),
        token_from(&client, &b.base, id, secret)
    );
    let (a_on_b, b_on_a) = tokio::join!(
        list_status(&client, &b.base, &token_a),
        list_status(&client, &a.base, &token_b)
    );
    assert_eq!((a_on_b, b_on_a), (200, 200));
    assert_eq!(
        jwks_of(&client, &a.base).await,
        jwks_of(&client, &b.base).await
    );
    let store = patd_store::connect(&url).await.unwrap();
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
    // Another issuer is still refused: a token of the same deployment's key with a foreign iss.
    let keys = store.signing_keys().await.unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = jwks_of(&client, &a.base).await["keys"][0]["kid"]
        .as_str()
        .map(str::to_owned);
    let mut claims: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token_a.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    claims["iss"] = json!("http://elsewhere.test");
    let key = jsonwebtoken::EncodingKey::from_ed_pem(keys[0].private_key.as_bytes()).unwrap();
    let foreign = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert_eq!(list_status(&client, &b.base, &foreign).await, 401);
    a.stop();
    b.stop();
}

#[tokio::test]
async fn a_last_used_written_on_one_node_shows_in_another_nodes_list_within_a_second() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let a = spawn_app_on(&url).await;
    let public_url = a.base.clone();
    let (b, client) = second_node(&url, |config| config.public_url = public_url).await;
    let created = a
        .create_ok(&a.admin_token, CLASSIC, json!({"name": "seen"}))
        .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    let listed = |base: String| {
        let (client, token) = (client.clone(), a.admin_token.clone());
        async move {
            let body: Vec<Value> = client
                .get(format!("{base}{CLASSIC}?filters=name%20eq%20%22seen%22"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body[0]["lastUsed"].clone()
        }
    };
    // B answers (and keeps) a list before the PAT is used, once it has heard of the create.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(listed(b.clone()).await, Value::Null);
    assert_eq!(exchange(&client, &a.base, id, secret).await.status(), 200);
    let used_at = Instant::now();
    while listed(b.clone()).await.is_null() {
        assert!(
            used_at.elapsed() < Duration::from_secs(1),
            "node B still lists the PAT as never used"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_secret_rotated_on_one_node_is_refused_on_another_once_its_grace_ends() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let a = spawn_app_on(&url).await;
    let public_url = a.base.clone();
    let (b, client) = second_node(&url, |config| config.public_url = public_url).await;
    let created = a
        .create_ok(&a.admin_token, CLASSIC, json!({"name": "rotated"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut old = created["secret"].as_str().unwrap().to_owned();
    let list_on_b = |token: String| {
        let (client, url) = (client.clone(), format!("{b}{CLASSIC}?owner-id=me"));
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for (grace, revoke) in [(0_u64, false), (1, true)] {
        // B has the PAT cached, and a token minted from the current secret.
        let body: Value = exchange(&client, &b, &id, &old).await.json().await.unwrap();
        let earlier = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(list_on_b(earlier.clone()).await, 200);
        let rotated: Value = a
            .client
            .post(a.url(&format!("/patd/v1/personal-access-tokens/{id}/rotate")))
            .bearer_auth(&a.admin_token)
            .json(&json!({"gracePeriodSeconds": grace, "revokeIssuedTokens": revoke}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rotated_at = Instant::now();
        let new = rotated["secret"].as_str().unwrap().to_owned();
        if grace > 0 {
            assert_eq!(
                exchange(&client, &b, &id, &old).await.status(),
                200,
                "the old secret failed on B during its grace"
            );
        }
        let grace_ends = Duration::from_secs(grace);
        loop {
            let refused = exchange(&client, &b, &id, &old).await.status() == 401;
            let new_works = exchange(&client, &b, &id, &new).await.status() == 200;
            let token_refused = !revoke || list_on_b(earlier.clone()).await == 401;
            if refused && new_works && token_refused {
                break;
            }
            assert!(
                rotated_at.elapsed() < grace_ends + Duration::from_secs(1),
                "node B still honours the rotated secret or a token revoked with it"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "grace {grace} s: node B refused the old secret after {:?}",
            rotated_at.elapsed()
        );
        if !revoke {
            assert_eq!(
                list_on_b(earlier).await,
                200,
                "a token was ended without revokeIssuedTokens"
            );
        }
        old = new;
    }
}

/// Both nodes find each PAT's first use of the day (and its new address) at once, each from its
/// own cache; the database settles it: one `lastUsed` write and one `pat.used` event a PAT.
#[tokio::test]
async fn a_first_use_found_by_two_nodes_at_once_is_one_event() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let a = spawn_app_on(&url).await;
    let public_url = a.base.clone();
    let (b, client) = second_node(&url, |config| config.public_url = public_url).await;
    let mut pats = Vec::new();
    // As many as the owner may have beside its bootstrap PAT.
    for index in 0..9 {
        let created = a
            .create_ok(
                &a.admin_token,
                CLASSIC,
                json!({"name": format!("twice {index}")}),
            )
            .await;
        pats.push((
            created["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        ));
    }
    // B reads each PAT before either node has used it, so both caches say "never used".
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (id, _) in &pats {
        assert_eq!(exchange(&client, &b, id, "patd_wrong").await.status(), 401);
    }
    for (id, secret) in &pats {
        let (on_a, on_b) = tokio::join!(
            exchange(&client, &a.base, id, secret),
            exchange(&client, &b, id, secret)
        );
        assert_eq!((on_a.status().as_u16(), on_b.status().as_u16()), (200, 200));
    }
    // Lists wait for each node's own queued writes.
    assert_eq!(list_status(&client, &a.base, &a.admin_token).await, 200);
    assert_eq!(list_status(&client, &b, &a.admin_token).await, 200);
    for (id, _) in &pats {
        let filter = format!("target.id eq \"{id}\" and type eq \"pat.used\"");
        let events: Vec<Value> = client
            .get(format!("{}/patd/v1/audit-events", a.base))
            .bearer_auth(&a.admin_token)
            .query(&[("filters", filter.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "{id}: {events:#?}");
        assert_eq!(events[0]["details"]["reason"], "newSourceIp");
    }
}

/// Creates sent to two nodes at once share the owner's limit (each node's group commit locks the
/// owners' rows, in id order), every answer matches what is stored, and a node's cached list of
/// an owner hears of the creates another node made.
#[tokio::test]
async fn creates_on_two_nodes_at_once_keep_the_limit_and_both_nodes_list_them() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let a = spawn_app_on(&url).await;
    let public_url = a.base.clone();
    let (b, client) = second_node(&url, |config| config.public_url = public_url).await;
    let user = a.actor("two-nodes", "USER", &[], &["sp:scopes:all"]).await;
    let other = a
        .actor("two-nodes-b", "USER", &[], &["sp:scopes:all"])
        .await;
    let listed = |base: String, token: String| {
        let client = client.clone();
        async move {
            let body: Vec<Value> = client
                .get(format!("{base}{CLASSIC}?owner-id=me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body.len()
        }
    };
    let create_all = |sends: Vec<(String, String, String)>| {
        let client = client.clone();
        async move {
            let sends = sends.into_iter().map(|(base, token, name)| {
                client
                    .post(format!("{base}{CLASSIC}"))
                    .bearer_auth(token)
                    .json(&json!({ "name": name }))
                    .send()
            });
            futures::future::join_all(sends)
                .await
                .into_iter()
                .map(|response| response.unwrap().status().as_u16())
                .collect::<Vec<u16>>()
        }
    };
    // Twenty creates for one owner, ten on each node, in one burst.
    let statuses = create_all(
        (0..20)
            .map(|n| {
                let base = if n % 2 == 0 { &a.base } else { &b };
                (base.clone(), user.token.clone(), format!("t{n}"))
            })
            .collect(),
    )
    .await;
    let created = statuses.iter().filter(|status| **status == 200).count();
    assert_eq!(created, 9, "the login PAT and nine make ten: {statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 400].contains(s)),
        "{statuses:?}"
    );
    // B keeps the other owner's list of one PAT; then A alone creates four more of its PATs.
    assert_eq!(listed(b.clone(), other.token.clone()).await, 1);
    let statuses = create_all(
        (0..4)
            .map(|n| (a.base.clone(), other.token.clone(), format!("o{n}")))
            .collect(),
    )
    .await;
    assert_eq!(statuses, [200; 4]);
    let since = Instant::now();
    for (base, token, count) in [
        (&b, &other.token, 5),
        (&a.base, &user.token, 10),
        (&b, &user.token, 10),
    ] {
        while listed(base.clone(), token.clone()).await != count {
            assert!(
                since.elapsed() < Duration::from_secs(1),
                "a node still lists an owner's PATs as before the creates"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Every PAT that creates arriving together store is announced to the other nodes, whether it
/// was committed in a batch or alone: 64 creates at once through one store, and another store's
/// change feed names each of them.
#[tokio::test]
async fn every_pat_of_creates_committed_together_is_announced_to_other_nodes() {
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let app = spawn_app_on(&url).await;
    let owner = app.identity("announced", "USER", &[]).await;
    let writer: patd_store::DynStore = patd_store::connect(&url).await.unwrap();
    let other: patd_store::DynStore = patd_store::connect(&url).await.unwrap();
    let mut feed = other.subscribe().await.unwrap().unwrap();
    let stored: Vec<String> = futures::future::join_all(
        (0..64).map(|n| seed_pat_now(&writer, &owner.id, format!("announced {n}"))),
    )
    .await;
    let mut unheard: std::collections::HashSet<String> = stored.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !unheard.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, feed.recv()).await {
            Ok(Some(patd_store::StoreEvent::PatChanged(id))) => {
                unheard.remove(id.as_str());
            }
            Ok(Some(_)) => {}
            _ => panic!("{} stored PATs were never announced", unheard.len()),
        }
    }
}

async fn seed_pat_now(store: &patd_store::DynStore, owner: &str, name: String) -> String {
    let now = time::OffsetDateTime::now_utc();
    seed_pat(store, owner, &name, now, AdminExpiry::Never, false, None).await
}

/// A create locks its owner's row without blocking the lock a foreign key check takes (FOR KEY
/// SHARE): a lastUsed batch that updates a PAT's row twice checks the row's key to its owner
/// that way, in the PATs' order, while creates lock owners in theirs, and with FOR UPDATE the two
/// deadlocked under load (bench/run). Here a transaction holds such a check's lock on the owner's
/// row while a create for that owner is made: it must not wait for it.
#[tokio::test]
async fn a_create_does_not_wait_on_a_foreign_key_checks_lock_on_its_owner() {
    use sqlx::Connection;
    let Some(base_url) = skip() else { return };
    let url = fresh_postgres_schema(&base_url).await;
    let app = spawn_app_on(&url).await;
    let store: patd_store::DynStore = patd_store::connect(&url).await.unwrap();
    let owner = app.identity("checked", "USER", &[]).await.id;
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut check = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM identities WHERE id = $1 FOR KEY SHARE")
        .bind(&owner)
        .fetch_one(&mut *check)
        .await
        .unwrap();
    let create = seed_pat_now(&store, &owner, "made while checked".to_owned());
    let made = tokio::time::timeout(Duration::from_secs(3), create).await;
    check.rollback().await.unwrap();
    assert!(
        made.is_ok(),
        "the create waited for a foreign key check's lock"
    );
}
