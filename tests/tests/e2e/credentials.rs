//! Secretless client credentials (issue 14): a certificate's
//! `private_key_jwt` assertion and a federated token file, each signing in
//! against a mock Entra that verifies them as Entra does (registered
//! certificate, audience, issuer/subject, expiry, single-use `jti`).

use e2e::*;
use mock_entra::{MockCertificate, MockEntraConfig, MockFederatedCredential};
use serde_json::json;
use std::sync::OnceLock;

/// An RSA key (PKCS#8 PEM), a self-signed certificate of it (PEM), its
/// public key (SPKI PEM) and the certificate's `x5t#S256`.
struct Credential {
    key_pem: String,
    cert_pem: String,
    public_pem: String,
    x5t_s256: String,
}

fn credential() -> Credential {
    use base64::Engine;
    use rsa::Generate;
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::PrivateKey::generate();
    let key_pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
    let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["entra-gateway.test".to_string()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
    Credential {
        key_pem,
        cert_pem: cert.pem(),
        public_pem: pair.public_key_pem(),
        x5t_s256: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest),
    }
}

/// The certificate registered in the App Registration (and the external
/// issuer's key for federation), made once for the whole test binary: the
/// mock's configuration hook is a plain function.
fn registered() -> &'static Credential {
    static C: OnceLock<Credential> = OnceLock::new();
    C.get_or_init(credential)
}

const FED_ISSUER: &str = "https://oidc.cluster.example/7c1a";
const FED_SUBJECT: &str = "system:serviceaccount:gateway:entra-gateway";

fn register(c: &mut MockEntraConfig) {
    let r = registered();
    for app in &mut c.apps {
        app.certificates.push(MockCertificate {
            x5t_s256: r.x5t_s256.clone(),
            public_key_pem: r.public_pem.clone(),
        });
        app.federated.push(MockFederatedCredential {
            issuer: FED_ISSUER.into(),
            subject: FED_SUBJECT.into(),
            audience: "api://AzureADTokenExchange".into(),
            public_key_pem: r.public_pem.clone(),
        });
    }
}

fn write(dir: &std::path::Path, name: &str, content: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// A token as a Kubernetes projected service-account token would be.
fn federated_token(key_pem: &str, subject: &str, exp_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": FED_ISSUER, "sub": subject, "aud": ["api://AzureADTokenExchange"],
        "iat": now, "nbf": now, "exp": now + exp_in,
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}

async fn signs_in(h: &Harness) {
    let b = h.browser();
    let r = b.get(&h.url("/tickets")).await;
    let a = r.location().expect("to the authority").to_string();
    assert!(
        a.contains("response_type=code"),
        "a credential means the code flow: {a}"
    );
    let landed = b.sign_in(&h.url("/"), "alice@contoso.example").await;
    assert_eq!(landed, "/");
    assert_eq!(b.whoami().await.json()["verified"], true);
}

fn online(h: &Harness) -> String {
    let out = h.command(&["check-config", "--online"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_certificate_signs_in_and_an_unregistered_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = registered();
    let cert = write(dir.path(), "cert.pem", &r.cert_pem);
    let key = write(dir.path(), "key.pem", &r.key_pem);
    let h = Harness::start(Options {
        mock: register,
        ..Options::default().patch(json!({ "entra": { "client_certificate": { "cert": cert, "key": key } } }))
    })
    .await;
    signs_in(&h).await;
    let text = online(&h);
    assert!(text.contains("online: client credential ok"), "{text}");
    // Every assertion is single use: a second sign-in needs (and gets) a new one.
    signs_in(&h).await;

    // A certificate Entra does not know: the code exchange is refused.
    let other = credential();
    let cert = write(dir.path(), "other-cert.pem", &other.cert_pem);
    let key = write(dir.path(), "other-key.pem", &other.key_pem);
    let h = Harness::start(Options {
        mock: register,
        ..Options::default().patch(json!({ "entra": { "client_certificate": { "cert": cert, "key": key } } }))
    })
    .await;
    let b = h.browser();
    let a = b.begin_login("/").await;
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    let resp = b.deliver(&fp).await;
    assert_refused(&b, &resp, "code_exchange_failed").await;
    let text = online(&h);
    assert!(
        text.contains("online: client credential FAILED") && text.contains("AADSTS700027"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mock_checks_audience_expiry_and_replay_of_client_assertions() {
    let h = Harness::start(Options {
        mock: register,
        ..Options::default()
    })
    .await;
    let r = registered();
    let token_url = format!("{}/{TENANT}/oauth2/v2.0/token", h.entra.base_url());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let assertion = |aud: &str, exp: i64, jti: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t_s256 = Some(r.x5t_s256.clone());
        let claims = json!({ "aud": aud, "iss": CLIENT_ID, "sub": CLIENT_ID, "jti": jti, "nbf": now - 10, "exp": exp });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(r.key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let http = reqwest::Client::new();
    let post = |a: String| {
        let http = http.clone();
        let url = token_url.clone();
        async move {
            let r = http
                .post(&url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", CLIENT_ID),
                    ("scope", "https://graph.microsoft.com/.default"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let good = assertion(&token_url, now + 300, "jti-1");
    assert_eq!(post(good.clone()).await.0, 200);
    let (status, body) = post(good).await;
    assert_eq!(status, 401, "a jti works once: {body}");
    let (status, body) = post(assertion("https://login.example/other/token", now + 300, "jti-2")).await;
    assert_eq!(status, 401, "another audience: {body}");
    let (status, body) = post(assertion(&token_url, now - 60, "jti-3")).await;
    assert!(status == 401 && body.contains("AADSTS700024"), "expired: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_federated_token_file_signs_in_and_a_wrong_subject_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = registered();
    let file = write(dir.path(), "token", &federated_token(&r.key_pem, FED_SUBJECT, 3600));
    let h = Harness::start(Options {
        mock: register,
        ..Options::default().patch(json!({ "entra": { "federated_token_file": file } }))
    })
    .await;
    signs_in(&h).await;
    // The platform rotates the file; the gateway reads it at every use.
    std::fs::write(
        &file,
        federated_token(&r.key_pem, "system:serviceaccount:other:intruder", 3600),
    )
    .unwrap();
    let text = online(&h);
    assert!(
        text.contains("online: client credential FAILED") && text.contains("AADSTS70021"),
        "{text}"
    );
    std::fs::write(&file, federated_token(&r.key_pem, FED_SUBJECT, 3600)).unwrap();
    assert!(online(&h).contains("online: client credential ok"));
}
