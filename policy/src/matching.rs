//! Which directory record a verified Entra identity is, if any (SPEC §6).
//!
//! The caller looks up at most two candidates (the record bound to the token's
//! `(tid, oid)`, and the record carrying the token's email) and this module
//! decides. `preferred_username` and `upn` are deliberately not part of the
//! input: any tenant admin can set them to anything, so they identify nobody.

use crate::{PortalKind, Reason, TenantId};

/// `sso.match_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    Email,
    UniqueId,
}

/// What the verified ID token says about the person.
#[derive(Debug, Clone, Copy)]
pub struct Claimed<'a> {
    pub tid: &'a TenantId,
    pub oid: &'a str,
    /// The `email` claim (never `preferred_username` / `upn`).
    pub email: Option<&'a str>,
    /// `xms_edov`: the token's tenant has verified the email's domain.
    pub email_domain_verified: bool,
}

/// A directory record as matching sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub key: String,
    pub kind: PortalKind,
    pub email: Option<String>,
    pub tid: Option<TenantId>,
    pub oid: Option<String>,
    pub disabled: bool,
}

impl Candidate {
    /// Bound to exactly this identity. Object ids are GUIDs, so case does not
    /// distinguish them (records may have been typed in upper case).
    fn bound_to(&self, claimed: &Claimed<'_>) -> bool {
        self.tid.as_ref() == Some(claimed.tid)
            && self.oid.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(claimed.oid))
    }

    fn has_email(&self, email: &str) -> bool {
        self.email.as_deref().is_some_and(|e| same_email(e, email))
    }
}

/// Emails compare case-insensitively (what every mail system does for the
/// domain, and what every directory does in practice for the local part).
fn same_email(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchDecision {
    /// Sign in as `key`; `bind` = the caller must now bind the record to the
    /// token's `(tid, oid)` (first email match).
    Matched {
        key: String,
        bind: bool,
    },
    /// No record: auto-create (see [`may_auto_create`]) or refuse with `NotSetUp`.
    Unmatched,
    Refused(Reason),
}

/// Decides who a verified identity is.
///
/// `by_id` is the record bound to the token's `(tid, oid)`, `by_email` the
/// record found by the token's `email` claim (looked up lower-cased). Both are
/// re-checked here, so a stale index in the caller can never match.
pub fn decide(
    by: MatchBy,
    multi_tenant: bool,
    portal: PortalKind,
    claimed: &Claimed<'_>,
    by_id: Option<&Candidate>,
    by_email: Option<&Candidate>,
) -> MatchDecision {
    // An existing binding wins in both modes, even when the email has since
    // changed in Entra: (tid, oid) is the identity, the email is only a label.
    // A record found by email that is bound to this very identity is the
    // same match (the caller's id index missed it): it is matched by its
    // (tid, oid), so this holds in unique_id mode too.
    if let Some(c) = by_id
        .filter(|c| c.bound_to(claimed))
        .or_else(|| by_email.filter(|c| c.bound_to(claimed)))
    {
        return admit(c, portal, false);
    }
    let email_record = match claimed.email {
        Some(email) => by_email.filter(|c| c.has_email(email)),
        // A token without `email` (e.g. only a upn) is never matched by email.
        None => None,
    };
    match by {
        // Never `sub`, never email. A record found by email that has no oid
        // cannot be reached this way: say so rather than "not set up" (and
        // rather than auto-creating a duplicate of that person).
        MatchBy::UniqueId => match email_record {
            Some(c) if c.oid.is_none() => MatchDecision::Refused(Reason::RecordWithoutOid),
            _ => MatchDecision::Unmatched,
        },
        MatchBy::Email => {
            let Some(c) = email_record else {
                return MatchDecision::Unmatched;
            };
            // Bound to someone else: never taken over by an email match.
            if c.oid.is_some() {
                return MatchDecision::Refused(Reason::BoundToAnother);
            }
            // A record that names its tenant belongs to that tenant only.
            if let Some(tid) = &c.tid
                && tid != claimed.tid
            {
                return MatchDecision::Refused(Reason::BoundToAnother);
            }
            // nOAuth: in a multi-tenant app any tenant can put any email on
            // its users, so the claim is only evidence when the token's tenant
            // verified the domain, or the record already names that tenant.
            if multi_tenant && !claimed.email_domain_verified && c.tid.as_ref() != Some(claimed.tid) {
                return MatchDecision::Refused(Reason::EmailNotVerified);
            }
            admit(c, portal, true)
        }
    }
}

/// A matched record may still be refused: its account state is checked only
/// after the identity is established, so nothing about a record leaks to an
/// identity that is not its owner.
fn admit(c: &Candidate, portal: PortalKind, bind: bool) -> MatchDecision {
    if c.disabled {
        MatchDecision::Refused(Reason::AccountDisabled)
    } else if c.kind != portal {
        MatchDecision::Refused(Reason::PortalNotAllowed)
    } else {
        MatchDecision::Matched {
            key: c.key.clone(),
            bind,
        }
    }
}

/// `sso.auto_create_unmatched_users`: single-tenant only (in a multi-tenant app
/// anyone in any allowed tenant would get an account), and only users, never
/// agents (an agent account is staff access).
pub fn may_auto_create(enabled: bool, multi_tenant: bool, portal: PortalKind) -> bool {
    enabled && !multi_tenant && portal == PortalKind::User
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchDecision::{Matched, Refused, Unmatched};
    use PortalKind::{Agent, User};

    const T1: &str = "11111111-1111-4111-8111-111111111111";
    const T2: &str = "22222222-2222-4222-8222-222222222222";
    const O1: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const O2: &str = "aaaaaaaa-0000-4000-8000-000000000002";

    fn tid(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    fn rec(key: &str, kind: PortalKind, email: Option<&str>, bound: Option<(&str, &str)>) -> Candidate {
        Candidate {
            key: key.into(),
            kind,
            email: email.map(Into::into),
            tid: bound.map(|(t, _)| tid(t)),
            oid: bound.map(|(_, o)| o.into()),
            disabled: false,
        }
    }

    fn pinned(key: &str, email: &str, t: &str) -> Candidate {
        Candidate {
            tid: Some(tid(t)),
            ..rec(key, User, Some(email), None)
        }
    }

    fn disabled(mut c: Candidate) -> Candidate {
        c.disabled = true;
        c
    }

    fn matched(key: &str, bind: bool) -> MatchDecision {
        Matched { key: key.into(), bind }
    }

    struct Case {
        name: &'static str,
        by: MatchBy,
        multi: bool,
        portal: PortalKind,
        tid: &'static str,
        oid: &'static str,
        email: Option<&'static str>,
        edov: bool,
        by_id: Option<Candidate>,
        by_email: Option<Candidate>,
        want: MatchDecision,
    }

    /// Defaults: single-tenant, email matching, user portal, token (T1, O1)
    /// with `ann@contoso.com`, no `xms_edov`, no candidates.
    fn case(name: &'static str) -> Case {
        Case {
            name,
            by: MatchBy::Email,
            multi: false,
            portal: User,
            tid: T1,
            oid: O1,
            email: Some("ann@contoso.com"),
            edov: false,
            by_id: None,
            by_email: None,
            want: Unmatched,
        }
    }

    #[test]
    fn table() {
        let ann = || rec("ann", User, Some("ann@contoso.com"), None);
        let ann_bound = || rec("ann", User, Some("ann@contoso.com"), Some((T1, O1)));
        let cases = vec![
            // --- existing binding (both modes) ---
            Case {
                by_id: Some(ann_bound()),
                want: matched("ann", false),
                ..case("bound record matches by (tid, oid)")
            },
            Case {
                by: MatchBy::UniqueId,
                by_id: Some(ann_bound()),
                want: matched("ann", false),
                ..case("unique_id: bound record matches")
            },
            Case {
                email: Some("ann.new@contoso.com"),
                by_id: Some(ann_bound()),
                want: matched("ann", false),
                ..case("rebinding after email change: by_id wins with a different email")
            },
            Case {
                email: None,
                by_id: Some(ann_bound()),
                want: matched("ann", false),
                ..case("bound record matches even without any email claim")
            },
            Case {
                oid: "AAAAAAAA-0000-4000-8000-000000000001",
                by_id: Some(ann_bound()),
                want: matched("ann", false),
                ..case("oid compared case-insensitively")
            },
            Case {
                by_id: Some(ann_bound()),
                by_email: Some(rec("other", User, Some("ann@contoso.com"), None)),
                want: matched("ann", false),
                ..case("by_id wins over a different by_email record")
            },
            Case {
                multi: true,
                by_id: Some(ann_bound()),
                want: matched("ann", false),
                ..case("multi: bound record needs no xms_edov")
            },
            Case {
                oid: O2,
                by_id: Some(ann_bound()),
                want: Unmatched,
                ..case("a by_id candidate bound to another oid is ignored (stale index)")
            },
            Case {
                tid: T2,
                by_id: Some(ann_bound()),
                want: Unmatched,
                ..case("a by_id candidate bound to another tenant is ignored")
            },
            Case {
                by_id: Some(disabled(ann_bound())),
                want: Refused(Reason::AccountDisabled),
                ..case("bound but disabled")
            },
            Case {
                portal: Agent,
                by_id: Some(ann_bound()),
                want: Refused(Reason::PortalNotAllowed),
                ..case("bound user at the agent portal")
            },
            Case {
                portal: Agent,
                by_id: Some(disabled(ann_bound())),
                want: Refused(Reason::AccountDisabled),
                ..case("disabled is reported before the portal")
            },
            Case {
                by_email: Some(ann_bound()),
                want: matched("ann", false),
                ..case("by_email record bound to this identity (id index missed it)")
            },
            Case {
                by: MatchBy::UniqueId,
                email: Some("other@contoso.com"),
                by_email: Some(ann_bound()),
                want: matched("ann", false),
                ..case("unique_id: a candidate bound to this identity matches by (tid, oid)")
            },
            // --- unique_id ---
            Case {
                by: MatchBy::UniqueId,
                by_email: Some(ann()),
                want: Refused(Reason::RecordWithoutOid),
                ..case("unique_id: record with this email but no oid cannot sign in")
            },
            Case {
                by: MatchBy::UniqueId,
                by_email: Some(rec("ann", User, Some("ann@contoso.com"), Some((T1, O2)))),
                want: Unmatched,
                ..case("unique_id: never matched by email, even to a bound record")
            },
            Case {
                by: MatchBy::UniqueId,
                by_email: Some(pinned("ann", "ann@contoso.com", T1)),
                want: Refused(Reason::RecordWithoutOid),
                ..case("unique_id: tid alone is not enough")
            },
            Case {
                by: MatchBy::UniqueId,
                want: Unmatched,
                ..case("unique_id: nothing found")
            },
            Case {
                by: MatchBy::UniqueId,
                email: None,
                by_email: Some(ann()),
                want: Unmatched,
                ..case("unique_id: upn-only token, by_email candidate ignored")
            },
            // --- email, single-tenant ---
            Case {
                by_email: Some(ann()),
                want: matched("ann", true),
                ..case("first email match binds")
            },
            Case {
                email: Some("Ann@Contoso.COM"),
                by_email: Some(ann()),
                want: matched("ann", true),
                ..case("email compared case-insensitively")
            },
            Case {
                by_email: Some(rec("ann", User, Some("ANN@contoso.com"), None)),
                want: matched("ann", true),
                ..case("record email in another case")
            },
            Case {
                email: Some("bob@contoso.com"),
                by_email: Some(ann()),
                want: Unmatched,
                ..case("a by_email candidate with another email is ignored")
            },
            Case {
                email: None,
                by_email: Some(ann()),
                want: Unmatched,
                ..case("upn-only token (no email claim) is not matched by email")
            },
            Case {
                want: Unmatched,
                ..case("no record with this email")
            },
            Case {
                by_email: Some(rec("ann", User, Some("ann@contoso.com"), Some((T1, O2)))),
                want: Refused(Reason::BoundToAnother),
                ..case("record bound to another oid is never taken over")
            },
            Case {
                by_email: Some(rec("ann", User, Some("ann@contoso.com"), Some((T2, O1)))),
                want: Refused(Reason::BoundToAnother),
                ..case("record bound to the same oid in another tenant is never taken over")
            },
            Case {
                by_email: Some(pinned("ann", "ann@contoso.com", T2)),
                want: Refused(Reason::BoundToAnother),
                ..case("record pinned to another tenant is not matched")
            },
            Case {
                by_email: Some(pinned("ann", "ann@contoso.com", T1)),
                want: matched("ann", true),
                ..case("record pinned to the token's tenant binds")
            },
            Case {
                by_email: Some(disabled(ann())),
                want: Refused(Reason::AccountDisabled),
                ..case("email match of a disabled record")
            },
            Case {
                by_email: Some(rec("ann", Agent, Some("ann@contoso.com"), None)),
                want: Refused(Reason::PortalNotAllowed),
                ..case("agent record at the user portal")
            },
            Case {
                portal: Agent,
                by_email: Some(rec("ann", Agent, Some("ann@contoso.com"), None)),
                want: matched("ann", true),
                ..case("agent record at the agent portal")
            },
            Case {
                by_email: Some(disabled(rec("ann", User, Some("ann@contoso.com"), Some((T1, O2))))),
                want: Refused(Reason::BoundToAnother),
                ..case("identity is checked before account state")
            },
            // --- email, multi-tenant (nOAuth) ---
            Case {
                multi: true,
                tid: T2,
                by_email: Some(ann()),
                want: Refused(Reason::EmailNotVerified),
                ..case("nOAuth: same email from another tenant without xms_edov is not matched")
            },
            Case {
                multi: true,
                by_email: Some(ann()),
                want: Refused(Reason::EmailNotVerified),
                ..case("multi: unpinned record, no xms_edov")
            },
            Case {
                multi: true,
                tid: T2,
                edov: true,
                by_email: Some(ann()),
                want: matched("ann", true),
                ..case("multi: xms_edov true makes the email trustworthy")
            },
            Case {
                multi: true,
                by_email: Some(pinned("ann", "ann@contoso.com", T1)),
                want: matched("ann", true),
                ..case("multi: record already carries the token's tid")
            },
            Case {
                multi: true,
                tid: T2,
                by_email: Some(pinned("ann", "ann@contoso.com", T1)),
                want: Refused(Reason::BoundToAnother),
                ..case("nOAuth: record of tenant 1, token of tenant 2")
            },
            Case {
                multi: true,
                tid: T2,
                edov: true,
                by_email: Some(pinned("ann", "ann@contoso.com", T1)),
                want: Refused(Reason::BoundToAnother),
                ..case("multi: xms_edov does not move a record to another tenant")
            },
            Case {
                multi: true,
                tid: T2,
                edov: true,
                by_email: Some(rec("ann", User, Some("ann@contoso.com"), Some((T1, O1)))),
                want: Refused(Reason::BoundToAnother),
                ..case("multi: bound record never taken over, even with xms_edov")
            },
            Case {
                multi: true,
                tid: T2,
                by_email: Some(disabled(ann())),
                want: Refused(Reason::EmailNotVerified),
                ..case("nOAuth: an unverified identity learns nothing about the record")
            },
            Case {
                multi: true,
                email: None,
                edov: true,
                by_email: Some(ann()),
                want: Unmatched,
                ..case("multi: upn-only token")
            },
        ];
        for c in cases {
            let t = tid(c.tid);
            let claimed = Claimed {
                tid: &t,
                oid: c.oid,
                email: c.email,
                email_domain_verified: c.edov,
            };
            let got = decide(c.by, c.multi, c.portal, &claimed, c.by_id.as_ref(), c.by_email.as_ref());
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn auto_create() {
        // (enabled, multi, portal, allowed)
        let cases = [
            (true, false, User, true),
            (true, true, User, false),
            (true, false, Agent, false),
            (false, false, User, false),
            (true, true, Agent, false),
            (false, true, User, false),
        ];
        for (enabled, multi, portal, want) in cases {
            assert_eq!(
                may_auto_create(enabled, multi, portal),
                want,
                "enabled={enabled} multi={multi} portal={portal:?}"
            );
        }
    }

    #[test]
    fn refusal_reasons_are_pages_not_errors() {
        for r in [
            Reason::AccountDisabled,
            Reason::PortalNotAllowed,
            Reason::EmailNotVerified,
            Reason::BoundToAnother,
            Reason::RecordWithoutOid,
        ] {
            assert_eq!(r.status(), 403, "{r}");
        }
    }
}
