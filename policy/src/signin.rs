//! Where a sign-in is sent: which tenant's authority, and which
//! `domain_hint` (SPEC §1: tenant type, clients, federated domain).

use crate::TenantId;

/// `entra.tenant_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantType {
    Single,
    Multi,
}

/// The tenant a sign-in is sent to: the app's own (single-tenant), a
/// client's own (its branded sign-in page), else none (the multi-tenant
/// authority, `/organizations`).
pub fn login_tenant<'a>(
    tenant_type: TenantType,
    home: &'a TenantId,
    client_tenant: Option<&'a TenantId>,
) -> Option<&'a TenantId> {
    match tenant_type {
        TenantType::Single => Some(home),
        TenantType::Multi => client_tenant,
    }
}

/// The `domain_hint` sent: a client's federated domain, else the global one.
/// A convenience that skips home-realm discovery, not a control: the tenant
/// rules apply to whatever token comes back.
pub fn domain_hint<'a>(client: Option<&'a str>, global: Option<&'a str>) -> Option<&'a str> {
    client.or(global)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_tenant_choice() {
        let home: TenantId = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa".parse().unwrap();
        let client: TenantId = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb".parse().unwrap();
        assert_eq!(login_tenant(TenantType::Single, &home, Some(&client)), Some(&home));
        assert_eq!(login_tenant(TenantType::Single, &home, None), Some(&home));
        assert_eq!(login_tenant(TenantType::Multi, &home, Some(&client)), Some(&client));
        assert_eq!(login_tenant(TenantType::Multi, &home, None), None);
    }

    #[test]
    fn a_clients_domain_hint_wins() {
        assert_eq!(domain_hint(Some("contoso.com"), Some("halo.com")), Some("contoso.com"));
        assert_eq!(domain_hint(None, Some("halo.com")), Some("halo.com"));
        assert_eq!(domain_hint(None, None), None);
    }
}
