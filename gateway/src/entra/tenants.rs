//! Who may sign in and where each tenant's endpoints are: the tenant policy
//! (static list, client tenants, CSP customers), the CSP sync that feeds it,
//! the checked discovery document and the JWKS cache.

use super::csp;
use super::discovery::DiscoveryDocument;
use super::jwks::JwksCache;
use crate::config::{Config, Entra, TenantType};
use crate::metrics::METRICS;
use crate::session::{SharedValues, now_unix};
use policy::TenantId;
use policy::tenants::TenantPolicy;
use std::sync::{Arc, Mutex, RwLock};
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
    pub metadata: DiscoveryDocument,
    pub jwks: JwksCache,
    policy: RwLock<Arc<TenantPolicy>>,
    csp: Mutex<CspStatus>,
    /// Where the CSP list is shared between instances.
    values: Arc<dyn SharedValues>,
}

impl Tenants {
    pub fn new(
        config: &Config,
        metadata: DiscoveryDocument,
        http: reqwest::Client,
        values: Arc<dyn SharedValues>,
    ) -> Self {
        let entra = config.entra.clone();
        let client_tenants: Vec<TenantId> = config.client_tenants().collect();
        // The home tenant's keys: vouched for and never evicted.
        let home_keys = tenant_url(entra.tenant_type, &metadata.jwks_uri, &entra.tenant_id);
        Tenants {
            policy: RwLock::new(Arc::new(entra.tenant_policy(client_tenants.iter().cloned()))),
            jwks: JwksCache::new(http, [home_keys.to_string()]),
            csp: Mutex::new(CspStatus::default()),
            entra,
            client_tenants,
            metadata,
            values,
        }
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
    pub fn authorize_endpoint(&self, tenant: Option<&TenantId>) -> Url {
        self.for_tenant(&self.metadata.authorization_endpoint, tenant)
    }

    /// The token endpoint the code of such a login is exchanged at.
    pub fn token_endpoint(&self, tenant: Option<&TenantId>) -> Url {
        self.for_tenant(&self.metadata.token_endpoint, tenant)
    }

    /// The key set of a token's tenant.
    pub fn jwks_uri(&self, tid: &TenantId) -> Url {
        self.for_tenant(&self.metadata.jwks_uri, Some(tid))
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
