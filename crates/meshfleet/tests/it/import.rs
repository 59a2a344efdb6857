//! `import` without a cluster: what it refuses before reading, and a context that cannot
//! be read. Against real Linkerd: `real_linkerd::import`.

use crate::support::{meshfleet, texts};

/// A kubeconfig whose only context points at a port nothing listens on.
fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: not-a-secret}\ncontexts:\n- name: gone\n  context: {cluster: gone, user: u}\ncurrent-context: gone\n",
    )
    .expect("kubeconfig");
    path
}

#[test]
fn no_readable_context_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let out = meshfleet(dir.path())
        .args([
            "import",
            "--context",
            "gone",
            "--context",
            "missing",
            "--out",
            "adopted/",
            "--timeout",
            "2",
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .expect("import");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("`gone`") && stderr.contains("`missing`") && stderr.contains("hint:"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-a-secret"), "{stderr}");
    assert!(!dir.path().join("adopted").exists());
}

#[test]
fn an_existing_file_is_refused_before_any_cluster_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.yaml"), "# mine\n").expect("write");
    let out = meshfleet(dir.path())
        .args(["import", "--context", "a", "--out", "."])
        .arg("--kubeconfig")
        .arg(unreachable_kubeconfig(dir.path()))
        .output()
        .expect("import");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exists already") && stderr.contains("nothing was read"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("fleet.yaml")).expect("read"),
        "# mine\n"
    );
    let twice = meshfleet(dir.path())
        .args(["import", "--context", "a", "--context", "a"])
        .output()
        .expect("import");
    assert_eq!(twice.status.code(), Some(2), "{}", texts(&twice).1);
}
