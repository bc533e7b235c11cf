//! A database source's rows each become exactly one journal message, even when
//! `corridor run` is killed (SIGKILL) again and again while it reads them.
//!
//! Rows are inserted continuously into a real PostgreSQL table (127.0.0.1:5432, a
//! database of its own) while the engine polls it; the engine is killed at random
//! moments and restarted on the same data directory. The source's duplicate window is
//! off, so a row read twice would be stored twice. At the end every row is in the
//! journal once, in order: its position was committed with its message.
//! `CORRIDOR_CRASH_SEED` repeats a run.

#[path = "send_support.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;
use test_support::psql;

const ROWS: u64 = 1_500;
const KILLS: u64 = 4;

/// The `orders` channel's control ids, in journal order.
fn orders(data: &std::path::Path) -> Vec<String> {
    journal(data)
        .into_iter()
        .map(|(id, _, _)| id)
        .filter(|id| id.starts_with("orders-"))
        .collect()
}

#[test]
fn every_row_becomes_one_message_across_sigkills() {
    test_support::database_services();
    let seed = test_support::crash_seed("database source");

    let database = test_support::ScratchDatabase::create("corridor_src_crash", seed);
    let url = database.url.clone();
    psql(
        &url,
        "create table orders (id bigint primary key, mrn text)",
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "{}[channels.orders]\nsource = {{ type = \"database\", duplicate_window = \"off\", url = \"{url}\", \
         query = \"select id, mrn from orders where id > $1 order by id limit 50\", interval = \"20ms\", \
         template = \"MSH|^~\\\\&|DB|NORTH|||||ORM^O01||P|2.5\\rPID|1||{{mrn}}^^^NORTH^MR\" }}\n",
        lab_config("")
    );

    // Rows go in ten at a time while the engine starts, reads and is killed.
    let inserter = {
        let url = url.clone();
        std::thread::spawn(move || {
            let mut next = 1;
            while next <= ROWS {
                let last = (next + 9).min(ROWS);
                psql(
                    &url,
                    &format!(
                        "insert into orders select g, 'M' || g from generate_series({next}, {last}) g"
                    ),
                );
                next = last + 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    for kill in 0..KILLS {
        let run = Run::start(&data, &config);
        let stored = orders(&data).len();
        // Wait until this run stored something, then kill it at a moment of the seed's.
        let deadline = Instant::now() + Duration::from_secs(60);
        while orders(&data).len() == stored && (stored as u64) < ROWS {
            assert!(Instant::now() < deadline, "run {kill} stored no row");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis((seed + kill * 337) % 400));
        run.kill();
    }
    inserter.join().unwrap();

    let run = Run::start(&data, &config);
    let deadline = Instant::now() + Duration::from_secs(180);
    while (orders(&data).len() as u64) < ROWS {
        assert!(
            Instant::now() < deadline,
            "only {} of {ROWS} rows stored",
            orders(&data).len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(run.terminate(), Some(0));

    let got = orders(&data);
    let expected: Vec<String> = (1..=ROWS).map(|i| format!("orders-{i}")).collect();
    if got != expected {
        let mut seen = std::collections::BTreeSet::new();
        let twice: Vec<&String> = got.iter().filter(|id| !seen.insert(*id)).collect();
        let missing: Vec<&String> = expected.iter().filter(|id| !got.contains(id)).collect();
        panic!(
            "rows stored twice: {twice:?}; rows missing: {missing:?}; {} messages for {ROWS} rows",
            got.len()
        );
    }
}
