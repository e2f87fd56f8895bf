//! The gateway's second factor: each user's TOTP enrolment (secret sealed
//! with `two_factor.encryption_key`, hashed recovery codes, the last step
//! used, failed attempts) kept in the shared store, and the "don't ask again"
//! cookie. The rules (window, replay, lockout, who, cookie validity) are
//! `policy::two_factor`'s; this module does the crypto and the storage.
//!
//! Records live under `two_factor:<user key>` in [`SharedValues`], so every
//! instance sees the same enrolment, attempts and reset generation. Writes
//! are read-modify-write without a lock, so the record alone could let two
//! instances judging one code in the same instant both accept it; a code is
//! therefore also *spent* with a lease that only one caller can take (see
//! [`Factors::spend`]). Failed attempts may still undercount under such a
//! race; the per-address limit bounds that.

pub mod keys;
pub mod qr;

use crate::config::TwoFactor as Settings;
use crate::session::{SharedValues, StoreError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keys::FactorKeys;
use policy::two_factor::{self as rules, Attempts, CodeRefusal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The store key prefix of the per-user records.
pub const STORE_PREFIX: &str = "two_factor:";
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// 160-bit secrets, as RFC 4226 recommends.
const SECRET_LEN: usize = 20;
/// How long a spent code stays spent: past the last instant any instance
/// (clocks a little apart) could still accept it (±1 step of 30 s).
const SPENT_FOR: std::time::Duration = std::time::Duration::from_secs(180);
/// Addresses remembered for the per-address limit (per instance).
const IP_ATTEMPTS_MAX: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The record cannot be read back (corrupt, or sealed with another key).
    #[error("two-factor record of this user cannot be opened: {0}")]
    Unreadable(String),
    #[error("two_factor.encryption_key is not configured")]
    NoKey,
}

/// One user's second factor, as stored (JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FactorRecord {
    /// Moves on at every reset: "don't ask again" cookies issued before are void.
    #[serde(default)]
    pub generation: u64,
    /// The TOTP secret, sealed (AES-256-GCM, bound to the user key); set at
    /// the first enrolment page, confirmed by the first good code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub enrolled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_at: Option<i64>,
    /// Per-user salt of the recovery code digests (base64url).
    #[serde(default)]
    pub recovery_salt: String,
    /// SHA-256(salt ‖ code), hex; a used code is removed.
    #[serde(default)]
    pub recovery: Vec<String>,
    /// The last TOTP step accepted (replay refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub locked_until: i64,
}

impl FactorRecord {
    pub fn attempts(&self) -> Attempts {
        Attempts {
            failures: self.failures,
            locked_until: self.locked_until,
        }
    }

    pub fn set_attempts(&mut self, a: Attempts) {
        self.failures = a.failures;
        self.locked_until = a.locked_until;
    }
}

/// How a code was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Totp,
    RecoveryCode,
}

pub struct Factors {
    keys: Option<FactorKeys>,
    store: Arc<dyn SharedValues>,
    /// Per client address, this instance only: a shared counter per address
    /// would be a store write per wrong code from anyone; the per-user
    /// counter (shared) is the one that protects an account.
    /// Shared with the `Factors` of a reloaded configuration: a SIGHUP must
    /// not hand a guessing address a fresh set of tries.
    by_ip: Arc<Mutex<HashMap<IpAddr, Attempts>>>,
}

/// The RFC 6238 parameters the authenticator apps all support.
fn totp(secret: Vec<u8>) -> Option<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(rules::STEP_SECS)
        .with_skew(0)
        .with_secret(secret)
        .build()
        .ok()
}

/// The code of `secret` at `step` (tests and the CLI compute codes too).
pub fn code_at(secret: &[u8], step: u64) -> Option<String> {
    totp(secret.to_vec()).map(|t| t.generate(step * rules::STEP_SECS).to_string())
}

/// Base32 (RFC 4648, no padding), as authenticator apps take it typed in.
pub fn base32(secret: &[u8]) -> String {
    totp_rs::Secret::new(secret.into()).to_base32()
}

/// What a person types for a recovery code: spaces and dashes and case do
/// not matter.
fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn recovery_digest(salt: &str, code: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(normalise_recovery(code).as_bytes());
    crate::session::hex(&h.finalize())
}

/// A recovery code: 10 characters of an unambiguous alphabet (~50 bits),
/// shown as `xxxxx-xxxxx`.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 10];
    rand::fill(&mut bytes);
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

impl Factors {
    pub fn new(settings: &Settings, store: Arc<dyn SharedValues>) -> Self {
        Factors {
            keys: settings.encryption_key.as_ref().map(|k| FactorKeys::derive(k.expose())),
            store,
            by_ip: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The factors of a reloaded configuration (its key may have changed;
    /// enrolments are in the store), keeping this instance's per-address
    /// attempts.
    pub fn reconfigured(&self, settings: &Settings) -> Self {
        Factors {
            by_ip: self.by_ip.clone(),
            ..Factors::new(settings, self.store.clone())
        }
    }

    fn keys(&self) -> Result<&FactorKeys, FactorError> {
        self.keys.as_ref().ok_or(FactorError::NoKey)
    }

    fn store_key(user: &str) -> String {
        format!("{STORE_PREFIX}{user}")
    }

    /// The user's record (a fresh one when there is none).
    pub async fn record(&self, user: &str) -> Result<FactorRecord, FactorError> {
        match self.store.get_value(&Self::store_key(user)).await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| FactorError::Unreadable(e.to_string())),
            None => Ok(FactorRecord::default()),
        }
    }

    pub async fn save(&self, user: &str, r: &FactorRecord) -> Result<(), FactorError> {
        let json = serde_json::to_string(r).map_err(|e| FactorError::Unreadable(e.to_string()))?;
        self.store.put_value(&Self::store_key(user), &json).await?;
        Ok(())
    }

    /// The secret being enrolled or in use, creating (and storing) one for a
    /// user who has none yet.
    pub async fn secret_for_enrolment(&self, user: &str, r: &mut FactorRecord) -> Result<Vec<u8>, FactorError> {
        if let Some(sealed) = &r.secret {
            return self.open_secret(user, sealed);
        }
        let mut secret = vec![0u8; SECRET_LEN];
        rand::fill(secret.as_mut_slice());
        r.secret = Some(
            self.keys()?
                .seal(&secret, user)
                .map_err(|e| FactorError::Unreadable(e.to_string()))?,
        );
        self.save(user, r).await?;
        Ok(secret)
    }

    fn open_secret(&self, user: &str, sealed: &str) -> Result<Vec<u8>, FactorError> {
        self.keys()?
            .open(sealed, user)
            .map_err(|e| FactorError::Unreadable(e.to_string()))
    }

    /// Judges a code (TOTP, or once enrolled a recovery code) and records
    /// what it used; does not count failures (see [`failed`](Self::failed)).
    pub fn check(&self, user: &str, r: &mut FactorRecord, code: &str, now: i64) -> Result<Accepted, CodeRefusal> {
        let code = code.trim();
        let is_totp = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        if is_totp {
            let secret = r
                .secret
                .as_deref()
                .and_then(|s| self.open_secret(user, s).ok())
                .ok_or(CodeRefusal::Wrong)?;
            let t = totp(secret).ok_or(CodeRefusal::Wrong)?;
            let step = rules::verify_code(now.max(0) as u64, r.last_step, |step| {
                t.check(code, step * rules::STEP_SECS).is_some()
            })?;
            r.last_step = Some(step);
            return Ok(Accepted::Totp);
        }
        if !r.enrolled {
            return Err(CodeRefusal::Wrong);
        }
        let digest = recovery_digest(&r.recovery_salt, code);
        match r.recovery.iter().position(|d| d == &digest) {
            Some(i) => {
                r.recovery.remove(i);
                Ok(Accepted::RecoveryCode)
            }
            None => Err(CodeRefusal::Wrong),
        }
    }

    /// Spends a code [`check`](Self::check) accepted, once across every
    /// instance: the first caller takes a lease named by the code's step (or
    /// recovery code) and gets `true`; anyone else judging the same code from
    /// another copy of the record gets `false`, a replay. Keyed by the reset
    /// generation too, so a new enrolment's codes never collide with the old.
    pub async fn spend(&self, user: &str, r: &FactorRecord, how: Accepted, code: &str) -> Result<bool, FactorError> {
        let what = match how {
            Accepted::Totp => match r.last_step {
                Some(step) => format!("totp:{step}"),
                None => return Ok(true),
            },
            Accepted::RecoveryCode => format!("recovery:{}", recovery_digest(&r.recovery_salt, code)),
        };
        let key = format!("two_factor_spent:{user}:{}:{what}", r.generation);
        Ok(self.store.try_lease(&key, SPENT_FOR).await?)
    }

    /// Completes an enrolment: new recovery codes (returned once, stored hashed).
    pub fn enrol(&self, r: &mut FactorRecord, now: i64) -> Vec<String> {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        r.recovery_salt = URL_SAFE_NO_PAD.encode(salt);
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        r.recovery = codes.iter().map(|c| recovery_digest(&r.recovery_salt, c)).collect();
        r.enrolled = true;
        r.enrolled_at = Some(now);
        codes
    }

    /// Lockout in force for this address (seconds left).
    pub fn ip_locked(&self, ip: Option<IpAddr>, now: i64) -> Option<i64> {
        let ip = ip?;
        self.lock_ips().get(&ip).and_then(|a| a.locked(now))
    }

    pub fn ip_failed(&self, ip: Option<IpAddr>, now: i64) -> Option<i64> {
        let ip = ip?;
        let mut map = self.lock_ips();
        if map.len() >= IP_ATTEMPTS_MAX && !map.contains_key(&ip) {
            // Bounded: forget the addresses whose lockout is over.
            map.retain(|_, a| a.locked(now).is_some());
        }
        let a = map.entry(ip).or_default();
        *a = a.failed(now);
        a.locked(now)
    }

    pub fn ip_succeeded(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.lock_ips().remove(&ip);
        }
    }

    fn lock_ips(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Attempts>> {
        // Single inserts and removes: poison is harmless.
        self.by_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Voids the enrolment (the next sign-in enrols anew) and every
    /// "don't ask again" cookie issued for the user. Returns the new generation.
    pub async fn reset(&self, user: &str) -> Result<u64, FactorError> {
        // A record that cannot be read is replaced all the same: a reset is
        // what support does when something is wrong with it.
        let old = self.record(user).await.map(|r| r.generation).unwrap_or_default();
        let fresh = FactorRecord {
            generation: old + 1,
            ..FactorRecord::default()
        };
        self.save(user, &fresh).await?;
        Ok(fresh.generation)
    }

    /// A "don't ask again" cookie value: `payload.tag`, payload =
    /// base64url(JSON {u, g, e}), tag = HMAC-SHA256 of the payload.
    pub fn remember_cookie(&self, user: &str, generation: u64, expires_at: i64) -> Result<String, FactorError> {
        let payload = serde_json::json!({ "u": user, "g": generation, "e": expires_at }).to_string();
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let tag = self.keys()?.sign(payload.as_bytes());
        Ok(format!("{payload}.{tag}"))
    }

    /// Whether a "don't ask again" cookie lets `user` skip the step now.
    pub fn remembered(&self, value: &str, user: &str, generation: u64, now: i64) -> bool {
        #[derive(Deserialize)]
        struct Claims {
            u: String,
            g: u64,
            e: i64,
        }
        let Ok(keys) = self.keys() else { return false };
        let Some((payload, tag)) = value.split_once('.') else {
            return false;
        };
        if !keys.verify(payload.as_bytes(), tag) {
            return false;
        }
        let Some(c) = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice::<Claims>(&b).ok())
        else {
            return false;
        };
        rules::remembered_valid(
            &rules::Remembered {
                user: &c.u,
                generation: c.g,
                expires_at: c.e,
            },
            user,
            generation,
            now,
        )
    }
}

/// Every outcome is a metric and a log line.
pub fn outcome(result: &'static str, portal: &str, user: &str) {
    crate::metrics::METRICS.two_factor.with_label_values(&[result]).inc();
    tracing::info!(event = "two_factor", result, portal, user);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Secret, TwoFactorRequired};
    use crate::session::MemoryStore;

    fn factors() -> Factors {
        Factors::new(&settings(), Arc::new(MemoryStore::new()))
    }

    /// Everyone asked, "don't ask again" on, a fixed key.
    pub(crate) fn settings() -> Settings {
        Settings {
            required_for: TwoFactorRequired::Everyone,
            listed_users: vec![],
            bypass_with_sso: false,
            dont_ask_again: true,
            dont_ask_again_days: 30,
            encryption_key: Some(Secret::new("0123456789abcdef0123456789abcdef".into())),
        }
    }

    #[tokio::test]
    async fn enrol_verify_replay_recovery_reset() {
        let f = factors();
        let mut r = f.record("ann").await.unwrap();
        let secret = f.secret_for_enrolment("ann", &mut r).await.unwrap();
        assert_eq!(secret.len(), SECRET_LEN);
        // Stored sealed, and the same secret on the next page view.
        let mut again = f.record("ann").await.unwrap();
        assert!(!again.secret.as_deref().unwrap().contains(&base32(&secret)));
        assert_eq!(f.secret_for_enrolment("ann", &mut again).await.unwrap(), secret);

        let now = 1_800_000_000;
        let code = code_at(&secret, now as u64 / 30).unwrap();
        assert_eq!(f.check("ann", &mut r, "000000x", now), Err(CodeRefusal::Wrong));
        // Recovery codes only once enrolled.
        assert_eq!(f.check("ann", &mut r, "abcde-fghjk", now), Err(CodeRefusal::Wrong));
        assert_eq!(f.check("ann", &mut r, &code, now), Ok(Accepted::Totp));
        assert_eq!(f.check("ann", &mut r, &code, now), Err(CodeRefusal::Replayed));
        let codes = f.enrol(&mut r, now);
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(r.recovery.iter().all(|d| !codes.contains(d)), "stored hashed");
        let spaced = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(f.check("ann", &mut r, &spaced, now), Ok(Accepted::RecoveryCode));
        assert_eq!(f.check("ann", &mut r, &codes[3], now), Err(CodeRefusal::Wrong), "once");
        assert_eq!(r.recovery.len(), RECOVERY_CODES - 1);
        // Another user's record with this secret copied over does not open.
        assert_eq!(
            f.check(
                "bob",
                &mut r.clone(),
                &code_at(&secret, now as u64 / 30 + 1).unwrap(),
                now
            ),
            Err(CodeRefusal::Wrong)
        );

        f.save("ann", &r).await.unwrap();
        let g = f.reset("ann").await.unwrap();
        assert_eq!(g, 1);
        let after = f.record("ann").await.unwrap();
        assert!(!after.enrolled && after.secret.is_none() && after.recovery.is_empty());
    }

    /// Two instances reading the record before either saved it both accept
    /// the code by the record alone; only one may spend it.
    #[tokio::test]
    async fn a_code_is_spent_once_across_copies_of_the_record() {
        let store = Arc::new(MemoryStore::new());
        let settings = settings();
        let (one, two) = (Factors::new(&settings, store.clone()), Factors::new(&settings, store));
        let mut r = one.record("ann").await.unwrap();
        let secret = one.secret_for_enrolment("ann", &mut r).await.unwrap();
        let now = 1_800_000_000;
        let codes = one.enrol(&mut r, now);
        one.save("ann", &r).await.unwrap();
        let (mut a, mut b) = (one.record("ann").await.unwrap(), two.record("ann").await.unwrap());
        let code = code_at(&secret, now as u64 / 30).unwrap();
        assert_eq!(one.check("ann", &mut a, &code, now), Ok(Accepted::Totp));
        assert_eq!(
            two.check("ann", &mut b, &code, now),
            Ok(Accepted::Totp),
            "the record alone cannot tell"
        );
        assert!(one.spend("ann", &a, Accepted::Totp, &code).await.unwrap());
        assert!(!two.spend("ann", &b, Accepted::Totp, &code).await.unwrap(), "a replay");
        // The next step's code is a new one.
        let next = code_at(&secret, now as u64 / 30 + 1).unwrap();
        assert_eq!(two.check("ann", &mut b, &next, now + 30), Ok(Accepted::Totp));
        assert!(two.spend("ann", &b, Accepted::Totp, &next).await.unwrap());
        // Recovery codes likewise, and another user's spend is their own.
        let (mut a, mut b) = (one.record("ann").await.unwrap(), two.record("ann").await.unwrap());
        assert_eq!(one.check("ann", &mut a, &codes[0], now), Ok(Accepted::RecoveryCode));
        assert_eq!(two.check("ann", &mut b, &codes[0], now), Ok(Accepted::RecoveryCode));
        assert!(one.spend("ann", &a, Accepted::RecoveryCode, &codes[0]).await.unwrap());
        assert!(!two.spend("ann", &b, Accepted::RecoveryCode, &codes[0]).await.unwrap());
        assert!(one.spend("bob", &a, Accepted::RecoveryCode, &codes[0]).await.unwrap());
        // After a reset the generation differs: the same step is not spent for the new enrolment.
        one.reset("ann").await.unwrap();
        let fresh = one.record("ann").await.unwrap();
        let mut stepped = fresh.clone();
        stepped.last_step = a.last_step;
        assert!(one.spend("ann", &stepped, Accepted::Totp, &code).await.unwrap());
    }

    #[tokio::test]
    async fn reset_clears_the_record() {
        let f = factors();
        let mut r = f.record("ann").await.unwrap();
        f.secret_for_enrolment("ann", &mut r).await.unwrap();
        f.save("ann", &r).await.unwrap();
        let g = f.reset("ann").await.unwrap();
        assert_eq!(g, 1);
        let after = f.record("ann").await.unwrap();
        assert!(!after.enrolled && after.secret.is_none() && after.recovery.is_empty());
    }

    #[test]
    fn a_reload_keeps_the_per_address_attempts() {
        let f = factors();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = 1_800_000_000;
        let at = (0..100).find(|i| f.ip_failed(Some(ip), now + i).is_some());
        let at = now + at.expect("an address is locked out after enough wrong codes");
        let reloaded = f.reconfigured(&Settings {
            dont_ask_again: false,
            encryption_key: Some(Secret::new("fedcba9876543210fedcba9876543210".into())),
            ..settings()
        });
        assert!(
            reloaded.ip_locked(Some(ip), at).is_some(),
            "still locked after a reload"
        );
        // What a reload did before: a new table, the address free again.
        assert!(factors().ip_locked(Some(ip), at).is_none());
    }

    #[test]
    fn remember_cookie_rules() {
        let f = factors();
        let c = f.remember_cookie("ann", 2, 1_000).unwrap();
        assert!(f.remembered(&c, "ann", 2, 999));
        assert!(!f.remembered(&c, "bob", 2, 999));
        assert!(!f.remembered(&c, "ann", 3, 999));
        assert!(!f.remembered(&c, "ann", 2, 1_001));
        let (payload, tag) = c.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"u":"bob","g":2,"e":1000}"#);
        assert!(!f.remembered(&format!("{forged}.{tag}"), "bob", 2, 999));
        assert!(!f.remembered(payload, "ann", 2, 999));
        assert!(!f.remembered("", "ann", 2, 999));
    }

    #[test]
    fn address_lockout() {
        let f = factors();
        let ip: Option<IpAddr> = Some("10.0.0.1".parse().unwrap());
        for _ in 0..rules::FREE_FAILURES {
            assert_eq!(f.ip_failed(ip, 100), None);
        }
        assert_eq!(f.ip_failed(ip, 100), Some(rules::FIRST_LOCKOUT_SECS));
        assert!(f.ip_locked(ip, 100).is_some());
        assert!(f.ip_locked(Some("10.0.0.2".parse().unwrap()), 100).is_none());
        f.ip_succeeded(ip);
        assert!(f.ip_locked(ip, 100).is_none());
        assert_eq!(f.ip_failed(None, 100), None);
    }
}
