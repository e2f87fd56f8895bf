//! `directory.kind: builtin`: records the gateway keeps itself, in a
//! [`RecordStore`] (Redis hashes when instances share Redis, so every
//! instance sees the same directory; memory for a single one).
//!
//! A record is stored under its key; two indexes point an identity
//! (`<tid>:<oid>`) and an email at the key that holds it. An index entry is
//! only a hint: every lookup re-reads the record and checks that it still
//! has that email / (tid, oid), so a stale or half-written index (a crash
//! between two writes) can never match anybody. Records are written before
//! the index entries that point at them, and released entries are deleted
//! only while they still point at the record releasing them.

use super::records::{Index, RecordStore};
use super::{Directory, DirectoryError, UserRecord, email_key};
use crate::session::SharedValues;
use async_trait::async_trait;
use std::sync::Arc;

fn id_entry(tid: &str, oid: &str) -> String {
    format!("{}:{}", tid.to_ascii_lowercase(), oid.to_ascii_lowercase())
}

fn is_bound_to(rec: &UserRecord, tid: &str, oid: &str) -> bool {
    rec.tid.as_ref().is_some_and(|t| t.as_str().eq_ignore_ascii_case(tid))
        && rec.oid.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(oid))
}

fn has_email(rec: &UserRecord, email: &str) -> bool {
    rec.email.as_deref().is_some_and(|e| email_key(e) == email_key(email))
}

/// The identity a record is bound to, if both halves are there.
fn binding(rec: &UserRecord) -> Option<(&str, &str)> {
    Some((rec.tid.as_ref()?.as_str(), rec.oid.as_deref()?))
}

/// The index entries a record holds.
fn entries(rec: &UserRecord) -> Vec<(Index, String)> {
    let mut v = Vec::new();
    if let Some((tid, oid)) = binding(rec) {
        v.push((Index::Identity, id_entry(tid, oid)));
    }
    if let Some(email) = &rec.email {
        v.push((Index::Email, email_key(email)));
    }
    v
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

/// Where directories written before the [`RecordStore`] lived: JSON values
/// in the shared values (`dir:u:<key>` records, `dir:keys` the key list).
const LEGACY_KEYS: &str = "dir:keys";

pub struct BuiltinDirectory {
    records: Arc<dyn RecordStore>,
}

impl BuiltinDirectory {
    pub fn new(records: Arc<dyn RecordStore>) -> Self {
        BuiltinDirectory { records }
    }

    /// The record with this key.
    pub async fn get(&self, key: &str) -> Result<Option<UserRecord>, DirectoryError> {
        match self.records.record(key).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_str(&raw)
                .map(Some)
                .map_err(|e| DirectoryError::Unavailable(format!("corrupt directory record {key:?}: {e}"))),
        }
    }

    async fn via_index(&self, index: Index, entry: &str) -> Result<Option<UserRecord>, DirectoryError> {
        match self.records.lookup(index, entry).await? {
            Some(key) => self.get(&key).await,
            None => Ok(None),
        }
    }

    /// The record bound to (tid, oid), verified against the record itself.
    pub(crate) async fn id_owner(&self, tid: &str, oid: &str) -> Result<Option<UserRecord>, DirectoryError> {
        Ok(self
            .via_index(Index::Identity, &id_entry(tid, oid))
            .await?
            .filter(|r| is_bound_to(r, tid, oid)))
    }

    /// The record with this email, verified against the record itself.
    pub(crate) async fn email_owner(&self, email: &str) -> Result<Option<UserRecord>, DirectoryError> {
        Ok(self
            .via_index(Index::Email, &email_key(email))
            .await?
            .filter(|r| has_email(r, email)))
    }

    /// Every record, sorted by key.
    pub async fn list(&self) -> Result<Vec<UserRecord>, DirectoryError> {
        let mut out = Vec::new();
        for key in self.records.keys().await? {
            // Gone between the listing and the read: not an error.
            if let Some(rec) = self.get(&key).await? {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Adds or replaces a record (by key) and keeps the indexes consistent.
    /// Refuses a record whose email or (tid, oid) another record already has.
    pub async fn upsert(&self, rec: &UserRecord) -> Result<Change, DirectoryError> {
        let rec = checked(rec)?;
        self.refuse_conflicts(&rec).await?;
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
            Some(c) => Err(DirectoryError::Conflict(c.what)),
            None => Ok(()),
        }
    }

    /// Writes a valid, normalised record, taking its email and identity
    /// entries from whoever held them (callers check
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
            self.records.put_record(&rec.key, &raw).await?;
        }
        // Claimed even when unchanged: this repairs an index a crash left
        // unwritten, at the cost of one read per entry.
        let claimed = entries(rec);
        for (index, entry) in &claimed {
            if self.records.lookup(*index, entry).await?.as_deref() != Some(rec.key.as_str()) {
                self.records.point(*index, entry, &rec.key).await?;
            }
        }
        // Release what the previous version held and this one does not.
        if let Some(old) = &old {
            for (index, entry) in entries(old).iter().filter(|e| !claimed.contains(e)) {
                self.records.release(*index, entry, &rec.key).await?;
            }
        }
        Ok(change)
    }

    /// Moves a directory written by an earlier version (JSON values in the
    /// session store, see [`LEGACY_KEYS`]) into the record store, then empties
    /// the legacy key list so the next start has nothing to do. Records
    /// already in the record store win; a legacy record that conflicts with
    /// one is skipped and logged. The legacy values themselves are left in
    /// place (an earlier version rolled back to still finds its records).
    /// Returns how many records moved.
    pub async fn migrate_legacy(&self, legacy: &dyn SharedValues) -> Result<usize, DirectoryError> {
        let Some(raw) = legacy.get_value(LEGACY_KEYS).await? else {
            return Ok(0);
        };
        let keys: Vec<String> = serde_json::from_str(&raw)
            .map_err(|e| DirectoryError::Unavailable(format!("corrupt legacy directory key list: {e}")))?;
        if keys.is_empty() {
            return Ok(0);
        }
        let mut moved = 0;
        for key in &keys {
            if self.records.record(key).await?.is_some() {
                continue;
            }
            let raw = match legacy.get_value(&format!("dir:u:{key}")).await? {
                Some(raw) if !raw.is_empty() => raw,
                // Listed before it was written (an interrupted write).
                _ => continue,
            };
            let rec = serde_json::from_str::<UserRecord>(&raw)
                .map_err(|e| DirectoryError::Invalid(e.to_string()))
                .and_then(|r| checked(&r));
            let rec = match rec {
                Ok(rec) => rec,
                Err(e) => {
                    tracing::warn!(event = "directory_migration_skipped", key = %key, error = %e);
                    continue;
                }
            };
            if let Some(c) = self.conflicts(&rec).await?.into_iter().next() {
                tracing::warn!(event = "directory_migration_skipped", key = %key, error = %c.what);
                continue;
            }
            self.put(&rec).await?;
            moved += 1;
        }
        legacy.put_value(LEGACY_KEYS, "[]").await?;
        tracing::info!(event = "directory_migrated", records = moved, listed = keys.len());
        Ok(moved)
    }
}

/// Validated and normalised, or why not.
fn checked(rec: &UserRecord) -> Result<UserRecord, DirectoryError> {
    let problems = rec.problems();
    if problems.is_empty() {
        Ok(rec.clone())
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
            return Err(DirectoryError::NotFound(key.to_string()));
        };
        if is_bound_to(&rec, tid, oid) {
            return Ok(());
        }
        // Matching never asks for these; refusing here too means a race
        // between two sign-ins cannot move a record to a second identity.
        if rec.oid.is_some() {
            return Err(DirectoryError::Conflict(format!(
                "record {key:?} is bound to another identity"
            )));
        }
        if rec.tid.as_ref().is_some_and(|t| !t.as_str().eq_ignore_ascii_case(tid)) {
            return Err(DirectoryError::Conflict(format!(
                "record {key:?} belongs to another tenant"
            )));
        }
        rec.tid = Some(
            tid.parse()
                .map_err(|_| DirectoryError::Invalid(format!("tid {tid:?} is not a GUID")))?,
        );
        rec.oid = Some(oid.to_string());
        let rec = checked(&rec)?;
        self.refuse_conflicts(&rec).await?;
        self.put(&rec).await.map(|_| ())
    }

    async fn create(&self, rec: &UserRecord) -> Result<UserRecord, DirectoryError> {
        let rec = checked(rec)?;
        if self.get(&rec.key).await?.is_some() {
            return Err(DirectoryError::Conflict(format!("record {:?} already exists", rec.key)));
        }
        self.refuse_conflicts(&rec).await?;
        self.put(&rec).await?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::records::MemoryRecords;
    use crate::directory::tests::record;
    use crate::session::{MemoryStore, SharedValues};
    use policy::{PortalKind, TenantId};

    const T1: &str = "11111111-1111-4111-8111-111111111111";
    const T2: &str = "22222222-2222-4222-8222-222222222222";

    fn dir() -> (Arc<MemoryRecords>, BuiltinDirectory) {
        let store = Arc::new(MemoryRecords::new());
        (store.clone(), BuiltinDirectory::new(store))
    }

    fn bound(key: &str, tid: &str, oid: &str) -> UserRecord {
        UserRecord {
            tid: Some(tid.parse().unwrap()),
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
        assert_eq!(got.tid.as_ref().map(TenantId::as_str), Some(T1));
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
            store.lookup(Index::Email, "ann@contoso.com").await.unwrap(),
            None,
            "released, not left pointing"
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
        assert_eq!(store.lookup(Index::Identity, &id_entry(T1, "o1")).await.unwrap(), None);
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
        store.point(Index::Email, "old@contoso.com", "ann").await.unwrap();
        store.point(Index::Identity, &id_entry(T2, "o9"), "ann").await.unwrap();
        store.point(Index::Email, "ghost@contoso.com", "ghost").await.unwrap();
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
        assert!(matches!(d.upsert(&same_email).await, Err(DirectoryError::Conflict(m)) if m.contains("already used")));
        let same_id = bound("bob", T1, "o1");
        assert!(matches!(d.upsert(&same_id).await, Err(DirectoryError::Conflict(m)) if m.contains("already bound")));
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
            oid: Some("o1".into()),
            ..record("ann")
        };
        assert!(matches!(d.upsert(&bad).await, Err(DirectoryError::Invalid(m)) if m.contains("without tid")));
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
        assert!(matches!(
            d.bind("ann", T1, "o2").await,
            Err(DirectoryError::Conflict(_))
        ));
        assert!(matches!(
            d.bind("nobody", T1, "o1").await,
            Err(DirectoryError::NotFound(_))
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
            tid: Some(T1.parse().unwrap()),
            ..record("ann")
        };
        d.upsert(&pinned).await.unwrap();
        assert!(matches!(
            d.bind("ann", T2, "o1").await,
            Err(DirectoryError::Conflict(_))
        ));
        d.upsert(&bound("bob", T1, "o1")).await.unwrap();
        // (T1, o1) is bob's: ann cannot take it.
        assert!(matches!(
            d.bind("ann", T1, "o1").await,
            Err(DirectoryError::Conflict(_))
        ));
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
        assert!(matches!(d.create(&new).await, Err(DirectoryError::Conflict(m)) if m.contains("already exists")));
        d.upsert(&record("a")).await.unwrap();
        let keys: Vec<_> = d.list().await.unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["a", "u-1"]);
    }

    #[tokio::test]
    async fn a_corrupt_record_makes_the_directory_unavailable() {
        let (store, d) = dir();
        d.upsert(&record("b")).await.unwrap();
        let keys: Vec<_> = d.list().await.unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["b"]);
        store.put_record("b", "{not json").await.unwrap();
        assert!(matches!(d.list().await, Err(DirectoryError::Unavailable(_))));
        assert!(matches!(d.get("b").await, Err(DirectoryError::Unavailable(_))));
    }

    /// A directory as the previous version wrote it: JSON values in the
    /// session store, a JSON key list, `""` for released index entries.
    async fn legacy(values: &MemoryStore, recs: &[UserRecord], listed: &[&str]) {
        for r in recs {
            let raw = serde_json::to_string(r).unwrap();
            values.put_value(&format!("dir:u:{}", r.key), &raw).await.unwrap();
            if let Some(e) = &r.email {
                values
                    .put_value(&format!("dir:email:{}", email_key(e)), &r.key)
                    .await
                    .unwrap();
            }
        }
        values.put_value("dir:email:gone@contoso.com", "").await.unwrap();
        values
            .put_value(LEGACY_KEYS, &serde_json::to_string(listed).unwrap())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_legacy_directory_is_migrated_once() {
        let (_, d) = dir();
        let values = MemoryStore::new();
        let ann = bound("ann", T1, "o1");
        let bob = record("bob");
        // "ghost" is listed without a record (an interrupted write).
        legacy(&values, &[ann.clone(), bob.clone()], &["ann", "bob", "ghost"]).await;
        assert_eq!(d.migrate_legacy(&values).await.unwrap(), 2);
        assert_eq!(d.by_id(T1, "o1").await.unwrap(), Some(ann.clone()));
        assert_eq!(d.by_email("bob@contoso.com", T1).await.unwrap(), Some(bob));
        let keys: Vec<_> = d.list().await.unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["ann", "bob"]);
        // Done: the legacy list is empty, the legacy records stay (rollback).
        assert_eq!(values.get_value(LEGACY_KEYS).await.unwrap().as_deref(), Some("[]"));
        assert!(values.get_value("dir:u:ann").await.unwrap().is_some());
        assert_eq!(d.migrate_legacy(&values).await.unwrap(), 0);
        // Nothing legacy at all: nothing to do.
        assert_eq!(d.migrate_legacy(&MemoryStore::new()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn migration_never_overwrites_or_conflicts_with_current_records() {
        let (_, d) = dir();
        let current = UserRecord {
            name: Some("Ann (current)".into()),
            ..bound("ann", T1, "o1")
        };
        d.upsert(&current).await.unwrap();
        let values = MemoryStore::new();
        // An older copy of ann, and carol who claims ann's identity.
        legacy(
            &values,
            &[bound("ann", T1, "o1"), bound("carol", T1, "o1")],
            &["ann", "carol"],
        )
        .await;
        assert_eq!(d.migrate_legacy(&values).await.unwrap(), 0);
        assert_eq!(d.get("ann").await.unwrap(), Some(current.clone()));
        assert_eq!(d.get("carol").await.unwrap(), None);
        assert_eq!(d.by_id(T1, "o1").await.unwrap(), Some(current));
    }
}
