//! Checks on the private-key files the gateway is given.

use std::path::Path;

/// Why a private-key file is not acceptable as it is, or None when it is.
///
/// A key that any other local account can read lets that account mint
/// assertions the app trusts as any user: refused like a configuration
/// error, with the fix in the message, rather than served with a warning
/// that nobody reads. Unreadable metadata is left to the read that follows,
/// which reports it on its own terms.
pub fn loose_permissions(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // `metadata` follows symlinks: a Kubernetes Secret volume's file is a
        // link into `..data/`, and the mode that counts is the target's.
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "{} is readable by group or others (mode {mode:03o}); it is a private key: \
                 run `chmod 600 {}`. From a Kubernetes Secret volume (files owned by root, \
                 group-readable through fsGroup for a non-root pod), copy the key into an \
                 emptyDir as the gateway's user with an init container running \
                 `install -m 0400 SECRET_FILE KEY_FILE`, as deploy/kubernetes/base/deployment.yaml does",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_owner_only_modes_pass() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key.pem");
        std::fs::write(&f, "x").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o700, true),
            (0o640, false),
            (0o604, false),
            (0o644, false),
        ] {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = loose_permissions(&f);
            assert_eq!(r.is_none(), ok, "{mode:o}: {r:?}");
            if let Some(m) = r {
                assert!(m.contains("chmod 600") && m.contains(&f.display().to_string()), "{m}");
                // A Secret's defaultMode cannot make a file owner-only for a
                // non-root pod: the hint points at the init-container copy.
                assert!(m.contains("install -m 0400") && !m.contains("defaultMode"), "{m}");
            }
        }
        assert!(loose_permissions(&dir.path().join("missing")).is_none());
    }
}
