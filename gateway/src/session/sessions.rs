//! The session side of a running gateway: cookie → session (local cache
//! first, then the store), touches, ends (here and, over the revocation bus,
//! everywhere), and the local cache that must let go when a session ends
//! (with the session, the signature kept for it: see [`LocalCache`]).

use super::cache::LocalCache;
use super::store::{Revocation, Store, StoreError};
use super::{Session, SessionId, SessionKey, now_unix};
use crate::config::Portal;
use crate::metrics::METRICS;
use std::sync::Arc;
use std::time::Duration;

const SESSION_CACHE_MAX: usize = 100_000;

pub struct Sessions {
    store: Arc<dyn Store>,
    /// Sessions read recently (Redis only): the fast path's source; and
    /// the assertion signature of each session (any store).
    cache: Arc<LocalCache>,
}

impl Sessions {
    /// `local_cache_ttl` zero: no local cache (a memory store is its own).
    pub fn new(store: Arc<dyn Store>, local_cache_ttl: Duration) -> Self {
        Sessions {
            store,
            cache: Arc::new(LocalCache::new(local_cache_ttl, SESSION_CACHE_MAX)),
        }
    }

    /// Shared with `identity::Assertions`, which keeps signatures in it.
    pub fn cache(&self) -> &Arc<LocalCache> {
        &self.cache
    }

    /// Seconds a session lives without use.
    pub fn ttl(s: &Session, now: i64) -> Duration {
        Duration::from_secs(s.ttl_at(now).max(1) as u64)
    }

    /// The live session behind a cookie value at this portal and client (a
    /// session is valid only where it was made: SPEC §5), if any, and the
    /// key it is known by from here on (hashed once per request).
    pub async fn for_cookie(
        &self,
        value: &str,
        portal: &Portal,
        client: Option<&str>,
    ) -> Result<Option<(SessionKey, Arc<Session>)>, StoreError> {
        let Some(id) = SessionId::parse(value).map(|id| id.key()) else {
            METRICS
                .bad_requests
                .with_label_values(&["malformed_session_cookie"])
                .inc();
            return Ok(None);
        };
        let now = now_unix();
        let mut cached = self.cache.get(&id);
        if cached.as_ref().is_some_and(|s| !s.is_live(now)) {
            // A cached copy may carry an older `last_seen` than the store
            // (another instance touched it): only the store's copy decides.
            self.cache.remove(&id);
            cached = None;
        }
        let from_cache = cached.is_some();
        let mut s = match cached {
            Some(s) => s,
            None => match self.store.get_session(&id).await? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        if !s.is_live(now) {
            // Expired by policy (idle or absolute timeout): ended everywhere
            // like any other end, so every index and cache lets go of it.
            let _ = self.end(std::slice::from_ref(&id), "expired").await;
            return Ok(None);
        }
        // A client's sessions carry its tenant pin: not valid at another
        // client's host or at the shared hosts, nor the other way round.
        if s.portal() != portal.name || s.client() != client {
            return Ok(None);
        }
        if policy::lifetime::needs_touch(s.last_seen, now) {
            // A copy only here (once a minute): the cached one stays as it was
            // for whoever holds it.
            Arc::make_mut(&mut s).last_seen = now;
            match self.store.touch_session(&id, &s, Self::ttl(&s, now)).await {
                Ok(()) => {}
                // Store down: a cached session keeps working until its entry
                // expires; the touch is retried on a later request.
                Err(_) if from_cache => return Ok(Some((id, s))),
                Err(e) => return Err(e),
            }
            self.cache.put(&id, &s);
        } else if !from_cache {
            self.cache.put(&id, &s);
        }
        Ok(Some((id, s)))
    }

    /// Stores a session just signed in.
    pub async fn create(&self, id: &SessionKey, s: &Session) -> Result<(), StoreError> {
        self.store.put_session(id, s, Self::ttl(s, now_unix())).await
    }

    /// Writes a changed session back (e.g. `new_user` cleared).
    pub async fn update(&self, id: &SessionKey, s: &Session) -> Result<(), StoreError> {
        self.store.put_session(id, s, Self::ttl(s, now_unix())).await
    }

    /// Whether this request is the one that tells the app `new_user: true`:
    /// exactly one request of the session does, whichever instance serves
    /// it, because the first to take the session's claim (an atomic lease in
    /// the shared store) wins. The flag is cleared in `s` either way, and in
    /// the store and this instance's cache once the claim is decided; with
    /// the store down nothing is decided and a later request tries again.
    pub async fn take_new_user(&self, id: &SessionKey, s: &mut Arc<Session>) -> bool {
        let now = now_unix();
        let claim = self.store.try_lease(&format!("new_user:{id}"), Self::ttl(s, now)).await;
        Arc::make_mut(s).new_user = false;
        let Ok(won) = claim else { return false };
        if won {
            // If this write fails the store keeps the flag, but the claim
            // is taken: no other request can win it again.
            let _ = self.update(id, s).await;
        }
        self.cache.put(id, s);
        won
    }

    /// Writes a session whose state changed mid-session (the second factor
    /// done) and drops every instance's cached copy (this one's, and over
    /// the revocation bus the others'), so no stale copy outlives the change.
    /// The bus is best effort: a copy that misses it is pending, which is
    /// never more privileged, and a pending copy is checked against the
    /// store before anyone is sent to the 2FA page again.
    pub async fn changed(&self, id: &SessionKey, s: &Session) -> Result<(), StoreError> {
        self.update(id, s).await?;
        self.drop_cached(id);
        let _ = self.store.publish_revocation(id).await;
        Ok(())
    }

    /// The stored session, bypassing the local cache.
    pub async fn get(&self, id: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        self.store.get_session(id).await
    }

    /// Live sessions indexed under an ID token `sid`.
    pub async fn by_sid(&self, sid: &str) -> Result<Vec<SessionKey>, StoreError> {
        self.store.sessions_by_sid(sid).await
    }

    /// Ends sessions everywhere: the store, this instance's caches, and (over
    /// the revocation bus) every other instance's. Returns how many ended.
    pub async fn end(&self, ids: &[SessionKey], kind: &'static str) -> Result<usize, StoreError> {
        let mut ended = 0;
        for id in ids {
            self.store.delete_session(id).await?;
            self.drop_cached(id);
            // Best effort: if the bus is down, the other caches' TTL bounds it.
            let _ = self.store.publish_revocation(id).await;
            METRICS.logouts.with_label_values(&[kind]).inc();
            ended += 1;
        }
        Ok(ended)
    }

    /// The cached session and its signature.
    pub fn drop_cached(&self, id: &SessionKey) {
        self.cache.remove(id);
    }

    /// Revocations may have been missed: nothing cached is trusted.
    fn drop_all_cached(&self) {
        self.cache.clear();
    }

    /// Applies what other instances revoked (runs for the process lifetime).
    pub async fn follow_revocations(&self) {
        let Some(mut rx) = self.store.revocations() else { return };
        while let Some(r) = rx.recv().await {
            match r {
                Revocation::Session(id) => {
                    METRICS.revocations_received.session.inc();
                    self.drop_cached(&id);
                }
                Revocation::Flush => {
                    METRICS.revocations_received.flush.inc();
                    self.drop_all_cached();
                }
            }
        }
    }
}
