//! The quarantine round trip and data quality over real HTTP, on a real SQLite store, with
//! real corpus messages and the real NIST immunization (IZ) and ELR conformance profiles.
//!
//! `receive` stands in for the engine: it appends the message to the journal and, in one
//! write, records its validation the way the pipeline's validate stage does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hl7v2_spec::validate::Profile;
use quarantine::{ChannelValidation, Header, Quarantine, QuarantineId, Validated, Validators};
use serde_json::{Value, json};
use store::{Journal, MessageId, MessageState, NewMessage, Store, UnixMicros};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IZ_PROFILE: &str = "hl7v2-spec/tests/profiles/real/iz/immunization-profile.xml";
const ELR_PROFILE: &str = "hl7v2-spec/tests/profiles/real/elr/nist-elr-2.5.1.xml";
/// Addresses in Puerto Rico: ELR-010 lists only the states' codes (ORC-22.4, ORC-24.4).
const ELR_PUERTO_RICO: &str =
    "hl7v2-spec/tests/profiles/real/elr/elims_2_40_05059364_34872_MIN.hl7";
/// Two ORDER_OBSERVATION groups.
const ELR_TWO_ORDERS: &str = "hl7v2-spec/tests/profiles/real/elr/elims_52_24095_04204575_5120.hl7";
const IZ_ADULTS: [&str; 4] = [
    "Adult_z22_New_Covid_vaccine.hl7",
    "Adult_z22_non-vaccination_deferral.hl7",
    "Adult_z22_non-vaccination_missed_appointment.hl7",
    "Adult_z22_serologic_evidence_covid.hl7",
];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(crates_dir().join(rel)).unwrap()
}

/// A CDC IIS adult VXU from the public corpus: valid against the IZ profile.
fn iz_adult(name: &str) -> Vec<u8> {
    read(&format!("../tests/corpus/public/cdc-iis-open-tools/{name}"))
}

/// The same message without the birth date (PID-7, R in the IZ profile).
fn without_birth_date(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    assert_eq!(text.matches("|19840615|").count(), 1);
    text.replacen("|19840615|", "||", 1).into_bytes()
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    validators: Validators,
    addr: SocketAddr,
    woken: Arc<Mutex<Vec<String>>>,
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    Quarantine::migrate(&store).await.unwrap();
    let iz = Arc::new(Profile::load(crates_dir().join(IZ_PROFILE)).unwrap());
    let elr = Arc::new(Profile::load(crates_dir().join(ELR_PROFILE)).unwrap());
    let validators = Validators::new()
        .with(
            "iz",
            ChannelValidation {
                profile: Some(iz),
                ..ChannelValidation::default()
            },
        )
        .with(
            "lab",
            ChannelValidation {
                sender_profiles: [("STARLIMS.CDC.Stag".to_string(), elr)].into(),
                ..ChannelValidation::default()
            },
        );
    let woken = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&woken);
    let state = api::Api {
        quarantine: Some(Quarantine::new(store.clone(), validators.clone())),
        wake_channel: Arc::new(move |channel: &str| seen.lock().unwrap().push(channel.to_string())),
        ..api::Api::new(store.clone())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await.unwrap() });
    Harness {
        _dir: dir,
        store,
        validators,
        addr,
        woken,
    }
}

impl Harness {
    /// Stores a message as a source does, then validates it as the pipeline's validate
    /// stage does and writes the outcome in one transaction.
    async fn receive(&self, channel: &str, raw: Vec<u8>) -> (MessageId, bool) {
        self.receive_at(channel, raw, UnixMicros::now()).await
    }

    /// [`Harness::receive`] of a message validated at `at`.
    async fn receive_at(&self, channel: &str, raw: Vec<u8>, at: UnixMicros) -> (MessageId, bool) {
        let parsed = hl7v2::Message::parse(&raw).unwrap();
        let header = Header::of(&parsed);
        let findings = self.validators.channel(channel).validate(&parsed);
        let validated = Validated::new(channel, header.clone(), &findings);
        let id = self
            .store
            .journal()
            .append(
                NewMessage {
                    channel: Arc::from(channel),
                    received_at: UnixMicros::now(),
                    peer: Arc::from("127.0.0.1:40000"),
                    tls_identity: None,
                    sending_application: header.sending_application.clone(),
                    sending_facility: header.sending_facility.clone(),
                    message_type: header.message_type.clone(),
                    control_id: header.control_id.clone(),
                    version: header.version.clone(),
                    state: MessageState::Received,
                    state_reason: None,
                    raw: raw.into(),
                },
                None,
            )
            .await
            .unwrap()
            .id();
        let failed = validated.has_errors();
        self.store
            .write(move |conn| {
                let now = at;
                if validated.has_errors() {
                    Journal::set_state_in(
                        conn,
                        id,
                        MessageState::Quarantined,
                        Some(&validated.reason()),
                    )?;
                    quarantine::record_failure_in(conn, id, &validated, now)?;
                } else {
                    Journal::set_state_in(conn, id, MessageState::Processed, None)?;
                    quarantine::count_findings_in(conn, &validated, now)?;
                }
                Ok(())
            })
            .await
            .unwrap();
        (id, failed)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let (status, text) = self.call_text(method, path, headers, body).await;
        let json = match (text.find(['{', '[']), text.rfind(['}', ']'])) {
            (Some(s), Some(e)) => serde_json::from_str(&text[s..=e]).unwrap(),
            _ => Value::Null,
        };
        (status, json)
    }

    async fn call_text(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8(response).unwrap();
        let status: u16 = text[9..12].parse().unwrap();
        let body_start = text.find("\r\n\r\n").unwrap() + 4;
        (status, text[body_start..].to_string())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, &[], b"").await
    }

    async fn entry_of(&self, message: MessageId) -> QuarantineId {
        Quarantine::new(self.store.clone(), Validators::new())
            .entry_of_message(message)
            .await
            .unwrap()
            .expect("the message is quarantined")
    }
}

const ANA: (&str, &str) = ("X-Corridor-User", "ana.lyst");

#[tokio::test]
async fn a_message_failing_its_profile_is_quarantined_edited_revalidated_and_reprocessed() {
    let h = start().await;
    let good = iz_adult(IZ_ADULTS[0]);
    let bad = without_birth_date(&good);
    let (message_id, failed) = h.receive("iz", bad.clone()).await;
    assert!(failed, "the IZ profile requires PID-7");
    let stored = h.store.journal().get(message_id).unwrap().unwrap();
    assert_eq!(stored.entry.state, MessageState::Quarantined);
    assert!(
        stored
            .entry
            .state_reason
            .as_deref()
            .unwrap()
            .contains("VXU_V04.PID-7")
    );

    // The listing shows it with its first error.
    let (status, list) = h.get("/api/quarantine?channel=iz&status=open").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 1);
    let entry = &list["entries"][0];
    let id = entry["id"].as_i64().unwrap();
    assert_eq!(entry["message_id"], message_id.0);
    assert_eq!(entry["sender"], "Test EHR Application");
    assert_eq!(entry["message_type"], "VXU^V04");
    assert_eq!(entry["control_id"], "NIST-IZ-001.00");
    assert_eq!(entry["errors"], 1);
    assert_eq!(entry["first_errors"][0]["path"], "VXU_V04.PID-7");
    assert_eq!(entry["first_errors"][0]["code"], 101);
    assert_iso_beside_micros(entry, &["quarantined_at", "status_changed_at"]);

    // The entry: the finding with its location, the original as received.
    let (status, detail) = h.get(&format!("/api/quarantine/{id}")).await;
    assert_eq!(status, 200, "{detail}");
    let errors: Vec<&Value> = detail["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["segment_id"], "PID");
    assert_eq!(errors[0]["segment_sequence"], 1);
    assert_eq!(errors[0]["field"]["field"], 7);
    assert_eq!(
        detail["original"]["raw"],
        String::from_utf8_lossy(&bad).as_ref()
    );
    assert_eq!(detail["content"], detail["original"]["raw"]);
    assert_eq!(detail["edited"], false);
    assert_eq!(detail["status"], "open");
    assert_iso_beside_micros(
        &detail,
        &["quarantined_at", "status_changed_at", "validated_at"],
    );

    // The analyst puts the birth date back; the file has LF line ends, as an editor saves it.
    let fixed_lf = String::from_utf8(good.clone()).unwrap().replace('\r', "\n");
    let (status, edited) = h
        .call(
            "PUT",
            &format!("/api/quarantine/{id}"),
            &[
                ANA,
                ("X-Corridor-Reason", "birth date confirmed with the clinic"),
            ],
            fixed_lf.as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["valid"], true, "{edited}");
    assert_eq!(edited["errors"], 0);
    assert_eq!(edited["revision"], 1);

    let (_, detail) = h.get(&format!("/api/quarantine/{id}")).await;
    assert_eq!(detail["edited"], true);
    assert_eq!(detail["errors"], 0);
    assert_eq!(detail["content"], String::from_utf8_lossy(&good).as_ref());
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["edited_by"], "ana.lyst");
    assert_iso_beside_micros(&history[0], &["edited_at"]);
    assert_iso_beside_micros(&detail, &["validated_at"]);
    assert_eq!(history[0]["reason"], "birth date confirmed with the clinic");
    assert_eq!(
        history[0]["previous"],
        String::from_utf8_lossy(&bad).as_ref()
    );
    assert_eq!(
        history[0]["content"],
        String::from_utf8_lossy(&good).as_ref()
    );
    // The journal's original row is never changed.
    assert_eq!(
        detail["original"]["raw"],
        String::from_utf8_lossy(&bad).as_ref()
    );
    assert_eq!(h.store.journal().get(message_id).unwrap().unwrap().raw, bad);

    let (status, revalidated) = h
        .call(
            "POST",
            &format!("/api/quarantine/{id}/revalidate"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, 200, "{revalidated}");
    assert_eq!(revalidated["valid"], true);
    assert!(
        revalidated["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "warning")
    );

    assert!(h.woken.lock().unwrap().is_empty());
    let (status, done) = h
        .call(
            "POST",
            &format!("/api/quarantine/{id}/reprocess"),
            &[ANA],
            br#"{"reason": "fixed"}"#,
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let new_id = MessageId(done["message_id"].as_i64().unwrap());
    assert!(new_id > message_id);
    assert_eq!(*h.woken.lock().unwrap(), ["iz"]);

    // A new journal message, `received` on the same channel, with the corrected content.
    let again = h.store.journal().get(new_id).unwrap().unwrap();
    assert_eq!(again.entry.state, MessageState::Received);
    assert_eq!(again.entry.channel, "iz");
    assert_eq!(again.raw, good);
    assert_eq!(again.entry.control_id, "NIST-IZ-001.00");
    assert!(
        again
            .entry
            .state_reason
            .as_deref()
            .unwrap()
            .contains(&format!("quarantine entry {id}"))
    );
    let (_, detail) = h.get(&format!("/api/quarantine/{id}")).await;
    assert_eq!(detail["status"], "reprocessed");
    assert_eq!(detail["status_by"], "ana.lyst");
    assert_eq!(detail["status_reason"], "fixed");
    assert_eq!(detail["reprocessed_as"], new_id.0);

    // Done is done: no second reprocess, no later edit.
    let (status, body) = h
        .call(
            "POST",
            &format!("/api/quarantine/{id}/reprocess"),
            &[ANA],
            b"",
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("reprocessed"));
    let (status, _) = h
        .call(
            "PUT",
            &format!("/api/quarantine/{id}"),
            &[ANA, ("X-Corridor-Reason", "again")],
            &good,
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_reprocessed_message_that_fails_again_names_its_predecessor() {
    let h = start().await;
    let bad = without_birth_date(&iz_adult(IZ_ADULTS[1]));
    let (first, _) = h.receive("iz", bad.clone()).await;
    let entry = h.entry_of(first).await;
    // Unchanged, it still fails: reprocessing asks for force.
    let (status, refused) = h
        .call(
            "POST",
            &format!("/api/quarantine/{entry}/reprocess"),
            &[ANA],
            b"",
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("still has 1 validation error")
    );
    // Forced through unchanged: the pipeline validates it again and quarantines it again.
    let (status, done) = h
        .call(
            "POST",
            &format!("/api/quarantine/{entry}/reprocess"),
            &[ANA],
            br#"{"force": true}"#,
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let new_id = MessageId(done["message_id"].as_i64().unwrap());
    let raw = h.store.journal().get(new_id).unwrap().unwrap().raw;
    assert_eq!(raw, bad);
    // What the pipeline does with the `received` message, on the journal id it got.
    let validation = h.validators.channel("iz");
    let parsed = hl7v2::Message::parse(&raw).unwrap();
    let validated = Validated::new("iz", Header::of(&parsed), &validation.validate(&parsed));
    assert!(validated.has_errors());
    h.store
        .write(move |conn| {
            quarantine::record_failure_in(conn, new_id, &validated, UnixMicros::now()).map(|_| ())
        })
        .await
        .unwrap();
    let second = h.entry_of(new_id).await;
    assert_ne!(second, entry);
    let (_, detail) = h.get(&format!("/api/quarantine/{second}")).await;
    assert_eq!(detail["reprocessed_from"], entry.0);
    assert_eq!(detail["status"], "open");
}

#[tokio::test]
async fn many_entries_are_reprocessed_at_once_by_ids_or_by_filter() {
    let h = start().await;
    let mut entries = Vec::new();
    for name in IZ_ADULTS {
        let (id, failed) = h.receive("iz", without_birth_date(&iz_adult(name))).await;
        assert!(failed, "{name}");
        entries.push(h.entry_of(id).await);
    }
    // A valid message is not quarantined.
    let (valid, failed) = h.receive("iz", iz_adult(IZ_ADULTS[0])).await;
    assert!(!failed);
    let q = Quarantine::new(h.store.clone(), Validators::new());
    assert_eq!(q.entry_of_message(valid).await.unwrap(), None);

    // Every filter at once.
    let (status, listed) = h
        .get("/api/quarantine?channel=iz&sender=Test%20EHR%20Application&type=VXU&status=open")
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total"], 4);
    for (query, total) in [
        ("type=VXU%5EV04", 4),
        ("type=VX", 0),
        ("type=ORU", 0),
        ("sender=Test%20EHR%20Application&channel=lab", 0),
        ("status=reprocessed", 0),
    ] {
        let (status, listed) = h.get(&format!("/api/quarantine?{query}")).await;
        assert_eq!(status, 200, "{listed}");
        assert_eq!(listed["total"], total, "{query}");
        assert_eq!(
            listed["entries"].as_array().unwrap().len(),
            total,
            "{query}"
        );
    }

    // One discarded first: bulk reprocess reports it and goes on with the others.
    let (status, body) = h
        .call(
            "POST",
            &format!("/api/quarantine/{}/discard", entries[3]),
            &[ANA],
            br#"{"reason": "test message sent to production"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Still failing, they are refused one by one without force.
    let ids = json!({"ids": [entries[0].0, entries[1].0]});
    let (status, body) = h
        .call(
            "POST",
            "/api/quarantine/reprocess",
            &[ANA],
            ids.to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reprocessed"], 0);
    assert!(
        body["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("still has 1 validation error")
    );

    let ids = json!({"ids": [entries[0].0, entries[1].0, entries[3].0], "reason": "birth dates restored upstream", "force": true});
    let (status, body) = h
        .call(
            "POST",
            "/api/quarantine/reprocess",
            &[ANA, ("Content-Type", "application/json")],
            ids.to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reprocessed"], 2);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["reprocessed"], true);
    assert_eq!(results[1]["reprocessed"], true);
    assert_eq!(results[2]["reprocessed"], false);
    assert!(results[2]["error"].as_str().unwrap().contains("discarded"));
    for r in &results[..2] {
        let new_id = MessageId(r["message_id"].as_i64().unwrap());
        let stored = h.store.journal().get(new_id).unwrap().unwrap();
        assert_eq!(stored.entry.state, MessageState::Received);
        assert_eq!(stored.entry.channel, "iz");
    }

    // By filter: the one open entry left.
    let (status, body) = h
        .call(
            "POST",
            "/api/quarantine/reprocess",
            &[ANA],
            br#"{"channel": "iz", "type": "VXU", "force": true}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reprocessed"], 1);
    assert_eq!(body["results"][0]["id"], entries[2].0);
    assert_eq!(
        h.woken.lock().unwrap().len(),
        2,
        "one wake per request and channel"
    );

    let (_, open) = h.get("/api/quarantine?status=open").await;
    assert_eq!(open["total"], 0);
    let (_, done) = h.get("/api/quarantine?status=reprocessed&channel=iz").await;
    assert_eq!(done["total"], 3);
    let (_, discarded) = h.get("/api/quarantine?status=discarded").await;
    assert_eq!(discarded["total"], 1);
    assert_eq!(
        discarded["entries"][0]["status_reason"],
        "test message sent to production"
    );
    // 4 reprocessed journal messages were appended: 5 received + 3.
    assert_eq!(
        h.store
            .journal()
            .count(&store::JournalFilter::default())
            .unwrap(),
        8
    );
    // Paging: two at a time, newest first.
    let (_, page) = h.get("/api/quarantine?limit=2").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let next = page["next_before"].as_i64().unwrap();
    let (_, rest) = h
        .get(&format!("/api/quarantine?limit=2&before={next}"))
        .await;
    assert_eq!(rest["entries"][0]["id"], next - 1);
}

#[tokio::test]
async fn data_quality_over_time_counts_each_finding_in_its_sender_s_day_and_hour_and_outlives_the_quarantine()
 {
    let h = start().await;
    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;
    let now = UnixMicros::now().0;
    let today = now - now.rem_euclid(DAY);
    let two_days_ago = today - 2 * DAY;
    // Two days ago at 10:15: one IZ message without its birth date; yesterday at
    // 09:30 two more and a valid one; the lab feed yesterday: one failing ELR.
    let at = |day: i64, minutes: i64| UnixMicros(day + minutes * 60_000_000);
    h.receive_at(
        "iz",
        without_birth_date(&iz_adult(IZ_ADULTS[0])),
        at(two_days_ago, 615),
    )
    .await;
    for name in &IZ_ADULTS[1..3] {
        h.receive_at(
            "iz",
            without_birth_date(&iz_adult(name)),
            at(today - DAY, 570),
        )
        .await;
    }
    h.receive_at("iz", iz_adult(IZ_ADULTS[3]), at(today - DAY, 571))
        .await;
    let (_, failed) = h
        .receive_at("lab", read(ELR_PUERTO_RICO), at(today - DAY, 600))
        .await;
    assert!(failed);

    let since = datetime::rfc3339::format_micros(two_days_ago - DAY);
    let (status, dq) = h
        .get(&format!(
            "/api/data-quality?sender=Test%20EHR%20Application&since={since}&bucket=day"
        ))
        .await;
    assert_eq!(status, 200, "{dq}");
    let over = &dq["over_time"];
    assert_eq!(over["bucket"], "day");
    let day = |d: i64| datetime::rfc3339::format_micros(d);
    let senders = over["senders"].as_array().unwrap();
    assert_eq!(senders.len(), 2, "{over}");
    assert_eq!(
        (
            &senders[0]["start"],
            &senders[0]["validated"],
            &senders[0]["with_errors"]
        ),
        (&json!(day(two_days_ago)), &json!(1), &json!(1))
    );
    assert_eq!(
        (
            &senders[1]["start"],
            &senders[1]["validated"],
            &senders[1]["with_errors"]
        ),
        (&json!(day(today - DAY)), &json!(3), &json!(2))
    );
    let pid7: Vec<(&Value, &Value)> = over["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["path"] == "VXU_V04.PID-7")
        .map(|f| (&f["start"], &f["count"]))
        .collect();
    assert_eq!(
        pid7,
        vec![
            (&json!(day(two_days_ago)), &json!(1)),
            (&json!(day(today - DAY)), &json!(2))
        ]
    );
    assert!(
        over["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["sender"] == "Test EHR Application"),
        "the lab sender is filtered out"
    );

    // Per hour: yesterday's IZ messages fall in the 09:00 hour.
    let (_, hourly) = h
        .get(&format!(
            "/api/data-quality?channel=iz&since={}&bucket=hour",
            day(today - DAY)
        ))
        .await;
    let hours = hourly["over_time"]["senders"].as_array().unwrap();
    assert_eq!(hours.len(), 1, "{hourly}");
    assert_eq!(hours[0]["start"], json!(day(today - DAY + 9 * HOUR)));
    assert_eq!(hours[0]["validated"], 3);

    // The quarantine's rows go (retention deletes them with their messages); the
    // counters over time stay.
    h.store
        .write(|conn| {
            conn.execute("DELETE FROM quarantine", [])?;
            Ok(())
        })
        .await
        .unwrap();
    let (_, after) = h
        .get(&format!(
            "/api/data-quality?sender=Test%20EHR%20Application&since={since}&bucket=day"
        ))
        .await;
    assert_eq!(after["over_time"], dq["over_time"]);

    // The console's page: a table per sender, one row per day with messages.
    let (status, page) = h
        .call_text(
            "GET",
            &format!("/console/data-quality?since={since}&bucket=day"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h3>Test EHR Application</h3>"), "{page}");
    assert!(page.contains("<h3>STARLIMS.CDC.Stag</h3>"));
    assert!(page.contains(&format!(
        "<th scope=\"row\">{}</th><td class=\"n\">3</td><td class=\"n\">2</td>",
        &day(today - DAY)[..10]
    )));

    // Bad ranges are refused, naming the parameter.
    let (status, error) = h.get("/api/data-quality?bucket=week").await;
    assert_eq!(status, 400);
    assert!(error.to_string().contains("bucket"), "{error}");
    let (status, error) = h.get("/api/data-quality?since=last%20week").await;
    assert_eq!(status, 400);
    assert!(error.to_string().contains("since"), "{error}");
}

#[tokio::test]
async fn data_quality_counts_findings_by_sender_type_and_path_in_the_api_and_metrics() {
    let h = start().await;
    for name in IZ_ADULTS {
        h.receive("iz", without_birth_date(&iz_adult(name))).await;
    }
    h.receive("iz", iz_adult(IZ_ADULTS[0])).await;
    let (_, failed) = h.receive("lab", read(ELR_PUERTO_RICO)).await;
    assert!(failed, "ELR-010 lists no territories");
    let (_, failed) = h.receive("lab", read(ELR_TWO_ORDERS)).await;
    assert!(!failed);

    let (status, dq) = h
        .get("/api/data-quality?sender=Test%20EHR%20Application&type=VXU%5EV04")
        .await;
    assert_eq!(status, 200, "{dq}");
    let messages = dq["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["channel"], "iz");
    assert_eq!(messages[0]["validated"], 5);
    assert_eq!(messages[0]["with_errors"], 4);
    let findings = dq["findings"].as_array().unwrap();
    let pid7: Vec<&Value> = findings
        .iter()
        .filter(|f| f["path"] == "VXU_V04.PID-7")
        .collect();
    assert_eq!(pid7.len(), 1);
    assert_eq!(pid7[0]["code"], 101);
    assert_eq!(pid7[0]["severity"], "error");
    assert_eq!(pid7[0]["count"], 4);
    assert_eq!(pid7[0]["messages"], 4);
    assert!(
        findings
            .iter()
            .all(|f| f["sender"] == "Test EHR Application")
    );

    // The ELR sender: its own profile (keyed by MSH-3's first component), its own rows.
    let (_, lab) = h.get("/api/data-quality?channel=lab").await;
    assert_eq!(lab["messages"][0]["sender"], "STARLIMS.CDC.Stag");
    assert_eq!(lab["messages"][0]["message_type"], "ORU^R01");
    assert_eq!(lab["messages"][0]["validated"], 2);
    assert_eq!(lab["messages"][0]["with_errors"], 1);
    let lab_findings = lab["findings"].as_array().unwrap();
    let orc22 = lab_findings
        .iter()
        .find(|f| f["path"] == "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.ORC-22.4")
        .expect("ELR-010 on ORC-22.4");
    assert_eq!(
        (orc22["code"].as_u64(), orc22["severity"].as_str()),
        (Some(103), Some("error"))
    );
    // Counters never carry repetition numbers, however many groups a message has.
    assert!(
        lab_findings
            .iter()
            .all(|f| !f["path"].as_str().unwrap().contains('['))
    );
    let (_, all) = h.get("/api/data-quality").await;
    assert_eq!(
        all["findings"].as_array().unwrap().len(),
        findings.len() + lab_findings.len()
    );

    // The same counts in the Prometheus text.
    let text = quarantine::prometheus_text(&h.store).unwrap();
    assert!(text.contains("# TYPE corridor_findings_total counter"));
    assert!(
        text.contains(
            "corridor_findings_total{channel=\"iz\",sender=\"Test EHR Application\",\
             message_type=\"VXU^V04\",path=\"VXU_V04.PID-7\",code=\"101\",severity=\"error\"} 4\n"
        ),
        "{text}"
    );
    assert!(text.contains(
        "corridor_findings_total{channel=\"lab\",sender=\"STARLIMS.CDC.Stag\",\
         message_type=\"ORU^R01\",path=\"ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.ORC-22.4\",\
         code=\"103\",severity=\"error\"} 1\n"
    ));
    assert!(text.contains(
        "corridor_validated_messages_total{channel=\"iz\",sender=\"Test EHR Application\",\
         message_type=\"VXU^V04\",outcome=\"errors\"} 4\n"
    ));
    assert!(text.contains("corridor_quarantine_entries{channel=\"iz\",status=\"open\"} 4\n"));
    assert!(text.contains("corridor_quarantine_entries{channel=\"lab\",status=\"open\"} 1\n"));
    let series = text
        .lines()
        .filter(|l| l.starts_with("corridor_findings_total{"))
        .count();
    assert_eq!(series, findings.len() + lab_findings.len());

    // A series limit folds the rarest findings into one `(other)` series per channel and
    // severity, keeping the total.
    let limited = h
        .store
        .read(|conn| quarantine::prometheus_text_in(conn, 1))
        .unwrap();
    let total = |text: &str| -> i64 {
        text.lines()
            .filter(|l| l.starts_with("corridor_findings_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
            .sum()
    };
    assert_eq!(total(&limited), total(&text));
    assert!(limited.contains("path=\"(other)\""));
}

#[tokio::test]
async fn bad_requests_get_clear_4xx_errors_and_change_nothing() {
    let h = start().await;
    let bad = without_birth_date(&iz_adult(IZ_ADULTS[2]));
    let (message_id, _) = h.receive("iz", bad.clone()).await;
    let id = h.entry_of(message_id).await.0;
    let why = ("X-Corridor-Reason", "fix");

    let expect = |status: u16, body: &Value, want: u16, words: &str| {
        assert_eq!(status, want, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(words), "{error:?} should say {words:?}");
    };

    let (s, b) = h.get("/api/quarantine/999999").await;
    expect(s, &b, 404, "quarantine entry 999999 does not exist");
    let (s, b) = h.get("/api/quarantine/abc").await;
    expect(s, &b, 400, "not a quarantine entry id");
    let (s, b) = h
        .call("PUT", "/api/quarantine/999999", &[ANA, why], &bad)
        .await;
    expect(s, &b, 404, "does not exist");
    let (s, b) = h
        .call("POST", "/api/quarantine/999999/revalidate", &[], b"")
        .await;
    expect(s, &b, 404, "does not exist");
    let (s, b) = h
        .call("POST", "/api/quarantine/999999/reprocess", &[ANA], b"")
        .await;
    expect(s, &b, 404, "does not exist");

    let edit = format!("/api/quarantine/{id}");
    let (s, b) = h.call("PUT", &edit, &[ANA, why], b"").await;
    expect(s, &b, 400, "body is empty");
    let (s, b) = h.call("PUT", &edit, &[ANA, why], b"\r\n \n").await;
    expect(s, &b, 400, "body is empty");
    let (s, b) = h.call("PUT", &edit, &[why], &bad).await;
    expect(s, &b, 400, "X-Corridor-User");
    let (s, b) = h.call("PUT", &edit, &[ANA], &bad).await;
    expect(s, &b, 400, "say why");
    let (s, b) = h
        .call("PUT", &edit, &[ANA, why], b"this is not an HL7 message")
        .await;
    expect(s, &b, 422, "not an HL7 v2 message");

    let (s, b) = h.get("/api/quarantine?status=pending").await;
    expect(s, &b, 400, "\"pending\": expected");
    let (s, b) = h.get("/api/quarantine?colour=red").await;
    expect(s, &b, 400, "colour");
    let (s, b) = h.get("/api/quarantine?limit=many").await;
    expect(s, &b, 400, "limit");
    let (s, b) = h.get("/api/data-quality?senders=x").await;
    expect(s, &b, 400, "senders");

    let (s, b) = h
        .call("POST", "/api/quarantine/reprocess", &[ANA], b"")
        .await;
    expect(s, &b, 400, "ids");
    let (s, b) = h
        .call(
            "POST",
            "/api/quarantine/reprocess",
            &[ANA],
            b"{\"ids\": []}",
        )
        .await;
    expect(s, &b, 400, "ids is empty");
    let (s, b) = h
        .call("POST", "/api/quarantine/reprocess", &[ANA], b"{\"ids\": [1")
        .await;
    expect(s, &b, 400, "request body");
    let (s, b) = h
        .call(
            "POST",
            "/api/quarantine/reprocess",
            &[ANA],
            b"{\"ids\": [1], \"channel\": \"iz\"}",
        )
        .await;
    expect(s, &b, 400, "not both");
    let (s, b) = h
        .call("POST", "/api/quarantine/reprocess", &[], b"{\"ids\": [1]}")
        .await;
    expect(s, &b, 400, "X-Corridor-User");
    let (s, b) = h
        .call(
            "POST",
            &format!("/api/quarantine/{id}/discard"),
            &[ANA],
            b"",
        )
        .await;
    expect(s, &b, 400, "say why");

    // Nothing above changed the entry or the journal.
    let (_, detail) = h.get(&format!("/api/quarantine/{id}")).await;
    assert_eq!(detail["status"], "open");
    assert_eq!(detail["revision"], 0);
    assert_eq!(detail["history"].as_array().unwrap().len(), 0);
    assert_eq!(detail["content"], String::from_utf8_lossy(&bad).as_ref());
    assert_eq!(
        h.store
            .journal()
            .count(&store::JournalFilter::default())
            .unwrap(),
        1
    );
    assert!(h.woken.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_edit_that_is_still_wrong_is_kept_with_its_findings() {
    let h = start().await;
    let good = iz_adult(IZ_ADULTS[3]);
    let bad = without_birth_date(&good);
    let (message_id, _) = h.receive("iz", bad.clone()).await;
    let id = h.entry_of(message_id).await.0;
    // A first attempt that fixes nothing, then the real fix: both stay in the history.
    let (s, first) = h
        .call(
            "PUT",
            &format!("/api/quarantine/{id}?reason=first%20try"),
            &[("X-Corridor-User", "bo")],
            &bad,
        )
        .await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["valid"], false);
    assert_eq!(first["errors"], 1);
    let (s, second) = h
        .call(
            "PUT",
            &format!("/api/quarantine/{id}"),
            &[ANA, ("X-Corridor-Reason", "DOB from registration")],
            &good,
        )
        .await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["valid"], true);
    let (_, detail) = h.get(&format!("/api/quarantine/{id}")).await;
    let history = detail["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["edited_by"], "bo");
    assert_eq!(history[0]["reason"], "first try");
    assert_eq!(history[1]["edited_by"], "ana.lyst");
    assert_eq!(history[1]["previous"], history[0]["content"]);
    assert_eq!(detail["revision"], 2);
    assert_eq!(detail["edits"], 2);
}

#[tokio::test]
async fn a_quarantine_entrys_original_is_the_journal_entry_the_message_browser_shows() {
    let h = start().await;
    let bad = without_birth_date(&iz_adult(IZ_ADULTS[0]));
    let (message_id, failed) = h.receive("iz", bad).await;
    assert!(failed);
    let id = h.entry_of(message_id).await;

    let (status, entry) = h.get(&format!("/api/quarantine/{}", id.0)).await;
    assert_eq!(status, 200, "{entry}");
    let (status, mut message) = h.get(&format!("/api/messages/{}", message_id.0)).await;
    assert_eq!(status, 200, "{message}");
    // One shape: the browser's message, without its destination entries.
    message.as_object_mut().unwrap().remove("destinations");
    assert_eq!(entry["original"], message);
    assert_eq!(entry["original"]["state"], "quarantined");
    assert!(entry["original"]["size"].as_u64().unwrap() > 0);
}

/// Each `*_at` time (microseconds) has its twin without `_at`: RFC 3339 in UTC for the
/// same instant.
fn assert_iso_beside_micros(object: &Value, fields: &[&str]) {
    for field in fields {
        let micros = object[*field]
            .as_i64()
            .unwrap_or_else(|| panic!("{field}: {object}"));
        let twin = &object[field.trim_end_matches("_at")];
        let text = twin.as_str().unwrap_or_else(|| panic!("{field}: {object}"));
        assert!(text.ends_with('Z'), "{field}: {object}");
        assert_eq!(
            datetime::rfc3339::parse_time_or_date(text),
            Ok(micros),
            "{field}: {object}"
        );
    }
}
