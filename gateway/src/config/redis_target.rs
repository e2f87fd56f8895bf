//! `session.redis_url`: which Redis topology the sessions live in.
//!
//! One string is a standalone server (`redis://`, `rediss://`) or a Sentinel
//! group (`redis+sentinel://`, `rediss+sentinel://`); a list is the seed
//! nodes of a Cluster. The Sentinel form lists the sentinels in the host
//! part, the master name in the path, the database optionally after it:
//! `redis+sentinel://[user:password@]host:port[,host:port…]/master[/db][?sentinel_password=…]`.
//! Credentials in the authority are the data nodes'; sentinels protected by a
//! password of their own take `sentinel_username` / `sentinel_password`.

use std::fmt;
use url::Url;

#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A `redis://` or `rediss://` URL, handed to the client as written.
    Standalone {
        url: String,
    },
    Sentinel(SentinelTarget),
    /// Seed nodes; the client discovers the rest from them.
    Cluster {
        nodes: Vec<String>,
    },
}

#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    /// `host:port` of each sentinel.
    pub sentinels: Vec<(String, u16)>,
    pub master_name: String,
    pub db: i64,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
}

/// What `session.redis_url` may say, for error messages.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    #[error("not a URL")]
    NotAUrl,
    #[error("expected redis://, rediss://, redis+sentinel:// or rediss+sentinel://")]
    Scheme,
    #[error("cluster nodes must be redis:// or rediss:// URLs, all with the same scheme")]
    ClusterScheme,
    #[error("a cluster needs at least one node")]
    EmptyCluster,
    #[error("cluster nodes take no database (Redis Cluster has only database 0)")]
    ClusterDatabase,
    #[error("sentinel URL needs host:port of every sentinel")]
    SentinelHosts,
    #[error("sentinel URL needs the master name as its path, e.g. redis+sentinel://h1:26379,h2:26379/mymaster")]
    MasterName,
    #[error("database must be a number")]
    Database,
    #[error("unknown query parameter {0:?} (sentinel_username and sentinel_password are allowed)")]
    Query(String),
}

impl RedisTarget {
    /// `urls` is what the file said: one string (`list == false`) or a list.
    pub fn parse(urls: &[String], list: bool) -> Result<RedisTarget, RedisUrlError> {
        if list {
            return parse_cluster(urls);
        }
        let url = urls.first().ok_or(RedisUrlError::NotAUrl)?;
        let scheme = url.split_once("://").map(|(s, _)| s).ok_or(RedisUrlError::NotAUrl)?;
        match scheme {
            "redis" | "rediss" => {
                Url::parse(url).map_err(|_| RedisUrlError::NotAUrl)?;
                Ok(RedisTarget::Standalone { url: url.clone() })
            }
            "redis+sentinel" | "rediss+sentinel" => parse_sentinel(url, scheme == "rediss+sentinel"),
            _ => Err(RedisUrlError::Scheme),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RedisTarget::Standalone { .. } => "standalone",
            RedisTarget::Sentinel(_) => "sentinel",
            RedisTarget::Cluster { .. } => "cluster",
        }
    }
}

fn parse_cluster(urls: &[String]) -> Result<RedisTarget, RedisUrlError> {
    if urls.is_empty() {
        return Err(RedisUrlError::EmptyCluster);
    }
    let mut scheme = None;
    for u in urls {
        let parsed = Url::parse(u).map_err(|_| RedisUrlError::NotAUrl)?;
        if !matches!(parsed.scheme(), "redis" | "rediss") || scheme.is_some_and(|s| s != parsed.scheme()) {
            return Err(RedisUrlError::ClusterScheme);
        }
        scheme = Some(parsed.scheme().to_string());
        if !matches!(parsed.path(), "" | "/" | "/0") {
            return Err(RedisUrlError::ClusterDatabase);
        }
    }
    Ok(RedisTarget::Cluster { nodes: urls.to_vec() })
}

fn parse_sentinel(url: &str, tls: bool) -> Result<RedisTarget, RedisUrlError> {
    let rest = &url[url.find("://").map(|i| i + 3).unwrap_or(0)..];
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            (non_empty(decode(user)), non_empty(decode(pass)))
        }
    };
    let mut sentinels = Vec::new();
    for h in hosts.split(',') {
        let (host, port) = h.rsplit_once(':').ok_or(RedisUrlError::SentinelHosts)?;
        let port: u16 = port.parse().map_err(|_| RedisUrlError::SentinelHosts)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(RedisUrlError::SentinelHosts);
        }
        sentinels.push((host.to_string(), port));
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let master_name = segments.next().map(decode).ok_or(RedisUrlError::MasterName)?;
    let db = match segments.next() {
        None => 0,
        Some(d) => d.parse().map_err(|_| RedisUrlError::Database)?,
    };
    if segments.next().is_some() {
        return Err(RedisUrlError::MasterName);
    }
    let mut sentinel_username = None;
    let mut sentinel_password = None;
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sentinel_username" => sentinel_username = non_empty(decode(v)),
            "sentinel_password" => sentinel_password = non_empty(decode(v)),
            other => return Err(RedisUrlError::Query(other.to_string())),
        }
    }
    Ok(RedisTarget::Sentinel(SentinelTarget {
        sentinels,
        master_name,
        db,
        tls,
        username,
        password,
        sentinel_username,
        sentinel_password,
    }))
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Never prints credentials: configuration is logged on errors.
impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Standalone { url } => write!(f, "Standalone({})", redact(url)),
            RedisTarget::Cluster { nodes } => f.debug_list().entries(nodes.iter().map(|n| redact(n))).finish(),
            RedisTarget::Sentinel(s) => f
                .debug_struct("Sentinel")
                .field("sentinels", &s.sentinels)
                .field("master_name", &s.master_name)
                .field("db", &s.db)
                .field("tls", &s.tls)
                .finish_non_exhaustive(),
        }
    }
}

impl fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&RedisTarget::Sentinel(self.clone()), f)
    }
}

impl RedisTarget {
    /// The same target with the data nodes' password replaced (the password
    /// from `session.redis_password_file`; sentinels keep theirs).
    pub fn with_password(self, password: &str) -> RedisTarget {
        let set = |u: String| {
            let Ok(mut parsed) = url::Url::parse(&u) else { return u };
            match parsed.set_password(Some(password)) {
                Ok(()) => parsed.to_string(),
                Err(()) => u,
            }
        };
        match self {
            RedisTarget::Standalone { url } => RedisTarget::Standalone { url: set(url) },
            RedisTarget::Cluster { nodes } => RedisTarget::Cluster {
                nodes: nodes.into_iter().map(set).collect(),
            },
            RedisTarget::Sentinel(s) => RedisTarget::Sentinel(SentinelTarget {
                password: Some(password.to_string()),
                ..s
            }),
        }
    }
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(u: &str) -> Result<RedisTarget, RedisUrlError> {
        RedisTarget::parse(&[u.to_string()], false)
    }

    #[test]
    fn standalone_plain_and_tls() {
        assert_eq!(one("redis://127.0.0.1:6379/2").unwrap().kind(), "standalone");
        assert_eq!(one("rediss://:pw@cache.example:6380").unwrap().kind(), "standalone");
        assert_eq!(one("http://x"), Err(RedisUrlError::Scheme));
        assert_eq!(one("localhost:6379"), Err(RedisUrlError::NotAUrl));
    }

    #[test]
    fn sentinel_hosts_master_db_and_credentials() {
        let RedisTarget::Sentinel(s) =
            one("redis+sentinel://app:p%40ss@10.0.0.1:26379,[::1]:26380/my-master/3?sentinel_password=s3").unwrap()
        else {
            panic!("not sentinel")
        };
        assert_eq!(s.sentinels, vec![("10.0.0.1".into(), 26379), ("::1".into(), 26380)]);
        assert_eq!(s.master_name, "my-master");
        assert_eq!(s.db, 3);
        assert!(!s.tls);
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.sentinel_password.as_deref(), Some("s3"));
        assert!(matches!(
            one("rediss+sentinel://h:1/m").unwrap(),
            RedisTarget::Sentinel(SentinelTarget { tls: true, .. })
        ));
    }

    #[test]
    fn sentinel_mistakes_are_named() {
        assert_eq!(one("redis+sentinel://h1:26379"), Err(RedisUrlError::MasterName));
        assert_eq!(one("redis+sentinel://h1/m"), Err(RedisUrlError::SentinelHosts));
        assert_eq!(one("redis+sentinel://h1:x/m"), Err(RedisUrlError::SentinelHosts));
        assert_eq!(one("redis+sentinel://h1:1/m/zero"), Err(RedisUrlError::Database));
        assert_eq!(
            one("redis+sentinel://h1:1/m?master=x"),
            Err(RedisUrlError::Query("master".into()))
        );
    }

    #[test]
    fn a_list_is_always_a_cluster() {
        let nodes = vec!["redis://a:7000".to_string(), "redis://b:7001".to_string()];
        assert_eq!(
            RedisTarget::parse(&nodes, true).unwrap(),
            RedisTarget::Cluster { nodes: nodes.clone() }
        );
        let seed = vec!["redis://a:7000".to_string()];
        assert_eq!(RedisTarget::parse(&seed, true).unwrap().kind(), "cluster");
        let mixed = vec!["redis://a:7000".to_string(), "rediss://b:7001".to_string()];
        assert_eq!(RedisTarget::parse(&mixed, true), Err(RedisUrlError::ClusterScheme));
        let sentinel = vec!["redis+sentinel://a:1/m".to_string()];
        assert_eq!(RedisTarget::parse(&sentinel, true), Err(RedisUrlError::ClusterScheme));
        assert_eq!(RedisTarget::parse(&[], true), Err(RedisUrlError::EmptyCluster));
        let db = vec!["redis://a:7000/2".to_string()];
        assert_eq!(RedisTarget::parse(&db, true), Err(RedisUrlError::ClusterDatabase));
    }

    #[test]
    fn debug_output_has_no_password() {
        let t = one("redis+sentinel://u:hunter2@h:1/m").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        let t = one("rediss://:hunter2@h:1").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        let t = RedisTarget::parse(&["redis://:hunter2@h:1".into()], true).unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
