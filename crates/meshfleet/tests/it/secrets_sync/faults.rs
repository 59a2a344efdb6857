//! Every fault `secrets sync` must explain: on the target cluster (account, token Secret,
//! not filled, no `apiServer`, unreachable) and in Vault (unreachable, missing or KV v1
//! mount, a token without the capability, sealed). Each fails its entries with exit 2,
//! names them, gives a `hint:`, and writes nothing for them.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams};
use secrecy::ExposeSecret as _;
use serde_json::json;

use super::setup::{
    NS, PausedControllers, Run, SERVER_NAME, account, bao, closed_port, create, fleet_dir, fleet_text,
    grant_remote_access, kubeconfig_with_stopped, kv_version, meta, port, read, sync, sync_as, token_secret,
};
use crate::testenv;

/// Each fault fails its entries with exit 2, a message that names the entry and a
/// `hint:`, writes nothing for them, and leaves the other entries alone.
#[test]
fn name_the_entry_give_a_hint_and_write_nothing() {
    let started = Instant::now();
    let env = testenv::private(&["studio", "pro"]);
    testenv::block_on(async {
        // studio -> pro works throughout; pro -> studio meets one cluster fault after another.
        let studio_token = grant_remote_access(&env, "pro", "studio").await;
        let text = fleet_text(
            &env,
            &["studio", "pro"],
            "secret",
            "faults/cluster",
            "cert-manager",
        );
        let dir = fleet_dir(&text);
        let anchor_key = read(dir.path().join(".meshfleet/keys/trust-anchor.key"));
        let secrets = [studio_token.as_str(), anchor_key.as_str()];
        let broken = "credentials/pro-to-studio";
        let nothing_written = |path: &'static str| {
            let env = &env;
            async move { assert_eq!(kv_version(env, "secret", path).await, None, "{path} was written") }
        };
        let studio = env.client("studio").await;
        create(
            &Api::<Namespace>::all(studio.clone()),
            &Namespace {
                metadata: meta(NS, None),
                ..Namespace::default()
            },
        )
        .await;
        let expect_broken = |run: &Run, message: &str, hint: &str| {
            eprintln!("{}", run.stdout);
            run.expect(2, &secrets);
            run.expect_failed(broken, message, hint);
        };

        // The account is missing: one bad entry does not stop the others.
        let run = sync(&env, dir.path(), &[]);
        expect_broken(
            &run,
            "cluster `studio` has no ServiceAccount `linkerd-multicluster/linkerd-service-mirror-remote-access-pro`",
            "`linkerd-multicluster` stage of `studio`",
        );
        assert!(
            run.entry("credentials/studio-to-pro")
                .starts_with("✓ credentials/studio-to-pro: written (version 1)"),
            "{}",
            run.all()
        );
        assert!(
            run.stderr.contains("1 of 3 entries could not be synced"),
            "{}",
            run.all()
        );
        nothing_written("faults/cluster/credentials/pro-to-studio").await;

        // The account exists, its token Secret does not.
        create(
            &Api::<ServiceAccount>::namespaced(studio.clone(), NS),
            &ServiceAccount {
                metadata: meta(&account("pro"), Some(NS)),
                ..ServiceAccount::default()
            },
        )
        .await;
        let run = sync(&env, dir.path(), &[]);
        expect_broken(
            &run,
            "has no token Secret for ServiceAccount",
            "token Secret per incoming link",
        );
        nothing_written("faults/cluster/credentials/pro-to-studio").await;

        // A Secret of that name that is not a token Secret (created by hand as Opaque).
        let studio_secrets: Api<Secret> = Api::namespaced(studio.clone(), NS);
        let mut opaque = token_secret("pro");
        opaque.type_ = Some("Opaque".into());
        create(&studio_secrets, &opaque).await;
        let run = sync(&env, dir.path(), &[]);
        expect_broken(
            &run,
            "(type `Opaque`)",
            "delete `linkerd-multicluster/linkerd-service-mirror-remote-access-pro-token`",
        );
        nothing_written("faults/cluster/credentials/pro-to-studio").await;
        studio_secrets
            .delete(&format!("{}-token", account("pro")), &DeleteParams::default())
            .await
            .expect("delete");

        // A real token Secret that the token controller has not filled: it is paused.
        {
            let _paused = PausedControllers::pause(&env, "studio");
            create(&studio_secrets, &token_secret("pro")).await;
            let run = sync(&env, dir.path(), &[]);
            expect_broken(&run, "is not filled yet", "token controller");
            nothing_written("faults/cluster/credentials/pro-to-studio").await;
        }

        // The target has no apiServer: validation warns, sync names the entry.
        let no_server = text.replace(
            &format!(
                "      apiServer: https://{SERVER_NAME}:{}\n",
                port(&env, "studio")
            ),
            "",
        );
        std::fs::write(
            dir.path().join("fleet.yaml"),
            no_server.replace("faults/cluster", "faults/no-server"),
        )
        .expect("write fleet");
        let run = sync(&env, dir.path(), &[]);
        expect_broken(
            &run,
            "cluster `studio` has no `apiServer`",
            "set `apiServer` of cluster `studio`",
        );
        nothing_written("faults/no-server/credentials/pro-to-studio").await;
        std::fs::write(
            dir.path().join("fleet.yaml"),
            text.replace("faults/cluster", "faults/stopped"),
        )
        .expect("write fleet");

        // The target does not answer (its context points at a closed port).
        let kubeconfig = kubeconfig_with_stopped(&env, "studio", dir.path());
        let root = (env.vault_addr(), env.vault_token().expose_secret());
        let run = sync_as(dir.path(), &kubeconfig, root, &[]);
        expect_broken(
            &run,
            "cannot reach cluster `studio` (context `studio`)",
            "kubectl --context studio get --raw /readyz",
        );
        assert!(
            run.entry("credentials/studio-to-pro")
                .starts_with("✓ credentials/studio-to-pro: written"),
            "{}",
            run.all()
        );
        nothing_written("faults/stopped/credentials/pro-to-studio").await;

        // Vault faults fail every entry whose value could be computed; pro -> studio works now.
        let vault_fleet = |mount: &str, path: &str| {
            std::fs::write(
                dir.path().join("fleet.yaml"),
                fleet_text(&env, &["studio", "pro"], mount, path, "cert-manager"),
            )
            .expect("write fleet");
        };
        let expect_vault = |run: &Run, message: &str, hint: &str| {
            eprintln!("{}", run.stdout);
            run.expect(2, &secrets);
            for entry in [
                "trust-anchor",
                "credentials/studio-to-pro",
                "credentials/pro-to-studio",
            ] {
                run.expect_failed(entry, message, hint);
            }
        };

        let unreachable = format!("http://127.0.0.1:{}", closed_port());
        vault_fleet("secret", "faults/vault");
        let run = sync_as(dir.path(), &env.kubeconfig(), (&unreachable, root.1), &[]);
        expect_vault(
            &run,
            &format!("Vault at `{unreachable}` is unreachable"),
            "check `VAULT_ADDR`",
        );

        vault_fleet("nosuch", "faults/vault");
        expect_vault(
            &sync(&env, dir.path(), &[]),
            "Vault has no secrets engine mounted at `nosuch/`",
            "vault secrets enable -path=nosuch kv-v2",
        );

        let (status, _) = bao(
            &env,
            reqwest::Method::POST,
            "sys/mounts/kv1",
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        )
        .await;
        assert_eq!(status, 204, "mount kv1");
        vault_fleet("kv1", "faults/vault");
        expect_vault(
            &sync(&env, dir.path(), &["--dry-run"]),
            "is KV version 1, not KV version 2",
            "vault kv enable-versioning kv1",
        );
        expect_vault(
            &sync(&env, dir.path(), &[]),
            "is KV version 1, not KV version 2",
            "vault kv enable-versioning kv1",
        );
        let (status, listed) = bao(&env, reqwest::Method::GET, "kv1/faults?list=true", None).await;
        assert_eq!(status, 404, "nothing in kv1: {listed}");

        // A token whose policy may read but not write the fleet's keys.
        let policy = "path \"secret/data/faults/*\" { capabilities = [\"read\"] }\npath \"secret/metadata/faults/*\" { capabilities = [\"read\"] }\n";
        let (status, _) = bao(
            &env,
            reqwest::Method::PUT,
            "sys/policies/acl/meshfleet-read-only",
            Some(json!({"policy": policy})),
        )
        .await;
        assert_eq!(status, 204, "policy");
        let (status, created) = bao(
            &env,
            reqwest::Method::POST,
            "auth/token/create",
            Some(json!({"policies": ["meshfleet-read-only"]})),
        )
        .await;
        assert_eq!(status, 200, "token: {created}");
        let reader = created["auth"]["client_token"]
            .as_str()
            .expect("client_token")
            .to_owned();
        vault_fleet("secret", "faults/vault");
        let run = sync_as(dir.path(), &env.kubeconfig(), (env.vault_addr(), &reader), &[]);
        run.expect(2, &[studio_token.as_str(), anchor_key.as_str(), reader.as_str()]);
        expect_vault(
            &run,
            "permission denied: the Vault token may not `create`",
            "capabilities = [\"create\", \"read\", \"update\"]",
        );
        assert!(
            run.entry("credentials/studio-to-pro")
                .contains("`secret/data/faults/vault/credentials/studio-to-pro`"),
            "{}",
            run.all()
        );
        for k in [
            "trust-anchor",
            "credentials/studio-to-pro",
            "credentials/pro-to-studio",
        ] {
            assert_eq!(
                kv_version(&env, "secret", &format!("faults/vault/{k}")).await,
                None,
                "{k} was written"
            );
        }

        // Sealed, last: a dev server's unseal key is not at hand to undo it.
        let (status, _) = bao(&env, reqwest::Method::PUT, "sys/seal", None).await;
        assert_eq!(status, 204, "seal");
        expect_vault(
            &sync(&env, dir.path(), &[]),
            &format!("Vault at `{}` is sealed", env.vault_addr()),
            "vault operator unseal",
        );
    });
    eprintln!(
        "faults::name_the_entry_give_a_hint_and_write_nothing: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
