//! Values that many sessions hold alike (portal and client names, the
//! issuer of each tenant): one shared `Arc<str>` per distinct value instead
//! of a heap copy in every session. Bounded: past [`MAX`] distinct values
//! the ones no session holds any more are let go, and if every one is still
//! in use a new value is simply not shared (correct, just not deduplicated).

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

/// Portals and clients come from the configuration and issuers from the
/// tenants that sign in: far fewer than this in any deployment we know of.
const MAX: usize = 4096;

static VALUES: LazyLock<Mutex<HashSet<Arc<str>>>> = LazyLock::new(Default::default);

/// The shared copy of `value`.
pub fn intern(value: &str) -> Arc<str> {
    intern_in(&VALUES, MAX, value)
}

fn intern_in(values: &Mutex<HashSet<Arc<str>>>, max: usize, value: &str) -> Arc<str> {
    // A poisoned lock (a panic elsewhere while holding it) only costs sharing.
    let Ok(mut set) = values.lock() else {
        return Arc::from(value);
    };
    if let Some(shared) = set.get(value) {
        return shared.clone();
    }
    if set.len() >= max {
        // Held only by the set: no session uses it any more.
        set.retain(|v| Arc::strong_count(v) > 1);
    }
    let shared: Arc<str> = Arc::from(value);
    if set.len() < max {
        set.insert(shared.clone());
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_allocation() {
        let a = intern("https://login.microsoftonline.com/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa/v2.0");
        let b = intern(&String::from(&*a));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, &*b);
        assert!(!Arc::ptr_eq(&a, &intern("agent")));
    }

    #[test]
    fn bounded_and_unused_values_are_let_go() {
        let set = Mutex::new(HashSet::new());
        let held: Vec<Arc<str>> = (0..4).map(|i| intern_in(&set, 4, &format!("v{i}"))).collect();
        // Full of values in use: a new one is still returned, just not kept.
        let extra = intern_in(&set, 4, "extra");
        assert_eq!(&*extra, "extra");
        assert_eq!(set.lock().unwrap().len(), 4);
        assert!(!Arc::ptr_eq(&extra, &intern_in(&set, 4, "extra")));
        // Once nothing else holds them, they make room.
        drop(held);
        let kept = intern_in(&set, 4, "extra");
        assert!(Arc::ptr_eq(&kept, &intern_in(&set, 4, "extra")));
        assert_eq!(set.lock().unwrap().len(), 1);
    }
}
