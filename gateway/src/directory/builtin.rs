//! `directory.kind: builtin`: records kept in the session store, so every
//! instance sharing the store (Redis) sees the same directory.
//!
//! Layout, through the store's generic values only:
//!
//! | value | holds |
//! |---|---|
//! | `dir:u:<key>` | the record, JSON |
//! | `dir:id:<tid>:<oid>` | the key of the record bound to that identity (both lower-case) |
//! | `dir:email:<email>` | the key of the record with that email (lower-case) |
//! | `dir:keys` | JSON array of every key, for listing |
//!
//! The store has no delete and no transactions, so an index entry is only a
//! hint: a stale one is overwritten with `""` when noticed, and every lookup
//! re-reads the record and checks that it still has that email / (tid, oid).
//! A stale or half-written index can therefore never match anybody.

use super::{Directory, DirectoryError, UserRecord, email_key};
use crate::session::Store;
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::Arc;

const KEYS: &str = "dir:keys";

fn record_slot(key: &str) -> String {
    format!("dir:u:{key}")
}

fn id_slot(tid: &str, oid: &str) -> String {
    format!("dir:id:{}:{}", tid.to_ascii_lowercase(), oid.to_ascii_lowercase())
}

fn email_slot(email: &str) -> String {
    format!("dir:email:{}", email_key(email))
}

fn is_bound_to(rec: &UserRecord, tid: &str, oid: &str) -> bool {
    rec.tid.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(tid))
        && rec.oid.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(oid))
}

fn has_email(rec: &UserRecord, email: &str) -> bool {
    rec.email.as_deref().is_some_and(|e| email_key(e) == email_key(email))
}

/// The identity a record is bound to, if both halves are there.
fn binding(rec: &UserRecord) -> Option<(&str, &str)> {
    Some((rec.tid.as_deref()?, rec.oid.as_deref()?))
}

/// What [`BuiltinDirectory::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Unchanged,
}

/// Another record holding an email or identity that a write wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// The other record's key.
    pub other: String,
    /// The sentence for the operator.
    pub what: String,
}

pub struct BuiltinDirectory {
    store: Arc<dyn Store>,
}

impl BuiltinDirectory {
    pub fn new(store: Arc<dyn Store>) -> Self {
        BuiltinDirectory { store }
    }

    /// The record with this key.
    pub async fn get(&self, key: &str) -> Result<Option<UserRecord>, DirectoryError> {
        match self.store.get_value(&record_slot(key)).await? {
            None => Ok(None),
            Some(raw) if raw.is_empty() => Ok(None),
            Some(raw) => serde_json::from_str(&raw)
                .map(Some)
                .map_err(|e| DirectoryError::Unavailable(format!("corrupt directory record {key:?}: {e}"))),
        }
    }

    async fn via_index(&self, slot: &str) -> Result<Option<UserRecord>, DirectoryError> {
        match self.store.get_value(slot).await? {
            Some(key) if !key.is_empty() => self.get(&key).await,
            _ => Ok(None),
        }
    }

    /// The record bound to (tid, oid), verified against the record itself.
    pub(crate) async fn id_owner(&self, tid: &str, oid: &str) -> Result<Option<UserRecord>, DirectoryError> {
        Ok(self
            .via_index(&id_slot(tid, oid))
            .await?
            .filter(|r| is_bound_to(r, tid, oid)))
    }

    /// The record with this email, verified against the record itself.
    pub(crate) async fn email_owner(&self, email: &str) -> Result<Option<UserRecord>, DirectoryError> {
        Ok(self
            .via_index(&email_slot(email))
            .await?
            .filter(|r| has_email(r, email)))
    }

    /// Every record, sorted by key.
    pub async fn list(&self) -> Result<Vec<UserRecord>, DirectoryError> {
        let mut out = Vec::new();
        // A key whose record is missing was listed by a write that did not
        // finish; it is skipped, not an error.
        for key in self.keys().await? {
            if let Some(rec) = self.get(&key).await? {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn keys(&self) -> Result<BTreeSet<String>, DirectoryError> {
        match self.store.get_value(KEYS).await? {
            None => Ok(BTreeSet::new()),
            Some(raw) => serde_json::from_str(&raw)
                .map_err(|e| DirectoryError::Unavailable(format!("corrupt directory key list: {e}"))),
        }
    }

    /// Adds keys to the listing. Keys are listed *before* their records are
    /// written, so a crash leaves at most a listed key without a record
    /// (skipped by [`list`](Self::list)), never an unlisted record. The store
    /// has no atomic append: the write is checked and repeated a few times
    /// so that two instances auto-creating at once do not lose each other's
    /// keys (only `directory list` would miss them; matching uses the indexes).
    pub(crate) async fn add_keys(&self, new: &[String]) -> Result<(), DirectoryError> {
        for _ in 0..5 {
            let mut keys = self.keys().await?;
            if new.iter().all(|k| keys.contains(k)) {
                return Ok(());
            }
            keys.extend(new.iter().cloned());
            let raw = serde_json::to_string(&keys).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
            self.store.put_value(KEYS, &raw).await?;
        }
        let keys = self.keys().await?;
        if new.iter().all(|k| keys.contains(k)) {
            Ok(())
        } else {
            Err(DirectoryError::Unavailable(
                "the directory key list keeps changing".into(),
            ))
        }
    }

    /// Adds or replaces a record (by key) and keeps the indexes consistent.
    /// Refuses a record whose email or (tid, oid) another record already has.
    pub async fn upsert(&self, rec: &UserRecord) -> Result<Change, DirectoryError> {
        let rec = checked(rec)?;
        self.refuse_conflicts(&rec).await?;
        if self.get(&rec.key).await?.is_none() {
            self.add_keys(std::slice::from_ref(&rec.key)).await?;
        }
        self.put(&rec).await
    }

    /// The other records that stand in the way of this one: they have the
    /// same email, or are bound to the same identity. Empty: free to write.
    pub(crate) async fn conflicts(&self, rec: &UserRecord) -> Result<Vec<Conflict>, DirectoryError> {
        let mut v = Vec::new();
        if let Some((tid, oid)) = binding(rec)
            && let Some(other) = self.id_owner(tid, oid).await?
            && other.key != rec.key
        {
            v.push(Conflict {
                what: format!("identity {tid}:{oid} is already bound to record {:?}", other.key),
                other: other.key,
            });
        }
        if let Some(email) = &rec.email
            && let Some(other) = self.email_owner(email).await?
            && other.key != rec.key
        {
            v.push(Conflict {
                what: format!("email {email:?} is already used by record {:?}", other.key),
                other: other.key,
            });
        }
        Ok(v)
    }

    async fn refuse_conflicts(&self, rec: &UserRecord) -> Result<(), DirectoryError> {
        match self.conflicts(rec).await?.into_iter().next() {
            Some(c) => Err(DirectoryError::Invalid(c.what)),
            None => Ok(()),
        }
    }

    /// Writes a valid, normalised record whose key is already listed, taking
    /// its email and identity slots from whoever held them (callers check
    /// [`conflicts`](Self::conflicts) first, before writing anything).
    pub(crate) async fn put(&self, rec: &UserRecord) -> Result<Change, DirectoryError> {
        let old = self.get(&rec.key).await?;
        let change = match &old {
            None => Change::Added,
            Some(o) if o == rec => Change::Unchanged,
            Some(_) => Change::Updated,
        };
        if change != Change::Unchanged {
            let raw = serde_json::to_string(rec).map_err(|e| DirectoryError::Invalid(e.to_string()))?;
            self.store.put_value(&record_slot(&rec.key), &raw).await?;
        }
        // Claimed even when unchanged: this repairs an index a crash left
        // unwritten, at the cost of one read per slot.
        let mut claimed = Vec::new();
        if let Some((tid, oid)) = binding(rec) {
            claimed.push(id_slot(tid, oid));
        }
        if let Some(email) = &rec.email {
            claimed.push(email_slot(email));
        }
        for slot in &claimed {
            self.point(slot, &rec.key).await?;
        }
        // Release what the previous version held and this one does not.
        if let Some(old) = &old {
            let mut released = Vec::new();
            if let Some((tid, oid)) = binding(old) {
                released.push(id_slot(tid, oid));
            }
            if let Some(email) = &old.email {
                released.push(email_slot(email));
            }
            for slot in released.iter().filter(|s| !claimed.contains(s)) {
                if self.store.get_value(slot).await?.as_deref() == Some(rec.key.as_str()) {
                    self.store.put_value(slot, "").await?;
                }
            }
        }
        Ok(change)
    }

    async fn point(&self, slot: &str, key: &str) -> Result<(), DirectoryError> {
        if self.store.get_value(slot).await?.as_deref() != Some(key) {
            self.store.put_value(slot, key).await?;
        }
        Ok(())
    }
}

/// Validated and normalised, or why not.
fn checked(rec: &UserRecord) -> Result<UserRecord, DirectoryError> {
    let problems = rec.problems();
    if problems.is_empty() {
        Ok(rec.clone().normalized())
    } else {
        Err(DirectoryError::Invalid(format!(
            "{:?}: {}",
            rec.key,
            problems.join("; ")
        )))
    }
}

#[async_trait]
impl Directory for BuiltinDirectory {
    async fn by_id(&self, tid: &str, oid: &str) -> Result<Option<UserRecord>, DirectoryError> {
        self.id_owner(tid, oid).await
    }

    /// Emails are unique in the builtin directory, across tenants, so `tid`
    /// does not narrow the lookup (matching checks the record's tenant).
    async fn by_email(&self, email: &str, _tid: &str) -> Result<Option<UserRecord>, DirectoryError> {
        self.email_owner(email).await
    }

    async fn bind(&self, key: &str, tid: &str, oid: &str) -> Result<(), DirectoryError> {
        let Some(mut rec) = self.get(key).await? else {
            return Err(DirectoryError::Invalid(format!("no record {key:?} to bind")));
        };
        if is_bound_to(&rec, tid, oid) {
            return Ok(());
        }
        // Matching never asks for these; refusing here too means a race
        // between two sign-ins cannot move a record to a second identity.
        if rec.oid.is_some() {
            return Err(DirectoryError::Invalid(format!(
                "record {key:?} is bound to another identity"
            )));
        }
        if rec.tid.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case(tid)) {
            return Err(DirectoryError::Invalid(format!(
                "record {key:?} belongs to another tenant"
            )));
        }
        rec.tid = Some(tid.to_string());
        rec.oid = Some(oid.to_string());
        let rec = checked(&rec)?;
        self.refuse_conflicts(&rec).await?;
        self.put(&rec).await.map(|_| ())
    }

    async fn create(&self, rec: &UserRecord) -> Result<UserRecord, DirectoryError> {
        let rec = checked(rec)?;
        if self.get(&rec.key).await?.is_some() {
            return Err(DirectoryError::Invalid(format!("record {:?} already exists", rec.key)));
        }
        self.refuse_conflicts(&rec).await?;
        self.add_keys(std::slice::from_ref(&rec.key)).await?;
        self.put(&rec).await?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::record;
    use crate::session::MemoryStore;
    use policy::PortalKind;

    const T1: &str = "11111111-1111-4111-8111-111111111111";
    const T2: &str = "22222222-2222-4222-8222-222222222222";

    fn dir() -> (Arc<MemoryStore>, BuiltinDirectory) {
        let store = Arc::new(MemoryStore::new());
        (store.clone(), BuiltinDirectory::new(store))
    }

    fn bound(key: &str, tid: &str, oid: &str) -> UserRecord {
        UserRecord {
            tid: Some(tid.into()),
            oid: Some(oid.into()),
            ..record(key)
        }
    }

    #[tokio::test]
    async fn upsert_reports_changes_and_lookups_find_records() {
        let (_, d) = dir();
        assert_eq!(d.upsert(&record("ann")).await.unwrap(), Change::Added);
        assert_eq!(d.upsert(&record("ann")).await.unwrap(), Change::Unchanged);
        let renamed = UserRecord {
            name: Some("Ann".into()),
            ..record("ann")
        };
        assert_eq!(d.upsert(&renamed).await.unwrap(), Change::Updated);
        assert_eq!(d.upsert(&renamed).await.unwrap(), Change::Unchanged);
        assert_eq!(d.get("ann").await.unwrap(), Some(renamed.clone()));
        // Email lookups ignore case.
        assert_eq!(d.by_email("ANN@Contoso.com", T1).await.unwrap(), Some(renamed.clone()));
        assert_eq!(d.by_email("bob@contoso.com", T1).await.unwrap(), None);
        assert_eq!(d.by_id(T1, "o1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn tenant_ids_are_stored_lower_case_and_ids_match_in_any_case() {
        let (_, d) = dir();
        let upper = bound("ann", &T1.to_uppercase(), "O1");
        d.upsert(&upper).await.unwrap();
        let got = d.by_id(T1, "o1").await.unwrap().unwrap();
        assert_eq!(got.tid.as_deref(), Some(T1));
        assert_eq!(got.oid.as_deref(), Some("O1"));
        assert!(d.by_id(&T1.to_uppercase(), "O1").await.unwrap().is_some());
        // Same record again, in upper case: nothing to change.
        assert_eq!(d.upsert(&upper).await.unwrap(), Change::Unchanged);
    }

    #[tokio::test]
    async fn email_change_reindexes_and_the_old_email_no_longer_matches() {
        let (store, d) = dir();
        d.upsert(&record("ann")).await.unwrap();
        let moved = UserRecord {
            email: Some("ann.new@contoso.com".into()),
            ..record("ann")
        };
        assert_eq!(d.upsert(&moved).await.unwrap(), Change::Updated);
        assert_eq!(d.by_email("ann@contoso.com", T1).await.unwrap(), None);
        assert_eq!(d.by_email("ann.new@contoso.com", T1).await.unwrap(), Some(moved));
        assert_eq!(
            store.get_value("dir:email:ann@contoso.com").await.unwrap().as_deref(),
            Some("")
        );
        // The freed email can be given to someone else.
        let bob = UserRecord {
            email: Some("Ann@contoso.com".into()),
            ..record("bob")
        };
        d.upsert(&bob).await.unwrap();
        assert_eq!(d.by_email("ann@contoso.com", T1).await.unwrap().unwrap().key, "bob");
    }

    #[tokio::test]
    async fn oid_change_reindexes() {
        let (store, d) = dir();
        d.upsert(&bound("ann", T1, "o1")).await.unwrap();
        d.upsert(&bound("ann", T1, "o2")).await.unwrap();
        assert_eq!(d.by_id(T1, "o1").await.unwrap(), None);
        assert_eq!(d.by_id(T1, "o2").await.unwrap().unwrap().key, "ann");
        assert_eq!(store.get_value(&id_slot(T1, "o1")).await.unwrap().as_deref(), Some(""));
        // Unbinding releases the identity too.
        d.upsert(&record("ann")).await.unwrap();
        assert_eq!(d.by_id(T1, "o2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_stale_index_never_matches() {
        let (store, d) = dir();
        d.upsert(&bound("ann", T1, "o1")).await.unwrap();
        // Simulate indexes left behind by an interrupted write: they point
        // at a record that no longer has that email / identity.
        store.put_value("dir:email:old@contoso.com", "ann").await.unwrap();
        store.put_value(&id_slot(T2, "o9"), "ann").await.unwrap();
        store.put_value("dir:email:ghost@contoso.com", "ghost").await.unwrap();
        assert_eq!(d.by_email("old@contoso.com", T1).await.unwrap(), None);
        assert_eq!(d.by_id(T2, "o9").await.unwrap(), None);
        assert_eq!(d.by_email("ghost@contoso.com", T1).await.unwrap(), None);
        // And does not block the email from being used by another record.
        let bob = UserRecord {
            email: Some("old@contoso.com".into()),
            ..record("bob")
        };
        assert_eq!(d.upsert(&bob).await.unwrap(), Change::Added);
        assert_eq!(d.by_email("old@contoso.com", T1).await.unwrap().unwrap().key, "bob");
    }

    #[tokio::test]
    async fn conflicting_email_or_identity_is_refused_without_writing() {
        let (_, d) = dir();
        d.upsert(&bound("ann", T1, "o1")).await.unwrap();
        let same_email = record("ann2");
        let same_email = UserRecord {
            email: Some("ANN@contoso.com".into()),
            ..same_email
        };
        assert!(matches!(d.upsert(&same_email).await, Err(DirectoryError::Invalid(m)) if m.contains("already used")));
        let same_id = bound("bob", T1, "o1");
        assert!(matches!(d.upsert(&same_id).await, Err(DirectoryError::Invalid(m)) if m.contains("already bound")));
        assert_eq!(d.get("ann2").await.unwrap(), None);
        assert_eq!(d.get("bob").await.unwrap(), None);
        assert_eq!(d.by_id(T1, "o1").await.unwrap().unwrap().key, "ann");
        let keys: Vec<_> = d.list().await.unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["ann"]);
    }

    #[tokio::test]
    async fn invalid_records_are_refused() {
        let (_, d) = dir();
        let bad = UserRecord {
            tid: Some("x".into()),
            ..record("ann")
        };
        assert!(matches!(d.upsert(&bad).await, Err(DirectoryError::Invalid(m)) if m.contains("GUID")));
        assert!(matches!(d.create(&bad).await, Err(DirectoryError::Invalid(_))));
        assert!(d.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn bind_after_email_match_then_lookup_by_id_survives_email_change() {
        let (_, d) = dir();
        d.upsert(&record("ann")).await.unwrap();
        d.bind("ann", T1, "o1").await.unwrap();
        // Binding twice to the same identity is fine; to another is refused.
        d.bind("ann", T1, "o1").await.unwrap();
        assert!(matches!(d.bind("ann", T1, "o2").await, Err(DirectoryError::Invalid(_))));
        assert!(matches!(
            d.bind("nobody", T1, "o1").await,
            Err(DirectoryError::Invalid(_))
        ));
        let got = d.by_id(T1, "o1").await.unwrap().unwrap();
        assert_eq!(got.key, "ann");
        // The email changes (the operator re-imports it): the binding holds.
        let moved = UserRecord {
            email: Some("ann.new@contoso.com".into()),
            ..got
        };
        d.upsert(&moved).await.unwrap();
        assert_eq!(d.by_id(T1, "o1").await.unwrap(), Some(moved));
    }

    #[tokio::test]
    async fn bind_respects_a_pinned_tenant_and_existing_bindings() {
        let (_, d) = dir();
        let pinned = UserRecord {
            tid: Some(T1.into()),
            ..record("ann")
        };
        d.upsert(&pinned).await.unwrap();
        assert!(matches!(d.bind("ann", T2, "o1").await, Err(DirectoryError::Invalid(_))));
        d.upsert(&bound("bob", T1, "o1")).await.unwrap();
        // (T1, o1) is bob's: ann cannot take it.
        assert!(matches!(d.bind("ann", T1, "o1").await, Err(DirectoryError::Invalid(_))));
        assert_eq!(d.by_id(T1, "o1").await.unwrap().unwrap().key, "bob");
    }

    #[tokio::test]
    async fn create_adds_once_and_lists() {
        let (_, d) = dir();
        let new = UserRecord {
            kind: PortalKind::User,
            ..bound("u-1", T1, "o1")
        };
        assert_eq!(d.create(&new).await.unwrap(), new);
        assert!(matches!(d.create(&new).await, Err(DirectoryError::Invalid(m)) if m.contains("already exists")));
        d.upsert(&record("a")).await.unwrap();
        let keys: Vec<_> = d.list().await.unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["a", "u-1"]);
    }

    #[tokio::test]
    async fn listed_keys_without_records_are_skipped() {
        let (store, d) = dir();
        d.upsert(&record("b")).await.unwrap();
        d.add_keys(&["a".to_string()]).await.unwrap();
        let keys: Vec<_> = d.list().await.unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["b"]);
        store.put_value("dir:u:b", "{not json").await.unwrap();
        assert!(matches!(d.list().await, Err(DirectoryError::Unavailable(_))));
    }
}
