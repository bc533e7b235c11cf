//! The process's open files, shared out between the listeners.
//!
//! Every connection a listener holds is a file descriptor. When the listeners'
//! `max_connections` add up to more than the process may open, a flood on one of them
//! (thousands of idle connections) would leave nothing for the others or for the
//! database, whose files SQLite opens as it needs them. At start the engine raises its
//! soft open-file limit to the hard limit, keeps a reserve for everything that is not
//! a listener's connection, and, when the caps do not fit in the rest, lowers each in
//! proportion (with a warning naming the keys), so the sum always fits.

use tracing::{debug, warn};

use crate::config::Config;

/// Descriptors kept for all but the listeners' connections: the database files of the
/// writer, the checkpointer and the read connections of background tasks, the
/// listening sockets, directory sources' files, the runtime and standard streams.
pub(crate) const RESERVE: u64 = 256;
/// Kept per destination: its outgoing connection, or the file it writes.
pub(crate) const RESERVE_PER_DESTINATION: u64 = 4;
/// An API connection may hold a database read connection (its file and WAL) while its
/// request runs, so it counts three.
pub(crate) const FILES_PER_API_CONNECTION: u64 = 3;

/// One listener's cap, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerCap {
    /// Its configuration key (`channels.lab.source.max_connections`).
    pub key: String,
    /// `max_connections` as configured.
    pub configured: usize,
    /// Descriptors each of its connections may hold.
    pub files_each: u64,
}

/// Raises the open-file limit, and lowers the listeners' `max_connections` in `config`
/// where their connections would not fit it.
pub(crate) fn fit_listeners(config: &mut Config) -> Result<(), String> {
    let destinations: usize = config.channels.values().map(|c| c.destinations.len()).sum();
    let reserve = RESERVE + RESERVE_PER_DESTINATION * destinations as u64;
    let mut caps: Vec<ListenerCap> = config
        .channels
        .iter()
        .filter_map(|(name, channel)| {
            Some(ListenerCap {
                key: format!("channels.{name}.source.max_connections"),
                configured: channel.source.max_connections()?,
                files_each: 1,
            })
        })
        .collect();
    if config.http.enabled {
        caps.push(ListenerCap {
            key: "http.max_connections".to_owned(),
            configured: config.http.max_connections,
            files_each: FILES_PER_API_CONNECTION,
        });
    }
    let limit = raise_open_file_limit();
    let effective = share_out(limit, reserve, &caps)?;
    report(limit, reserve, &caps, &effective);
    let mut effective = effective.into_iter();
    for channel in config.channels.values_mut() {
        if channel.source.max_connections().is_some() {
            if let Some(cap) = effective.next() {
                channel.source.set_max_connections(cap);
            }
        }
    }
    if let (true, Some(cap)) = (config.http.enabled, effective.next()) {
        config.http.max_connections = cap;
    }
    Ok(())
}

/// Raises the soft open-file limit to the hard limit and returns the soft limit now in
/// force (`u64::MAX` for none, or where there is no such limit).
pub(crate) fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            let soft =
                rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft);
            warn!(error = %err, open_file_limit = soft, "cannot raise the open-file limit");
            soft
        }
    }
}

/// The caps that fit `limit` open files with `reserve` kept aside: the configured ones
/// when they fit, else each lowered in proportion (at least 1). An error when not even
/// one connection per listener fits.
pub(crate) fn share_out(
    limit: u64,
    reserve: u64,
    caps: &[ListenerCap],
) -> Result<Vec<usize>, String> {
    let wanted: u64 = caps
        .iter()
        .map(|cap| cap.configured as u64 * cap.files_each)
        .sum();
    let room = limit.saturating_sub(reserve);
    if wanted <= room {
        return Ok(caps.iter().map(|cap| cap.configured).collect());
    }
    let least: u64 = caps.iter().map(|cap| cap.files_each).sum();
    if room < least {
        return Err(format!(
            "the open-file limit ({limit}) leaves no room for connections: Corridor keeps {reserve} files for its database, destinations and runtime, and each listener needs at least one connection; raise the limit (`ulimit -n`, or LimitNOFILE= in a systemd unit)"
        ));
    }
    // Lowered in proportion; rounding down keeps the sum within the room.
    let lowered: Vec<usize> = caps
        .iter()
        .map(|cap| {
            let share = u128::from(cap.configured as u64) * u128::from(room) / u128::from(wanted);
            usize::try_from(share).unwrap_or(usize::MAX).max(1)
        })
        .collect();
    Ok(lowered)
}

/// Logs the caps that were lowered to fit `limit`.
pub(crate) fn report(limit: u64, reserve: u64, caps: &[ListenerCap], effective: &[usize]) {
    let lowered: Vec<String> = caps
        .iter()
        .zip(effective)
        .filter(|(cap, effective)| cap.configured != **effective)
        .map(|(cap, effective)| format!("{} {} -> {effective}", cap.key, cap.configured))
        .collect();
    if lowered.is_empty() {
        debug!(
            open_file_limit = limit,
            reserved = reserve,
            "listener caps fit the open-file limit"
        );
    } else {
        warn!(
            open_file_limit = limit,
            reserved = reserve,
            lowered = %lowered.join(", "),
            "the listeners' max_connections add up to more than the open-file limit allows; lowered in proportion (raise the limit to keep them)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(key: &str, configured: usize, files_each: u64) -> ListenerCap {
        ListenerCap {
            key: key.to_owned(),
            configured,
            files_each,
        }
    }

    #[test]
    fn caps_that_fit_are_kept() {
        let caps = [
            cap("channels.lab.source.max_connections", 1024, 1),
            cap("http.max_connections", 256, 3),
        ];
        assert_eq!(share_out(20_000, 256, &caps).unwrap(), vec![1024, 256]);
        assert_eq!(share_out(u64::MAX, 256, &caps).unwrap(), vec![1024, 256]);
    }

    #[test]
    fn caps_that_do_not_fit_are_lowered_in_proportion_within_the_room() {
        let caps = [
            cap("channels.lab.source.max_connections", 1024, 1),
            cap("http.max_connections", 256, 3),
        ];
        let effective = share_out(1024, 256, &caps).unwrap();
        // 1,792 wanted, 768 of room: each gets 768/1792 of its cap.
        assert_eq!(effective, vec![438, 109]);
        let used: u64 = effective[0] as u64 + effective[1] as u64 * 3;
        assert!(used <= 1024 - 256, "{used}");
    }

    #[test]
    fn a_limit_below_the_reserve_is_an_error_that_says_what_to_raise() {
        let caps = [cap("http.max_connections", 256, 3)];
        let err = share_out(200, 256, &caps).unwrap_err();
        assert!(
            err.contains("open-file limit (200)") && err.contains("ulimit -n"),
            "{err}"
        );
    }
}
