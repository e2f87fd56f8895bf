//! National clouds: one profile drives every Entra and Graph URL.
//!
//! Hosts from Microsoft's national-cloud documentation
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/authentication-national-cloud>
//! and <https://learn.microsoft.com/en-us/graph/deployments>); see docs/clouds.md.

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl Cloud {
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgov_dod",
            Cloud::China => "china",
        }
    }

    /// Where browsers sign in and where discovery, JWKS and tokens are served.
    pub fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The host in the `iss` of this cloud's v2 tokens.
    pub fn issuer_host(self) -> &'static str {
        match self {
            Cloud::China => "https://login.partner.microsoftonline.cn",
            other => other.login_host(),
        }
    }

    pub fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

impl FromStr for Cloud {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "global" => Cloud::Global,
            "usgov" => Cloud::UsGov,
            "usgov_dod" => Cloud::UsGovDod,
            "china" => Cloud::China,
            other => {
                return Err(format!(
                    "unknown cloud {other:?} (expected global, usgov, usgov_dod or china)"
                ));
            }
        })
    }
}
