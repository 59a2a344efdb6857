//! The SOPS format as the real `sops` decides it (testenv/go/sops, v3.13.3, built by
//! `testenv/run build`): every file meshfleet encrypts is decrypted by `sops --decrypt`
//! with the age key in `SOPS_AGE_KEY_FILE`, a key it was not encrypted for is refused, and
//! files the real `sops` encrypted (meshfleet's rule and sops's own default, with
//! numbers, booleans and lists) are read by meshfleet with their MAC checked.

use std::path::{Path, PathBuf};
use std::process::Command;

use meshfleet_core::identity::sops::{self, AgeIdentities, AgeRecipient};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use crate::support;

/// The real `sops`, built by `testenv/run build` (`scripts/test` runs it first).
fn sops_bin() -> PathBuf {
    let bin = support::repo_root().join("testenv/bin/sops/sops");
    assert!(
        bin.is_file(),
        "{} is missing: run `testenv/run build`",
        bin.display()
    );
    bin
}

fn key_file(dir: &Path, name: &str, ids: &AgeIdentities) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, ids.to_key_file().expose_secret()).expect("key file");
    path
}

/// `sops ARGS FILE` with only this key file (no user config, no other keys).
fn real_sops(dir: &Path, key: &Path, args: &[&str], file: &Path) -> std::process::Output {
    Command::new(sops_bin())
        .args(args)
        .arg(file)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("SOPS_AGE_KEY_FILE", key)
        .output()
        .expect("sops runs")
}

fn credentials_secret(token: &str) -> Map<String, Value> {
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: pro\n  cluster:\n    server: https://pro.vpn.example:6443\nusers:\n- name: pro\n  user:\n    token: {token}\n"
    );
    let v = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "cluster-credentials-pro",
            "namespace": "linkerd",
            "labels": {"app.kubernetes.io/managed-by": "meshfleet", "multicluster.linkerd.io/cluster-name": "pro"},
            "annotations": {"multicluster.linkerd.io/cluster-domain": "cluster.local"},
        },
        "type": "mirror.linkerd.io/remote-kubeconfig",
        "stringData": {"kubeconfig": kubeconfig},
        "data": {"extra": "", "ca.crt": "LS0tLS1CRUdJTg=="},
    });
    v.as_object().cloned().expect("an object")
}

fn parse_yaml(text: &[u8]) -> Value {
    serde_saphyr::from_str(std::str::from_utf8(text).expect("utf-8")).expect("YAML")
}

#[test]
fn real_sops_decrypts_what_meshfleet_encrypts_and_only_for_its_recipients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cluster, operator, stranger) = (
        AgeIdentities::generate(),
        AgeIdentities::generate(),
        AgeIdentities::generate(),
    );
    let recipients: Vec<AgeRecipient> = cluster
        .recipients()
        .into_iter()
        .chain(operator.recipients())
        .collect();
    let document = credentials_secret("SENTINEL-TOKEN-7f3a");
    let text = sops::encrypt(&document, &recipients, &sops::now_rfc3339()).expect("encrypts");
    assert!(!text.contains("SENTINEL-TOKEN"), "the token is encrypted");
    let file = dir.path().join("cluster-credentials-pro.sops.yaml");
    std::fs::write(&file, &text).expect("write");

    for (name, ids) in [("cluster.txt", &cluster), ("operator.txt", &operator)] {
        let key = key_file(dir.path(), name, ids);
        let out = real_sops(dir.path(), &key, &["--decrypt"], &file);
        assert!(
            out.status.success(),
            "sops --decrypt with {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            parse_yaml(&out.stdout),
            Value::Object(document.clone()),
            "sops reads what meshfleet wrote"
        );
    }
    let key = key_file(dir.path(), "stranger.txt", &stranger);
    let out = real_sops(dir.path(), &key, &["--decrypt"], &file);
    assert!(
        !out.status.success(),
        "a key the file is not encrypted for is refused"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("SENTINEL"));

    // A value changed without sops: the real sops refuses the file (the MAC covers names too).
    let tampered = dir.path().join("tampered.sops.yaml");
    std::fs::write(
        &tampered,
        text.replace("cluster-credentials-pro", "cluster-credentials-dev"),
    )
    .expect("write");
    let key = key_file(dir.path(), "cluster2.txt", &cluster);
    let out = real_sops(dir.path(), &key, &["--decrypt"], &tampered);
    assert!(!out.status.success(), "an edited file fails sops's MAC check");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MAC"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn meshfleet_reads_what_the_real_sops_encrypts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = AgeIdentities::generate();
    let key = key_file(dir.path(), "keys.txt", &ids);
    let recipient = ids.recipients()[0].to_string();
    let document = credentials_secret("SENTINEL-TOKEN-91c2");
    let mut plain = serde_saphyr::to_string(&Value::Object(document.clone())).expect("YAML");
    // sops's own default (everything encrypted but `_unencrypted` keys) with numbers,
    // booleans, nulls and lists, which meshfleet's Secrets never hold.
    plain.push_str("extra:\n  port: 4143\n  ratio: 1.5\n  enabled: true\n  off: false\n  none: null\n  list: [a, 2, {b: c}]\n  note_unencrypted: plain\n");
    let expected = parse_yaml(plain.as_bytes());
    let input = dir.path().join("secret.yaml");
    std::fs::write(&input, &plain).expect("write");

    for rule in [
        vec!["--encrypted-regex", sops::SECRET_ENCRYPTED_REGEX],
        vec![],
        vec!["--mac-only-encrypted"],
    ] {
        let mut args = vec!["--encrypt", "--age", &recipient];
        args.extend(rule.iter().copied());
        let out = real_sops(dir.path(), &key, &args, &input);
        assert!(
            out.status.success(),
            "sops {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let encrypted = String::from_utf8(out.stdout).expect("utf-8");
        assert!(!encrypted.contains("SENTINEL"));
        let back =
            sops::decrypt(&encrypted, &ids).unwrap_or_else(|e| panic!("meshfleet reads sops {rule:?}: {e}"));
        assert_eq!(
            Value::Object(back.document),
            expected,
            "the same document after sops {rule:?}"
        );
        assert_eq!(back.recipients, vec![recipient.clone()]);
        let other = AgeIdentities::generate();
        assert!(matches!(
            sops::decrypt(&encrypted, &other),
            Err(sops::SopsError::NoMatchingKey { .. })
        ));
    }
}

#[test]
fn a_file_sealed_again_unchanged_is_byte_identical_and_still_decrypts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = AgeIdentities::generate();
    let document = credentials_secret("SENTINEL-TOKEN-aa01");
    let first = sops::seal(&document, &ids.recipients(), None, &ids, "2026-12-07T10:00:00Z").expect("seals");
    let second = sops::seal(
        &document,
        &ids.recipients(),
        Some(&first),
        &ids,
        "2026-12-07T11:00:00Z",
    )
    .expect("seals");
    assert_eq!(first, second, "unchanged values are not encrypted again");
    let file = dir.path().join("s.sops.yaml");
    std::fs::write(&file, &second).expect("write");
    let key = key_file(dir.path(), "keys.txt", &ids);
    let out = real_sops(dir.path(), &key, &["--decrypt"], &file);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(parse_yaml(&out.stdout), Value::Object(document));
}
