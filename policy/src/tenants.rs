//! Which tenants may sign in.

use crate::ids::TenantId;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantPolicy {
    /// Single-tenant app: only this tenant.
    Single(TenantId),
    /// Multi-tenant app, sign-in scope `restricted`: only the listed tenants.
    Restricted(BTreeSet<TenantId>),
    /// Multi-tenant app, sign-in scope `all`: any work or school tenant;
    /// personal accounts only when listed.
    All(BTreeSet<TenantId>),
}

impl TenantPolicy {
    pub fn allows(&self, tid: &TenantId) -> bool {
        match self {
            TenantPolicy::Single(t) => t == tid,
            TenantPolicy::Restricted(list) => list.contains(tid),
            TenantPolicy::All(list) => !tid.is_consumers() || list.contains(tid),
        }
    }

    /// Whether the configuration names this tenant (home, listed, a client's,
    /// a CSP customer's), as opposed to `sign_in_scope: all` merely letting
    /// it in: only named tenants' failures are the gateway's outage.
    pub fn names(&self, tid: &TenantId) -> bool {
        match self {
            TenantPolicy::Single(t) => t == tid,
            TenantPolicy::Restricted(list) | TenantPolicy::All(list) => list.contains(tid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    #[test]
    fn table() {
        let a = t("aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa");
        let b = t("bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb");
        let consumers = t(TenantId::CONSUMERS);
        let only_a: BTreeSet<_> = [a.clone()].into();
        let with_consumers: BTreeSet<_> = [consumers.clone()].into();
        let cases = [
            (TenantPolicy::Single(a.clone()), &a, true),
            (TenantPolicy::Single(a.clone()), &b, false),
            (TenantPolicy::Restricted(only_a.clone()), &a, true),
            (TenantPolicy::Restricted(only_a.clone()), &b, false),
            (TenantPolicy::All(BTreeSet::new()), &b, true),
            (TenantPolicy::All(BTreeSet::new()), &consumers, false),
            (TenantPolicy::All(with_consumers), &consumers, true),
        ];
        for (p, tid, want) in cases {
            assert_eq!(p.allows(tid), want, "{p:?} {tid}");
        }
        assert!(TenantPolicy::Single(a.clone()).names(&a));
        assert!(TenantPolicy::Restricted(only_a.clone()).names(&a));
        assert!(TenantPolicy::All(only_a.clone()).names(&a));
        assert!(!TenantPolicy::All(only_a).names(&b), "allowed, not named");
    }
}
