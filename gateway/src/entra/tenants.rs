//! Who may sign in and where each tenant's endpoints are: the tenant policy
//! (static list, client tenants, CSP customers), the CSP sync that feeds it,
//! the checked discovery document and the JWKS cache.

use super::csp;
use super::discovery::DiscoveryDocument;
use super::jwks::JwksCache;
use crate::config::{Config, Entra, TenantType};
use crate::metrics::METRICS;
use crate::session::{SharedValues, now_unix};
use policy::Reason;
use policy::TenantId;
use policy::tenants::TenantPolicy;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use url::Url;

/// What the CSP sync last achieved (for readiness and `tenants sync`).
#[derive(Debug, Clone, Default)]
pub struct CspStatus {
    pub tenants: Vec<TenantId>,
    pub last_ok: Option<i64>,
    pub last_error: Option<String>,
}

pub struct Tenants {
    entra: Entra,
    /// `clients[].tenant_id`: allowed whatever the CSP list says.
    client_tenants: Vec<TenantId>,
    /// The checked discovery document: empty while Entra has not answered
    /// since start (sign-ins wait, sessions are served). Shared by every
    /// configuration a reload builds (the authority itself needs a restart).
    metadata: Arc<OnceLock<DiscoveryDocument>>,
    pub jwks: Arc<JwksCache>,
    policy: RwLock<Arc<TenantPolicy>>,
    csp: Mutex<CspStatus>,
    /// Where the CSP list is shared between instances.
    values: Arc<dyn SharedValues>,
}

impl Tenants {
    /// `metadata` may still be empty (see [`Tenants::set_metadata`]).
    pub fn new(
        config: &Config,
        metadata: Arc<OnceLock<DiscoveryDocument>>,
        http: reqwest::Client,
        values: Arc<dyn SharedValues>,
    ) -> Self {
        let t = Self::with_parts(config, metadata, Arc::new(JwksCache::new(http, [])), values);
        if let Some(m) = t.metadata() {
            t.pin_home_keys(m);
        }
        t
    }

    fn with_parts(
        config: &Config,
        metadata: Arc<OnceLock<DiscoveryDocument>>,
        jwks: Arc<JwksCache>,
        values: Arc<dyn SharedValues>,
    ) -> Self {
        let entra = config.entra.clone();
        let client_tenants: Vec<TenantId> = config.client_tenants().collect();
        Tenants {
            policy: RwLock::new(Arc::new(entra.tenant_policy(client_tenants.iter().cloned()))),
            jwks,
            csp: Mutex::new(CspStatus::default()),
            entra,
            client_tenants,
            metadata,
            values,
        }
    }

    /// The tenants of a reloaded configuration: the same discovery document,
    /// key cache and CSP list, the new static and client tenants.
    pub fn reconfigured(&self, config: &Config) -> Tenants {
        let t = Self::with_parts(config, self.metadata.clone(), self.jwks.clone(), self.values.clone());
        let csp = self.csp_status();
        t.set_csp_tenants(csp.tenants.clone());
        *t.csp.lock().unwrap_or_else(|p| p.into_inner()) = csp;
        t
    }

    /// The discovery document, once Entra has answered.
    pub fn metadata(&self) -> Option<&DiscoveryDocument> {
        self.metadata.get()
    }

    /// Installs the discovery document fetched after start (the first one
    /// wins: every configuration shares it).
    pub fn set_metadata(&self, doc: DiscoveryDocument) {
        if self.metadata.set(doc).is_ok()
            && let Some(m) = self.metadata()
        {
            self.pin_home_keys(m);
        }
    }

    /// The home tenant's keys: vouched for and never evicted.
    fn pin_home_keys(&self, m: &DiscoveryDocument) {
        let home = tenant_url(self.entra.tenant_type, &m.jwks_uri, &self.entra.tenant_id);
        self.jwks.pin(home.to_string());
    }

    /// Who may sign in right now (static list, client tenants, CSP customers).
    pub fn policy(&self) -> Arc<TenantPolicy> {
        self.policy.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn csp_status(&self) -> CspStatus {
        self.csp.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The authorize endpoint a login is sent to: the tenant's own when the
    /// login names one, else the authority's.
    /// `metadata_unavailable` (503) while discovery is pending.
    pub fn authorize_endpoint(&self, tenant: Option<&TenantId>) -> Result<Url, Reason> {
        Ok(self.for_tenant(&self.document()?.authorization_endpoint, tenant))
    }

    /// The token endpoint the code of such a login is exchanged at.
    pub fn token_endpoint(&self, tenant: Option<&TenantId>) -> Result<Url, Reason> {
        Ok(self.for_tenant(&self.document()?.token_endpoint, tenant))
    }

    /// The key set of a token's tenant.
    pub fn jwks_uri(&self, tid: &TenantId) -> Result<Url, Reason> {
        Ok(self.for_tenant(&self.document()?.jwks_uri, Some(tid)))
    }

    fn document(&self) -> Result<&DiscoveryDocument, Reason> {
        self.metadata().ok_or(Reason::MetadataUnavailable)
    }

    fn for_tenant(&self, url: &Url, tenant: Option<&TenantId>) -> Url {
        match tenant {
            Some(t) => tenant_url(self.entra.tenant_type, url, t),
            None => url.clone(),
        }
    }

    fn set_csp_tenants(&self, tenants: Vec<TenantId>) {
        let policy = self
            .entra
            .tenant_policy(self.client_tenants.iter().cloned().chain(tenants.iter().cloned()));
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
        METRICS.csp_tenants.set(tenants.len() as i64);
        self.csp.lock().unwrap_or_else(|p| p.into_inner()).tenants = tenants;
    }

    /// Runs the CSP sync once. Success replaces the shared list; failure
    /// keeps the last good one (never emptied, never "allow all").
    pub async fn csp_sync(&self, http: &reqwest::Client, config: &Config) -> Result<csp::SyncResult, csp::CspError> {
        let result = csp::fetch(http, config).await;
        let now = now_unix();
        match &result {
            Ok(r) => {
                METRICS.csp_syncs.with_label_values(&["ok"]).inc();
                for s in &r.skipped {
                    tracing::warn!(event = "csp_sync_skipped", customer_id = %s, "not a tenant GUID");
                }
                tracing::info!(
                    event = "csp_sync",
                    result = "ok",
                    tenants = r.tenants.len(),
                    skipped = r.skipped.len()
                );
                let _ = self.values.put_value(csp::STORE_KEY, &csp::encode(&r.tenants)).await;
                self.set_csp_tenants(r.tenants.clone());
                let mut st = self.csp.lock().unwrap_or_else(|p| p.into_inner());
                st.last_ok = Some(now);
                st.last_error = None;
            }
            Err(e) => {
                METRICS.csp_syncs.with_label_values(&["error"]).inc();
                tracing::warn!(event = "csp_sync", result = "error", error = %e, "keeping the last good tenant list");
                self.csp.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(e.to_string());
            }
        }
        result
    }

    /// Picks up the list another instance synced.
    pub async fn csp_refresh_from_store(&self) {
        if let Ok(Some(v)) = self.values.get_value(csp::STORE_KEY).await {
            let list = csp::decode(&v);
            if list != self.csp_status().tenants {
                self.set_csp_tenants(list);
            }
        }
    }
}

/// A tenant-specific URL from the authority's: `/organizations/` (multi)
/// becomes `/<tid>/`, as Entra's endpoints are uniform per tenant.
fn tenant_url(tenant_type: TenantType, url: &Url, tid: &TenantId) -> Url {
    let mut u = url.clone();
    if tenant_type == TenantType::Single {
        return u;
    }
    let segs: Vec<String> = u
        .path_segments()
        .map(|s| s.map(str::to_string).collect())
        .unwrap_or_default();
    if segs.first().map(String::as_str) == Some("organizations") {
        let rest = segs[1..].join("/");
        u.set_path(&format!("/{tid}/{rest}"));
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizations_becomes_the_tenant_in_multi_only() {
        let tid: TenantId = "11111111-1111-4111-8111-111111111111".parse().unwrap();
        let org: Url = "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize"
            .parse()
            .unwrap();
        assert_eq!(
            tenant_url(TenantType::Multi, &org, &tid).as_str(),
            "https://login.microsoftonline.com/11111111-1111-4111-8111-111111111111/oauth2/v2.0/authorize"
        );
        assert_eq!(tenant_url(TenantType::Single, &org, &tid), org);
        let own: Url = "https://login.microsoftonline.com/contoso/discovery/v2.0/keys"
            .parse()
            .unwrap();
        assert_eq!(tenant_url(TenantType::Multi, &own, &tid), own);
    }
}
