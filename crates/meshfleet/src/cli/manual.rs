//! The man pages: `meshfleet(1)` and one page per command (`meshfleet-validate(1)`,
//! `meshfleet-trust-rotate-next(1)`, ...), as git and cargo ship theirs.
//!
//! NAME, SYNOPSIS, DESCRIPTION, OPTIONS and SUBCOMMANDS come from the clap types in
//! `cli.rs` (through clap_mangen), so they cannot drift from what the parser accepts.
//! EXIT STATUS and EXAMPLES come from [`PAGES`], kept here beside those types: the exit
//! codes are read from `commands/*.rs` (0 success, 1 the fleet or the clusters have
//! problems, 2 the command could not do its job), and a test fails when a command has
//! no entry or an entry names no command.

use clap::CommandFactory as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::Cli;

/// What a man page says beyond the clap types.
pub struct Page {
    /// The command's words after `meshfleet`, space-separated; empty for `meshfleet`.
    pub command: &'static str,
    /// Each exit code and when the command returns it.
    pub exit_status: &'static [(u8, &'static str)],
    /// Each example: what it does, and the command line.
    pub examples: &'static [(&'static str, &'static str)],
}

/// Exit 2 when the arguments themselves are wrong; every page says it.
const USAGE: &str = "bad flags or arguments (clap prints the usage)";

/// Every page, in the order of `meshfleet --help`.
pub const PAGES: &[Page] = &[
    Page {
        command: "",
        exit_status: &[
            (0, "success"),
            (
                1,
                "the fleet or the clusters have problems: an invalid fleet, a failed check, drift, a refused step",
            ),
            (
                2,
                "the command could not do its job: bad flags, an unreadable file, an unreachable Vault, an internal error",
            ),
        ],
        examples: &[
            (
                "Check a fleet against every static rule:",
                "meshfleet validate examples/hub-spoke",
            ),
            (
                "Create the trust anchor (keys 0600 outside git), then render the GitOps tree:",
                "meshfleet certs init my-fleet/\nmeshfleet render my-fleet/ --out my-fleet/gitops",
            ),
            (
                "In CI, fail when the committed tree is stale:",
                "meshfleet render my-fleet/ --out my-fleet/gitops --check",
            ),
            (
                "Check the live clusters, all at once:",
                "meshfleet check my-fleet/",
            ),
            (
                "Install every man page:",
                "meshfleet man --out ~/.local/share/man/man1",
            ),
        ],
    },
    Page {
        command: "init",
        exit_status: &[
            (
                0,
                "the starter fleet (and its trust anchor, unless `--no-anchor`) was written",
            ),
            (
                1,
                "refused: the fleet file exists already (left as it is), the folder holds the other fleet file name, or a trust anchor key exists without its anchor",
            ),
            (
                2,
                "flags that make no fleet (`pair` with other than two clusters, a hub that is not a cluster, a bad name), or a file that cannot be written",
            ),
        ],
        examples: &[
            (
                "Two clusters linked both ways, installed by Flux (`east`, `west` when no cluster is named):",
                "meshfleet init my-fleet/",
            ),
            (
                "Seed 003's shape: a hub and two spokes under Argo CD, contexts named:",
                "meshfleet init my-fleet/ --engine argocd --cluster in-cluster-local=kind-hub --cluster production --cluster nonproduction --topology hub:in-cluster-local",
            ),
        ],
    },
    Page {
        command: "import",
        exit_status: &[
            (0, "the fleet file was written and every cluster agreed"),
            (
                1,
                "the clusters disagree (different anchors or domains, overlapping pod or service networks of linked clusters, different GitOps engines, a Link whose target is not among the contexts) or one could not be read: the file was still written, marked at its top; or the file exists already (left as it is)",
            ),
            (
                2,
                "no context could be read, the kubeconfig is unreadable, or the file cannot be written; or bad flags",
            ),
        ],
        examples: &[
            (
                "Adopt a hub and two spokes linked with `link-gen` (Link `internal` on the spokes):",
                "meshfleet import --context kind-hub --context kind-prod --context kind-nonprod --out my-fleet/",
            ),
            (
                "Adopt seed 000's two clusters linked both ways with the deprecated `linkerd multicluster link`, then move them to declarative Links:",
                "meshfleet import --context kind-studio --context kind-pro --out homelab/ && meshfleet migrate homelab/",
            ),
            (
                "The report as JSON, for a script:",
                "meshfleet import --context a --context b --out fleet.yaml -o json",
            ),
        ],
    },
    Page {
        command: "validate",
        exit_status: &[
            (0, "the fleet is valid (warnings allowed)"),
            (
                1,
                "the fleet has errors: YAML or schema errors (unknown fields, with did-you-mean) or rule findings",
            ),
            (
                2,
                "the fleet file cannot be read, or a folder holds both `fleet.yaml` and `meshfleet.yaml`; or bad flags",
            ),
        ],
        examples: &[
            (
                "Every finding with its line and column, a hint and a rule id:",
                "meshfleet validate examples/homelab",
            ),
            (
                "The same as JSON, for scripts:",
                "meshfleet -o json validate my-fleet/fleet.yaml",
            ),
        ],
    },
    Page {
        command: "render",
        exit_status: &[
            (0, "the tree was written; with `--check`, DIR is up to date"),
            (
                1,
                "the fleet is invalid; with `--check`, DIR differs (a summary and diffs are printed); or a refusal, nothing written: an output would hold a private key or a token, DIR is a folder meshfleet did not write, or DIR is not `spec.gitops.repository.path` (beside the fleet file or inside DIR's Git repository) and `--any-dir` was not given",
            ),
            (
                2,
                "the fleet or a certificate cannot be read, or DIR cannot be written; or bad flags",
            ),
        ],
        examples: &[
            (
                "Write one folder per cluster into the fleet's `spec.gitops.repository.path`, swapped in atomically:",
                "meshfleet render examples/homelab --out examples/homelab/gitops",
            ),
            (
                "Write a copy to look at somewhere else, on purpose:",
                "meshfleet render examples/homelab --out /tmp/gitops --any-dir",
            ),
            (
                "In CI: write nothing, exit 1 when the committed tree is stale:",
                "meshfleet render . --out gitops --check",
            ),
            (
                "The same, what differs as JSON (`upToDate`, `added`, `changed` with diffs, `removed`):",
                "meshfleet -o json render . --out gitops --check",
            ),
        ],
    },
    Page {
        command: "certs",
        exit_status: &[
            (0, "as the subcommand"),
            (1, "as the subcommand"),
            (2, "as the subcommand; or no subcommand, or bad flags"),
        ],
        examples: &[(
            "Create the trust anchor, then look at it:",
            "meshfleet certs init my-fleet/\nmeshfleet certs inspect my-fleet/certs/trust-anchor.crt --fleet my-fleet/",
        )],
    },
    Page {
        command: "certs init",
        exit_status: &[
            (
                0,
                "the anchor (and, with `identity.issuer: vault`, the missing issuers) were created",
            ),
            (
                1,
                "the fleet file does not parse; a key or certificate is in the way (nothing was written); or an anchor exists without its key, so no issuer can be signed",
            ),
            (
                2,
                "the fleet file cannot be read, or a file cannot be written; or bad flags",
            ),
        ],
        examples: &[
            (
                "Anchor in `identity.trustAnchor`, private keys 0600 in `.meshfleet/keys/` (git-ignored):",
                "meshfleet certs init my-fleet/",
            ),
            (
                "Keep the private keys elsewhere:",
                "meshfleet certs init my-fleet/ --keys ~/secure/meshfleet-keys",
            ),
        ],
    },
    Page {
        command: "certs inspect",
        exit_status: &[
            (0, "every file holds readable certificates"),
            (
                1,
                "a file holds no readable PEM certificate (the others are still shown); or the fleet (`--fleet`, or a fleet file in the current folder) does not parse (its finding is printed)",
            ),
            (
                2,
                "a file cannot be read, or the fleet or its anchor cannot be read; or bad flags",
            ),
        ],
        examples: &[
            (
                "Subject, key, validity, CA constraints and fingerprint, and whether it chains to the fleet's anchor:",
                "meshfleet certs inspect issuer.crt --fleet my-fleet/",
            ),
            (
                "As JSON:",
                "meshfleet -o json certs inspect certs/trust-anchor.crt",
            ),
        ],
    },
    Page {
        command: "graph",
        exit_status: &[
            (
                0,
                "the picture was printed (with `--live`: and every check passed)",
            ),
            (
                1,
                "the fleet is invalid; or, with `--live`, a check failed (the picture is still printed)",
            ),
            (
                2,
                "the fleet cannot be read; with `--live`, `--timeout 0` or an unreadable kubeconfig; or bad flags",
            ),
        ],
        examples: &[
            (
                "A self-contained SVG:",
                "meshfleet graph examples/hub-spoke > fleet.svg",
            ),
            (
                "A Mermaid flowchart for Markdown:",
                "meshfleet graph . --format mermaid",
            ),
            (
                "Coloured by the live checks:",
                "meshfleet graph . --live > health.svg",
            ),
            (
                "The same as data: clusters, the hub, links named `source -> target` (with `--live`, their health):",
                "meshfleet -o json graph . --live",
            ),
        ],
    },
    Page {
        command: "secrets",
        exit_status: &[
            (0, "as the subcommand"),
            (1, "as the subcommand"),
            (2, "as the subcommand; or no subcommand, or bad flags"),
        ],
        examples: &[
            (
                "Write the link credentials and identity keys to Vault:",
                "meshfleet secrets sync my-fleet/",
            ),
            (
                "Where a link credential rotation stands:",
                "meshfleet secrets status my-fleet/",
            ),
        ],
    },
    Page {
        command: "secrets sync",
        exit_status: &[
            (
                0,
                "every entry was written or is unchanged (with `--dry-run`: would be); with `--rotate`, the rotation went as far as it can without a commit",
            ),
            (
                1,
                "the fleet is invalid; with `--rotate`, a step is blocked (what and why, with a hint), a `--link` names no link, another rotation is in progress, or the fleet has no links",
            ),
            (
                2,
                "an entry could not be synced (Vault sealed, 403, unreachable, missing mount; a cluster unreachable; a token missing), or no Vault token; or bad flags",
            ),
        ],
        examples: &[
            (
                "What would change, values redacted:",
                "meshfleet secrets sync my-fleet/ --dry-run",
            ),
            (
                "Write to Vault (check-and-set; unchanged values are not rewritten):",
                "VAULT_ADDR=https://vault.example:8200 meshfleet secrets sync my-fleet/",
            ),
            (
                "Start, then continue, a link credential rotation:",
                "meshfleet secrets sync my-fleet/ --rotate --link studio-to-pro",
            ),
            (
                "With `spec.secrets.sops`: SOPS-encrypted Secrets into the rendered tree (what can be computed now; a file the key cannot open writes nothing), then commit:",
                "SOPS_AGE_KEY_FILE=~/.config/sops/age/keys.txt meshfleet secrets sync my-fleet/ --out gitops",
            ),
            (
                "With `spec.secrets.sops`, a rotation step seals the next credentials into the tree; commit, Flux applies them, run it again:",
                "meshfleet secrets sync my-fleet/ --rotate --out my-fleet/gitops",
            ),
        ],
    },
    Page {
        command: "secrets age-key",
        exit_status: &[
            (0, "the key was written (0600) and its recipient printed"),
            (1, "never"),
            (
                2,
                "the file exists (never overwritten) or cannot be written; or bad flags",
            ),
        ],
        examples: &[
            (
                "An operator's key, where sops looks for it; the recipient goes under `sops.age.operators`:",
                "meshfleet secrets age-key --out ~/.config/sops/age/keys.txt",
            ),
            (
                "A cluster's key, then the Secret its Flux decrypts with:",
                "meshfleet secrets age-key --out .meshfleet/keys/age/studio.agekey && kubectl --context kind-studio -n flux-system create secret generic sops-age --from-file=age.agekey=.meshfleet/keys/age/studio.agekey",
            ),
        ],
    },
    Page {
        command: "secrets status",
        exit_status: &[
            (0, "no rotation is in progress, or nothing blocks its next step"),
            (1, "the fleet is invalid, or a step of the rotation is blocked"),
            (2, "the clusters or Vault could not be read; or bad flags"),
        ],
        examples: &[
            (
                "Each link and step, the restarts seen and the Vault versions kept (with SOPS, where the earlier sealed credentials are):",
                "meshfleet secrets status my-fleet/",
            ),
            (
                "With stable step ids:",
                "meshfleet -o json secrets status my-fleet/",
            ),
        ],
    },
    Page {
        command: "check",
        exit_status: &[
            (0, "every check passed (warnings allowed)"),
            (
                1,
                "the fleet is invalid, or a check failed (an unreachable cluster is the failed check `cluster-reachable`, even when no cluster answers, as in `linkerd check`; the others are still checked)",
            ),
            (
                2,
                "`--timeout 0`, an unknown `--cluster`, or an unreadable kubeconfig; or bad flags",
            ),
        ],
        examples: &[
            (
                "Every cluster in parallel, grouped per cluster with hints:",
                "meshfleet check my-fleet/",
            ),
            (
                "Two clusters, a longer timeout, JSON with stable check ids:",
                "meshfleet -o json check . --cluster studio --cluster pro --timeout 30",
            ),
        ],
    },
    Page {
        command: "verify",
        exit_status: &[
            (
                0,
                "every link passed: the server answered and its proxy saw the identity the path allows",
            ),
            (
                1,
                "the fleet is invalid, or a link failed (its cause: cluster-unreachable, client-not-run, not-mirrored, no-endpoints, gateway-not-alive, policy-denied, identity-mismatch, anchor-not-trusted, unreachable)",
            ),
            (
                2,
                "`--timeout 0`, an empty `--image`, an unknown `--link`, a fleet without links, an unreadable kubeconfig, or interrupted (Ctrl-C; the test namespaces are removed first); or bad flags",
            ),
        ],
        examples: &[
            (
                "Every link, each in its own labelled namespace, removed afterwards:",
                "meshfleet verify my-fleet/",
            ),
            (
                "One link, an image from your registry, JSON with stable cause ids:",
                "meshfleet -o json verify . --link studio-to-pro --image registry.example/python:3.13-alpine --timeout 120",
            ),
        ],
    },
    Page {
        command: "trust",
        exit_status: &[
            (0, "as the subcommand"),
            (1, "as the subcommand"),
            (2, "as the subcommand; or no subcommand, or bad flags"),
        ],
        examples: &[(
            "The bundle a cluster really uses, then every cluster against the fleet:",
            "meshfleet trust extract --context kind-studio > studio-anchors.crt\nmeshfleet trust verify my-fleet/",
        )],
    },
    Page {
        command: "trust extract",
        exit_status: &[
            (
                0,
                "`linkerd-identity-trust-roots` holds a bundle and `linkerd-config` agrees",
            ),
            (
                1,
                "no usable anchors; only `linkerd-config` holds them; `linkerd-config` lacks them; or the two differ",
            ),
            (
                2,
                "the context cannot be read (unknown, unreachable, forbidden) or the kubeconfig is unreadable; or bad flags",
            ),
        ],
        examples: &[
            (
                "The PEM bundle on stdout, its fingerprints on stderr:",
                "meshfleet trust extract --context kind-studio > anchors.crt",
            ),
            (
                "A control plane in another namespace:",
                "meshfleet trust extract --context prod --linkerd-namespace l5d",
            ),
        ],
    },
    Page {
        command: "trust verify",
        exit_status: &[
            (
                0,
                "every cluster's bundles match the fleet's (during a rotation, the previous step's bundle is `rotation-pending`, a warning)",
            ),
            (
                1,
                "the fleet is invalid, or a bundle differs or is missing, or a cluster could not be read while others were",
            ),
            (
                2,
                "no cluster could be read, or the kubeconfig is unreadable; or bad flags",
            ),
        ],
        examples: &[(
            "A table of fingerprints per cluster:",
            "meshfleet trust verify my-fleet/",
        )],
    },
    Page {
        command: "trust rotate",
        exit_status: &[
            (0, "as the subcommand"),
            (1, "as the subcommand"),
            (2, "as the subcommand; or no subcommand, or bad flags"),
        ],
        examples: &[(
            "A whole rotation, one reviewed commit per phase:",
            "meshfleet trust rotate start\nmeshfleet trust rotate status\nmeshfleet trust rotate next",
        )],
    },
    Page {
        command: "trust rotate start",
        exit_status: &[
            (
                0,
                "the new anchor was created and the bundle holds both (with `--dry-run`: would be)",
            ),
            (
                1,
                "the fleet is invalid; or refused, nothing written: a rotation is in progress, the bundle holds more than one anchor, or a key file is in the way",
            ),
            (2, "a file cannot be read or written; or bad flags"),
        ],
        examples: &[
            ("What it would write:", "meshfleet trust rotate start --dry-run"),
            (
                "Phase `distribute`: render and commit next:",
                "meshfleet trust rotate start my-fleet/",
            ),
        ],
    },
    Page {
        command: "trust rotate status",
        exit_status: &[
            (0, "no rotation is in progress, or nothing blocks `next`"),
            (
                1,
                "the fleet is invalid, or something blocks `next` (with the restarts to run)",
            ),
            (
                2,
                "no cluster could be read, or the kubeconfig is unreadable; or bad flags",
            ),
        ],
        examples: &[
            (
                "Per cluster, what is done and what blocks:",
                "meshfleet trust rotate status my-fleet/",
            ),
            (
                "With stable ids, including retired keys still in Vault:",
                "meshfleet -o json trust rotate status my-fleet/",
            ),
        ],
    },
    Page {
        command: "trust rotate next",
        exit_status: &[
            (
                0,
                "the next phase was written (with `--dry-run`: would be), or the rotation ended",
            ),
            (
                1,
                "the fleet is invalid; a cluster is not ready (nothing written); or refused, e.g. no rotation is in progress",
            ),
            (
                2,
                "no cluster could be read; at the end of `retire`, Vault could not be used (nothing written, the rotation stays in `retire`); or a file cannot be written; or bad flags",
            ),
        ],
        examples: &[
            (
                "Move on once every cluster is ready:",
                "meshfleet trust rotate next my-fleet/",
            ),
            (
                "End the rotation but keep the retired key's versions in Vault:",
                "meshfleet trust rotate next my-fleet/ --keep-retired-key",
            ),
        ],
    },
    Page {
        command: "trust rotate abort",
        exit_status: &[
            (
                0,
                "the rotation went back (in `distribute`) or turned round (in `issuers` or `recertify`)",
            ),
            (
                1,
                "the fleet is invalid; or refused, nothing written: no rotation is in progress, or it is in `retire`",
            ),
            (2, "a file cannot be read or written; or bad flags"),
        ],
        examples: &[("What it would write:", "meshfleet trust rotate abort --dry-run")],
    },
    Page {
        command: "migrate",
        exit_status: &[
            (0, "no legacy link is left"),
            (
                1,
                "the fleet is invalid, legacy objects remain, or a cluster could not be read while others were",
            ),
            (
                2,
                "no cluster could be read, or the kubeconfig is unreadable; or bad flags",
            ),
        ],
        examples: &[
            (
                "The ordered move to declarative links, per cluster and link:",
                "meshfleet migrate my-fleet/",
            ),
            (
                "Remove legacy controllers whose declarative replacement is available:",
                "meshfleet migrate my-fleet/ --apply",
            ),
        ],
    },
    Page {
        command: "schema",
        exit_status: &[(0, "the schema was printed"), (2, USAGE)],
        examples: &[(
            "Commit the schema editors complete against:",
            "meshfleet schema > schema/fleet.schema.json",
        )],
    },
    Page {
        command: "completions",
        exit_status: &[
            (0, "the completions were printed"),
            (2, "an unknown shell; or bad flags"),
        ],
        examples: &[
            (
                "Bash:",
                "meshfleet completions bash > ~/.local/share/bash-completion/completions/meshfleet",
            ),
            ("Zsh:", "meshfleet completions zsh > ~/.zfunc/_meshfleet"),
            (
                "`completion` is the same command, under the name kubectl, helm and flux use:",
                "meshfleet completion fish > ~/.config/fish/completions/meshfleet.fish",
            ),
        ],
    },
    Page {
        command: "man",
        exit_status: &[
            (0, "the page was printed, or every page written"),
            (2, "no such command, or DIR cannot be written; or bad flags"),
        ],
        examples: &[
            (
                "The main page, then one command's:",
                "meshfleet man | man -l -\nmeshfleet man trust rotate next | man -l -",
            ),
            (
                "Every page, `meshfleet.1` and `meshfleet-<command>.1`:",
                "meshfleet man --out ~/.local/share/man/man1",
            ),
        ],
    },
    Page {
        command: "version",
        exit_status: &[(0, "the version was printed"), (2, USAGE)],
        examples: &[
            (
                "meshfleet's version and the Linkerd releases it supports:",
                "meshfleet version",
            ),
            (
                "The same for scripts (`version`, `linkerd.oldest`, `linkerd.newestChecked`):",
                "meshfleet -o json version",
            ),
        ],
    },
];

/// The command tree the pages describe: built (global options propagated, display and
/// bin names set), without clap's `help` subcommand.
fn command_tree() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every command and its words after `meshfleet` (`[]` for `meshfleet` itself),
/// parents before children.
pub fn commands() -> Vec<(Vec<String>, clap::Command)> {
    fn walk(cmd: &clap::Command, words: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
        out.push((words.to_vec(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut words = words.to_vec();
            words.push(sub.get_name().to_owned());
            walk(sub, &words, out);
        }
    }
    let mut out = Vec::new();
    walk(&command_tree(), &[], &mut out);
    out
}

/// The page of the command named by `words` (after `meshfleet`): its file name
/// (`meshfleet-trust-rotate-next.1`) and roff text. `None` for no such command.
pub fn page(words: &[String]) -> Option<(String, Vec<u8>)> {
    let (_, cmd) = commands().into_iter().find(|(w, _)| w == words)?;
    let extra = PAGES.iter().find(|p| p.command == words.join(" "));
    Some(render(cmd, words, extra))
}

/// Every page, parents before children.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    commands()
        .into_iter()
        .map(|(words, cmd)| {
            let extra = PAGES.iter().find(|p| p.command == words.join(" "));
            render(cmd, &words, extra)
        })
        .collect()
}

fn render(cmd: clap::Command, words: &[String], extra: Option<&Page>) -> (String, Vec<u8>) {
    let version = cmd.get_version().unwrap_or_default().to_owned();
    // From the words, not the page name: a command may hold a `-` (`secrets age-key`).
    let parent = words.split_last().map(|(_, above)| {
        std::iter::once("meshfleet")
            .chain(above.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-")
    });
    let has_subcommands = cmd.get_subcommands().next().is_some();
    let man = Man::new(cmd)
        .source(format!("meshfleet {version}"))
        .manual("meshfleet Manual");
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    let _ = man.render_options_section(&mut out);
    if has_subcommands {
        let _ = man.render_subcommands_section(&mut out);
    }
    let mut roff = Roff::default();
    if let Some(page) = extra {
        roff.control("SH", ["EXIT STATUS"]);
        for (code, text) in page.exit_status {
            roff.control("TP", [])
                .text([bold(code.to_string())])
                .text([roman(*text)]);
        }
        if !page.exit_status.iter().any(|(code, _)| *code == 2) {
            roff.control("TP", []).text([bold("2")]).text([roman(USAGE)]);
        }
        roff.control("SH", ["EXAMPLES"]);
        for (what, line) in page.examples {
            roff.control("PP", []).text([roman(*what)]);
            roff.control("RS", ["4"]).control("nf", []);
            for command in line.lines() {
                roff.text([roman(format!("$ {command}"))]);
            }
            roff.control("fi", []).control("RE", []);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    if let Some(parent) = parent {
        roff.text([bold(parent), roman("(1)")]).control("PP", []);
    }
    roff.text([roman(
        "README.md and docs/ in meshfleet's repository: a quickstart, the rendered tree, \
         walkthroughs of the rotations, the design and what the tests prove.",
    )]);
    let _ = roff.to_writer(&mut out);
    let _ = man.render_version_section(&mut out);
    (man.get_filename(), once_preamble(&out))
}

/// Each roff document clap_mangen writes starts with the same two lines that define
/// `\*(Aq`; a page assembled from its sections needs them once, at the top.
fn once_preamble(roff: &[u8]) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(roff);
    let body = text.replace(PREAMBLE, "");
    format!("{PREAMBLE}{body}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTIONS: [&str; 6] = [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH DESCRIPTION",
        ".SH OPTIONS",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
    ];

    #[test]
    fn every_command_has_a_page_with_every_section() {
        let commands = commands();
        assert!(commands.len() > 20, "{}", commands.len());
        for (words, _) in &commands {
            let name = words.join(" ");
            assert!(
                PAGES.iter().any(|p| p.command == name),
                "`meshfleet {name}` has no entry in PAGES (its exit status and examples)"
            );
            let (file, roff) = page(words).expect("a page");
            let roff = String::from_utf8(roff).expect("UTF-8");
            let expected = std::iter::once("meshfleet")
                .chain(words.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join("-");
            assert_eq!(file, format!("{expected}.1"));
            for section in SECTIONS {
                assert!(
                    roff.contains(&format!("\n{section}\n")),
                    "{file} lacks {section}:\n{roff}"
                );
            }
            for code in ["0", "2"] {
                assert!(
                    roff.contains(&format!(".TP\n\\fB{code}\\fR\n")),
                    "{file}: exit {code}:\n{roff}"
                );
            }
        }
    }

    #[test]
    fn every_page_entry_names_a_command() {
        let commands: Vec<String> = commands().into_iter().map(|(w, _)| w.join(" ")).collect();
        for page in PAGES {
            assert!(
                commands.contains(&page.command.to_owned()),
                "no command `{}`",
                page.command
            );
            assert!(!page.examples.is_empty(), "`{}` has no example", page.command);
            assert!(
                page.examples
                    .iter()
                    .all(|(_, line)| line.lines().all(|l| l.contains("meshfleet"))),
                "`{}`: every example line runs meshfleet",
                page.command
            );
        }
    }

    #[test]
    fn the_main_page_points_only_to_pages_that_exist() {
        let files: Vec<String> = pages().into_iter().map(|(file, _)| file).collect();
        for (file, roff) in pages() {
            let roff = String::from_utf8(roff).expect("UTF-8");
            for reference in roff.lines().filter_map(|l| l.strip_suffix("(1)")) {
                let name = reference
                    .replace("\\-", "-")
                    .replace("\\fB", "")
                    .replace("\\fR", "");
                let name = name.rsplit(' ').next().unwrap_or_default();
                assert!(files.contains(&format!("{name}.1")), "{file} points to {name}(1)");
            }
        }
    }
}
