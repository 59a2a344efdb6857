//! `trust rotate start|status|next|abort` through a whole rotation on three real API
//! servers with OpenBao, in both issuer modes (cert-manager with Flux and Helm, Vault
//! issuers with Argo CD and Jobs). The world around meshfleet is played as
//! `anchor_rotation/world.rs` explains; at every step every cluster's leaf verifies
//! against every cluster's bundle in use, and `next` refuses while one cluster lags.

#[path = "anchor_rotation/world.rs"]
mod world;

use serde_json::Value;

use self::world::{CLUSTERS, Run, World, fingerprints, read};

fn assert_cross_verifies(world: &World, when: &str) {
    let failures = world.cross_verify();
    assert!(
        failures.is_empty(),
        "{when}: cross-cluster verification failed:\n{}",
        failures.join("\n")
    );
}

fn status_json(world: &World) -> (i32, Value) {
    let run = world.meshfleet(&["-o", "json", "trust", "rotate", "status", "."]);
    let value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.all()));
    (run.code, value)
}

/// The ids blocking each cluster, `cluster: id, id`.
fn blocking(report: &Value) -> Vec<String> {
    report["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .filter(|c| !c["blocking"].as_array().expect("blocking").is_empty())
        .map(|c| {
            let ids: Vec<&str> = c["blocking"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["id"].as_str().unwrap())
                .collect();
            format!("{}: {}", c["cluster"].as_str().unwrap(), ids.join(", "))
        })
        .collect()
}

/// `next` must refuse, write nothing, and name what blocks.
fn next_refused(world: &World, names: &str) -> Run {
    let before = (world.fleet_file(), world.bundle());
    let (code, report) = status_json(world);
    assert_eq!(
        code, 1,
        "`status` before a `next` that must be refused ({names}):\n{report:#}"
    );
    let run = world.meshfleet(&["trust", "rotate", "next", "."]);
    run.expect(1);
    assert!(
        run.stderr
            .contains("not every cluster is ready (nothing was written)"),
        "{}",
        run.all()
    );
    assert!(run.stdout.contains(names), "{names}:\n{}", run.all());
    assert_eq!(
        (world.fleet_file(), world.bundle()),
        before,
        "a refused `next` wrote nothing"
    );
    run
}

fn next(world: &World, phase: &str) -> Run {
    let run = world.meshfleet(&["trust", "rotate", "next", "."]);
    run.expect(0);
    assert!(
        run.stderr.contains(&format!("phase is now `{phase}`")),
        "{}",
        run.all()
    );
    assert!(
        world.fleet_file().contains(&format!("phase: {phase}")),
        "{}",
        world.fleet_file()
    );
    run
}

fn phase(report: &Value) -> &str {
    report["phase"].as_str().unwrap_or("-")
}

/// From `start` to the end: returns (old, new) fingerprints. The last `next` destroys
/// the retired key versions in Vault, or with `keep` passes `--keep-retired-key`.
fn full_rotation(world: &World, keep: bool) -> (String, String) {
    let old = world.bundle();
    assert_eq!(old.len(), 1);
    assert_cross_verifies(world, "before the rotation");

    // start --dry-run writes nothing; start writes the key (0600), the bundle, the phase.
    let before = world.fleet_file();
    let dry = world.meshfleet(&["trust", "rotate", "start", ".", "--dry-run"]);
    dry.expect(0);
    assert!(
        dry.stderr.contains("dry run: nothing was written"),
        "{}",
        dry.all()
    );
    assert_eq!(world.fleet_file(), before);
    assert!(!world.keys().join("trust-anchor.rotation.key").exists());
    let start = world.meshfleet(&["trust", "rotate", "start", "."]);
    start.expect(0);
    assert!(
        !start.stderr.contains("PRIVATE KEY") && !start.stdout.contains("PRIVATE KEY"),
        "{}",
        start.all()
    );
    let key = world.keys().join("trust-anchor.rotation.key");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777,
        0o600
    );
    let bundle = world.bundle();
    assert_eq!(bundle.len(), 2);
    assert_eq!(bundle[0], old[0]);
    let new = bundle[1].clone();
    assert!(
        world.fleet_file().contains("# kept by the rotation"),
        "comments survive"
    );
    world.meshfleet(&["validate", "."]).expect(0);

    // Nothing applied yet: every cluster blocks on its bundle; trust verify calls it pending.
    let (code, report) = status_json(world);
    assert_eq!((code, phase(&report)), (1, "distribute"), "{report}");
    assert_eq!(
        blocking(&report),
        ["r1: trust-roots", "r2: trust-roots", "r3: trust-roots"]
    );
    let verify = world.meshfleet(&["trust", "verify", "."]);
    verify.expect(0);
    assert!(verify.stdout.contains("rotation-pending"), "{}", verify.all());

    // Two of three clusters applied it: r3 lags with the old bundle.
    World::tick();
    world.apply_tree(&["r1", "r2"]);
    assert_cross_verifies(world, "distribute, r3 on the old bundle");
    next_refused(world, "r3");
    let (_, report) = status_json(world);
    assert!(
        blocking(&report).contains(&"r3: trust-roots".to_string()),
        "{report}"
    );
    assert!(
        blocking(&report)
            .iter()
            .any(|b| b.starts_with("r1: control-plane-restarted, meshed-pods-restarted")),
        "{report}"
    );

    // All applied; pods restarted everywhere but one meshed pod of r2.
    world.apply_tree(&["r3"]);
    World::tick();
    world.restart_pods(&["r1", "r3"]);
    world.restart_pod("r2", "linkerd", "linkerd-identity", true);
    world.restart_pod("r2", "linkerd", "linkerd-destination", true);
    let refused = next_refused(world, "meshed-pods-restarted");
    assert!(
        refused
            .stdout
            .contains("kubectl --context r2 -n apps delete pod/web-"),
        "{}",
        refused.all()
    );
    assert!(
        !refused.stdout.contains("batch-"),
        "an unmeshed pod does not count:\n{}",
        refused.all()
    );
    world.restart_pod("r2", "apps", "web", true);
    let (code, report) = status_json(world);
    assert_eq!(code, 0, "{report}");
    assert_cross_verifies(world, "distribute, every cluster on both");

    // Issuers move: keys swap; nothing in a cluster changed yet, so every issuer blocks.
    next(world, "issuers");
    let (_, report) = status_json(world);
    assert_eq!(
        blocking(&report),
        [
            "r1: issuer-signed-by-new",
            "r2: issuer-signed-by-new",
            "r3: issuer-signed-by-new"
        ]
    );
    world.sync();
    World::tick();
    world.move_issuers(&["r1", "r2"]);
    assert_cross_verifies(world, "issuers, r3 still on the old issuer");
    next_refused(world, "r3");
    world.move_issuers(&["r3"]);
    assert_cross_verifies(world, "issuers, all moved");
    let (code, report) = status_json(world);
    assert_eq!(code, 0, "{report}");

    // Every proxy re-certified: removal is refused while one meshed pod predates the issuer.
    next(world, "recertify");
    World::tick();
    world.restart_pods(&["r1", "r2"]);
    // The identity controller first: a pod is re-certified once it loaded the issuer.
    world.restart_pod("r3", "linkerd", "linkerd-identity", true);
    world.restart_pod("r3", "apps", "web", true);
    let refused = next_refused(world, "proxies-recertified");
    assert!(
        refused.stdout.contains("pod/linkerd-destination-"),
        "{}",
        refused.all()
    );
    world.restart_pod("r3", "linkerd", "linkerd-destination", true);
    status_json(world).0.eq(&0).then_some(()).expect("recertify done");

    // The old anchor leaves; abort is too late now.
    next(world, "retire");
    assert_eq!(world.bundle(), std::slice::from_ref(&new));
    let abort = world.meshfleet(&["trust", "rotate", "abort", "."]);
    abort.expect(1);
    assert!(abort.stderr.contains("hint: "), "{}", abort.all());
    world.meshfleet(&["validate", "."]).expect(0);
    world.apply_tree(&["r1"]);
    assert_cross_verifies(world, "retire, r2 and r3 still trust both");
    next_refused(world, "r2");
    world.apply_tree(&["r2", "r3"]);
    assert_cross_verifies(world, "retire, only the new anchor anywhere");

    // Done: the fleet file has no rotation; every bundle holds only the new anchor.
    let done = end_rotation(world, keep);
    assert!(done.stderr.contains("the rotation is over"), "{}", done.all());
    assert!(
        !world.fleet_file().contains("rotation:"),
        "{}",
        world.fleet_file()
    );
    assert_eq!(world.fleet_file().lines().count(), before.lines().count());
    assert!(!world.keys().join("trust-anchor.rotation.key").exists());
    world.meshfleet(&["trust", "verify", "."]).expect(0);
    let check = world.meshfleet(&["-o", "json", "check", "."]);
    let report: Value =
        serde_json::from_str(&check.stdout).unwrap_or_else(|e| panic!("{e}\n{}", check.all()));
    let anchors_ok = report.to_string().matches("\"trust-anchors-match\"").count();
    assert_eq!(anchors_ok, CLUSTERS.len(), "{report}");
    for cluster in report["clusters"].as_array().expect("clusters") {
        let result = cluster["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == "trust-anchors-match"))
            .unwrap_or_else(|| panic!("{cluster}"));
        assert_eq!(result["status"], "ok", "{result}");
    }
    (old[0].clone(), new)
}

/// The `retiredKeys` of `trust rotate status -o json` (also without a rotation).
fn retired_keys(world: &World) -> Value {
    let (code, report) = status_json(world);
    assert_eq!(code, 0, "{report:#}");
    report["retiredKeys"].clone()
}

/// The last `next` of `retire`, and what it does to the old versions in Vault: version 1
/// of each identity key (written before the rotation) holds the retired private key,
/// version 2 (written in `issuers`) the new one.
fn end_rotation(world: &World, keep: bool) -> Run {
    let keys = world.identity_keys();
    for key in &keys {
        assert!(
            world
                .bao_kv_get(key, 1)
                .is_some_and(|v| v.contains_key("tls.key")),
            "before the end, version 1 of {key} still holds the old key"
        );
    }
    let report = retired_keys(world);
    assert_eq!(report["status"], "remain", "{report:#}");
    assert_eq!(report["remaining"], keys.len(), "{report:#}");
    let fleet = world.fleet_file();
    if keep {
        let done = world.meshfleet(&["trust", "rotate", "next", ".", "--keep-retired-key"]);
        done.expect(0);
        assert!(
            done.stderr.contains("kept (`--keep-retired-key`)"),
            "{}",
            done.all()
        );
        for key in &keys {
            assert!(world.bao_kv_get(key, 1).is_some(), "{key}: version 1 kept");
        }
        let report = retired_keys(world);
        assert_eq!(report["status"], "remain", "{report:#}");
        let text = world.meshfleet(&["trust", "rotate", "status", "."]);
        text.expect(0);
        eprintln!("$ meshfleet trust rotate status\n{}{}", text.stdout, text.stderr);
        assert!(
            text.stdout.contains(&format!(
                "`vault kv destroy -versions=1 {}`",
                world.kv_path(&keys[0])
            )),
            "{}",
            text.all()
        );
        return done;
    }
    // A dry run says what it would destroy and destroys nothing.
    let dry = world.meshfleet(&["trust", "rotate", "next", ".", "--dry-run"]);
    dry.expect(0);
    for key in &keys {
        assert!(
            dry.stderr
                .contains(&format!("would destroy version(s) 1 of `{}`", world.kv_path(key))),
            "{}",
            dry.all()
        );
        assert!(world.bao_kv_get(key, 1).is_some(), "a dry run destroyed {key}");
    }
    // Vault unreachable: nothing is written, the rotation stays in `retire`.
    let cut = world.meshfleet_with(
        &[("VAULT_ADDR", "http://127.0.0.1:9")],
        &["trust", "rotate", "next", "."],
    );
    cut.expect(2);
    assert!(
        cut.stderr
            .contains("cannot destroy the retired anchor's private key in Vault")
            && cut.stderr.contains("--keep-retired-key"),
        "{}",
        cut.all()
    );
    assert_eq!(world.fleet_file(), fleet, "nothing written");
    // An earlier run was interrupted after destroying the first key's old version: the
    // rerun destroys the rest and finishes.
    if keys.len() > 1 {
        world.bao_kv_destroy(&keys[0], 1);
    }
    let done = world.meshfleet(&["trust", "rotate", "next", "."]);
    done.expect(0);
    eprintln!("$ meshfleet trust rotate next\n{}", done.stderr);
    for (i, key) in keys.iter().enumerate() {
        let said = done
            .stderr
            .contains(&format!("destroyed version(s) 1 of `{}`", world.kv_path(key)));
        assert_eq!(said, i > 0 || keys.len() == 1, "{key}:\n{}", done.all());
        assert_eq!(world.bao_kv_get(key, 1), None, "{key}: version 1 destroyed");
        let current = world.bao_kv_get(key, 2).expect("the current version is intact");
        assert!(current.contains_key("tls.key"), "{key}");
        assert_eq!(fingerprints(&current["tls.crt"]).len(), 1, "{key}: a certificate");
    }
    let report = retired_keys(world);
    assert_eq!(report["status"], "none", "{report:#}");
    let text = world.meshfleet(&["trust", "rotate", "status", "."]);
    eprintln!("$ meshfleet trust rotate status\n{}{}", text.stdout, text.stderr);
    for entry in report["entries"].as_array().expect("entries") {
        assert_eq!(entry["destroyedVersions"], serde_json::json!([1]), "{entry}");
        assert_eq!(entry["currentVersion"], 2, "{entry}");
    }
    done
}

#[test]
fn a_full_rotation_with_cert_manager_issuers_on_flux() {
    let world = World::new("cert-manager", "flux", "helm");
    let (old, new) = full_rotation(&world, false);
    assert_ne!(old, new);
    // The Vault entry the CA Issuer reads is the new anchor's key pair.
    let anchor = read(&world.path().join("certs/trust-anchor.crt"));
    assert_eq!(fingerprints(&anchor), [new]);
}

#[test]
fn a_full_rotation_with_vault_issuers_on_argocd_jobs() {
    let world = World::new("vault", "argocd", "jobs");
    full_rotation(&world, true);
    // The replaced issuers are kept beside the new ones.
    for cluster in CLUSTERS {
        let kept = std::fs::read_dir(world.keys().join("issuer"))
            .expect("issuer folder")
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name().to_string_lossy().into_owned();
                name.starts_with(&format!("{cluster}.replaced-"))
                    && std::path::Path::new(&name)
                        .extension()
                        .is_some_and(|e| e == "key")
            })
            .count();
        assert_eq!(kept, 1, "{cluster}");
    }
}

#[test]
fn abort_turns_round_and_ends_on_the_old_anchor() {
    let world = World::new("vault", "flux", "helm");
    let old = world.bundle();
    // Abort in `distribute`: straight back to the old anchor alone.
    world.meshfleet(&["trust", "rotate", "start", "."]).expect(0);
    let abort = world.meshfleet(&["trust", "rotate", "abort", "."]);
    abort.expect(0);
    assert_eq!(world.bundle(), old);
    assert!(!world.fleet_file().contains("rotation:"));

    // Abort once some issuers moved: the rotation turns round.
    world.meshfleet(&["trust", "rotate", "start", "."]).expect(0);
    let new = world.bundle()[1].clone();
    World::tick();
    world.apply_tree(&CLUSTERS);
    World::tick();
    world.restart_pods(&CLUSTERS);
    next(&world, "issuers");
    world.sync();
    World::tick();
    world.move_issuers(&["r1"]);
    assert_cross_verifies(&world, "r1 on the new issuer");
    let abort = world.meshfleet(&["trust", "rotate", "abort", "."]);
    abort.expect(0);
    let fleet = world.fleet_file();
    assert!(
        fleet.contains("phase: issuers") && fleet.contains(&format!("to: \"{}\"", old[0])),
        "{fleet}"
    );
    let (_, report) = status_json(&world);
    assert_eq!(
        blocking(&report),
        ["r1: issuer-signed-by-new"],
        "r1 must move back:\n{report}"
    );
    world.sync();
    World::tick();
    world.move_issuers(&CLUSTERS);
    assert_cross_verifies(&world, "abort: issuers back on the old anchor");
    next(&world, "recertify");
    World::tick();
    world.restart_pods(&CLUSTERS);
    next(&world, "retire");
    assert_eq!(world.bundle(), old, "the anchor that was new leaves");
    world.apply_tree(&CLUSTERS);
    assert_cross_verifies(&world, "abort: old anchor alone");
    // Each issuer key now has v1 (old anchor), v2 (signed by the aborted anchor) and v3
    // (old anchor again): exactly v2 holds a retired key and is destroyed.
    let done = world.meshfleet(&["trust", "rotate", "next", "."]);
    done.expect(0);
    assert!(!world.fleet_file().contains("rotation:"));
    assert!(
        world
            .keys()
            .join(format!("trust-anchor.retired-{}.key", new[..23].replace(':', "")))
            .exists()
    );
    for key in world.identity_keys() {
        assert!(
            done.stderr
                .contains(&format!("destroyed version(s) 2 of `{}`", world.kv_path(&key))),
            "{}",
            done.all()
        );
        assert_eq!(world.bao_kv_get(&key, 2), None, "{key}: v2 destroyed");
        for kept in [1, 3] {
            assert!(world.bao_kv_get(&key, kept).is_some(), "{key}: v{kept} kept");
        }
    }
}

/// A fleet folder (BASE_FLEET) with its anchor, and a rotation started (no cluster needed).
fn started_fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), crate::support::BASE_FLEET).expect("write");
    let run = |args: &[&str]| {
        crate::support::meshfleet(dir.path())
            .args(args)
            .output()
            .expect("run")
    };
    assert!(run(&["certs", "init", "."]).status.success());
    let started = run(&["trust", "rotate", "start", "."]);
    assert!(started.status.success(), "{:?}", crate::support::texts(&started));
    dir
}

fn validate(dir: &std::path::Path) -> (i32, String) {
    let out = crate::support::meshfleet(dir)
        .args(["validate", "."])
        .output()
        .expect("validate");
    let (stdout, stderr) = crate::support::texts(&out);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

#[test]
fn a_rotation_state_that_does_not_fit_the_bundle_is_an_error_with_its_line() {
    let dir = started_fleet();
    let fleet_path = dir.path().join("fleet.yaml");
    let fleet = read(&fleet_path);
    let line_of = |needle: &str| fleet.lines().position(|l| l.contains(needle)).expect("line") + 1;

    // A fingerprint that is not one.
    let to_line = line_of("to: \"");
    let from_value = fleet
        .lines()
        .find(|l| l.contains("from: \""))
        .unwrap()
        .to_string();
    std::fs::write(
        &fleet_path,
        fleet.replace(&from_value, "      from: not-a-fingerprint"),
    )
    .unwrap();
    let (code, text) = validate(dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("error[anchor-rotation]: `rotation.from` is not a SHA-256 fingerprint"),
        "{text}"
    );
    assert!(text.contains(&format!("fleet.yaml:{}:13", to_line - 1)), "{text}");
    assert!(
        text.contains("hint: write the fingerprint `meshfleet certs inspect` prints"),
        "{text}"
    );

    // The bundle edited by hand: only the old anchor left while the phase says both.
    std::fs::write(&fleet_path, &fleet).unwrap();
    let bundle_path = dir.path().join("anchor.crt");
    let bundle = read(&bundle_path);
    let first = format!(
        "{}-----END CERTIFICATE-----\n",
        bundle.split("-----END CERTIFICATE-----\n").next().unwrap()
    );
    std::fs::write(&bundle_path, first).unwrap();
    let (code, text) = validate(dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "in phase `distribute` the trust anchor bundle `anchor.crt` must hold exactly the two anchors"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("fleet.yaml:{}:14", line_of("phase: distribute"))),
        "{text}"
    );
    assert!(
        text.contains("hint: the bundle and the rotation state are written together"),
        "{text}"
    );
    // Nothing renders from it, and `next` refuses before reading any cluster.
    let out = crate::support::meshfleet(dir.path())
        .args(["trust", "rotate", "next", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn steps_without_a_rotation_refuse_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), crate::support::BASE_FLEET).expect("write");
    assert!(
        crate::support::meshfleet(dir.path())
            .args(["certs", "init", "."])
            .output()
            .unwrap()
            .status
            .success()
    );
    for step in ["next", "abort"] {
        let out = crate::support::meshfleet(dir.path())
            .args(["trust", "rotate", step, "."])
            .output()
            .unwrap();
        let (_, stderr) = crate::support::texts(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("error: no trust anchor rotation is in progress (nothing was written)"),
            "{stderr}"
        );
        assert!(
            stderr.contains("hint: start one with `meshfleet trust rotate start`"),
            "{stderr}"
        );
    }
    let out = crate::support::meshfleet(dir.path())
        .args(["trust", "rotate", "status", "."])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[path = "anchor_rotation/real_identity.rs"]
mod real_identity;

#[path = "anchor_rotation/restarts.rs"]
mod restarts;

/// The whole rotation with Linkerd's real identity controller answering Certify requests
/// on three clusters (see `anchor_rotation/real_identity.rs`): Vault issuers, Flux.
#[test]
fn a_rotation_with_the_real_identity_controller() {
    real_identity_rotation("vault", "flux");
}

/// The same with cert-manager issuers and Argo CD.
#[test]
fn a_rotation_with_the_real_identity_controller_and_cert_manager_on_argocd() {
    real_identity_rotation("cert-manager", "argocd");
}

fn real_identity_rotation(issuer: &'static str, engine: &str) {
    use self::real_identity::{RealWorld, eventually};
    let w = RealWorld::new(issuer, engine);
    let all = ["i1", "i2", "i3"];
    let verify = |when: &str| {
        let failures = w.cross_verify(when);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    };
    verify("installed");
    w.meshfleet(&["trust", "rotate", "start", "."]).expect(0);
    World::tick();
    w.apply_tree(&["i1", "i2"]);
    verify("distribute, i3 on the old bundle");
    w.apply_tree(&["i3"]);
    World::tick();
    w.restart_control_plane(&all);
    eventually("distribute done", || w.status_ready());
    verify("distribute, every controller restarted on both anchors");
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    w.meshfleet(&["secrets", "sync", "."]).expect(0);
    World::tick();
    w.force_sync_issuers(&["i1"]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    verify("issuers, only i1 moved (the controller reloads its issuer)");
    // The real controller on i1 now issues from the new chain; i2's still from the old.
    let pems = w.bundle_pems();
    assert_eq!(pems.len(), 2);
    let (old_pem, new_pem) = (&pems[0], &pems[1]);
    eventually("i1's controller issuing from the new anchor", || {
        w.leaf_chains_to("i1", new_pem)
    });
    assert!(!w.leaf_chains_to("i1", old_pem));
    assert!(w.leaf_chains_to("i2", old_pem) && !w.leaf_chains_to("i2", new_pem));
    w.force_sync_issuers(&["i2", "i3"]);
    eventually("issuers moved", || w.status_ready());
    verify("issuers, all moved");
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    World::tick();
    w.restart_control_plane(&all);
    eventually("recertify done", || w.status_ready());
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    let new = w.bundle();
    assert_eq!(new.len(), 1);
    w.apply_tree(&["i1"]);
    verify("retire, i1 holds only the new anchor");
    w.apply_tree(&["i2", "i3"]);
    World::tick();
    w.restart_control_plane(&all);
    eventually("retire done", || w.status_ready());
    verify("retire, every cluster only the new anchor");
    for cluster in all {
        assert!(
            w.leaf_chains_to(cluster, new_pem),
            "{cluster} issues from the new anchor"
        );
    }
    w.meshfleet(&["trust", "rotate", "next", "."]).expect(0);
    w.meshfleet(&["trust", "verify", "."]).expect(0);
    let _ = w.path();
}
