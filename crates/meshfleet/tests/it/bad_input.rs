//! Bad fleet files: each case changes one thing in a valid fleet and expects a located
//! finding with the right rule id and a hint, exit code 1, and nothing written by
//! `render`.

use meshfleet_core::identity;
use secrecy::ExposeSecret as _;
use time::{Duration, OffsetDateTime};

use crate::support::{BASE_FLEET, TempFleet, meshfleet, texts};

/// One bad input: how to change the base fleet, the rule expected, and a piece of text
/// that the reported line must contain (`None` when the problem has no single line).
struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    rule: &'static str,
    on_line: Option<&'static str>,
    hint_has: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown field with did-you-mean",
        from: "        addresses: [east.example]",
        to: "        adresses: [east.example]",
        rule: "unknown-field",
        on_line: Some("adresses"),
        hint_has: "did you mean `addresses`",
    },
    Case {
        name: "unknown enum value",
        from: "engine: flux",
        to: "engine: fluxcd",
        rule: "unknown-value",
        on_line: Some("fluxcd"),
        hint_has: "did you mean `flux`",
    },
    Case {
        name: "missing required field",
        from: "      url: https://github.com/example/fleet.git\n",
        to: "      branch: main\n",
        rule: "missing-field",
        on_line: None,
        hint_has: "url",
    },
    Case {
        name: "yaml syntax",
        from: "    - {source: east, target: west}",
        to: "    - {source: east, target: west",
        rule: "yaml-syntax",
        on_line: None,
        hint_has: "YAML",
    },
    Case {
        name: "wrong type",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        port: many",
        rule: "invalid-type",
        on_line: Some("many"),
        hint_has: "type",
    },
    Case {
        name: "duplicate cluster",
        from: "    - name: west",
        to: "    - name: east",
        rule: "duplicate-cluster",
        on_line: Some("- name: east"),
        hint_has: "own name",
    },
    Case {
        name: "duplicate link",
        from: "    - {source: west, target: east}",
        to: "    - {source: west, target: east}\n    - {source: west, target: east}",
        rule: "duplicate-link",
        on_line: Some("source: west"),
        hint_has: "remove one",
    },
    Case {
        name: "self-link",
        from: "{source: west, target: east}",
        to: "{source: west, target: west}",
        rule: "self-link",
        on_line: Some("target: west}"),
        hint_has: "another cluster",
    },
    Case {
        name: "link to an unknown cluster",
        from: "{source: east, target: west}",
        to: "{source: east, target: wset}",
        rule: "link-unknown-cluster",
        on_line: Some("wset"),
        hint_has: "did you mean `west`",
    },
    Case {
        name: "gateway link to a cluster without gateway",
        from: "      gateway:\n        addresses: [west.example]\n",
        to: "",
        rule: "gateway-missing",
        on_line: Some("target: west"),
        hint_has: "remote-discovery",
    },
    Case {
        name: "gateway without addresses",
        from: "        addresses: [west.example]",
        to: "        serviceType: LoadBalancer",
        rule: "gateway-addresses-missing",
        on_line: Some("serviceType"),
        hint_has: "offline",
    },
    Case {
        name: "NodePort out of range",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        serviceType: NodePort\n        nodePort: 40000\n        probe: {nodePort: 30191}",
        rule: "node-port-range",
        on_line: Some("40000"),
        hint_has: "30000",
    },
    Case {
        name: "NodePort on a LoadBalancer gateway",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        nodePort: 30143",
        rule: "node-port-type",
        on_line: Some("30143"),
        hint_has: "serviceType: NodePort",
    },
    Case {
        name: "NodePort gateway without nodePort",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        serviceType: NodePort",
        rule: "node-port-missing",
        on_line: Some("NodePort"),
        hint_has: "gateway.nodePort",
    },
    Case {
        name: "port out of range",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        port: 70000",
        rule: "port-range",
        on_line: Some("70000"),
        hint_has: "65535",
    },
    Case {
        name: "period that is not a Go duration",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        probe: {period: \"3\"}",
        rule: "probe-period",
        on_line: Some("period"),
        hint_has: "Go duration",
    },
    Case {
        name: "period not in whole seconds",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        probe: {period: 1500ms}",
        rule: "probe-period",
        on_line: Some("1500ms"),
        hint_has: "seconds",
    },
    Case {
        name: "Linkerd without declarative links",
        from: "version: 2025.4.4",
        to: "version: 2024.11.8",
        rule: "linkerd-version-unsupported",
        on_line: Some("2024.11.8"),
        hint_has: "2025.4.4",
    },
    Case {
        name: "Linkerd edge tag instead of chart version",
        from: "version: 2025.4.4",
        to: "version: edge-25.4.4",
        rule: "linkerd-version",
        on_line: Some("edge-25.4.4"),
        hint_has: "2025.4.4",
    },
    Case {
        name: "missing trust anchor",
        from: "trustAnchor: anchor.crt",
        to: "trustAnchor: missing.crt",
        rule: "trust-anchor-missing",
        on_line: Some("missing.crt"),
        hint_has: "certs init",
    },
    Case {
        name: "bad CIDR",
        from: "pods: [10.1.0.0/16]",
        to: "pods: [10.1.0.0/33]",
        rule: "cidr-invalid",
        on_line: Some("10.1.0.0/33"),
        hint_has: "prefix",
    },
    Case {
        name: "CIDR with host bits",
        from: "pods: [10.1.0.0/16]",
        to: "pods: [10.1.2.3/16]",
        rule: "cidr-invalid",
        on_line: Some("10.1.2.3/16"),
        hint_has: "10.1.0.0/16",
    },
    Case {
        name: "overlapping pod CIDRs of linked clusters",
        from: "pods: [10.2.0.0/16]",
        to: "pods: [10.1.128.0/17]",
        rule: "cidr-overlap",
        on_line: Some("10.1.128.0/17"),
        hint_has: "disjoint",
    },
    Case {
        name: "overlapping CIDRs in one cluster",
        from: "services: [10.101.0.0/16]",
        to: "services: [10.1.0.0/24]",
        rule: "cidr-overlap",
        on_line: Some("10.1.0.0/24"),
        hint_has: "disjoint",
    },
    Case {
        name: "bad cluster name",
        from: "- name: west",
        to: "- name: West_1",
        rule: "invalid-name",
        on_line: Some("West_1"),
        hint_has: "DNS-1123",
    },
    Case {
        name: "bad fleet name",
        from: "  name: test",
        to: "  name: Test",
        rule: "invalid-name",
        on_line: Some("name: Test"),
        hint_has: "DNS-1123",
    },
    Case {
        name: "loopback API server",
        from: "https://west.example:6443",
        to: "https://127.0.0.1:6443",
        rule: "api-server",
        on_line: Some("127.0.0.1"),
        hint_has: "reachable",
    },
    Case {
        name: "API server without https",
        from: "https://west.example:6443",
        to: "west.example:6443",
        rule: "api-server",
        on_line: Some("west.example:6443"),
        hint_has: "https",
    },
    Case {
        name: "gateway address with a port",
        from: "addresses: [east.example]",
        to: "addresses: [\"east.example:4143\"]",
        rule: "gateway-address",
        on_line: Some("east.example:4143"),
        hint_has: "bare IP",
    },
    Case {
        name: "wrong apiVersion",
        from: "apiVersion: meshfleet.io/v1alpha1",
        to: "apiVersion: meshfleet.io/v1",
        rule: "api-version",
        on_line: Some("meshfleet.io/v1"),
        hint_has: "v1alpha1",
    },
    Case {
        name: "jobs install without image",
        from: "    engine: flux",
        to: "    engine: flux\n    installMethod: jobs",
        rule: "jobs-image-missing",
        on_line: Some("installMethod: jobs"),
        hint_has: "kubectl",
    },
    Case {
        name: "no Vault",
        from: "  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd\n",
        to: "",
        rule: "vault-missing",
        on_line: Some("trustAnchor"),
        hint_has: "secrets:",
    },
    Case {
        name: "SOPS recipient that is not an age key",
        from: "  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd\n",
        to: "  secrets:\n    sops:\n      age:\n        operators: [age10gsnt4chr9e07gyx9at9endkcxpytdrgwxphk7mh5tzts609jvhs4am543]\n        clusters:\n          east: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n          west: age1jmzts7gvw7kk4rpv8wdd28a2x7tfnd59ve0dn28j6sgquaeznvcs7jrxwq\n",
        rule: "sops-recipient",
        on_line: Some("ssh-ed25519"),
        hint_has: "age-keygen -y",
    },
    Case {
        name: "SOPS cluster without a recipient",
        from: "  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd\n",
        to: "  secrets:\n    sops:\n      age:\n        operators: [age10gsnt4chr9e07gyx9at9endkcxpytdrgwxphk7mh5tzts609jvhs4am543]\n        clusters:\n          east: age1m9etkx9d4me98rsxts80cnzw8w3s8zucpvndc40uh4r53gyp0vhqe359rr\n",
        rule: "sops-recipients-missing",
        on_line: Some("- name: west"),
        hint_has: "secrets age-key",
    },
    Case {
        name: "SOPS under Argo CD",
        from: "    engine: flux\n    repository:\n      url: https://github.com/example/fleet.git\n  identity:\n    trustAnchor: anchor.crt\n  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd\n",
        to: "    engine: argocd\n    repository:\n      url: https://github.com/example/fleet.git\n  identity:\n    trustAnchor: anchor.crt\n  secrets:\n    sops:\n      age:\n        operators: [age10gsnt4chr9e07gyx9at9endkcxpytdrgwxphk7mh5tzts609jvhs4am543]\n        clusters: {east: age1m9etkx9d4me98rsxts80cnzw8w3s8zucpvndc40uh4r53gyp0vhqe359rr, west: age1jmzts7gvw7kk4rpv8wdd28a2x7tfnd59ve0dn28j6sgquaeznvcs7jrxwq}\n",
        rule: "sops-engine",
        on_line: Some("age:"),
        hint_has: "engine: flux",
    },
    Case {
        name: "invalid selector",
        from: "{source: east, target: west}",
        to: "{source: east, target: west, selector: \"app in (a\"}",
        rule: "selector",
        on_line: Some("app in (a"),
        hint_has: "label query",
    },
    Case {
        name: "unknown hub",
        from: "  links:\n    - {source: east, target: west}\n    - {source: west, target: east}\n",
        to: "  topology:\n    hubAndSpoke: {hub: eats}\n",
        rule: "link-unknown-cluster",
        on_line: Some("eats"),
        hint_has: "did you mean `east`",
    },
    Case {
        name: "remote discovery outside clusterNetworks",
        from: "    version: 2025.4.4",
        to: "    version: 2025.4.4\n    clusterNetworks: [192.168.0.0/16]",
        rule: "cluster-networks",
        on_line: Some("10.2.0.0/16"),
        hint_has: "clusterNetworks",
    },
    Case {
        name: "link name too long",
        from: "    - name: west\n",
        to: "    - name: west\n      linkName: a-very-long-link-name-that-leaves-no-room-for-the-probe-service-x\n",
        rule: "mirror-name-budget",
        on_line: Some("a-very-long"),
        hint_has: "shorter",
    },
    Case {
        name: "two clusters, one context",
        from: "    - name: west\n",
        to: "    - name: west\n      context: east\n",
        rule: "duplicate-context",
        on_line: Some("context: east"),
        hint_has: "context",
    },
    Case {
        name: "probe port equals gateway port",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        probe: {port: 4143}",
        rule: "port-conflict",
        on_line: Some("4143"),
        hint_has: "4191",
    },
    Case {
        // The chart's `mc-probe` port has no targetPort: the pod is probed on this port,
        // where nothing listens (only the gateway proxy's admin port 4191 answers).
        name: "probe port nothing serves",
        from: "        addresses: [east.example]",
        to: "        addresses: [east.example]\n        probe: {port: 4192}",
        rule: "probe-port",
        on_line: Some("4192"),
        hint_has: "4191",
    },
];

/// Run one case: validate (text and JSON) and render.
fn run_case(case: &Case, fleet: &TempFleet, text: &str) {
    let name = case.name;
    // Text report: located, with a hint, exit 1.
    let out = meshfleet(fleet.path())
        .args(["validate", "."])
        .output()
        .expect("validate");
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: exit code\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let report = format!("{stdout}{stderr}");
    assert!(
        report.contains(&format!("[{}]", case.rule)),
        "{name}: rule `{}` missing in:\n{report}",
        case.rule
    );
    assert!(report.contains("hint: "), "{name}: no hint in:\n{report}");
    assert!(
        report.contains(case.hint_has),
        "{name}: hint lacks `{}` in:\n{report}",
        case.hint_has
    );
    // JSON report: the stable rule id and the line.
    let out = meshfleet(fleet.path())
        .args(["validate", ".", "-o", "json"])
        .output()
        .expect("validate json");
    assert_eq!(out.status.code(), Some(1), "{name}: json exit code");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    let finding = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == case.rule)
        .unwrap_or_else(|| panic!("{name}: no `{}` in {json:#}", case.rule));
    let line = finding["line"].as_u64().unwrap_or(0);
    if let Some(expected) = case.on_line {
        assert!(line > 0, "{name}: finding has no line: {finding}");
        let written = text
            .lines()
            .nth(usize::try_from(line).expect("line") - 1)
            .unwrap_or_default();
        assert!(
            written.contains(expected),
            "{name}: line {line} is `{written}`, expected it to contain `{expected}`"
        );
        assert!(
            report.contains(&format!("fleet.yaml:{line}:")),
            "{name}: no `fleet.yaml:{line}:` in:\n{report}"
        );
    }
    // Render refuses and writes nothing.
    let out = fleet.render();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{name}: render exit code\n{}",
        texts(&out).1
    );
    assert!(!fleet.path().join("out").exists(), "{name}: render wrote output");
}

#[test]
fn every_bad_input_is_located_hinted_and_writes_nothing() {
    assert!(CASES.len() >= 25);
    for case in CASES {
        assert!(
            BASE_FLEET.contains(case.from),
            "{}: base fleet lacks `{}`",
            case.name,
            case.from
        );
        let text = BASE_FLEET.replacen(case.from, case.to, 1);
        // Remote-discovery needs a mode switch on top of the network change.
        let text = if case.rule == "cluster-networks" {
            text.replace(
                "{source: east, target: west}",
                "{source: east, target: west, mode: remote-discovery}",
            )
        } else {
            text
        };
        let fleet = TempFleet::new(&text);
        run_case(case, &fleet, &text);
    }
}

#[test]
fn the_base_fleet_is_valid() {
    let fleet = TempFleet::new(BASE_FLEET);
    let out = meshfleet(fleet.path())
        .args(["validate", "."])
        .output()
        .expect("validate");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("fleet `test` is valid: 2 cluster(s), 2 link(s)"),
        "{stdout}"
    );
}

/// Writes `pem` as the fleet's anchor and expects `rule` at the `trustAnchor` line.
fn anchor_case(pem: &str, rule: &'static str, hint_has: &'static str) {
    let fleet = TempFleet::new(BASE_FLEET);
    std::fs::write(fleet.path().join("anchor.crt"), pem).expect("write anchor");
    let case = Case {
        name: "anchor",
        from: "",
        to: "",
        rule,
        on_line: Some("trustAnchor"),
        hint_has,
    };
    run_case(&case, &fleet, BASE_FLEET);
}

#[test]
fn expired_anchor_is_an_error() {
    let old = identity::generate_anchor(OffsetDateTime::now_utc() - Duration::days(3700)).expect("anchor");
    anchor_case(&old.cert_pem, "trust-anchor-expired", "bundle");
}

#[test]
fn anchor_file_with_a_private_key_is_an_error() {
    let anchor = identity::generate_anchor(OffsetDateTime::now_utc()).expect("anchor");
    let pem = format!("{}{}", anchor.cert_pem, anchor.key_pem.expose_secret());
    anchor_case(&pem, "trust-anchor-invalid", "keys belong");
}

/// A self-signed P-256 certificate made by openssl with the given BasicConstraints.
fn openssl_cert(days: u32, subject: &str, basic_constraints: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", &days.to_string(), "-subj", subject])
        .args([
            "-addext",
            &format!("basicConstraints=critical,{basic_constraints}"),
        ])
        .args([
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(cert).expect("cert")
}

#[test]
fn anchor_that_is_not_a_ca_is_an_error() {
    anchor_case(
        &openssl_cert(30, "/CN=leaf", "CA:FALSE"),
        "trust-anchor-invalid",
        "CA:TRUE",
    );
}

#[test]
fn anchor_with_path_length_zero_is_an_error() {
    anchor_case(
        &openssl_cert(365, "/CN=root", "CA:TRUE,pathlen:0"),
        "trust-anchor-invalid",
        "path length 1",
    );
}

#[test]
fn anchor_under_sixty_days_is_a_warning_not_an_error() {
    let fleet = TempFleet::new(BASE_FLEET);
    let pem = openssl_cert(20, "/CN=root.linkerd.cluster.local", "CA:TRUE,pathlen:1");
    std::fs::write(fleet.path().join("anchor.crt"), pem).expect("write anchor");
    let out = meshfleet(fleet.path())
        .args(["validate", ".", "-o", "json"])
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["warnings"], 1, "{json:#}");
    assert_eq!(json["findings"][0]["rule"], "trust-anchor-expiring");
    assert_eq!(json["findings"][0]["severity"], "warning");
    // Warnings do not stop rendering.
    assert!(fleet.render().status.success());
}

#[test]
fn all_findings_are_reported_in_one_run() {
    let text = BASE_FLEET
        .replace("pods: [10.1.0.0/16]", "pods: [10.1.0.0/33]")
        .replace("{source: west, target: east}", "{source: west, target: west}")
        .replace("version: 2025.4.4", "version: 2024.1.1");
    let fleet = TempFleet::new(&text);
    let out = meshfleet(fleet.path())
        .args(["validate", ".", "-o", "json"])
        .output()
        .expect("validate");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rules: Vec<&str> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    for rule in ["cidr-invalid", "self-link", "linkerd-version-unsupported"] {
        assert!(rules.contains(&rule), "{rule} missing from {rules:?}");
    }
}

#[test]
fn unreadable_path_is_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = meshfleet(dir.path())
        .args(["validate", "nowhere"])
        .output()
        .expect("validate");
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("error: cannot read `nowhere`") && stderr.contains("hint: "),
        "{stderr}"
    );
}

/// Runs `validate` on `text` and returns (exit code, stdout) after checking that
/// `render` refuses it and writes nothing.
fn validate_refused(text: &str) -> (Option<i32>, String) {
    let fleet = TempFleet::new(text);
    let out = meshfleet(fleet.path())
        .args(["validate", "."])
        .output()
        .expect("validate");
    let render = fleet.render();
    assert_eq!(render.status.code(), Some(1), "render: {}", texts(&render).1);
    assert!(!fleet.path().join("out").exists(), "render wrote output");
    (out.status.code(), texts(&out).0)
}

/// One finding as the text report prints it: rule and message, place, hint.
fn block(rule: &str, message: &str, at: &str, hint: &str) -> [String; 3] {
    [
        format!("error[{rule}]: {message}\n"),
        format!("--> fleet.yaml:{at}\n"),
        format!("\nhint: {hint}\n"),
    ]
}

/// Each expected finding is in `report`, its place on the next line, its hint before
/// the next finding.
fn assert_reports(report: &str, expected: &[[String; 3]]) {
    for [head, at, hint] in expected {
        let start = report
            .find(head.as_str())
            .unwrap_or_else(|| panic!("no `{head}` in:\n{report}"));
        let rest = &report[start + head.len()..];
        assert!(
            rest.trim_start().starts_with(at.as_str()),
            "`{head}` is not at `{at}` in:\n{report}"
        );
        let end = rest.find("\n\n").map_or(rest.len(), |e| e + 1);
        assert!(
            rest[..end].contains(hint.as_str()),
            "`{head}` lacks `{hint}` in:\n{report}"
        );
    }
}

#[test]
fn every_yaml_and_type_error_is_reported_at_once() {
    let text = BASE_FLEET
        .replace("engine: flux", "engine: fluxcd")
        .replace(
            "        addresses: [east.example]\n",
            "        addresses: [east.example]\n        port: many\n",
        )
        .replace("  links:\n", "  topology: full-mesh\n  links:\n")
        .replace(
            "{source: west, target: east}",
            "{source: west, target: east, source: east}",
        );
    let (code, report) = validate_refused(&text);
    assert_eq!(code, Some(1), "{report}");
    assert_reports(
        &report,
        &[
            block(
                "unknown-value",
                "`spec.gitops.engine` cannot be `fluxcd`",
                "9:13",
                "did you mean `flux`? allowed values: flux, argocd",
            ),
            block(
                "invalid-type",
                "`spec.clusters[0].gateway.port` must be a whole number, not `many`",
                "28:15",
                "write `port: 4143`",
            ),
            block(
                "invalid-type",
                "`spec.topology` must be a mapping, not `full-mesh`",
                "37:13",
                "write `topology: {hubAndSpoke: {hub: <hub>}}` or `topology: {fullMesh: true}`",
            ),
            block(
                "duplicate-key",
                "`spec.links[1]` has the key `source` twice: at line 40, column 8 and here",
                "40:36",
                "keep one `source:` and delete the other; a YAML mapping holds each key once, so meshfleet does not guess which value you meant",
            ),
        ],
    );
    assert!(
        report.contains("× fleet `fleet.yaml`: 4 error(s), 0 warning(s)"),
        "{report}"
    );
}

#[test]
fn a_valid_yaml_mapping_where_a_boolean_belongs_is_a_type_error() {
    let text = BASE_FLEET.replace("  links:\n", "  topology: {fullMesh: {}}\n  links:\n");
    let (code, report) = validate_refused(&text);
    assert_eq!(code, Some(1), "{report}");
    assert_reports(
        &report,
        &[block(
            "invalid-type",
            "`spec.topology.fullMesh` must be `true` or `false`, not a mapping",
            "36:24",
            "write `fullMesh: true`",
        )],
    );
    assert!(!report.contains("yaml-syntax"), "{report}");
}

#[test]
fn a_tab_is_reported_on_its_own_line() {
    let text = BASE_FLEET.replace(
        "      apiServer: https://west.example:6443\n",
        "      apiServer: https://west.example:6443\n\t  context: west\n",
    );
    let (code, report) = validate_refused(&text);
    assert_eq!(code, Some(1), "{report}");
    assert_reports(
        &report,
        &[block(
            "yaml-syntax",
            "a tab character where YAML expects indentation or a value",
            "31:1",
            "replace the tab with spaces: YAML indents with spaces only",
        )],
    );
}

#[test]
fn two_clusters_on_one_vault_auth_mount_are_refused() {
    let text = BASE_FLEET
        .replace("      vaultAuthMountPath: kubernetes-east\n", "")
        .replace("      vaultAuthMountPath: kubernetes-west\n", "");
    let (code, report) = validate_refused(&text);
    assert_eq!(code, Some(1), "{report}");
    assert_reports(
        &report,
        &[block(
            "vault-auth-shared",
            "clusters `east` and `west` log in to Vault through the same Kubernetes auth mount `kubernetes`, which checks tokens with one API server",
            "27:13",
            "give each cluster its own mount, e.g. `vaultAuthMountPath: kubernetes-west` on `west`, configured with that cluster's API server (`vault auth enable -path=kubernetes-west kubernetes`, then `vault write auth/kubernetes-west/config kubernetes_host=https://west.example:6443`); else External Secrets logs in on one cluster only",
        )],
    );
}

#[test]
fn a_gateway_port_on_the_probe_port_is_refused() {
    let text = BASE_FLEET.replace(
        "        addresses: [east.example]\n",
        "        addresses: [east.example]\n        port: 4191\n",
    );
    let (code, report) = validate_refused(&text);
    assert_eq!(code, Some(1), "{report}");
    assert_reports(
        &report,
        &[block(
            "port-conflict",
            "gateway port `4191` of cluster `east` equals the probe port (the gateway proxy's admin port 4191)",
            "28:15",
            "remove `port` to use the gateway's inbound port 4143, or pick a port other than 4191",
        )],
    );
}
