//! `meshfleet secrets sync` against real API servers, their real token controller and a
//! real OpenBao (`testenv::private`: each test has its own environment, because these
//! tests seal Vault, stop a controller manager and rotate tokens).
//!
//! The fleets' `apiServer`s are `https://kubernetes.default.svc:<port>`. Validation
//! rightly refuses a loopback address for a real fleet, and the test API servers listen
//! on 127.0.0.1 only, with certificates for `127.0.0.1`, `localhost` and the
//! `kubernetes.default.svc` names. So a client built from a kubeconfig that meshfleet
//! wrote dials 127.0.0.1 and checks the server's certificate against the written name
//! (`tls_server_name`), as a cluster whose DNS resolves that name would: the CA, the
//! name, the token and its RBAC are all the real ones.

mod faults;
mod setup;

use std::time::Instant;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use self::setup::{
    NS, SERVER_NAME, account, bao, client_from, fleet_dir, fleet_text, grant_remote_access, kv_data,
    kv_version, may, port, read, status_of, sync, sync_with,
};
use crate::testenv;

/// The happy path end to end: dry run, first sync, what the kubeconfig may do on the
/// target, a second sync that writes nothing, `-o json`, and a rotation.
#[test]
fn sync_writes_kubeconfigs_that_read_services_but_not_secrets() {
    let started = Instant::now();
    let env = testenv::private(&["studio", "pro"]);
    testenv::block_on(async {
        let studio_token = grant_remote_access(&env, "pro", "studio").await;
        let pro_token = grant_remote_access(&env, "studio", "pro").await;
        let dir = fleet_dir(&fleet_text(
            &env,
            &["studio", "pro"],
            "secret",
            "meshfleet/links",
            "cert-manager",
        ));
        let anchor_key = read(dir.path().join(".meshfleet/keys/trust-anchor.key"));
        let secrets = [studio_token.as_str(), pro_token.as_str(), anchor_key.as_str()];
        let keys = [
            "trust-anchor",
            "credentials/studio-to-pro",
            "credentials/pro-to-studio",
        ];
        let key = |k: &str| format!("meshfleet/links/{k}");

        // A dry run says what it would create and writes nothing.
        let dry = sync(&env, dir.path(), &["--dry-run"]);
        dry.expect(0, &secrets);
        crate::snapshot_parts!("secrets_sync_dry_run", dry.code, &dry.stdout, &dry.stderr);
        let dry = sync(&env, dir.path(), &["--dry-run", "-vv"]);
        dry.expect(0, &secrets);
        assert!(
            dry.entry("credentials/studio-to-pro")
                .starts_with("+ credentials/studio-to-pro: would create kubeconfig (values redacted)"),
            "{}",
            dry.all()
        );
        assert!(
            dry.entry("trust-anchor")
                .contains("would create tls.crt, tls.key"),
            "{}",
            dry.all()
        );
        assert!(dry.stdout.contains("nothing was written"), "{}", dry.all());
        for k in keys {
            assert_eq!(
                kv_version(&env, "secret", &key(k)).await,
                None,
                "dry run wrote {k}"
            );
        }

        let first = sync(&env, dir.path(), &[]);
        first.expect(0, &secrets);
        crate::snapshot_parts!("secrets_sync_written", first.code, &first.stdout, &first.stderr);
        for k in keys {
            assert!(
                first.entry(k).starts_with(&format!("✓ {k}: written (version 1)")),
                "{}",
                first.all()
            );
        }

        // The kubeconfig: one cluster, one user, one context; the fleet's server, the CA inline.
        let written = kv_data(&env, "secret", &key("credentials/studio-to-pro"))
            .await
            .expect("credentials written");
        assert_eq!(written.keys().collect::<Vec<_>>(), ["kubeconfig"]);
        let kubeconfig = &written["kubeconfig"];
        let parsed = Kubeconfig::from_yaml(kubeconfig).expect("parses");
        assert_eq!(
            (
                parsed.clusters.len(),
                parsed.auth_infos.len(),
                parsed.contexts.len()
            ),
            (1, 1, 1),
            "{parsed:?}"
        );
        let cluster = parsed.clusters[0].cluster.clone().expect("cluster");
        assert_eq!(
            cluster.server,
            Some(format!("https://{SERVER_NAME}:{}", port(&env, "pro")))
        );
        let ca = base64::engine::general_purpose::STANDARD
            .decode(cluster.certificate_authority_data.expect("inline CA"))
            .expect("base64");
        assert_eq!(ca, env.ca_pem("pro"));
        assert!(cluster.certificate_authority.is_none() && cluster.insecure_skip_tls_verify.is_none());
        let user = parsed.auth_infos[0].auth_info.clone().expect("user");
        assert_eq!(user.token.expect("token").expose_secret(), studio_token);

        // It reaches the target and may do what a service mirror does, and no more.
        let remote = client_from(kubeconfig, &env, "pro").await;
        let services = Api::<Service>::all(remote.clone())
            .list(&ListParams::default())
            .await
            .expect("list services");
        assert!(
            services
                .items
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some("kubernetes"))
        );
        for verb in ["get", "list", "watch"] {
            assert!(may(&remote, verb, "services", None).await, "{verb} services");
            assert!(may(&remote, verb, "endpoints", None).await, "{verb} endpoints");
        }
        assert!(may(&remote, "get", "configmaps", Some("linkerd-config")).await);
        assert!(!may(&remote, "get", "secrets", None).await);
        let remote_secrets: Api<Secret> = Api::namespaced(remote.clone(), NS);
        assert_eq!(
            status_of(remote_secrets.list(&ListParams::default()).await),
            Some(403)
        );
        assert_eq!(
            status_of(remote_secrets.get(&format!("{}-token", account("studio"))).await),
            Some(403)
        );
        // The other direction is written from studio's own token and CA.
        let back = kv_data(&env, "secret", &key("credentials/pro-to-studio"))
            .await
            .expect("pro-to-studio");
        let studio = client_from(&back["kubeconfig"], &env, "studio").await;
        assert!(may(&studio, "list", "services", None).await);

        // The anchor key pair, for cert-manager's CA Issuer.
        let anchor = kv_data(&env, "secret", &key("trust-anchor"))
            .await
            .expect("anchor written");
        assert_eq!(anchor["tls.crt"], read(dir.path().join("certs/trust-anchor.crt")));
        assert_eq!(anchor["tls.key"], anchor_key);

        // Nothing changed: nothing is written, no new version.
        let second = sync(&env, dir.path(), &[]);
        second.expect(0, &secrets);
        for k in keys {
            assert!(
                second
                    .entry(k)
                    .starts_with(&format!("✓ {k}: unchanged (version 1)")),
                "{}",
                second.all()
            );
            assert_eq!(kv_version(&env, "secret", &key(k)).await, Some(1));
        }
        let json_run = sync(&env, dir.path(), &["-o", "json"]);
        json_run.expect(0, &secrets);
        crate::snapshot_parts!(
            "secrets_sync_unchanged_json",
            json_run.code,
            &json_run.stdout,
            &json_run.stderr
        );
        let report: Value = serde_json::from_str(&json_run.stdout).expect("JSON on stdout");
        assert_eq!(report["summary"]["unchanged"], json!(3), "{report}");
        let entry = &report["entries"][1];
        assert_eq!(entry["id"], json!("credentials/pro-to-studio"), "{report}");
        assert_eq!(
            entry["path"],
            json!("secret/meshfleet/links/credentials/pro-to-studio")
        );
        assert_eq!(
            (&entry["status"], &entry["version"], &entry["error"]),
            (&json!("unchanged"), &json!(1), &Value::Null)
        );

        // --rotate never re-issues a token in place (that revoked it under every running
        // controller): it starts a rotation in the fleet file and touches nothing live.
        // The whole rotation runs against Linkerd's real controllers in
        // real_linkerd/rotation.rs; here, what happens before the targets grant anything.
        let pro_accounts: Api<ServiceAccount> = Api::namespaced(env.client("pro").await, NS);
        let old_account_uid = pro_accounts
            .get(&account("studio"))
            .await
            .expect("account")
            .metadata
            .uid;
        let fleet_file = dir.path().join("fleet.yaml");
        let before = std::fs::read_to_string(&fleet_file).expect("fleet");
        let unknown = sync(&env, dir.path(), &["--rotate", "--link", "studio-to-nowhere"]);
        unknown.expect(1, &secrets);
        assert!(
            unknown
                .stderr
                .contains("`studio-to-nowhere` is not a link of the fleet")
                && unknown
                    .stderr
                    .contains("hint: the fleet's links are pro-to-studio, studio-to-pro"),
            "{}",
            unknown.all()
        );
        let planned = sync(
            &env,
            dir.path(),
            &["--rotate", "--dry-run", "--link", "studio-to-pro"],
        );
        planned.expect(0, &secrets);
        assert!(
            planned.stdout.contains("dry run: would record the rotation of 1"),
            "{}",
            planned.all()
        );
        assert_eq!(std::fs::read_to_string(&fleet_file).expect("fleet"), before);
        let started_rotation = sync(&env, dir.path(), &["--rotate", "--link", "studio-to-pro"]);
        started_rotation.expect(0, &secrets);
        let after = std::fs::read_to_string(&fleet_file).expect("fleet");
        let block = "    linkCredentials:  # written by `meshfleet secrets sync --rotate`\n      rotation:\n        phase: granting\n        links:\n          - studio-to-pro\n";
        assert_eq!(
            after.replacen(block, "", 1),
            before,
            "only the rotation block is added:\n{after}"
        );
        // The target does not grant the next account yet: blocked, exit 1, nothing written.
        let blocked = sync(&env, dir.path(), &["--rotate"]);
        blocked.expect(1, &secrets);
        assert!(
            blocked.stdout.contains("× next-account: cluster `pro` has no ServiceAccount `linkerd-multicluster/linkerd-service-mirror-remote-access-studio-g1`")
                && blocked.stdout.contains("hint: the target does not grant `linkerd-service-mirror-remote-access-studio-g1` yet"),
            "{}",
            blocked.all()
        );
        assert_eq!(
            kv_version(&env, "secret", &key("credentials/studio-to-pro")).await,
            Some(1)
        );
        // A plain sync leaves the rotating link alone and syncs the others.
        let plain = sync(&env, dir.path(), &[]);
        plain.expect(0, &secrets);
        assert!(
            plain
                .entry("credentials/studio-to-pro")
                .contains("left alone: a rotation is moving it"),
            "{}",
            plain.all()
        );
        assert_eq!(
            pro_accounts
                .get(&account("studio"))
                .await
                .expect("account")
                .metadata
                .uid,
            old_account_uid
        );
        let still = Api::<Service>::all(remote);
        assert!(
            still.list(&ListParams::default()).await.is_ok(),
            "the current token still works"
        );
    });
    eprintln!(
        "sync_writes_kubeconfigs_that_read_services_but_not_secrets: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// With `identity.issuer: vault`, each cluster's issuer goes to `issuer/<cluster>` with
/// the anchor bundle as `ca.crt`; an issuer whose key does not match is refused, alone.
#[test]
fn issuers_land_in_vault_and_a_mismatched_key_is_refused() {
    let started = Instant::now();
    let env = testenv::private(&["solo"]);
    testenv::block_on(async {
        let text = fleet_text(&env, &["east", "west"], "secret", "identity", "vault");
        let dir = fleet_dir(text.split("  links:").next().expect("fleet"));
        let keys = dir.path().join(".meshfleet/keys");
        let east_key = read(keys.join("issuer/east.key"));
        let west_key = read(keys.join("issuer/west.key"));
        // west's key replaced by east's: it no longer matches west's certificate.
        std::fs::write(keys.join("issuer/west.key"), &east_key).expect("swap key");
        let anchor_key = read(keys.join("trust-anchor.key"));
        let secrets = [east_key.as_str(), west_key.as_str(), anchor_key.as_str()];

        let run = sync(&env, dir.path(), &["-vv"]);
        run.expect(2, &secrets);
        assert!(
            run.entry("issuer/east")
                .starts_with("✓ issuer/east: written (version 1)"),
            "{}",
            run.all()
        );
        let west = run.entry("issuer/west");
        assert!(
            west.starts_with("× issuer/west: the private key `")
                && west.contains("west.key` does not match the issuer"),
            "{}",
            run.all()
        );
        assert!(west.contains("hint: "), "{}", run.all());
        assert_eq!(kv_version(&env, "secret", "identity/issuer/west").await, None);
        assert_eq!(
            kv_version(&env, "secret", "identity/trust-anchor").await,
            None,
            "the anchor key stays local"
        );

        let east = kv_data(&env, "secret", "identity/issuer/east")
            .await
            .expect("issuer/east");
        assert_eq!(east.keys().collect::<Vec<_>>(), ["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(east["ca.crt"], read(dir.path().join("certs/trust-anchor.crt")));
        assert_eq!(east["tls.crt"], read(keys.join("issuer/east.crt")));
        assert_eq!(east["tls.key"], east_key);

        // Restored, west is written and east stays as it was.
        std::fs::write(keys.join("issuer/west.key"), &west_key).expect("restore key");
        let run = sync(&env, dir.path(), &[]);
        run.expect(0, &secrets);
        assert!(
            run.entry("issuer/west")
                .starts_with("✓ issuer/west: written (version 1)"),
            "{}",
            run.all()
        );
        assert!(
            run.entry("issuer/east")
                .starts_with("✓ issuer/east: unchanged (version 1)"),
            "{}",
            run.all()
        );
        assert_eq!(
            kv_data(&env, "secret", "identity/issuer/west")
                .await
                .expect("issuer/west")["tls.key"],
            west_key
        );

        // Vault's conventions: the token from `~/.vault-token`, a namespace from
        // `VAULT_NAMESPACE` (OpenBao has namespaces; `team/` in a path addresses one).
        let (status, _) = bao(&env, reqwest::Method::POST, "sys/namespaces/team", None).await;
        assert_eq!(status, 200, "namespace");
        let kv2 = json!({"type": "kv", "options": {"version": "2"}});
        let (status, _) = bao(&env, reqwest::Method::POST, "team/sys/mounts/kv", Some(kv2)).await;
        assert_eq!(status, 204, "mount in the namespace");
        std::fs::write(
            dir.path().join("fleet.yaml"),
            text.split("  links:")
                .next()
                .expect("fleet")
                .replace("mount: secret", "mount: kv"),
        )
        .expect("write fleet");
        std::fs::write(dir.path().join(".vault-token"), env.vault_token().expose_secret())
            .expect("token file");
        // ... and the key folder elsewhere, named with `--keys`.
        std::fs::rename(&keys, dir.path().join("moved-keys")).expect("move the key folder");
        let vault = [("VAULT_ADDR", env.vault_addr()), ("VAULT_NAMESPACE", "team")];
        let run = sync_with(dir.path(), &env.kubeconfig(), &vault, &["--keys", "moved-keys"]);
        run.expect(
            0,
            &[
                east_key.as_str(),
                west_key.as_str(),
                env.vault_token().expose_secret(),
            ],
        );
        assert!(
            run.entry("issuer/west")
                .starts_with("✓ issuer/west: written (version 1)"),
            "{}",
            run.all()
        );
        assert_eq!(
            kv_data(&env, "team/kv", "identity/issuer/west")
                .await
                .expect("in the namespace")["tls.key"],
            west_key
        );
    });
    eprintln!(
        "issuers_land_in_vault_and_a_mismatched_key_is_refused: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// With `spec.secrets.sops` (no Vault at all): `secrets sync --out` reads each target's
/// real remote-access token and seals both credentials Secrets of each link into the
/// source's tree. The real `sops` opens them with the source's key and the operator's,
/// the kubeconfig inside is the one whose token the target issued, and the other
/// cluster's key cannot open them; no token reaches the tree in clear, stdout or stderr.
#[test]
fn with_sops_each_links_credentials_are_sealed_for_its_source_only() {
    let env = testenv::private(&["studio", "pro"]);
    testenv::block_on(async {
        let studio_token = grant_remote_access(&env, "pro", "studio").await;
        let pro_token = grant_remote_access(&env, "studio", "pro").await;
        let keys = tempfile::tempdir().expect("tempdir");
        let recipient = |name: &str| {
            let out = crate::support::meshfleet(keys.path())
                .args(["secrets", "age-key", "--out", name])
                .output()
                .expect("age-key");
            assert!(out.status.success());
            String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
        };
        let (op, studio, pro) = (recipient("op.key"), recipient("studio.key"), recipient("pro.key"));
        let vault_block = "  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: p\n";
        let text = fleet_text(&env, &["studio", "pro"], "secret", "p", "cert-manager").replace(
            vault_block,
            &format!("  secrets:\n    sops:\n      age:\n        operators: [{op}]\n        clusters: {{studio: {studio}, pro: {pro}}}\n"),
        );
        assert!(text.contains("sops:"), "{text}");
        let dir = fleet_dir(&text);
        let run = sync_with(
            dir.path(),
            &env.kubeconfig(),
            &[],
            &[
                "--out",
                "tree",
                "--age-key",
                keys.path().join("op.key").to_str().expect("path"),
                "-vv",
            ],
        );
        run.expect(0, &[studio_token.as_str(), pro_token.as_str()]);
        assert!(run.stdout.contains("6 files: 6 written"), "{}", run.all());
        let tree = dir.path().join("tree");
        let file = tree.join("studio/links/cluster-credentials-pro.linkerd.sops.yaml");
        let text = read(&file);
        assert!(!text.contains(&studio_token) && !text.contains(&pro_token));
        let decrypt = |key: &str| {
            std::process::Command::new(crate::support::repo_root().join("testenv/bin/sops/sops"))
                .arg("--decrypt")
                .arg(&file)
                .env_clear()
                .env("HOME", keys.path())
                .env("SOPS_AGE_KEY_FILE", keys.path().join(key))
                .output()
                .expect("sops runs")
        };
        for key in ["studio.key", "op.key"] {
            let out = decrypt(key);
            assert!(
                out.status.success(),
                "{key}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let doc: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
            assert_eq!(
                doc["metadata"]["labels"]["multicluster.linkerd.io/cluster-name"],
                "pro"
            );
            assert_eq!(doc["type"], "mirror.linkerd.io/remote-kubeconfig");
            let kubeconfig = base64::engine::general_purpose::STANDARD
                .decode(doc["data"]["kubeconfig"].as_str().expect("kubeconfig"))
                .expect("base64");
            let kubeconfig = String::from_utf8(kubeconfig).expect("utf-8");
            assert!(
                kubeconfig.contains(&studio_token),
                "the token pro issued to studio's account"
            );
            assert!(!kubeconfig.contains(&pro_token));
        }
        assert!(
            !decrypt("pro.key").status.success(),
            "pro's key cannot open studio's credentials"
        );
    });
}
