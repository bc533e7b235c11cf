//! OpenID Connect bearer tokens: keys generated here, the JWKS served over a real local
//! HTTP socket, and every way a token can be wrong.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use access::oidc::{JwksSource, OidcConfig, OidcError, OidcRejected, OidcVerifier};
use access::{FhirAccess, Role};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISSUER: &str = "https://idp.hospital.example/realms/main";
const AUDIENCE: &str = "corridor";

struct RsaKey {
    kid: String,
    private_pem: String,
    public_pem: String,
    jwk: Value,
}

fn rsa_key(kid: &str) -> RsaKey {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = key.to_public_key();
    RsaKey {
        kid: kid.to_owned(),
        private_pem: key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        jwk: json!({
            "kty": "RSA", "use": "sig", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "u-123",
        "preferred_username": "jdoe",
        "iat": now(), "exp": now() + 300,
        "roles": ["analyst", "unrelated-group"],
        "scope": "openid patient/Observation.read",
        "patient": "p1",
    })
}

fn sign(key: &RsaKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(key.private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A JWKS endpoint on a real socket: answers every GET with the current key set and
/// counts the requests.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
}

async fn serve_jwks(keys: Vec<Value>) -> JwksServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    let set = Arc::new(Mutex::new(json!({ "keys": keys })));
    let hits = Arc::new(AtomicUsize::new(0));
    let (served, counted) = (Arc::clone(&set), Arc::clone(&hits));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = served.lock().unwrap().to_string();
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                assert!(request.starts_with(b"GET /certs HTTP/1.1\r\n"));
                counted.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    JwksServer {
        url,
        keys: set,
        hits,
    }
}

async fn verifier(server: &JwksServer, refresh: Duration) -> OidcVerifier {
    let mut config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::Url(server.url.clone()));
    config.refresh_interval = refresh;
    OidcVerifier::new(config).await.unwrap()
}

#[tokio::test]
async fn tokens_are_checked_against_the_issuers_keys() {
    let key = rsa_key("k1");
    let server = serve_jwks(vec![key.jwk.clone()]).await;
    let verifier = verifier(&server, Duration::from_secs(3600)).await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // Valid: the identity, its roles and scopes.
    let identity = verifier.verify(&sign(&key, &claims())).await.unwrap();
    assert_eq!(identity.subject, "u-123");
    assert_eq!(identity.name, "jdoe");
    assert_eq!(identity.roles, [Role::Analyst]);
    assert_eq!(identity.patient.as_deref(), Some("p1"));
    let scopes = identity.scopes.as_ref().unwrap();
    assert!(scopes.patient_only("Observation", FhirAccess::Read));
    assert!(!scopes.allows("Patient", FhirAccess::Read));
    assert_eq!(scopes.patient(), Some("p1"));

    let refused = |mut claims: Value, change: &dyn Fn(&mut Value)| {
        change(&mut claims);
        sign(&key, &claims)
    };
    let cases: Vec<(&str, String, OidcRejected)> = vec![
        (
            "expired",
            refused(claims(), &|c| c["exp"] = json!(now() - 3600)),
            OidcRejected::Expired,
        ),
        (
            "not yet valid",
            refused(claims(), &|c| c["nbf"] = json!(now() + 3600)),
            OidcRejected::NotYetValid,
        ),
        (
            "wrong audience",
            refused(claims(), &|c| c["aud"] = json!("another-app")),
            OidcRejected::Audience,
        ),
        (
            "wrong issuer",
            refused(claims(), &|c| c["iss"] = json!("https://evil.example")),
            OidcRejected::Issuer,
        ),
        (
            "no role",
            refused(claims(), &|c| c["roles"] = json!(["unrelated-group"])),
            OidcRejected::NoRole,
        ),
        (
            "no exp",
            refused(claims(), &|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            OidcRejected::Malformed,
        ),
    ];
    for (case, token, expected) in cases {
        assert_eq!(verifier.verify(&token).await, Err(expected), "{case}");
    }

    // Within the clock skew an expired token still passes.
    let skewed = refused(claims(), &|c| c["exp"] = json!(now() - 20));
    assert!(verifier.verify(&skewed).await.is_ok());
}

#[tokio::test]
async fn alg_none_and_hmac_with_the_public_key_are_refused() {
    let key = rsa_key("k1");
    let server = serve_jwks(vec![key.jwk.clone()]).await;
    let verifier = verifier(&server, Duration::from_secs(3600)).await;

    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let unsigned = format!(
        "{}.{}.",
        encode(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        encode(&claims())
    );
    assert_eq!(
        verifier.verify(&unsigned).await,
        Err(OidcRejected::Malformed)
    );

    // Key confusion: HS256 with the RSA public key (as the issuer publishes it) as the
    // HMAC secret. A verifier that let the token pick the algorithm would accept it.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(key.public_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&confused).await,
        Err(OidcRejected::Algorithm)
    );

    // A token signed by another key under the same kid.
    let forger = rsa_key("k1");
    assert_eq!(
        verifier.verify(&sign(&forger, &claims())).await,
        Err(OidcRejected::Signature)
    );
    assert_eq!(
        verifier.verify("not.a.jwt").await,
        Err(OidcRejected::Malformed)
    );
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_keys_again_at_most_once_per_interval() {
    let old = rsa_key("old");
    let server = serve_jwks(vec![old.jwk.clone()]).await;
    let rotated = rsa_key("new");

    // Unknown kid, and the issuer does not have it either.
    let slow = verifier(&server, Duration::from_secs(3600)).await;
    let token = sign(&rotated, &claims());
    assert_eq!(slow.verify(&token).await, Err(OidcRejected::UnknownKey));
    // Fetched at start only: the refresh interval holds the second fetch back.
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // The issuer rotates its keys: a verifier whose interval has passed picks it up.
    *server.keys.lock().unwrap() = json!({ "keys": [old.jwk, rotated.jwk] });
    let eager = verifier(&server, Duration::ZERO).await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    *server.keys.lock().unwrap() = json!({ "keys": [rsa_key("newer").jwk] });
    let newest = rsa_key("newest");
    assert_eq!(
        eager.verify(&sign(&newest, &claims())).await,
        Err(OidcRejected::UnknownKey)
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
    assert!(eager.verify(&token).await.is_err(), "rotated away");
    assert!(slow.verify(&sign(&old, &claims())).await.is_ok());
}

#[tokio::test]
async fn es256_keys_from_a_file_and_mapped_groups_work() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, json!({ "keys": [jwk] }).to_string()).unwrap();
    let mut config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File(path));
    config.roles_claim = "realm_access.roles".into();
    config.role_map = [("hl7-operators".to_owned(), Role::Operator)].into();
    let verifier = OidcVerifier::new(config).await.unwrap();

    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec1".into());
    let mut claims = claims();
    claims["realm_access"] = json!({"roles": ["hl7-operators", "analyst"]});
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let identity = verifier.verify(&token).await.unwrap();
    // Only mapped values count once a map is configured.
    assert_eq!(identity.roles, [Role::Operator]);
}

#[tokio::test]
async fn hmac_algorithms_are_refused_in_the_configuration() {
    let mut config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File("/nonexistent".into()));
    config.algorithms = vec![Algorithm::RS256, Algorithm::HS256];
    assert!(matches!(
        OidcVerifier::new(config).await,
        Err(OidcError::SymmetricAlgorithm(Algorithm::HS256))
    ));
    let config = OidcConfig::new(ISSUER, AUDIENCE, JwksSource::File("/nonexistent".into()));
    assert!(matches!(
        OidcVerifier::new(config).await,
        Err(OidcError::File { .. })
    ));
}
