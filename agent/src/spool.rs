//! The on-disk spool: batches waiting to be delivered, one file each, oldest first.
//!
//! Invariants:
//! - sequence numbers strictly increase, across restarts too: the next number is persisted in
//!   `state.json` *before* the batch file is written, and on open the next number is at least
//!   one more than the highest spooled batch;
//! - the spool is bounded (batches and bytes); when full, the oldest batch is dropped, counted,
//!   and the next batch built reports the drop (`SpoolReport`) — data is never lost silently;
//! - a batch leaves the spool only when the server accepted it, already had it, or refused it
//!   for good (then it is moved to `rejected/` with the server's answer).

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use vigie_domain::intake::gzip;
use vigie_domain::protocol::limits::MAX_COMPRESSED_BODY;
use vigie_domain::telemetry::limits::{MAX_COLLECTORS, MAX_EVENTS, MAX_FINDINGS};
use vigie_domain::telemetry::{
    AgentInfo, CollectorStatus, EventCount, Finding, Sample, SpoolReport, TelemetryBatch, bounds,
};

use crate::state::{AgentState, StateDir, StateError, StateLock, sync_dir, write_atomically};

const BATCH_SUFFIX: &str = ".batch";

/// How much the spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    pub max_batches: usize,
    pub max_bytes: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        Self {
            max_batches: 5_000,
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

/// What the watchers observed and have not yet been spooled: it rides with the next batch
/// of samples (a batch always has samples), and so survives a restart like them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub findings: Vec<Finding>,
    pub events: Vec<EventCount>,
    pub collectors: Vec<CollectorStatus>,
}

impl Observed {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.events.is_empty() && self.collectors.is_empty()
    }

    /// Adds a watcher round: findings and events queue up; a collector's newer status
    /// replaces one not yet sent.
    pub fn absorb(&mut self, round: crate::watch::Round) {
        let mut o = round.observations;
        self.findings.append(&mut o.findings);
        self.events.append(&mut o.events);
        for status in round.changed {
            self.collectors.retain(|s| s.collector != status.collector);
            self.collectors.push(status);
        }
    }

    /// At most one batch's worth, oldest first; the rest waits for the next batch.
    fn take_batch(&mut self) -> Observed {
        fn front<T>(v: &mut Vec<T>, max: usize) -> Vec<T> {
            let n = v.len().min(max);
            v.drain(..n).collect()
        }
        Observed {
            findings: front(&mut self.findings, MAX_FINDINGS),
            events: front(&mut self.events, MAX_EVENTS),
            collectors: front(&mut self.collectors, MAX_COLLECTORS),
        }
    }

    fn len(&self) -> usize {
        self.findings.len() + self.events.len() + self.collectors.len()
    }

    /// Puts back a batch's worth that could not be written, ahead of what came since.
    fn restore(&mut self, mut taken: Observed) {
        taken.findings.append(&mut self.findings);
        taken.events.append(&mut self.events);
        for s in self.collectors.drain(..) {
            taken.collectors.retain(|t| t.collector != s.collector);
            taken.collectors.push(s);
        }
        *self = taken;
    }
}

/// One batch written to the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    pub seq: u64,
    pub samples: usize,
    /// Findings, events and collector statuses it carries.
    pub observed: usize,
    /// Compressed size.
    pub bytes: usize,
    /// The drops this batch reports to the server.
    pub report: SpoolReport,
    /// Batches dropped to make room for this one: count, first and last sequence number.
    pub dropped: Option<(u64, u64, u64)>,
}

/// The spool of one state directory. Holds the directory's lock while open.
#[derive(Debug)]
pub struct Spool {
    dir: StateDir,
    limits: SpoolLimits,
    /// Sequence number and size of every pending batch, oldest first.
    pending: VecDeque<(u64, u64)>,
    bytes: u64,
    state: AgentState,
    _lock: StateLock,
}

/// `<seq:020>.batch` → seq.
fn parse_batch_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(BATCH_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn batch_name(seq: u64) -> String {
    format!("{seq:020}{BATCH_SUFFIX}")
}

/// Pending batches on disk, sorted by sequence number: `(seq, bytes)`. Temp files left by an
/// interrupted write are not batches and are skipped.
fn scan(spool_dir: &Path) -> Result<Vec<(u64, u64)>, StateError> {
    let entries = match fs::read_dir(spool_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io(spool_dir)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(StateError::io(spool_dir))?;
        let Some(seq) = entry.file_name().to_str().and_then(parse_batch_name) else {
            continue;
        };
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        found.push((seq, len));
    }
    found.sort_unstable();
    Ok(found)
}

/// What the spool holds on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolDepth {
    pub batches: usize,
    pub bytes: u64,
    /// The highest pending sequence number.
    pub highest: Option<u64>,
}

/// The spool's content read from disk without taking the lock (`status`).
pub fn pending_on_disk(dir: &StateDir) -> Result<SpoolDepth, StateError> {
    let found = scan(&dir.spool_dir())?;
    Ok(SpoolDepth {
        batches: found.len(),
        bytes: found.iter().map(|(_, len)| len).sum(),
        highest: found.last().map(|(seq, _)| *seq),
    })
}

impl Spool {
    /// Opens (creating if needed) the spool of `dir`, taking the directory's lock.
    pub fn open(dir: &StateDir, limits: SpoolLimits) -> Result<Self, StateError> {
        let lock = dir.lock()?;
        let mut state = dir.read_state()?;
        let spool_dir = dir.spool_dir();
        // Leftovers of a write interrupted by a crash: incomplete, never acknowledged.
        if let Ok(entries) = fs::read_dir(&spool_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let pending: VecDeque<(u64, u64)> = scan(&spool_dir)?.into();
        let after_spooled = pending.back().map_or(1, |(seq, _)| seq + 1);
        state.next_seq = state.next_seq.max(after_spooled).max(1);
        let bytes = pending.iter().map(|(_, len)| len).sum();
        Ok(Self {
            dir: dir.clone(),
            limits,
            pending,
            bytes,
            state,
            _lock: lock,
        })
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    pub fn dir(&self) -> &StateDir {
        &self.dir
    }

    /// Pending batches.
    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    /// Compressed bytes pending.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The oldest pending batch: the next to send.
    pub fn oldest(&self) -> Option<u64> {
        self.pending.front().map(|(seq, _)| *seq)
    }

    fn batch_path(&self, seq: u64) -> PathBuf {
        self.dir.spool_dir().join(batch_name(seq))
    }

    /// The gzip body of a pending batch.
    pub fn read(&self, seq: u64) -> Result<Vec<u8>, StateError> {
        let path = self.batch_path(seq);
        fs::read(&path).map_err(StateError::io(&path))
    }

    /// The drops the next batch must report.
    fn unreported(&self) -> SpoolReport {
        SpoolReport {
            dropped_batches: self.state.dropped_unreported,
            dropped_seq_range: self.state.dropped_seq_range,
        }
    }

    /// Builds batches from `samples` (oldest first), writes them to the spool and returns
    /// what was written. Usually one batch; more when the samples exceed a batch's bounds.
    pub fn append(
        &mut self,
        agent: &AgentInfo,
        samples: &[Sample],
    ) -> Result<Vec<Spooled>, StateError> {
        self.append_observed(agent, samples, &mut Observed::default())
    }

    /// [`Spool::append`], the batches also carrying what `observed` holds (taken out of it
    /// once written; what does not fit a batch's bounds stays for the next call). Nothing
    /// is written without samples: a batch always has some.
    pub fn append_observed(
        &mut self,
        agent: &AgentInfo,
        samples: &[Sample],
        observed: &mut Observed,
    ) -> Result<Vec<Spooled>, StateError> {
        let mut written = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let mut dropped = self.make_room(0);
            let report = self.unreported();
            let mut n = rest.len().min(bounds::MAX_SAMPLES);
            let extra = observed.take_batch();
            let body = loop {
                let body = match encode(agent, &report, &rest[..n], &extra) {
                    Ok(body) => body,
                    Err(e) => {
                        observed.restore(extra);
                        return Err(e);
                    }
                };
                if body.len() <= MAX_COMPRESSED_BODY || n == 1 {
                    break body;
                }
                n = n.div_ceil(2);
            };
            merge_drops(&mut dropped, self.make_room(body.len() as u64));
            let seq = match self.write(&body, &report) {
                Ok(seq) => seq,
                Err(e) => {
                    observed.restore(extra);
                    return Err(e);
                }
            };
            written.push(Spooled {
                seq,
                samples: n,
                observed: extra.len(),
                bytes: body.len(),
                report,
                dropped,
            });
            rest = &rest[n..];
        }
        Ok(written)
    }

    /// Persists the sequence number, then writes the batch file, then clears the drops it
    /// reports.
    fn write(&mut self, body: &[u8], report: &SpoolReport) -> Result<u64, StateError> {
        let seq = self.state.next_seq;
        self.state.next_seq = seq + 1;
        self.save()?;
        let path = self.batch_path(seq);
        write_atomically(&path, body).map_err(StateError::io(&path))?;
        self.pending.push_back((seq, body.len() as u64));
        self.bytes += body.len() as u64;

        if report.dropped_batches > 0 {
            let s = &mut self.state;
            s.dropped_unreported = s.dropped_unreported.saturating_sub(report.dropped_batches);
            s.dropped_seq_range = match (s.dropped_unreported, s.dropped_seq_range) {
                (0, _) | (_, None) => None,
                // Drops are always the oldest batches, so later drops have later numbers.
                (_, Some((_, last))) => {
                    let reported_last = report.dropped_seq_range.map_or(0, |(_, l)| l);
                    Some((reported_last + 1, last))
                }
            };
            self.save()?;
        }
        Ok(seq)
    }

    /// Drops the oldest batches until one more batch of `incoming` bytes fits.
    fn make_room(&mut self, incoming: u64) -> Option<(u64, u64, u64)> {
        let mut dropped: Option<(u64, u64, u64)> = None;
        while !self.pending.is_empty()
            && (self.pending.len() >= self.limits.max_batches
                || self.bytes + incoming > self.limits.max_bytes)
        {
            let Some((seq, len)) = self.pending.pop_front() else {
                break;
            };
            let _ = fs::remove_file(self.batch_path(seq));
            self.bytes -= len;
            let s = &mut self.state;
            s.dropped_total += 1;
            s.dropped_unreported += 1;
            s.dropped_seq_range = Some(match s.dropped_seq_range {
                Some((first, _)) => (first, seq),
                None => (seq, seq),
            });
            merge_drops(&mut dropped, Some((1, seq, seq)));
        }
        dropped
    }

    /// Removes `seq` from the pending list (it is normally the oldest).
    fn forget(&mut self, seq: u64) {
        let Some(i) = self.pending.iter().position(|(s, _)| *s == seq) else {
            return;
        };
        if let Some((_, len)) = self.pending.remove(i) {
            self.bytes -= len;
        }
    }

    /// Forgets `seq` if its file no longer exists (removed by hand); returns whether it did.
    pub fn forget_if_missing(&mut self, seq: u64) -> bool {
        if self.batch_path(seq).exists() {
            return false;
        }
        self.forget(seq);
        true
    }

    /// The server has the batch (accepted now, or already had it): remove it.
    pub fn delivered(&mut self, seq: u64, now_ms: i64, replayed: bool) -> Result<(), StateError> {
        self.forget(seq);
        if replayed {
            self.state.replay_acknowledged += 1;
        } else {
            self.state.sent += 1;
        }
        self.state.last_success_ms = Some(now_ms);
        self.state.last_error = None;
        let path = self.batch_path(seq);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(StateError::io(&path)(e));
            }
            _ => {}
        }
        self.save()
    }

    /// The server will never accept the batch: move it to `rejected/` with its answer.
    /// Returns where the batch now lies.
    pub fn reject(
        &mut self,
        seq: u64,
        status: u16,
        answer: &str,
        now_ms: i64,
    ) -> Result<PathBuf, StateError> {
        self.forget(seq);
        self.state.rejected += 1;
        let rejected = self.dir.rejected_dir();
        fs::create_dir_all(&rejected).map_err(StateError::io(&rejected))?;
        let reason = serde_json::json!({
            "seq": seq,
            "status": status,
            "rejected_at_ms": now_ms,
            "answer": serde_json::from_str::<serde_json::Value>(answer)
                .unwrap_or_else(|_| serde_json::Value::String(answer.to_owned())),
        });
        let reason_path = rejected.join(format!("{seq:020}.error.json"));
        let text = serde_json::to_vec_pretty(&reason).unwrap_or_default();
        write_atomically(&reason_path, &text).map_err(StateError::io(&reason_path))?;
        let target = rejected.join(batch_name(seq));
        fs::rename(self.batch_path(seq), &target).map_err(StateError::io(&target))?;
        sync_dir(&rejected).map_err(StateError::io(&rejected))?;
        self.save()?;
        Ok(target)
    }

    /// A delivery attempt failed for a reason that may pass; remembered for `status`.
    pub fn record_failure(&mut self, reason: &str) -> Result<(), StateError> {
        if self.state.last_error.as_deref() == Some(reason) {
            return Ok(());
        }
        self.state.last_error = Some(reason.to_owned());
        self.save()
    }

    /// The server revoked this device.
    pub fn set_revoked(&mut self, reason: &str) -> Result<(), StateError> {
        self.state.revoked = true;
        self.state.last_error = Some(reason.to_owned());
        self.save()
    }

    fn save(&self) -> Result<(), StateError> {
        self.dir.write_state(&self.state)
    }
}

fn merge_drops(into: &mut Option<(u64, u64, u64)>, more: Option<(u64, u64, u64)>) {
    *into = match (*into, more) {
        (Some((n, first, _)), Some((m, _, last))) => Some((n + m, first, last)),
        (a, b) => a.or(b),
    };
}

/// The gzip body of a batch of `samples`.
fn encode(
    agent: &AgentInfo,
    report: &SpoolReport,
    samples: &[Sample],
    observed: &Observed,
) -> Result<Vec<u8>, StateError> {
    let mut batch = TelemetryBatch::from_samples(agent.clone(), report.clone(), samples);
    batch.findings.clone_from(&observed.findings);
    batch.events.clone_from(&observed.events);
    batch.collectors.clone_from(&observed.collectors);
    let json = serde_json::to_vec(&batch).map_err(|source| StateError::Corrupt {
        path: PathBuf::from("<batch>"),
        source,
    })?;
    Ok(gzip(&json))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::state::tests::scratch;
    use vigie_domain::intake::inflate_bounded;
    use vigie_domain::protocol::limits::MAX_DECOMPRESSED_BODY;
    use vigie_domain::telemetry::{MemorySample, TelemetryBatch};

    pub(crate) fn agent() -> AgentInfo {
        AgentInfo {
            version: "0.1.0".into(),
            hostname: "srv-test".into(),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0".into(),
            arch: "x86_64".into(),
            boot_time: 1_700_000_000,
        }
    }

    pub(crate) fn sample(ts: i64) -> Sample {
        Sample {
            ts,
            cpu: None,
            load: None,
            memory: Some(MemorySample {
                total_bytes: 8 << 30,
                available_bytes: 4 << 30,
                used_pct: 50.0,
                swap_total_bytes: 0,
                swap_used_bytes: 0,
            }),
            filesystems: Vec::new(),
            disks: Vec::new(),
            network: Vec::new(),
            temperatures: Vec::new(),
            uptime_s: Some(100),
        }
    }

    pub(crate) fn decode(body: &[u8]) -> TelemetryBatch {
        let json = inflate_bounded(body, MAX_DECOMPRESSED_BODY).expect("gzip");
        serde_json::from_slice(&json).expect("a TelemetryBatch")
    }

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn sequence_numbers_increase_across_restarts() {
        let dir = scratch("spool-seq");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("open");
        let first = spool.append(&agent(), &[sample(NOW)]).expect("append");
        let second = spool.append(&agent(), &[sample(NOW + 1)]).expect("append");
        assert_eq!((first[0].seq, second[0].seq), (1, 2));
        spool.delivered(2, NOW, false).expect("delivered");
        drop(spool);

        // Restart: the highest batch was delivered, yet its number is not reused.
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("reopen");
        assert_eq!(spool.oldest(), Some(1));
        assert_eq!(
            spool.append(&agent(), &[sample(NOW + 2)]).expect("append")[0].seq,
            3
        );
        drop(spool);

        // state.json lost or stale: the spool's own highest number still wins.
        fs::remove_file(dir.state_path()).expect("remove state");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("reopen");
        assert_eq!(
            spool.append(&agent(), &[sample(NOW + 3)]).expect("append")[0].seq,
            4
        );
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn a_full_spool_drops_the_oldest_and_the_next_batch_says_so() {
        let dir = scratch("spool-full");
        let limits = SpoolLimits {
            max_batches: 3,
            max_bytes: 1 << 20,
        };
        let mut spool = Spool::open(&dir, limits).expect("open");
        for i in 0..3 {
            let spooled = spool.append(&agent(), &[sample(NOW + i)]).expect("append");
            assert_eq!(spooled[0].dropped, None);
        }
        // The fourth and fifth batches push out 1 and 2; the fourth reports the first drop.
        let fourth = spool.append(&agent(), &[sample(NOW + 3)]).expect("append");
        assert_eq!(fourth[0].dropped, Some((1, 1, 1)));
        assert_eq!(fourth[0].report.dropped_batches, 1);
        assert_eq!(fourth[0].report.dropped_seq_range, Some((1, 1)));
        let body = spool.read(4).expect("read");
        assert_eq!(decode(&body).spool, fourth[0].report);

        let fifth = spool.append(&agent(), &[sample(NOW + 4)]).expect("append");
        assert_eq!(fifth[0].report.dropped_seq_range, Some((2, 2)));
        assert_eq!(spool.state().dropped_total, 2);
        assert_eq!(spool.state().dropped_unreported, 0);
        assert_eq!(spool.depth(), 3);
        assert_eq!(spool.oldest(), Some(3));

        // Once reported, the counter is reset: the next batch reports nothing.
        spool.delivered(3, NOW, false).expect("delivered");
        let sixth = spool.append(&agent(), &[sample(NOW + 5)]).expect("append");
        assert!(sixth[0].report.is_empty());
        assert!(decode(&spool.read(6).expect("read")).spool.is_empty());
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn the_byte_bound_drops_too_and_unreported_drops_survive_a_restart() {
        let dir = scratch("spool-bytes");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("open");
        spool.append(&agent(), &[sample(NOW)]).expect("append");
        let one = spool.bytes();
        spool.append(&agent(), &[sample(NOW + 1)]).expect("append");
        spool.append(&agent(), &[sample(NOW + 2)]).expect("append");
        drop(spool);
        // Reopen with room for one batch only: making room by count finds the spool over its
        // byte bound and drops 1 and 2 (reported by this batch), then 3 to fit this batch
        // (reported by the next one).
        let limits = SpoolLimits {
            max_batches: 100,
            max_bytes: one * 2 - 1,
        };
        let mut spool = Spool::open(&dir, limits).expect("reopen");
        let spooled = spool.append(&agent(), &[sample(NOW + 3)]).expect("append");
        assert_eq!(spooled[0].dropped, Some((3, 1, 3)));
        assert_eq!(spooled[0].report.dropped_batches, 2);
        assert_eq!(spooled[0].report.dropped_seq_range, Some((1, 2)));
        assert_eq!((spool.oldest(), spool.depth()), (Some(4), 1));
        drop(spool);
        // The drop of 3 is not lost by a restart.
        let mut spool = Spool::open(&dir, limits).expect("reopen");
        let next = spool.append(&agent(), &[sample(NOW + 4)]).expect("append");
        assert_eq!(next[0].report.dropped_batches, 1);
        assert_eq!(next[0].report.dropped_seq_range, Some((3, 3)));
        assert_eq!(decode(&spool.read(5).expect("read")).spool, next[0].report);
        assert_eq!(spool.state().dropped_total, 4);
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn batches_drain_oldest_first_and_temp_files_are_ignored() {
        let dir = scratch("spool-order");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("open");
        for i in 0..12 {
            spool.append(&agent(), &[sample(NOW + i)]).expect("append");
        }
        drop(spool);
        // A crash in the middle of writing batch 13 leaves only its temp file.
        fs::write(
            dir.spool_dir().join("00000000000000000013.batch.tmp"),
            b"\x1f\x8b half",
        )
        .expect("tmp");
        fs::write(dir.spool_dir().join("notes.txt"), b"not a batch").expect("stray");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("reopen");
        assert!(
            !dir.spool_dir()
                .join("00000000000000000013.batch.tmp")
                .exists()
        );
        let mut order = Vec::new();
        while let Some(seq) = spool.oldest() {
            let batch = decode(&spool.read(seq).expect("read"));
            order.push((seq, batch.start_ms - NOW));
            spool.delivered(seq, NOW, false).expect("delivered");
        }
        let expected: Vec<(u64, i64)> = (1..=12).map(|s| (s, s as i64 - 1)).collect();
        assert_eq!(order, expected);
        assert_eq!(spool.state().sent, 12);
        assert_eq!(
            spool.append(&agent(), &[sample(NOW)]).expect("append")[0].seq,
            13
        );
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn rejected_batches_are_kept_with_their_reason() {
        let dir = scratch("spool-reject");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("open");
        spool.append(&agent(), &[sample(NOW)]).expect("append");
        let answer = r#"{"error":{"code":"invalid_batch","message":"bad"}}"#;
        let moved = spool.reject(1, 422, answer, NOW).expect("reject");
        assert!(moved.exists());
        assert_eq!(spool.depth(), 0);
        assert_eq!(pending_on_disk(&dir).expect("scan").batches, 0);
        let reason: serde_json::Value = serde_json::from_slice(
            &fs::read(dir.rejected_dir().join("00000000000000000001.error.json")).expect("reason"),
        )
        .expect("json");
        assert_eq!(reason["status"], 422);
        assert_eq!(reason["answer"]["error"]["code"], "invalid_batch");
        assert_eq!(spool.state().rejected, 1);
        fs::remove_dir_all(dir.root()).ok();
    }

    #[test]
    fn many_samples_are_split_into_valid_batches() {
        let dir = scratch("spool-split");
        let mut spool = Spool::open(&dir, SpoolLimits::default()).expect("open");
        let samples: Vec<Sample> = (0..bounds::MAX_SAMPLES as i64 + 10)
            .map(|i| sample(NOW + i))
            .collect();
        let spooled = spool.append(&agent(), &samples).expect("append");
        assert_eq!(spooled.len(), 2);
        assert_eq!(spooled[0].samples + spooled[1].samples, samples.len());
        for s in &spooled {
            let batch = decode(&spool.read(s.seq).expect("read"));
            assert_eq!(batch.validate(NOW + 2_000), Ok(()));
        }
        fs::remove_dir_all(dir.root()).ok();
    }
}
