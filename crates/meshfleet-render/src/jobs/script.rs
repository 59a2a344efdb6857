//! The shell scripts the Jobs run: the real `linkerd` CLI of the fleet's version renders
//! a component, `kubectl apply --server-side` applies it.
//!
//! What running them against a real API server taught (issue 10), and so why they read
//! as they do:
//! - `linkerd install --crds` refuses once `linkerd-config` exists, so it cannot upgrade;
//!   with `--ignore-cluster` it only renders, which installs and upgrades alike and needs
//!   no read access at all.
//! - The control plane needs the cluster: `--identity-external-issuer` (which
//!   `identity.issuer.scheme: kubernetes.io/tls` implies) is refused with
//!   `--ignore-cluster`. `linkerd upgrade` keeps what the install stored in the Secret
//!   `linkerd-config-overrides` and rejects the install-only flags
//!   (`--identity-trust-domain`, `--cluster-domain`), so settings go through `--set`, the
//!   same for both.
//! - With an external issuer the CLI takes the anchors from the issuer Secret's `ca.crt`
//!   (one anchor with cert-manager) and ignores `--identity-trust-anchors-file`; a value
//!   (`--set-file identityTrustAnchorsPEM=...`) wins over it, so the fleet's bundle is
//!   what is installed, also during a two-anchor rotation.
//! - Every render generates new webhook certificates; the scripts pass the installed
//!   ones back, so a re-run (Flux re-creates a Job once its TTL removed it) changes
//!   nothing, and an upgrade never has a webhook whose `caBundle` and server disagree.
//!   The chart makes them valid for 365 days; deleting a `*-k8s-tls` Secret makes the next
//!   run generate a new one.
//! - `linkerd viz install` and `linkerd multicluster install` without `--ignore-cluster`
//!   run the core health checks (pods, services and nodes cluster-wide, accounts and
//!   replica sets in the linkerd namespace) and wait up to 5 minutes for the control
//!   plane; they read only settings from `linkerd-config`, which the scripts pass as
//!   values. So both use `--ignore-cluster`: the output is the same and the Jobs need no
//!   read access outside their own work. Instead the control-plane Job waits (bounded)
//!   for its Deployments, so the extensions' pods are created once the proxy injector
//!   serves.
//!
//! The scripts use only `sh` built-ins, `linkerd` and `kubectl` (what the image has), and
//! print `meshfleet step: <step>` before each step: `check`, `keep`, `render`, `apply`,
//! `wait`. The RBAC comments name the step that needs each rule.

use meshfleet_fleet::defaults;
use meshfleet_plan::FleetPlan;

/// Where the Job mounts its files; `MESHFLEET_MOUNT` overrides it (the tests run the
/// scripts outside a cluster).
pub const MOUNT: &str = "/var/run/meshfleet";

/// How long the control-plane Job waits for each of its Deployments.
pub const ROLLOUT_TIMEOUT: &str = "300s";

/// Webhook certificates of the control plane: (chart value, Secret in its namespace).
pub const CONTROL_PLANE_WEBHOOKS: [(&str, &str); 3] = [
    ("proxyInjector", "linkerd-proxy-injector-k8s-tls"),
    ("profileValidator", "linkerd-sp-validator-k8s-tls"),
    ("policyValidator", "linkerd-policy-validator-k8s-tls"),
];

/// Webhook certificates of viz: (chart value, Secret in `linkerd-viz`).
pub const VIZ_WEBHOOKS: [(&str, &str); 2] = [("tap", "tap-k8s-tls"), ("tapInjector", "tap-injector-k8s-tls")];

/// The control plane's Deployments, waited for in this order.
pub const CONTROL_PLANE_DEPLOYMENTS: [&str; 3] = [
    "linkerd-identity",
    "linkerd-destination",
    "linkerd-proxy-injector",
];

const APPLY: &str = "kubectl apply --server-side --force-conflicts --field-manager=meshfleet-jobs";

/// Fail fast, refuse an image whose CLI is not the fleet's version, and set up the step
/// markers and the folders.
fn preamble(plan: &FleetPlan) -> String {
    let edge = plan.linkerd.version.edge_tag();
    format!(
        r#"set -eu
want={edge}
have="$(linkerd version --client --short 2>/dev/null || true)"
case "$have" in
  *"$want"*) ;;
  *) echo "gitops.jobs.image has linkerd '$have', the fleet wants $want; build the image of $want from images/linkerd-jobs/Dockerfile in meshfleet's repository (--build-arg LINKERD_VERSION=$want) and set gitops.jobs.image to it" >&2; exit 1 ;;
esac
step() {{ printf 'meshfleet step: %s\n' "$*" >&2; }}
mount="${{MESHFLEET_MOUNT:-{MOUNT}}}"
work="${{TMPDIR:-/tmp}}"
umask 077
"#
    )
}

/// Shell words for `--set key=value,...` (single-quoted: values may hold commas,
/// escaped for Helm as `\,`).
fn set_flag(pairs: &[(&str, String)]) -> String {
    let joined = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(',', "\\,")))
        .collect::<Vec<_>>()
        .join(",");
    format!("--set '{joined}'")
}

/// `keep`: a shell function that writes `$work/kept.yaml`, values that keep what the
/// chart generated at the first render: the webhook certificates (`externalSecret: true`,
/// so the Secret stays as it is, and its certificate as the webhook's `caBundle`: the
/// chart's certificates are self-signed) and, for the control plane, the heartbeat
/// CronJob's schedule (the chart picks the time of the render). It sets `missing=1` when
/// one of them does not exist yet, and then asks the chart to generate that certificate.
fn keep_function(namespace: &str, webhooks: &[(&str, &str)], heartbeat: bool) -> String {
    let pairs = webhooks
        .iter()
        .map(|(value, secret)| format!("{value}:{secret}"))
        .collect::<Vec<_>>()
        .join(" ");
    let heartbeat = if heartbeat {
        format!(
            r#"  schedule="$(kubectl -n {namespace} get cronjob linkerd-heartbeat --ignore-not-found -o go-template='{{{{.spec.schedule}}}}')"
  if [ -n "$schedule" ]; then printf 'heartbeatSchedule: "%s"\n' "$schedule" >> "$work/kept.yaml"; else missing=1; fi
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"keep() {{
  step keep
  missing=0
  : > "$work/kept.yaml"
  for pair in {pairs}; do
    value="${{pair%%:*}}" secret="${{pair#*:}}"
    crt="$(kubectl -n {namespace} get secret "$secret" --ignore-not-found -o go-template='{{{{index .data "tls.crt" | base64decode}}}}')"
    if [ -z "$crt" ]; then
      # Generate it: `upgrade` would otherwise keep `externalSecret: true` from the
      # settings the last run stored in `linkerd-config-overrides`.
      missing=1
      printf '%s:\n  externalSecret: false\n  caBundle: ""\n' "$value" >> "$work/kept.yaml"
      continue
    fi
    printf '%s:\n  externalSecret: true\n  caBundle: |\n' "$value" >> "$work/kept.yaml"
    printf '%s\n' "$crt" | while IFS= read -r line; do printf '    %s\n' "$line"; done >> "$work/kept.yaml"
  done
{heartbeat}}}
"#
    )
}

/// Render and apply a component whose chart generates something at each render: `first`
/// renders while something is missing (the chart then generates it), `steady` with all
/// of it kept, so that the output of a run is the same as the next run's.
fn render_keeping(keep: &str, first: &str, steady: &str, file: &str) -> String {
    format!(
        r#"# Every render generates new webhook certificates; keep the installed ones, so that a
# re-run changes nothing. The first run (or one after a `*-k8s-tls` Secret was deleted to
# renew its certificate) applies the generated ones first, then renders as every later run.
{keep}keep
if [ "$missing" = 1 ]; then
  step render
  {first} --values "$work/kept.yaml" > "$work/{file}"
  step apply
  {APPLY} -f "$work/{file}"
  keep
fi
step render
{steady} --values "$work/kept.yaml" > "$work/{file}"
{apply}"#,
        apply = apply(file),
    )
}

fn apply(file: &str) -> String {
    format!("step apply\n{APPLY} -f \"$work/{file}\"\n")
}

/// `-L <namespace>` when the control plane is not in `linkerd`.
fn namespace_flag(plan: &FleetPlan) -> String {
    if plan.linkerd.namespace == defaults::LINKERD_NAMESPACE {
        String::new()
    } else {
        format!(" --linkerd-namespace {}", plan.linkerd.namespace)
    }
}

/// The CRDs: rendered without reading the cluster, so the same command installs and
/// upgrades.
pub fn crds(plan: &FleetPlan) -> String {
    format!(
        "{}# --ignore-cluster: `install --crds` would refuse once Linkerd is installed; the Gateway API\n\
         # CRDs are meshfleet's (or the user's), never the chart's.\n\
         step render\n\
         linkerd install --crds --ignore-cluster --set installGatewayAPI=false > \"$work/crds.yaml\"\n{}",
        preamble(plan),
        apply("crds.yaml")
    )
}

/// The control plane: `linkerd install` the first time, `linkerd upgrade` afterwards,
/// with the fleet's anchor bundle and settings and the installed webhook certificates;
/// then a bounded wait for its Deployments.
pub fn control_plane(plan: &FleetPlan) -> String {
    let l = &plan.linkerd;
    let ns = &l.namespace;
    let mut settings = vec![
        ("identityTrustDomain", l.trust_domain.clone()),
        ("clusterDomain", l.cluster_domain.clone()),
    ];
    if l.cluster_networks_set {
        settings.push(("clusterNetworks", l.cluster_networks.join(",")));
    }
    let nsflag = namespace_flag(plan);
    let deployments = CONTROL_PLANE_DEPLOYMENTS.join(" ");
    let renders = render_keeping(
        &keep_function(ns, &CONTROL_PLANE_WEBHOOKS, true),
        &format!("linkerd $verb{nsflag} \"$@\""),
        &format!("linkerd upgrade{nsflag} \"$@\""),
        "control-plane.yaml",
    );
    format!(
        r#"{preamble}step check
# An assignment, not a test: a failing kubectl (no access) must stop the script.
installed="$(kubectl -n {ns} get configmap linkerd-config --ignore-not-found -o name)"
verb=upgrade
if [ -z "$installed" ]; then
  verb="install --identity-external-issuer"
fi
# The fleet's bundle as a value: it wins over the issuer Secret's ca.crt.
set -- --set-file "identityTrustAnchorsPEM=$mount/trust-anchors/ca-bundle.crt" {settings}
{renders}# The extensions' pods need a serving proxy injector: done only once the control plane
# is rolled out, at most {timeout} per Deployment (the CLI's own wait is 5 minutes).
step wait
for deployment in {deployments}; do
  kubectl -n {ns} rollout status "deployment/$deployment" --timeout={timeout}
done
"#,
        preamble = preamble(plan),
        settings = set_flag(&settings),
        timeout = ROLLOUT_TIMEOUT,
    )
}

/// Viz, rendered with the control plane's settings as values and the installed webhook
/// certificates.
pub fn viz(plan: &FleetPlan) -> String {
    let l = &plan.linkerd;
    let settings = [
        ("linkerdNamespace", l.namespace.clone()),
        ("identityTrustDomain", l.trust_domain.clone()),
        ("clusterDomain", l.cluster_domain.clone()),
    ];
    let render = "linkerd viz install --ignore-cluster \"$@\"";
    format!(
        "{}# --ignore-cluster: the settings the CLI would read from linkerd-config are values here.\n\
         set -- {}\n{}",
        preamble(plan),
        set_flag(&settings),
        render_keeping(
            &keep_function(defaults::VIZ_NAMESPACE, &VIZ_WEBHOOKS, false),
            render,
            render,
            "viz.yaml"
        )
    )
}

/// The multicluster extension, rendered from the mounted values (the Helm method's).
pub fn multicluster(plan: &FleetPlan) -> String {
    format!(
        "{}# --ignore-cluster: the values hold the settings the CLI would read from linkerd-config.\n\
         step render\n\
         linkerd multicluster install --ignore-cluster --values \"$mount/values/values.yaml\" > \"$work/multicluster.yaml\"\n{}",
        preamble(plan),
        apply("multicluster.yaml")
    )
}
