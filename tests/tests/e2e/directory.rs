//! The directory and matching (issue 4): import then sign-in by unique id,
//! email matching with binding (and the nOAuth trap), refusals, an HTTP
//! directory, and auto-create with `new_user` exactly once.

use e2e::*;
use serde_json::json;

const ALICE_OID: &str = "a11ce000-0000-4000-8000-000000000001";

fn import(h: &Harness, csv: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, csv).unwrap();
    let out = h.command(&["directory", "import", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn builtin(redis: &RedisServer, match_by: &str) -> Options {
    Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    }
    .patch(json!({"sso": {"match_by": match_by}, "directory": {"kind": "builtin"}}))
}

const HEADER: &str = "key,kind,email,tid,oid,name,client,disabled\n";

#[tokio::test(flavor = "multi_thread")]
async fn import_then_sign_in_by_unique_id() {
    let redis = RedisServer::start();
    let h = Harness::start(builtin(&redis, "unique_id")).await;
    let out = import(
        &h,
        &format!(
            "{HEADER}agent-alice,agent,alice@contoso.example,{TENANT},{ALICE_OID},Alice,,false\n\
             agent-zoe,agent,zoe@contoso.example,,,Zoe,,false\n"
        ),
    );
    assert!(out.contains("2 added"), "{out}");
    let b = h.signed_in("alice@contoso.example").await;
    let j = b.whoami().await.json();
    assert_eq!(
        j["headers"]["x-auth-user"], "agent-alice",
        "the directory key reaches the app"
    );
    assert_eq!(j["claims"]["oid"], ALICE_OID);

    // zoe's record has no oid: unique-id matching cannot use it, and says so.
    let b = h.browser();
    let a = b.begin_login("/").await;
    let fp = b.idp_sign_in(&a, "zoe@contoso.example").await;
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "not_set_up").await;
    // (zoe's token has no email claim; with the email it would be record_without_oid)
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.user = "zoe@contoso.example".into();
        s.claims.insert("email".into(), json!("zoe@contoso.example"));
    })
    .await;
    assert_refused(&b, &r, "record_without_oid").await;
    assert!(r.body.contains("not linked to a Microsoft identity"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unmatched_disabled_and_wrong_portal_are_refused_with_a_page() {
    let redis = RedisServer::start();
    let h = Harness::start(builtin(&redis, "unique_id")).await;
    import(
        &h,
        &format!(
            "{HEADER}alice,user,alice@contoso.example,{TENANT},{ALICE_OID},Alice,,false\n\
             mallory,agent,,{OTHER_TENANT},3a110000-0000-4000-8000-000000000004,Mallory,,true\n"
        ),
    );
    // A user record at the agent portal.
    let b = h.browser();
    let r = attempt(&h, &b, |_| {}).await;
    assert_refused(&b, &r, "portal_not_allowed").await;
    // ...is fine at the user portal.
    let b = h.browser();
    assert_eq!(b.sign_in("/portal/", "alice@contoso.example").await, "/portal/");
    // Nobody in the directory.
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.claims
            .insert("oid".into(), json!("00000000-0000-4000-8000-00000000dead"));
    })
    .await;
    assert_refused(&b, &r, "not_set_up").await;
    assert!(r.body.contains("not set up in this application"));
    assert_eq!(
        h.metric("entra_gateway_signins_total", &[("reason", "not_set_up")])
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn email_match_binds_the_record_and_survives_an_email_change() {
    let redis = RedisServer::start();
    let h = Harness::start(builtin(&redis, "email")).await;
    import(&h, &format!("{HEADER}A-1,agent,ALICE@contoso.example,,,Alice,,false\n"));
    let b = h.signed_in("alice@contoso.example").await;
    assert_eq!(
        b.whoami().await.json()["headers"]["x-auth-user"],
        "A-1",
        "case-insensitive email match"
    );
    // Bound now: a later sign-in with a changed email still finds the record.
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.claims.insert("email".into(), json!("alice.renamed@contoso.example"));
    })
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(b.whoami().await.json()["headers"]["x-auth-user"], "A-1");
    // Someone else now presenting the old email cannot take the record over.
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.user = "zoe@contoso.example".into();
        s.claims.insert("email".into(), json!("alice@contoso.example"));
    })
    .await;
    assert_refused(&b, &r, "bound_to_another").await;
    // A token with only preferred_username (no email claim) is never matched by it.
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.user = "zoe@contoso.example".into();
        s.claims
            .insert("preferred_username".into(), json!("alice@contoso.example"));
    })
    .await;
    assert_refused(&b, &r, "not_set_up").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn noauth_another_tenant_cannot_claim_an_email() {
    let redis = RedisServer::start();
    let o = builtin(&redis, "email")
        .patch(json!({"entra": {"tenant_type": "multi", "allowed_tenants": [TENANT, OTHER_TENANT]}}));
    let h = Harness::start(o).await;
    import(&h, &format!("{HEADER}A-1,agent,alice@contoso.example,,,Alice,,false\n"));
    // mallory's own tenant (allowed) puts alice's email on her, unverified.
    let b = h.browser();
    let r = attempt(&h, &b, |s| s.user = "mallory@fabrikam.example".into()).await;
    assert_refused(&b, &r, "email_not_verified").await;
    // The record was not bound to mallory: alice (whose tenant vouches with
    // xms_edov) still matches it.
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.claims.insert("xms_edov".into(), json!(true));
    })
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(b.whoami().await.json()["headers"]["x-auth-user"], "A-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_directory_and_auto_create_with_new_user_once() {
    // The application's own user API.
    let api = DirectoryApi::start().await;
    let o = Options::default().patch(json!({
        "sso": {"match_by": "unique_id", "auto_create_unmatched_users": true},
        "directory": {
            "kind": "http",
            "http": {
                "lookup_url": format!("{}/api/sso/lookup", api.base),
                "create_url": format!("{}/api/sso/users", api.base),
            },
        },
    }));
    let h = Harness::start(o).await;
    api.add(
        json!({"key": "u-alice", "kind": "user", "email": "alice@contoso.example", "tid": TENANT, "oid": ALICE_OID}),
    );
    let b = h.browser();
    assert_eq!(b.sign_in("/portal/", "alice@contoso.example").await, "/portal/");
    let j = b.xhr("/portal/api/whoami").await.json();
    assert_eq!(j["headers"]["x-auth-user"], "u-alice");
    assert!(j["claims"].get("new_user").is_none());

    // Unknown at a user portal: created, and told so exactly once.
    let b = h.browser();
    assert_eq!(b.sign_in("/portal/", "zoe@contoso.example").await, "/portal/");
    let first = b.xhr("/portal/api/whoami").await.json();
    assert_eq!(first["claims"]["new_user"], true, "{first}");
    assert_eq!(first["verified"], true);
    let second = b.xhr("/portal/api/whoami").await.json();
    assert!(
        second["claims"].get("new_user").is_none(),
        "only the first request: {second}"
    );
    let created = api.created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["kind"], "user", "auto-create makes users, never agents");
    assert_eq!(created[0]["oid"], "20e00000-0000-4000-8000-000000000003");

    // Unknown at the agent portal: never created.
    let b = h.browser();
    let r = attempt(&h, &b, |s| s.user = "carol@northwind.example".into()).await;
    assert!((400..500).contains(&r.status));
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.claims
            .insert("oid".into(), json!("00000000-0000-4000-8000-00000000beef"));
    })
    .await;
    assert_refused(&b, &r, "not_set_up").await;
    assert_eq!(api.created().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_user_reaches_the_app_once_across_instances_sharing_redis() {
    // With Redis each instance keeps a local copy of the session: the copy
    // must not go on saying `new_user` after the one request that did.
    let api = DirectoryApi::start().await;
    let redis = RedisServer::start();
    let o = Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    }
    .patch(json!({
        "sso": {"match_by": "unique_id", "auto_create_unmatched_users": true},
        "directory": {
            "kind": "http",
            "http": {
                "lookup_url": format!("{}/api/sso/lookup", api.base),
                "create_url": format!("{}/api/sso/users", api.base),
            },
        },
    }));
    let h = Harness::start(o).await;
    let (_other_proc, other) = h.another_instance().await;
    let b = h.browser();
    assert_eq!(b.sign_in("/portal/", "zoe@contoso.example").await, "/portal/");
    const PORTAL_COOKIE: &str = "entra_gw_portal";
    other.set_cookie(PORTAL_COOKIE, &b.cookie(PORTAL_COOKIE).expect("a session cookie"));
    let mut told = 0;
    // The first two race on two instances; the rest hit both caches.
    let (x, y) = tokio::join!(b.xhr("/portal/api/whoami"), other.xhr("/portal/api/whoami"));
    for round in 0..6 {
        let answers = if round == 0 {
            vec![x.json(), y.json()]
        } else {
            vec![
                b.xhr("/portal/api/whoami").await.json(),
                other.xhr("/portal/api/whoami").await.json(),
            ]
        };
        for j in answers {
            assert_eq!(j["verified"], true, "{j}");
            if j["claims"].get("new_user").is_some() {
                assert_eq!(j["claims"]["new_user"], true);
                told += 1;
            }
        }
    }
    assert_eq!(told, 1, "new_user on exactly one request of the session");
    assert_eq!(api.created().len(), 1);
}

/// A small stand-in for the application's user API (lookup + create).
struct DirectoryApi {
    base: String,
    users: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    created: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl DirectoryApi {
    async fn start() -> DirectoryApi {
        use axum::extract::{Query, State};
        use axum::http::StatusCode;
        use axum::routing::{get, post};
        type Shared = (
            std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
            std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
        );
        let users = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let created = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lookup = |State((users, _)): State<Shared>, Query(q): Query<std::collections::HashMap<String, String>>| async move {
            let users = users.lock().unwrap();
            let hit = users.iter().find(|u| match (q.get("oid"), q.get("email")) {
                (Some(oid), _) => u["oid"] == json!(oid) && u["tid"] == json!(q.get("tid")),
                (None, Some(email)) => u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)),
                _ => false,
            });
            match hit {
                Some(u) => (StatusCode::OK, axum::Json(u.clone())),
                None => (StatusCode::NOT_FOUND, axum::Json(json!({}))),
            }
        };
        let create = |State((users, created)): State<Shared>, axum::Json(rec): axum::Json<serde_json::Value>| async move {
            users.lock().unwrap().push(rec.clone());
            created.lock().unwrap().push(rec.clone());
            (StatusCode::CREATED, axum::Json(rec))
        };
        let app = axum::Router::new()
            .route("/api/sso/lookup", get(lookup))
            .route("/api/sso/users", post(create))
            .with_state((users.clone(), created.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        DirectoryApi { base, users, created }
    }

    fn add(&self, u: serde_json::Value) {
        self.users.lock().unwrap().push(u);
    }

    fn created(&self) -> Vec<serde_json::Value> {
        self.created.lock().unwrap().clone()
    }
}
