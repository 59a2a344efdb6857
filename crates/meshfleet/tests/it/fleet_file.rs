//! Which file a fleet folder holds: `fleet.yaml` (or `fleet.yml`), or `meshfleet.yaml`
//! for folders that Rancher Fleet also reads (it takes any `fleet.yaml` for one of its
//! bundles); never two of them. And `-`, a fleet on stdin.

use crate::support::{BASE_FLEET, TempFleet, meshfleet, texts};

#[test]
fn a_folder_may_hold_meshfleet_yaml_instead_of_fleet_yaml() {
    let fleet = TempFleet::new(BASE_FLEET);
    std::fs::rename(
        fleet.path().join("fleet.yaml"),
        fleet.path().join("meshfleet.yaml"),
    )
    .expect("rename");
    for args in [vec!["validate", "."], vec!["graph", ".", "--format", "dot"]] {
        let out = meshfleet(fleet.path()).args(&args).output().expect("run");
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    }
    // From outside the folder, and the rendered files name the file they came from.
    let parent = fleet.path().parent().expect("parent");
    let out = meshfleet(parent)
        .arg("render")
        .arg(fleet.path())
        .arg("--any-dir")
        .arg("--out")
        .arg(fleet.path().join("out"))
        .output()
        .expect("render");
    assert!(out.status.success(), "{}", texts(&out).1);
    let header =
        std::fs::read_to_string(fleet.path().join("out/east/kustomization.yaml")).expect("rendered file");
    assert!(header.contains("(meshfleet.yaml)"), "{header}");
}

#[test]
fn a_folder_with_both_names_is_an_error_that_says_which_to_keep() {
    let fleet = TempFleet::new(BASE_FLEET);
    std::fs::write(fleet.path().join("meshfleet.yaml"), BASE_FLEET).expect("write");
    for args in [
        vec!["validate", "."],
        vec!["render", ".", "--any-dir", "--out", "out"],
        vec!["graph", "."],
        vec!["certs", "init", "."],
    ] {
        let out = meshfleet(fleet.path()).args(&args).output().expect("run");
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.contains("`.` holds both `fleet.yaml` and `meshfleet.yaml`; meshfleet cannot tell which one is the fleet"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("hint: keep one: keep `meshfleet.yaml` if Rancher Fleet also reads this folder"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("./meshfleet.yaml"), "{args:?}: {stderr}");
    }
    assert!(!fleet.path().join("out").exists(), "render wrote nothing");
    // Naming the file settles it.
    let out = meshfleet(fleet.path())
        .args(["validate", "meshfleet.yaml"])
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(0), "{}", texts(&out).1);
}

/// Issue 23: `fleet.yml` is a fleet file too (as kustomize takes `kustomization.yml`);
/// beside `fleet.yaml` it is ambiguous, and the error says which names it saw.
#[test]
fn a_folder_may_hold_fleet_yml() {
    let fleet = TempFleet::new(BASE_FLEET);
    std::fs::rename(fleet.path().join("fleet.yaml"), fleet.path().join("fleet.yml")).expect("rename");
    let out = meshfleet(fleet.path())
        .args(["validate", "."])
        .output()
        .expect("validate");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "✓ fleet `test` is valid: 2 cluster(s), 2 link(s)\n");
    std::fs::write(fleet.path().join("fleet.yaml"), BASE_FLEET).expect("write");
    let out = meshfleet(fleet.path())
        .args(["validate", "."])
        .output()
        .expect("validate");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert_eq!(
        stderr,
        "error: `.` holds both `fleet.yaml` and `fleet.yml`; meshfleet cannot tell which one is the fleet\n\
         hint: keep one and remove the other, or pass the file itself as PATH, e.g. `./fleet.yaml`\n"
    );
}

/// Issue 23: `-` reads the fleet from stdin for the commands that only read it;
/// those that write beside it refuse, with why, and write nothing.
#[test]
fn a_fleet_from_stdin() {
    let fleet = TempFleet::new(BASE_FLEET);
    let run = |args: &[&str], stdin: &str| {
        let out = meshfleet(fleet.path())
            .args(args)
            .write_stdin(stdin.to_string())
            .output()
            .expect("run");
        let (stdout, stderr) = texts(&out);
        (out.status.code(), stdout, stderr)
    };
    let (code, stdout, _) = run(&["validate", "-"], BASE_FLEET);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "✓ fleet `test` is valid: 2 cluster(s), 2 link(s)\n")
    );
    let (code, stdout, _) = run(
        &["validate", "-"],
        &BASE_FLEET.replace("engine: flux", "engine: fluxcd"),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.starts_with(
            "error[unknown-value]: `spec.gitops.engine` cannot be `fluxcd`\n --> <stdin>:9:13\n"
        ),
        "{stdout}"
    );
    // `render --check` from stdin compares with the tree rendered from the file.
    let (code, _, stderr) = run(&["render", ".", "--out", "gitops"], "");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run(&["render", "-", "--out", "gitops", "--check"], BASE_FLEET);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.starts_with("`gitops` is up to date ("), "{stderr}");
    // Writing beside the fleet needs a file.
    std::fs::remove_file(fleet.path().join("anchor.crt")).expect("remove anchor");
    let (code, _, stderr) = run(&["certs", "init", "-"], BASE_FLEET);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "error: the fleet cannot come from stdin (`-`) here\n\
         hint: `certs init` writes the trust anchor beside the fleet file (`identity.trustAnchor`); save the fleet as a file and pass its folder\n"
    );
    assert!(!fleet.path().join("anchor.crt").exists());
    let (code, _, stderr) = run(&["render", "-", "--out", "gitops"], BASE_FLEET);
    assert_eq!(code, Some(2), "{stderr}");
}
