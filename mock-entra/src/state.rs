//! The mock's shared state, and the look-ups every endpoint uses. Each
//! endpoint module adds its own `impl Inner` where it needs more.

use crate::config::{MockApp, MockEntraConfig, MockUser};
use crate::keys::SigningKey;
use crate::logout::LogoutCall;
use axum::http::{HeaderMap, header};
use std::collections::HashMap;
use std::sync::Mutex;

/// Query or form parameters of a request.
pub(crate) type Params = HashMap<String, String>;

/// The mock's own browser-session cookie (Entra's is `ESTSAUTH`): a second
/// sign-in in the same browser reuses the Entra session and its `sid`.
pub(crate) const SSO_COOKIE: &str = "mock_estsauth";

/// The `sid` of this browser's Entra session, from the mock's cookie.
pub(crate) fn sso_sid(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SSO_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// One Entra browser session: who, and which apps signed in through it.
#[derive(Debug, Clone)]
pub(crate) struct SsoSession {
    pub(crate) username: String,
    pub(crate) apps: Vec<String>,
}

/// An authorization code waiting to be redeemed at the token endpoint.
pub(crate) struct PendingCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) user: MockUser,
    pub(crate) sid: String,
    pub(crate) expires: i64,
}

pub(crate) struct Inner {
    /// Where the mock is served (`http://127.0.0.1:PORT`).
    pub(crate) base: String,
    pub(crate) config: MockEntraConfig,
    /// Per tenant, the active key first.
    pub(crate) keys: Mutex<HashMap<String, Vec<SigningKey>>>,
    pub(crate) codes: Mutex<HashMap<String, PendingCode>>,
    pub(crate) jwks_fetches: Mutex<HashMap<String, usize>>,
    pub(crate) logouts: Mutex<Vec<LogoutCall>>,
    /// Entra browser sessions by `sid`, ended by logout.
    pub(crate) sessions: Mutex<HashMap<String, SsoSession>>,
    pub(crate) issuer_host: String,
    pub(crate) contracts: Mutex<Vec<String>>,
    pub(crate) graph_failure: Mutex<Option<u16>>,
    /// Endpoints that fail, hang or are slow (see `MockEntra::set_faults`).
    pub(crate) faults: Mutex<Vec<crate::config::MockFault>>,
    /// Access tokens issued by the client-credentials grant, which Graph
    /// accepts, and the tenant each is valid in.
    pub(crate) app_tokens: Mutex<HashMap<String, String>>,
    /// Graph's view of the users (`/v1.0/users`), changed by tests.
    pub(crate) directory: Mutex<Vec<crate::graph::DirectoryUser>>,
    /// Graph `/v1.0/users` answers 429 to this many next calls.
    pub(crate) throttle: Mutex<(usize, u64)>,
    /// (tenant, unix time in ms) of every `/v1.0/users` call.
    pub(crate) users_calls: Mutex<Vec<(String, u128)>>,
    pub(crate) graph_calls: Mutex<usize>,
    /// `jti`s of client assertions already used (single use).
    pub(crate) used_jtis: Mutex<std::collections::HashSet<String>>,
}

impl Inner {
    pub(crate) fn find_user(&self, name: &str) -> Option<MockUser> {
        self.config
            .users
            .iter()
            .find(|u| {
                u.username.eq_ignore_ascii_case(name)
                    || u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(name))
            })
            .cloned()
    }

    /// Why Entra refuses this account at its sign-in page, if it does: the
    /// directory (Graph's view) is the tenant's, so an account disabled or
    /// deleted there cannot sign in, with or without an Entra session in the
    /// browser (AADSTS50057, AADSTS50034).
    pub(crate) fn sign_in_refusal(&self, user: &MockUser) -> Option<(&'static str, String)> {
        let directory = self.directory.lock().expect("lock");
        match directory.iter().find(|d| d.is(&user.username)) {
            Some(d) if d.enabled => None,
            Some(_) => Some(("AADSTS50057", "The user account is disabled.".to_string())),
            None => Some((
                "AADSTS50034",
                format!(
                    "The user account {} does not exist in the {} directory.",
                    user.username, user.tenant
                ),
            )),
        }
    }

    pub(crate) fn app(&self, client_id: &str) -> Option<&MockApp> {
        self.config
            .apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub(crate) fn known_tenant(&self, t: &str) -> bool {
        self.config.tenants.iter().any(|k| k == t)
    }

    /// A tenant's issuer (`iss`, discovery, JWK `issuer`).
    pub(crate) fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.issuer_host)
    }
}
