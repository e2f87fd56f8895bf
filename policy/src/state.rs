//! The sign-in `state` and the login cookie that binds it to one browser
//! (SPEC §6): both arrive from outside, so their shape is checked here before
//! the store is asked about them.

/// Characters of the state that name its login cookie (so several tabs each
/// find theirs); also the shortest state accepted, so the tag always exists.
pub const STATE_TAG_LEN: usize = 10;
/// The gateway issues 43 characters; anything much longer is not ours and
/// would only be a costlier store lookup.
pub const MAX_STATE_LEN: usize = 64;

/// Whether `state` can be one the gateway issued: base64url, of a plausible
/// length. Only the store can say whether it really is.
pub fn is_valid_state(state: &str) -> bool {
    (STATE_TAG_LEN..=MAX_STATE_LEN).contains(&state.len()) && state.bytes().all(is_base64url)
}

/// The login cookie's value: when the sign-in started (unix microseconds, to
/// drop the truly oldest pending sign-ins first, tabs within a second included) and the browser binding.
pub fn login_cookie_value(started: i64, binding: &str) -> String {
    format!("{started}.{binding}")
}

/// Reads a [`login_cookie_value`]; `None` for anything the gateway would not
/// have written (so a forged cookie never reaches the store).
pub fn parse_login_cookie(value: &str) -> Option<(i64, &str)> {
    let (started, binding) = value.split_once('.')?;
    // `parse` alone would take a sign; the gateway never writes one.
    if started.is_empty() || !started.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if binding.is_empty() || !binding.bytes().all(is_base64url) {
        return None;
    }
    Some((started.parse().ok()?, binding))
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_shape() {
        assert!(is_valid_state("abcdefghij"));
        assert!(is_valid_state(&"A-_9".repeat(16)));
        for bad in [
            "",
            "abcdefghi",
            "abcdefghi=",
            "abcdefghi.j",
            "abcdefghié",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_state(bad), "{bad:?}");
        }
    }

    #[test]
    fn login_cookie() {
        assert_eq!(parse_login_cookie("1700000000.aB-_"), Some((1_700_000_000, "aB-_")));
        assert_eq!(parse_login_cookie(&login_cookie_value(0, "x")), Some((0, "x")));
        for bad in [
            "",
            ".",
            "123",
            "123.",
            ".abc",
            "-1.abc",
            "+1.abc",
            "1.a.b",
            "1.a b",
            "99999999999999999999.abc",
        ] {
            assert_eq!(parse_login_cookie(bad), None, "{bad:?}");
        }
    }
}
