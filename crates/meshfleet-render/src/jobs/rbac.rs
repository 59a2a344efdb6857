//! The RBAC of each Job: least *and* sufficient, measured by running the real CLI as the
//! Job's ServiceAccount (crates/meshfleet/tests/it/jobs_real.rs removes each rule in turn
//! and checks that the step it names fails).
//!
//! A rule exists for one of three reasons, and its comment says which step needs it
//! (`check`, `keep`, `render`, `apply`, `wait`, the markers the scripts print):
//! - what the CLI reads (only the control plane's `install`/`upgrade`: the extensions and
//!   the CRDs are rendered with `--ignore-cluster`);
//! - what `kubectl apply --server-side` writes: `create` and `patch` only (a server-side
//!   apply is one PATCH, and a PATCH that creates is also checked as `create`, by name);
//!   cluster-scoped objects, Secrets and objects outside the Job's own namespace by name;
//! - what the applied roles grant: the API server lets a Job create a role or binding
//!   only with permissions it holds itself (no `escalate` or `bind` here), so each Job
//!   holds exactly the union of what Linkerd's roles of its component grant (the same at
//!   2025.4.4 and 2026.8.3), merged so that no rule covers another.
//!
//! No `escalate`, `bind`, `impersonate` or `delete` verbs except where a Linkerd role grants
//! `delete` itself, no cluster-wide Secret reads. One wildcard, unavoidable: viz's
//! ClusterRole `linkerd-linkerd-viz-tap-admin` grants `watch` on `tap.linkerd.io/*`, and
//! only a holder of that wildcard may create it (the alternative, `escalate` on that role,
//! would let the Job write any rule into a role Linkerd binds to its dashboard).

use meshfleet_fleet::defaults;
use meshfleet_fleet::version::{LINKERD_2_18, LinkerdVersion, NEWEST_KNOWN};
use meshfleet_plan::{ClusterPlan, FleetPlan};

use super::script::{CONTROL_PLANE_WEBHOOKS, VIZ_WEBHOOKS};

/// One RBAC rule and why the Job needs it (`<step>[, <step>]: <reason>`).
pub(super) struct Rule {
    pub groups: &'static [&'static str],
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub names: Vec<String>,
    pub why: String,
}

/// Where rules apply: the whole cluster, or one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scope {
    Cluster,
    Namespace(String),
}

/// The rules of a Job, by scope, in file order.
pub(super) type Rules = Vec<(Scope, Vec<Rule>)>;

const WRITE: &[&str] = &["create", "patch"];
const READ: &[&str] = &["get", "list", "watch"];

fn rule(
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
    why: impl Into<String>,
) -> Rule {
    Rule {
        groups,
        resources,
        verbs,
        names: Vec::new(),
        why: why.into(),
    }
}

fn named(
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
    names: Vec<String>,
    why: impl Into<String>,
) -> Rule {
    Rule {
        groups,
        resources,
        verbs,
        names,
        why: why.into(),
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(ToString::to_string).collect()
}

/// Linkerd's CRDs (`linkerd-crds` with `installGatewayAPI: false`), the same at 2025.4.4
/// and 2026.8.3.
pub const LINKERD_CRDS: [&str; 10] = [
    "authorizationpolicies.policy.linkerd.io",
    "egressnetworks.policy.linkerd.io",
    "externalworkloads.workload.linkerd.io",
    "httplocalratelimitpolicies.policy.linkerd.io",
    "httproutes.policy.linkerd.io",
    "meshtlsauthentications.policy.linkerd.io",
    "networkauthentications.policy.linkerd.io",
    "serverauthorizations.policy.linkerd.io",
    "servers.policy.linkerd.io",
    "serviceprofiles.linkerd.io",
];

/// The Gateway API CRDs the control plane's `linkerd upgrade` gets by name, per release
/// (the release it was read from, in linkerd2's source, and the CRD names). `linkerd
/// install` reads none: it renders the CRD chart without the cluster and with
/// `installGatewayAPI=false`. `upgrade` renders the CRD chart reading the cluster:
/// - it gets `httproutes` and then `grpcroutes` to learn who installed the Gateway API
///   (edge-25.4.4 `checkGatewayAPICRDs` in `cli/cmd/install.go`, edge-26.8.3
///   `CheckGatewayAPICRDs` in `pkg/healthcheck/healthcheck.go`);
/// - when one of them carries Linkerd's `linkerd.io/created-by` annotation (the CRDs
///   `linkerd install --crds --set installGatewayAPI=true` prints, experimental channel),
///   the chart's `installGatewayAPI` default becomes true, so the chart renders all four
///   route CRDs of its `TemplatesCrdFiles` (`httproutes`, `grpcroutes`, `tlsroutes`,
///   `tcproutes`), and `CheckCustomResourceDefinitions` gets each one it rendered.
///
/// So a cluster whose Gateway API CRDs came from Linkerd's CLI needs all four; upstream's
/// CRDs (no such annotation) only the first two. Releases between two entries take the
/// older entry; newer than the last one (`validate` warns) the last.
const GATEWAY_API_READ: [(LinkerdVersion, [&str; 4]); 2] = [
    (
        LINKERD_2_18,
        [
            "httproutes.gateway.networking.k8s.io",
            "grpcroutes.gateway.networking.k8s.io",
            "tlsroutes.gateway.networking.k8s.io",
            "tcproutes.gateway.networking.k8s.io",
        ],
    ),
    (
        NEWEST_KNOWN,
        [
            "httproutes.gateway.networking.k8s.io",
            "grpcroutes.gateway.networking.k8s.io",
            "tlsroutes.gateway.networking.k8s.io",
            "tcproutes.gateway.networking.k8s.io",
        ],
    ),
];

/// The Gateway API CRDs the control-plane Job's CLI may get at `version`
/// ([`GATEWAY_API_READ`]).
fn gateway_api_read(version: LinkerdVersion) -> &'static [&'static str] {
    let (_, names) = GATEWAY_API_READ
        .iter()
        .rev()
        .find(|(from, _)| version >= *from)
        .unwrap_or(&GATEWAY_API_READ[0]);
    names
}

/// The CRD `linkerd multicluster install` renders.
const LINK_CRD: &str = "links.multicluster.linkerd.io";

/// The namespace object the CLI's output holds: it exists already (the `namespaces`
/// stage), so applying it is a patch.
fn namespace_patch(namespace: &str) -> Rule {
    named(
        &[""],
        &["namespaces"],
        &["patch"],
        vec![namespace.to_string()],
        format!("apply: the output holds the Namespace `{namespace}` (created by the namespaces stage)"),
    )
}

/// The CRDs Job: it only applies.
pub(super) fn crds() -> Rules {
    vec![(
        Scope::Cluster,
        vec![named(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            WRITE,
            strings(&LINKERD_CRDS),
            "apply: the CRDs `linkerd install --crds --ignore-cluster` renders",
        )],
    )]
}

/// The control-plane Job.
pub(super) fn control_plane(plan: &FleetPlan) -> Rules {
    let ns = plan.linkerd.namespace.as_str();
    let destination = format!("linkerd-{ns}-destination");
    let injector = format!("linkerd-{ns}-proxy-injector");
    let identity = format!("linkerd-{ns}-identity");
    let mut crds = strings(&LINKERD_CRDS);
    crds.extend(
        gateway_api_read(plan.linkerd.version)
            .iter()
            .map(ToString::to_string),
    );
    let cluster = vec![
        named(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["get"],
            crds,
            "render: `linkerd install` and `upgrade` check that Linkerd's CRDs exist; `upgrade` also gets the Gateway API's HTTPRoute and GRPCRoute CRDs (whose owner decides what it checks) and, when Linkerd's CLI created them, every route CRD of Linkerd's chart",
        ),
        rule(
            &[""],
            &["nodes"],
            READ,
            format!(
                "render, apply: `linkerd install`/`upgrade` list nodes (the docker-runtime check); ClusterRole `{destination}` grants get/list/watch"
            ),
        ),
        rule(
            &["discovery.k8s.io"],
            &["endpointslices"],
            &["get", "list", "watch", "create", "update", "patch", "delete"],
            format!(
                "render, apply: `linkerd install`/`upgrade` list EndpointSlices (the EndpointSlice-access check); ClusterRole `{destination}` grants all of these"
            ),
        ),
        rule(
            &[""],
            &["pods", "endpoints", "services"],
            READ,
            format!(
                "render, apply: `linkerd install` reads the Service `default/kubernetes` (API server ports); ClusterRoles `{destination}`, `linkerd-policy` and `{injector}` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["extensions", "apps"],
            &["deployments", "replicasets", "daemonsets", "statefulsets"],
            READ,
            format!(
                "apply, wait: ClusterRole `{injector}` grants these (`{destination}` replica sets, `linkerd-policy` deployments); `rollout status` watches the Deployments"
            ),
        ),
        rule(
            &["extensions", "batch"],
            &["cronjobs", "jobs"],
            READ,
            format!(
                "keep, apply: the script reads the heartbeat CronJob's schedule; ClusterRoles `{injector}` and `{destination}` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &[""],
            &["namespaces", "replicationcontrollers"],
            READ,
            format!(
                "apply: ClusterRoles `{injector}` and `linkerd-heartbeat` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["linkerd.io"],
            &["serviceprofiles"],
            READ,
            format!(
                "apply: ClusterRoles `{destination}` and `linkerd-heartbeat` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["workload.linkerd.io"],
            &["externalworkloads"],
            READ,
            format!(
                "apply: ClusterRoles `{destination}` and `linkerd-policy` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "get", "update", "patch"],
            format!(
                "apply: ClusterRoles `{destination}` and `linkerd-policy` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["policy.linkerd.io"],
            &[
                "authorizationpolicies",
                "httplocalratelimitpolicies",
                "httproutes",
                "meshtlsauthentications",
                "networkauthentications",
                "servers",
                "serverauthorizations",
                "egressnetworks",
            ],
            READ,
            "apply: ClusterRole `linkerd-policy` grants these (a Job may create a role only with permissions it holds)",
        ),
        rule(
            &["policy.linkerd.io"],
            &[
                "httproutes/status",
                "httplocalratelimitpolicies/status",
                "egressnetworks/status",
            ],
            &["patch"],
            "apply: ClusterRole `linkerd-policy` grants these (a Job may create a role only with permissions it holds)",
        ),
        rule(
            &["gateway.networking.k8s.io"],
            &["httproutes", "grpcroutes", "tlsroutes", "tcproutes"],
            READ,
            "apply: ClusterRole `linkerd-policy` grants these (a Job may create a role only with permissions it holds)",
        ),
        rule(
            &["gateway.networking.k8s.io"],
            &[
                "httproutes/status",
                "grpcroutes/status",
                "tlsroutes/status",
                "tcproutes/status",
            ],
            &["patch"],
            "apply: ClusterRole `linkerd-policy` grants these (a Job may create a role only with permissions it holds)",
        ),
        rule(
            &["authentication.k8s.io"],
            &["tokenreviews"],
            &["create"],
            format!(
                "apply: ClusterRole `{identity}` grants this (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &[""],
            &["events"],
            &["create", "patch"],
            format!(
                "apply: ClusterRoles `{identity}` and `{injector}` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        named(
            &["rbac.authorization.k8s.io"],
            &["clusterroles"],
            WRITE,
            vec![
                identity.clone(),
                destination.clone(),
                "linkerd-policy".into(),
                injector.clone(),
                "linkerd-heartbeat".into(),
            ],
            "apply: the control plane's ClusterRoles",
        ),
        named(
            &["rbac.authorization.k8s.io"],
            &["clusterrolebindings"],
            WRITE,
            vec![
                identity,
                destination,
                "linkerd-destination-policy".into(),
                injector,
                "linkerd-heartbeat".into(),
            ],
            "apply: the control plane's ClusterRoleBindings",
        ),
        named(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations"],
            WRITE,
            vec!["linkerd-proxy-injector-webhook-config".into()],
            "apply: the proxy injector's webhook",
        ),
        named(
            &["admissionregistration.k8s.io"],
            &["validatingwebhookconfigurations"],
            WRITE,
            vec![
                "linkerd-sp-validator-webhook-config".into(),
                "linkerd-policy-validator-webhook-config".into(),
            ],
            "apply: the service-profile and policy validators' webhooks",
        ),
        namespace_patch(ns),
    ];
    let mut secrets = vec!["linkerd-config-overrides".to_string()];
    secrets.extend(CONTROL_PLANE_WEBHOOKS.iter().map(|(_, s)| (*s).to_string()));
    let own = vec![
        named(
            &[""],
            &["configmaps"],
            &["get"],
            vec!["linkerd-config".into()],
            "check, render, apply: the script and `linkerd install` look for `linkerd-config` (install or upgrade); Roles `linkerd-heartbeat` and `ext-namespace-metadata-linkerd-config` grant get on it",
        ),
        rule(
            &[""],
            &["secrets"],
            READ,
            "keep, render, apply: the script reads the webhook certificates, `linkerd install` the issuer Secret, `upgrade` also `linkerd-config-overrides`; Role `remote-discovery` grants get/list/watch on Secrets here",
        ),
        named(
            &[""],
            &["secrets"],
            WRITE,
            secrets,
            "apply: `linkerd-config-overrides` and the webhook certificates",
        ),
        rule(
            &[""],
            &["configmaps", "serviceaccounts", "services"],
            WRITE,
            "apply: the control plane's configuration, accounts and Services",
        ),
        rule(
            &["apps"],
            &["deployments"],
            WRITE,
            "apply: the control plane's Deployments",
        ),
        rule(&["batch"], &["cronjobs"], WRITE, "apply: the heartbeat CronJob"),
        rule(
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            WRITE,
            "apply: the control plane's Roles and RoleBindings",
        ),
    ];
    vec![(Scope::Cluster, cluster), (Scope::Namespace(ns.to_string()), own)]
}

/// The viz Job.
pub(super) fn viz(plan: &FleetPlan) -> Rules {
    let ns = defaults::VIZ_NAMESPACE;
    let linkerd_ns = plan.linkerd.namespace.as_str();
    let role = |suffix: &str| format!("linkerd-{ns}-{suffix}");
    let cluster = vec![
        rule(
            &[""],
            &[
                "pods",
                "services",
                "endpoints",
                "replicationcontrollers",
                "namespaces",
                "nodes",
            ],
            READ,
            format!(
                "apply: ClusterRoles `{}`, `{}`, `{}`, `{}`, `{}` and `linkerd-tap-injector` grant these (a Job may create a role only with permissions it holds)",
                role("metrics-api"),
                role("tap"),
                role("prometheus"),
                role("web-check"),
                role("web-api")
            ),
        ),
        rule(
            &[""],
            &["nodes/proxy"],
            READ,
            format!(
                "apply: ClusterRole `{}` grants this (a Job may create a role only with permissions it holds)",
                role("prometheus")
            ),
        ),
        rule(
            &["extensions", "apps"],
            &["daemonsets", "deployments", "replicasets", "statefulsets"],
            READ,
            format!(
                "apply: ClusterRoles `{}` and `{}` grant these (a Job may create a role only with permissions it holds)",
                role("metrics-api"),
                role("tap")
            ),
        ),
        rule(
            &["extensions", "batch"],
            &["cronjobs", "jobs"],
            READ,
            format!(
                "apply: ClusterRoles `{}` and `{}` grant these (a Job may create a role only with permissions it holds)",
                role("metrics-api"),
                role("tap")
            ),
        ),
        rule(
            &["linkerd.io"],
            &["serviceprofiles"],
            READ,
            format!(
                "apply: ClusterRoles `{}` and `{}` grant these (a Job may create a role only with permissions it holds)",
                role("metrics-api"),
                role("web-check")
            ),
        ),
        rule(
            &["policy.linkerd.io"],
            &[
                "servers",
                "serverauthorizations",
                "authorizationpolicies",
                "httproutes",
            ],
            &["get", "list"],
            format!(
                "apply: ClusterRole `{}` grants these (a Job may create a role only with permissions it holds)",
                role("metrics-api")
            ),
        ),
        rule(
            &["tap.linkerd.io"],
            &["*"],
            &["watch"],
            format!(
                "apply: ClusterRole `{}` grants watch on `tap.linkerd.io/*`; only a holder of that wildcard may create it without `escalate`",
                role("tap-admin")
            ),
        ),
        rule(
            &["rbac.authorization.k8s.io"],
            &["clusterroles", "clusterrolebindings"],
            &["list"],
            format!(
                "apply: ClusterRole `{}` grants this (a Job may create a role only with permissions it holds)",
                role("web-check")
            ),
        ),
        rule(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            &["list"],
            format!(
                "apply: ClusterRole `{}` grants this (a Job may create a role only with permissions it holds)",
                role("web-check")
            ),
        ),
        rule(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
            &["list"],
            format!(
                "apply: ClusterRole `{}` grants this (a Job may create a role only with permissions it holds)",
                role("web-check")
            ),
        ),
        rule(
            &["apiregistration.k8s.io"],
            &["apiservices"],
            &["get"],
            format!(
                "apply: ClusterRole `{}` grants this (a Job may create a role only with permissions it holds)",
                role("web-check")
            ),
        ),
        rule(
            &["authentication.k8s.io"],
            &["tokenreviews"],
            &["create"],
            format!(
                "apply: ClusterRoleBinding `{}` grants `system:auth-delegator`",
                role("tap-auth-delegator")
            ),
        ),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
            format!(
                "apply: ClusterRoleBinding `{}` grants `system:auth-delegator`",
                role("tap-auth-delegator")
            ),
        ),
        named(
            &["rbac.authorization.k8s.io"],
            &["clusterroles"],
            WRITE,
            vec![
                role("metrics-api"),
                role("prometheus"),
                role("tap"),
                role("tap-admin"),
                role("web-api"),
                role("web-check"),
                "linkerd-tap-injector".into(),
            ],
            "apply: viz's ClusterRoles",
        ),
        named(
            &["rbac.authorization.k8s.io"],
            &["clusterrolebindings"],
            WRITE,
            vec![
                role("metrics-api"),
                role("prometheus"),
                role("tap"),
                role("tap-auth-delegator"),
                role("web-admin"),
                role("web-api"),
                role("web-check"),
                "linkerd-tap-injector".into(),
            ],
            "apply: viz's ClusterRoleBindings",
        ),
        named(
            &["admissionregistration.k8s.io"],
            &["mutatingwebhookconfigurations"],
            WRITE,
            vec!["linkerd-tap-injector-webhook-config".into()],
            "apply: the tap injector's webhook",
        ),
        named(
            &["apiregistration.k8s.io"],
            &["apiservices"],
            WRITE,
            vec!["v1alpha1.tap.linkerd.io".into()],
            "apply: the tap API's APIService",
        ),
        namespace_patch(ns),
    ];
    let own = vec![
        named(
            &[""],
            &["secrets"],
            &["get", "create", "patch"],
            VIZ_WEBHOOKS.iter().map(|(_, s)| (*s).to_string()).collect(),
            "keep, apply: the script reads the webhook certificates; the first run applies them",
        ),
        rule(
            &[""],
            &["configmaps", "serviceaccounts", "services"],
            WRITE,
            "apply: viz's configuration, accounts and Services",
        ),
        rule(&["apps"], &["deployments"], WRITE, "apply: viz's Deployments"),
        rule(
            &["linkerd.io"],
            &["serviceprofiles"],
            WRITE,
            "apply: viz's ServiceProfiles",
        ),
        rule(
            &["policy.linkerd.io"],
            &[
                "servers",
                "authorizationpolicies",
                "meshtlsauthentications",
                "networkauthentications",
            ],
            WRITE,
            "apply: viz's own policy",
        ),
    ];
    let linkerd = vec![
        rule(
            &[""],
            &["configmaps"],
            &["get"],
            format!("apply: Role `web` (in `{linkerd_ns}`) grants get on ConfigMaps"),
        ),
        rule(
            &[""],
            &["serviceaccounts"],
            &["list"],
            format!("apply: Role `web` (in `{linkerd_ns}`) grants list on ServiceAccounts"),
        ),
        named(
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            WRITE,
            vec!["web".into()],
            "apply: the dashboard's Role and RoleBinding in the control plane's namespace",
        ),
    ];
    let kube_system = vec![
        named(
            &[""],
            &["configmaps"],
            READ,
            vec!["extension-apiserver-authentication".into()],
            format!(
                "apply: RoleBinding `{}` grants Role `extension-apiserver-authentication-reader`",
                role("tap-auth-reader")
            ),
        ),
        named(
            &["rbac.authorization.k8s.io"],
            &["rolebindings"],
            WRITE,
            vec![role("tap-auth-reader")],
            "apply: the tap API server's RoleBinding in kube-system",
        ),
    ];
    vec![
        (Scope::Cluster, cluster),
        (Scope::Namespace(ns.to_string()), own),
        (Scope::Namespace(linkerd_ns.to_string()), linkerd),
        (Scope::Namespace("kube-system".into()), kube_system),
    ]
}

/// The multicluster Job: what it grants depends on the cluster's links.
pub(super) fn multicluster(cluster: &ClusterPlan) -> Rules {
    let ns = defaults::MULTICLUSTER_NAMESPACE;
    let local = "linkerd-local-service-mirror-access-local-resources";
    let controller = "linkerd-multicluster-controller-access-local-resources";
    let links: Vec<&str> = cluster
        .outgoing
        .iter()
        .map(meshfleet_plan::LinkPlan::link_name)
        .collect();
    // One account per incoming link (two for a link whose credentials rotate).
    let remote = cluster.remote_access_service_accounts();
    let mut cluster_rules = vec![
        named(
            &["apiextensions.k8s.io"],
            &["customresourcedefinitions"],
            WRITE,
            vec![LINK_CRD.into()],
            "apply: the output holds the Link CRD",
        ),
        rule(
            &[""],
            &["endpoints", "services"],
            &["get", "list", "watch", "create", "delete", "update"],
            format!(
                "apply: ClusterRoles `{local}` and `{controller}` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &[""],
            &["namespaces"],
            READ,
            format!(
                "apply: ClusterRoles `{local}` and `{controller}` grant these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "get", "update", "patch"],
            format!(
                "apply: ClusterRole `{local}` grants these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["multicluster.linkerd.io"],
            &["links"],
            READ,
            format!(
                "apply: ClusterRole `{local}` grants these (a Job may create a role only with permissions it holds)"
            ),
        ),
        rule(
            &["multicluster.linkerd.io"],
            &["links/status"],
            &["update"],
            format!(
                "apply: ClusterRole `{local}` grants this (a Job may create a role only with permissions it holds)"
            ),
        ),
    ];
    if !remote.is_empty() {
        let roles = remote
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", ");
        cluster_rules.extend([
            rule(
                &["apps"],
                &["replicasets"],
                READ,
                format!("apply: the remote-access ClusterRoles {roles} grant these (a Job may create a role only with permissions it holds)"),
            ),
            rule(
                &["batch"],
                &["jobs"],
                READ,
                format!("apply: the remote-access ClusterRoles {roles} grant these (a Job may create a role only with permissions it holds)"),
            ),
            rule(
                &[""],
                &["pods"],
                READ,
                format!("apply: the remote-access ClusterRoles {roles} grant these (a Job may create a role only with permissions it holds)"),
            ),
            rule(
                &["discovery.k8s.io"],
                &["endpointslices"],
                READ,
                format!("apply: the remote-access ClusterRoles {roles} grant these (a Job may create a role only with permissions it holds)"),
            ),
            rule(
                &["policy.linkerd.io"],
                &["servers"],
                READ,
                format!("apply: the remote-access ClusterRoles {roles} grant these (a Job may create a role only with permissions it holds)"),
            ),
            named(
                &[""],
                &["configmaps"],
                &["get"],
                vec!["linkerd-config".into()],
                format!("apply: the remote-access ClusterRoles {roles} grant get on `linkerd-config`"),
            ),
            rule(
                &[""],
                &["events"],
                &["create", "patch"],
                format!("apply: the remote-access ClusterRoles {roles} grant these (a Job may create a role only with permissions it holds)"),
            ),
        ]);
    }
    let mut cluster_role_names = vec![local.to_string(), controller.to_string()];
    cluster_role_names.extend(remote.iter().cloned());
    let mut binding_names = vec![local.to_string()];
    binding_names.extend(links.iter().map(|l| format!("{controller}-{l}")));
    binding_names.extend(remote.iter().cloned());
    cluster_rules.extend([
        named(
            &["rbac.authorization.k8s.io"],
            &["clusterroles"],
            WRITE,
            cluster_role_names,
            "apply: the extension's ClusterRoles",
        ),
        named(
            &["rbac.authorization.k8s.io"],
            &["clusterrolebindings"],
            WRITE,
            binding_names,
            "apply: the extension's ClusterRoleBindings",
        ),
        namespace_patch(ns),
    ]);
    let mut own = Vec::new();
    if !links.is_empty() {
        own.extend([
            named(
                &[""],
                &["secrets"],
                READ,
                links.iter().map(|l| format!("cluster-credentials-{l}")).collect(),
                "apply: the Roles `controller-read-remote-creds-<link>` grant get/list/watch on their link's credentials",
            ),
            rule(
                &["multicluster.linkerd.io"],
                &["links/status"],
                &["patch"],
                "apply: the Roles `controller-read-remote-creds-<link>` grant this (a Job may create a role only with permissions it holds)",
            ),
        ]);
    }
    if !remote.is_empty() {
        own.push(named(
            &[""],
            &["secrets"],
            WRITE,
            // The chart names each account's token Secret `<account>-token`.
            remote.iter().map(|a| format!("{a}-token")).collect(),
            "apply: the remote-access accounts' token Secrets",
        ));
    }
    own.extend([
        rule(
            &[""],
            &["serviceaccounts", "services"],
            WRITE,
            "apply: the extension's accounts and Services",
        ),
        rule(
            &["apps"],
            &["deployments"],
            WRITE,
            "apply: the gateway and the service mirrors",
        ),
        rule(
            &["policy.linkerd.io"],
            &[
                "servers",
                "authorizationpolicies",
                "meshtlsauthentications",
                "networkauthentications",
            ],
            WRITE,
            "apply: the extension's own policy",
        ),
        rule(
            &["rbac.authorization.k8s.io"],
            &["roles", "rolebindings"],
            WRITE,
            "apply: the controllers' Roles and RoleBindings",
        ),
    ]);
    vec![
        (Scope::Cluster, cluster_rules),
        (Scope::Namespace(ns.to_string()), own),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18: `linkerd upgrade` gets TLSRoute's and TCPRoute's CRDs too when Linkerd's
    /// CLI created the Gateway API CRDs, at both releases and everything between.
    #[test]
    fn every_release_may_get_the_four_route_crds_of_linkerds_chart() {
        for version in [
            LINKERD_2_18,
            LinkerdVersion::new(2025, 10, 7),
            NEWEST_KNOWN,
            LinkerdVersion::new(2027, 1, 1),
        ] {
            let names = gateway_api_read(version);
            for kind in ["httproutes", "grpcroutes", "tlsroutes", "tcproutes"] {
                let crd = format!("{kind}.gateway.networking.k8s.io");
                assert!(names.contains(&crd.as_str()), "{version}: {crd}");
            }
        }
    }
}
