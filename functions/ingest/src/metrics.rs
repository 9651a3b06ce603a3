//! Refusal counters, per stable code. Locally they are served by the runtime; on AWS every
//! refusal is also logged as a structured event (`refused`, with `code`), which a CloudWatch
//! metric filter counts without any API call.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts of refused requests by code, and of accepted batches.
#[derive(Debug, Default)]
pub struct IngestCounters {
    refused: Mutex<BTreeMap<&'static str, u64>>,
    accepted: Mutex<u64>,
}

impl IngestCounters {
    pub fn refused(&self, code: &'static str) {
        if let Ok(mut map) = self.refused.lock() {
            *map.entry(code).or_default() += 1;
        }
    }

    pub fn accepted(&self) {
        if let Ok(mut n) = self.accepted.lock() {
            *n += 1;
        }
    }

    /// A snapshot: refusals by code, and accepted batches.
    pub fn snapshot(&self) -> (BTreeMap<String, u64>, u64) {
        let refused = self
            .refused
            .lock()
            .map(|m| m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
            .unwrap_or_default();
        let accepted = self.accepted.lock().map(|n| *n).unwrap_or_default();
        (refused, accepted)
    }

    /// Prometheus text exposition.
    pub fn render_prometheus(&self) -> String {
        let (refused, accepted) = self.snapshot();
        let mut out = String::from(
            "# HELP vigie_ingest_refused_total Requests refused by the ingestion function, by reason.\n\
             # TYPE vigie_ingest_refused_total counter\n",
        );
        for (code, n) in refused {
            out.push_str(&format!(
                "vigie_ingest_refused_total{{code=\"{code}\"}} {n}\n"
            ));
        }
        out.push_str(
            "# HELP vigie_ingest_batches_accepted_total Batches accepted onto the intake queue.\n\
             # TYPE vigie_ingest_batches_accepted_total counter\n",
        );
        out.push_str(&format!("vigie_ingest_batches_accepted_total {accepted}\n"));
        out
    }
}
