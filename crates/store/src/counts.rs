//! The journal's message counts per channel and state, kept in memory.
//!
//! The dashboard, `/api/stats` and `/metrics` ask for these every few seconds; counting
//! them with a `GROUP BY` over the journal reads every row (millions). Instead the
//! store counts them once when it opens, and the writer keeps them exact from then on:
//! every journal change ([`crate::Journal::append_in`], [`crate::Journal::set_state_in`],
//! [`crate::Journal::delete_in`]) notes its change on the writer thread, a failed
//! request or savepoint takes its notes back, and a batch's notes are added to the
//! counts only once its commit succeeded. A reader thus sees counts of committed
//! changes only, like a read of the database (it may see a commit a moment before or
//! after a reader connection does).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;

use crate::error::Result;
use crate::journal::MessageState;

/// One journal change: `n` messages more (or fewer) in `state` on `channel`.
#[derive(Debug)]
struct Change {
    channel: Box<str>,
    state: MessageState,
    n: i64,
    flow: Flow,
    /// The time the message took to reach this state from its receipt, in microseconds.
    took: Option<u64>,
}

/// What a change counts toward in the rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// A message stored (received or rejected).
    Stored,
    /// A message leaving `received`: its processing was committed.
    Processed,
    /// Neither (the other half of a state change, a delete, a reprocess).
    None,
}

/// The seconds of the rates' window.
const WINDOW: usize = 60;

/// Messages stored and processed per second over the last [`WINDOW`] seconds: one
/// slot per second, reused a minute later.
#[derive(Debug, Clone)]
struct Minute {
    second: [u64; WINDOW],
    stored: [u64; WINDOW],
    processed: [u64; WINDOW],
}

impl Default for Minute {
    fn default() -> Minute {
        Minute {
            second: [u64::MAX; WINDOW],
            stored: [0; WINDOW],
            processed: [0; WINDOW],
        }
    }
}

impl Minute {
    fn add(&mut self, now: u64, flow: Flow) {
        let i = (now % WINDOW as u64) as usize;
        if self.second[i] != now {
            self.second[i] = now;
            self.stored[i] = 0;
            self.processed[i] = 0;
        }
        match flow {
            Flow::Stored => self.stored[i] += 1,
            Flow::Processed => self.processed[i] += 1,
            Flow::None => {}
        }
    }

    /// Stored and processed per second over the window ending at `now`.
    fn rates(&self, now: u64) -> Rates {
        let mut rates = Rates::default();
        for i in 0..WINDOW {
            let at = self.second[i];
            if at != u64::MAX && at <= now && now - at < WINDOW as u64 {
                rates.stored_per_second += self.stored[i] as f64;
                rates.processed_per_second += self.processed[i] as f64;
            }
        }
        rates.stored_per_second /= WINDOW as f64;
        rates.processed_per_second /= WINDOW as f64;
        rates
    }
}

/// A channel's messages per second over the last minute.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// Messages stored (received or rejected) per second.
    pub stored_per_second: f64,
    /// Messages whose processing was committed (they left `received`) per second.
    pub processed_per_second: f64,
}

/// Upper bounds of the hop latency buckets, in microseconds; one more bucket holds
/// everything above the last.
pub const HOP_BUCKETS_MICROS: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HopHistogram {
    /// Count per bucket of [`HOP_BUCKETS_MICROS`], then the count above the last bound.
    pub buckets: [u64; HOP_BUCKETS_MICROS.len() + 1],
    pub count: u64,
    pub sum_micros: u64,
}

impl HopHistogram {
    fn observe(&mut self, micros: u64) {
        let i = HOP_BUCKETS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(HOP_BUCKETS_MICROS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    fn merge(&mut self, other: &HopHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    /// The upper bound (microseconds) of the bucket holding quantile `q` (0.5, 0.99);
    /// `None` without observations, `Some(u64::MAX)` above the last bound.
    pub fn quantile_micros(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(HOP_BUCKETS_MICROS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// Latency observations of one hop for the current minute and the one before: a
/// reading covers the last one to two minutes, and what is older is forgotten.
#[derive(Debug, Clone, Copy, Default)]
struct HopWindow {
    minute: u64,
    current: HopHistogram,
    previous: HopHistogram,
}

impl HopWindow {
    fn turn(&mut self, minute: u64) {
        if minute != self.minute {
            self.previous = if minute == self.minute + 1 {
                self.current
            } else {
                HopHistogram::default()
            };
            self.current = HopHistogram::default();
            self.minute = minute;
        }
    }

    fn observe(&mut self, now: u64, micros: u64) {
        self.turn(now / 60);
        self.current.observe(micros);
    }

    fn read(&self, now: u64) -> HopHistogram {
        let mut window = *self;
        window.turn(now / 60);
        let mut all = window.previous;
        all.merge(&window.current);
        all
    }
}

/// A channel's hop latencies over the last one to two minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HopLatencies {
    /// From receipt to the message's row committed (acknowledged).
    pub stored: HopHistogram,
    /// From receipt to its processing committed (it left `received`).
    pub processed: HopHistogram,
}

/// The seconds of the clock lag's window.
pub const CLOCK_LAG_WINDOW_SECONDS: u64 = 300;

/// The most clock lag observations a channel keeps (the oldest go first).
const LAG_SAMPLES: usize = 4096;

/// A channel's sender clock lag observations over the last
/// [`CLOCK_LAG_WINDOW_SECONDS`]: (second observed, lag in microseconds, or `None` for a
/// message whose MSH-7 was missing or unreadable).
#[derive(Debug, Clone, Default)]
struct LagWindow {
    samples: VecDeque<(u64, Option<i64>)>,
}

impl LagWindow {
    fn forget_before(&mut self, now: u64) {
        while self.samples.len() > LAG_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|(at, _)| now.saturating_sub(*at) >= CLOCK_LAG_WINDOW_SECONDS)
        {
            self.samples.pop_front();
        }
    }

    fn observe(&mut self, now: u64, lag: Option<i64>) {
        self.samples.push_back((now, lag));
        self.forget_before(now);
    }

    fn read(&self, now: u64) -> ClockLag {
        let mut lags = Vec::new();
        let mut missing = 0;
        for (at, lag) in &self.samples {
            if now.saturating_sub(*at) >= CLOCK_LAG_WINDOW_SECONDS {
                continue;
            }
            match lag {
                Some(lag) => lags.push(*lag),
                None => missing += 1,
            }
        }
        ClockLag::of(lags, missing)
    }
}

/// A channel's sender clock lag over the recent window: receipt time less the time the
/// sender wrote in MSH-7. Positive: the message arrived after the time it says it was
/// sent (transit, queuing at the sender, or a slow clock); negative: the sender's clock
/// is ahead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockLag {
    /// Messages with a readable MSH-7.
    pub count: u64,
    /// The median lag, microseconds (the lower middle value of an even count).
    pub p50_micros: Option<i64>,
    /// The largest lag, microseconds.
    pub max_micros: Option<i64>,
    /// Messages whose MSH-7 was missing or could not be read (counted apart).
    pub missing: u64,
}

impl ClockLag {
    /// The reading of `lags` (microseconds, any order) and `missing` unreadable ones.
    pub fn of(mut lags: Vec<i64>, missing: u64) -> ClockLag {
        lags.sort_unstable();
        ClockLag {
            count: lags.len() as u64,
            p50_micros: lags.get(lags.len().saturating_sub(1) / 2).copied(),
            max_micros: lags.last().copied(),
            missing,
        }
    }
}

/// One channel's counts and rates.
#[derive(Debug, Clone, Default)]
struct Channel {
    by_state: [i64; MessageState::ALL.len()],
    minute: Minute,
    stored: HopWindow,
    processed: HopWindow,
    /// Every observation since the store opened (for `/metrics`).
    since_open: HopLatencies,
    /// The sender's clock lag over the recent window.
    lag: LagWindow,
}

fn seconds_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

thread_local! {
    /// True on the writer thread only: changes made elsewhere (a test's own connection)
    /// are not the store's and are not noted.
    static ON_WRITER: Cell<bool> = const { Cell::new(false) };
    /// The changes of the open transaction, in order.
    static PENDING: RefCell<Vec<Change>> = const { RefCell::new(Vec::new()) };
}

/// Marks the current thread as the store's writer.
pub(crate) fn writer_thread() {
    ON_WRITER.with(|on| on.set(true));
}

/// Notes that the open transaction put `n` messages more (negative: fewer) in `state`.
pub(crate) fn note(channel: &str, state: MessageState, n: i64, flow: Flow, took: Option<u64>) {
    if !ON_WRITER.with(Cell::get) {
        return;
    }
    PENDING.with(|p| {
        p.borrow_mut().push(Change {
            channel: channel.into(),
            state,
            n,
            flow,
            took,
        });
    });
}

/// How many changes are noted so far: undo back to it with [`undo_to`].
pub(crate) fn mark() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// Forgets the changes noted after `mark` (their savepoint was rolled back).
pub(crate) fn undo_to(mark: usize) {
    PENDING.with(|p| p.borrow_mut().truncate(mark));
}

/// The message counts by channel and state.
#[derive(Debug, Default)]
pub(crate) struct StateCounts {
    by_channel: Mutex<HashMap<Box<str>, Channel>>,
}

fn index(state: MessageState) -> usize {
    MessageState::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or_default()
}

impl StateCounts {
    /// Counts the journal (once, when the store opens).
    pub(crate) fn seed(conn: &Connection) -> Result<StateCounts> {
        let counts = StateCounts::default();
        {
            let mut map = counts
                .by_channel
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut statement = conn
                .prepare("SELECT channel, state, count(*) FROM journal GROUP BY channel, state")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let channel: String = row.get(0)?;
                let state: String = row.get(1)?;
                let n: i64 = row.get(2)?;
                let state: MessageState = state.parse()?;
                map.entry(channel.into_boxed_str()).or_default().by_state[index(state)] += n;
            }
        }
        Ok(counts)
    }

    /// Adds the changes of the transaction just committed.
    pub(crate) fn commit(&self) {
        let changes = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
        if changes.is_empty() {
            return;
        }
        let mut map = self
            .by_channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = seconds_now();
        for change in changes {
            let channel = map.entry(change.channel).or_default();
            channel.by_state[index(change.state)] += change.n;
            if change.flow != Flow::None {
                channel.minute.add(now, change.flow);
            }
            match (change.flow, change.took) {
                (Flow::Stored, Some(took)) => {
                    channel.stored.observe(now, took);
                    channel.since_open.stored.observe(took);
                }
                (Flow::Processed, Some(took)) => {
                    channel.processed.observe(now, took);
                    channel.since_open.processed.observe(took);
                }
                _ => {}
            }
        }
    }

    /// Forgets the changes of a transaction that was not committed.
    pub(crate) fn discard() {
        PENDING.with(|p| p.borrow_mut().clear());
    }

    /// What `read` gives of each channel (`None`: leave the channel out), channels by
    /// name.
    fn per_channel<T>(&self, mut read: impl FnMut(&Channel) -> Option<T>) -> Vec<(String, T)> {
        let map = self
            .by_channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(String, T)> = map
            .iter()
            .filter_map(|(name, channel)| read(channel).map(|t| (name.to_string(), t)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Each channel's count per state, channels by name, states in
    /// [`MessageState::ALL`] order (zeros included).
    pub(crate) fn snapshot(&self) -> Vec<(String, [u64; MessageState::ALL.len()])> {
        self.per_channel(|channel| Some(channel.by_state.map(|v| u64::try_from(v).unwrap_or(0))))
    }

    /// Each channel's hop latencies over the last one to two minutes, channels by name.
    pub(crate) fn latencies(&self) -> Vec<(String, HopLatencies)> {
        let now = seconds_now();
        self.per_channel(|channel| {
            Some(HopLatencies {
                stored: channel.stored.read(now),
                processed: channel.processed.read(now),
            })
        })
    }

    /// The last complete minute (in minutes since the Unix epoch) and each channel's
    /// observations in it: the histograms' counts are the messages stored and processed
    /// that minute. Channels with nothing that minute are left out.
    pub(crate) fn last_minute(&self) -> (u64, Vec<(String, HopLatencies)>) {
        let now = seconds_now();
        let minute = now / 60 - 1;
        let all = self.per_channel(|channel| {
            let (mut stored, mut processed) = (channel.stored, channel.processed);
            stored.turn(now / 60);
            processed.turn(now / 60);
            let latencies = HopLatencies {
                stored: stored.previous,
                processed: processed.previous,
            };
            (latencies.stored.count + latencies.processed.count > 0).then_some(latencies)
        });
        (minute, all)
    }

    /// The current minute (in minutes since the Unix epoch, not complete yet) and each
    /// channel's observations in it so far, channels with nothing in it left out: what
    /// the per-minute history does not hold yet, for charts that follow live.
    pub(crate) fn current_minute(&self) -> (u64, Vec<(String, HopLatencies)>) {
        let now = seconds_now();
        let all = self.per_channel(|channel| {
            let (mut stored, mut processed) = (channel.stored, channel.processed);
            stored.turn(now / 60);
            processed.turn(now / 60);
            let latencies = HopLatencies {
                stored: stored.current,
                processed: processed.current,
            };
            (latencies.stored.count + latencies.processed.count > 0).then_some(latencies)
        });
        (now / 60, all)
    }

    /// Each channel's hop latencies since the store opened, channels by name.
    pub(crate) fn latencies_since_open(&self) -> Vec<(String, HopLatencies)> {
        self.per_channel(|channel| Some(channel.since_open))
    }

    /// Notes the clock lag of a message stored on `channel` (`None`: its MSH-7 was
    /// missing or unreadable).
    pub(crate) fn note_lag(&self, channel: &str, lag: Option<i64>) {
        let now = seconds_now();
        let mut map = self
            .by_channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(channel) {
            Some(c) => c.lag.observe(now, lag),
            None => map.entry(channel.into()).or_default().lag.observe(now, lag),
        }
    }

    /// Each channel's sender clock lag over the recent window, channels by name.
    pub(crate) fn clock_lags(&self) -> Vec<(String, ClockLag)> {
        let now = seconds_now();
        self.per_channel(|channel| Some(channel.lag.read(now)))
    }

    /// Each channel's rates over the last minute, channels by name.
    pub(crate) fn rates(&self) -> Vec<(String, Rates)> {
        let now = seconds_now();
        self.per_channel(|channel| Some(channel.minute.rates(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_the_bounds_of_their_buckets() {
        let mut h = HopHistogram::default();
        assert_eq!(h.quantile_micros(0.5), None);
        for _ in 0..98 {
            h.observe(80);
        }
        h.observe(3_000);
        h.observe(90_000_000);
        assert_eq!(h.quantile_micros(0.5), Some(100));
        assert_eq!(h.quantile_micros(0.99), Some(5_000));
        assert_eq!(h.quantile_micros(1.0), Some(u64::MAX));
    }

    #[test]
    fn the_clock_lag_has_a_median_a_maximum_and_the_unreadable_apart() {
        assert_eq!(
            ClockLag::of(Vec::new(), 2),
            ClockLag {
                count: 0,
                p50_micros: None,
                max_micros: None,
                missing: 2,
            }
        );
        let lag = ClockLag::of(vec![9_000, -2_000, 1_000, 4_000_000], 1);
        assert_eq!(lag.count, 4);
        assert_eq!(lag.p50_micros, Some(1_000));
        assert_eq!(lag.max_micros, Some(4_000_000));
        assert_eq!(lag.missing, 1);
        assert_eq!(ClockLag::of(vec![5, 3, 7], 0).p50_micros, Some(5));
    }

    #[test]
    fn the_clock_lag_window_forgets_what_is_five_minutes_old() {
        let mut w = LagWindow::default();
        w.observe(1_000, Some(60_000_000));
        w.observe(1_100, None);
        w.observe(1_200, Some(2_000));
        let now = w.read(1_200);
        assert_eq!((now.count, now.missing), (2, 1));
        assert_eq!(now.max_micros, Some(60_000_000));
        let later = w.read(1_300);
        assert_eq!((later.count, later.missing), (1, 1));
        assert_eq!(later.max_micros, Some(2_000));
        w.observe(1_500, Some(7));
        let last = w.read(1_500);
        assert_eq!((last.count, last.missing), (1, 0));
        assert_eq!(last.p50_micros, Some(7));
    }

    #[test]
    fn a_window_forgets_what_is_two_minutes_old() {
        let mut w = HopWindow::default();
        w.observe(600, 1_000);
        assert_eq!(w.read(610).count, 1);
        assert_eq!(w.read(661).count, 1, "the minute before still counts");
        assert_eq!(w.read(720).count, 0);
        w.observe(661, 2_000);
        assert_eq!(w.read(661).count, 2);
        w.observe(900, 5);
        assert_eq!(w.read(900).count, 1);
    }
}
