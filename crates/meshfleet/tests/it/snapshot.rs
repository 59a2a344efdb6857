//! Snapshots of what users read: exit code, stdout and stderr of one run, as one text.
//!
//! Everything that changes from run to run or machine to machine is replaced before the
//! text is compared: temp folders, ports, fingerprints and times of freshly made
//! certificates, days left, Kubernetes versions. PEM bodies and anything that looks
//! like a token are replaced too, so a snapshot can never hold a secret even if a
//! command printed one (the sentinel test, `no_secret_in_messages`, is what fails then).
//!
//! Snapshots are files in `tests/it/snapshots/`, reviewed like code. To accept a change:
//! `INSTA_UPDATE=always cargo test -p meshfleet --test integration <filter>`, then read
//! `git diff`.

use std::process::Output;

use crate::support::texts;

/// Filters every snapshot gets: (regex, replacement).
const FILTERS: &[(&str, &str)] = &[
    // PEM bodies (public certificates, and anything else in PEM form).
    (
        r"-----BEGIN ([A-Z ]+)-----\n(?:[A-Za-z0-9+/=]+\n)+-----END ([A-Z ]+)-----",
        "-----BEGIN $1-----\n[PEM]\n-----END $2-----",
    ),
    // SHA-256 fingerprints, whole or shortened in tables.
    (r"\b(?:[0-9a-f]{2}:){31}[0-9a-f]{2}\b", "[SHA256]"),
    (r"\b(?:[0-9a-f]{2}:){7}[0-9a-f]{2}…", "[SHA256…]"),
    // Times and days left of certificates made for the test.
    (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "[TIME]"),
    (r"\b\d+ days (left|more)", "[N] days $1"),
    (r#""daysLeft": -?\d+"#, r#""daysLeft": [N]"#),
    // Temp folders.
    (r"/tmp/[^\s`'\x22:,)]+", "[TEMP]"),
    (r"\.tmp[A-Za-z0-9]{6}", "[TEMP]"),
    // Ports of the test API servers and OpenBao.
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
    (r"(\.svc|\.test|\.example):\d{4,5}\b", "$1:[PORT]"),
    // The Kubernetes version of the test control plane.
    (r"\bv1\.\d+\.\d+\b", "v1.[N].[N]"),
    // Bearer tokens and Vault tokens, should one ever be printed.
    (r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", "[TOKEN]"),
    (r"\b[sh]vs\.[A-Za-z0-9]{20,}", "[TOKEN]"),
];

/// Exit code, stdout and stderr as one text.
pub fn run_text(output: &Output) -> String {
    let (stdout, stderr) = texts(output);
    parts_text(output.status.code().unwrap_or(-1), &stdout, &stderr)
}

/// [`run_text`] of a run already split into exit code, stdout and stderr.
pub fn parts_text(code: i32, stdout: &str, stderr: &str) -> String {
    format!("exit: {code}\n----- stdout -----\n{stdout}----- stderr -----\n{stderr}")
}

/// insta settings with [`FILTERS`] and `extra` filters.
pub fn settings(extra: &[(&str, &str)]) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(true);
    settings.set_omit_expression(true);
    for (regex, replacement) in extra.iter().chain(FILTERS) {
        settings.add_filter(regex, *replacement);
    }
    settings
}

/// Snapshot the run `$output` as `$name`, with the common filters and optional extra
/// `(regex, replacement)` pairs.
#[macro_export]
macro_rules! snapshot_run {
    ($name:expr, $output:expr) => {
        $crate::snapshot::settings(&[])
            .bind(|| insta::assert_snapshot!($name, $crate::snapshot::run_text(&$output)))
    };
    ($name:expr, $output:expr, $extra:expr) => {
        $crate::snapshot::settings($extra)
            .bind(|| insta::assert_snapshot!($name, $crate::snapshot::run_text(&$output)))
    };
}

/// Snapshot a run given as `($code, $stdout, $stderr)` as `$name`.
#[macro_export]
macro_rules! snapshot_parts {
    ($name:expr, $code:expr, $stdout:expr, $stderr:expr) => {
        $crate::snapshot::settings(&[])
            .bind(|| insta::assert_snapshot!($name, $crate::snapshot::parts_text($code, $stdout, $stderr)))
    };
}
