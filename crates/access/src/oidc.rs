//! OpenID Connect bearer tokens: JWTs checked against the issuer's JWKS.
//!
//! A token is accepted only when its algorithm is on the allow-list (asymmetric
//! algorithms only: `none` does not parse, and HMAC is refused at configuration, so a
//! public key can never serve as an HMAC secret), its `kid` names a key of the JWKS
//! (fetched again, at most once per [`OidcConfig::refresh_interval`], when it names an
//! unknown one, so a rotated key is picked up), its signature verifies, `iss` and
//! `aud` are the configured ones, and `exp`/`nbf` hold within [`OidcConfig::leeway`].
//! Roles come from a configured claim (a dotted path such as `realm_access.roles`);
//! SMART scopes from `scope` (or `scp`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::{Actor, AuthMethod, Principal, Role, Scopes};

/// Where the issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS JSON file, read at start.
    File(PathBuf),
    /// An `http://` or `https://` URL, fetched at start and again for an unknown `kid`.
    Url(String),
}

/// The OpenID Connect settings.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The expected `iss`.
    pub issuer: String,
    /// The expected `aud` (Corridor's client id at the issuer).
    pub audience: String,
    /// The issuer's keys.
    pub jwks: JwksSource,
    /// PEM CA certificates for an `https://` JWKS URL; None uses the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// The algorithms accepted (asymmetric only). Default RS256, PS256, ES256.
    pub algorithms: Vec<Algorithm>,
    /// The claim holding role names, as a dotted path (default `roles`).
    pub roles_claim: String,
    /// Claim value to role. Empty: the values are Corridor role names.
    pub role_map: BTreeMap<String, Role>,
    /// Clock skew allowed on `exp` and `nbf` (default 60 s).
    pub leeway: Duration,
    /// The least time between two fetches of the JWKS URL (default 60 s).
    pub refresh_interval: Duration,
}

impl OidcConfig {
    /// Settings with the defaults for everything but issuer, audience and keys.
    pub fn new(issuer: &str, audience: &str, jwks: JwksSource) -> OidcConfig {
        OidcConfig {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks,
            ca_file: None,
            algorithms: vec![Algorithm::RS256, Algorithm::PS256, Algorithm::ES256],
            roles_claim: "roles".to_owned(),
            role_map: BTreeMap::new(),
            leeway: Duration::from_secs(60),
            refresh_interval: Duration::from_secs(60),
        }
    }
}

/// A problem with the OIDC settings or the JWKS, found at start or on a refresh.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// A symmetric algorithm was configured.
    #[error("algorithm {0:?} is not accepted: only RS*, PS*, ES* and EdDSA are")]
    SymmetricAlgorithm(Algorithm),
    /// No algorithm was configured.
    #[error("no algorithm is allowed")]
    NoAlgorithm,
    /// The JWKS file cannot be read.
    #[error("cannot read the JWKS {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The JWKS URL could not be fetched.
    #[error("cannot fetch the JWKS {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The JWKS is not a JWK Set.
    #[error("the JWKS from {from} is not a JWK Set: {reason}")]
    Parse {
        /// The file or URL.
        from: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a bearer JWT was refused. [`OidcRejected::NoRole`] is a 403; the others 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcRejected {
    /// Not a JWT, or its header or claims do not parse (`alg: none` among them).
    #[error("malformed token")]
    Malformed,
    /// The algorithm is not on the allow-list (HMAC among them).
    #[error("algorithm not accepted")]
    Algorithm,
    /// No key of the JWKS has its `kid`, even after fetching the JWKS again.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name Corridor.
    #[error("wrong audience")]
    Audience,
    /// Valid, but no claim value maps to a role.
    #[error("the token grants no Corridor role")]
    NoRole,
}

/// Who a valid OIDC token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `preferred_username`, else `sub`.
    pub name: String,
    /// The roles its claim maps to.
    pub roles: Vec<Role>,
    /// Its SMART scopes (with the `patient` claim as their patient context); None when
    /// its `scope` claim names no SMART resource scope, and only its roles limit it.
    pub scopes: Option<Scopes>,
    /// The `patient` claim (SMART launch context), if any.
    pub patient: Option<String>,
}

impl OidcIdentity {
    /// The [`Principal`] of a request carrying this token.
    pub fn into_principal(
        self,
        address: Option<SocketAddr>,
        tls_identity: Option<String>,
    ) -> Principal {
        Principal {
            actor: Actor::Oidc {
                issuer: self.issuer,
                subject: self.subject,
                name: self.name,
            },
            roles: self.roles,
            scopes: self.scopes,
            method: AuthMethod::Oidc,
            address,
            tls_identity,
        }
    }
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// Checks bearer JWTs; shared by every request (cheap to clone).
#[derive(Clone)]
pub struct OidcVerifier {
    config: Arc<OidcConfig>,
    keys: Arc<RwLock<Keys>>,
    verified: Arc<std::sync::Mutex<VerifiedJwts>>,
}

/// JWTs verified lately, by SHA-256, with when each stops being trusted.
type VerifiedJwts = HashMap<[u8; 32], (OidcIdentity, Instant)>;

/// How long a JWT verified once is trusted without checking its signature again (never
/// past its `exp` and the leeway). A JWT cannot be revoked, so this only bounds how long
/// a key removed from the JWKS keeps working for tokens seen before.
pub const OIDC_CACHE_LIFETIME: Duration = crate::cache::TOKEN_CACHE_LIFETIME;

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.config.issuer)
            .finish()
    }
}

fn is_asymmetric(algorithm: Algorithm) -> bool {
    !matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

impl OidcVerifier {
    /// Checks the settings and loads the keys (reads the file or fetches the URL).
    pub async fn new(config: OidcConfig) -> Result<OidcVerifier, OidcError> {
        if config.algorithms.is_empty() {
            return Err(OidcError::NoAlgorithm);
        }
        if let Some(symmetric) = config.algorithms.iter().find(|a| !is_asymmetric(**a)) {
            return Err(OidcError::SymmetricAlgorithm(*symmetric));
        }
        let set = load(&config).await?;
        Ok(OidcVerifier {
            config: Arc::new(config),
            keys: Arc::new(RwLock::new(Keys {
                set,
                fetched: Instant::now(),
            })),
            verified: Arc::default(),
        })
    }

    /// Checks a bearer token and says who it speaks for. A token verified within
    /// [`OIDC_CACHE_LIFETIME`] (and not past its `exp`) is answered from memory, keyed by
    /// its SHA-256: the signature check and the claims' parse are done once.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, OidcRejected> {
        let hash = crate::secret::sha256(token.as_bytes());
        let now = Instant::now();
        {
            let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            match verified.get(&hash) {
                Some((identity, until)) if now < *until => return Ok(identity.clone()),
                Some(_) => {
                    verified.remove(&hash);
                }
                None => {}
            }
        }
        let (identity, exp) = self.verify_uncached(token).await?;
        let left = exp
            .saturating_add(i64::try_from(self.config.leeway.as_secs()).unwrap_or(0))
            .saturating_sub(store::UnixMicros::now().0 / 1_000_000);
        let lifetime = OIDC_CACHE_LIFETIME.min(Duration::from_secs(left.max(0).unsigned_abs()));
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= crate::cache::TOKEN_CACHE_CAPACITY {
            verified.retain(|_, (_, until)| now < *until);
            if verified.len() >= crate::cache::TOKEN_CACHE_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(hash, (identity.clone(), now + lifetime));
        Ok(identity)
    }

    /// The full check; with the token's `exp` (seconds since the Unix epoch).
    async fn verify_uncached(&self, token: &str) -> Result<(OidcIdentity, i64), OidcRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| OidcRejected::Malformed)?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(OidcRejected::Algorithm);
        }
        let jwk = match self.find_key(header.kid.as_deref()).await {
            Some(jwk) => jwk,
            None => {
                self.refresh().await;
                self.find_key(header.kid.as_deref())
                    .await
                    .ok_or(OidcRejected::UnknownKey)?
            }
        };
        // A key that names its algorithm is used with that algorithm only.
        if let Some(key_alg) = jwk.common.key_algorithm {
            if key_alg.to_string() != format!("{:?}", header.alg) {
                return Err(OidcRejected::Algorithm);
            }
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| OidcRejected::UnknownKey)?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => OidcRejected::Expired,
                ErrorKind::ImmatureSignature => OidcRejected::NotYetValid,
                ErrorKind::InvalidIssuer => OidcRejected::Issuer,
                ErrorKind::InvalidAudience => OidcRejected::Audience,
                ErrorKind::InvalidSignature => OidcRejected::Signature,
                ErrorKind::InvalidAlgorithm => OidcRejected::Algorithm,
                _ => OidcRejected::Malformed,
            }
        })?;
        let exp = data
            .claims
            .get("exp")
            .and_then(|exp| exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64)))
            .ok_or(OidcRejected::Malformed)?;
        Ok((self.identity(&data.claims)?, exp))
    }

    fn identity(&self, claims: &Value) -> Result<OidcIdentity, OidcRejected> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let subject = text("sub").ok_or(OidcRejected::Malformed)?;
        let mut roles: Vec<Role> = claim_values(claims, &self.config.roles_claim)
            .iter()
            .filter_map(|value| {
                if self.config.role_map.is_empty() {
                    value.parse().ok()
                } else {
                    self.config.role_map.get(value).copied()
                }
            })
            .collect();
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(OidcRejected::NoRole);
        }
        let scope = match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(scope)), _) => scope.clone(),
            (_, Some(Value::Array(scp))) => scp
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        Ok(OidcIdentity {
            issuer: text("iss").unwrap_or_default(),
            name: text("preferred_username").unwrap_or_else(|| subject.clone()),
            subject,
            roles,
            scopes: Scopes::limiting(&scope)
                .map(|scopes| scopes.with_patient(text("patient").as_deref())),
            patient: text("patient"),
        })
    }

    async fn find_key(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read().await;
        match kid {
            Some(kid) => keys.set.find(kid).cloned(),
            // Without a kid, only a set of one key is unambiguous.
            None if keys.set.keys.len() == 1 => keys.set.keys.first().cloned(),
            None => None,
        }
    }

    /// Fetches the JWKS again, unless it was fetched within the refresh interval (so
    /// tokens naming made-up keys cannot make Corridor hammer the issuer).
    async fn refresh(&self) {
        if matches!(self.config.jwks, JwksSource::File(_)) {
            return;
        }
        let mut keys = self.keys.write().await;
        if keys.fetched.elapsed() < self.config.refresh_interval {
            return;
        }
        keys.fetched = Instant::now();
        match load(&self.config).await {
            Ok(set) => keys.set = set,
            Err(error) => {
                tracing::warn!(%error, "refreshing the OIDC keys failed; keeping the old ones")
            }
        }
    }
}

/// The strings at a dotted path of the claims: one string, or an array of them.
fn claim_values(claims: &Value, path: &str) -> Vec<String> {
    let mut value = claims;
    for part in path.split('.') {
        match value.get(part) {
            Some(inner) => value = inner,
            None => return Vec::new(),
        }
    }
    match value {
        Value::String(one) => one.split_ascii_whitespace().map(str::to_owned).collect(),
        Value::Array(many) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

async fn load(config: &OidcConfig) -> Result<JwkSet, OidcError> {
    let (from, bytes) = match &config.jwks {
        JwksSource::File(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|source| OidcError::File {
                    path: path.clone(),
                    source,
                })?;
            (path.display().to_string(), Bytes::from(bytes))
        }
        JwksSource::Url(url) => {
            let fail = |reason: String| OidcError::Fetch {
                url: url.clone(),
                reason,
            };
            let fetched =
                tokio::time::timeout(FETCH_TIMEOUT, fetch(url, config.ca_file.as_deref()))
                    .await
                    .map_err(|_| fail(format!("no answer within {FETCH_TIMEOUT:?}")))?
                    .map_err(fail)?;
            (url.clone(), fetched)
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| OidcError::Parse {
        from,
        reason: e.to_string(),
    })
}

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_JWKS_BYTES: usize = 1 << 20;

/// System CA bundles, as distributions place them.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// GETs `url` over HTTP/1.1 (TLS for `https`) and returns the body of a 200 answer.
async fn fetch(url: &str, ca_file: Option<&Path>) -> Result<Bytes, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must start with http:// or https://".into()),
    };
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let response = if https {
        let connector = tokio_rustls::TlsConnector::from(tls_config(ca_file)?);
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| format!("bad host name: {e}"))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        send(TokioIo::new(tls), request).await?
    } else {
        send(TokioIo::new(tcp), request).await?
    };
    Ok(response)
}

async fn send<T>(io: T, request: http::Request<Empty<Bytes>>) -> Result<Bytes, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if response.status() != http::StatusCode::OK {
        return Err(format!("answered {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?;
    Ok(body.to_bytes())
}

fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let path = match ca_file {
        Some(path) => path.to_owned(),
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("no CA bundle found: set the OIDC CA file")?,
    };
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // A bundle may hold certificates rustls cannot use; the others still count.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!("{} holds no usable certificate", path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
