//! Stage times from the production spans: a `tracing` layer that, while switched on, adds up
//! per span name the busy time (entered to exited) and the number of entries, on every thread,
//! and the bench's stage breakdown reads those totals after a normal `Calculator` call. So the
//! breakdown times exactly the code production runs, on every device and backend; the spans are
//! those of `anisoap-candle` (`prepare`, `neighbor_list_pass`, `neighbor_list`, `chunk`,
//! `fused_pair_density`, `power_spectrum`, `cuda_upload`, ...).
//!
//! A span's *self* time is its busy time minus the busy time of its child spans (those created
//! inside it on the same thread), so self times of one thread never overlap and add up to that
//! thread's traced time. Spans on other threads (parallel neighbour searches, a producer thread)
//! add their own time: with overlap, the sum over all names exceeds the wall time, which is
//! recorded beside it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use tracing::span::Id;
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Totals of one span name over a recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanTotal {
    /// Seconds between enter and exit, summed over every entry on every thread.
    pub busy_s: f64,
    /// `busy_s` minus the busy time of child spans.
    pub self_s: f64,
    /// Completed entries (one per span entered once).
    pub calls: u64,
    /// Distinct threads the span ran on.
    pub threads: usize,
}

#[derive(Default)]
struct Accumulator {
    busy: Duration,
    children: Duration,
    calls: u64,
    threads: HashSet<ThreadId>,
}

/// Enter instants of a span not yet exited (a span may be entered on several threads).
struct Entered(Vec<Instant>);

/// The recording layer; clones share their totals. Off until [`SpanRecorder::record`].
#[derive(Clone, Default)]
pub struct SpanRecorder {
    active: Arc<AtomicBool>,
    installed: Arc<AtomicBool>,
    totals: Arc<Mutex<BTreeMap<&'static str, Accumulator>>>,
}

/// Crate whose spans are recorded (the library's stages).
pub const TARGET: &str = "anisoap_candle";

impl SpanRecorder {
    /// The layer to add to a subscriber (records spans of [`TARGET`] and its modules); marks
    /// this recorder as installed.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        self.installed.store(true, Ordering::SeqCst);
        self.clone().with_filter(
            tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::TRACE),
        )
    }

    /// Whether [`SpanRecorder::layer`] was called (else a recording sees no spans).
    pub fn is_installed(&self) -> bool {
        self.installed.load(Ordering::SeqCst)
    }

    /// Runs `f` with recording on (totals cleared first) and returns its result with the totals
    /// per span name. Spans entered before the call are not counted.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> (T, BTreeMap<String, SpanTotal>) {
        self.lock().clear();
        self.active.store(true, Ordering::SeqCst);
        let out = f();
        self.active.store(false, Ordering::SeqCst);
        let totals = self
            .lock()
            .iter()
            // A parent entered before the recording only collects its children's time.
            .filter(|(_, a)| a.calls > 0)
            .map(|(name, a)| {
                let total = SpanTotal {
                    busy_s: a.busy.as_secs_f64(),
                    self_s: a.busy.saturating_sub(a.children).as_secs_f64(),
                    calls: a.calls,
                    threads: a.threads.len(),
                };
                (name.to_string(), total)
            })
            .collect();
        (out, totals)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Accumulator>> {
        // A panic while holding the lock leaves plain sums behind: still usable.
        self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S> Layer<S> for SpanRecorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<Entered>() {
                Some(entered) => entered.0.push(Instant::now()),
                None => ext.insert(Entered(vec![Instant::now()])),
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // Pairing exits with the latest enter keeps the sum right even when two threads are
        // inside the same span: the total is Σ exits − Σ enters either way.
        let Some(start) = span
            .extensions_mut()
            .get_mut::<Entered>()
            .and_then(|e| e.0.pop())
        else {
            return;
        };
        let elapsed = start.elapsed();
        let parent = span.parent().map(|p| p.name());
        let mut totals = self.lock();
        let entry = totals.entry(span.name()).or_default();
        entry.busy += elapsed;
        entry.calls += 1;
        entry.threads.insert(std::thread::current().id());
        if let Some(parent) = parent {
            totals.entry(parent).or_default().children += elapsed;
        }
    }
}

/// The process-wide recorder that `main` installs for `bench`.
pub fn global() -> &'static SpanRecorder {
    static RECORDER: OnceLock<SpanRecorder> = OnceLock::new();
    RECORDER.get_or_init(SpanRecorder::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    fn busy_wait(d: Duration) {
        let t = Instant::now();
        while t.elapsed() < d {
            std::hint::spin_loop();
        }
    }

    /// Nested spans: the parent's self time excludes the child; spans on another thread are
    /// summed with their thread counted; spans of other crates and spans outside a recording
    /// are not recorded.
    #[test]
    fn totals_self_time_threads_and_filter() {
        let recorder = SpanRecorder::default();
        let subscriber = tracing_subscriber::registry().with(recorder.layer());
        let dispatch = tracing::Dispatch::new(subscriber);
        tracing::dispatcher::with_default(&dispatch, || {
            let _outside = tracing::info_span!(target: "anisoap_candle::x", "before").entered();
            let ((), totals) = recorder.record(|| {
                for _ in 0..2 {
                    let _outer =
                        tracing::info_span!(target: "anisoap_candle::a", "outer").entered();
                    busy_wait(Duration::from_millis(4));
                    let _inner =
                        tracing::trace_span!(target: "anisoap_candle::b", "inner").entered();
                    busy_wait(Duration::from_millis(6));
                }
                let _other = tracing::info_span!(target: "somewhere_else", "foreign").entered();
                let dispatch = tracing::dispatcher::get_default(|d| d.clone());
                std::thread::spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        let _s =
                            tracing::info_span!(target: "anisoap_candle::c", "inner").entered();
                        busy_wait(Duration::from_millis(3));
                    })
                })
                .join()
                .unwrap();
            });
            let names: Vec<&str> = totals.keys().map(String::as_str).collect();
            assert_eq!(names, ["inner", "outer"]);
            let (outer, inner) = (&totals["outer"], &totals["inner"]);
            assert_eq!((outer.calls, inner.calls), (2, 3));
            assert_eq!((outer.threads, inner.threads), (1, 2));
            assert!(
                inner.busy_s >= 0.015 && inner.self_s == inner.busy_s,
                "{inner:?}"
            );
            assert!(outer.busy_s >= 0.020, "{outer:?}");
            // outer's self = busy − the 2 inner entries made inside it (not the other thread's).
            assert!(
                outer.self_s >= 0.008 && outer.self_s <= outer.busy_s - 0.012 + 1e-9,
                "{outer:?}"
            );
            // A second recording starts from zero.
            let ((), again) = recorder.record(|| {});
            assert!(again.is_empty(), "{again:?}");
        });
    }
}
