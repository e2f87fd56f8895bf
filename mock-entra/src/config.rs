//! What the mock knows: tenants, people, app registrations, Graph contracts
//! and which tenants consented to Graph.

use serde_json::{Map, Value};

/// A person who can sign in.
#[derive(Debug, Clone)]
pub struct MockUser {
    /// The UPN typed into the login form; also `preferred_username`.
    pub username: String,
    pub name: String,
    /// The optional `email` claim (absent for many real accounts).
    pub email: Option<String>,
    pub oid: String,
    pub tenant: String,
}

/// An app registration.
#[derive(Debug, Clone, Default)]
pub struct MockApp {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
    /// "Front-channel logout URL": framed by the end-session page, with the
    /// `sid` of the Entra session being ended.
    pub frontchannel_logout_url: Option<String>,
    /// Certificates & secrets > Certificates: `private_key_jwt` assertions
    /// signed by one of these are accepted.
    pub certificates: Vec<MockCertificate>,
    /// Federated credentials: tokens of these external issuers are accepted
    /// as client assertions (workload identity federation).
    pub federated: Vec<MockFederatedCredential>,
}

/// A registered certificate: its SHA-256 thumbprint (base64url of the DER
/// digest, the `x5t#S256` header) and the public key inside it.
#[derive(Debug, Clone)]
pub struct MockCertificate {
    pub x5t_s256: String,
    pub public_key_pem: String,
}

/// A federated identity credential: issuer, subject and audience of the
/// external token, and the issuer's public key (Entra fetches it from the
/// issuer's discovery; the tests hand it over).
#[derive(Debug, Clone)]
pub struct MockFederatedCredential {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    pub public_key_pem: String,
}

#[derive(Debug, Clone, Default)]
pub struct MockEntraConfig {
    pub tenants: Vec<String>,
    pub users: Vec<MockUser>,
    pub apps: Vec<MockApp>,
    /// Fields replaced in every discovery document (to test a gateway
    /// that must refuse a tampered one).
    pub discovery_overrides: Map<String, Value>,
    /// The host in issuers (`iss`, discovery, JWK `issuer`), e.g. a national
    /// cloud's; default: where the mock is served.
    pub issuer_host: Option<String>,
    /// `customerId`s served by Graph `GET /v1.0/contracts`.
    pub contracts: Vec<String>,
    /// Contracts per Graph page (default 2, so paging is exercised).
    pub contracts_page_size: usize,
    /// Users per Graph `/v1.0/users` page (0: the request's `$top`), so a
    /// few users are enough to exercise paging.
    pub users_page_size: usize,
    /// Tenants that never consented to the app: the client-credentials grant
    /// there is refused (`AADSTS700016`).
    pub unconsented_tenants: Vec<String>,
    /// Tenants that consented without `User.Read.All`: Graph `/v1.0/users`
    /// answers 403 `Authorization_RequestDenied` to their tokens.
    pub users_forbidden_tenants: Vec<String>,
    /// Outages in force from the start (see [`MockEntra::set_faults`](crate::MockEntra::set_faults)).
    pub faults: Vec<MockFault>,
}

/// One of Entra's endpoints, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockEndpoint {
    Discovery,
    Keys,
    Authorize,
    Token,
}

impl MockEndpoint {
    /// The endpoint a request path is for (any tenant).
    pub fn of_path(path: &str) -> Option<MockEndpoint> {
        if path.ends_with("/.well-known/openid-configuration") {
            Some(MockEndpoint::Discovery)
        } else if path.ends_with("/discovery/v2.0/keys") {
            Some(MockEndpoint::Keys)
        } else if path.ends_with("/oauth2/v2.0/authorize") {
            Some(MockEndpoint::Authorize)
        } else if path.ends_with("/oauth2/v2.0/token") {
            Some(MockEndpoint::Token)
        } else {
            None
        }
    }
}

/// How an endpoint misbehaves, as Entra or the network in between does
/// during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answers this status with an empty JSON error body.
    Status(u16),
    /// Accepts the request and never answers.
    Hang,
    /// Answers normally after this long.
    Delay(std::time::Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockFault {
    pub endpoint: MockEndpoint,
    pub kind: FaultKind,
}
