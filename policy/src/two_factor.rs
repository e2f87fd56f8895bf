//! The gateway's second factor (SPEC §3 `two_factor.*`, §5 `mfa`): who must
//! take the step, how a TOTP code is judged (window, replay), how failed
//! attempts lock out, and when a "don't ask again" cookie still counts.
//! Pure: the HMAC of a code and the clock are the caller's.

/// `two_factor.required_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredFor {
    Nobody,
    Everyone,
    /// `listed_users`, or a directory record flagged `two_factor`.
    Listed,
}

/// What the assertion's `mfa` claim says (SPEC §5), and `Pending` while the
/// step is owed: a pending session never reaches the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mfa {
    /// 2FA does not apply to this user.
    #[default]
    None,
    /// The step is owed: nothing reaches the app until it is done.
    Pending,
    /// The user passed the gateway's TOTP step (or a recovery code).
    Totp,
    /// A valid "don't ask again" cookie of this user skipped the step.
    Remembered,
    /// `bypass_with_sso`: the Entra sign-in stands for the second factor.
    Bypassed,
}

impl Mfa {
    /// The claim value (and the stored form).
    pub fn as_str(self) -> &'static str {
        match self {
            Mfa::None => "none",
            Mfa::Pending => "pending",
            Mfa::Totp => "totp",
            Mfa::Remembered => "remembered",
            Mfa::Bypassed => "bypassed",
        }
    }

    pub fn parse(s: &str) -> Option<Mfa> {
        [Mfa::None, Mfa::Pending, Mfa::Totp, Mfa::Remembered, Mfa::Bypassed]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    pub fn is_none(&self) -> bool {
        *self == Mfa::None
    }
}

/// Whether this user must take the step at all.
pub fn applies(required_for: RequiredFor, listed: bool, directory_flag: bool) -> bool {
    match required_for {
        RequiredFor::Nobody => false,
        RequiredFor::Everyone => true,
        RequiredFor::Listed => listed || directory_flag,
    }
}

/// The state a new session starts in after an Entra sign-in.
pub fn at_sign_in(applies: bool, bypass_with_sso: bool, remembered: bool) -> Mfa {
    match (applies, bypass_with_sso, remembered) {
        (false, _, _) => Mfa::None,
        (true, true, _) => Mfa::Bypassed,
        (true, false, true) => Mfa::Remembered,
        (true, false, false) => Mfa::Pending,
    }
}

/// A stored session's state as the access decision must see it now: a
/// session made while 2FA did not apply to its user (`none`) becomes pending
/// once the configuration says it applies (2FA switched on, the user
/// listed), so turning 2FA on takes effect on live sessions too.
pub fn effective(stored: Mfa, applies_now: bool, bypass_with_sso: bool) -> Mfa {
    match stored {
        Mfa::None if applies_now => {
            if bypass_with_sso {
                Mfa::Bypassed
            } else {
                Mfa::Pending
            }
        }
        other => other,
    }
}

/// RFC 6238 with a 30-second step.
pub const STEP_SECS: u64 = 30;
/// Codes of the step before and after the current one are accepted (clock drift).
pub const WINDOW_STEPS: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    /// Not the code of any step in the window.
    Wrong,
    /// The code of a step at or before the last one used: already spent.
    Replayed,
}

impl CodeRefusal {
    pub fn label(self) -> &'static str {
        match self {
            CodeRefusal::Wrong => "wrong_code",
            CodeRefusal::Replayed => "replayed_code",
        }
    }
}

/// Judges a TOTP code at `now` (Unix seconds): `code_is_for(step)` says
/// whether the code is the one of that step (the caller's HMAC). Accepts a
/// step of the window only if it is later than `last_used`, so each code
/// works once, and an older code cannot follow a newer one. Returns the step
/// to record as used.
pub fn verify_code(now: u64, last_used: Option<u64>, code_is_for: impl Fn(u64) -> bool) -> Result<u64, CodeRefusal> {
    let origin = now / STEP_SECS;
    let matched = (origin.saturating_sub(WINDOW_STEPS)..=origin + WINDOW_STEPS).find(|&step| code_is_for(step));
    match matched {
        None => Err(CodeRefusal::Wrong),
        Some(step) if last_used.is_some_and(|used| step <= used) => Err(CodeRefusal::Replayed),
        Some(step) => Ok(step),
    }
}

/// Failed attempts allowed before the first lockout.
pub const FREE_FAILURES: u32 = 4;
pub const FIRST_LOCKOUT_SECS: i64 = 60;
pub const MAX_LOCKOUT_SECS: i64 = 3600;

/// Failed attempts of one user or one client address, and the lockout they
/// earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    pub failures: u32,
    /// Unix seconds; no attempt is judged before then.
    pub locked_until: i64,
}

impl Attempts {
    /// Seconds left of a lockout, if one is in force.
    pub fn locked(&self, now: i64) -> Option<i64> {
        (self.locked_until > now).then(|| self.locked_until - now)
    }

    /// After a failed attempt: the fifth failure locks for a minute, and every
    /// further one doubles it (up to an hour), so guessing a 6-digit code
    /// (10^6, three valid per window) is out of reach.
    pub fn failed(self, now: i64) -> Attempts {
        let failures = self.failures.saturating_add(1);
        let locked_until = if failures > FREE_FAILURES {
            let doublings = (failures - FREE_FAILURES - 1).min(16);
            now + (FIRST_LOCKOUT_SECS << doublings).min(MAX_LOCKOUT_SECS)
        } else {
            self.locked_until
        };
        Attempts { failures, locked_until }
    }

    /// A success forgets the failures.
    pub fn succeeded(self) -> Attempts {
        Attempts::default()
    }
}

/// What a "don't ask again" cookie says once its signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered<'a> {
    /// The directory key it was issued to.
    pub user: &'a str,
    /// The user's reset generation when it was issued.
    pub generation: u64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Whether a remembered browser skips the step for `user` now: same user,
/// no TOTP reset since (the generation moves on at each reset), not expired.
pub fn remembered_valid(r: &Remembered<'_>, user: &str, generation: u64, now: i64) -> bool {
    r.user == user && r.generation == generation && r.expires_at > now
}

/// Lifetime of a new "don't ask again" cookie.
pub fn remember_secs(days: u64) -> i64 {
    (days.min(365) * 86_400) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_takes_the_step() {
        assert!(!applies(RequiredFor::Nobody, true, true));
        assert!(applies(RequiredFor::Everyone, false, false));
        assert!(applies(RequiredFor::Listed, true, false));
        assert!(applies(RequiredFor::Listed, false, true));
        assert!(!applies(RequiredFor::Listed, false, false));
    }

    #[test]
    fn state_at_sign_in() {
        assert_eq!(at_sign_in(false, false, true), Mfa::None);
        assert_eq!(at_sign_in(true, true, false), Mfa::Bypassed);
        assert_eq!(at_sign_in(true, false, true), Mfa::Remembered);
        assert_eq!(at_sign_in(true, false, false), Mfa::Pending);
    }

    #[test]
    fn sessions_from_before_2fa_was_on_become_pending() {
        assert_eq!(effective(Mfa::None, true, false), Mfa::Pending);
        assert_eq!(effective(Mfa::None, true, true), Mfa::Bypassed);
        assert_eq!(effective(Mfa::None, false, false), Mfa::None);
        assert_eq!(effective(Mfa::Totp, true, false), Mfa::Totp);
        assert_eq!(effective(Mfa::Pending, false, false), Mfa::Pending);
    }

    #[test]
    fn claim_values_round_trip() {
        for m in [Mfa::None, Mfa::Pending, Mfa::Totp, Mfa::Remembered, Mfa::Bypassed] {
            assert_eq!(Mfa::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mfa::parse("TOTP"), None);
    }

    /// A fake HMAC: the code of step `s` is "the step itself".
    fn code(step: u64) -> impl Fn(u64) -> bool {
        move |s| s == step
    }

    #[test]
    fn window_is_one_step_each_side() {
        let now = 1_000 * STEP_SECS + 7;
        assert_eq!(verify_code(now, None, code(1_000)), Ok(1_000));
        assert_eq!(verify_code(now, None, code(999)), Ok(999));
        assert_eq!(verify_code(now, None, code(1_001)), Ok(1_001));
        assert_eq!(verify_code(now, None, code(998)), Err(CodeRefusal::Wrong));
        assert_eq!(verify_code(now, None, code(1_002)), Err(CodeRefusal::Wrong));
        assert_eq!(verify_code(now, None, |_| false), Err(CodeRefusal::Wrong));
        // At the epoch there is no step before.
        assert_eq!(verify_code(3, None, code(0)), Ok(0));
    }

    #[test]
    fn a_code_works_once_and_older_ones_never_after() {
        let now = 1_000 * STEP_SECS;
        let used = verify_code(now, None, code(1_000)).unwrap();
        assert_eq!(verify_code(now, Some(used), code(1_000)), Err(CodeRefusal::Replayed));
        // Still refused a step later, while the code is inside the window.
        assert_eq!(
            verify_code(now + STEP_SECS, Some(used), code(1_000)),
            Err(CodeRefusal::Replayed)
        );
        // The previous step's code after the current one was used.
        assert_eq!(verify_code(now, Some(used), code(999)), Err(CodeRefusal::Replayed));
        // The next step's code is new.
        assert_eq!(verify_code(now, Some(used), code(1_001)), Ok(1_001));
    }

    #[test]
    fn lockout_starts_at_the_fifth_failure_and_doubles() {
        let now = 10_000;
        let mut a = Attempts::default();
        for _ in 0..FREE_FAILURES {
            a = a.failed(now);
            assert_eq!(a.locked(now), None);
        }
        a = a.failed(now);
        assert_eq!(a.locked(now), Some(FIRST_LOCKOUT_SECS));
        assert_eq!(a.locked(now + FIRST_LOCKOUT_SECS), None, "over when the time is up");
        a = a.failed(now + 100);
        assert_eq!(a.locked(now + 100), Some(2 * FIRST_LOCKOUT_SECS));
        a = a.failed(now + 1_000);
        assert_eq!(a.locked(now + 1_000), Some(4 * FIRST_LOCKOUT_SECS));
        for _ in 0..40 {
            a = a.failed(now);
        }
        assert_eq!(a.locked(now), Some(MAX_LOCKOUT_SECS), "capped");
        assert_eq!(a.succeeded(), Attempts::default());
    }

    #[test]
    fn remembered_browser_rules() {
        let r = Remembered {
            user: "ann",
            generation: 2,
            expires_at: 1_000,
        };
        assert!(remembered_valid(&r, "ann", 2, 999));
        assert!(!remembered_valid(&r, "bob", 2, 999), "another user");
        assert!(!remembered_valid(&r, "ann", 3, 999), "TOTP reset since");
        assert!(!remembered_valid(&r, "ann", 2, 1_000), "expired");
        assert_eq!(remember_secs(30), 30 * 86_400);
        assert_eq!(remember_secs(10_000), 365 * 86_400);
    }
}
