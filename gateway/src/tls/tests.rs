use super::*;

/// A self-signed certificate for 127.0.0.1 and its key (PEM), written to
/// `dir` as `<name>.pem` and `<name>.key`; returns both paths.
pub(crate) fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn leaf_der(cert: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(cert).unwrap().to_vec()
}

#[test]
fn a_matching_pair_loads_and_is_named_by_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "a");
    let pair = CertPair::load(&cert, &key).unwrap();
    assert_eq!(pair.fingerprint(), fingerprint(&CertificateDer::from(leaf_der(&cert))));
    assert_eq!(pair.fingerprint().len(), 64);
    let shown = format!("{pair:?}");
    assert!(
        shown.contains(pair.fingerprint()) && !shown.contains("PRIVATE"),
        "{shown}"
    );
}

#[test]
fn a_chain_keeps_every_certificate_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "a");
    let (other, _) = write_pair(dir.path(), "b");
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(&cert).unwrap(),
        std::fs::read_to_string(&other).unwrap()
    );
    std::fs::write(&cert, chain).unwrap();
    let pair = CertPair::load(&cert, &key).unwrap();
    assert_eq!(pair.key.cert.len(), 2);
    assert_eq!(pair.key.cert[0].as_ref(), leaf_der(&cert));
}

#[test]
fn a_key_of_another_certificate_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = write_pair(dir.path(), "a");
    let (_, other_key) = write_pair(dir.path(), "b");
    let e = CertPair::load(&cert, &other_key).unwrap_err();
    assert!(matches!(e, PairError::Mismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("does not belong to the certificate"), "{e}");
}

#[test]
fn unreadable_or_empty_files_say_which_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "a");
    let missing = dir.path().join("missing.pem");
    let e = CertPair::load(&missing, &key).unwrap_err();
    assert!(matches!(&e, PairError::Read { path, .. } if *path == missing), "{e:?}");
    let e = CertPair::load(&cert, &missing).unwrap_err();
    assert!(matches!(&e, PairError::Read { path, .. } if *path == missing), "{e:?}");

    // Swapped files: no certificate in the key file, no key in the certificate.
    let e = CertPair::load(&key, &key).unwrap_err();
    assert!(matches!(e, PairError::NoCertificate { .. }), "{e:?}");
    let e = CertPair::load(&cert, &cert).unwrap_err();
    assert!(matches!(e, PairError::NoKey { .. }), "{e:?}");

    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n").unwrap();
    let e = CertPair::load(&bad, &key).unwrap_err();
    assert!(matches!(e, PairError::BadCertificatePem { .. }), "{e:?}");
}

#[test]
fn a_broken_key_is_reported_without_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_pair(dir.path(), "a");
    let pem = std::fs::read_to_string(&key).unwrap();
    // Truncated mid-body: the END line is missing.
    let body: Vec<&str> = pem.lines().collect();
    let truncated = body[..body.len() - 2].join("\n");
    std::fs::write(&key, &truncated).unwrap();
    let e = CertPair::load(&cert, &key).unwrap_err();
    assert!(matches!(e, PairError::BadKeyPem { .. }), "{e:?}");
    let shown = format!("{e} {e:?}");
    for line in &body[1..body.len() - 2] {
        assert!(!shown.contains(line), "key material in the error: {shown}");
    }

    // Valid PEM whose DER is not a key.
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = CertPair::load(&cert, &key).unwrap_err();
    assert!(matches!(e, PairError::UnusableKey { .. }), "{e:?}");
}

#[test]
fn the_resolver_serves_the_pair_it_was_last_given() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ka) = write_pair(dir.path(), "a");
    let (cb, kb) = write_pair(dir.path(), "b");
    let a = CertPair::load(&ca, &ka).unwrap();
    let b = CertPair::load(&cb, &kb).unwrap();
    let resolver = CertResolver::new(a.clone());
    assert_eq!(resolver.current().fingerprint(), a.fingerprint());
    assert!(!resolver.replace(a.clone()), "the same certificate is no change");
    assert!(resolver.replace(b.clone()));
    assert_eq!(resolver.current().fingerprint(), b.fingerprint());
    assert_eq!(resolver.current().key.cert[0].as_ref(), leaf_der(&cb));
    assert!(format!("{resolver:?}").contains(b.fingerprint()));
}
