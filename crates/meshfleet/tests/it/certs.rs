//! `certs init` and `certs inspect`: Linkerd-shaped certificates that openssl accepts,
//! keys at 0600 in a git-ignored folder, and no overwriting.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use crate::support::{BASE_FLEET, meshfleet, texts};

fn fleet_without_anchor(issuer: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = BASE_FLEET.replace(
        "trustAnchor: anchor.crt",
        &format!("trustAnchor: certs/anchor.crt\n    issuer: {issuer}"),
    );
    std::fs::write(dir.path().join("fleet.yaml"), text).expect("write");
    dir
}

fn openssl_verify(anchor: &std::path::Path, cert: &std::path::Path) {
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(anchor)
        .arg(cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `openssl x509 -text` says about a certificate file.
fn x509_text(cert: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .expect("x509");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn init_makes_an_anchor_and_issuers_that_openssl_accepts() {
    let dir = fleet_without_anchor("vault");
    let out = meshfleet(dir.path())
        .args(["certs", "init", "."])
        .output()
        .expect("init");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("PRIVATE KEY") && !stderr.contains("PRIVATE KEY"));
    let anchor = dir.path().join("certs/anchor.crt");
    let keys = dir.path().join(".meshfleet/keys");
    openssl_verify(&anchor, &anchor);
    for cluster in ["east", "west"] {
        let cert = keys.join(format!("issuer/{cluster}.crt"));
        openssl_verify(&anchor, &cert);
        assert_eq!(mode(&keys.join(format!("issuer/{cluster}.key"))), 0o600);
        let text = x509_text(&cert);
        assert!(
            text.contains("CA:TRUE, pathlen:0") && text.contains("P-256"),
            "{text}"
        );
        assert!(
            text.contains("CN = identity.linkerd.cluster.local")
                || text.contains("CN=identity.linkerd.cluster.local"),
            "{text}"
        );
    }
    assert_eq!(mode(&keys.join("trust-anchor.key")), 0o600);
    assert_eq!(mode(&keys), 0o700);
    let anchor_text = x509_text(&anchor);
    assert!(
        anchor_text.contains("CA:TRUE, pathlen:1") && anchor_text.contains("root.linkerd.cluster.local"),
        "{anchor_text}"
    );
    assert!(
        std::fs::read_to_string(keys.join(".gitignore"))
            .expect("gitignore")
            .lines()
            .any(|l| l == "*")
    );
    // The fleet is now valid.
    assert!(
        meshfleet(dir.path())
            .args(["validate", "."])
            .output()
            .expect("validate")
            .status
            .success()
    );
}

#[test]
fn init_refuses_to_overwrite_and_changes_nothing() {
    let dir = fleet_without_anchor("cert-manager");
    assert!(
        meshfleet(dir.path())
            .args(["certs", "init", "."])
            .output()
            .expect("init")
            .status
            .success()
    );
    let anchor = std::fs::read(dir.path().join("certs/anchor.crt")).expect("anchor");
    let key = std::fs::read(dir.path().join(".meshfleet/keys/trust-anchor.key")).expect("key");
    let out = meshfleet(dir.path())
        .args(["certs", "init", "."])
        .output()
        .expect("init again");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to overwrite") && stderr.contains("hint: "),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("certs/anchor.crt")).expect("anchor"),
        anchor
    );
    assert_eq!(
        std::fs::read(dir.path().join(".meshfleet/keys/trust-anchor.key")).expect("key"),
        key
    );
}

#[test]
fn init_with_keys_elsewhere_and_issuers_added_later() {
    let dir = fleet_without_anchor("vault");
    let keys = tempfile::tempdir().expect("keys");
    let out = meshfleet(dir.path())
        .args(["certs", "init", ".", "--keys"])
        .arg(keys.path())
        .output()
        .expect("init");
    assert!(out.status.success(), "{}", texts(&out).1);
    assert!(keys.path().join("issuer/east.key").exists());
    assert!(!dir.path().join(".meshfleet").exists());
    // A new cluster: only its issuer is created, signed by the existing anchor.
    let text = std::fs::read_to_string(dir.path().join("fleet.yaml")).expect("read");
    std::fs::write(
        dir.path().join("fleet.yaml"),
        text.replace("  links:", "    - {name: north}\n  links:"),
    )
    .expect("write");
    let before = std::fs::read(keys.path().join("issuer/east.crt")).expect("east");
    let out = meshfleet(dir.path())
        .args(["certs", "init", ".", "--keys"])
        .arg(keys.path())
        .output()
        .expect("init");
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("kept the existing trust anchor"), "{stderr}");
    assert_eq!(
        std::fs::read(keys.path().join("issuer/east.crt")).expect("east"),
        before
    );
    openssl_verify(
        &dir.path().join("certs/anchor.crt"),
        &keys.path().join("issuer/north.crt"),
    );
}

#[test]
fn inspect_shows_what_a_careful_operator_checks() {
    let dir = fleet_without_anchor("vault");
    assert!(
        meshfleet(dir.path())
            .args(["certs", "init", "."])
            .output()
            .expect("init")
            .status
            .success()
    );
    let out = meshfleet(dir.path())
        .args([
            "certs",
            "inspect",
            "certs/anchor.crt",
            ".meshfleet/keys/issuer/east.crt",
        ])
        .output()
        .expect("inspect");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    for needle in [
        "subject:      CN=root.linkerd.cluster.local",
        "(self-signed)",
        "key:          ECDSA P-256",
        "CA:           yes, path length 1",
        "CA:           yes, path length 0",
        "fleet anchor: yes: this is the fleet's trust anchor",
        "fleet anchor: yes: chains to the fleet's anchor `CN=root.linkerd.cluster.local`",
        "days left",
        "sha256:       ",
    ] {
        assert!(stdout.contains(needle), "missing `{needle}` in:\n{stdout}");
    }
    // A certificate from elsewhere does not chain.
    let other = tempfile::tempdir().expect("other");
    std::fs::write(other.path().join("fleet.yaml"), BASE_FLEET).expect("write");
    let anchor = meshfleet_core::identity::generate_anchor(time::OffsetDateTime::now_utc()).expect("anchor");
    std::fs::write(other.path().join("anchor.crt"), anchor.cert_pem).expect("anchor");
    let out = meshfleet(dir.path())
        .args([
            "certs",
            "inspect",
            ".meshfleet/keys/issuer/east.crt",
            "-o",
            "json",
            "--fleet",
        ])
        .arg(other.path())
        .output()
        .expect("inspect");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json[0]["chainsToFleetAnchor"], false, "{json:#}");
    assert_eq!(json[0]["pathLength"], 0);
    assert_eq!(json[0]["keyType"], "ECDSA P-256");
}
