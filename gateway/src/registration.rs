//! What the App Registration in Entra must hold for a configuration, derived
//! once and shown two ways: `check-config`'s checklist and
//! `app-registration`'s Graph `application` manifest with `az` commands.

use crate::config::{Config, TenantType};
use serde_json::{Value, json};

/// Microsoft Graph's application id (the same in every national cloud).
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// A Graph permission the registration requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub name: &'static str,
    /// The permission's id in Graph's service principal (stable, documented).
    pub id: &'static str,
    /// `Scope` (delegated, the signed-in user's) or `Role` (application).
    pub kind: &'static str,
    pub why: &'static str,
}

/// An ID-token optional claim the gateway's rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalClaim {
    pub name: &'static str,
    pub why: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub display_name: String,
    pub sign_in_audience: &'static str,
    /// Callback of every portal at every URL it is reached at.
    pub redirect_uris: Vec<String>,
    /// An App Registration holds exactly one; any portal's ends the `sid`'s
    /// sessions on every portal (and instance).
    pub frontchannel_logout_url: String,
    /// Where Entra's end-session returns; Entra accepts only registered
    /// redirect URIs there, so these are registered as redirect URIs too.
    pub post_logout_redirect_uris: Vec<String>,
    /// "ID tokens" under Authentication: only the id_token flow (no client
    /// credential) needs it; with a credential it stays off.
    pub id_tokens: bool,
    pub optional_claims: Vec<OptionalClaim>,
    pub permissions: Vec<Permission>,
    /// Application permissions need an administrator's consent.
    pub admin_consent: bool,
    pub client_id: String,
    pub graph_host: String,
}

impl Registration {
    pub fn of(c: &Config) -> Registration {
        let mut redirect_uris = Vec::new();
        let mut post_logout = Vec::new();
        for p in &c.portals {
            for url in c.portal_urls(p) {
                redirect_uris.push(format!("{url}/auth/account/azureresponse"));
                post_logout.push(format!("{url}/auth/logged-out"));
            }
        }
        // The first portal with SSO on (its route is the gateway's there).
        let front = c
            .portals
            .iter()
            .find(|p| c.sso.enabled_for(p.kind))
            .or(c.portals.first())
            .map(|p| p.frontchannel_logout_url())
            .unwrap_or_default();
        let mut permissions = vec![
            Permission {
                name: "openid",
                id: "37f7f235-527c-4136-accd-4a02d197296e",
                kind: "Scope",
                why: "sign-in",
            },
            Permission {
                name: "profile",
                id: "14dad69e-099b-42c9-810b-d002981feec1",
                kind: "Scope",
                why: "name in the ID token",
            },
            Permission {
                name: "email",
                id: "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
                kind: "Scope",
                why: "email in the ID token",
            },
        ];
        let csp = c.entra.csp_sync.enabled;
        if csp {
            permissions.push(Permission {
                name: "Directory.Read.All",
                id: "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
                kind: "Role",
                why: "CSP sync reads the partner tenant's customers (GET /v1.0/contracts)",
            });
        }
        let sync = c.directory_sync.enabled;
        if sync {
            permissions.push(Permission {
                name: "User.Read.All",
                id: "df021288-bdef-4463-88db-98f22de89214",
                kind: "Role",
                why: "directory sync reads the users (GET /v1.0/users), also in consenting CSP customers' tenants",
            });
        }
        let host = c
            .portals
            .first()
            .and_then(|p| url::Url::parse(&p.url).ok())
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        Registration {
            display_name: format!("entra-gateway ({host})"),
            sign_in_audience: match c.entra.tenant_type {
                TenantType::Single => "AzureADMyOrg",
                TenantType::Multi => "AzureADMultipleOrgs",
            },
            redirect_uris,
            frontchannel_logout_url: front,
            post_logout_redirect_uris: post_logout,
            id_tokens: c.entra.credential.is_none(),
            optional_claims: vec![
                OptionalClaim {
                    name: "email",
                    why: "X-Auth-Email, and matching by email (sso.match_by: email)",
                },
                OptionalClaim {
                    name: "xms_edov",
                    why: "proves the email's domain is verified by the token's tenant; without it email matching refuses multi-tenant sign-ins",
                },
                OptionalClaim {
                    name: "login_hint",
                    why: "logout_hint at single logout (no account picker)",
                },
                OptionalClaim {
                    name: "sid",
                    why: "front-channel logout ends the sessions of that Entra sign-in",
                },
            ],
            admin_consent: csp || sync,
            permissions,
            client_id: c.entra.client_id.as_str().to_string(),
            graph_host: c.entra.graph_host.clone(),
        }
    }

    /// Every URI for `web.redirectUris`: callbacks, then post-logout pages.
    pub fn all_redirect_uris(&self) -> Vec<String> {
        let mut all = self.redirect_uris.clone();
        all.extend(self.post_logout_redirect_uris.iter().cloned());
        all
    }

    /// The Graph `application` resource (the body of `POST /applications`
    /// or `PATCH /applications(appId='…')`).
    pub fn manifest(&self) -> Value {
        let claims: Vec<Value> = self
            .optional_claims
            .iter()
            .map(|c| json!({ "name": c.name, "source": null, "essential": false, "additionalProperties": [] }))
            .collect();
        let access: Vec<Value> = self
            .permissions
            .iter()
            .map(|p| json!({ "id": p.id, "type": p.kind }))
            .collect();
        json!({
            "displayName": self.display_name,
            "signInAudience": self.sign_in_audience,
            "web": {
                "redirectUris": self.all_redirect_uris(),
                "logoutUrl": self.frontchannel_logout_url,
                "implicitGrantSettings": {
                    "enableIdTokenIssuance": self.id_tokens,
                    "enableAccessTokenIssuance": false,
                },
            },
            "optionalClaims": { "idToken": claims, "accessToken": [], "saml2Token": [] },
            "requiredResourceAccess": [ { "resourceAppId": GRAPH_APP_ID, "resourceAccess": access } ],
        })
    }

    /// A reviewable bash script: the manifest, then the `az` commands that
    /// create or update the registration to exactly it.
    pub fn az_script(&self, config_path: &str) -> String {
        let manifest = serde_json::to_string_pretty(&self.manifest()).unwrap_or_default();
        let graph = &self.graph_host;
        let mut s = String::new();
        s.push_str("#!/usr/bin/env bash\n");
        s.push_str(&format!(
            "# The App Registration for entra-gateway with {config_path}.\n\
             # Generated by `entra-gateway app-registration`: review it, then run it with the\n\
             # Azure CLI signed in to the home tenant (`az login --tenant <tenant>`).\n"
        ));
        s.push_str("set -euo pipefail\n\n");
        s.push_str("cat > entra-gateway-app.json <<'JSON'\n");
        s.push_str(&manifest);
        s.push_str("\nJSON\n\n");
        s.push_str(&format!(
            "# A new registration: leave APP_ID unset and one is created (then put its appId in\n\
             # entra.client_id). An existing one (entra.client_id) is updated in place.\n\
             APP_ID=\"${{APP_ID:-{id}}}\"\n\
             if ! az ad app show --id \"$APP_ID\" >/dev/null 2>&1; then\n  \
               APP_ID=$(az ad app create --display-name \"{name}\" --sign-in-audience {aud} --query appId -o tsv)\n  \
               echo \"created appId $APP_ID: set entra.client_id to it\"\n\
             fi\n\
             # Redirect URIs, the front-channel logout URL, ID tokens, optional claims and\n\
             # permissions, set exactly as above:\n\
             az rest --method PATCH --uri \"{graph}/v1.0/applications(appId='$APP_ID')\" \\\n  \
               --headers Content-Type=application/json --body @entra-gateway-app.json\n\
             # The enterprise application (service principal) in the home tenant:\n\
             az ad sp show --id \"$APP_ID\" >/dev/null 2>&1 || az ad sp create --id \"$APP_ID\" >/dev/null\n",
            id = self.client_id,
            name = self.display_name,
            aud = self.sign_in_audience,
        ));
        if self.admin_consent {
            s.push_str(
                "# Application permissions (CSP sync, directory sync) take effect after an administrator's consent:\n\
                 az ad app permission admin-consent --id \"$APP_ID\"\n",
            );
        }
        if !self.id_tokens {
            s.push_str(
                "# The client credential: a certificate (entra.client_certificate), which Microsoft\n\
                 # recommends over secrets:\n\
                 # az ad app credential reset --id \"$APP_ID\" --cert @app-cert.pem --append\n\
                 # or a client secret (entra.client_secret / client_secret_file):\n\
                 # az ad app credential reset --id \"$APP_ID\" --display-name entra-gateway --years 1 --query password -o tsv\n",
            );
        }
        s
    }

    /// `check-config`'s checklist, one item per line.
    pub fn checklist(&self) -> Vec<String> {
        let mut out = vec![
            format!(
                "Supported account types: {}",
                match self.sign_in_audience {
                    "AzureADMyOrg" => "accounts in this organizational directory only (single tenant)",
                    _ => "accounts in any organizational directory (multitenant)",
                }
            ),
            "Authentication > Web platform:".to_string(),
        ];
        for u in &self.redirect_uris {
            out.push(format!("  redirect URI:             {u}"));
        }
        for u in &self.post_logout_redirect_uris {
            out.push(format!("  redirect URI:             {u}   (post-logout redirect URI)"));
        }
        out.push(format!("  front-channel logout URL: {}", self.frontchannel_logout_url));
        out.push(if self.id_tokens {
            "  ID tokens (implicit and hybrid flows): on (no client credential: id_token + form_post)".to_string()
        } else {
            "  ID tokens (implicit and hybrid flows): off (authorization code + PKCE with the client credential)"
                .to_string()
        });
        out.push("Token configuration > optional claims (ID token):".to_string());
        for c in &self.optional_claims {
            out.push(format!("  {:<10} {}", c.name, c.why));
        }
        out.push("API permissions (Microsoft Graph):".to_string());
        for p in &self.permissions {
            let kind = if p.kind == "Role" { "application" } else { "delegated" };
            out.push(format!("  {:<19} {kind:<11} {}", p.name, p.why));
        }
        if self.admin_consent {
            out.push("  grant admin consent (application permissions need it)".to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    const BASE: &str = r#"
server: { listen: "127.0.0.1:8080" }
upstream: { url: "http://127.0.0.1:9000" }
sso: { published: true, agents: true, users: true, single_logout: true }
portals:
  - { name: agent, kind: agent, url: "https://halo.example.com" }
  - { name: portal, kind: user, url: "https://halo.example.com/portal" }
identity: { audience: halo }
"#;

    fn golden(name: &str, yaml: &str) {
        let got = serde_json::to_string_pretty(&Registration::of(&config(yaml)).manifest()).unwrap() + "\n";
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/registration/golden/{name}.json"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(got, want, "{name}: run with UPDATE_GOLDEN=1 and review the diff");
    }

    #[test]
    fn single_tenant_without_a_secret() {
        golden(
            "single",
            &format!(
                "{BASE}entra: {{ tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1 }}\n"
            ),
        );
    }

    #[test]
    fn multi_tenant_with_a_secret() {
        golden(
            "multi",
            &format!(
                "{BASE}entra: {{ tenant_type: multi, tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1, client_secret: s, sign_in_scope: all }}\n"
            ),
        );
    }

    #[test]
    fn clients_hosts_are_registered_per_portal() {
        golden(
            "clients",
            &format!(
                "{BASE}entra: {{ tenant_type: multi, tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1, client_secret: s, allowed_tenants: [bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb] }}\n\
                 clients:\n  - {{ name: contoso, hosts: [\"contoso.example.com\"], tenant_id: bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb }}\n"
            ),
        );
    }

    #[test]
    fn csp_sync_asks_for_directory_read_with_admin_consent() {
        golden(
            "csp",
            &format!(
                "{BASE}entra: {{ tenant_type: multi, tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1, client_secret: s, csp_sync: {{ enabled: true }} }}\n"
            ),
        );
        let r = Registration::of(&config(&format!(
            "{BASE}entra: {{ tenant_type: multi, tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1, client_secret: s, csp_sync: {{ enabled: true }} }}\n"
        )));
        let script = r.az_script("config.yaml");
        assert!(script.contains("az ad app permission admin-consent"), "{script}");
        assert!(script.contains("https://graph.microsoft.com/v1.0/applications(appId='$APP_ID')"));
    }

    #[test]
    fn directory_sync_asks_for_user_read_all_with_admin_consent() {
        let yaml = format!(
            "{BASE}entra: {{ tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1, client_secret: s }}\n\
             directory: {{ kind: builtin, sync: {{ enabled: true }} }}\n"
        );
        golden("directory_sync", &yaml);
        let r = Registration::of(&config(&yaml));
        assert!(r.admin_consent);
        let lines = r.checklist();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("User.Read.All") && l.contains("application")),
            "{lines:?}"
        );
        assert!(r.az_script("c.yaml").contains("az ad app permission admin-consent"));
        // Without the sync, the permission is not asked for.
        let off = Registration::of(&config(&yaml.replace("enabled: true", "enabled: false")));
        assert!(!off.permissions.iter().any(|p| p.name == "User.Read.All"));
        assert!(!off.admin_consent);
    }

    #[test]
    fn exactly_one_frontchannel_logout_url_and_every_post_logout_uri() {
        let r = Registration::of(&config(&format!(
            "{BASE}entra: {{ tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1 }}\n"
        )));
        assert_eq!(
            r.frontchannel_logout_url,
            "https://halo.example.com/auth/account/frontchannel-logout"
        );
        assert_eq!(
            r.post_logout_redirect_uris,
            [
                "https://halo.example.com/auth/logged-out",
                "https://halo.example.com/portal/auth/logged-out"
            ]
        );
        let lines = r.checklist();
        assert_eq!(
            lines.iter().filter(|l| l.contains("front-channel logout URL")).count(),
            1
        );
        assert!(
            r.id_tokens
                && lines
                    .iter()
                    .any(|l| l.contains("ID tokens (implicit and hybrid flows): on"))
        );
        for claim in ["email", "xms_edov", "login_hint", "sid"] {
            assert!(
                lines.iter().any(|l| l.trim_start().starts_with(claim)),
                "{claim}: {lines:?}"
            );
        }
    }

    #[test]
    fn national_clouds_use_their_graph_host() {
        let r = Registration::of(&config(&format!(
            "{BASE}entra: {{ cloud: usgov, tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1 }}\n"
        )));
        assert!(
            r.az_script("c.yaml")
                .contains("https://graph.microsoft.us/v1.0/applications"),
            "{}",
            r.graph_host
        );
    }
}
