//! Against real kube-apiservers (`testenv`): rendered trees pass strict server-side
//! apply, service-account token Secrets and RBAC behave as meshfleet relies on, and
//! OpenBao serves KV v2.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::runtime::wait::{await_condition, conditions};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use crate::support::{HOMELAB_VAULT, example_copy_with, render_files, rendered_objects, shared_dir};
use crate::testenv;

const FIELD_MANAGER: &str = "meshfleet";

/// One YAML document of a rendered file: its text (sent as is) and its parsed form.
struct Doc {
    file: String,
    text: String,
    value: Value,
}

impl Doc {
    fn field(&self, pointer: &str) -> &str {
        self.value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
    }

    fn label(&self) -> String {
        format!(
            "{}: {} {}/{}",
            self.file,
            self.field("/kind"),
            self.field("/metadata/namespace"),
            self.field("/metadata/name")
        )
    }
}

/// Split every rendered `.yaml` file (except kustomize's) into documents, in file order.
fn documents(files: &BTreeMap<String, String>) -> Vec<Doc> {
    let mut docs = Vec::new();
    for (file, text) in files {
        if std::path::Path::new(file).extension().is_none_or(|e| e != "yaml")
            || file.ends_with("kustomization.yaml")
        {
            continue;
        }
        let mut chunks = vec![String::new()];
        for line in text.lines() {
            if line == "---" || line.starts_with("--- ") {
                chunks.push(String::new());
            } else if let Some(last) = chunks.last_mut() {
                last.push_str(line);
                last.push('\n');
            }
        }
        for chunk in chunks {
            let value: Value = serde_saphyr::from_str(&chunk)
                .unwrap_or_else(|e| panic!("{file}: a document does not parse: {e}\n{chunk}"));
            if !value.is_null() {
                docs.push(Doc {
                    file: file.clone(),
                    text: chunk,
                    value,
                });
            }
        }
    }
    docs
}

/// What the server said to one apply request.
struct Reply {
    status: http::StatusCode,
    warnings: Vec<String>,
    body: String,
}

impl Reply {
    /// The `message` of a `Status` body, else the body.
    fn message(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.body.clone())
    }
}

/// Server-side apply of one object (YAML or JSON text) through `Client::send`, so
/// that the `Warning` headers can be read. Strict field validation, forced.
async fn apply(
    client: &kube::Client,
    discovery: &Discovery,
    value: &Value,
    body: &str,
    dry_run: bool,
) -> Result<Reply, String> {
    let api_version = value["apiVersion"].as_str().ok_or("no apiVersion")?;
    let kind = value["kind"].as_str().ok_or("no kind")?;
    let name = value["metadata"]["name"].as_str().ok_or("no metadata.name")?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (resource, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
        .ok_or_else(|| format!("{api_version} {kind} is not served by the API server"))?;
    let mut path = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    if caps.scope == Scope::Namespaced {
        let namespace = value["metadata"]["namespace"]
            .as_str()
            .ok_or("namespaced kind without metadata.namespace")?;
        path.push_str(&format!("/namespaces/{namespace}"));
    } else if value["metadata"].get("namespace").is_some() {
        return Err("cluster-scoped kind with metadata.namespace".into());
    }
    path.push_str(&format!(
        "/{}/{name}?fieldManager={FIELD_MANAGER}&fieldValidation=Strict&force=true",
        resource.plural
    ));
    if dry_run {
        path.push_str("&dryRun=All");
    }
    let request = http::Request::patch(path)
        .header(http::header::CONTENT_TYPE, "application/apply-patch+yaml")
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = client
        .send(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let warnings = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let bytes = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| format!("reading the response: {e}"))?;
    Ok(Reply {
        status,
        warnings,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Apply, and describe anything but a clean success.
async fn apply_clean(
    client: &kube::Client,
    discovery: &Discovery,
    value: &Value,
    body: &str,
    dry_run: bool,
) -> Result<(), String> {
    let reply = apply(client, discovery, value, body, dry_run).await?;
    let mut problems = Vec::new();
    if !reply.status.is_success() {
        problems.push(format!("rejected ({}): {}", reply.status, reply.message()));
    }
    problems.extend(reply.warnings.iter().map(|w| format!("warning: {w}")));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Install every CRD of `../shared/crds` (real server-side apply), wait until each is Established.
async fn install_crds(client: &kube::Client) -> Vec<CustomResourceDefinition> {
    let dir = shared_dir().join("crds");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut crds = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).expect("read CRD file");
        let values: Vec<Value> = serde_saphyr::from_multiple(&text).expect("CRD file parses");
        for value in values.into_iter().filter(|v| !v.is_null()) {
            let name = value["metadata"]["name"].as_str().expect("CRD name").to_owned();
            let crd = api
                .patch(&name, &params, &Patch::Apply(&value))
                .await
                .unwrap_or_else(|e| panic!("{}: applying CRD {name}: {e}", path.display()));
            crds.push(crd);
        }
    }
    assert!(crds.len() >= 17, "only {} CRDs in {}", crds.len(), dir.display());
    for crd in &crds {
        let name = crd.metadata.name.as_deref().expect("CRD name");
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 60 s"))
        .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
    crds
}

/// Discovery that serves every served version of every CRD (retry briefly: discovery
/// documents follow Established closely but not atomically).
async fn discovery_with(client: &kube::Client, crds: &[CustomResourceDefinition]) -> Discovery {
    let wanted: Vec<GroupVersionKind> = crds
        .iter()
        .flat_map(|crd| {
            crd.spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| GroupVersionKind::gvk(&crd.spec.group, &v.name, &crd.spec.names.kind))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let discovery = Discovery::new(client.clone()).run().await.expect("API discovery");
        let missing: Vec<_> = wanted
            .iter()
            .filter(|gvk| discovery.resolve_gvk(gvk).is_none())
            .map(|gvk| format!("{}/{} {}", gvk.group, gvk.version, gvk.kind))
            .collect();
        if missing.is_empty() {
            return discovery;
        }
        assert!(
            Instant::now() < deadline,
            "discovery still lacks {missing:?} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Create (for real) every namespace the objects live in: the rendered `Namespace`
/// objects as rendered, the rest as plain namespaces. Returns the names not rendered.
async fn ensure_namespaces(client: &kube::Client, discovery: &Discovery, docs: &[Doc]) -> BTreeSet<String> {
    let mut rendered = BTreeSet::new();
    for doc in docs
        .iter()
        .filter(|d| d.field("/apiVersion") == "v1" && d.field("/kind") == "Namespace")
    {
        if let Err(problem) = apply_clean(client, discovery, &doc.value, &doc.text, false).await {
            panic!("{}: creating the namespace: {problem}", doc.label());
        }
        rendered.insert(doc.field("/metadata/name").to_owned());
    }
    let mut others: BTreeSet<String> = docs
        .iter()
        .map(|d| d.field("/metadata/namespace").to_owned())
        .filter(|ns| !ns.is_empty() && !rendered.contains(ns))
        .collect();
    others.extend(["flux-system".to_owned(), "argocd".to_owned()]);
    for ns in &others {
        let value = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        apply_clean(client, discovery, &value, &value.to_string(), false)
            .await
            .unwrap_or_else(|problem| panic!("creating namespace {ns}: {problem}"));
    }
    others
}

/// Every rendered object of both examples with both engines passes a strict
/// server-side apply dry run on a real API server, without warnings.
#[test]
fn rendered_trees_pass_strict_server_side_apply() {
    let env = testenv::shared();
    testenv::block_on(async {
        let client = env.client("east").await;
        let started = Instant::now();
        let crds = install_crds(&client).await;
        let discovery = discovery_with(&client, &crds).await;
        eprintln!(
            "{} CRDs established and discovered in {:.1}s",
            crds.len(),
            started.elapsed().as_secs_f64()
        );

        let mut problems = Vec::new();
        let mut a_link = None;
        // The homelab example itself (SOPS) under Flux only: Argo CD refuses SOPS
        // (examples.rs shows the refusal); both engines render its Vault variant.
        let both: &[&str] = &["flux", "argocd"];
        for (example, method, engines) in [
            ("homelab", "helm", &["flux"][..]),
            (HOMELAB_VAULT, "helm", both),
            ("hub-spoke", "helm", both),
            ("homelab", "jobs", &["flux"][..]),
            (HOMELAB_VAULT, "jobs", both),
            ("hub-spoke", "jobs", both),
        ] {
            for &engine in engines {
                let fleet = example_copy_with(example, engine, method);
                let files = render_files(fleet.path());
                let docs = documents(&files);
                // The same documents the other tests see, so none is skipped here.
                assert_eq!(
                    docs.len(),
                    rendered_objects(&files).len(),
                    "{example}/{engine}/{method}: document split differs from support::rendered_objects"
                );
                let kinds: BTreeSet<&str> = docs.iter().map(|d| d.field("/kind")).collect();
                let sops = example == "homelab";
                let expected: &[&str] = match (engine, method) {
                    (_, "jobs") => &[
                        "Namespace",
                        "Job",
                        "ServiceAccount",
                        "ClusterRole",
                        "RoleBinding",
                        "ConfigMap",
                    ],
                    // With SOPS the Secrets are sealed files `secrets sync` adds, not
                    // ExternalSecrets.
                    ("flux", _) if sops => &["Namespace", "HelmRelease", "HelmRepository", "Kustomization"],
                    ("flux", _) => &[
                        "Namespace",
                        "HelmRelease",
                        "HelmRepository",
                        "Kustomization",
                        "ExternalSecret",
                    ],
                    _ => &["Namespace", "Application", "ExternalSecret"],
                };
                for kind in expected {
                    assert!(
                        kinds.contains(kind),
                        "{example}/{engine}/{method}: no {kind} rendered (kinds: {kinds:?})"
                    );
                }
                assert!(
                    !(sops && kinds.contains("ExternalSecret")),
                    "{example}/{engine}/{method}: SOPS renders no ExternalSecret"
                );
                let not_rendered = ensure_namespaces(&client, &discovery, &docs).await;
                let mut accepted = 0;
                for doc in &docs {
                    match apply_clean(&client, &discovery, &doc.value, &doc.text, true).await {
                        Ok(()) => accepted += 1,
                        Err(problem) => {
                            problems.push(format!("{example}/{engine}/{method} {}: {problem}", doc.label()));
                        }
                    }
                    if a_link.is_none() && doc.field("/kind") == "Link" {
                        a_link = Some(doc.value.clone());
                    }
                }
                eprintln!(
                    "{example}/{engine}/{method}: {accepted}/{} objects accepted (kinds {kinds:?}); namespaces not rendered: {not_rendered:?}",
                    docs.len()
                );
                assert!(accepted > 0, "{example}/{engine}/{method}: nothing was applied");
            }
        }
        assert!(
            problems.is_empty(),
            "the API server rejected or warned about {} rendered object(s):\n{}",
            problems.len(),
            problems.join("\n")
        );

        // The check can fail: the same request refuses a Link with an integer port
        // and one with an unknown field.
        let link = a_link.expect("the examples render at least one Link");
        let mut wrong_type = link.clone();
        wrong_type["spec"]["gatewayPort"] = json!(4143);
        let reply = apply(&client, &discovery, &wrong_type, &wrong_type.to_string(), true)
            .await
            .expect("apply request");
        // Server-side apply refuses a type mismatch while building the typed patch,
        // before schema validation, and answers 500 (not 422) for it.
        assert!(
            !reply.status.is_success(),
            "integer gatewayPort accepted: {}",
            reply.body
        );
        assert!(
            reply.message().contains(".spec.gatewayPort: expected string"),
            "{}",
            reply.message()
        );
        let a_valid_link = link.clone();
        let mut unknown = link;
        unknown["spec"]["gatewayPrt"] = json!("4143");
        let reply = apply(&client, &discovery, &unknown, &unknown.to_string(), true)
            .await
            .expect("apply request");
        assert!(
            !reply.status.is_success(),
            "unknown field accepted: {}",
            reply.body
        );
        assert!(
            reply
                .message()
                .contains(".spec.gatewayPrt: field not declared in schema"),
            "{}",
            reply.message()
        );
        // ... and a warning alone fails it: on a custom resource, a finalizer name
        // without a domain is accepted with a warning.
        let mut noisy = a_valid_link;
        noisy["metadata"]["finalizers"] = json!(["probe"]);
        let problem = apply_clean(&client, &discovery, &noisy, &noisy.to_string(), true)
            .await
            .expect_err("a finalizer without a domain draws a warning");
        eprintln!("warning probe: {problem}");
        assert!(
            problem.starts_with("warning: 299 ") && problem.contains("finalizer"),
            "{problem}"
        );
    });
}

/// A client that uses only a bearer token and a CA, as `secrets sync` will write it.
async fn token_client(server: &str, ca_pem: &[u8], token: &str) -> kube::Client {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: remote\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: remote\n  user:\n    token: {token}\ncontexts:\n- name: remote\n  context:\n    cluster: remote\n    user: remote\ncurrent-context: remote\n"
    );
    let kubeconfig = Kubeconfig::from_yaml(&text).expect("token kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("token kubeconfig loads");
    kube::Client::try_from(config).expect("token client")
}

/// The HTTP status of a failed call, or panic on anything else.
fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> Option<u16> {
    match result {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.code),
        Err(e) => panic!("{what}: unexpected error {e}"),
    }
}

/// The token controller fills a service-account token Secret; a client with only that
/// token and CA is refused until RBAC allows it, and only for what RBAC allows.
#[test]
fn token_secret_and_rbac() {
    let env = testenv::shared();
    testenv::block_on(async {
        let admin = env.client("west").await;
        let ns = "meshfleet-rbac";
        let sa = "service-mirror-remote";
        let secret_name = "service-mirror-remote-token";
        Api::<Namespace>::all(admin.clone())
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.into()),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                },
            )
            .await
            .expect("create namespace");
        Api::<ServiceAccount>::namespaced(admin.clone(), ns)
            .create(
                &PostParams::default(),
                &ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(sa.into()),
                        ..ObjectMeta::default()
                    },
                    ..ServiceAccount::default()
                },
            )
            .await
            .expect("create service account");
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some(secret_name.into()),
                        annotations: Some(
                            [("kubernetes.io/service-account.name".to_owned(), sa.to_owned())].into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    type_: Some("kubernetes.io/service-account-token".into()),
                    ..Secret::default()
                },
            )
            .await
            .expect("create token secret");

        let started = Instant::now();
        let (token, ca) = loop {
            let secret = secrets.get(secret_name).await.expect("get token secret");
            let data = secret.data.clone().unwrap_or_default();
            if let (Some(token), Some(ca)) = (data.get("token"), data.get("ca.crt"))
                && !token.0.is_empty()
                && !ca.0.is_empty()
            {
                break (
                    String::from_utf8(token.0.clone()).expect("token is text"),
                    ca.0.clone(),
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the token controller did not fill {ns}/{secret_name} within 30 s: type {:?}, annotations {:?}, data keys {:?}",
                secret.type_,
                secret.metadata.annotations,
                data.keys().collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        eprintln!("token Secret filled in {:?}", started.elapsed());
        assert_eq!(ca, env.ca_pem("west"), "ca.crt is the cluster CA");

        let remote = token_client(&env.server("west"), &ca, &token).await;
        let services: Api<Service> = Api::all(remote.clone());
        assert_eq!(
            status_of(services.list(&ListParams::default()).await, "list services"),
            Some(403),
            "listing services before any RBAC"
        );

        let role = "meshfleet-test-service-reader";
        Api::<ClusterRole>::all(admin.clone())
            .create(
                &PostParams::default(),
                &ClusterRole {
                    metadata: ObjectMeta {
                        name: Some(role.into()),
                        ..ObjectMeta::default()
                    },
                    rules: Some(vec![PolicyRule {
                        api_groups: Some(vec![String::new()]),
                        resources: Some(vec!["services".into()]),
                        verbs: vec!["get".into(), "list".into(), "watch".into()],
                        ..PolicyRule::default()
                    }]),
                    ..ClusterRole::default()
                },
            )
            .await
            .expect("create cluster role");
        Api::<ClusterRoleBinding>::all(admin.clone())
            .create(
                &PostParams::default(),
                &ClusterRoleBinding {
                    metadata: ObjectMeta {
                        name: Some(role.into()),
                        ..ObjectMeta::default()
                    },
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "ClusterRole".into(),
                        name: role.into(),
                    },
                    subjects: Some(vec![Subject {
                        kind: "ServiceAccount".into(),
                        name: sa.into(),
                        namespace: Some(ns.into()),
                        ..Subject::default()
                    }]),
                },
            )
            .await
            .expect("create cluster role binding");

        let started = Instant::now();
        loop {
            match services.list(&ListParams::default()).await {
                Ok(list) => {
                    assert!(
                        list.items
                            .iter()
                            .any(|s| s.metadata.name.as_deref() == Some("kubernetes"))
                    );
                    break;
                }
                Err(kube::Error::Api(status))
                    if status.code == 403 && started.elapsed() < Duration::from_secs(10) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "listing services after the binding ({:?}): {e}",
                    started.elapsed()
                ),
            }
        }
        eprintln!("RBAC allowed listing services after {:?}", started.elapsed());

        let remote_secrets: Api<Secret> = Api::namespaced(remote.clone(), ns);
        assert_eq!(
            status_of(remote_secrets.list(&ListParams::default()).await, "list secrets"),
            Some(403),
            "listing secrets stays refused"
        );
        assert_eq!(
            status_of(remote_secrets.get(secret_name).await, "get secret"),
            Some(403),
            "reading its own token Secret stays refused"
        );

        // Each cluster has its own service-account key: east does not accept west's token.
        let wrong_cluster = token_client(&env.server("east"), &env.ca_pem("east"), &token).await;
        assert_eq!(
            status_of(
                Api::<Service>::all(wrong_cluster)
                    .list(&ListParams::default())
                    .await,
                "east"
            ),
            Some(401),
            "a west token on east"
        );
    });
}

/// OpenBao answers at `vault_addr` and round-trips a KV v2 secret with the token.
#[test]
fn openbao_kv_v2_round_trip() {
    let env = testenv::shared();
    testenv::block_on(async {
        let http = reqwest::Client::new();
        let addr = env.vault_addr();
        let token = env.vault_token().expose_secret();

        let health = http
            .get(format!("{addr}/v1/sys/health"))
            .send()
            .await
            .expect("GET sys/health");
        assert_eq!(health.status(), reqwest::StatusCode::OK);
        let health: Value = health.json().await.expect("health JSON");
        assert_eq!(health["initialized"], json!(true), "{health}");
        assert_eq!(health["sealed"], json!(false), "{health}");

        let url = format!("{addr}/v1/secret/data/meshfleet-test/round-trip");
        let kubeconfig = "apiVersion: v1\nkind: Config\n";
        let written = http
            .post(&url)
            .header("X-Vault-Token", token)
            .json(&json!({"data": {"kubeconfig": kubeconfig}}))
            .send()
            .await
            .expect("write KV v2");
        let status = written.status();
        assert!(
            status.is_success(),
            "write: {status}: {}",
            written.text().await.unwrap_or_default()
        );

        let read = http
            .get(&url)
            .header("X-Vault-Token", token)
            .send()
            .await
            .expect("read KV v2");
        assert_eq!(read.status(), reqwest::StatusCode::OK);
        let read: Value = read.json().await.expect("read JSON");
        assert_eq!(read["data"]["data"]["kubeconfig"], json!(kubeconfig), "{read}");
        assert_eq!(read["data"]["metadata"]["version"], json!(1), "{read}");

        let anonymous = http.get(&url).send().await.expect("read without token");
        assert_eq!(
            anonymous.status(),
            reqwest::StatusCode::FORBIDDEN,
            "the token is required"
        );
    });
}

/// A private environment is independent of the shared one and is gone after drop:
/// its API server stops listening and its folder is removed.
#[test]
fn private_env_stops_on_drop() {
    let env = testenv::private(&["solo"]);
    assert_eq!(env.names(), ["solo"]);
    eprintln!("private environment up in {:.1}s", env.startup().as_secs_f64());
    let server = env.server("solo");
    let dir = env.dir().to_path_buf();
    let namespaces = testenv::block_on(async {
        let client = env.client("solo").await;
        Api::<Namespace>::all(client)
            .list(&ListParams::default())
            .await
            .expect("list namespaces")
    });
    assert!(
        namespaces
            .items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );
    drop(env);
    let address = server.trim_start_matches("https://");
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "{address} still accepts connections after drop"
    );
    assert!(
        testenv::keep() || !dir.exists(),
        "{} still exists after drop",
        dir.display()
    );
}
