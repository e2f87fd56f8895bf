//! `directory.kind: http`: the protected app is the directory.
//!
//! - lookup: `GET {lookup_url}?email=..&tid=..&oid=..` (only the parameters
//!   known for that lookup) → `200` with a JSON [`UserRecord`], or `404`.
//! - create: `POST {create_url}` with the record as JSON → `200`/`201` with
//!   the record as the app stored it.
//!
//! Anything else (another status, a body that is not a valid record, a
//! timeout) is "directory unavailable": a sign-in is then refused with a 503
//! page, never matched on a guess.

use super::{Directory, DirectoryError, UserRecord};
use async_trait::async_trait;
use reqwest::StatusCode;
use std::time::Duration;
use url::Url;

/// A sign-in waits on this at most; the app is local and should answer in
/// milliseconds, and the person is looking at a blank page meanwhile.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Larger answers are not a user record.
const MAX_BODY: usize = 64 * 1024;

pub struct HttpDirectory {
    http: reqwest::Client,
    lookup_url: Url,
    create_url: Option<Url>,
    timeout: Duration,
}

impl HttpDirectory {
    pub fn new(http: reqwest::Client, lookup_url: Url, create_url: Option<Url>) -> Self {
        HttpDirectory {
            http,
            lookup_url,
            create_url,
            timeout: TIMEOUT,
        }
    }

    /// Overrides the per-request time limit (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn lookup(&self, params: &[(&str, &str)]) -> Result<Option<UserRecord>, DirectoryError> {
        let mut url = self.lookup_url.clone();
        url.query_pairs_mut().extend_pairs(params);
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| unavailable("lookup", &e))?;
        match resp.status() {
            StatusCode::OK => record_from(resp, "lookup").await.map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(DirectoryError::Unavailable(format!("lookup answered {s}"))),
        }
    }
}

/// The request error without the URL: query strings carry emails, which do
/// not belong in error messages that end up in logs.
fn unavailable(what: &str, e: &reqwest::Error) -> DirectoryError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    DirectoryError::Unavailable(format!("{what} {kind}"))
}

async fn record_from(resp: reqwest::Response, what: &str) -> Result<UserRecord, DirectoryError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(DirectoryError::Unavailable(format!("{what} answer is too large")));
    }
    let body = resp.bytes().await.map_err(|e| unavailable(what, &e))?;
    if body.len() > MAX_BODY {
        return Err(DirectoryError::Unavailable(format!("{what} answer is too large")));
    }
    let rec: UserRecord = serde_json::from_slice(&body)
        .map_err(|e| DirectoryError::Unavailable(format!("{what} answer is not a user record: {e}")))?;
    let problems = rec.problems();
    if !problems.is_empty() {
        return Err(DirectoryError::Unavailable(format!(
            "{what} answered an invalid record: {}",
            problems.join("; ")
        )));
    }
    Ok(rec)
}

#[async_trait]
impl Directory for HttpDirectory {
    async fn by_id(&self, tid: &str, oid: &str) -> Result<Option<UserRecord>, DirectoryError> {
        self.lookup(&[("tid", tid), ("oid", oid)]).await
    }

    async fn by_email(&self, email: &str, tid: &str) -> Result<Option<UserRecord>, DirectoryError> {
        self.lookup(&[("email", email), ("tid", tid)]).await
    }

    /// A no-op: the app owns its records, and the gateway has no write API
    /// into them other than create. An app that wants the binding stored
    /// answers later lookups by (tid, oid) itself (the `tid`/`oid` are in
    /// every assertion it receives); until it does, the gateway matches by
    /// email again at each sign-in, under the same rules.
    async fn bind(&self, _key: &str, _tid: &str, _oid: &str) -> Result<(), DirectoryError> {
        Ok(())
    }

    async fn create(&self, rec: &UserRecord) -> Result<UserRecord, DirectoryError> {
        let Some(url) = &self.create_url else {
            return Err(DirectoryError::NotConfigured(
                "auto-create needs directory.http.create_url",
            ));
        };
        let resp = self
            .http
            .post(url.clone())
            .json(rec)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| unavailable("create", &e))?;
        match resp.status() {
            StatusCode::OK | StatusCode::CREATED => record_from(resp, "create").await,
            s => Err(DirectoryError::Unavailable(format!("create answered {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::record;
    use axum::extract::{Query, State};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    const T1: &str = "11111111-1111-4111-8111-111111111111";

    #[derive(Default)]
    struct App {
        queries: Mutex<Vec<HashMap<String, String>>>,
        created: Mutex<Vec<UserRecord>>,
    }

    fn ann() -> UserRecord {
        UserRecord {
            tid: Some(T1.parse().unwrap()),
            oid: Some("o1".into()),
            ..record("ann")
        }
    }

    async fn lookup(State(app): State<Arc<App>>, Query(q): Query<HashMap<String, String>>) -> axum::response::Response {
        use axum::response::IntoResponse;
        app.queries.lock().unwrap().push(q.clone());
        let by_email = q.get("email").is_some_and(|e| e == "ann@contoso.com");
        let by_id = q.get("oid").is_some_and(|o| o == "o1");
        match q.get("email").map(String::as_str).or(q.get("oid").map(String::as_str)) {
            Some("boom") => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            Some("garbage") => "not json".into_response(),
            Some("invalid") => {
                let mut rec = serde_json::to_value(ann()).unwrap();
                rec["tid"] = "x".into();
                Json(rec).into_response()
            }
            Some("slow") => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::NOT_FOUND.into_response()
            }
            _ if by_email || by_id => Json(ann()).into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        }
    }

    async fn create(State(app): State<Arc<App>>, Json(rec): Json<UserRecord>) -> (StatusCode, Json<UserRecord>) {
        app.created.lock().unwrap().push(rec.clone());
        let stored = UserRecord {
            key: format!("app-{}", rec.key),
            ..rec
        };
        (StatusCode::CREATED, Json(stored))
    }

    async fn serve() -> (Arc<App>, Url) {
        let app = Arc::new(App::default());
        let router = Router::new()
            .route("/api/sso/lookup", get(lookup))
            .route("/api/sso/users", post(create))
            .with_state(app.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (app, format!("http://{addr}/api/sso/").parse().unwrap())
    }

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    #[tokio::test]
    async fn lookups_send_only_what_is_known() {
        let (app, base) = serve().await;
        let d = HttpDirectory::new(client(), base.join("lookup?v=2").unwrap(), None);
        assert_eq!(d.by_id(T1, "o1").await.unwrap(), Some(ann()));
        assert_eq!(d.by_email("ann@contoso.com", T1).await.unwrap(), Some(ann()));
        assert_eq!(d.by_email("bob@contoso.com", T1).await.unwrap(), None);
        let q = app.queries.lock().unwrap().clone();
        let keys = |i: usize| {
            let mut k: Vec<_> = q[i].keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(0), ["oid", "tid", "v"]);
        assert_eq!(q[0]["tid"], T1);
        assert_eq!(keys(1), ["email", "tid", "v"]);
        assert_eq!(q[1]["email"], "ann@contoso.com");
    }

    #[tokio::test]
    async fn failures_are_unavailable() {
        let (_, base) = serve().await;
        let d = HttpDirectory::new(client(), base.join("lookup").unwrap(), None);
        for bad in ["boom", "garbage", "invalid"] {
            let got = d.by_email(bad, T1).await;
            assert!(matches!(got, Err(DirectoryError::Unavailable(_))), "{bad}: {got:?}");
        }
        // Nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let down = HttpDirectory::new(client(), format!("http://127.0.0.1:{port}/x").parse().unwrap(), None);
        assert!(matches!(
            down.by_id(T1, "o1").await,
            Err(DirectoryError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_slow_directory_times_out() {
        let (_, base) = serve().await;
        let d =
            HttpDirectory::new(client(), base.join("lookup").unwrap(), None).with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let got = d.by_email("slow", T1).await;
        assert!(
            matches!(&got, Err(DirectoryError::Unavailable(m)) if m.contains("timed out")),
            "{got:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn create_posts_the_record_and_returns_what_the_app_stored() {
        let (app, base) = serve().await;
        let d = HttpDirectory::new(
            client(),
            base.join("lookup").unwrap(),
            Some(base.join("users").unwrap()),
        );
        let got = d.create(&ann()).await.unwrap();
        assert_eq!(got.key, "app-ann");
        assert_eq!(app.created.lock().unwrap().as_slice(), [ann()]);
        // bind is a no-op that always succeeds.
        d.bind("app-ann", T1, "o1").await.unwrap();
        let no_create = HttpDirectory::new(client(), base.join("lookup").unwrap(), None);
        assert!(matches!(
            no_create.create(&ann()).await,
            Err(DirectoryError::NotConfigured(_))
        ));
    }
}
