//! An operator's start, stop and pause of a channel (`POST /api/channels/{name}/...`),
//! kept in the store (component `engine_channel_control`) so it outlasts a restart and
//! a reload.
//!
//! - **paused**: the source keeps receiving, storing and acknowledging; the processor
//!   processes nothing, so messages wait `received` in the journal, in order, and are
//!   processed when the channel is started again;
//! - **stopped**: the source is shut down as at engine shutdown (an MLLP listener is
//!   closed, so a new connection is refused; an HTTP source's listener is closed; a
//!   directory is no longer read) and the processor processes nothing;
//! - **running**: no row.
//!
//! Messages another channel hands to a paused or stopped channel (a channel
//! destination) wait `received` in its journal like its own source's, and are processed
//! in order when it is started.
//!
//! A destination's pause and stop are `delivery`'s ([`delivery::Delivery::pause`],
//! [`delivery::Delivery::stop`]): both keep queuing and send nothing; a stopped one
//! also closes its connection to the receiver.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use store::rusqlite::{Connection, params};
use store::{Store, UnixMicros};
use tracing::{info, warn};

use crate::reload::Control;
use crate::sources::{ChannelSource, RunningSource};

/// The store component holding the channels' states.
pub const CHANNEL_CONTROL_COMPONENT: &str = "engine_channel_control";

static MIGRATIONS: &[store::Migration] = &[store::Migration {
    version: 1,
    description: "channels an operator paused or stopped",
    sql: "CREATE TABLE channel_control (
              channel    TEXT PRIMARY KEY,
              state      TEXT NOT NULL,     -- 'paused' or 'stopped'
              changed_at INTEGER NOT NULL,  -- µs since the epoch
              changed_by TEXT NOT NULL      -- who, as the audit trail names them
          );",
}];

/// A channel's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelState {
    Running,
    Paused,
    Stopped,
}

impl ChannelState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChannelState::Running => "running",
            ChannelState::Paused => "paused",
            ChannelState::Stopped => "stopped",
        }
    }

    fn parse(text: &str) -> Option<ChannelState> {
        match text {
            "paused" => Some(ChannelState::Paused),
            "stopped" => Some(ChannelState::Stopped),
            "running" => Some(ChannelState::Running),
            _ => None,
        }
    }
}

/// A paused or stopped channel, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Held {
    pub state: ChannelState,
    pub changed_at: UnixMicros,
    pub changed_by: String,
}

/// Every paused or stopped channel, shared by the processors (which look before each
/// batch) and the API.
#[derive(Debug, Default)]
pub(crate) struct ChannelStates {
    held: RwLock<HashMap<String, Held>>,
}

impl ChannelStates {
    /// Creates the table if missing and reads the stored states.
    pub(crate) async fn open(store: &Store) -> store::Result<ChannelStates> {
        store
            .migrate_component(CHANNEL_CONTROL_COMPONENT, MIGRATIONS)
            .await?;
        let held = store.read(load)?;
        Ok(ChannelStates {
            held: RwLock::new(held),
        })
    }

    pub(crate) fn state(&self, channel: &str) -> ChannelState {
        self.held(channel)
            .map_or(ChannelState::Running, |held| held.state)
    }

    pub(crate) fn held(&self, channel: &str) -> Option<Held> {
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(channel)
            .cloned()
    }

    /// Whether the channel's processor must wait (paused or stopped).
    pub(crate) fn holds(&self, channel: &str) -> bool {
        self.state(channel) != ChannelState::Running
    }

    /// Whether the channel's source must not run.
    pub(crate) fn stopped(&self, channel: &str) -> bool {
        self.state(channel) == ChannelState::Stopped
    }

    fn set(&self, channel: &str, held: Option<Held>) {
        let mut map = self.held.write().unwrap_or_else(PoisonError::into_inner);
        match held {
            Some(held) => map.insert(channel.to_owned(), held),
            None => map.remove(channel),
        };
    }

    /// Logs, at start, each channel of `channels` that stays paused or stopped and each
    /// destination that stays paused, so an operator's hold is not forgotten.
    pub(crate) fn log_at_start<'a>(
        &self,
        channels: impl Iterator<Item = &'a String>,
        delivery: &delivery::Delivery,
    ) {
        for name in channels {
            if let Some(held) = self.held(name) {
                warn!(
                    channel = %name,
                    state = held.state.as_str(),
                    since = %datetime::rfc3339::format_micros(held.changed_at.0),
                    by = %held.changed_by,
                    "channel is still {} as an operator left it; POST /api/channels/{name}/start runs it",
                    held.state.as_str()
                );
            }
        }
        for paused in delivery.paused_destinations() {
            let state = if paused.stopped { "stopped" } else { "paused" };
            warn!(
                channel = %paused.channel,
                destination = %paused.destination,
                state,
                since = %datetime::rfc3339::format_micros(paused.paused_at.0),
                by = %paused.paused_by,
                "destination is still {state} as an operator left it; its queue waits for a start"
            );
        }
    }
}

fn load(conn: &Connection) -> store::Result<HashMap<String, Held>> {
    let mut statement =
        conn.prepare("SELECT channel, state, changed_at, changed_by FROM channel_control")?;
    let rows = statement.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut held = HashMap::new();
    for row in rows {
        let (channel, state, at, by) = row?;
        match ChannelState::parse(&state) {
            Some(ChannelState::Running) => {}
            Some(state) => {
                held.insert(
                    channel,
                    Held {
                        state,
                        changed_at: UnixMicros(at),
                        changed_by: by,
                    },
                );
            }
            None => warn!(%channel, %state, "an unknown stored channel state is ignored"),
        }
    }
    Ok(held)
}

fn save(conn: &Connection, channel: &str, held: Option<&Held>) -> store::Result<()> {
    match held {
        Some(held) => conn.execute(
            "INSERT INTO channel_control (channel, state, changed_at, changed_by) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (channel) DO UPDATE SET \
             state = excluded.state, changed_at = excluded.changed_at, \
             changed_by = excluded.changed_by",
            params![
                channel,
                held.state.as_str(),
                held.changed_at.0,
                held.changed_by
            ],
        )?,
        None => conn.execute(
            "DELETE FROM channel_control WHERE channel = ?1",
            params![channel],
        )?,
    };
    Ok(())
}

impl Control {
    /// Every channel of the running configuration with its state and its destinations'.
    pub(crate) async fn channel_states(&self) -> Vec<api::ChannelControl> {
        let running = self.running.lock().await;
        let Some(running) = running.as_ref() else {
            return Vec::new();
        };
        running
            .config
            .channels
            .keys()
            .map(|name| self.channel_view(name))
            .collect()
    }

    fn channel_view(&self, name: &str) -> api::ChannelControl {
        let held = self.states.held(name);
        api::ChannelControl {
            channel: name.to_owned(),
            state: held
                .as_ref()
                .map_or(ChannelState::Running, |h| h.state)
                .as_str(),
            changed_at: held
                .as_ref()
                .map(|h| datetime::rfc3339::format_micros(h.changed_at.0)),
            changed_by: held.map(|h| h.changed_by),
            destinations: self
                .delivery
                .destinations_of(name)
                .into_iter()
                .map(|destination| {
                    let paused = self.delivery.paused(name, &destination);
                    api::DestinationControl {
                        state: match &paused {
                            None => "running",
                            Some(held) if held.stopped => "stopped",
                            Some(_) => "paused",
                        },
                        paused_at: paused
                            .as_ref()
                            .map(|p| datetime::rfc3339::format_micros(p.paused_at.0)),
                        paused_by: paused.map(|p| p.paused_by),
                        destination,
                    }
                })
                .collect(),
        }
    }

    /// Starts, pauses or stops a channel; see the module's documentation. Nothing
    /// changes when a step fails (a listener that cannot bind again, a refused write).
    pub(crate) async fn set_channel_state(
        &self,
        name: &str,
        action: api::ChannelAction,
        by: &str,
    ) -> Result<api::ChannelControl, api::ControlRefused> {
        let mut guard = self.running.lock().await;
        let Some(running) = guard.as_mut() else {
            return Err(api::ControlRefused::Unavailable(
                "Corridor is stopping".to_owned(),
            ));
        };
        let Some(channel) = running.config.channels.get(name).cloned() else {
            return Err(api::ControlRefused::NotFound(format!(
                "no channel {name:?} runs"
            )));
        };
        let next = match action {
            api::ChannelAction::Start => ChannelState::Running,
            api::ChannelAction::Pause => ChannelState::Paused,
            api::ChannelAction::Stop => ChannelState::Stopped,
        };
        let before = self.states.state(name);
        if before == next {
            return Ok(self.channel_view(name));
        }
        let held = (next != ChannelState::Running).then(|| Held {
            state: next,
            changed_at: UnixMicros::now(),
            changed_by: by.to_owned(),
        });
        // Leaving `stopped`: the source starts first, so a listener that cannot bind
        // again changes nothing.
        if before == ChannelState::Stopped {
            let intake = running.intakes.intake(name, &channel);
            let base = running.config.base_dir.clone();
            let source = ChannelSource::start(name, &channel, intake, &base)
                .await
                .map_err(|e| {
                    api::ControlRefused::Failed(format!(
                        "the source of channel {name:?} could not start: {e}"
                    ))
                })?;
            running.sources.insert(name, source);
        }
        let (row, channel_name) = (held.clone(), name.to_owned());
        let saved = self
            .store
            .write(move |conn| save(conn, &channel_name, row.as_ref()))
            .await;
        if let Err(e) = saved {
            if before == ChannelState::Stopped {
                if let Some(source) = running.sources.remove(name) {
                    source.shutdown(crate::reload::SOURCE_GRACE).await;
                }
            }
            return Err(api::ControlRefused::Failed(format!(
                "the channel's state could not be stored: {e}"
            )));
        }
        // The processor holds from here (it finishes the batch it is on).
        self.states.set(name, held);
        if next == ChannelState::Stopped {
            if let Some(source) = running.sources.remove(name) {
                if !source.shutdown(crate::reload::SOURCE_GRACE).await {
                    warn!(channel = %name, "connections still busy after the grace period were dropped; their senders will resend");
                }
            }
        }
        self.listeners.update(&running.sources);
        if next == ChannelState::Running {
            // What waited `received` is processed now.
            self.wakes.wake(name);
        }
        info!(channel = %name, from = before.as_str(), to = next.as_str(), by, "channel state changed");
        Ok(self.channel_view(name))
    }

    /// Starts, pauses or stops a destination of a running channel (`delivery`'s
    /// [`delivery::Delivery::pause`], [`delivery::Delivery::stop`] and
    /// [`delivery::Delivery::resume`]).
    pub(crate) async fn set_destination_state(
        &self,
        channel: &str,
        destination: &str,
        action: api::ChannelAction,
        by: &str,
    ) -> Result<api::ChannelControl, api::ControlRefused> {
        let guard = self.running.lock().await;
        if guard.is_none() {
            return Err(api::ControlRefused::Unavailable(
                "Corridor is stopping".to_owned(),
            ));
        }
        let changed = match action {
            api::ChannelAction::Pause => self.delivery.pause(channel, destination, by).await,
            api::ChannelAction::Stop => self.delivery.stop(channel, destination, by).await,
            api::ChannelAction::Start => {
                if self
                    .delivery
                    .destinations_of(channel)
                    .iter()
                    .any(|d| d == destination)
                {
                    self.delivery.resume(channel, destination).await
                } else {
                    Err(delivery::ControlError::Unknown {
                        channel: channel.to_owned(),
                        destination: destination.to_owned(),
                    })
                }
            }
        };
        match changed {
            Ok(changed) => {
                if changed {
                    info!(
                        channel,
                        destination,
                        action = ?action,
                        by,
                        "destination state changed"
                    );
                }
                Ok(self.channel_view(channel))
            }
            Err(delivery::ControlError::Unknown { .. }) => Err(api::ControlRefused::NotFound(
                format!("channel {channel:?} has no destination {destination:?}"),
            )),
            Err(e) => Err(api::ControlRefused::Failed(format!(
                "the destination's state could not be stored: {e}"
            ))),
        }
    }
}
