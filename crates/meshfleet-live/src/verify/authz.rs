//! Whether a gateway's authorization allows a client identity, read from the target's
//! `policy.linkerd.io` objects the way Linkerd's policy controller reads them: an
//! `AuthorizationPolicy` applies to a `Server` it targets by name (or to every Server of
//! its namespace when it targets the `Namespace`), and it authorizes a connection when
//! every one of its `requiredAuthenticationRefs` is met.
//!
//! Only what the client's identity decides is judged: a `NetworkAuthentication` depends
//! on the address the gateway sees, which `verify` cannot know, so it counts as met.
//! The answer is therefore "denied" only when no policy of the Server can admit the
//! client whatever its address.

use serde_json::Value;

/// The client, as policies name it.
#[derive(Debug, Clone)]
pub struct Client<'a> {
    /// Its mTLS identity (`<sa>.<ns>.serviceaccount.identity.<linkerd ns>.<trust domain>`).
    pub identity: &'a str,
    /// Its ServiceAccount.
    pub service_account: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
}

/// Why the client is refused: the policies that apply and what each one requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// `<namespace>/<name>` of each AuthorizationPolicy of the Server, with the
    /// authentication the client does not meet.
    pub unmet: Vec<(String, String)>,
}

impl Denial {
    /// One line for a report.
    pub fn describe(&self) -> String {
        self.unmet
            .iter()
            .map(|(policy, why)| format!("AuthorizationPolicy `{policy}` requires {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Judge `client` against the AuthorizationPolicies of `namespace` (`policies`) for the
/// Server `server`, with the namespace's `MeshTLSAuthentication`s (`mesh_tls`).
/// `None`: some policy can admit the client, or no policy targets the Server (then the
/// cluster's default policy decides, which Linkerd allows by default).
pub fn judge(
    client: &Client<'_>,
    namespace: &str,
    server: &str,
    policies: &[Value],
    mesh_tls: &[Value],
) -> Option<Denial> {
    let applying: Vec<&Value> = policies
        .iter()
        .filter(|p| targets(p, server, namespace))
        .collect();
    if applying.is_empty() {
        return None;
    }
    let mut unmet = Vec::new();
    for policy in applying {
        let name = format!(
            "{namespace}/{}",
            policy["metadata"]["name"].as_str().unwrap_or("?")
        );
        let refs = policy["spec"]["requiredAuthenticationRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match refs.iter().find_map(|r| not_met(client, namespace, r, mesh_tls)) {
            Some(why) => unmet.push((name, why)),
            None => return None,
        }
    }
    Some(Denial { unmet })
}

fn targets(policy: &Value, server: &str, namespace: &str) -> bool {
    let target = &policy["spec"]["targetRef"];
    match target["kind"].as_str() {
        Some("Server") => target["name"] == server,
        Some("Namespace") => target["name"] == namespace,
        _ => false,
    }
}

/// What a required authentication asks that the client does not give, if anything.
fn not_met(client: &Client<'_>, namespace: &str, reference: &Value, mesh_tls: &[Value]) -> Option<String> {
    let kind = reference["kind"].as_str().unwrap_or_default();
    let name = reference["name"].as_str().unwrap_or_default();
    let ref_ns = reference["namespace"].as_str().unwrap_or(namespace);
    match kind {
        "ServiceAccount" => (!(name == client.service_account && ref_ns == client.namespace))
            .then(|| format!("ServiceAccount `{ref_ns}/{name}`")),
        "MeshTLSAuthentication" => {
            let found = mesh_tls.iter().find(|m| {
                m["metadata"]["name"] == name
                    && m["metadata"]["namespace"].as_str().unwrap_or(namespace) == ref_ns
            });
            let Some(auth) = found else {
                // The policy controller refuses a policy whose reference is missing.
                return Some(format!(
                    "MeshTLSAuthentication `{ref_ns}/{name}`, which does not exist"
                ));
            };
            (!mesh_tls_admits(client, ref_ns, auth)).then(|| {
                format!(
                    "MeshTLSAuthentication `{ref_ns}/{name}` ({}), which `{}` is not",
                    admitted(auth),
                    client.identity
                )
            })
        }
        // NetworkAuthentication: decided by the address, unknown here.
        _ => None,
    }
}

fn mesh_tls_admits(client: &Client<'_>, namespace: &str, auth: &Value) -> bool {
    let by_identity = auth["spec"]["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|pattern| identity_matches(pattern, client.identity));
    let by_ref = auth["spec"]["identityRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| {
            let ns = r["namespace"].as_str().unwrap_or(namespace);
            let name = r["name"].as_str().unwrap_or_default();
            match r["kind"].as_str() {
                Some("ServiceAccount") => {
                    ns == client.namespace && (name == "*" || name == client.service_account)
                }
                Some("Namespace") => name == "*" || name == client.namespace,
                _ => false,
            }
        });
    by_identity || by_ref
}

/// Linkerd's identity patterns: `*` is any identity, `*.<suffix>` any identity ending
/// in `.<suffix>`, anything else is exact.
fn identity_matches(pattern: &str, identity: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) if suffix.starts_with('.') => identity.ends_with(suffix),
        _ => pattern == identity,
    }
}

fn admitted(auth: &Value) -> String {
    let mut parts: Vec<String> = auth["spec"]["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|i| format!("`{i}`"))
        .collect();
    parts.extend(
        auth["spec"]["identityRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} `{}`",
                    r["kind"].as_str().unwrap_or("?"),
                    r["name"].as_str().unwrap_or("?")
                )
            }),
    );
    if parts.is_empty() {
        "no identity".into()
    } else {
        format!("admits {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CLIENT: Client<'static> = Client {
        identity: "verify-client.meshfleet-verify-a-to-b.serviceaccount.identity.linkerd.cluster.local",
        service_account: "verify-client",
        namespace: "meshfleet-verify-a-to-b",
    };

    /// The multicluster chart's gateway policy (edge-26.8.3), with `identities`.
    fn chart(identities: &[&str]) -> (Vec<Value>, Vec<Value>) {
        let policy = json!({
            "metadata": {"name": "linkerd-gateway", "namespace": "linkerd-multicluster"},
            "spec": {
                "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "linkerd-gateway"},
                "requiredAuthenticationRefs": [
                    {"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "any-meshed", "namespace": "linkerd-multicluster"},
                    {"group": "policy.linkerd.io", "kind": "NetworkAuthentication", "name": "source-cluster", "namespace": "linkerd-multicluster"}
                ]
            }
        });
        let auth = json!({
            "metadata": {"name": "any-meshed", "namespace": "linkerd-multicluster"},
            "spec": {"identities": identities}
        });
        (vec![policy], vec![auth])
    }

    fn judge_chart(identities: &[&str]) -> Option<Denial> {
        let (policies, auths) = chart(identities);
        judge(
            &CLIENT,
            "linkerd-multicluster",
            "linkerd-gateway",
            &policies,
            &auths,
        )
    }

    #[test]
    fn the_charts_policy_admits_any_meshed_client() {
        assert_eq!(judge_chart(&["*"]), None);
        assert_eq!(judge_chart(&["*.linkerd.cluster.local"]), None);
        assert_eq!(judge_chart(&[CLIENT.identity]), None);
    }

    #[test]
    fn a_narrowed_identity_list_is_a_denial_that_names_the_policy() {
        let denial = judge_chart(&["*.apps.serviceaccount.identity.linkerd.cluster.local"]).expect("denied");
        let text = denial.describe();
        assert!(text.contains("linkerd-multicluster/linkerd-gateway"), "{text}");
        assert!(text.contains("any-meshed"), "{text}");
        assert!(text.contains("*.apps.serviceaccount"), "{text}");
        // A suffix pattern is not a substring match.
        assert!(judge_chart(&["*.verify-a-to-b.serviceaccount.identity.linkerd.cluster.local"]).is_some());
    }

    #[test]
    fn one_admitting_policy_is_enough_and_other_servers_do_not_count() {
        let (mut policies, mut auths) = chart(&["nobody.example"]);
        policies.push(json!({
            "metadata": {"name": "verify", "namespace": "linkerd-multicluster"},
            "spec": {
                "targetRef": {"group": "core", "kind": "Namespace", "name": "linkerd-multicluster"},
                "requiredAuthenticationRefs": [{"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "verify"}]
            }
        }));
        auths.push(json!({
            "metadata": {"name": "verify", "namespace": "linkerd-multicluster"},
            "spec": {"identityRefs": [{"kind": "Namespace", "name": "meshfleet-verify-a-to-b"}]}
        }));
        assert_eq!(
            judge(
                &CLIENT,
                "linkerd-multicluster",
                "linkerd-gateway",
                &policies,
                &auths
            ),
            None
        );
        assert_eq!(
            judge(
                &CLIENT,
                "linkerd-multicluster",
                "other-server",
                &policies[..1],
                &auths
            ),
            None,
            "no policy targets that Server"
        );
    }

    #[test]
    fn service_account_references_and_missing_authentications() {
        let policy = |name: &str, reference: Value| {
            json!({
                "metadata": {"name": name, "namespace": "linkerd-multicluster"},
                "spec": {
                    "targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "linkerd-gateway"},
                    "requiredAuthenticationRefs": [reference]
                }
            })
        };
        let by_sa = policy(
            "sa",
            json!({"kind": "ServiceAccount", "name": "verify-client", "namespace": "meshfleet-verify-a-to-b"}),
        );
        assert_eq!(
            judge(&CLIENT, "linkerd-multicluster", "linkerd-gateway", &[by_sa], &[]),
            None
        );
        let missing = policy(
            "gone",
            json!({"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": "gone"}),
        );
        let denial = judge(
            &CLIENT,
            "linkerd-multicluster",
            "linkerd-gateway",
            &[missing],
            &[],
        )
        .expect("denied");
        assert!(
            denial.describe().contains("does not exist"),
            "{}",
            denial.describe()
        );
    }
}
