//! The agent's loop: sample, batch, spool, deliver; and the one-shot variant.
//!
//! What happens is reported as [`Event`]s to a callback; the binary turns them into log lines.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vigie_domain::clock::Clock;
use vigie_domain::protocol::{AgentConfig, CollectPlan};
use vigie_domain::telemetry::{CollectorStatus, Sample};

use crate::backoff::Backoff;
use crate::collect::Collector;
use crate::sender::{RequestError, SendOutcome, Sender, http_client};
use crate::spool::{Observed, Spool, SpoolLimits, Spooled};
use crate::state::{StateDir, StateError};
use crate::watch::{Round, Scheduler, Tools, Watcher};

/// The agent's version, reported in every batch.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// How often the configuration is fetched again.
pub const CONFIG_REFRESH: Duration = Duration::from_secs(3_600);
/// Longest single sleep: how quickly a stop request is noticed.
const TICK: Duration = Duration::from_millis(500);

/// Something the agent did or met.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        device: String,
        server: String,
        sample_every: Duration,
        send_every: Duration,
        pending: usize,
    },
    ConfigApplied(AgentConfig),
    ConfigUnavailable(String),
    /// A collector's state changed (or was first known in this run).
    Collector(CollectorStatus),
    Spooled(Spooled),
    Delivered {
        seq: u64,
    },
    AlreadyDelivered {
        seq: u64,
    },
    Rejected {
        seq: u64,
        status: u16,
        code: Option<String>,
        kept_at: String,
    },
    RetryLater {
        seq: u64,
        reason: String,
        delay: Duration,
    },
    RateLimited {
        seq: u64,
        delay: Duration,
    },
    Revoked(String),
    Storage(String),
    Stopping {
        pending: usize,
    },
}

impl Event {
    /// Whether the event is worth a warning rather than an information line.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Self::ConfigUnavailable(_)
                | Self::Rejected { .. }
                | Self::RetryLater { .. }
                | Self::RateLimited { .. }
                | Self::Revoked(_)
                | Self::Storage(_)
        ) || matches!(self, Self::Spooled(s) if s.dropped.is_some())
            || matches!(self, Self::Collector(c)
                if c.state == vigie_domain::telemetry::CollectorState::Error)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Started {
                device,
                server,
                sample_every,
                send_every,
                pending,
            } => write!(
                f,
                "started: device={device} server={server} sample_every={}s send_every={}s spooled={pending}",
                sample_every.as_secs(),
                send_every.as_secs()
            ),
            Self::ConfigApplied(c) => write!(
                f,
                "configuration: sample_every={}s send_every={}s heartbeat={}s",
                c.sample_interval_s, c.send_interval_s, c.heartbeat_s
            ),
            Self::ConfigUnavailable(e) => {
                write!(f, "configuration not refreshed, keeping the last one: {e}")
            }
            Self::Collector(c) => {
                write!(f, "collector {}: {}", c.collector, c.state.as_str())?;
                match &c.detail {
                    Some(d) => write!(f, " ({d})"),
                    None => Ok(()),
                }
            }
            Self::Spooled(s) => {
                write!(
                    f,
                    "spooled batch seq={} samples={} observations={} bytes={}",
                    s.seq, s.samples, s.observed, s.bytes
                )?;
                if let Some((n, first, last)) = s.dropped {
                    write!(f, "; spool full: dropped {n} oldest (seq {first}-{last})")?;
                }
                if !s.report.is_empty() {
                    write!(
                        f,
                        "; reports {} dropped batch(es)",
                        s.report.dropped_batches
                    )?;
                }
                Ok(())
            }
            Self::Delivered { seq } => write!(f, "delivered batch seq={seq}"),
            Self::AlreadyDelivered { seq } => {
                write!(f, "server already had batch seq={seq}; removed from spool")
            }
            Self::Rejected {
                seq,
                status,
                code,
                kept_at,
            } => write!(
                f,
                "server refused batch seq={seq} for good (HTTP {status}, {}); kept at {kept_at}",
                code.as_deref().unwrap_or("no code")
            ),
            Self::RetryLater { seq, reason, delay } => write!(
                f,
                "batch seq={seq} not delivered ({reason}); retrying in {:.1}s",
                delay.as_secs_f64()
            ),
            Self::RateLimited { seq, delay } => write!(
                f,
                "rate limited at batch seq={seq}; retrying in {:.1}s",
                delay.as_secs_f64()
            ),
            Self::Revoked(m) => write!(
                f,
                "this device has been revoked by the server ({m}); nothing more is sent until it is enrolled again"
            ),
            Self::Storage(e) => write!(f, "state directory: {e}"),
            Self::Stopping { pending } => write!(f, "stopping; {pending} batch(es) left in spool"),
        }
    }
}

/// How a drain of the spool ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Nothing left to send.
    Empty,
    /// A delivery failed; try again after this delay.
    RetryIn(Duration),
    /// Time is up (other work is due); continue later, no failure.
    Paused,
    /// The server revoked the device.
    Revoked,
    /// A stop was requested.
    Stopped,
}

/// Sends pending batches oldest first until the spool is empty, a delivery fails, a stop is
/// requested or `until` has passed.
pub fn drain(
    spool: &mut Spool,
    sender: &Sender,
    backoff: &mut Backoff,
    clock: &dyn Clock,
    stop: &AtomicBool,
    until: Option<Instant>,
    events: &mut dyn FnMut(Event),
) -> DrainEnd {
    while let Some(seq) = spool.oldest() {
        if stop.load(Ordering::SeqCst) {
            return DrainEnd::Stopped;
        }
        if until.is_some_and(|t| Instant::now() >= t) {
            return DrainEnd::Paused;
        }
        let body = match spool.read(seq) {
            Ok(body) => body,
            Err(e) => {
                events(Event::Storage(e.to_string()));
                if spool.forget_if_missing(seq) {
                    // Deleted behind our back: nothing to send, go on with the next.
                    continue;
                }
                return DrainEnd::RetryIn(backoff.next_delay());
            }
        };
        let outcome = sender.send_batch(seq, &body, clock.now_ms());
        drop(body);
        let now = clock.now_ms();
        let stored = match outcome {
            SendOutcome::Accepted => {
                backoff.reset();
                events(Event::Delivered { seq });
                spool.delivered(seq, now, false)
            }
            SendOutcome::Replayed { .. } => {
                backoff.reset();
                events(Event::AlreadyDelivered { seq });
                spool.delivered(seq, now, true)
            }
            SendOutcome::Rejected {
                status,
                code,
                answer,
            } => {
                // The server answered: it is reachable, only this batch is bad.
                backoff.reset();
                let kept_at = spool
                    .dir()
                    .rejected_dir()
                    .join(format!("{seq:020}.batch"))
                    .display()
                    .to_string();
                events(Event::Rejected {
                    seq,
                    status,
                    code,
                    kept_at,
                });
                spool.reject(seq, status, &answer, now).map(|_| ())
            }
            SendOutcome::Revoked { message } => {
                if let Err(e) = spool.set_revoked(&format!("device revoked: {message}")) {
                    events(Event::Storage(e.to_string()));
                }
                events(Event::Revoked(message));
                return DrainEnd::Revoked;
            }
            SendOutcome::RateLimited { retry_after } => {
                let delay = backoff.next_delay().max(retry_after.unwrap_or_default());
                events(Event::RateLimited { seq, delay });
                if let Err(e) = spool.record_failure("rate limited by the server") {
                    events(Event::Storage(e.to_string()));
                }
                return DrainEnd::RetryIn(delay);
            }
            SendOutcome::Retry {
                reason,
                retry_after,
            } => {
                let delay = backoff.next_delay().max(retry_after.unwrap_or_default());
                if let Err(e) = spool.record_failure(&reason) {
                    events(Event::Storage(e.to_string()));
                }
                events(Event::RetryLater { seq, reason, delay });
                return DrainEnd::RetryIn(delay);
            }
        };
        if let Err(e) = stored {
            events(Event::Storage(e.to_string()));
        }
    }
    DrainEnd::Empty
}

/// Interval overrides from the command line (tests, troubleshooting).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub sample_interval: Option<Duration>,
    pub send_interval: Option<Duration>,
    pub limits: SpoolLimits,
    pub watch: WatchSetup,
}

/// Where the collectors and watchers look and which watchers run.
#[derive(Debug, Clone)]
pub struct WatchSetup {
    /// The machine's root: `/` on a real machine; the host's root mounted into a container;
    /// a fixture tree in tests. The metric collectors read it too.
    pub root: PathBuf,
    pub tools: Tools,
    /// Only these watchers (by name); all of [`crate::watch::builtin`] when `None`.
    pub only: Option<Vec<String>>,
    /// Every watcher runs at least this often (`--watch-every`: diagnostics, tests).
    pub every_at_most: Option<Duration>,
}

impl Default for WatchSetup {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            tools: Tools::default(),
            only: None,
            every_at_most: None,
        }
    }
}

impl WatchSetup {
    fn watchers(&self) -> Vec<Box<dyn Watcher>> {
        let mut all = crate::watch::builtin();
        if let Some(only) = &self.only {
            all.retain(|w| only.iter().any(|o| o == w.name()));
        }
        match self.every_at_most {
            Some(at_most) => all
                .into_iter()
                .map(|w| crate::watch::at_most_every(w, at_most))
                .collect(),
            None => all,
        }
    }
}

/// The watchers' thread: runs what is due, hands each round to the loop, takes new plans.
/// Its runs are bounded by the tools' time limit; sampling never waits for them.
#[allow(clippy::too_many_arguments)]
fn watch_loop(
    setup: &WatchSetup,
    tools: &Tools,
    plan: CollectPlan,
    state_dir: &Path,
    clock: &dyn Clock,
    stop: &AtomicBool,
    done: &AtomicBool,
    plans: &mpsc::Receiver<CollectPlan>,
    rounds: &mpsc::Sender<Round>,
) {
    let mut scheduler = Scheduler::new(setup.watchers(), plan);
    while !stop.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
        while let Ok(plan) = plans.try_recv() {
            scheduler.set_plan(plan);
        }
        let now = clock.now_ms();
        if scheduler.next_due_ms().is_some_and(|due| due <= now) {
            let round = scheduler.run_due(&setup.root, tools, state_dir, now);
            if !round.is_empty() && rounds.send(round).is_err() {
                return;
            }
            // The next due watcher right away: rounds go out one watcher at a time.
            continue;
        }
        std::thread::sleep(TICK);
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// A stop was requested (SIGTERM, SIGINT).
    Stopped,
    /// The server revoked this device.
    Revoked,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "this device was revoked by the server; enrol it again with `vigie-agent enroll --force`"
    )]
    Revoked,
}

/// Everything the loop needs, opened from the state directory.
struct Agent {
    spool: Spool,
    sender: Sender,
    server: String,
    device: String,
}

fn open(dir: &StateDir, limits: SpoolLimits) -> Result<Agent, RunError> {
    let identity = dir.read_identity()?;
    let key = dir.read_key()?;
    let spool = Spool::open(dir, limits)?;
    if spool.state().revoked {
        return Err(RunError::Revoked);
    }
    Ok(Agent {
        spool,
        server: identity.server_url.clone(),
        device: identity.device_id.to_string(),
        sender: Sender::new(http_client(), &identity, key),
    })
}

/// The next deadline of a periodic task: keeps the cadence, but never schedules in the past
/// (after a suspend or a long drain, the missed ticks are skipped, not replayed in a burst).
fn advance(previous: Instant, every: Duration, now: Instant) -> Instant {
    let next = previous + every;
    if next <= now { now + every } else { next }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Spools `samples` (if any) with what the watchers observed, and reports it.
fn spool_samples(
    spool: &mut Spool,
    collector: &Collector,
    samples: &mut Vec<Sample>,
    observed: &mut Observed,
    events: &mut dyn FnMut(Event),
) {
    if samples.is_empty() {
        return;
    }
    match spool.append_observed(&collector.agent_info(AGENT_VERSION), samples, observed) {
        Ok(written) => {
            samples.clear();
            for s in written {
                events(Event::Spooled(s));
            }
        }
        Err(e) => {
            // Keep the samples for the next attempt, within a batch's bound.
            let excess = samples
                .len()
                .saturating_sub(vigie_domain::telemetry::bounds::MAX_SAMPLES);
            samples.drain(..excess);
            events(Event::Storage(e.to_string()));
        }
    }
}

/// Collects the watchers' rounds that arrived; reports and remembers (for `status`) the
/// collector states that changed.
fn take_rounds(
    rounds: &mpsc::Receiver<Round>,
    observed: &mut Observed,
    statuses: &mut Vec<CollectorStatus>,
    dir: &StateDir,
    events: &mut dyn FnMut(Event),
) {
    let mut changed = false;
    while let Ok(round) = rounds.try_recv() {
        for status in &round.changed {
            events(Event::Collector(status.clone()));
            statuses.retain(|s| s.collector != status.collector);
            statuses.push(status.clone());
            changed = true;
        }
        observed.absorb(round);
    }
    if changed {
        statuses.sort_by(|a, b| a.collector.cmp(&b.collector));
        if let Err(e) = crate::status::write_collectors(dir, statuses) {
            events(Event::Storage(e.to_string()));
        }
    }
}

/// Remembers a revocation learnt from the configuration request.
fn mark_revoked(spool: &mut Spool, events: &mut dyn FnMut(Event)) {
    if let Err(e) = spool.set_revoked("device revoked (configuration request refused)") {
        events(Event::Storage(e.to_string()));
    }
}

/// The agent's main loop, until `stop` is set or the device is revoked.
pub fn run(
    dir: &StateDir,
    options: &RunOptions,
    clock: &dyn Clock,
    stop: &AtomicBool,
    events: &mut dyn FnMut(Event),
) -> Result<RunEnd, RunError> {
    let Agent {
        mut spool,
        sender,
        server,
        device,
    } = open(dir, options.limits)?;
    let mut collector = Collector::with_root(&options.watch.root);
    let mut config = dir.read_config()?.unwrap_or_default();
    let mut revoked = false;
    let refresh = |config: &mut AgentConfig, events: &mut dyn FnMut(Event)| match sender
        .fetch_config(clock.now_ms())
    {
        Ok(fresh) => {
            let saved = if fresh == *config {
                Ok(())
            } else {
                dir.write_config(&fresh)
            };
            if let Err(e) = saved {
                events(Event::Storage(e.to_string()));
            }
            events(Event::ConfigApplied(fresh.clone()));
            *config = fresh;
            false
        }
        Err(RequestError::Refused { code, message, .. }) if code == "device_revoked" => {
            events(Event::Revoked(message));
            true
        }
        Err(e) => {
            events(Event::ConfigUnavailable(e.to_string()));
            false
        }
    };
    if refresh(&mut config, events) {
        revoked = true;
        mark_revoked(&mut spool, events);
    }
    let intervals = |c: &AgentConfig| {
        (
            options.sample_interval.unwrap_or(secs(c.sample_interval_s)),
            options.send_interval.unwrap_or(secs(c.send_interval_s)),
        )
    };
    let (mut sample_every, mut send_every) = intervals(&config);
    events(Event::Started {
        device,
        server,
        sample_every,
        send_every,
        pending: spool.depth(),
    });

    let start = Instant::now();
    // The collector took its baseline counters just now: the first sample comes one interval
    // later so that its rates cover a real interval.
    let mut next_sample = start + sample_every;
    let mut next_send = start + send_every;
    let mut next_config = start + CONFIG_REFRESH;
    let mut retry_at: Option<Instant> = None;
    let mut drain_due = spool.oldest().is_some();
    let mut backoff = Backoff::default();
    let mut samples: Vec<Sample> = Vec::new();

    // The watchers run on a thread of their own; their rounds come back over a channel and
    // ride with the next batch. The thread ends with the loop (`done`).
    let done = AtomicBool::new(false);
    // Set with `done`: a tool a watcher is running is stopped at once rather than awaited.
    let cancel = std::sync::Arc::new(AtomicBool::new(false));
    let tools = options.watch.tools.clone().cancelled_by(cancel.clone());
    let (round_tx, round_rx) = mpsc::channel::<Round>();
    let (plan_tx, plan_rx) = mpsc::channel::<CollectPlan>();
    let watch_dir = dir.root().join("watch");
    let mut observed = Observed::default();
    let mut statuses = crate::status::read_collectors(dir);
    let first_plan = config.collect.clone();
    std::thread::scope(|scope| {
        let (done, watch_dir, setup, tools) = (&done, &watch_dir, &options.watch, &tools);
        scope.spawn(move || {
            watch_loop(
                setup, tools, first_plan, watch_dir, clock, stop, done, &plan_rx, &round_tx,
            );
        });

        while !revoked && !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= next_sample {
                samples.push(collector.sample(clock.now_ms()));
                next_sample = advance(next_sample, sample_every, now);
            }
            if now >= next_send {
                take_rounds(&round_rx, &mut observed, &mut statuses, dir, events);
                spool_samples(&mut spool, &collector, &mut samples, &mut observed, events);
                drain_due |= spool.oldest().is_some();
                next_send = advance(next_send, send_every, now);
            }
            if drain_due && retry_at.is_none_or(|t| now >= t) {
                // Yield to sampling when it is due; the drain resumes right after.
                match drain(
                    &mut spool,
                    &sender,
                    &mut backoff,
                    clock,
                    stop,
                    Some(next_sample),
                    events,
                ) {
                    DrainEnd::Empty => {
                        drain_due = false;
                        retry_at = None;
                    }
                    DrainEnd::RetryIn(delay) => retry_at = Some(Instant::now() + delay),
                    DrainEnd::Paused => retry_at = None,
                    DrainEnd::Revoked => revoked = true,
                    DrainEnd::Stopped => {}
                }
            }
            if now >= next_config {
                if refresh(&mut config, events) {
                    revoked = true;
                    mark_revoked(&mut spool, events);
                }
                // The watchers follow the plan of the fresh configuration (a thread that
                // already ended has nothing to be told).
                let _ = plan_tx.send(config.collect.clone());
                let (sample, send) = intervals(&config);
                let now = Instant::now();
                if sample != sample_every {
                    sample_every = sample;
                    next_sample = now + sample_every;
                }
                if send != send_every {
                    send_every = send;
                    next_send = now + send_every;
                }
                next_config = now + CONFIG_REFRESH;
            }

            let mut wake = next_sample.min(next_send).min(next_config);
            if drain_due {
                wake = wake.min(retry_at.unwrap_or(now));
            }
            let nap = wake.saturating_duration_since(Instant::now()).min(TICK);
            if !nap.is_zero() {
                std::thread::sleep(nap);
            }
        }

        done.store(true, Ordering::SeqCst);
        cancel.store(true, Ordering::SeqCst);
    });

    // What was sampled and observed since the last batch is kept for the next start.
    take_rounds(&round_rx, &mut observed, &mut statuses, dir, events);
    if samples.is_empty() && !observed.is_empty() {
        // A batch needs a sample to carry what the watchers saw.
        samples.push(collector.sample(clock.now_ms()));
    }
    spool_samples(&mut spool, &collector, &mut samples, &mut observed, events);
    events(Event::Stopping {
        pending: spool.depth(),
    });
    Ok(if revoked {
        RunEnd::Revoked
    } else {
        RunEnd::Stopped
    })
}

/// `run --once`: one sample over a ~1 s baseline, one batch, one drain. Returns whether the
/// spool is empty afterwards (everything delivered).
pub fn run_once(
    dir: &StateDir,
    options: &RunOptions,
    clock: &dyn Clock,
    stop: &AtomicBool,
    events: &mut dyn FnMut(Event),
) -> Result<bool, RunError> {
    let Agent {
        mut spool, sender, ..
    } = open(dir, options.limits)?;
    let mut collector = Collector::with_root(&options.watch.root);
    std::thread::sleep(Duration::from_secs(1));
    let sample = collector.sample(clock.now_ms());
    let agent = collector.agent_info(AGENT_VERSION);
    for spooled in spool.append(&agent, std::slice::from_ref(&sample))? {
        events(Event::Spooled(spooled));
    }
    let end = drain(
        &mut spool,
        &sender,
        &mut Backoff::default(),
        clock,
        stop,
        None,
        events,
    );
    Ok(end == DrainEnd::Empty && spool.depth() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::tests::{Answer, error, identity, serve};
    use crate::spool::tests::{agent, decode, sample};
    use crate::state::tests::scratch;
    use std::fs;
    use vigie_domain::clock::ManualClock;
    use vigie_domain::ids::DeviceId;
    use vigie_domain::protocol::routes;
    use vigie_domain::signing::{DeviceSigningKey, SignedRequest, headers};

    const NOW: i64 = 1_790_000_000_000;

    fn accepted(seq: u64) -> Answer {
        (
            202,
            vec![],
            format!(r#"{{"seq":{seq},"message_id":"m-{seq}"}}"#),
        )
    }

    /// A spool with `n` batches and a sender to `url`, with the device's public key.
    fn setup(
        name: &str,
        url: &str,
        n: i64,
    ) -> (
        StateDir,
        Spool,
        Sender,
        DeviceId,
        vigie_domain::signing::DevicePublicKey,
    ) {
        let dir = scratch(name);
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("open");
        for i in 0..n {
            spool.append(&agent(), &[sample(NOW + i)]).expect("append");
        }
        let identity = identity(url);
        let key = DeviceSigningKey::generate();
        let public = key.public_key();
        let device = identity.device_id.clone();
        (
            dir,
            spool,
            Sender::new(http_client(), &identity, key),
            device,
            public,
        )
    }

    fn drain_all(
        spool: &mut Spool,
        sender: &Sender,
        backoff: &mut Backoff,
        clock: &ManualClock,
    ) -> (DrainEnd, Vec<Event>) {
        let mut seen = Vec::new();
        let stop = AtomicBool::new(false);
        let end = drain(spool, sender, backoff, clock, &stop, None, &mut |e| {
            seen.push(e)
        });
        (end, seen)
    }

    #[test]
    fn accepted_batches_leave_the_spool_signed_and_in_order() {
        let (url, requests) = serve(vec![accepted(1), accepted(2)]);
        let (dir, mut spool, sender, device, public) = setup("drain-ok", &url, 2);
        let clock = ManualClock::at(NOW + 5_000);
        let (end, events) = drain_all(&mut spool, &sender, &mut Backoff::default(), &clock);
        assert_eq!(end, DrainEnd::Empty);
        assert_eq!(
            events,
            vec![Event::Delivered { seq: 1 }, Event::Delivered { seq: 2 }]
        );
        assert_eq!(spool.depth(), 0);
        assert_eq!(fs::read_dir(dir.spool_dir()).expect("ls").count(), 0);
        assert_eq!(spool.state().sent, 2);
        assert_eq!(spool.state().last_success_ms, Some(NOW + 5_000));

        for expected_seq in [1u64, 2] {
            let r = requests.recv().expect("request");
            assert_eq!(
                (r.method.as_str(), r.path.as_str()),
                ("POST", routes::BATCHES)
            );
            assert_eq!(r.headers["content-type"], "application/json");
            assert_eq!(r.headers["content-encoding"], "gzip");
            assert_eq!(r.headers[headers::DEVICE], device.as_str());
            assert_eq!(r.headers[headers::SEQUENCE], expected_seq.to_string());
            assert_eq!(r.headers[headers::TIMESTAMP], (NOW + 5_000).to_string());
            let request = SignedRequest {
                method: "POST",
                path: routes::BATCHES,
                device: &device,
                timestamp_ms: NOW + 5_000,
                seq: expected_seq,
                body: &r.body,
            };
            assert_eq!(
                public.verify(&request, &r.headers[headers::SIGNATURE]),
                Ok(())
            );
            let batch = decode(&r.body);
            assert_eq!(batch.validate(NOW + 5_000), Ok(()));
            assert_eq!(batch.start_ms, NOW + expected_seq as i64 - 1);
        }
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn a_replayed_batch_counts_as_delivered() {
        let replay = r#"{"error":{"code":"sequence_replayed","message":"already have 1","last_accepted_seq":1}}"#;
        let (url, _requests) = serve(vec![(409, vec![], replay.into())]);
        let (dir, mut spool, sender, _, _) = setup("drain-409", &url, 1);
        let clock = ManualClock::at(NOW);
        let (end, events) = drain_all(&mut spool, &sender, &mut Backoff::default(), &clock);
        assert_eq!(end, DrainEnd::Empty);
        assert_eq!(events, vec![Event::AlreadyDelivered { seq: 1 }]);
        assert_eq!(
            (
                spool.depth(),
                spool.state().replay_acknowledged,
                spool.state().sent
            ),
            (0, 1, 0)
        );
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn a_server_error_keeps_the_batch_and_backs_off_then_a_retry_resigns() {
        let (url, requests) = serve(vec![
            (500, vec![], error("internal")),
            (503, vec![], String::new()),
            accepted(1),
        ]);
        let (dir, mut spool, sender, device, public) = setup("drain-500", &url, 1);
        let clock = ManualClock::at(NOW);
        let mut backoff = Backoff::default();
        let (end, events) = drain_all(&mut spool, &sender, &mut backoff, &clock);
        let DrainEnd::RetryIn(delay) = end else {
            panic!("expected a retry, got {end:?}");
        };
        assert!(delay <= Duration::from_secs(1));
        assert!(
            matches!(&events[..], [Event::RetryLater { seq: 1, reason, .. }] if reason.contains("HTTP 500"))
        );
        assert_eq!(spool.oldest(), Some(1));
        assert!(dir.spool_dir().join("00000000000000000001.batch").exists());
        assert_eq!(backoff.failures(), 1);
        assert!(
            spool
                .state()
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("internal"))
        );

        clock.advance_ms(2_000);
        let (end, _) = drain_all(&mut spool, &sender, &mut backoff, &clock);
        assert!(matches!(end, DrainEnd::RetryIn(_)));
        assert_eq!(backoff.failures(), 2);
        assert_eq!(backoff.ceiling(), Duration::from_secs(4));

        clock.advance_ms(3_000);
        let (end, _) = drain_all(&mut spool, &sender, &mut backoff, &clock);
        assert_eq!(end, DrainEnd::Empty);
        assert_eq!(backoff.failures(), 0);
        assert_eq!(spool.state().last_error, None);

        // Same body and seq each time, a fresh timestamp and signature.
        let attempts: Vec<_> = (0..3).map(|_| requests.recv().expect("request")).collect();
        assert!(attempts.iter().all(|r| r.body == attempts[0].body));
        assert_eq!(
            attempts[2].headers[headers::TIMESTAMP],
            (NOW + 5_000).to_string()
        );
        let request = SignedRequest {
            method: "POST",
            path: routes::BATCHES,
            device: &device,
            timestamp_ms: NOW + 5_000,
            seq: 1,
            body: &attempts[2].body,
        };
        assert_eq!(
            public.verify(&request, &attempts[2].headers[headers::SIGNATURE]),
            Ok(())
        );
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn a_refused_batch_is_moved_aside_and_the_next_one_goes() {
        let (url, _requests) = serve(vec![(422, vec![], error("invalid_batch")), accepted(2)]);
        let (dir, mut spool, sender, _, _) = setup("drain-422", &url, 2);
        let clock = ManualClock::at(NOW);
        let (end, events) = drain_all(&mut spool, &sender, &mut Backoff::default(), &clock);
        assert_eq!(end, DrainEnd::Empty);
        assert!(matches!(
            &events[..],
            [Event::Rejected { seq: 1, status: 422, code: Some(c), .. }, Event::Delivered { seq: 2 }]
                if c == "invalid_batch"
        ));
        let rejected = dir.rejected_dir();
        assert!(rejected.join("00000000000000000001.batch").exists());
        let reason: serde_json::Value = serde_json::from_slice(
            &fs::read(rejected.join("00000000000000000001.error.json")).expect("reason"),
        )
        .expect("json");
        assert_eq!(reason["answer"]["error"]["code"], "invalid_batch");
        assert_eq!((spool.state().rejected, spool.state().sent), (1, 1));
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn a_batch_deleted_by_hand_does_not_block_the_others() {
        let (url, _requests) = serve(vec![accepted(2)]);
        let (dir, mut spool, sender, _, _) = setup("drain-missing", &url, 2);
        fs::remove_file(dir.spool_dir().join("00000000000000000001.batch")).expect("rm");
        let clock = ManualClock::at(NOW);
        let (end, events) = drain_all(&mut spool, &sender, &mut Backoff::default(), &clock);
        assert_eq!(end, DrainEnd::Empty);
        assert!(
            matches!(
                &events[..],
                [Event::Storage(_), Event::Delivered { seq: 2 }]
            ),
            "{events:?}"
        );
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn rate_limits_and_revocation_stop_the_drain() {
        let (url, _requests) = serve(vec![
            (
                429,
                vec![("retry-after", "30".into())],
                error("rate_limited"),
            ),
            (403, vec![], error("device_revoked")),
        ]);
        let (dir, mut spool, sender, _, _) = setup("drain-429", &url, 1);
        let clock = ManualClock::at(NOW);
        let (end, _) = drain_all(&mut spool, &sender, &mut Backoff::default(), &clock);
        assert!(matches!(end, DrainEnd::RetryIn(d) if d >= Duration::from_secs(30)));
        let (end, events) = drain_all(&mut spool, &sender, &mut Backoff::default(), &clock);
        assert_eq!(end, DrainEnd::Revoked);
        assert!(matches!(&events[..], [Event::Revoked(_)]));
        assert_eq!(spool.depth(), 1, "a revoked device keeps its data");
        drop(spool);
        assert!(dir.read_state().expect("state").revoked);
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn run_once_samples_spools_and_delivers() {
        let (url, requests) = serve(vec![accepted(1)]);
        let dir = scratch("run-once");
        let identity = identity(&url);
        let key = DeviceSigningKey::generate();
        dir.write_identity(&identity).expect("identity");
        let pending = dir.write_pending_key(&key).expect("key");
        dir.commit_key(&pending).expect("commit");
        let clock = vigie_domain::clock::SystemClock;
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        let delivered = run_once(&dir, &RunOptions::default(), &clock, &stop, &mut |e| {
            seen.push(e)
        })
        .expect("runs");
        assert!(delivered, "{seen:?}");
        let r = requests.recv().expect("request");
        let batch = decode(&r.body);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.validate(clock.now_ms()), Ok(()));
        assert_eq!(dir.read_state().expect("state").next_seq, 2);

        // The server is gone now: the next run keeps its batch and says so.
        let delivered =
            run_once(&dir, &RunOptions::default(), &clock, &stop, &mut |_| {}).expect("runs");
        assert!(!delivered);
        assert_eq!(
            crate::spool::pending_on_disk(&dir).expect("scan").batches,
            1
        );
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn a_revoked_device_stops_and_stays_stopped() {
        let (url, _requests) = serve(vec![(403, vec![], error("device_revoked"))]);
        let dir = scratch("run-revoked");
        dir.write_identity(&identity(&url)).expect("identity");
        let pending = dir
            .write_pending_key(&DeviceSigningKey::generate())
            .expect("key");
        dir.commit_key(&pending).expect("commit");
        let stop = AtomicBool::new(false);
        let clock = vigie_domain::clock::SystemClock;
        let mut seen = Vec::new();
        let end = run(&dir, &RunOptions::default(), &clock, &stop, &mut |e| {
            seen.push(e)
        });
        assert_eq!(end.ok(), Some(RunEnd::Revoked));
        assert!(matches!(seen.first(), Some(Event::Revoked(_))), "{seen:?}");
        assert!(dir.read_state().expect("state").revoked);
        // The next start refuses before sending anything.
        let again = run(&dir, &RunOptions::default(), &clock, &stop, &mut |_| {});
        assert!(matches!(again, Err(RunError::Revoked)));
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn the_loop_stops_on_request_and_keeps_its_samples() {
        let dir = scratch("run-stop");
        // Nothing listens on this port: the backend is down.
        let identity = identity("http://127.0.0.1:9");
        dir.write_identity(&identity).expect("identity");
        let pending = dir
            .write_pending_key(&DeviceSigningKey::generate())
            .expect("key");
        dir.commit_key(&pending).expect("commit");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2_600));
                stop.store(true, Ordering::SeqCst);
            })
        };
        // The last configuration asks for a backup job's status file.
        let status_file = dir.root().join("nightly.status");
        fs::write(&status_file, "FAILED: target unreachable\n").expect("status file");
        let config = AgentConfig {
            collect: CollectPlan {
                backups: vec![vigie_domain::protocol::BackupSource::StatusFile {
                    job: "nightly".into(),
                    path: status_file.display().to_string(),
                }],
                ..CollectPlan::default()
            },
            ..AgentConfig::default()
        };
        dir.write_config(&config).expect("config");
        let options = RunOptions {
            sample_interval: Some(Duration::from_millis(500)),
            send_interval: Some(Duration::from_secs(1)),
            limits: SpoolLimits::default(),
            watch: WatchSetup {
                only: Some(vec!["backups".into(), "services".into()]),
                ..WatchSetup::default()
            },
        };
        let mut seen = Vec::new();
        let end = run(
            &dir,
            &options,
            &vigie_domain::clock::SystemClock,
            &stop,
            &mut |e| seen.push(e),
        )
        .expect("runs");
        stopper.join().expect("stopper");
        assert_eq!(end, RunEnd::Stopped);
        assert!(
            matches!(seen.first(), Some(Event::ConfigUnavailable(_))),
            "{seen:?}"
        );
        assert!(
            matches!(seen.last(), Some(Event::Stopping { pending }) if *pending >= 2),
            "{seen:?}"
        );
        // Every sample taken is in some spooled batch, and the backend being down was noticed.
        let spooled: usize = seen
            .iter()
            .filter_map(|e| match e {
                Event::Spooled(s) => Some(s.samples),
                _ => None,
            })
            .sum();
        assert!(spooled >= 4, "{seen:?}");
        assert!(seen.iter().any(|e| matches!(e, Event::RetryLater { .. })));

        // The watchers' findings and statuses are in the batches on disk, for the next start.
        let mut findings = Vec::new();
        let mut collectors = Vec::new();
        let mut files: Vec<_> = fs::read_dir(dir.spool_dir())
            .expect("spool")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for file in files {
            let batch = decode(&fs::read(&file).expect("read"));
            assert_eq!(
                batch.validate(vigie_domain::clock::SystemClock.now_ms()),
                Ok(())
            );
            findings.extend(batch.findings);
            collectors.extend(batch.collectors);
        }
        let backup = findings
            .iter()
            .find_map(|f| match f {
                vigie_domain::telemetry::Finding::Backup(b) => Some(b),
                _ => None,
            })
            .expect("a backup finding in a spooled batch");
        assert_eq!(
            (
                backup.job.as_str(),
                backup.status.as_str(),
                backup.message.as_deref()
            ),
            ("nightly", "failed", Some("target unreachable"))
        );
        let mut states: Vec<_> = collectors
            .iter()
            .map(|c| (c.collector.as_str(), c.state.as_str()))
            .collect();
        states.sort();
        assert_eq!(states, [("backups", "ok"), ("services", "not_applicable")]);
        assert!(
            seen.iter()
                .any(|e| matches!(e, Event::Collector(c) if c.collector == "backups"))
        );
        assert_eq!(
            crate::status::read_collectors(&dir).len(),
            2,
            "kept for `status`"
        );
        fs::remove_dir_all(dir.root()).ok();
    }
}
