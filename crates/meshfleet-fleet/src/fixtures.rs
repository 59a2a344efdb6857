//! Fleets for tests of every layer: a valid two-cluster fleet to change one line of.
//! Not part of the API (hidden from the docs); higher layers' fixtures build on it.

/// Two clusters linked both ways in gateway mode; `pro` has a NodePort gateway.
pub const BASE: &str = "\
apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata:
  name: test
spec:
  linkerd:
    version: 2025.4.4
  gitops:
    engine: flux
    repository:
      url: https://github.com/example/fleet.git
  identity:
    trustAnchor: anchor.crt
  secrets:
    vault:
      server: https://vault.example:8200
      mount: secret
      path: linkerd
  clusters:
    - name: studio
      vaultAuthMountPath: kubernetes-studio
      apiServer: https://studio.example:6443
      network:
        pods: [10.1.0.0/16]
        services: [10.101.0.0/16]
      gateway:
        addresses: [studio.example]
    - name: pro
      vaultAuthMountPath: kubernetes-pro
      apiServer: https://pro.example:6443
      network:
        pods: [10.2.0.0/16]
        services: [10.102.0.0/16]
      gateway:
        serviceType: NodePort
        addresses: [192.0.2.20]
        nodePort: 30143
        probe: {nodePort: 30191, period: 5s}
  links:
    - {source: studio, target: pro}
    - {source: pro, target: studio}
";

/// [`BASE`] with `from` replaced by `to` (which must be there).
pub fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE has no `{from}`");
    BASE.replacen(from, to, 1)
}

/// Public age recipients for fixtures (their private keys were thrown away).
pub const AGE_OPERATOR: &str = "age10gsnt4chr9e07gyx9at9endkcxpytdrgwxphk7mh5tzts609jvhs4am543";
/// The fixture recipient of `studio`.
pub const AGE_STUDIO: &str = "age1m9etkx9d4me98rsxts80cnzw8w3s8zucpvndc40uh4r53gyp0vhqe359rr";
/// The fixture recipient of `pro`.
pub const AGE_PRO: &str = "age1jmzts7gvw7kk4rpv8wdd28a2x7tfnd59ve0dn28j6sgquaeznvcs7jrxwq";

/// [`BASE`] with its secrets kept by SOPS + age instead of Vault.
pub fn sops_base() -> String {
    base_with(
        "    vault:\n      server: https://vault.example:8200\n      mount: secret\n      path: linkerd\n",
        &format!(
            "    sops:\n      age:\n        operators: [{AGE_OPERATOR}]\n        clusters:\n          studio: {AGE_STUDIO}\n          pro: {AGE_PRO}\n"
        ),
    )
}
