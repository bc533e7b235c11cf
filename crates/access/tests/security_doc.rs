//! `docs/security.md`'s roles table says what the code's table does.

use access::{Permission, ROLES, Role};

#[test]
fn the_documented_roles_table_is_the_codes() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/security.md"
    ))
    .unwrap();
    let rows: Vec<Vec<&str>> = doc
        .lines()
        .skip_while(|line| !line.starts_with("| role |"))
        .take_while(|line| line.starts_with('|'))
        .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert!(!rows.is_empty(), "docs/security.md has no roles table");
    let heading: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    assert_eq!(rows[0][1..], heading[..], "the table's columns");
    let documented: Vec<(Role, Vec<Permission>)> = rows[2..]
        .iter()
        .map(|row| {
            let role: Role = row[0].parse().unwrap();
            let granted = Permission::ALL
                .iter()
                .zip(&row[1..])
                .filter(|(_, cell)| match **cell {
                    "yes" => true,
                    "no" => false,
                    other => panic!("cell {other:?} of {role} is neither yes nor no"),
                })
                .map(|(p, _)| *p)
                .collect();
            (role, granted)
        })
        .collect();
    let code: Vec<(Role, Vec<Permission>)> = ROLES
        .iter()
        .map(|(role, granted)| (*role, granted.to_vec()))
        .collect();
    assert_eq!(documented, code);
}
