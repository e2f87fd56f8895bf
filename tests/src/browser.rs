//! A browser-like HTTP client: explicit cookie jar (so tests can read,
//! forge and drop cookies), Fetch Metadata headers, no automatic redirects.

use reqwest::header::HeaderMap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// One `Set-Cookie` header, parsed.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attributes, lower-cased (`httponly`, `samesite=lax`, `max-age=0`, ...).
    pub attrs: Vec<String>,
}

impl SetCookie {
    pub fn parse(raw: &str) -> Option<SetCookie> {
        let mut parts = raw.split(';').map(str::trim);
        let (name, value) = parts.next()?.split_once('=')?;
        Some(SetCookie {
            name: name.to_string(),
            value: value.to_string(),
            attrs: parts.map(|p| p.to_ascii_lowercase()).collect(),
        })
    }

    pub fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find_map(|a| a.strip_prefix(&format!("{key}=")))
    }

    pub fn max_age(&self) -> Option<i64> {
        self.attr("max-age").and_then(|v| v.parse().ok())
    }

    pub fn is_deletion(&self) -> bool {
        self.max_age() == Some(0)
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    pub set_cookies: Vec<SetCookie>,
}

impl Resp {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    pub fn cookie(&self, name: &str) -> Option<&SetCookie> {
        self.set_cookies.iter().find(|c| c.name == name)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// An auto-submitting form_post page, as Entra sends it.
#[derive(Debug, Clone)]
pub struct FormPost {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl FormPost {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.fields.push((name.to_string(), value.to_string()));
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|(n, _)| n != name);
    }

    /// Parses the hidden form of Entra's form_post page.
    pub fn parse(html: &str) -> Option<FormPost> {
        let action = attr_value(html, "action=\"")?;
        let mut fields = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find("<input type=\"hidden\"") {
            rest = &rest[i + 1..];
            let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
            if let (Some(n), Some(v)) = (attr_value(tag, "name=\""), attr_value(tag, "value=\"")) {
                fields.push((n, v));
            }
        }
        Some(FormPost { action, fields })
    }
}

fn attr_value(s: &str, key: &str) -> Option<String> {
    let start = s.find(key)? + key.len();
    let end = s[start..].find('"')? + start;
    Some(unescape(&s[start..end]))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The authorize redirect the gateway produced.
#[derive(Debug, Clone)]
pub struct Authorize {
    pub url: String,
    pub params: HashMap<String, String>,
}

impl Authorize {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

pub struct Browser {
    http: reqwest::Client,
    /// Where the gateway is reached (http; TLS is terminated "in front").
    pub base: String,
    /// Behind a TLS terminator: sends `X-Forwarded-Proto: https` and keeps
    /// `Secure` cookies. Otherwise `Secure` cookies are dropped, as a browser
    /// on plain http would.
    pub https: bool,
    jar: Mutex<BTreeMap<String, String>>,
    /// Cookies of every other origin (the mock Entra's session cookie), so
    /// Entra recognises this browser as a real one would.
    idp_jar: Mutex<BTreeMap<String, String>>,
}

/// What every test browser says it is (browsers always send one; the
/// gateway logs it with sign-ins and logouts).
pub const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) e2e-browser/1";

pub enum Kind {
    /// Top-level navigation (link, address bar).
    Navigate,
    /// fetch()/XHR from a page of the same origin.
    Xhr,
    /// No Fetch Metadata at all (curl, an API client).
    Plain,
}

impl Browser {
    pub fn new(base: &str, https: bool) -> Browser {
        Self::new_from(base, https, None)
    }

    /// A browser whose connections come from `local` (another loopback
    /// address: another client, as far as the gateway can tell).
    pub fn new_from(base: &str, https: bool, local: Option<std::net::IpAddr>) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(USER_AGENT)
                .local_address(local)
                .build()
                .expect("client"),
            base: base.to_string(),
            https,
            jar: Mutex::new(BTreeMap::new()),
            idp_jar: Mutex::new(BTreeMap::new()),
        }
    }

    /// A browser of a gateway that serves TLS itself (`server.tls`) with a
    /// certificate issued by `ca_pem`, which this browser trusts.
    pub fn trusting(base: &str, ca_pem: &[u8]) -> Browser {
        let ca = reqwest::Certificate::from_pem(ca_pem).expect("CA certificate");
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(USER_AGENT)
                .add_root_certificate(ca)
                .build()
                .expect("client"),
            ..Self::new(base, true)
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().expect("jar").get(name).cloned()
    }

    pub fn cookie_names(&self) -> Vec<String> {
        self.jar.lock().expect("jar").keys().cloned().collect()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar.lock().expect("jar").insert(name.into(), value.into());
    }

    pub fn remove_cookie(&self, name: &str) {
        self.jar.lock().expect("jar").remove(name);
    }

    /// The session cookie name of a portal, as this browser sees it.
    pub fn session_cookie_name(&self, portal: &str) -> String {
        let n = format!("entra_gw_{portal}");
        if self.https { format!("__Host-{n}") } else { n }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_string()
        }
    }

    /// The gateway behind a TLS terminator is reached over plain http.
    fn to_gateway(&self, url: &str) -> String {
        let https_base = self.base.replacen("http://", "https://", 1);
        match url.strip_prefix(&https_base) {
            Some(rest) => format!("{}{rest}", self.base),
            None => url.to_string(),
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        kind: Kind,
        form: Option<&[(String, String)]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = self.to_gateway(&self.absolute(url));
        let to_gateway = url.starts_with(&self.base);
        let mut rb = self.http.request(method, &url);
        match kind {
            Kind::Navigate => {
                rb = rb
                    .header(
                        "accept",
                        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                    )
                    .header("sec-fetch-mode", "navigate")
                    .header("sec-fetch-dest", "document");
                if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("sec-fetch-site")) {
                    rb = rb.header("sec-fetch-site", "same-origin");
                }
            }
            Kind::Xhr => {
                rb = rb
                    .header("accept", "application/json")
                    .header("sec-fetch-mode", "cors")
                    .header("sec-fetch-site", "same-origin");
            }
            Kind::Plain => {}
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if to_gateway && self.https {
            rb = rb.header("x-forwarded-proto", "https");
        }
        {
            let jar = if to_gateway { &self.jar } else { &self.idp_jar };
            let jar = jar.lock().expect("jar").clone();
            if !jar.is_empty() {
                let cookie = jar
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                rb = rb.header("cookie", cookie);
            }
        }
        if let Some(f) = form {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(f.iter().map(|(k, v)| (k, v)))
                .finish();
            rb = rb
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let set_cookies: Vec<SetCookie> = headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(SetCookie::parse)
            .collect();
        {
            let mut jar = if to_gateway { &self.jar } else { &self.idp_jar }.lock().expect("jar");
            for c in &set_cookies {
                if c.is_deletion() {
                    jar.remove(&c.name);
                } else if self.https || !to_gateway || !c.has("secure") {
                    jar.insert(c.name.clone(), c.value.clone());
                }
            }
        }
        let body = r.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body,
            set_cookies,
        }
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.request(reqwest::Method::GET, url, Kind::Navigate, None, &[]).await
    }

    pub async fn xhr(&self, url: &str) -> Resp {
        self.request(reqwest::Method::GET, url, Kind::Xhr, None, &[]).await
    }

    pub async fn post_form(&self, url: &str, fields: &[(String, String)]) -> Resp {
        self.request(reqwest::Method::POST, url, Kind::Navigate, Some(fields), &[])
            .await
    }

    /// Navigates to `url` without a session; expects the redirect to Entra.
    pub async fn begin_login(&self, url: &str) -> Authorize {
        let r = self.get(url).await;
        assert_eq!(
            r.status, 302,
            "expected a redirect to Entra, got {}: {}",
            r.status, r.body
        );
        let loc = r.location().expect("location").to_string();
        let parsed = url::Url::parse(&loc).expect("authorize URL");
        Authorize {
            params: parsed.query_pairs().into_owned().collect(),
            url: loc,
        }
    }

    /// At the mock Entra: the login form, then picking `username`; returns
    /// the form_post page's form. If Entra already has a session in this
    /// browser it answers at once (no form), as the real one does.
    pub async fn idp_sign_in(&self, authorize: &Authorize, username: &str) -> FormPost {
        let page = self.get(&authorize.url).await;
        assert_eq!(page.status, 200, "login form: {}", page.body);
        if !page.body.contains("id=\"i0116\"")
            && let Some(silent) = FormPost::parse(&page.body)
        {
            return silent;
        }
        assert!(page.body.contains("id=\"i0116\""), "the mock shows its login form");
        let r = self.submit_username(authorize, username).await;
        assert_eq!(r.status, 200, "form_post page: {}", r.body);
        FormPost::parse(&r.body).unwrap_or_else(|| panic!("no form_post form in {}", r.body))
    }

    /// Signs in at the mock Entra expecting Entra itself to refuse (an error
    /// page, no form_post back to the gateway); returns the page's error.
    pub async fn idp_refusal(&self, authorize: &Authorize, username: &str) -> String {
        let r = self.submit_username(authorize, username).await;
        assert!(
            FormPost::parse(&r.body).is_none(),
            "Entra should refuse {username}, not answer the gateway: {}",
            r.body
        );
        let error = r
            .body
            .split("<p id=\"error\">")
            .nth(1)
            .unwrap_or_else(|| panic!("no error in {}", r.body));
        error.split("</p>").next().unwrap_or_default().to_string()
    }

    /// Submits the mock's login form for `username`.
    async fn submit_username(&self, authorize: &Authorize, username: &str) -> Resp {
        let mut fields: Vec<(String, String)> = authorize.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        fields.push(("username".into(), username.into()));
        let action = authorize.url.split('?').next().expect("path").to_string();
        self.post_form(&action, &fields).await
    }

    /// Submits the form_post to the gateway's callback, as the page's script
    /// would (a cross-site POST navigation).
    pub async fn deliver(&self, fp: &FormPost) -> Resp {
        self.request(
            reqwest::Method::POST,
            &fp.action,
            Kind::Navigate,
            Some(&fp.fields),
            &[("sec-fetch-site", "cross-site")],
        )
        .await
    }

    /// The whole sign-in; returns where the gateway sent the browser.
    pub async fn sign_in(&self, start: &str, username: &str) -> String {
        let a = self.begin_login(start).await;
        let fp = self.idp_sign_in(&a, username).await;
        let r = self.deliver(&fp).await;
        assert_eq!(r.status, 303, "callback should succeed: {}", r.body);
        r.location().expect("location").to_string()
    }

    /// What the app saw for a same-origin fetch of `/api/whoami`.
    pub async fn whoami(&self) -> Resp {
        self.xhr("/api/whoami").await
    }
}
