//! The instance's watermark (design.md, "Time").
//!
//! Each partition's watermark is the highest event time it has delivered minus
//! `detect.out_of_orderness`. The instance's watermark is the minimum over its *active*
//! partitions: a partition stops holding it back when it is **idle**, which takes both
//! - no input for `detect.idle_partition_after` (wall clock), and
//! - being caught up: the consumer has handed over everything up to the partition's end
//!   offset, as librdkafka last reported it.
//!
//! The second condition matters when consumption stalls (a rebalance, a slow broker) while a
//! backlog is still unread: without it a stalled partition would look idle, the watermark
//! would move past the records it has not read yet, and those would arrive late. When every partition is idle, the watermark first moves up to the
//! highest event time received (nothing more is arriving to be reordered) and then advances
//! with the wall clock, so absence rules fire even when nothing more arrives; it then reports
//! `FiredBy::WallClock`. It never moves back, except that it starts over when a partition is
//! assigned (see [`Watermarks::register`]).
//!
//! Workers record their input in a [`PartitionClock`] (two atomic stores per record) and
//! read the instance's watermark with [`Watermarks::current`]; [`Watermarks::tick`]
//! recomputes it and is called a few times a second. Wall time is an argument, so tests
//! drive it exactly.

use crate::detect::FiredBy;
use crate::domain::{EventTime, Millis};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// One partition's input, as its worker records it.
#[derive(Debug)]
pub struct PartitionClock {
    max_event: AtomicI64,
    last_input_wall: AtomicI64,
    /// Everything up to the partition's end offset has been handed to the worker.
    caught_up: AtomicBool,
}

impl PartitionClock {
    /// A clock that no [`Watermarks`] counts: for partitions that carry no events (the trend
    /// partials topic). Registered, a partials partition busy with a backlog of partials would
    /// hold the instance's watermark where it is, which holds every touch-point record in
    /// the reorder buffer and so every input commit.
    pub fn unregistered(wall_ms: i64) -> Arc<PartitionClock> {
        Arc::new(PartitionClock {
            max_event: AtomicI64::new(i64::MIN),
            last_input_wall: AtomicI64::new(wall_ms),
            caught_up: AtomicBool::new(false),
        })
    }

    /// Whether the consumer has read up to the partition's end offset (set from the
    /// consumer's statistics). A partition that is not caught up is never idle.
    pub fn set_caught_up(&self, caught_up: bool) {
        self.caught_up.store(caught_up, Ordering::Relaxed);
    }

    /// The partition is not idle at `wall_ms` although no record arrived: its worker is busy
    /// (outputs in flight, records queued) or rebuilding state.
    pub fn touch(&self, wall_ms: i64) {
        self.last_input_wall.store(wall_ms, Ordering::Relaxed);
    }

    /// A record arrived at wall time `wall_ms`, with `event_time` if it was a valid event.
    pub fn observe(&self, event_time: Option<EventTime>, wall_ms: i64) {
        if let Some(t) = event_time {
            self.max_event.fetch_max(t.0, Ordering::Relaxed);
        }
        self.last_input_wall.store(wall_ms, Ordering::Relaxed);
    }
}

/// (topic, partition).
type PartitionKey = (Arc<str>, i32);

#[derive(Debug)]
struct Shared {
    current: i64,
    /// (watermark, wall time) when every partition had become idle.
    idle_base: Option<(i64, i64)>,
}

#[derive(Debug)]
pub struct Watermarks {
    out_of_orderness: i64,
    idle_after: i64,
    parts: Mutex<Vec<(PartitionKey, Arc<PartitionClock>)>>,
    shared: Mutex<Shared>,
    current: AtomicI64,
    by_wall: AtomicBool,
}

fn fired_by(by_wall: bool) -> FiredBy {
    if by_wall {
        FiredBy::WallClock
    } else {
        FiredBy::EventTime
    }
}

impl Watermarks {
    pub fn new(out_of_orderness: Millis, idle_after: Millis) -> Watermarks {
        Watermarks {
            out_of_orderness: out_of_orderness.0,
            idle_after: idle_after.0,
            parts: Mutex::new(Vec::new()),
            shared: Mutex::new(Shared {
                current: i64::MIN,
                idle_base: None,
            }),
            current: AtomicI64::new(i64::MIN),
            by_wall: AtomicBool::new(false),
        }
    }

    /// The clock of a newly assigned partition (replacing any earlier one for it). Until it
    /// delivers an event it holds the watermark where it is, unless it goes idle.
    ///
    /// The instance's watermark starts over from the partitions now assigned: it may move
    /// back. A partition taken over from another owner resumes at its committed offset, which
    /// can lie far behind this instance's watermark; judged against that, its records would
    /// be late. Each processor's own watermark still never moves back (a lower instance
    /// watermark changes nothing in it), so only the newly assigned partition is affected.
    pub fn register(&self, topic: Arc<str>, partition: i32, wall_ms: i64) -> Arc<PartitionClock> {
        {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            s.current = i64::MIN;
            s.idle_base = None;
            self.current.store(i64::MIN, Ordering::Release);
            self.by_wall.store(false, Ordering::Release);
        }
        let clock = Arc::new(PartitionClock {
            max_event: AtomicI64::new(i64::MIN),
            last_input_wall: AtomicI64::new(wall_ms),
            caught_up: AtomicBool::new(false),
        });
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.retain(|(tp, _)| !(*tp.0 == *topic && tp.1 == partition));
        parts.push(((topic, partition), clock.clone()));
        clock
    }

    /// A revoked partition no longer counts. Only `clock` itself is removed: a worker that
    /// stops after the partition's next worker registered (a rewind, or a quick re-assignment)
    /// must not remove its successor's clock, or the partition would stop holding the
    /// watermark back while it is rebuilt.
    pub fn deregister(&self, clock: &Arc<PartitionClock>) {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        parts.retain(|(_, c)| !Arc::ptr_eq(c, clock));
    }

    /// The watermark as of the last tick, and which clock last moved it.
    pub fn current(&self) -> (EventTime, FiredBy) {
        (
            EventTime(self.current.load(Ordering::Acquire)),
            fired_by(self.by_wall.load(Ordering::Acquire)),
        )
    }

    /// Recomputes the watermark at wall time `wall_ms`.
    pub fn tick(&self, wall_ms: i64) -> (EventTime, FiredBy) {
        let mut min_active: Option<i64> = None;
        let mut max_idle: Option<i64> = None;
        {
            let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
            for (_, p) in parts.iter() {
                // A partition that has delivered no event yet (just assigned, or rebuilding
                // its state) holds the watermark where it is until it delivers or goes idle.
                let max = p.max_event.load(Ordering::Relaxed);
                let wm = max.saturating_sub(self.out_of_orderness);
                let idle = p.caught_up.load(Ordering::Relaxed)
                    && wall_ms.saturating_sub(p.last_input_wall.load(Ordering::Relaxed))
                        >= self.idle_after;
                if idle {
                    // Nothing more is arriving to be ordered with its last events: it
                    // releases them all.
                    if max != i64::MIN {
                        max_idle = Some(max_idle.map_or(max, |m| m.max(max)));
                    }
                } else {
                    min_active = Some(min_active.map_or(wm, |m| m.min(wm)));
                }
            }
        }
        let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let (next, by_wall) = match (min_active, max_idle) {
            (Some(w), _) => {
                s.idle_base = None;
                (w, false)
            }
            (None, Some(w)) => {
                let start = (s.current.max(w), wall_ms);
                let (base, since) = *s.idle_base.get_or_insert(start);
                (
                    base.saturating_add(wall_ms.saturating_sub(since).max(0)),
                    true,
                )
            }
            (None, None) => (s.current, false),
        };
        if next > s.current {
            s.current = next;
            self.current.store(next, Ordering::Release);
            self.by_wall.store(by_wall, Ordering::Release);
        }
        let current = s.current;
        drop(s);
        (
            EventTime(current),
            fired_by(self.by_wall.load(Ordering::Acquire)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1000;

    fn marks() -> Watermarks {
        Watermarks::new(Millis(120 * SEC), Millis(30 * SEC))
    }

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let w = marks();
        let a = w.register("t".into(), 0, 0);
        let b = w.register("t".into(), 1, 0);
        a.observe(Some(EventTime(1_000 * SEC)), 0);
        b.observe(Some(EventTime(500 * SEC)), 0);
        assert_eq!(w.tick(SEC), (EventTime(380 * SEC), FiredBy::EventTime));
        assert_eq!(w.current(), (EventTime(380 * SEC), FiredBy::EventTime));
        // b catches up: the watermark follows the minimum.
        b.observe(Some(EventTime(900 * SEC)), 2 * SEC);
        assert_eq!(w.tick(3 * SEC).0, EventTime(780 * SEC));
    }

    #[test]
    fn an_idle_partition_stops_holding_it_back_then_the_wall_clock_moves_it() {
        let w = marks();
        let a = w.register("t".into(), 0, 0);
        let b = w.register("t".into(), 1, 0);
        a.observe(Some(EventTime(1_000 * SEC)), 0);
        b.observe(Some(EventTime(500 * SEC)), 0);
        a.set_caught_up(true);
        b.set_caught_up(true);
        // b goes quiet; a keeps delivering.
        a.observe(Some(EventTime(1_010 * SEC)), 29 * SEC);
        assert_eq!(w.tick(29 * SEC).0, EventTime(380 * SEC));
        assert_eq!(
            w.tick(30 * SEC).0,
            EventTime(890 * SEC),
            "b idle after 30 s"
        );
        // Now a is idle too (30 s after its last input): the highest event time received,
        // then wall-clock time.
        assert_eq!(w.tick(58 * SEC), (EventTime(890 * SEC), FiredBy::EventTime));
        assert_eq!(
            w.tick(59 * SEC),
            (EventTime(1_010 * SEC), FiredBy::WallClock)
        );
        assert_eq!(
            w.tick(60 * SEC),
            (EventTime(1_011 * SEC), FiredBy::WallClock)
        );
        assert_eq!(
            w.tick(70 * SEC),
            (EventTime(1_021 * SEC), FiredBy::WallClock)
        );
        // Input again: event time takes over, and the watermark never moves back.
        a.observe(Some(EventTime(1_100 * SEC)), 71 * SEC);
        assert_eq!(
            w.tick(72 * SEC),
            (EventTime(1_021 * SEC), FiredBy::WallClock)
        );
        a.observe(Some(EventTime(1_200 * SEC)), 73 * SEC);
        assert_eq!(
            w.tick(74 * SEC),
            (EventTime(1_080 * SEC), FiredBy::EventTime)
        );
    }

    #[test]
    fn a_partition_without_events_holds_it_until_idle_and_a_revoked_one_does_not_count() {
        let w = marks();
        let a = w.register("t".into(), 0, 0);
        a.observe(Some(EventTime(1_000 * SEC)), 0);
        assert_eq!(w.tick(SEC).0, EventTime(880 * SEC));
        // Newly assigned, still rebuilding its state: the watermark starts over and waits
        // for it (its records may lie far behind what `a` has reached).
        let b = w.register("t".into(), 1, 2 * SEC);
        a.observe(Some(EventTime(1_100 * SEC)), 3 * SEC);
        assert_eq!(w.tick(3 * SEC).0, EventTime::MIN);
        b.touch(30 * SEC);
        a.observe(Some(EventTime(1_200 * SEC)), 30 * SEC);
        assert_eq!(w.tick(31 * SEC).0, EventTime::MIN);
        b.observe(Some(EventTime(1_150 * SEC)), 32 * SEC);
        assert_eq!(w.tick(33 * SEC).0, EventTime(1_030 * SEC));
        // An assigned partition that never delivers stops counting once idle.
        let empty = w.register("t".into(), 2, 33 * SEC);
        empty.set_caught_up(true);
        a.observe(Some(EventTime(1_300 * SEC)), 40 * SEC);
        b.observe(Some(EventTime(1_300 * SEC)), 40 * SEC);
        assert_eq!(w.tick(62 * SEC).0, EventTime::MIN);
        assert_eq!(
            w.tick(63 * SEC),
            (EventTime(1_180 * SEC), FiredBy::EventTime)
        );
        // Revoked: no longer counts.
        b.observe(Some(EventTime(1_200 * SEC)), 64 * SEC);
        a.observe(Some(EventTime(1_500 * SEC)), 64 * SEC);
        // A stale clock of the partition (its previous worker stopping late) removes nothing.
        let stale = Arc::new(PartitionClock {
            max_event: AtomicI64::new(i64::MIN),
            last_input_wall: AtomicI64::new(0),
            caught_up: AtomicBool::new(false),
        });
        w.deregister(&stale);
        assert_eq!(w.tick(65 * SEC).0, EventTime(1_180 * SEC));
        w.deregister(&b);
        assert_eq!(w.tick(65 * SEC).0, EventTime(1_380 * SEC));
    }

    /// A partition taken over from another instance resumes at its committed offset, maybe
    /// hours of event time behind this instance's watermark: the watermark starts over, so
    /// its records are not judged late.
    #[test]
    fn a_partition_taken_over_behind_the_watermark_moves_it_back() {
        let w = marks();
        let a = w.register("t".into(), 0, 0);
        a.observe(Some(EventTime(50_000 * SEC)), 0);
        assert_eq!(w.tick(SEC).0, EventTime(49_880 * SEC));
        let b = w.register("t".into(), 1, 2 * SEC);
        b.observe(Some(EventTime(1_000 * SEC)), 3 * SEC);
        assert_eq!(w.tick(3 * SEC).0, EventTime(880 * SEC));
        b.observe(Some(EventTime(49_000 * SEC)), 4 * SEC);
        assert_eq!(w.tick(4 * SEC).0, EventTime(48_880 * SEC));
    }

    /// A rebalance or a slow broker stops all input while a backlog is still unread. The
    /// partitions are quiet but not idle: the watermark stays where the slowest one holds it,
    /// so the backlog's records are not late when they come.
    #[test]
    fn a_stalled_partition_with_unread_records_is_not_idle() {
        let w = marks();
        let ahead = w.register("t".into(), 0, 0);
        let behind = w.register("t".into(), 1, 0);
        ahead.observe(Some(EventTime(50_000 * SEC)), 0);
        behind.observe(Some(EventTime(1_000 * SEC)), 0);
        ahead.set_caught_up(true);
        assert_eq!(w.tick(SEC).0, EventTime(880 * SEC));
        // Nothing arrives for two minutes: `behind` still has records to read.
        assert_eq!(
            w.tick(120 * SEC),
            (EventTime(880 * SEC), FiredBy::EventTime)
        );
        // Its backlog arrives and is read to the end; quiet again, now it is idle.
        behind.observe(Some(EventTime(2_000 * SEC)), 121 * SEC);
        assert_eq!(w.tick(122 * SEC).0, EventTime(1_880 * SEC));
        behind.set_caught_up(true);
        assert_eq!(w.tick(150 * SEC).0, EventTime(1_880 * SEC));
        assert_eq!(
            w.tick(151 * SEC),
            (EventTime(50_000 * SEC), FiredBy::WallClock)
        );
    }
}
