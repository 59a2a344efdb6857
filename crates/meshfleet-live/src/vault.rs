//! A small Vault KV v2 client: exactly what `secrets sync` needs, with errors that say
//! what to fix.
//!
//! Why our own and not `vaultrs` (`reference/rust-stack.md` §1.7): KV v2 is a handful
//! of endpoints, and owning them gives typed errors that carry Vault's own messages,
//! check-and-set writes, explicit timeouts, and a token that leaves its
//! [`SecretString`] only for the one request header that needs it (marked sensitive,
//! so HTTP logging does not show it either).
//!
//! Access follows Vault's conventions, so the shell that runs `vault kv get` runs
//! meshfleet too: `VAULT_ADDR` (else the fleet's `spec.secrets.vault.server`),
//! `VAULT_TOKEN` (else `~/.vault-token`), `VAULT_NAMESPACE` and `VAULT_CACERT`.
//!
//! Endpoints, and why each:
//! - `GET sys/seal-status` (needs no token): tells "sealed" apart from other failures;
//! - `GET sys/internal/ui/mounts/<mount>/<key>` (what `vault kv` itself asks first): the
//!   mount must be KV v2, because a write to `<mount>/data/<key>` on a KV v1 mount
//!   would silently store a v1 secret named `data/<key>`;
//! - `POST sys/capabilities-self`: whether the token may write, asked before a write
//!   and before a rotation that could not be undone;
//! - `GET` and `POST <mount>/data/<key>`, the write with `options.cas` set to the
//!   version that was read, so that a concurrent writer is never overwritten;
//! - `GET <mount>/metadata/<key>` and `POST <mount>/destroy/<key>`: the versions a key
//!   keeps, and destroying named ones for good (a finished trust anchor rotation must
//!   not leave the retired anchor's private key one `kv get -version=N` away).

mod error;

use crate::error_chain;
use std::collections::BTreeMap;
use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use zeroize::Zeroize as _;

pub use self::error::{Capability, VaultError};

/// How long to wait for Vault to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Where and how to reach Vault, resolved from the environment and the fleet.
#[derive(Clone)]
pub struct VaultSettings {
    /// The address, without a trailing `/`.
    pub address: String,
    token: SecretString,
    /// Where the token came from: `VAULT_TOKEN` or the token file.
    pub token_source: String,
    /// `VAULT_NAMESPACE` (Vault Enterprise / OpenBao namespaces).
    pub namespace: Option<String>,
    /// `VAULT_CACERT`: an extra root CA, PEM.
    pub ca_cert: Option<PathBuf>,
}

impl std::fmt::Debug for VaultSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSettings")
            .field("address", &self.address)
            .field("token", &"<redacted>")
            .field("token_source", &self.token_source)
            .field("namespace", &self.namespace)
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

impl VaultSettings {
    /// Resolve from the process environment and `$HOME/.vault-token`.
    pub fn from_env(fleet_server: &str) -> Result<Self, VaultError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::resolve(|name| std::env::var(name).ok(), home.as_deref(), fleet_server)
    }

    /// Resolve with `lookup` for environment variables and `home` for the token file.
    pub fn resolve(
        lookup: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
        fleet_server: &str,
    ) -> Result<Self, VaultError> {
        let set = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let address = set("VAULT_ADDR")
            .or_else(|| Some(fleet_server.trim().to_string()).filter(|s| !s.is_empty()))
            .ok_or(VaultError::NoAddress)?
            .trim_end_matches('/')
            .to_string();
        let (mut raw, token_source) =
            if let Some(raw) = lookup("VAULT_TOKEN").filter(|t| !t.trim().is_empty()) {
                (raw, "`VAULT_TOKEN`".to_string())
            } else {
                let file = home.unwrap_or_else(|| Path::new("~")).join(".vault-token");
                let raw = std::fs::read_to_string(&file).unwrap_or_default();
                if raw.trim().is_empty() {
                    return Err(VaultError::NoToken { file });
                }
                (raw, format!("`{}`", file.display()))
            };
        let token = SecretString::from(raw.trim().to_string());
        raw.zeroize();
        Ok(Self {
            address,
            token,
            token_source,
            namespace: set("VAULT_NAMESPACE"),
            ca_cert: set("VAULT_CACERT").map(PathBuf::from),
        })
    }
}

/// A KV v2 secret as read: its version and its values.
pub struct KvSecret {
    /// The version read.
    pub version: u64,
    /// The values; strings as written, anything else as its JSON text.
    pub data: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for KvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSecret")
            .field("version", &self.version)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What a key holds now: its live value, if any, and the version a check-and-set
/// write must name (that of the latest version, even a deleted one; 0 for a new key).
#[derive(Debug)]
pub struct KvState {
    /// The live value, `None` when the key is new or its latest version is deleted.
    pub current: Option<KvSecret>,
    /// The `cas` a write must send.
    pub cas: u64,
}

/// One version of a key, as its metadata lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvVersion {
    /// The version number.
    pub version: u64,
    /// Destroyed for good: its data is gone.
    pub destroyed: bool,
    /// Deleted (soft): unreadable until `kv undelete`, its data still kept.
    pub deleted: bool,
}

/// A client for one KV v2 mount.
pub struct KvClient {
    http: reqwest::Client,
    address: String,
    token: SecretString,
    token_source: String,
    namespace: Option<String>,
    mount: String,
}

impl std::fmt::Debug for KvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvClient")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

/// The body of a check-and-set write; borrows the values so they are not copied into
/// an intermediate JSON tree.
#[derive(serde::Serialize)]
struct WriteBody<'a> {
    options: CasOption,
    data: BTreeMap<&'a str, &'a str>,
}

#[derive(serde::Serialize)]
struct CasOption {
    cas: u64,
}

impl KvClient {
    /// A client for the KV v2 mount `mount` (no leading or trailing `/`).
    pub fn new(settings: &VaultSettings, mount: &str) -> Result<Self, VaultError> {
        let origin = reqwest::Url::parse(&settings.address).ok();
        // Follow a standby's redirect only to the same host: the token header goes along.
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let same = origin.as_ref().is_some_and(|o| {
                o.host_str() == attempt.url().host_str()
                    && o.port_or_known_default() == attempt.url().port_or_known_default()
            });
            if same && attempt.previous().len() < 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(redirects);
        if let Some(path) = &settings.ca_cert {
            let ca_error = |reason: String| VaultError::CaCert {
                path: path.clone(),
                reason,
            };
            let pem = fs_err::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("it holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        Ok(Self {
            http: builder.build().map_err(|e| VaultError::Client(e.to_string()))?,
            address: settings.address.clone(),
            token: settings.token.clone(),
            token_source: settings.token_source.clone(),
            namespace: settings.namespace.clone(),
            mount: mount.trim_matches('/').to_string(),
        })
    }

    /// The Vault address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The mount.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The API path of a key's data: `<mount>/data/<key>`.
    pub fn data_path(&self, key: &str) -> String {
        format!("{}/data/{}", self.mount, key.trim_matches('/'))
    }

    /// Check that Vault is unsealed and that the mount holding `key` is KV v2.
    pub async fn check_ready(&self, key: &str) -> Result<(), VaultError> {
        let (_, status) = self.send(Method::GET, "sys/seal-status", None::<&()>).await?;
        if status.get("sealed").and_then(Value::as_bool) == Some(true) {
            return Err(self.sealed());
        }
        let probe = format!("sys/internal/ui/mounts/{}/{}", self.mount, key.trim_matches('/'));
        let (code, body) = self.send(Method::GET, &probe, None::<&()>).await?;
        if code == StatusCode::OK {
            let data = &body["data"];
            let path = data["path"].as_str().unwrap_or_default().trim_end_matches('/');
            let kind = data["type"].as_str().unwrap_or_default();
            let version = data["options"]["version"].as_str().unwrap_or("1");
            return if path != self.mount {
                Err(VaultError::MountMissing {
                    mount: self.mount.clone(),
                })
            } else if kind != "kv" {
                Err(VaultError::NotKvV2 {
                    mount: self.mount.clone(),
                    found: format!("a `{kind}` engine"),
                })
            } else if version != "2" {
                Err(VaultError::NotKvV2 {
                    mount: self.mount.clone(),
                    found: format!("KV version {version}"),
                })
            } else {
                Ok(())
            };
        }
        if !matches!(code.as_u16(), 400 | 403 | 404) {
            self.check_status(code, &body, &probe, Capability::Read)?;
        }
        // The preflight answers 403 both for a missing mount and for a token without any
        // access to it; reading the key itself tells them apart.
        let path = self.data_path(key);
        let (code, body) = self.send(Method::GET, &path, None::<&()>).await?;
        if no_route(&body) {
            return Err(VaultError::MountMissing {
                mount: self.mount.clone(),
            });
        }
        if code == StatusCode::NOT_FOUND {
            return Ok(());
        }
        self.check_status(code, &body, &path, Capability::Read)
    }

    /// Read a key.
    pub async fn read(&self, key: &str) -> Result<KvState, VaultError> {
        let path = self.data_path(key);
        let (code, mut body) = self.send(Method::GET, &path, None::<&()>).await?;
        if code == StatusCode::NOT_FOUND {
            if no_route(&body) {
                return Err(VaultError::MountMissing {
                    mount: self.mount.clone(),
                });
            }
            let cas = match body.pointer("/data/metadata/version").and_then(Value::as_u64) {
                Some(version) => version,
                None => self.current_version(key).await,
            };
            return Ok(KvState { current: None, cas });
        }
        self.check_status(code, &body, &path, Capability::Read)?;
        let version = body
            .pointer("/data/metadata/version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let data = take_data(&mut body);
        Ok(KvState {
            current: Some(KvSecret { version, data }),
            cas: version,
        })
    }

    /// Read one version of a key; `None` when that version is deleted or destroyed.
    pub async fn read_version(&self, key: &str, version: u64) -> Result<Option<KvSecret>, VaultError> {
        let path = format!("{}?version={version}", self.data_path(key));
        let (code, mut body) = self.send(Method::GET, &path, None::<&()>).await?;
        if code == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.check_status(code, &body, &path, Capability::Read)?;
        Ok(Some(KvSecret {
            version,
            data: take_data(&mut body),
        }))
    }

    /// Every version a key keeps, oldest first, and its current version; `None` when
    /// the key does not exist.
    pub async fn versions(&self, key: &str) -> Result<Option<(u64, Vec<KvVersion>)>, VaultError> {
        let path = format!("{}/metadata/{}", self.mount, key.trim_matches('/'));
        let (code, body) = self.send(Method::GET, &path, None::<&()>).await?;
        if code == StatusCode::NOT_FOUND {
            if no_route(&body) {
                return Err(VaultError::MountMissing {
                    mount: self.mount.clone(),
                });
            }
            return Ok(None);
        }
        self.check_status(code, &body, &path, Capability::Read)?;
        let current = body
            .pointer("/data/current_version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let mut versions: Vec<KvVersion> = body
            .pointer("/data/versions")
            .and_then(Value::as_object)
            .map(|all| {
                all.iter()
                    .filter_map(|(number, meta)| {
                        Some(KvVersion {
                            version: number.parse().ok()?,
                            destroyed: meta["destroyed"].as_bool() == Some(true),
                            deleted: meta["deletion_time"].as_str().is_some_and(|t| !t.is_empty()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.sort_by_key(|v| v.version);
        Ok(Some((current, versions)))
    }

    /// Destroy `versions` of `key` for good (their data is removed; the metadata stays).
    /// Destroying a version that is already destroyed is not an error.
    pub async fn destroy(&self, key: &str, versions: &[u64]) -> Result<(), VaultError> {
        let path = format!("{}/destroy/{}", self.mount, key.trim_matches('/'));
        let body = serde_json::json!({ "versions": versions });
        let (code, answer) = self.send(Method::POST, &path, Some(&body)).await?;
        self.check_status(code, &answer, &path, Capability::Update)
    }

    /// `current_version` from the key's metadata, 0 when it cannot be read.
    async fn current_version(&self, key: &str) -> u64 {
        let path = format!("{}/metadata/{}", self.mount, key.trim_matches('/'));
        match self.send(Method::GET, &path, None::<&()>).await {
            Ok((StatusCode::OK, body)) => body
                .pointer("/data/current_version")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Whether the token may write `key` (`create` for a new key, `update` for an
    /// existing one). When Vault does not say (`sys/capabilities-self` refused), the
    /// write itself will tell.
    pub async fn check_write(&self, key: &str, capability: Capability) -> Result<(), VaultError> {
        let path = self.data_path(key);
        let body = serde_json::json!({ "paths": [path] });
        let (code, answer) = self
            .send(Method::POST, "sys/capabilities-self", Some(&body))
            .await?;
        if code == StatusCode::SERVICE_UNAVAILABLE {
            return Err(self.sealed());
        }
        let Some(granted) = answer
            .pointer("/data")
            .and_then(|d| d.get(&path))
            .and_then(Value::as_array)
        else {
            return Ok(());
        };
        let has = |c: &str| granted.iter().any(|g| g.as_str() == Some(c));
        if has("deny") || !(has("root") || has(&capability.to_string())) {
            let granted: Vec<&str> = granted.iter().filter_map(Value::as_str).collect();
            return Err(VaultError::PermissionDenied {
                path,
                capability,
                detail: format!(
                    "it has {}",
                    if granted.is_empty() {
                        "none".into()
                    } else {
                        granted.join(", ")
                    }
                ),
            });
        }
        Ok(())
    }

    /// Write `data` as the new version of `key`, only if the key is still at version
    /// `cas`. Returns the new version.
    pub async fn write(
        &self,
        key: &str,
        data: &BTreeMap<String, SecretString>,
        cas: u64,
    ) -> Result<u64, VaultError> {
        let path = self.data_path(key);
        let body = WriteBody {
            options: CasOption { cas },
            data: data
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose_secret()))
                .collect(),
        };
        let (code, answer) = self.send(Method::POST, &path, Some(&body)).await?;
        if code == StatusCode::BAD_REQUEST && vault_message(&answer).contains("check-and-set") {
            return Err(VaultError::CasConflict { path });
        }
        let capability = if cas == 0 {
            Capability::Create
        } else {
            Capability::Update
        };
        self.check_status(code, &answer, &path, capability)?;
        answer
            .pointer("/data/version")
            .and_then(Value::as_u64)
            .ok_or_else(|| VaultError::Api {
                status: code.as_u16(),
                path,
                message: "the answer has no `data.version`".into(),
            })
    }

    fn sealed(&self) -> VaultError {
        VaultError::Sealed {
            address: self.address.clone(),
        }
    }

    /// Map an error status to its error; pass 2xx through.
    fn check_status(
        &self,
        code: StatusCode,
        body: &Value,
        path: &str,
        capability: Capability,
    ) -> Result<(), VaultError> {
        let message = vault_message(body);
        match code.as_u16() {
            200..=299 => Ok(()),
            403 => Err(VaultError::PermissionDenied {
                path: path.to_string(),
                capability,
                detail: format!("{}; token from {}", message.trim(), self.token_source),
            }),
            503 if message.contains("sealed") => Err(self.sealed()),
            status => Err(VaultError::Api {
                status,
                path: path.to_string(),
                message,
            }),
        }
    }

    /// One request; the answer's JSON (or `null`). Only the token header is secret.
    async fn send<B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Value), VaultError> {
        let mut token =
            HeaderValue::from_str(self.token.expose_secret()).map_err(|_| VaultError::BadToken {
                source_name: self.token_source.clone(),
            })?;
        token.set_sensitive(true);
        tracing::debug!(%method, path, "vault request");
        let mut request = self
            .http
            .request(method, format!("{}/v1/{}", self.address, path))
            .header("X-Vault-Token", token);
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| VaultError::Unreachable {
            address: self.address.clone(),
            reason: if e.is_timeout() {
                format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
            } else {
                // The request's own text repeats the URL; its causes say what failed.
                e.source().map_or_else(|| e.to_string(), error_chain)
            },
        };
        let response = request.send().await.map_err(unreachable)?;
        let code = response.status();
        let mut text = response.text().await.map_err(unreachable)?;
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        // The answer of a read holds the values; they live on only in `SecretString`s.
        text.zeroize();
        tracing::debug!(status = code.as_u16(), path, "vault answer");
        Ok((code, value))
    }
}

/// Vault's `errors` array, joined.
fn vault_message(body: &Value) -> String {
    let errors: Vec<String> = body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        "no message".into()
    } else {
        errors.join("; ")
    }
}

/// Whether Vault said there is no mount for the path.
fn no_route(body: &Value) -> bool {
    vault_message(body).contains("no handler for route")
}

/// The values of a KV v2 read, taken out of the response body: strings as written,
/// anything else as its JSON text.
fn take_data(body: &mut Value) -> BTreeMap<String, SecretString> {
    let mut data = BTreeMap::new();
    if let Some(Value::Object(values)) = body.pointer_mut("/data/data") {
        for (name, value) in std::mem::take(values) {
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(name, SecretString::from(text));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn settings_follow_vault_conventions() {
        let home = tempfile::tempdir().unwrap();
        let from_env = VaultSettings::resolve(
            env(&[
                ("VAULT_ADDR", "http://127.0.0.1:8200/"),
                ("VAULT_TOKEN", " s.abc \n"),
                ("VAULT_NAMESPACE", "team"),
            ]),
            Some(home.path()),
            "https://fleet.example:8200",
        )
        .unwrap();
        assert_eq!(from_env.address, "http://127.0.0.1:8200");
        assert_eq!(from_env.token.expose_secret(), "s.abc");
        assert_eq!(from_env.namespace.as_deref(), Some("team"));
        assert!(!format!("{from_env:?}").contains("s.abc"));

        let missing = VaultSettings::resolve(env(&[]), Some(home.path()), "https://fleet.example:8200");
        assert!(matches!(missing, Err(VaultError::NoToken { .. })));
        std::fs::write(home.path().join(".vault-token"), "s.file\n").unwrap();
        let from_file =
            VaultSettings::resolve(env(&[]), Some(home.path()), "https://fleet.example:8200").unwrap();
        assert_eq!(from_file.address, "https://fleet.example:8200");
        assert_eq!(from_file.token.expose_secret(), "s.file");
        assert!(matches!(
            VaultSettings::resolve(env(&[]), Some(home.path()), ""),
            Err(VaultError::NoAddress)
        ));
    }

    #[test]
    fn unreadable_ca_cert_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        for path in [junk, dir.path().join("missing.pem")] {
            let settings = VaultSettings::resolve(
                env(&[("VAULT_TOKEN", "t"), ("VAULT_CACERT", path.to_str().unwrap())]),
                None,
                "https://vault.example",
            )
            .unwrap();
            let error = KvClient::new(&settings, "secret").unwrap_err();
            assert_eq!(error.code(), "vault-ca-cert", "{error}");
        }
    }
}
