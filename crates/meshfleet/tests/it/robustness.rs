//! No input makes meshfleet panic: mangled fleet files go through parse, validate, plan
//! and render in-process (much faster than spawning the binary), and either produce
//! findings or a tree.

use meshfleet_core::{fleet, plan, render, validate};
use proptest::prelude::*;
use time::OffsetDateTime;

use crate::support::BASE_FLEET;

/// Run the whole pipeline on `text`; valid fleets must plan and render.
fn pipeline(text: &str, anchor: &str) {
    let Ok(parsed) = fleet::parse(text) else { return };
    let source = fleet::FleetSource {
        path: "fleet.yaml".into(),
        text: text.to_string(),
    };
    let checked = validate::check(
        source,
        parsed,
        validate::AnchorFile::Text(anchor.to_string()),
        OffsetDateTime::now_utc(),
    );
    for f in &checked.findings {
        assert!(!f.message.is_empty() && !f.hint.is_empty(), "{f:?}");
    }
    if checked.is_valid() {
        let plan = plan::from_checked(&checked).expect("a valid fleet plans");
        render::render(&plan).expect("a valid fleet renders");
    }
}

fn anchor() -> String {
    meshfleet_core::identity::generate_anchor(OffsetDateTime::now_utc())
        .expect("anchor")
        .cert_pem
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn deleting_lines_never_panics(lines in prop::collection::vec(0usize..40, 1..4)) {
        let mut kept: Vec<&str> = BASE_FLEET.lines().collect();
        for l in lines {
            if l < kept.len() {
                kept.remove(l);
            }
        }
        pipeline(&kept.join("\n"), &anchor());
    }

    #[test]
    fn replacing_values_never_panics(
        line in 0usize..40,
        value in prop_oneof![
            Just(String::new()), Just("-1".to_string()), Just("99999999999999999999".to_string()),
            Just("[]".to_string()), Just("{}".to_string()), Just("~".to_string()), Just("\"\\u0000\"".to_string()),
            "[a-z0-9./:-]{0,80}", "\\PC{0,20}",
        ],
    ) {
        let text: String = BASE_FLEET
            .lines()
            .enumerate()
            .map(|(i, l)| match l.split_once(": ") {
                Some((key, _)) if i == line => format!("{key}: {value}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        pipeline(&text, &anchor());
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        pipeline(&text, &anchor());
    }
}
