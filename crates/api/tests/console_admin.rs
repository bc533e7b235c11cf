//! The console's users and tokens, over a real socket and a real SQLite file, signed in
//! with the form as a browser is: an administrator adds a user (the password typed
//! twice, stored as Argon2id) who can then sign in, disables a user (whose session ends
//! at once), creates a token whose secret is shown once on a page no cache keeps, and
//! revokes it. Each change is one audit record, as the JSON API writes it; a form
//! without the session's CSRF token, and a viewer's or an operator's form, are refused.

mod console_common;
use console_common::{
    Answer, FORM, HTML, PASSWORD, Server, call, csrf_of, serve, sign_in, sign_in_with,
};

/// The administration page as `cookie` sees it, and its CSRF token.
async fn admin_page(server: &Server, cookie: &str) -> (String, String) {
    let page = call(server.addr, "GET", "/console/admin", &[HTML, cookie], "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = csrf_of(&page.body);
    (page.body, csrf)
}

/// Posts a console form with the session's cookie.
async fn post_form(server: &Server, cookie: &str, path: &str, body: &str) -> Answer {
    call(server.addr, "POST", path, &[cookie, FORM], body).await
}

/// The decoded `notice` or `error` of a form's redirect.
fn outcome(answer: &Answer) -> (Option<String>, Option<String>) {
    let location = answer.header("location").unwrap_or_default();
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    let take = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    (take("notice"), take("error"))
}

/// The audit records whose action is `action`, newest first (read by the admin).
async fn audit_records(server: &Server, cookie: &str, action: &str) -> Vec<serde_json::Value> {
    let path = format!(
        "/api/audit?format=page&limit=500&action={}",
        action.replace(' ', "%20")
    );
    let answer = call(server.addr, "GET", &path, &[cookie], "").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let page: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    page["records"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn an_admin_adds_a_user_with_the_password_typed_twice_who_then_signs_in() {
    let server = serve().await;
    let admin = sign_in(&server, "ada").await;
    let (page, csrf) = admin_page(&server, &admin).await;
    assert!(page.contains("action=\"/console/users\""), "{page}");
    assert!(page.contains("name=\"password_again\""));

    // Two different passwords: refused, nothing added, the page says why.
    let typo = post_form(
        &server,
        &admin,
        "/console/users",
        &format!(
            "csrf_token={csrf}&name=nina&role=analyst&password=correct+horse+battery+staple&password_again=correct+horse+battery+stapel"
        ),
    )
    .await;
    assert_eq!(typo.status, 303, "{}", typo.body);
    let (_, error) = outcome(&typo);
    assert!(
        error.as_deref().is_some_and(|e| e.contains("differ")),
        "{:?}",
        typo.header("location")
    );
    assert!(sign_in_with(&server, "nina", PASSWORD).await.is_none());

    // The same password twice: added, as Argon2id.
    let added = post_form(
        &server,
        &admin,
        "/console/users",
        &format!(
            "csrf_token={csrf}&name=nina&role=analyst&password=correct+horse+battery+staple&password_again=correct+horse+battery+staple"
        ),
    )
    .await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(
        outcome(&added),
        (Some("User nina added as analyst.".to_owned()), None)
    );
    let hash: String = server
        .store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT password_hash FROM access_users WHERE name = 'nina'",
                [],
                |row| row.get(0),
            )?)
        })
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("horse"));

    // Nina signs in with it, and reads what an analyst may (the message browser) but
    // not the administration page.
    let nina = sign_in(&server, "nina").await;
    let browser = call(server.addr, "GET", "/console/messages", &[HTML, &nina], "").await;
    assert_eq!(browser.status, 200, "{}", browser.body);
    let refused = call(server.addr, "GET", "/console/admin", &[HTML, &nina], "").await;
    assert_eq!(refused.status, 403);

    // The users' table lists her: name, role, enabled, when added.
    let (page, _) = admin_page(&server, &admin).await;
    let row = page
        .split("<th scope=\"row\">nina</th>")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("nina's row");
    assert!(
        row.starts_with("<td>analyst</td><td>enabled</td><td>20"),
        "{row}"
    );

    // Exactly one record of the change, naming who added whom with which role; the
    // refused attempt is recorded as failed under the form's route.
    let records = audit_records(&server, &admin, "user.add").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["resource"], "user/nina");
    assert_eq!(records[0]["detail"], "role analyst");
    assert_eq!(records[0]["outcome"], "success");
    assert!(
        records[0]["actor"].to_string().contains("ada"),
        "{}",
        records[0]
    );
    let forms = audit_records(&server, &admin, "POST /console/users").await;
    assert_eq!(forms.len(), 1, "{forms:?}");
    assert_eq!(forms[0]["outcome"], "failed", "{}", forms[0]);
}

#[tokio::test]
async fn a_user_disabled_in_the_console_is_signed_out_at_once_and_cannot_sign_in() {
    let server = serve().await;
    let admin = sign_in(&server, "ada").await;
    let operator = sign_in(&server, "olivia").await;
    let before = call(server.addr, "GET", "/", &[HTML, &operator], "").await;
    assert_eq!(before.status, 200, "{}", before.body);

    let (page, csrf) = admin_page(&server, &admin).await;
    assert!(
        page.contains("action=\"/console/users/olivia/disable\""),
        "{page}"
    );
    let disabled = post_form(
        &server,
        &admin,
        "/console/users/olivia/disable",
        &format!("csrf_token={csrf}"),
    )
    .await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    let (notice, error) = outcome(&disabled);
    assert!(
        notice.is_some_and(|n| n.starts_with("User olivia disabled")) && error.is_none(),
        "{:?}",
        disabled.header("location")
    );

    // Her open session is over: the browser is sent to sign in, an API call is 401.
    let after = call(server.addr, "GET", "/", &[HTML, &operator], "").await;
    assert_eq!(after.status, 303, "{}", after.body);
    assert!(
        after
            .header("location")
            .is_some_and(|l| l.starts_with("/login")),
        "{:?}",
        after.header("location")
    );
    let api = call(server.addr, "GET", "/api/stats", &[&operator], "").await;
    assert_eq!(api.status, 401, "{}", api.body);
    assert!(sign_in_with(&server, "olivia", PASSWORD).await.is_none());

    // The table says so, and offers no second disable.
    let (page, _) = admin_page(&server, &admin).await;
    assert!(
        page.contains("<th scope=\"row\">olivia</th><td>operator</td><td>disabled</td>"),
        "{page}"
    );
    assert!(!page.contains("action=\"/console/users/olivia/disable\""));
    let records = audit_records(&server, &admin, "user.disable").await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["resource"], "user/olivia");

    // An unknown user: the page says so, and nothing is recorded as done.
    let unknown = post_form(
        &server,
        &admin,
        "/console/users/nobody/disable",
        &format!("csrf_token={csrf}"),
    )
    .await;
    assert!(outcome(&unknown).1.is_some_and(|e| e.contains("nobody")));
    assert_eq!(
        audit_records(&server, &admin, "user.disable").await.len(),
        1
    );
}

#[tokio::test]
async fn the_api_s_disable_ends_the_user_s_sessions_too() {
    let server = serve().await;
    let admin = sign_in(&server, "ada").await;
    let (_, csrf) = admin_page(&server, &admin).await;
    let viewer = sign_in(&server, "vic").await;
    assert_eq!(
        call(server.addr, "GET", "/api/stats", &[&viewer], "")
            .await
            .status,
        200
    );
    let answer = call(
        server.addr,
        "POST",
        "/api/users/vic/disable",
        &[&admin, &format!("X-CSRF-Token: {csrf}")],
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        call(server.addr, "GET", "/api/stats", &[&viewer], "")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_token_made_in_the_console_is_shown_once_uncached_works_and_is_revoked() {
    let server = serve().await;
    let admin = sign_in(&server, "ada").await;
    let (page, csrf) = admin_page(&server, &admin).await;
    assert!(page.contains("action=\"/console/tokens\""), "{page}");

    let created = post_form(
        &server,
        &admin,
        "/console/tokens",
        &format!(
            "csrf_token={csrf}&user=olivia&role=viewer&expires_days=30&scopes=system%2F*.read"
        ),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.header("cache-control").as_deref(), Some("no-store"));
    let secret = created
        .body
        .split("id=\"token-secret\" class=\"secret\" readonly size=\"60\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the secret on the answer page")
        .to_owned();
    assert!(secret.len() > 20, "{secret}");
    assert!(created.body.contains("<td>olivia</td>"));
    assert!(created.body.contains("<td>system/*.read</td>"));

    // The secret works as a bearer token, with the viewer role it was given.
    let bearer = format!("Authorization: Bearer {secret}");
    let stats = call(server.addr, "GET", "/api/stats", &[&bearer], "").await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    let phi = call(server.addr, "GET", "/api/messages", &[&bearer], "").await;
    assert_eq!(phi.status, 403, "{}", phi.body);

    // Never shown again: the list has its id, owner, role, scopes and expiry only.
    let (page, csrf) = admin_page(&server, &admin).await;
    assert!(!page.contains(&secret), "the secret is shown again");
    let tokens = call(server.addr, "GET", "/api/tokens", &[&admin], "").await;
    let tokens: serde_json::Value = serde_json::from_str(&tokens.body).unwrap();
    let id = tokens["tokens"][0]["id"].as_i64().unwrap();
    let row = page
        .split(&format!("<tr><td class=\"n\">{id}</td>"))
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("the token's row");
    assert!(
        row.starts_with("<td>olivia</td>") && row.contains("<td>viewer</td><td>system/*.read</td>"),
        "{row}"
    );
    assert!(row.contains(&format!("action=\"/console/tokens/{id}/revoke\"")));

    let revoked = post_form(
        &server,
        &admin,
        &format!("/console/tokens/{id}/revoke"),
        &format!("csrf_token={csrf}"),
    )
    .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(outcome(&revoked).0, Some(format!("Token {id} revoked.")));
    let refused = call(server.addr, "GET", "/api/stats", &[&bearer], "").await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let (page, _) = admin_page(&server, &admin).await;
    assert!(!page.contains(&format!("action=\"/console/tokens/{id}/revoke\"")));

    // One record each, as the JSON API writes them; the secret in none.
    let made = audit_records(&server, &admin, "token.create").await;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["resource"], "user/olivia");
    assert_eq!(
        made[0]["detail"],
        "role viewer, expires in 30 days, scopes system/*.read"
    );
    let gone = audit_records(&server, &admin, "token.revoke").await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["resource"], format!("token/{id}"));
    let all = call(
        server.addr,
        "GET",
        "/api/audit?since=2000-01-01",
        &[&admin],
        "",
    )
    .await;
    assert!(!all.body.contains(&secret), "a secret in the audit trail");

    // A token wider than its owner is refused, and the page says why.
    let wider = post_form(
        &server,
        &admin,
        "/console/tokens",
        &format!("csrf_token={csrf}&user=vic&role=admin"),
    )
    .await;
    assert_eq!(wider.status, 303, "{}", wider.body);
    assert!(
        outcome(&wider).1.is_some(),
        "{:?}",
        wider.header("location")
    );
    assert_eq!(
        audit_records(&server, &admin, "token.create").await.len(),
        1
    );
}

#[tokio::test]
async fn a_viewer_an_operator_and_a_form_without_the_csrf_token_change_no_user_or_token() {
    let server = serve().await;
    let admin = sign_in(&server, "ada").await;
    let forms = [
        (
            "/console/users",
            "name=mallory&role=admin&password=correct+horse+battery+staple&password_again=correct+horse+battery+staple",
        ),
        ("/console/users/ada/disable", ""),
        ("/console/tokens", "user=ada"),
        ("/console/tokens/1/revoke", ""),
    ];
    for user in ["vic", "olivia"] {
        let cookie = sign_in(&server, user).await;
        let page = call(server.addr, "GET", "/console/admin", &[HTML, &cookie], "").await;
        assert_eq!(page.status, 403, "{user}: {}", page.body);
        // Their own session's token, from a page they may see.
        let dashboard = call(server.addr, "GET", "/", &[HTML, &cookie], "").await;
        let csrf = csrf_of(&dashboard.body);
        for (path, fields) in forms {
            let answer = post_form(
                &server,
                &cookie,
                path,
                &format!("csrf_token={csrf}&{fields}"),
            )
            .await;
            assert_eq!(answer.status, 403, "{user} {path}: {}", answer.body);
        }
    }
    // The admin's own session without its CSRF token.
    for (path, fields) in forms {
        let answer = post_form(&server, &admin, path, fields).await;
        assert_eq!(answer.status, 403, "{path} without CSRF: {}", answer.body);
    }
    // Nothing changed: no mallory, ada enabled, no token.
    assert!(sign_in_with(&server, "mallory", PASSWORD).await.is_none());
    assert!(sign_in_with(&server, "ada", PASSWORD).await.is_some());
    let tokens = call(server.addr, "GET", "/api/tokens", &[&admin], "").await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert!(tokens.body.contains("\"tokens\":[]"), "{}", tokens.body);
    for action in ["user.add", "user.disable", "token.create", "token.revoke"] {
        assert!(audit_records(&server, &admin, action).await.is_empty());
    }
    // Each refusal was recorded as denied.
    let denied = call(
        server.addr,
        "GET",
        "/api/audit?format=page&limit=500&outcome=denied",
        &[&admin],
        "",
    )
    .await;
    let denied: serde_json::Value = serde_json::from_str(&denied.body).unwrap();
    let count = denied["records"].as_array().map_or(0, |r| {
        r.iter()
            .filter(|r| {
                r["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("POST /console/"))
            })
            .count()
    });
    assert_eq!(count, 12, "{denied}");
}
