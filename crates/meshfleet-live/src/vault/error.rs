//! What can go wrong between meshfleet and Vault, each case with the fix: sealed,
//! unreachable, a token without the capability (naming the path and the capability),
//! a missing or non-KV-v2 mount, a lost check-and-set.

use std::path::PathBuf;

/// Errors of reaching and using Vault. Each says what went wrong; its
/// [`Hint`](meshfleet_fleet::diagnostic::Hint) says how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VaultError {
    /// Neither `VAULT_ADDR` nor `spec.secrets.vault.server` is set.
    #[error("no Vault address: `VAULT_ADDR` is not set and the fleet has no `spec.secrets.vault.server`")]
    NoAddress,
    /// Neither `VAULT_TOKEN` nor `~/.vault-token` holds a token.
    #[error("no Vault token: `VAULT_TOKEN` is not set and `{}` does not exist or is empty", .file.display())]
    NoToken {
        /// The token file that was looked for.
        file: PathBuf,
    },
    /// The token holds characters that cannot go into an HTTP header.
    #[error("the Vault token from {source_name} is not a valid HTTP header value")]
    BadToken {
        /// Where the token came from (`VAULT_TOKEN` or the file).
        source_name: String,
    },
    /// `VAULT_CACERT` cannot be read or holds no certificate.
    #[error("cannot use `VAULT_CACERT` `{}`: {reason}", .path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client for Vault: {0}")]
    Client(String),
    /// No answer: connection refused, DNS, TLS or a timeout.
    #[error("Vault at `{address}` is unreachable: {reason}")]
    Unreachable {
        /// `VAULT_ADDR`.
        address: String,
        /// What failed.
        reason: String,
    },
    /// Vault answered that it is sealed.
    #[error("Vault at `{address}` is sealed")]
    Sealed {
        /// `VAULT_ADDR`.
        address: String,
    },
    /// 403: the token lacks a capability on a path (or is not valid at all).
    #[error("permission denied: the Vault token may not `{capability}` `{path}` ({detail})")]
    PermissionDenied {
        /// The API path, e.g. `secret/data/linkerd/credentials/a-to-b`.
        path: String,
        /// The capability the call needs.
        capability: Capability,
        /// Vault's message.
        detail: String,
    },
    /// The KV mount does not exist.
    #[error("Vault has no secrets engine mounted at `{mount}/`")]
    MountMissing {
        /// The fleet's `spec.secrets.vault.mount`.
        mount: String,
    },
    /// The mount exists but is not KV version 2.
    #[error("the Vault mount `{mount}/` is {found}, not KV version 2")]
    NotKvV2 {
        /// The mount.
        mount: String,
        /// What it is, e.g. `kv version 1` or `a \`pki\` engine`.
        found: String,
    },
    /// The check-and-set write lost against another writer.
    #[error("`{path}` changed while meshfleet was writing it (check-and-set failed)")]
    CasConflict {
        /// The API path.
        path: String,
    },
    /// Any other error answer.
    #[error("Vault answered {status} for `{path}`: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API path.
        path: String,
        /// Vault's `errors`, joined.
        message: String,
    },
}

impl VaultError {
    /// A stable id for `-o json`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoAddress => "vault-address-missing",
            Self::NoToken { .. } => "vault-token-missing",
            Self::BadToken { .. } => "vault-token-invalid",
            Self::CaCert { .. } => "vault-ca-cert",
            Self::Client(_) => "vault-client",
            Self::Unreachable { .. } => "vault-unreachable",
            Self::Sealed { .. } => "vault-sealed",
            Self::PermissionDenied { .. } => "vault-permission-denied",
            Self::MountMissing { .. } => "vault-mount-missing",
            Self::NotKvV2 { .. } => "vault-not-kv-v2",
            Self::CasConflict { .. } => "vault-cas-conflict",
            Self::Api { .. } => "vault-api",
        }
    }

    pub(crate) fn fix(&self) -> String {
        match self {
            Self::NoAddress => {
                "set `VAULT_ADDR` (e.g. `export VAULT_ADDR=https://vault.example:8200`) or `spec.secrets.vault.server` in the fleet".into()
            }
            Self::NoToken { .. } | Self::BadToken { .. } => {
                "log in with `vault login` (it writes `~/.vault-token`) or set `VAULT_TOKEN`".into()
            }
            Self::CaCert { .. } => "point `VAULT_CACERT` at a PEM file with the CA that signed Vault's certificate".into(),
            Self::Client(_) => "this is a bug in meshfleet's setup; run with `-vv` and report it".into(),
            Self::Unreachable { address, .. } => format!(
                "check `VAULT_ADDR` (`{address}`), the network and, for https, `VAULT_CACERT`; `curl {address}/v1/sys/health` should answer"
            ),
            Self::Sealed { .. } => "unseal it (`vault operator unseal`, or let its auto-unseal finish), then run again".into(),
            Self::PermissionDenied { path, capability, .. } => format!(
                "give the token a policy with `path \"{path}\" {{ capabilities = [\"create\", \"read\", \"update\"] }}` (it needs `{capability}`; check with `vault token capabilities {path}`), or log in as someone who has it"
            ),
            Self::MountMissing { mount } => format!(
                "enable it with `vault secrets enable -path={mount} kv-v2`, or set `spec.secrets.vault.mount` to an existing KV v2 mount"
            ),
            Self::NotKvV2 { mount, .. } => format!(
                "External Secrets reads the fleet's keys as KV v2: upgrade the mount with `vault kv enable-versioning {mount}`, or set `spec.secrets.vault.mount` to a KV v2 mount"
            ),
            Self::CasConflict { .. } => "someone wrote the same key at the same time; run `meshfleet secrets sync` again".into(),
            Self::Api { path, .. } => format!("see Vault's message; `vault read {path}` may tell more"),
        }
    }
}

impl meshfleet_fleet::diagnostic::Hint for VaultError {
    fn hint(&self) -> Option<String> {
        Some(self.fix())
    }
}

/// A Vault ACL capability a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read a key.
    Read,
    /// Write a key that does not exist yet.
    Create,
    /// Write a key that exists.
    Update,
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Create => "create",
            Self::Update => "update",
        })
    }
}
