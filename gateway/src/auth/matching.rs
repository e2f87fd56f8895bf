//! Who the signed-in Entra identity is in the application: the directory
//! lookups, then `policy::matching` decides (SPEC §6, nOAuth-safe).

use crate::app::App;
use crate::config::TenantType;
use crate::directory::{Directory, DirectoryError, UserRecord, email_key};
use crate::session::LoginRecord;
use policy::claims::VerifiedIdentity;
use policy::matching::{Claimed, MatchDecision, decide, may_auto_create};
use policy::{PortalKind, Reason};

/// The directory key of the person, and whether the record was just created.
pub struct Resolved {
    pub user_key: String,
    pub new_user: bool,
    /// The record is flagged for the second factor (`two_factor.required_for: listed`).
    pub two_factor: bool,
}

/// Lookups only fail when the directory cannot answer.
fn unavailable(e: DirectoryError) -> Reason {
    refused(e)
}

/// The refusal a directory error means; outages and configuration gaps are
/// the operator's to see in the log.
fn refused(e: DirectoryError) -> Reason {
    match &e {
        DirectoryError::Unavailable(_) | DirectoryError::NotConfigured(_) => {
            tracing::warn!(event = "directory_error", error = %e);
        }
        _ => {}
    }
    e.reason()
}

pub async fn resolve(
    app: &App,
    portal: PortalKind,
    id: &VerifiedIdentity,
    login: &LoginRecord,
) -> Result<Resolved, Reason> {
    let Some(dir) = app.directory.as_deref() else {
        // `open`: no matching; the user is the Entra identity itself.
        return Ok(Resolved {
            user_key: format!("{}:{}", id.tid, id.oid),
            new_user: false,
            two_factor: false,
        });
    };
    resolve_in(app, dir, portal, id, login).await
}

async fn resolve_in(
    app: &App,
    dir: &dyn Directory,
    portal: PortalKind,
    id: &VerifiedIdentity,
    login: &LoginRecord,
) -> Result<Resolved, Reason> {
    let tid = id.tid.as_str();
    let by_id = dir.by_id(tid, &id.oid).await.map_err(unavailable)?;
    // Only the `email` claim: `preferred_username`/`upn` never match anyone.
    let email = id.email.as_deref().filter(|e| e.contains('@'));
    let by_email = match (email, &by_id) {
        (Some(e), None) => dir.by_email(&email_key(e), tid).await.map_err(unavailable)?,
        _ => None,
    };
    let multi = app.config.entra.tenant_type == TenantType::Multi;
    let by = app.config.sso.match_by;
    let claimed = Claimed {
        tid: &id.tid,
        oid: &id.oid,
        email,
        email_domain_verified: id.email_domain_verified,
    };
    let decision = decide(
        by,
        multi,
        portal,
        &claimed,
        by_id.as_ref().map(UserRecord::candidate).as_ref(),
        by_email.as_ref().map(UserRecord::candidate).as_ref(),
    );
    match decision {
        MatchDecision::Matched { key, bind } => {
            if bind {
                // From now on the record follows (tid, oid), whatever the email.
                dir.bind(&key, tid, &id.oid).await.map_err(refused)?;
            }
            let two_factor = [&by_id, &by_email]
                .into_iter()
                .flatten()
                .find(|r| r.key == key)
                .is_some_and(|r| r.two_factor);
            Ok(Resolved {
                user_key: key,
                new_user: false,
                two_factor,
            })
        }
        MatchDecision::Unmatched if may_auto_create(app.config.sso.auto_create_unmatched_users, multi, portal) => {
            let rec = UserRecord {
                key: format!("{tid}:{}", id.oid),
                kind: PortalKind::User,
                email: email.map(str::to_string),
                tid: Some(id.tid.clone()),
                oid: Some(id.oid.clone()),
                name: id.name.clone(),
                client: login.client.clone(),
                disabled: false,
                two_factor: false,
            };
            // e.g. the email already belongs to a record bound elsewhere
            // (bound_to_another), or nowhere to create it (not_set_up).
            let created = dir.create(&rec).await.map_err(refused)?;
            tracing::info!(event = "user_created", key = %created.key, tid = %tid, oid = %id.oid);
            Ok(Resolved {
                user_key: created.key,
                new_user: true,
                two_factor: created.two_factor,
            })
        }
        MatchDecision::Unmatched => Err(Reason::NotSetUp),
        MatchDecision::Refused(r) => Err(r),
    }
}
