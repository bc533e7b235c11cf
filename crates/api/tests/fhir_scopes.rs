//! SMART scopes on `/fhir`, over a real socket and a real SQLite file: an API token or
//! an OpenID Connect JWT carrying scopes reads only the resource types (and, for
//! `patient/` scopes, only the patient) they allow, beyond what its role allows.

use std::net::SocketAddr;

use access::audit::Audit;
use access::oidc::{JwksSource, OidcConfig, OidcVerifier};
use access::{Access as Identities, Role};
use api::Auth;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use store::{MessageId, Store, UnixMicros};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use v2_fhir::{Converter, Options};

const ISSUER: &str = "https://idp.hospital.example/realms/main";

/// Eve admitted (A01): a Patient and an Encounter.
const EVE: &str = "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000+0100||ADT^A01^ADT_A01|A01-1|P|2.5.1\rEVN|A01|20240102083000+0100\rPID|1||P100^^^GHH^MR||EVERYWOMAN^EVE^E||19800312|F\rPV1|1|I|W1^101^1||||||||||||||||V100^^^GHH^VN";
/// Adam registered (A04): another Patient and Encounter.
const ADAM: &str = "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240103083000+0100||ADT^A04^ADT_A01|A04-2|P|2.5.1\rEVN|A04|20240103083000+0100\rPID|1||P200^^^GHH^MR||EVERYMAN^ADAM||19551105|M\rPV1|1|O||||||||||||||||||V200^^^GHH^VN";

struct Server {
    addr: SocketAddr,
    identities: Identities,
    private_pem: String,
    _dir: tempfile::TempDir,
}

async fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    fhir_repo::migrate(&store).await.unwrap();
    for (n, text) in [EVE, ADAM].into_iter().enumerate() {
        let message = hl7v2::Message::parse(text.as_bytes()).unwrap();
        let bundle = Converter::new(Options::default())
            .convert(&message)
            .unwrap();
        let n = n as i64 + 1;
        store
            .write(move |conn| {
                fhir_repo::apply_bundle_in(
                    conn,
                    &bundle,
                    MessageId(n),
                    UnixMicros(1_767_268_800_000_000 + n * 1_000_000),
                )
            })
            .await
            .unwrap();
    }
    let identities = Identities::open(store.clone()).await.unwrap();
    let audit = Audit::open(store.clone()).await.unwrap();

    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = key.to_public_key();
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let jwks = json!({"keys": [{
        "kty": "RSA", "use": "sig", "kid": "k1", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]});
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let verifier = OidcVerifier::new(OidcConfig::new(
        ISSUER,
        "corridor",
        JwksSource::File(jwks_file),
    ))
    .await
    .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api::Api {
        fhir_base: Some(format!("http://{addr}/fhir")),
        auth: Auth::required(identities.clone(), Some(verifier), audit),
        ..api::Api::new(store)
    })
    .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    identities
        .add_user("ana", Role::Analyst, None, None)
        .await
        .unwrap();
    Server {
        addr,
        identities,
        private_pem,
        _dir: dir,
    }
}

impl Server {
    /// A bearer header for a token of analyst `ana` with `scopes`.
    async fn token(&self, scopes: Option<&str>) -> String {
        let token = self
            .identities
            .create_scoped_token("ana", None, None, scopes, None)
            .await
            .unwrap();
        format!("Bearer {}", token.secret)
    }

    /// A bearer header for an OIDC analyst with `scope` and, if given, a patient.
    fn jwt(&self, scope: &str, patient: Option<&str>) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "iss": ISSUER, "aud": "corridor", "sub": "u-9", "preferred_username": "smartapp",
            "iat": now, "exp": now + 300, "roles": ["analyst"], "scope": scope,
        });
        if let Some(patient) = patient {
            claims["patient"] = json!(patient);
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".to_owned());
        let jwt = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(self.private_pem.as_bytes()).unwrap(),
        )
        .unwrap();
        format!("Bearer {jwt}")
    }

    /// GET `path` with `authorization`: the status and the JSON body.
    async fn get(&self, path: &str, authorization: &str) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: {authorization}\r\n\
             Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        (status, value)
    }

    /// The ids of the resources of a searchset.
    async fn search(&self, path: &str, authorization: &str) -> Vec<String> {
        let (status, bundle) = self.get(path, authorization).await;
        assert_eq!(status, 200, "{path}: {bundle}");
        bundle["entry"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e["search"]["mode"] == "match")
                    .map(|e| {
                        format!(
                            "{}/{}",
                            e["resource"]["resourceType"].as_str().unwrap(),
                            e["resource"]["id"].as_str().unwrap()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Patient and Encounter ids of the patient with `family` name.
    async fn patient(&self, family: &str) -> (String, String) {
        let all = self.token(None).await;
        let patients = self
            .search(&format!("/fhir/Patient?family={family}"), &all)
            .await;
        assert_eq!(patients.len(), 1, "{patients:?}");
        let patient = patients[0].trim_start_matches("Patient/").to_owned();
        let encounters = self
            .search(&format!("/fhir/Encounter?patient={patient}"), &all)
            .await;
        assert_eq!(encounters.len(), 1, "{encounters:?}");
        (patient, encounters[0].clone())
    }
}

fn assert_forbidden(what: &str, (status, body): (u16, Value)) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{what}: {body}");
}

#[tokio::test]
async fn a_token_with_scopes_reads_only_the_resource_types_they_name() {
    let server = serve().await;
    let (eve, eve_encounter) = server.patient("EVERYWOMAN").await;

    // Without scopes the analyst's role alone decides: both types.
    let unscoped = server.token(None).await;
    assert_eq!(server.search("/fhir/Encounter", &unscoped).await.len(), 2);

    let patients_only = server.token(Some("system/Patient.read")).await;
    assert_eq!(
        server.search("/fhir/Patient", &patients_only).await.len(),
        2
    );
    let (status, _) = server
        .get(&format!("/fhir/Patient/{eve}"), &patients_only)
        .await;
    assert_eq!(status, 200);
    assert_forbidden(
        "search",
        server.get("/fhir/Encounter", &patients_only).await,
    );
    assert_forbidden(
        "read",
        server
            .get(&format!("/fhir/{eve_encounter}"), &patients_only)
            .await,
    );
    assert_forbidden(
        "history",
        server
            .get(&format!("/fhir/{eve_encounter}/_history"), &patients_only)
            .await,
    );
    // $everything leaves out what the scopes do not allow.
    let (status, everything) = server
        .get(&format!("/fhir/Patient/{eve}/$everything"), &patients_only)
        .await;
    assert_eq!(status, 200, "{everything}");
    let types: Vec<&str> = everything["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Patient"]);
    // Included resources too.
    let included = server
        .get(
            &format!("/fhir/Patient?_id={eve}&_revinclude=Encounter:patient"),
            &patients_only,
        )
        .await
        .1;
    assert!(
        !included.to_string().contains("\"Encounter\""),
        "{included}"
    );

    // `user/*.read`: every type, as the role allows.
    let everything_scope = server.token(Some("user/*.read")).await;
    assert_eq!(
        server
            .search("/fhir/Encounter", &everything_scope)
            .await
            .len(),
        2
    );
    // A Corridor token has no patient context: patient/ scopes grant it nothing.
    let patient_scope = server.token(Some("patient/Encounter.read")).await;
    assert_forbidden(
        "patient scope without patient",
        server.get("/fhir/Encounter", &patient_scope).await,
    );
    // Scopes that are not SMART resource scopes are refused when the token is made.
    for bad in ["admin/*.read", "system/Patient.read openid", "read"] {
        let refused = server
            .identities
            .create_scoped_token("ana", None, None, Some(bad), None)
            .await;
        assert!(
            matches!(refused, Err(access::Error::InvalidScopes(_))),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn an_oidc_jwt_with_patient_scopes_reads_only_its_patient() {
    let server = serve().await;
    let (eve, eve_encounter) = server.patient("EVERYWOMAN").await;
    let (adam, adam_encounter) = server.patient("EVERYMAN").await;
    let app = server.jwt(
        "openid launch/patient patient/Encounter.read patient/Patient.read",
        Some(&eve),
    );

    // A search is limited to the patient, whatever it asks.
    assert_eq!(
        server.search("/fhir/Encounter", &app).await,
        std::slice::from_ref(&eve_encounter)
    );
    assert_eq!(
        server.search("/fhir/Patient", &app).await,
        [format!("Patient/{eve}")]
    );
    assert!(
        server
            .search(&format!("/fhir/Encounter?patient={adam}"), &app)
            .await
            .is_empty()
    );
    // Reads of its patient answer; of another patient, 403.
    assert_eq!(
        server.get(&format!("/fhir/Patient/{eve}"), &app).await.0,
        200
    );
    assert_eq!(
        server.get(&format!("/fhir/{eve_encounter}"), &app).await.0,
        200
    );
    assert_forbidden(
        "another patient",
        server.get(&format!("/fhir/Patient/{adam}"), &app).await,
    );
    assert_forbidden(
        "another patient's encounter",
        server.get(&format!("/fhir/{adam_encounter}"), &app).await,
    );
    assert_forbidden(
        "another patient's encounter, a version",
        server
            .get(&format!("/fhir/{adam_encounter}/_history/1"), &app)
            .await,
    );
    assert_forbidden(
        "another patient's everything",
        server
            .get(&format!("/fhir/Patient/{adam}/$everything"), &app)
            .await,
    );
    let (status, everything) = server
        .get(&format!("/fhir/Patient/{eve}/$everything"), &app)
        .await;
    assert_eq!(status, 200, "{everything}");
    assert_eq!(everything["total"], 2, "{everything}");

    // patient/ scopes with no patient claim reach nobody.
    let no_patient = server.jwt("patient/Encounter.read", None);
    assert_forbidden(
        "no patient context",
        server.get("/fhir/Encounter", &no_patient).await,
    );
    // A type no scope names is refused, even to an analyst.
    let observations = server.jwt("system/Observation.read", None);
    assert_forbidden(
        "not in the scopes",
        server.get("/fhir/Encounter", &observations).await,
    );
    // A JWT naming no SMART resource scope is limited by its role alone.
    let plain = server.jwt("openid profile", None);
    assert_eq!(server.search("/fhir/Encounter", &plain).await.len(), 2);
}
