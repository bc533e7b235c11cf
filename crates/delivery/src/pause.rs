//! Paused destinations: an operator's pause. A paused destination's worker delivers
//! nothing (the batch it is delivering when paused finishes); routing goes on queuing
//! for it, in order, and once resumed it delivers its queue from the oldest entry, as
//! if it had been slow. Kept in `delivery_paused`, so a pause survives a restart.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use store::UnixMicros;
use store::rusqlite::{Connection, params};

/// Who paused a destination, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedDestination {
    /// The channel.
    pub channel: String,
    /// The destination's name.
    pub destination: String,
    /// When it was paused.
    pub paused_at: UnixMicros,
    /// Who paused it (`user:alice`, `token:3 (alice)`).
    pub paused_by: String,
}

/// The paused destinations, as stored; shared by every worker, which looks before each
/// batch.
#[derive(Debug, Default)]
pub(crate) struct Paused {
    set: RwLock<BTreeMap<(String, String), PausedDestination>>,
}

impl Paused {
    /// Reads the stored pauses.
    pub(crate) fn load(conn: &Connection) -> store::Result<Paused> {
        let mut statement = conn.prepare(
            "SELECT channel, destination, paused_at, paused_by FROM delivery_paused \
             ORDER BY channel, destination",
        )?;
        let rows = statement.query_map([], |r| {
            Ok(PausedDestination {
                channel: r.get(0)?,
                destination: r.get(1)?,
                paused_at: UnixMicros(r.get(2)?),
                paused_by: r.get(3)?,
            })
        })?;
        let mut set = BTreeMap::new();
        for row in rows {
            let row = row?;
            set.insert((row.channel.clone(), row.destination.clone()), row);
        }
        Ok(Paused {
            set: RwLock::new(set),
        })
    }

    pub(crate) fn contains(&self, channel: &str, destination: &str) -> bool {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&(channel.to_owned(), destination.to_owned()))
    }

    pub(crate) fn get(&self, channel: &str, destination: &str) -> Option<PausedDestination> {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(channel.to_owned(), destination.to_owned()))
            .cloned()
    }

    pub(crate) fn all(&self) -> Vec<PausedDestination> {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(crate) fn insert(&self, paused: PausedDestination) {
        self.set
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((paused.channel.clone(), paused.destination.clone()), paused);
    }

    pub(crate) fn remove(&self, channel: &str, destination: &str) {
        self.set
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(channel.to_owned(), destination.to_owned()));
    }
}

/// Records a pause; an existing one keeps its time and author. True when it was new.
pub(crate) fn pause_in(conn: &Connection, paused: &PausedDestination) -> store::Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO delivery_paused (channel, destination, paused_at, paused_by) \
         VALUES (?1, ?2, ?3, ?4)",
        params![
            paused.channel,
            paused.destination,
            paused.paused_at.0,
            paused.paused_by
        ],
    )?;
    Ok(n == 1)
}

/// Removes a pause. True when there was one.
pub(crate) fn resume_in(
    conn: &Connection,
    channel: &str,
    destination: &str,
) -> store::Result<bool> {
    let n = conn.execute(
        "DELETE FROM delivery_paused WHERE channel = ?1 AND destination = ?2",
        params![channel, destination],
    )?;
    Ok(n == 1)
}
