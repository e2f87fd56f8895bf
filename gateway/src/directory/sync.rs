//! `entra-gateway directory sync` and `directory.sync`: Entra's users (Graph
//! `GET /v1.0/users`, see [`crate::entra::graph_users`]) into the builtin
//! directory, for the home tenant and, with CSP sync on, every customer
//! tenant on the CSP list.
//!
//! One Graph user becomes one record, matched the way a sign-in would be
//! (SPEC §6), so a sync can never give a record to someone a sign-in could
//! not: by (tid, oid) first; then by email only when the email is evidence
//! (the record is pinned to this tenant, or it names no tenant and the user
//! comes from the home tenant); never by `userPrincipalName`; never taking a
//! record bound to another identity or pinned to another tenant. What cannot
//! be matched or written is skipped and reported, never forced.
//!
//! New records are `kind: user` with the key `<tid>:<oid>` (as auto-create
//! makes them): a sync never grants agent (staff) access by itself; an
//! operator promotes with `directory import`. Nothing is deleted: `--prune`
//! disables the records bound to a synced tenant that Graph no longer lists.

use super::builtin::{BuiltinDirectory, Change};
use super::records::MemoryRecords;
use super::{Directory, DirectoryError, UserRecord};
use crate::config::Config;
use crate::entra::graph_users::{self, GraphUser, UsersError};
use crate::metrics::METRICS;
use crate::session::now_unix;
use policy::{PortalKind, TenantId};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

/// How a run writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Count what would change, write nothing.
    pub dry_run: bool,
    /// Disable records of a synced tenant that Graph no longer lists.
    pub prune: bool,
}

/// A tenant whose users are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncTenant {
    pub tid: TenantId,
    /// The home tenant: the operator's own, whose emails are evidence.
    pub home: bool,
    /// The `clients[].name` whose `tenant_id` this is: given to new records.
    pub client: Option<String>,
}

impl SyncTenant {
    /// The home tenant, then each CSP customer once.
    pub fn all(c: &Config, csp_customers: &[TenantId]) -> Vec<SyncTenant> {
        let home = c.entra.tenant_id.clone();
        let mut out = vec![SyncTenant {
            client: client_of(c, &home),
            tid: home,
            home: true,
        }];
        for t in csp_customers {
            if !out.iter().any(|s| &s.tid == t) {
                out.push(SyncTenant {
                    tid: t.clone(),
                    home: false,
                    client: client_of(c, t),
                });
            }
        }
        out
    }
}

fn client_of(c: &Config, t: &TenantId) -> Option<String> {
    c.clients
        .iter()
        .find(|cl| cl.tenant_id.as_ref() == Some(t))
        .map(|cl| cl.name.clone())
}

/// What happened to the records of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    /// Existing records that this run disabled (the Entra account is disabled).
    pub disabled: usize,
    pub unchanged: usize,
    pub skipped: usize,
    /// Records disabled by `--prune` (no longer in Graph).
    pub pruned: usize,
    /// One line per skipped user, for the operator.
    pub notes: Vec<String>,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.created += o.created;
        self.updated += o.updated;
        self.disabled += o.disabled;
        self.unchanged += o.unchanged;
        self.skipped += o.skipped;
        self.pruned += o.pruned;
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} disabled, {} unchanged, {} skipped, {} pruned",
            self.created, self.updated, self.disabled, self.unchanged, self.skipped, self.pruned
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantOutcome {
    Synced(Counts),
    /// The tenant has not consented (token refused, or Graph 403): skipped.
    NotConsented(String),
    /// Graph could not be read (throttled past the retries, an error).
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantReport {
    pub tenant: SyncTenant,
    pub outcome: TenantOutcome,
}

/// What one run did, tenant by tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub tenants: Vec<TenantReport>,
    pub dry_run: bool,
}

impl SyncReport {
    pub fn totals(&self) -> Counts {
        let mut t = Counts::default();
        for r in &self.tenants {
            if let TenantOutcome::Synced(c) = &r.outcome {
                t.add(c);
            }
        }
        t
    }

    /// A customer that has not consented is expected (it is reported and
    /// skipped); the home tenant not answering, or any read failing, is not.
    pub fn failed(&self) -> bool {
        self.tenants.iter().any(|r| match &r.outcome {
            TenantOutcome::Synced(_) => false,
            TenantOutcome::NotConsented(_) => r.tenant.home,
            TenantOutcome::Failed(_) => true,
        })
    }

    /// The operator's report: a line per tenant, the skipped users, totals.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.tenants {
            let what = if r.tenant.home { "home tenant" } else { "CSP customer" };
            match &r.outcome {
                TenantOutcome::Synced(c) => {
                    out.push(format!("{} ({what}): {c}", r.tenant.tid));
                    out.extend(c.notes.iter().map(|n| format!("  skipped {n}")));
                }
                TenantOutcome::NotConsented(e) => {
                    out.push(format!("{} ({what}): skipped, not consented: {e}", r.tenant.tid))
                }
                TenantOutcome::Failed(e) => out.push(format!("{} ({what}): failed: {e}", r.tenant.tid)),
            }
        }
        let verb = if self.dry_run {
            "would be (dry run, nothing written)"
        } else {
            "total"
        };
        out.push(format!("{verb}: {}", self.totals()));
        out
    }
}

/// What to do with one Graph user, given the record bound to its identity
/// and the record holding its email (SPEC §6; pure, tested below).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    Create(UserRecord),
    Update(UserRecord),
    Skip(String),
}

pub(crate) fn plan(
    u: &GraphUser,
    t: &SyncTenant,
    multi_tenant: bool,
    by_id: Option<&UserRecord>,
    by_email: Option<&UserRecord>,
) -> Plan {
    let mail = mail_of(u);
    let name = u.display_name.clone().filter(|n| !n.trim().is_empty());
    let disabled = u.account_enabled == Some(false);
    let target = match (by_id, by_email) {
        (Some(r), _) => r,
        (None, Some(r)) => {
            let email = mail.as_deref().unwrap_or_default();
            if r.oid.is_some() {
                return Plan::Skip(format!(
                    "email {email:?} belongs to record {:?}, bound to another identity",
                    r.key
                ));
            }
            match &r.tid {
                Some(tid) if tid != &t.tid => {
                    return Plan::Skip(format!("email {email:?} belongs to record {:?} of tenant {tid}", r.key));
                }
                Some(_) => {}
                // In a multi-tenant app any customer can put any address on
                // its users: only the home tenant's emails are evidence for a
                // record that names no tenant.
                None if multi_tenant && !t.home => {
                    return Plan::Skip(format!(
                        "email {email:?} belongs to record {:?}, which names no tenant: pin it with tid {} to let this tenant's user take it",
                        r.key, t.tid
                    ));
                }
                None => {}
            }
            r
        }
        (None, None) => {
            return Plan::Create(UserRecord {
                key: format!("{}:{}", t.tid, u.id),
                kind: PortalKind::User,
                email: mail,
                tid: Some(t.tid.clone()),
                oid: Some(u.id.clone()),
                name,
                client: t.client.clone(),
                disabled,
                // The operator's to set (import or the app's directory).
                two_factor: false,
            });
        }
    };
    // Kind, key and client are the operator's; identity, email, name and
    // the account state are Entra's.
    Plan::Update(UserRecord {
        tid: Some(t.tid.clone()),
        oid: Some(u.id.clone()),
        email: mail,
        name: name.or_else(|| target.name.clone()),
        disabled,
        ..target.clone()
    })
}

/// `mail` only: `userPrincipalName` is never an email to match (SPEC §6).
fn mail_of(u: &GraphUser) -> Option<String> {
    u.mail
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
}

/// How a user is named in the report: the UPN says who it is to an operator.
fn label(u: &GraphUser) -> String {
    match &u.user_principal_name {
        Some(upn) => format!("{upn} ({})", u.id),
        None => u.id.clone(),
    }
}

/// Applies one tenant's users to `dir`.
pub async fn apply_tenant(
    dir: &BuiltinDirectory,
    t: &SyncTenant,
    multi_tenant: bool,
    users: &[GraphUser],
    prune: bool,
) -> Result<Counts, DirectoryError> {
    let mut c = Counts::default();
    let mut seen = HashSet::new();
    for u in users {
        seen.insert(u.id.to_ascii_lowercase());
        let by_id = dir.id_owner(t.tid.as_str(), &u.id).await?;
        let by_email = match (&by_id, mail_of(u)) {
            (None, Some(m)) => dir.email_owner(&m).await?,
            _ => None,
        };
        let before = by_id.as_ref().or(by_email.as_ref()).map(|r| r.disabled);
        let done = match plan(u, t, multi_tenant, by_id.as_ref(), by_email.as_ref()) {
            Plan::Skip(why) => Done::Skipped(why),
            Plan::Create(rec) => match dir.create(&rec).await {
                Ok(_) => Done::Created,
                Err(e) => refused(e)?,
            },
            Plan::Update(rec) => {
                let disabling = rec.disabled && before == Some(false);
                match dir.upsert(&rec).await {
                    Ok(Change::Unchanged) => Done::Unchanged,
                    Ok(_) if disabling => Done::Disabled,
                    // The record went away between the lookup and the write.
                    Ok(Change::Added) => Done::Created,
                    Ok(Change::Updated) => Done::Updated,
                    Err(e) => refused(e)?,
                }
            }
        };
        match done {
            Done::Created => c.created += 1,
            Done::Updated => c.updated += 1,
            Done::Disabled => c.disabled += 1,
            Done::Unchanged => c.unchanged += 1,
            Done::Skipped(why) => {
                c.skipped += 1;
                c.notes.push(format!("{}: {why}", label(u)));
            }
        }
    }
    if prune {
        for mut rec in dir.list().await? {
            let ours = rec.tid.as_ref() == Some(&t.tid);
            let gone = rec
                .oid
                .as_ref()
                .is_some_and(|o| !seen.contains(&o.to_ascii_lowercase()));
            if ours && gone && !rec.disabled {
                rec.disabled = true;
                match dir.upsert(&rec).await {
                    Ok(_) => c.pruned += 1,
                    Err(e @ DirectoryError::Unavailable(_)) => return Err(e),
                    Err(e) => {
                        c.skipped += 1;
                        c.notes.push(format!("record {:?} (prune): {e}", rec.key));
                    }
                }
            }
        }
    }
    Ok(c)
}

enum Done {
    Created,
    Updated,
    Disabled,
    Unchanged,
    Skipped(String),
}

/// A write refused for this record only (a conflict, an invalid value) is
/// a skip; the store being down ends the run.
fn refused(e: DirectoryError) -> Result<Done, DirectoryError> {
    match e {
        DirectoryError::Unavailable(_) => Err(e),
        other => Ok(Done::Skipped(other.to_string())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
}

/// One run over `tenants`. With `dry_run` the run works on a copy of the
/// directory (so the counts are exactly what a real run would do) and the
/// directory itself is not written.
pub async fn run(
    http: &reqwest::Client,
    c: &Config,
    dir: &BuiltinDirectory,
    tenants: &[SyncTenant],
    options: SyncOptions,
) -> Result<SyncReport, SyncError> {
    let copy;
    let target = if options.dry_run {
        copy = BuiltinDirectory::new(Arc::new(MemoryRecords::new()));
        for rec in dir.list().await? {
            copy.put(&rec).await?;
        }
        &copy
    } else {
        dir
    };
    let multi = c.entra.tenant_type == crate::config::TenantType::Multi;
    let mut report = SyncReport {
        tenants: Vec::new(),
        dry_run: options.dry_run,
    };
    for t in tenants {
        let outcome = match graph_users::fetch(http, c, &t.tid).await {
            Ok(users) => match apply_tenant(target, t, multi, &users, options.prune).await {
                Ok(counts) => TenantOutcome::Synced(counts),
                Err(e) => return Err(e.into()),
            },
            Err(UsersError::NotConsented(e)) => TenantOutcome::NotConsented(e),
            Err(e) => TenantOutcome::Failed(e.to_string()),
        };
        report.tenants.push(TenantReport {
            tenant: t.clone(),
            outcome,
        });
    }
    Ok(report)
}

/// What the periodic sync last achieved, on whichever instance ran it
/// (readiness reads it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub last_ok: Option<i64>,
    pub last_error: Option<String>,
    pub last_totals: Option<Counts>,
    /// When the run this status describes ended (unix ms).
    pub last_run_ms: Option<i64>,
}

/// Store key of the last run's outcome, which every instance adopts: the
/// instance that failed may not be the one that succeeds next.
pub const STATUS_KEY: &str = "directory_sync_status";

/// The last run's outcome as the store keeps it (no error text: that is in
/// the log of the instance that ran it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedOutcome {
    pub at_ms: i64,
    pub ok: bool,
}

#[derive(Debug, Default)]
pub struct SyncState(Mutex<SyncStatus>);

impl SyncState {
    pub fn get(&self) -> SyncStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes over the outcome of a run another instance made, if newer.
    pub fn adopt(&self, o: SharedOutcome) {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if st.last_run_ms.is_some_and(|t| t >= o.at_ms) {
            return;
        }
        st.last_run_ms = Some(o.at_ms);
        if o.ok {
            st.last_ok = Some(o.at_ms / 1000);
            st.last_error = None;
        } else {
            st.last_error = Some("failed on another instance".to_string());
        }
    }

    /// Records a run: metrics, one log line, the status. A failure keeps
    /// what the last good run wrote (the directory is only ever upserted).
    /// Returns the outcome for the other instances.
    pub fn record(&self, result: &Result<SyncReport, SyncError>) -> SharedOutcome {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let at_ms = crate::session::now_unix_us() / 1000;
        st.last_run_ms = Some(at_ms);
        let error = match result {
            Ok(r) if !r.failed() => None,
            Ok(r) => Some(
                r.tenants
                    .iter()
                    .filter_map(|t| match &t.outcome {
                        TenantOutcome::Failed(e) | TenantOutcome::NotConsented(e) => {
                            Some(format!("{}: {e}", t.tenant.tid))
                        }
                        TenantOutcome::Synced(_) => None,
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(e) => Some(e.to_string()),
        };
        if let Ok(r) = result {
            let t = r.totals();
            for (change, n) in [
                ("created", t.created),
                ("updated", t.updated),
                ("disabled", t.disabled),
                ("skipped", t.skipped),
                ("pruned", t.pruned),
            ] {
                METRICS
                    .directory_sync_users
                    .with_label_values(&[change])
                    .inc_by(n as u64);
            }
            for tr in &r.tenants {
                if let TenantOutcome::NotConsented(e) = &tr.outcome {
                    tracing::warn!(event = "directory_sync_tenant_skipped", tid = %tr.tenant.tid, error = %e);
                }
            }
            st.last_totals = Some(Counts { notes: Vec::new(), ..t });
        }
        let ok = error.is_none();
        match error {
            None => {
                let now = now_unix();
                METRICS.directory_syncs.with_label_values(&["ok"]).inc();
                METRICS.directory_sync_last_success.set(now);
                let t = st.last_totals.clone().unwrap_or_default();
                tracing::info!(
                    event = "directory_sync",
                    result = "ok",
                    created = t.created,
                    updated = t.updated,
                    disabled = t.disabled,
                    skipped = t.skipped,
                    pruned = t.pruned
                );
                st.last_ok = Some(now);
                st.last_error = None;
            }
            Some(e) => {
                METRICS.directory_syncs.with_label_values(&["error"]).inc();
                tracing::warn!(event = "directory_sync", result = "error", error = %e, "records of the last good sync stay");
                st.last_error = Some(e);
            }
        }
        SharedOutcome { at_ms, ok }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::tests::record;

    const HOME: &str = "11111111-1111-4111-8111-111111111111";
    const CUST: &str = "22222222-2222-4222-8222-222222222222";

    fn tenant(t: &str, home: bool) -> SyncTenant {
        SyncTenant {
            tid: t.parse().unwrap(),
            home,
            client: None,
        }
    }

    fn user(id: &str, mail: Option<&str>, name: &str, enabled: bool) -> GraphUser {
        GraphUser {
            id: id.into(),
            display_name: Some(name.into()),
            mail: mail.map(str::to_string),
            user_principal_name: Some(format!("{id}@upn.example")),
            account_enabled: Some(enabled),
        }
    }

    fn dir() -> BuiltinDirectory {
        BuiltinDirectory::new(Arc::new(MemoryRecords::new()))
    }

    #[test]
    fn plans_follow_spec_6() {
        let home = tenant(HOME, true);
        let cust = tenant(CUST, false);
        let u = user("o1", Some("ann@contoso.com"), "Ann", true);
        // Nobody: a user record keyed by the identity.
        let Plan::Create(r) = plan(&u, &home, true, None, None) else {
            panic!()
        };
        assert_eq!(r.key, format!("{HOME}:o1"));
        assert_eq!(r.kind, PortalKind::User);
        assert_eq!(r.email.as_deref(), Some("ann@contoso.com"));
        // Bound to this identity: updated, kind and key kept.
        let bound = UserRecord {
            kind: PortalKind::Agent,
            tid: Some(HOME.parse().unwrap()),
            oid: Some("o1".into()),
            ..record("ann")
        };
        let Plan::Update(r) = plan(&u, &home, true, Some(&bound), None) else {
            panic!()
        };
        assert_eq!(
            (r.key.as_str(), r.kind, r.name.as_deref()),
            ("ann", PortalKind::Agent, Some("Ann"))
        );
        // An unbound record with this email: the home tenant binds it ...
        let Plan::Update(r) = plan(&u, &home, true, None, Some(&record("ann"))) else {
            panic!()
        };
        assert_eq!(r.oid.as_deref(), Some("o1"));
        // ... a customer does not, in a multi-tenant app (nOAuth) ...
        assert!(
            matches!(plan(&u, &cust, true, None, Some(&record("ann"))), Plan::Skip(m) if m.contains("names no tenant"))
        );
        // ... unless the record is pinned to that customer.
        let pinned = UserRecord {
            tid: Some(CUST.parse().unwrap()),
            ..record("ann")
        };
        assert!(matches!(plan(&u, &cust, true, None, Some(&pinned)), Plan::Update(_)));
        // Pinned to another tenant, or bound to another identity: never taken.
        assert!(matches!(plan(&u, &home, true, None, Some(&pinned)), Plan::Skip(m) if m.contains("of tenant")));
        let other = UserRecord {
            tid: Some(HOME.parse().unwrap()),
            oid: Some("o9".into()),
            ..record("ann")
        };
        assert!(matches!(plan(&u, &home, true, None, Some(&other)), Plan::Skip(m) if m.contains("another identity")));
        // The UPN is never an email.
        let no_mail = user("o2", None, "Bob", false);
        let Plan::Create(r) = plan(&no_mail, &home, false, None, None) else {
            panic!()
        };
        assert_eq!(r.email, None);
        assert!(r.disabled);
    }

    #[tokio::test]
    async fn a_tenant_is_applied_renamed_disabled_and_pruned() {
        let d = dir();
        let home = tenant(HOME, true);
        d.upsert(&record("ann")).await.unwrap();
        let users = vec![
            user("o1", Some("ann@contoso.com"), "Ann", true),
            user("o2", Some("bob@contoso.com"), "Bob", true),
            user("o3", None, "Cat", true),
        ];
        let c = apply_tenant(&d, &home, false, &users, false).await.unwrap();
        assert_eq!((c.created, c.updated, c.unchanged, c.skipped), (2, 1, 0, 0), "{c:?}");
        assert_eq!(d.by_id(HOME, "o1").await.unwrap().unwrap().key, "ann");
        let c = apply_tenant(&d, &home, false, &users, false).await.unwrap();
        assert_eq!(c.unchanged, 3, "{c:?}");
        // Bob renamed, Ann disabled, Cat gone.
        let users = vec![
            user("o1", Some("ann@contoso.com"), "Ann", false),
            user("o2", Some("bob@contoso.com"), "Robert", true),
        ];
        let c = apply_tenant(&d, &home, false, &users, false).await.unwrap();
        assert_eq!((c.updated, c.disabled, c.pruned), (1, 1, 0), "{c:?}");
        assert!(d.get("ann").await.unwrap().unwrap().disabled);
        let bob = d.by_id(HOME, "o2").await.unwrap().unwrap();
        assert_eq!(bob.name.as_deref(), Some("Robert"));
        let cat = format!("{HOME}:o3");
        assert!(!d.get(&cat).await.unwrap().unwrap().disabled, "no prune: kept");
        let c = apply_tenant(&d, &home, false, &users, true).await.unwrap();
        assert_eq!((c.pruned, c.unchanged), (1, 2), "{c:?}");
        assert!(
            d.get(&cat).await.unwrap().unwrap().disabled,
            "pruned: disabled, not deleted"
        );
        // Another tenant's records are never pruned by this one.
        let c = apply_tenant(&d, &tenant(CUST, false), true, &[], true).await.unwrap();
        assert_eq!(c.pruned, 0);
    }

    #[tokio::test]
    async fn conflicts_are_skipped_and_reported() {
        let d = dir();
        let home = tenant(HOME, true);
        // Two Entra users with one address: the second cannot have it.
        let users = vec![
            user("o1", Some("x@contoso.com"), "X1", true),
            user("o2", Some("X@contoso.com"), "X2", true),
        ];
        let c = apply_tenant(&d, &home, false, &users, false).await.unwrap();
        assert_eq!((c.created, c.skipped), (1, 1), "{c:?}");
        assert!(c.notes[0].starts_with("o2@upn.example (o2): "), "{:?}", c.notes);
        // A mail that is not an address is the record's problem, not the run's.
        let c = apply_tenant(&d, &home, false, &[user("o4", Some("not mail"), "N", true)], false)
            .await
            .unwrap();
        assert_eq!(c.skipped, 1, "{c:?}");
    }

    #[test]
    fn report_lines_and_failure() {
        let ok = TenantReport {
            tenant: tenant(HOME, true),
            outcome: TenantOutcome::Synced(Counts {
                created: 2,
                skipped: 1,
                notes: vec!["u: why".into()],
                ..Counts::default()
            }),
        };
        let unconsented = TenantReport {
            tenant: tenant(CUST, false),
            outcome: TenantOutcome::NotConsented("403".into()),
        };
        let r = SyncReport {
            tenants: vec![ok.clone(), unconsented.clone()],
            dry_run: false,
        };
        assert!(!r.failed(), "a customer without consent is skipped, not a failure");
        let lines = r.lines();
        assert_eq!(
            lines,
            [
                format!("{HOME} (home tenant): 2 created, 0 updated, 0 disabled, 0 unchanged, 1 skipped, 0 pruned"),
                "  skipped u: why".to_string(),
                format!("{CUST} (CSP customer): skipped, not consented: 403"),
                "total: 2 created, 0 updated, 0 disabled, 0 unchanged, 1 skipped, 0 pruned".to_string(),
            ]
        );
        let home_down = SyncReport {
            tenants: vec![TenantReport {
                tenant: tenant(HOME, true),
                outcome: TenantOutcome::NotConsented("403".into()),
            }],
            dry_run: true,
        };
        assert!(home_down.failed());
        assert!(home_down.lines().last().unwrap().starts_with("would be (dry run"));
        let state = SyncState::default();
        let failed = state.record(&Ok(home_down));
        assert!(!failed.ok);
        assert!(state.get().last_error.is_some());
        let good = state.record(&Ok(r));
        assert!(good.ok && good.at_ms >= failed.at_ms);
        let st = state.get();
        assert!(st.last_error.is_none() && st.last_ok.is_some());
        assert_eq!(st.last_totals.unwrap().created, 2);
        // Another instance's outcome counts only when newer.
        state.adopt(failed);
        assert!(state.get().last_error.is_none());
        let other = SyncState::default();
        other.adopt(failed);
        assert_eq!(other.get().last_error.as_deref(), Some("failed on another instance"));
        other.adopt(SharedOutcome {
            at_ms: failed.at_ms + 1,
            ok: true,
        });
        assert!(other.get().last_error.is_none());
    }
}
