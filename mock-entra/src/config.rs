//! What the mock knows: tenants, people, app registrations, Graph contracts.

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
}
