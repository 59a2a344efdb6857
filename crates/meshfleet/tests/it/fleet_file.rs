//! Which file a fleet folder holds: `fleet.yaml`, or `meshfleet.yaml` for folders that
//! Rancher Fleet also reads (it takes any `fleet.yaml` for one of its bundles); never
//! both.

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
