//! How long a session lives (SPEC §3 `session.*`, `sso.remember_me*`) and
//! how often its use is written back.

/// How stale `last_seen` may get before a request writes it back: idle
/// timeouts are honoured to this precision without a store write per request.
pub const TOUCH_INTERVAL_SECS: i64 = 60;

/// Whether a request at `now` must write the session's `last_seen` back.
pub fn needs_touch(last_seen: i64, now: i64) -> bool {
    now - last_seen >= TOUCH_INTERVAL_SECS
}

/// A new session's lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Whether the session is remembered (a persistent cookie).
    pub remember: bool,
    pub idle_secs: i64,
    pub absolute_secs: i64,
}

/// The settings the lifetimes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeSettings {
    /// `sso.remember_me`: the box exists at all.
    pub remember_me: bool,
    pub remember_me_days: u64,
    pub idle_timeout_secs: u64,
    pub absolute_timeout_secs: u64,
}

/// Remembered only when asked for and allowed: then the session lasts
/// `remember_me_days` whether used or not; otherwise the idle and absolute
/// timeouts apply, with a session cookie.
pub fn lifetimes(s: &LifetimeSettings, remember_requested: bool) -> Lifetimes {
    if remember_requested && s.remember_me {
        let d = s.remember_me_days.saturating_mul(86_400).min(i64::MAX as u64) as i64;
        Lifetimes {
            remember: true,
            idle_secs: d,
            absolute_secs: d,
        }
    } else {
        Lifetimes {
            remember: false,
            idle_secs: s.idle_timeout_secs.min(i64::MAX as u64) as i64,
            absolute_secs: s.absolute_timeout_secs.min(i64::MAX as u64) as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: LifetimeSettings = LifetimeSettings {
        remember_me: true,
        remember_me_days: 30,
        idle_timeout_secs: 3600,
        absolute_timeout_secs: 43_200,
    };

    #[test]
    fn remembered_only_when_asked_and_allowed() {
        assert_eq!(
            lifetimes(&SETTINGS, true),
            Lifetimes {
                remember: true,
                idle_secs: 30 * 86_400,
                absolute_secs: 30 * 86_400
            }
        );
        assert_eq!(
            lifetimes(&SETTINGS, false),
            Lifetimes {
                remember: false,
                idle_secs: 3600,
                absolute_secs: 43_200
            }
        );
        let off = LifetimeSettings {
            remember_me: false,
            ..SETTINGS
        };
        assert!(!lifetimes(&off, true).remember, "a forged box is ignored");
    }

    #[test]
    fn touch_at_most_once_a_minute() {
        assert!(!needs_touch(1000, 1000));
        assert!(!needs_touch(1000, 1059));
        assert!(needs_touch(1000, 1060));
        assert!(needs_touch(1000, 5000));
    }
}
