//! What the console's tests share: an engine's HTTP side on a real socket and a real
//! SQLite file, with authentication on and a user of each role; a raw HTTP/1.1 call;
//! signing in with the form, as a browser does; the CSRF token of a page's forms.

use std::net::SocketAddr;

use access::audit::Audit;
use access::{Access as Identities, Role};
use api::Auth;
use store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PASSWORD: &str = "correct horse battery staple";
pub const HTML: &str = "Accept: text/html,application/xhtml+xml";
pub const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

pub struct Server {
    pub addr: SocketAddr,
    pub store: Store,
    _dir: tempfile::TempDir,
}

#[allow(dead_code)] // not every test file serves without a patient index
pub async fn serve() -> Server {
    serve_with(|_| None).await
}

/// A server whose patient index, if any, `mpi` opens on the store; users `vic`
/// (viewer), `ana` (analyst), `olivia` (operator), `sam` (steward) and `ada` (admin),
/// each with [`PASSWORD`].
pub async fn serve_with(
    mpi: impl FnOnce(Store) -> Option<mpi::MpiService> + Send + 'static,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let on = store.clone();
    let patient_index = tokio::task::spawn_blocking(move || mpi(on)).await.unwrap();
    let identities = Identities::open(store.clone()).await.unwrap();
    let audit = Audit::open(store.clone()).await.unwrap();
    store
        .migrate_component(store::search::COMPONENT, store::search::MIGRATIONS)
        .await
        .unwrap();
    let api = api::Api {
        auth: Auth::required(identities.clone(), None, audit),
        patient_index,
        ..api::Api::new(store.clone())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(api).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for (name, role) in [
        ("vic", Role::Viewer),
        ("ana", Role::Analyst),
        ("olivia", Role::Operator),
        ("sam", Role::Steward),
        ("ada", Role::Admin),
    ] {
        identities
            .add_user(name, role, Some(PASSWORD), None)
            .await
            .unwrap();
    }
    Server {
        addr,
        store,
        _dir: dir,
    }
}

pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Signs in with the form, as the login page does: the `Cookie:` line, or `None` when
/// the sign-in is refused.
pub async fn sign_in_with(server: &Server, user: &str, password: &str) -> Option<String> {
    let answer = call(
        server.addr,
        "POST",
        "/login",
        &[FORM],
        &format!(
            "user={user}&password={}&next=%2F",
            password.replace(' ', "+")
        ),
    )
    .await;
    let cookie = answer.header("set-cookie")?;
    (answer.status == 303 && answer.header("location").as_deref() == Some("/"))
        .then(|| format!("Cookie: {}", cookie.split(';').next().unwrap_or_default()))
}

/// Signs in with [`PASSWORD`]; the `Cookie:` line.
pub async fn sign_in(server: &Server, user: &str) -> String {
    sign_in_with(server, user, PASSWORD)
        .await
        .unwrap_or_else(|| panic!("{user} signs in"))
}

/// The session's CSRF token from a page's forms.
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a form with the CSRF token")
        .to_owned()
}
