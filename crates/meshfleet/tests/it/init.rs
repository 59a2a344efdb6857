//! `init`: every starter the flags can ask for validates as written and renders, and
//! an existing fleet file is never touched.

use crate::support::{meshfleet, texts};

/// `meshfleet init` in `dir` with `args`, stdin an empty pipe (not a terminal: nothing may be asked).
fn init(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    meshfleet(dir)
        .arg("init")
        .args(args)
        .write_stdin("")
        .output()
        .expect("init")
}

#[test]
fn every_starter_validates_as_written_and_renders() {
    for (engine, args) in [
        ("flux", vec![]),
        (
            "argocd",
            vec![
                "--cluster",
                "hub=kind-hub",
                "--cluster",
                "a",
                "--cluster",
                "b",
                "--topology",
                "hub:hub",
            ],
        ),
        ("flux", vec!["--cluster", "x", "--cluster", "y", "--cluster", "z"]),
        (
            "argocd",
            vec![
                "--cluster",
                "studio=kind-studio",
                "--cluster",
                "pro",
                "--topology",
                "pair",
            ],
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = init(
            dir.path(),
            &[&["new-mesh", "--engine", engine][..], &args].concat(),
        );
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
        let fleet = dir.path().join("new-mesh/fleet.yaml");
        let text = std::fs::read_to_string(&fleet).expect("fleet");
        assert!(text.contains(&format!("engine: {engine}")), "{text}");
        assert!(text.contains("name: new-mesh\n"), "{text}");
        let validate = meshfleet(dir.path())
            .args(["validate", "new-mesh"])
            .output()
            .expect("validate");
        let (v_out, v_err) = texts(&validate);
        assert!(validate.status.success(), "{args:?}\n{text}\n{v_out}{v_err}");
        assert!(v_out.contains("is valid"), "{v_out}");
        let render = meshfleet(dir.path())
            .args(["render", "new-mesh", "--out", "new-mesh/gitops"])
            .output()
            .expect("render");
        assert!(render.status.success(), "{}", texts(&render).1);
    }
}

#[test]
fn the_topology_flags_become_links_and_contexts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = init(
        dir.path(),
        &[
            "--cluster",
            "hub=kind-hub",
            "--cluster",
            "spoke",
            "--topology",
            "hub:hub",
        ],
    );
    assert!(out.status.success(), "{}", texts(&out).1);
    let text = std::fs::read_to_string(dir.path().join("fleet.yaml")).expect("fleet");
    assert!(
        text.contains("    - name: hub\n      context: kind-hub"),
        "{text}"
    );
    assert!(text.contains("hubAndSpoke: {hub: hub}"), "{text}");
    let graph = meshfleet(dir.path())
        .args(["graph", "--format", "mermaid"])
        .output()
        .expect("graph");
    let (mermaid, _) = texts(&graph);
    assert!(mermaid.contains("hub") && mermaid.contains("spoke"), "{mermaid}");
}

#[test]
fn an_existing_fleet_file_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), "# mine\n").expect("write");
    let out = init(dir.path(), &[]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exists already") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("fleet.yaml")).expect("read"),
        "# mine\n"
    );
    assert!(
        !dir.path().join("certs").exists(),
        "no anchor for a fleet that was not written"
    );
    // The other name of the fleet file in the same folder would make it ambiguous.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("meshfleet.yaml"), "# mine\n").expect("write");
    let out = init(other.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", texts(&out).1);
    assert!(!other.path().join("fleet.yaml").exists());
}

#[test]
fn an_existing_anchor_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("certs")).expect("mkdir");
    let first = init(dir.path(), &["a.yaml"]);
    assert!(first.status.success(), "{}", texts(&first).1);
    let anchor = std::fs::read(dir.path().join("certs/trust-anchor.crt")).expect("anchor");
    let second = init(dir.path(), &["b.yaml"]);
    let (_, stderr) = texts(&second);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("kept the existing trust anchor"), "{stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("certs/trust-anchor.crt")).expect("anchor"),
        anchor
    );
}

#[test]
fn flags_that_make_no_fleet_exit_2_and_write_nothing() {
    for args in [
        vec!["--cluster", "a", "--topology", "pair"],
        vec!["--cluster", "a", "--cluster", "b", "--topology", "hub:c"],
        vec!["--topology", "ring"],
        vec!["--cluster", "Not_A_Name"],
        vec!["--name", "Bad Name"],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = init(dir.path(), &args);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            0,
            "{args:?} wrote something"
        );
    }
}
