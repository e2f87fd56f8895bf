//! What a sign-in is told when the directory cannot do what is asked of it
//! (issue 13): each `DirectoryError` carries its own refusal reason.

use e2e::*;

/// An application user API that knows nobody (every lookup: 404).
async fn empty_lookup() -> String {
    use axum::http::StatusCode;
    use axum::routing::get;
    let router = axum::Router::new().route("/api/sso/lookup", get(|| async { StatusCode::NOT_FOUND }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_create_without_create_url_is_not_set_up() {
    // Auto-create is on, but the http directory has nowhere to create users:
    // the person is simply not set up. Not `bound_to_another` (no record is
    // in the way) and not `directory_unavailable` (nothing is down).
    let base = empty_lookup().await;
    let o = Options {
        sso_extra: ", match_by: unique_id, auto_create_unmatched_users: true".into(),
        extra_yaml: format!("directory: {{ kind: http, http: {{ lookup_url: \"{base}/api/sso/lookup\" }} }}"),
        ..Options::default()
    };
    let h = Harness::start(o).await;
    let b = h.browser();
    let r = attempt_at(&h, &b, "/portal/", |s| s.user = "zoe@contoso.example".into()).await;
    assert_refused(&b, &r, "not_set_up").await;
    assert_eq!(r.status, 403, "a refusal, not an outage");
}
