//! The library's floors: the compiler refuses an import from a higher crate; this test
//! refuses what it cannot see, a circle of files inside one crate (issue 19).

use std::path::Path;
use std::process::Command;

#[test]
fn no_crate_holds_a_circle_of_files() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new("python3")
        .arg(repo.join("scripts/import-graph"))
        .arg(&repo)
        .output()
        .expect("python3 runs scripts/import-graph");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("file cycles: 0"), "{report}");
    // The graph is read, not empty: every floor above the ground imports the ground.
    for krate in ["identity", "validate", "plan", "render", "live", "graph"] {
        assert!(
            report.contains(&format!("meshfleet_{krate} -> meshfleet_fleet")),
            "{krate} does not import the ground floor?\n{report}"
        );
    }
}
