//! Loads kept in a real SQLite store: versioned, the newest of each name in
//! force, a refresh swapping the snapshot; unmapped codes counted and exported
//! as a CSV that loads back.

use terminology::stored::{Format, record_unmapped_in, unmapped_csv};
use terminology::{LoadFile, MapScope, Scope, TerminologyService, UnmappedCode, UnmappedReason};

const MAP_V1: &str = "source_system,source_code,target_system,target_code,target_display,equivalence\n\
                      L,HGBA1C,http://loinc.org,4548-4,Hemoglobin A1c,equivalent\n";
const MAP_V2: &str = "source_system,source_code,target_system,target_code,target_display,equivalence\n\
                      L,HGBA1C,http://loinc.org,17856-6,Hemoglobin A1c HPLC,equivalent\n";

fn file(name: &str, text: &str) -> Vec<LoadFile> {
    vec![LoadFile {
        name: name.to_owned(),
        text: text.to_owned(),
    }]
}

fn target(service: &TerminologyService, code: &str) -> Option<String> {
    service
        .current()
        .translate("L", code, &Scope::default())
        .into_iter()
        .find(|m| m.is_match())
        .and_then(|m| m.concept)
        .map(|c| c.code)
}

#[tokio::test]
async fn loads_are_versioned_and_a_refresh_puts_the_newest_of_each_name_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(dir.path()).unwrap();
    TerminologyService::migrate(&store).await.unwrap();
    let service = TerminologyService::new(store.clone(), true);
    assert_eq!(service.refresh().unwrap(), Some(0));
    // The starter map is in force on an empty store.
    let glucose = service.current().translate(
        "L",
        "GLU",
        &Scope {
            field: Some("OBX-3"),
            ..Scope::default()
        },
    );
    assert!(
        glucose
            .iter()
            .any(|m| m.concept.as_ref().is_some_and(|c| c.code == "2345-7"))
    );
    assert_eq!(target(&service, "HGBA1C"), None);

    let first = service
        .load(
            "lab",
            file("lab.csv", MAP_V1),
            MapScope::everywhere(),
            "test",
        )
        .await
        .unwrap();
    // Stored but not in force until a refresh.
    assert_eq!(target(&service, "HGBA1C"), None);
    assert_eq!(service.refresh().unwrap(), Some(first.version));
    assert_eq!(target(&service, "HGBA1C").as_deref(), Some("4548-4"));
    assert_eq!(service.refresh().unwrap(), None, "nothing new");

    let second = service
        .load(
            "lab",
            file("lab.csv", MAP_V2),
            MapScope::everywhere(),
            "test",
        )
        .await
        .unwrap();
    assert!(second.version > first.version);
    service.refresh().unwrap();
    assert_eq!(target(&service, "HGBA1C").as_deref(), Some("17856-6"));

    let list = service.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].version, second.version);
    assert!(list[0].in_force && !list[1].in_force);
    assert_eq!(list[0].files, vec!["lab.csv".to_owned()]);
    assert!(
        list[0].summary.contains("1 source code"),
        "{}",
        list[0].summary
    );

    // A second service over the same file (another process) sees the same content.
    let other = TerminologyService::new(store.clone(), false);
    other.refresh().unwrap();
    assert_eq!(target(&other, "HGBA1C").as_deref(), Some("17856-6"));
    assert_eq!(target(&other, "GLU"), None, "starter off");
}

#[tokio::test]
async fn bad_content_is_refused_whole_naming_the_file_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(dir.path()).unwrap();
    TerminologyService::migrate(&store).await.unwrap();
    let service = TerminologyService::new(store, false);
    let bad = "source_system,source_code,target_system,target_code,equivalence\nL,A,http://loinc.org,1-8,sideways\n";
    let mut files = file("good.csv", MAP_V1);
    files.extend(file("bad.csv", bad));
    let error = service
        .load("lab", files, MapScope::everywhere(), "test")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("bad.csv line 2"), "{error}");
    assert!(service.list().unwrap().is_empty());
}

#[test]
fn the_loinc_table_loads_as_the_loinc_code_system() {
    let table = "\"LOINC_NUM\",\"COMPONENT\",\"PROPERTY\",\"STATUS\",\"SHORTNAME\",\"LONG_COMMON_NAME\"\n\
                 \"2345-7\",\"Glucose\",\"MCnc\",\"ACTIVE\",\"Glucose SerPl-mCnc\",\"Glucose [Mass/volume] in Serum or Plasma\"\n\
                 \"1-8\",\"Acyclovir\",\"Susc\",\"DEPRECATED\",\"Acyclovir Islt MIC\",\"Acyclovir [Susceptibility]\"\n";
    assert_eq!(Format::detect(table), Format::LoincTable);
    let (format, content) =
        terminology::stored::parse_file("Loinc.csv", table, &MapScope::everywhere()).unwrap();
    assert_eq!(format, Format::LoincTable);
    let t = terminology::Terminology::new(1, content.code_systems, Vec::new());
    let glucose = t.lookup("http://loinc.org", "2345-7").unwrap();
    assert_eq!(
        glucose.display.as_deref(),
        Some("Glucose [Mass/volume] in Serum or Plasma")
    );
    assert_eq!(
        t.lookup("LN", "1-8").unwrap().definition.as_deref(),
        Some("status DEPRECATED")
    );
}

#[tokio::test]
async fn unmapped_codes_are_counted_and_their_csv_filled_in_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::open(dir.path()).unwrap();
    TerminologyService::migrate(&store).await.unwrap();
    let service = TerminologyService::new(store.clone(), false);
    let code = UnmappedCode {
        sender: "LAB@HOSP".into(),
        field: "OBX-3".into(),
        system: "L".into(),
        code: "XYZ".into(),
        display: Some("Mystery, test".into()),
        reason: UnmappedReason::NoMapping,
    };
    for (id, at) in [(7, 100), (9, 300), (8, 200)] {
        let code = code.clone();
        store
            .write(move |conn| Ok(record_unmapped_in(conn, "lab", id, at, &[code])?))
            .await
            .unwrap();
    }
    let rows = service.unmapped().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (
            row.count,
            row.first_seen,
            row.last_seen,
            row.example_message_id
        ),
        (3, 100, 300, 9)
    );
    let csv = unmapped_csv(&rows);
    assert!(
        csv.starts_with("source_system,source_code,source_display,target_system"),
        "{csv}"
    );
    assert!(
        csv.contains("L,XYZ,\"Mystery, test\",,,,,LAB@HOSP,OBX-3,,3,100,300,9"),
        "{csv}"
    );
    // Filled in, it loads back scoped to the sender and field.
    let filled = csv.replace(
        ",,,,,LAB@HOSP",
        ",http://loinc.org,12345-6,Mystery,equivalent,LAB@HOSP",
    );
    service
        .load(
            "analyst",
            file("unmapped.csv", &filled),
            MapScope::everywhere(),
            "test",
        )
        .await
        .unwrap();
    service.refresh().unwrap();
    let at = Scope {
        application: Some("LAB"),
        facility: Some("HOSP"),
        field: Some("OBX-3"),
    };
    let found = service.current().translate("L", "XYZ", &at);
    assert_eq!(
        found[0].concept.as_ref().map(|c| c.code.as_str()),
        Some("12345-6")
    );
    assert!(
        service
            .current()
            .translate("L", "XYZ", &Scope::default())
            .iter()
            .all(|m| !m.is_match())
    );
}
