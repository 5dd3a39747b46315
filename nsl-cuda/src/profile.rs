//! Kernel-time profile, on when `NSL_CUDA_PROFILE=1`: every launch is bracketed by two CUDA
//! events on the stream; when the backend is dropped (last clone) a table of kernels by total
//! GPU time goes to stderr — calls, total ms, mean µs, share — with the GPU-busy share of the
//! span from the first launch to the last (the rest is launch overhead, host work, copies).
//!
//! ```text
//! NSL_CUDA_PROFILE=1 cargo xtask --features cuda bench --backend cuda --only plain
//! ```
//! Event pairs are resolved in batches (one synchronisation per 1024 launches), so a profiled
//! run is slightly slower than an unprofiled one.

use std::collections::HashMap;
use std::fmt::Write as _;

use cust::event::{Event, EventFlags};
use cust::stream::Stream;

/// Launches between resolutions of the pending event pairs.
const BATCH: usize = 1024;

/// The events of launches not yet resolved and the totals of those that were.
pub(crate) struct Profile {
    pending: Vec<(&'static str, Event, Event)>,
    /// kernel → (calls, total ms)
    totals: HashMap<&'static str, (u64, f64)>,
    first: Option<Event>,
    last: Option<Event>,
}

impl Profile {
    /// A profile when `NSL_CUDA_PROFILE` is set to anything but `0` or empty.
    pub(crate) fn from_env() -> Option<Profile> {
        let on = std::env::var("NSL_CUDA_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
        on.then(|| Profile { pending: Vec::new(), totals: HashMap::new(), first: None, last: None })
    }

    /// Record a start event on `stream`; pass it to [`Profile::end`] after the launch.
    pub(crate) fn start(&mut self, stream: &Stream) -> Option<Event> {
        if self.first.is_none() {
            self.first = Event::new(EventFlags::DEFAULT).ok().filter(|e| e.record(stream).is_ok());
        }
        let e = Event::new(EventFlags::DEFAULT).ok()?;
        e.record(stream).ok()?;
        Some(e)
    }

    /// Record the end event of `kernel`'s launch that `start` opened.
    pub(crate) fn end(&mut self, kernel: &'static str, start: Option<Event>, stream: &Stream) {
        let (Some(start), Ok(end)) = (start, Event::new(EventFlags::DEFAULT)) else { return };
        if end.record(stream).is_err() {
            return;
        }
        self.pending.push((kernel, start, end));
        if self.pending.len() >= BATCH {
            self.resolve();
        }
    }

    /// Wait for the pending launches and add their times to the totals.
    fn resolve(&mut self) {
        let Some((_, _, last)) = self.pending.last() else { return };
        if last.synchronize().is_err() {
            self.pending.clear();
            return;
        }
        for (kernel, start, end) in self.pending.drain(..) {
            if let Ok(ms) = end.elapsed_time_f32(&start) {
                let t = self.totals.entry(kernel).or_default();
                t.0 += 1;
                t.1 += ms as f64;
            }
            self.last = Some(end);
        }
    }

    /// The table of kernels by total time (resolves what is pending first).
    pub(crate) fn report(&mut self) -> String {
        self.resolve();
        let busy: f64 = self.totals.values().map(|t| t.1).sum();
        let span = match (&self.first, &self.last) {
            (Some(first), Some(last)) => last.elapsed_time_f32(first).unwrap_or(0.0) as f64,
            _ => 0.0,
        };
        let mut rows: Vec<_> = self.totals.iter().collect();
        rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1).then(a.0.cmp(b.0)));
        let mut out = format!(
            "nsl-cuda profile: {:.1} ms in kernels over a {:.1} ms span ({:.0}% busy)\n",
            busy,
            span,
            100.0 * busy / span.max(1e-9)
        );
        out.push_str("| kernel | calls | total ms | mean µs | share |\n|---|---:|---:|---:|---:|\n");
        for (kernel, (calls, ms)) in rows {
            let _ = writeln!(
                out,
                "| {kernel} | {calls} | {ms:.2} | {:.1} | {:.1}% |",
                1e3 * ms / *calls as f64,
                100.0 * ms / busy.max(1e-9)
            );
        }
        out
    }
}
