//! Why a Kubernetes client failed, classified once, in words that never quote a secret.
//!
//! Every live command talks to API servers through kube's client, and all of them ask
//! the same questions of a failure: did the server answer (and with which status), was
//! it TLS, a timeout, or could the kubeconfig's credentials not be used at all? This
//! module answers them for every caller ([`KubeFailure::from_kube`]).
//!
//! It also decides what of kube's error may be shown. kube's messages are made for
//! developers and quote what they read: a kubeconfig parse error prints the lines around
//! the mistake (a `token:` among them), an exec plugin failure prints the plugin's whole
//! output, a base64 error names a byte of `client-key-data`. So the text here is rebuilt
//! from the error variants, never copied from a message that may hold input; network
//! errors (connection refused, certificate unknown), which never do, are kept whole.

use std::error::Error as _;
use std::time::Duration;

use kube::client::AuthError;
use kube::config::{KubeconfigError, LoadDataError};

use meshfleet_fleet::sensitive::{YamlError, url_without_credentials};

/// What went wrong between meshfleet and an API server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeFailure {
    /// The server answered with an error status other than 401.
    #[error("the API server answered {code}{}: {message}", if reason.is_empty() { String::new() } else { format!(" {reason}") })]
    Refused {
        /// HTTP status.
        code: u16,
        /// The status reason (`Forbidden`, `NotFound`), when given.
        reason: String,
        /// The server's message.
        message: String,
    },
    /// 401: the server does not accept the credentials.
    #[error("the API server does not accept the credentials (401 Unauthorized)")]
    Unauthorized,
    /// The TLS handshake failed (unknown CA, wrong name, expired certificate).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// No answer within the time given.
    #[error("no answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// No connection (refused, DNS, reset).
    #[error("{0}")]
    Unreachable(String),
    /// The kubeconfig's credentials could not be used (exec plugin, token file, client
    /// key, malformed fields). The text names the field or plugin, never its value.
    #[error("{0}")]
    Credentials(String),
    /// The server answered, but not with what was asked for.
    #[error("the answer cannot be read: {0}")]
    BadAnswer(String),
}

impl meshfleet_fleet::diagnostic::Hint for KubeFailure {
    fn hint(&self) -> Option<String> {
        // The fix depends on what meshfleet asked of which cluster: the caller's to give.
        None
    }
}

impl KubeFailure {
    /// Classify a kube client error.
    pub fn from_kube(error: &kube::Error) -> Self {
        match error {
            kube::Error::Api(status) if status.code == 401 => Self::Unauthorized,
            kube::Error::Api(status) => Self::Refused {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            kube::Error::Auth(auth) => Self::Credentials(auth_problem(auth)),
            kube::Error::InferKubeconfig(config) => Self::Credentials(kubeconfig_problem(config).to_string()),
            kube::Error::RustlsTls(tls) => Self::Credentials(tls_setup_problem(tls)),
            kube::Error::SerdeError(json) => Self::BadAnswer(format!(
                "not the JSON expected (line {}, column {})",
                json.line(),
                json.column()
            )),
            kube::Error::FromUtf8(_) => Self::BadAnswer("not UTF-8".into()),
            kube::Error::ProxyProtocolUnsupported { .. } | kube::Error::ProxyProtocolDisabled { .. } => {
                Self::Unreachable("the kubeconfig's `proxy-url` uses a protocol meshfleet cannot use".into())
            }
            other => transport(other),
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            Self::Unauthorized => Some(401),
            _ => None,
        }
    }

    /// Whether the server answered "not found".
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Whether the server answered at all (a refusal, as opposed to no connection).
    pub fn answered(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. } | Self::Unauthorized | Self::BadAnswer(_)
        )
    }
}

/// A transport error: its causes, `: `-separated. kube's top-level text ("ServiceError:
/// client error (Connect)") does not say what failed; the causes do ("connection
/// refused", "invalid peer certificate: UnknownIssuer"). An auth error met on the way
/// (an exec plugin run for this request) is rebuilt instead of shown.
fn transport(error: &kube::Error) -> KubeFailure {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = cause {
        if let Some(auth) = current.downcast_ref::<AuthError>() {
            return KubeFailure::Credentials(auth_problem(auth));
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return KubeFailure::Unreachable(format!("timed out: {io}"));
        }
        let text = current.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = current.source();
    }
    if parts.is_empty() {
        parts.push(strip_kube_prefix(&error.to_string()));
    }
    let text = parts.join(": ");
    let lower = text.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("unknownissuer") {
        KubeFailure::Tls(text)
    } else if lower.contains("elapsed") || lower.contains("timed out") {
        KubeFailure::Unreachable(format!("timed out ({text})"))
    } else {
        KubeFailure::Unreachable(text)
    }
}

/// kube's top-level messages start with the variant's name (`HyperError: `).
fn strip_kube_prefix(text: &str) -> String {
    match text.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => rest.to_string(),
        _ => text.to_string(),
    }
}

/// What is wrong with the kubeconfig's credentials, naming the field or the plugin.
pub fn auth_problem(error: &AuthError) -> String {
    match error {
        AuthError::InvalidBasicAuth(_) => {
            "the kubeconfig's `username`/`password` cannot be sent as an HTTP header".into()
        }
        AuthError::InvalidBearerToken(_) => {
            "the kubeconfig's token cannot be sent as an HTTP header (a line break or control character in it?)"
                .into()
        }
        AuthError::AuthExecStart(io) => format!("cannot start the kubeconfig's credential plugin: {io}"),
        // Neither the command line (kube's text of it holds the arguments and the
        // environment) nor the output: either may hold credentials.
        AuthError::AuthExecRun { out, .. } => format!(
            "the kubeconfig's credential plugin failed ({}); its output is not shown, it may hold credentials",
            out.status
        ),
        AuthError::AuthExecParse(yaml) => format!(
            "the output of the kubeconfig's credential plugin cannot be read: {}",
            YamlError::from_saphyr(yaml)
        ),
        AuthError::ReadTokenFile(io, path) => {
            format!("cannot read the token file `{}`: {io}", path.display())
        }
        AuthError::MissingCommand => "the kubeconfig's `exec` has no `command`".into(),
        AuthError::ExecMissingClusterInfo => {
            "the kubeconfig's `exec` sets `provideClusterInfo` but its cluster has no details".into()
        }
        AuthError::UnrefreshableTokenResponse | AuthError::ExecPluginFailed | AuthError::AuthExec(_) => {
            "the kubeconfig's credential plugin did not return usable credentials".into()
        }
        AuthError::MalformedTokenExpirationDate(_) => {
            "the credential plugin's token has an expiry that is not a date".into()
        }
        _ => "the kubeconfig's credentials cannot be used".into(),
    }
}

/// What is wrong with a kubeconfig (or the context chosen from it): where and what
/// kind, naming fields and files, never a value.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigProblem {
    /// The YAML does not parse, or not into a kubeconfig.
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// The file (or one it names) cannot be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A field that cannot be used, by name.
    #[error("{0}")]
    Field(String),
}

impl meshfleet_fleet::diagnostic::Hint for KubeconfigProblem {
    fn hint(&self) -> Option<String> {
        // `ClusterError`, which names the file or context, carries the fix.
        None
    }
}

/// What is wrong with a kubeconfig (or the context chosen from it).
pub fn kubeconfig_problem(error: &KubeconfigError) -> KubeconfigProblem {
    let data = |field: &str, error: &LoadDataError| match error {
        LoadDataError::DecodeBase64(_) => {
            KubeconfigProblem::Field(format!("`{field}-data` is not valid base64"))
        }
        LoadDataError::ReadFile(io, path) => {
            KubeconfigProblem::Field(format!("cannot read `{field}` `{}`: {io}", path.display()))
        }
        LoadDataError::NoBase64DataOrFile => {
            KubeconfigProblem::Field(format!("neither `{field}` nor `{field}-data` is set"))
        }
    };
    let field = |text: &str| KubeconfigProblem::Field(text.to_string());
    match error {
        KubeconfigError::Parse(yaml) => YamlError::from_saphyr(yaml).into(),
        // The callers name the file already.
        KubeconfigError::ReadConfig(io, _) => std::io::Error::new(io.kind(), io.to_string()).into(),
        KubeconfigError::LoadCertificateAuthority(e) => data("certificate-authority", e),
        KubeconfigError::LoadClientCertificate(e) => data("client-certificate", e),
        KubeconfigError::LoadClientKey(e) => data("client-key", e),
        KubeconfigError::ParseCertificates(_) => {
            field("`certificate-authority-data` is not a PEM certificate")
        }
        KubeconfigError::ParseClusterUrl(_) => field("the cluster's `server` is not a URL"),
        KubeconfigError::ParseProxyUrl(_) => field("the cluster's `proxy-url` is not a URL"),
        // The rest name contexts and clusters, or nothing from the file.
        other => KubeconfigProblem::Field(other.to_string()),
    }
}

/// What is wrong with the TLS setup a kubeconfig asks for.
fn tls_setup_problem(error: &kube::client::RustlsTlsError) -> String {
    use kube::client::RustlsTlsError as E;
    match error {
        E::InvalidIdentityPem(_) => "the client certificate or key of the kubeconfig is not valid PEM".into(),
        E::InvalidPrivateKey(_) | E::UnknownPrivateKeyFormat => {
            "the client key of the kubeconfig is not a key meshfleet can use".into()
        }
        other => other.to_string(),
    }
}

/// Where the server is, for messages: the URL without any credentials in it.
pub fn server_for_display(url: &str) -> String {
    url_without_credentials(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENTINEL: &str = "sentinel-c2VjcmV0";

    #[test]
    fn a_kubeconfig_parse_error_keeps_the_place_not_the_text() {
        let text = format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: {SENTINEL}\n  bad: [\n"
        );
        let error = kube::config::Kubeconfig::from_yaml(&text).unwrap_err();
        assert!(
            error.to_string().contains(SENTINEL),
            "kube quotes the source: {error}"
        );
        let shown = kubeconfig_problem(&error).to_string();
        assert!(!shown.contains(SENTINEL), "{shown}");
        assert!(shown.contains("line "), "{shown}");
    }

    #[tokio::test]
    async fn a_bad_client_key_does_not_name_its_bytes() {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: 'https://c.example:6443'}}\n\
             users:\n- name: u\n  user: {{client-certificate-data: 'LS0t', client-key-data: '{SENTINEL}!'}}\n\
             contexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n"
        );
        let config = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
                .await
                .unwrap();
        let Err(error) = kube::Client::try_from(config) else {
            panic!("a client key that is not base64 is refused");
        };
        assert!(
            error.to_string().contains("symbol 45"),
            "kube names the byte: {error}"
        );
        let shown = KubeFailure::from_kube(&error).to_string();
        assert!(!shown.contains(SENTINEL) && !shown.contains("45"), "{shown}");
        assert!(shown.contains("-data` is not valid base64"), "{shown}");
    }

    #[test]
    fn statuses_are_classified() {
        let status = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                reason: "Forbidden".into(),
                message: "no".into(),
                ..kube::core::Status::default()
            }))
        };
        assert_eq!(KubeFailure::from_kube(&status(401)), KubeFailure::Unauthorized);
        let refused = KubeFailure::from_kube(&status(403));
        assert_eq!(refused.status(), Some(403));
        assert!(refused.answered());
        assert_eq!(refused.to_string(), "the API server answered 403 Forbidden: no");
    }
}
