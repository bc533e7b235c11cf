//! Paused and stopped destinations: an operator's hold. A held destination's worker
//! delivers nothing (the batch it is delivering when held finishes); routing goes on
//! queuing for it, in order, and once started (resumed) it delivers its queue from the
//! oldest entry, as if it had been slow. A *stopped* destination also closes its
//! connection to the receiver (an MLLP socket, an SFTP session: the kinds that
//! implement `Destination::disconnect`) and opens none until started; a *paused* one
//! keeps it. Kept in `delivery_paused`
//! (`stopped` 0 or 1), so a hold survives a restart.

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
    /// Stopped (its connection to the receiver closed), not only paused.
    pub stopped: bool,
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
            "SELECT channel, destination, paused_at, paused_by, stopped FROM delivery_paused \
             ORDER BY channel, destination",
        )?;
        let rows = statement.query_map([], |r| {
            Ok(PausedDestination {
                channel: r.get(0)?,
                destination: r.get(1)?,
                paused_at: UnixMicros(r.get(2)?),
                paused_by: r.get(3)?,
                stopped: r.get::<_, i64>(4)? != 0,
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

    /// Whether a destination is held: None while it runs, else whether it is stopped.
    pub(crate) fn held(&self, channel: &str, destination: &str) -> Option<bool> {
        self.set
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(channel.to_owned(), destination.to_owned()))
            .map(|held| held.stopped)
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

/// Records a pause or a stop. The same hold again keeps the first one's time and
/// author; a stop of a paused destination (or a pause of a stopped one) replaces it.
/// True when something changed.
pub(crate) fn hold_in(conn: &Connection, held: &PausedDestination) -> store::Result<bool> {
    let n = conn.execute(
        "INSERT INTO delivery_paused (channel, destination, paused_at, paused_by, stopped) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (channel, destination) DO UPDATE SET \
         paused_at = excluded.paused_at, paused_by = excluded.paused_by, \
         stopped = excluded.stopped WHERE stopped <> excluded.stopped",
        params![
            held.channel,
            held.destination,
            held.paused_at.0,
            held.paused_by,
            i64::from(held.stopped)
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
