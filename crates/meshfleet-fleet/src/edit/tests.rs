use super::*;
use crate::fixtures::{BASE, base_with};
use crate::model::{AnchorRotationPhase, RotationPhase};

const SECRETS: &str = "  secrets:\n    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd   # keep\n";

/// [`BASE`] with a comment at the top and one after `path`.
fn fleet() -> String {
    format!(
        "# my fleet\n{}",
        BASE.replace("      path: linkerd\n", "      path: linkerd   # keep\n")
    )
}

fn rotating(phase: RotationPhase, generation: u32) -> LinkCredentialsState {
    LinkCredentialsState {
        generations: [("studio-to-pro".to_string(), generation)]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect(),
        rotation: Some((vec!["studio-to-pro".into()], phase)),
    }
}

fn anchor_rotation(phase: AnchorRotationPhase) -> AnchorRotation {
    let fp = |b: &str| std::iter::repeat_n(b, 32).collect::<Vec<_>>().join(":");
    AnchorRotation {
        phase,
        from: fp("aa"),
        to: fp("bb"),
    }
}

fn link_credentials(text: &str, state: &LinkCredentialsState) -> Result<String, EditError> {
    let mut editor = FleetFileMut::new(text)?;
    editor.set_link_credentials(state)?;
    Ok(editor.into_text())
}

fn anchor(text: &str, rotation: Option<&AnchorRotation>) -> Result<String, EditError> {
    let mut editor = FleetFileMut::new(text)?;
    editor.set_anchor_rotation(rotation)?;
    Ok(editor.into_text())
}

#[test]
fn link_credentials_are_added_replaced_and_removed_in_block_style_and_nothing_else_changes() {
    let fleet = fleet();
    let started = link_credentials(&fleet, &rotating(RotationPhase::Granting, 0)).unwrap();
    assert!(started.contains(
        "      path: linkerd   # keep\n    linkCredentials:  # written by `meshfleet secrets sync --rotate`\n      rotation:\n        phase: granting\n        links:\n          - studio-to-pro\n  clusters:\n"
    ));
    let retiring = link_credentials(&started, &rotating(RotationPhase::Retiring, 1)).unwrap();
    assert!(retiring.contains(
        "      generations:\n        studio-to-pro: 1\n      rotation:\n        phase: retiring\n"
    ));
    let done = LinkCredentialsState {
        generations: [("studio-to-pro".to_string(), 1)].into(),
        rotation: None,
    };
    let finished = link_credentials(&retiring, &done).unwrap();
    assert!(
        finished.contains("    linkCredentials:  # written by `meshfleet secrets sync --rotate`\n      generations:\n        studio-to-pro: 1\n  clusters:\n"),
        "{finished}"
    );
    // Everything but the block is byte for byte as before.
    let cleared = link_credentials(&finished, &LinkCredentialsState::default()).unwrap();
    assert_eq!(cleared, fleet);
}

#[test]
fn a_fleet_without_secrets_gets_them() {
    let no_secrets = fleet().replace(SECRETS, "");
    let edited = link_credentials(&no_secrets, &rotating(RotationPhase::Granting, 0)).unwrap();
    assert!(edited.ends_with("  secrets:\n    linkCredentials:  # written by `meshfleet secrets sync --rotate`\n      rotation:\n        phase: granting\n        links:\n          - studio-to-pro\n"));
    // Removing what is not there changes nothing.
    assert_eq!(
        link_credentials(&no_secrets, &LinkCredentialsState::default()).unwrap(),
        no_secrets
    );
}

#[test]
fn link_credentials_in_flow_style_keep_the_rest_of_the_line() {
    let flow = fleet().replace(
        SECRETS,
        "  secrets: {vault: {server: 'https://vault.example:8200', mount: secret, path: linkerd}}  # one line\n",
    );
    let started = link_credentials(&flow, &rotating(RotationPhase::Granting, 0)).unwrap();
    assert!(
        started.contains(
            "path: linkerd}, linkCredentials: {rotation: {phase: granting, links: [studio-to-pro]}}}  # one line\n"
        ),
        "{started}"
    );
    let retiring = link_credentials(&started, &rotating(RotationPhase::Retiring, 1)).unwrap();
    assert!(
        retiring.contains(
            "linkCredentials: {generations: {studio-to-pro: 1}, rotation: {phase: retiring, links: [studio-to-pro]}}}"
        ),
        "{retiring}"
    );
    assert_eq!(
        link_credentials(&retiring, &LinkCredentialsState::default()).unwrap(),
        flow
    );
}

#[test]
fn the_anchor_rotation_round_trips_in_block_style_and_keeps_comments() {
    let text = base_with(
        "  identity:\n    trustAnchor: anchor.crt\n",
        "  identity:\n    trustAnchor: anchor.crt   # the bundle\n    issuer: cert-manager\n  # after identity\n",
    );
    let started = anchor(&text, Some(&anchor_rotation(AnchorRotationPhase::Distribute))).unwrap();
    assert!(
        started.contains(
            "    issuer: cert-manager\n    rotation:   # written by `meshfleet trust rotate`; see `meshfleet trust rotate status`\n      phase: distribute\n      from: \"aa:"
        ),
        "{started}"
    );
    assert!(started.contains("\n  # after identity\n"), "{started}");
    let moved = anchor(&started, Some(&anchor_rotation(AnchorRotationPhase::Issuers))).unwrap();
    assert!(moved.contains("phase: issuers"), "{moved}");
    assert_eq!(moved.matches("rotation:").count(), 1, "{moved}");
    assert_eq!(anchor(&moved, None).unwrap(), text);
}

#[test]
fn the_anchor_rotation_round_trips_in_flow_style() {
    let text = base_with(
        "  identity:\n    trustAnchor: anchor.crt\n",
        "  identity: {trustAnchor: anchor.crt, issuer: vault}\n",
    );
    let started = anchor(&text, Some(&anchor_rotation(AnchorRotationPhase::Recertify))).unwrap();
    assert!(
        started.contains("issuer: vault, rotation: {phase: recertify, from: \"aa:"),
        "{started}"
    );
    let retire = anchor(&started, Some(&anchor_rotation(AnchorRotationPhase::Retire))).unwrap();
    assert_eq!(retire.matches("rotation:").count(), 1, "{retire}");
    assert_eq!(anchor(&retire, None).unwrap(), text);
    // The first entry goes with the comma after it.
    let first = base_with(
        "  identity:\n    trustAnchor: anchor.crt\n",
        "  identity: {rotation: {phase: retire, from: \"x\", to: \"y\"}, trustAnchor: anchor.crt}\n",
    );
    assert_eq!(
        anchor(&first, None).unwrap(),
        base_with(
            "  identity:\n    trustAnchor: anchor.crt\n",
            "  identity: {trustAnchor: anchor.crt}\n"
        )
    );
}

#[test]
fn both_states_can_be_written_by_one_editor() {
    let mut editor = FleetFileMut::new(BASE).unwrap();
    editor
        .set_link_credentials(&rotating(RotationPhase::Granting, 0))
        .unwrap()
        .set_anchor_rotation(Some(&anchor_rotation(AnchorRotationPhase::Distribute)))
        .unwrap();
    let fleet = crate::parse(editor.text()).unwrap();
    assert!(fleet.spec.identity.rotation.is_some());
    assert!(fleet.spec.secrets.and_then(|s| s.link_credentials).is_some());
}

#[test]
fn an_edit_that_would_change_another_part_is_refused_and_the_text_kept() {
    // A quoted key is not found, so the entry would be added as a second `secrets`: the
    // new text does not read back, and the edit is refused.
    let quoted = fleet().replace("  secrets:\n", "  \"secrets\":\n");
    let mut editor = FleetFileMut::new(&quoted).unwrap();
    let err = editor
        .set_link_credentials(&rotating(RotationPhase::Granting, 0))
        .unwrap_err();
    assert!(matches!(err, EditError::Mismatch(_)), "{err:?}");
    assert_eq!(editor.text(), quoted);
    // The check itself: the entry reads back right, but something else changed.
    let other = BASE.replace("mount: secret", "mount: other");
    let err = verify(BASE, &other, "/spec/identity/rotation", None).unwrap_err();
    assert!(
        err.to_string().contains("other than `/spec/identity/rotation`"),
        "{err}"
    );
}

#[test]
fn a_scalar_on_the_way_is_refused() {
    let scalar = base_with("  identity:\n    trustAnchor: anchor.crt\n", "  identity: null\n");
    // `identity` is required, so this is not a fleet file at all...
    assert!(matches!(
        FleetFileMut::new(&scalar),
        Err(EditError::Unparsable(_))
    ));
    // ...but `secrets` is optional, and a value that is no mapping is refused as such.
    let null = fleet().replace(SECRETS, "  secrets: null\n");
    assert!(matches!(
        link_credentials(&null, &rotating(RotationPhase::Granting, 0)),
        Err(EditError::NotMapping { line: 15, .. })
    ));
}

#[test]
fn nothing_is_written_on_error_and_a_write_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.yaml");
    let quoted = fleet().replace("  secrets:\n", "  \"secrets\":\n");
    std::fs::write(&path, &quoted).unwrap();
    let mut editor = FleetFileMut::new(&quoted).unwrap();
    assert!(
        editor
            .set_link_credentials(&rotating(RotationPhase::Granting, 0))
            .is_err()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), quoted);

    let mut editor = FleetFileMut::new(&fleet()).unwrap();
    editor
        .set_link_credentials(&rotating(RotationPhase::Granting, 0))
        .unwrap();
    editor.write(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), editor.text());
    // The fleet file must exist: a wrong path is not created.
    let missing = dir.path().join("missing.yaml");
    assert!(matches!(editor.write(&missing), Err(EditError::Write { .. })));
    assert!(!missing.exists());
}
