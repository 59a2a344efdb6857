//! Every rendered custom resource of both examples, with both engines, against the
//! `openAPIV3Schema` of the real upstream CRDs in `../shared/crds`, with unknown fields
//! rejected (as the API server's strict field validation does).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{HOMELAB_VAULT, example_copy_with, render_files, rendered_objects, shared_dir};

/// (apiVersion, kind) → the version's schema, made strict.
fn crd_schemas() -> BTreeMap<(String, String), Value> {
    let mut schemas = BTreeMap::new();
    let dir = shared_dir().join("crds");
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read crd");
        let crd: Value = serde_saphyr::from_str(&text).expect("crd parses");
        let group = crd["spec"]["group"].as_str().expect("group").to_string();
        let kind = crd["spec"]["names"]["kind"].as_str().expect("kind").to_string();
        for version in crd["spec"]["versions"].as_array().expect("versions") {
            let name = version["name"].as_str().expect("version name");
            let mut schema = version["schema"]["openAPIV3Schema"].clone();
            strict(&mut schema);
            // The API server always allows the object envelope, listed or not.
            if let Some(Value::Object(props)) = schema.get_mut("properties") {
                props.entry("apiVersion").or_insert(json!({"type": "string"}));
                props.entry("kind").or_insert(json!({"type": "string"}));
                props.entry("metadata").or_insert(json!({"type": "object"}));
            }
            schemas.insert((format!("{group}/{name}"), kind.clone()), schema);
        }
    }
    schemas
}

/// Turn an OpenAPI v3 CRD schema into a JSON Schema (draft 4) that rejects unknown fields.
fn strict(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else { return };
    if obj.remove("nullable") == Some(Value::Bool(true))
        && let Some(t) = obj.get("type").cloned()
    {
        obj.insert("type".into(), json!([t, "null"]));
    }
    if obj.remove("x-kubernetes-int-or-string") == Some(Value::Bool(true)) {
        obj.remove("type");
        obj.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") && !preserve {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    // Recurse only where sub-schemas live (a field may itself be called `properties`).
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(strict);
    }
    for key in ["items", "additionalProperties", "not"] {
        match obj.get_mut(key) {
            Some(v @ Value::Object(_)) => strict(v),
            Some(Value::Array(items)) => items.iter_mut().for_each(strict),
            _ => {}
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(items)) = obj.get_mut(key) {
            items.iter_mut().for_each(strict);
        }
    }
}

fn check_example(
    example: &str,
    engine: &str,
    method: &str,
    schemas: &BTreeMap<(String, String), Value>,
) -> usize {
    let dir = example_copy_with(example, engine, method);
    let files = render_files(dir.path());
    let mut checked = 0;
    for (file, object) in rendered_objects(&files) {
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if !group.contains('.') || group.ends_with(".k8s.io") {
            // Built-in kinds (Namespace, Job, RBAC, ...) are checked by the API server tests.
            continue;
        }
        let schema = schemas
            .get(&(api_version.clone(), kind.clone()))
            .unwrap_or_else(|| panic!("{example}/{engine}: {file}: no CRD for {api_version} {kind}"));
        let validator = jsonschema::draft4::new(schema).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&object)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{example}/{engine}: {file} ({kind}) does not conform:\n{}",
            errors.join("\n")
        );
        checked += 1;
    }
    checked
}

#[test]
fn rendered_custom_resources_conform_to_the_upstream_crds() {
    let schemas = crd_schemas();
    for example in ["homelab", HOMELAB_VAULT, "hub-spoke"] {
        for engine in ["flux", "argocd"] {
            if example == "homelab" && engine == "argocd" {
                // Argo CD refuses the example's SOPS (examples.rs): its Vault variant.
                continue;
            }
            for method in ["helm", "jobs"] {
                let checked = check_example(example, engine, method, &schemas);
                assert!(
                    checked > 8,
                    "{example}/{engine}/{method}: only {checked} objects checked"
                );
            }
        }
    }
}

#[test]
fn the_strict_schema_rejects_unknown_fields_and_integer_ports() {
    let schemas = crd_schemas();
    let link = &schemas[&("multicluster.linkerd.io/v1alpha3".to_string(), "Link".to_string())];
    let validator = jsonschema::draft4::new(link).expect("schema");
    let good = json!({"apiVersion": "multicluster.linkerd.io/v1alpha3", "kind": "Link", "metadata": {"name": "x"},
        "spec": {"gatewayPort": "4143", "probeSpec": {"period": "3s", "port": "4191", "path": "/ready"}}});
    let errors: Vec<String> = validator.iter_errors(&good).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let mut integer_port = good.clone();
    integer_port["spec"]["gatewayPort"] = json!(4143);
    assert!(!validator.is_valid(&integer_port));
    let mut unknown = good;
    unknown["spec"]["gatewayPorts"] = json!("4143");
    assert!(!validator.is_valid(&unknown));
}
