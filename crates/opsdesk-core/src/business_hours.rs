//! Business hours: a schedule's open time between two instants, and an instant a given amount
//! of open time after another — the arithmetic SLA targets and business-hours conditions need.
//!
//! A schedule is a time zone, weekly open intervals in minutes from Sunday 00:00 local time (as
//! Zendesk writes them, `0..=10080`, an interval may cross midnight and end at the week's end),
//! and holidays (local dates, single days or ranges) on which it is closed.
//!
//! Everything is computed interval by interval, never minute by minute: a week's intervals are
//! turned into instants with the time zone's rules (a wall time in a DST gap becomes the moment
//! the clocks jump, one in an overlap the earlier instant — the schedule is open exactly while
//! the wall clock is inside an interval), holidays are cut out, and whole weeks with no DST
//! change and no holiday are counted without being walked. Between 2000 and 2100 each week's
//! spans and running totals are kept in a table built 64 weeks at a time on first use, so a
//! measure or an add is two lookups and a binary search (about 0.1 µs for a year), whatever
//! the holidays and DST changes in between; outside those years the weeks are walked.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Minutes in a week.
pub const WEEK_MINUTES: u32 = 7 * 24 * 60;
const WEEK_SECS: i64 = WEEK_MINUTES as i64 * 60;
/// `add` gives up after this many weeks without open time (a schedule closed by holidays for
/// ten years has no answer).
const MAX_WEEKS: i64 = 52 * 10;

#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    /// Sorted, merged, within `0..=WEEK_MINUTES`.
    intervals: Vec<(u32, u32)>,
    /// Sorted, merged, inclusive local date ranges.
    holidays: Vec<(Date, Date)>,
    /// Open seconds in a week without DST change or holiday.
    week_secs: i64,
    /// Each week's open spans and running totals, built a block of weeks at a time on first
    /// use (shared by clones).
    blocks: std::sync::Arc<[std::sync::OnceLock<Block>]>,
}

/// The first Sunday the week table covers; it covers `BLOCKS * BLOCK_WEEKS` weeks from there
/// (2000 to 2100). Instants outside are computed by walking the weeks.
const TABLE_FIRST_SUNDAY: Date = jiff::civil::date(2000, 1, 2);
const BLOCK_WEEKS: usize = 64;
const BLOCKS: usize = 82;

/// `BLOCK_WEEKS` consecutive weeks: their open spans as instants (holidays cut out) and the
/// open seconds before each week in the block.
#[derive(Debug)]
struct Block {
    span_at: Vec<usize>,
    spans: Vec<(i64, i64)>,
    cum: Vec<i64>,
}

impl Block {
    fn spans_of(&self, k: usize) -> &[(i64, i64)] {
        &self.spans[self.span_at[k]..self.span_at[k + 1]]
    }
    fn total(&self) -> i64 {
        self.cum[BLOCK_WEEKS]
    }
}

fn new_blocks() -> std::sync::Arc<[std::sync::OnceLock<Block>]> {
    (0..BLOCKS).map(|_| std::sync::OnceLock::new()).collect()
}

impl Schedule {
    /// A schedule from a time zone name (IANA), weekly intervals in minutes from Sunday 00:00,
    /// and holidays as inclusive local date ranges.
    pub fn new(
        time_zone: &str,
        intervals: &[(u32, u32)],
        holidays: &[(Date, Date)],
    ) -> Result<Schedule, String> {
        let tz = TimeZone::get(time_zone)
            .map_err(|_| format!("'{time_zone}' is not a known time zone"))?;
        let mut iv: Vec<(u32, u32)> = vec![];
        for &(s, e) in intervals {
            if s >= e || e > WEEK_MINUTES {
                return Err(format!(
                    "interval {s}–{e} must start before it ends, within 0–{WEEK_MINUTES} minutes of the week"
                ));
            }
            iv.push((s, e));
        }
        iv.sort_unstable();
        let mut merged: Vec<(u32, u32)> = vec![];
        for (s, e) in iv {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut hs: Vec<(Date, Date)> = vec![];
        for &(a, b) in holidays {
            if b < a {
                return Err(format!("holiday {a} – {b} ends before it starts"));
            }
            hs.push((a, b));
        }
        hs.sort_unstable();
        let mut hmerged: Vec<(Date, Date)> = vec![];
        for (a, b) in hs {
            match hmerged.last_mut() {
                Some(last) if a <= last.1.tomorrow().unwrap_or(last.1) => last.1 = last.1.max(b),
                _ => hmerged.push((a, b)),
            }
        }
        let week_secs = merged.iter().map(|(s, e)| (e - s) as i64 * 60).sum();
        Ok(Schedule {
            tz,
            intervals: merged,
            holidays: hmerged,
            week_secs,
            blocks: new_blocks(),
        })
    }

    /// Open around the clock, no holidays.
    pub fn always() -> Schedule {
        Schedule {
            tz: TimeZone::UTC,
            intervals: vec![(0, WEEK_MINUTES)],
            holidays: vec![],
            week_secs: WEEK_SECS,
            blocks: new_blocks(),
        }
    }

    /// The Sunday starting the local week that contains `t`.
    fn week_of(&self, t: i64) -> Date {
        let d = Timestamp::from_second(t)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(self.tz.clone())
            .date();
        let back = d.weekday().to_sunday_zero_offset() as i64;
        d.checked_sub(jiff::Span::new().days(back)).unwrap_or(d)
    }

    /// A local wall time as an instant. In a DST gap (a wall time that does not happen) it is
    /// the moment the clocks jump: an interval open 02:30–04:00 opens at 03:00 on the day the
    /// clocks go forward, because from then on the wall clock is inside it. In an overlap (a
    /// wall time that happens twice) it is the earlier one.
    fn instant(&self, dt: DateTime) -> i64 {
        let amb = self.tz.to_ambiguous_timestamp(dt);
        if let jiff::tz::AmbiguousOffset::Gap { after, .. } = amb.offset() {
            if let Ok(t0) = after.to_timestamp(dt) {
                if let Some(tr) = self.tz.following(t0).next() {
                    return tr.timestamp().as_second();
                }
            }
        }
        amb.compatible().map(|t| t.as_second()).unwrap_or(i64::MAX)
    }

    fn local_midnight(&self, d: Date) -> i64 {
        self.instant(d.to_datetime(jiff::civil::Time::midnight()))
    }

    fn add_days(d: Date, n: i64) -> Date {
        d.checked_add(jiff::Span::new().days(n)).unwrap_or(d)
    }

    /// The open spans of the local week starting on `sunday`, as instants, holidays cut out.
    fn week_spans(&self, sunday: Date, out: &mut Vec<(i64, i64)>) {
        let base = sunday.to_datetime(jiff::civil::Time::midnight());
        for &(s, e) in &self.intervals {
            let at = |m: u32| {
                base.checked_add(jiff::Span::new().minutes(m as i64))
                    .map(|dt| self.instant(dt))
                    .unwrap_or(i64::MAX)
            };
            let (a, b) = (at(s), at(e));
            if a < b {
                out.push((a, b));
            }
        }
        if self.holidays.is_empty() {
            return;
        }
        let last = Self::add_days(sunday, 7);
        for &(h0, h1) in &self.holidays {
            if h1 < sunday || h0 > last {
                continue;
            }
            let (cut0, cut1) = (
                self.local_midnight(h0),
                self.local_midnight(Self::add_days(h1, 1)),
            );
            let mut kept = Vec::with_capacity(out.len() + 1);
            for &(a, b) in out.iter() {
                if b <= cut0 || a >= cut1 {
                    kept.push((a, b));
                    continue;
                }
                if a < cut0 {
                    kept.push((a, cut0));
                }
                if b > cut1 {
                    kept.push((cut1, b));
                }
            }
            *out = kept;
        }
    }

    /// Whether the week starting on `sunday` is a plain one: same UTC offset from start to end
    /// and no holiday in it, so its open time is exactly `week_secs`.
    fn plain_week(&self, sunday: Date) -> bool {
        let start = self.local_midnight(sunday);
        let end = self.local_midnight(Self::add_days(sunday, 7));
        if end - start != WEEK_SECS {
            return false;
        }
        let next = Self::add_days(sunday, 7);
        !self
            .holidays
            .iter()
            .any(|&(a, b)| !(b < sunday || a >= next))
    }

    /// How many plain weeks follow in a row from `sunday` (itself plain, starting at
    /// `week_start`), at most `limit`: up to the next DST change or holiday.
    fn plain_run(&self, sunday: Date, week_start: i64, limit: i64) -> i64 {
        let mut n = limit;
        if let Ok(t) = Timestamp::from_second(week_start) {
            if let Some(tr) = self.tz.following(t).next() {
                // Conservative at the edge: a change exactly at a week's end (a fall-back at
                // local midnight makes that week an hour longer) is walked, not skipped.
                n = n.min((tr.timestamp().as_second() - week_start - 1) / WEEK_SECS);
            }
        }
        if let Some(&(h, _)) = self.holidays.iter().find(|&&(_, b)| b >= sunday) {
            n = n.min((sunday.until(h).map(|sp| sp.get_days() as i64).unwrap_or(0)) / 7);
        }
        n.max(1)
    }

    /// Whether the schedule is open at `t`.
    pub fn is_open(&self, t: i64) -> bool {
        let mut spans = vec![];
        let w = self.week_of(t);
        for k in -1..=1 {
            self.week_spans(Self::add_days(w, 7 * k), &mut spans);
        }
        spans.iter().any(|&(a, b)| a <= t && t < b)
    }

    /// Open seconds in `[from, to)` (0 when `to <= from`).
    pub fn business_seconds(&self, from: i64, to: i64) -> i64 {
        if to <= from || self.week_secs == 0 {
            return 0;
        }
        match (self.week_index(from), self.week_index(to)) {
            (Some(a), Some(b)) => self.table_seconds(from, to, a, b),
            _ => self.business_seconds_walk(from, to),
        }
    }

    /// The week-table index (block, week in block) of the local week holding `t`, when the
    /// table covers it.
    fn week_index(&self, t: i64) -> Option<(usize, usize)> {
        let sunday = self.week_of(t);
        let days = TABLE_FIRST_SUNDAY.until(sunday).ok()?.get_days();
        if days < 0 {
            return None;
        }
        let w = (days / 7) as usize;
        (w < BLOCKS * BLOCK_WEEKS).then_some((w / BLOCK_WEEKS, w % BLOCK_WEEKS))
    }

    fn block(&self, b: usize) -> &Block {
        self.blocks[b].get_or_init(|| {
            let first = Self::add_days(TABLE_FIRST_SUNDAY, (b * BLOCK_WEEKS * 7) as i64);
            let mut span_at = Vec::with_capacity(BLOCK_WEEKS + 1);
            let mut cum = Vec::with_capacity(BLOCK_WEEKS + 1);
            let mut spans = Vec::with_capacity(BLOCK_WEEKS * (self.intervals.len() + 1));
            let mut total = 0;
            for k in 0..=BLOCK_WEEKS {
                let sunday = Self::add_days(first, (k * 7) as i64);
                span_at.push(spans.len());
                cum.push(total);
                if k < BLOCK_WEEKS {
                    let at = spans.len();
                    self.week_spans(sunday, &mut spans);
                    total += spans[at..].iter().map(|(a, b)| b - a).sum::<i64>();
                }
            }
            Block {
                span_at,
                spans,
                cum,
            }
        })
    }

    /// Open seconds of week `(b, k)` inside `[from, to)`.
    fn clipped(&self, b: usize, k: usize, from: i64, to: i64) -> i64 {
        self.block(b)
            .spans_of(k)
            .iter()
            .map(|&(a, e)| (e.min(to) - a.max(from)).max(0))
            .sum()
    }

    /// Open seconds in `[from, to)` from the table: the two end weeks' spans, and the running
    /// totals for the whole weeks between.
    fn table_seconds(&self, from: i64, to: i64, a: (usize, usize), z: (usize, usize)) -> i64 {
        if a == z {
            return self.clipped(a.0, a.1, from, to);
        }
        let mut total =
            self.clipped(a.0, a.1, from, i64::MAX) + self.clipped(z.0, z.1, i64::MIN, to);
        // Whole weeks after `a` and before `z`.
        let (mut b, mut k) = (a.0, a.1 + 1);
        while b < z.0 {
            let blk = self.block(b);
            total += blk.total() - blk.cum[k];
            b += 1;
            k = 0;
        }
        let blk = self.block(z.0);
        total + blk.cum[z.1] - blk.cum[k.min(z.1)]
    }

    /// The instant `secs` open seconds after `from`, from the table (None when it runs past
    /// the table's end).
    fn table_add(&self, from: i64, secs: i64, a: (usize, usize)) -> Option<i64> {
        let walk = |b: usize, k: usize, from: i64, left: i64| -> Result<i64, i64> {
            let mut left = left;
            for &(x, e) in self.block(b).spans_of(k) {
                let x = x.max(from);
                if x >= e {
                    continue;
                }
                if e - x >= left {
                    return Ok(x + left);
                }
                left -= e - x;
            }
            Err(left)
        };
        let mut left = match walk(a.0, a.1, from, secs) {
            Ok(t) => return Some(t),
            Err(l) => l,
        };
        let (mut b, mut k) = (a.0, a.1 + 1);
        while b < BLOCKS {
            let blk = self.block(b);
            let rest = blk.total() - blk.cum[k];
            if rest < left {
                left -= rest;
                b += 1;
                k = 0;
                continue;
            }
            // The week in this block where the time runs out: the last one whose total before
            // it is still short of `left`.
            let base = blk.cum[k];
            let mut w = k + blk.cum[k..BLOCK_WEEKS].partition_point(|&c| c - base < left) - 1;
            w = w.max(k);
            left -= blk.cum[w] - base;
            // As the walk: no answer more than ten years of weeks on.
            if b * BLOCK_WEEKS + w > a.0 * BLOCK_WEEKS + a.1 + MAX_WEEKS as usize {
                return None;
            }
            // The week holds the rest (its running total says so): the walk ends in it.
            return walk(b, w, i64::MIN, left).ok();
        }
        None
    }

    /// Open seconds in `[from, to)`, walking week by week (outside the table's years).
    fn business_seconds_walk(&self, from: i64, to: i64) -> i64 {
        if to <= from || self.week_secs == 0 {
            return 0;
        }
        let mut total = 0;
        let mut sunday = Self::add_days(self.week_of(from), -7);
        let mut spans = Vec::with_capacity(8);
        loop {
            let week_start = self.local_midnight(sunday);
            if week_start >= to {
                break;
            }
            let next = Self::add_days(sunday, 7);
            if next <= sunday {
                // The end of the calendar: nothing further to count.
                break;
            }
            let week_end = self.local_midnight(next);
            if week_start >= from && week_end <= to && self.plain_week(sunday) {
                // Whole plain weeks: count them without walking their intervals, up to the
                // next DST change or holiday.
                let n = self.plain_run(sunday, week_start, (to - week_start) / WEEK_SECS);
                total += n * self.week_secs;
                let after = Self::add_days(sunday, 7 * n);
                if after <= sunday {
                    break;
                }
                sunday = after;
                continue;
            }
            spans.clear();
            self.week_spans(sunday, &mut spans);
            for &(a, b) in &spans {
                let (a, b) = (a.max(from), b.min(to));
                if a < b {
                    total += b - a;
                }
            }
            sunday = next;
        }
        total
    }

    /// The instant `secs` open seconds after `from` (`from` itself when `secs <= 0`); None when
    /// the schedule has no open time within ten years.
    pub fn add(&self, from: i64, secs: i64) -> Option<i64> {
        if secs <= 0 {
            return Some(from);
        }
        if self.week_secs == 0 {
            return None;
        }
        // The table answers when it covers the start and, at the usual pace, the end.
        if secs < 10 * 52 * self.week_secs {
            if let Some(a) = self.week_index(from) {
                if let Some(t) = self.table_add(from, secs, a) {
                    return Some(t);
                }
            }
        }
        self.add_walk(from, secs)
    }

    /// `add`, walking week by week.
    fn add_walk(&self, from: i64, secs: i64) -> Option<i64> {
        if secs <= 0 {
            return Some(from);
        }
        if self.week_secs == 0 {
            return None;
        }
        let mut left = secs;
        let mut sunday = Self::add_days(self.week_of(from), -7);
        let mut spans = Vec::with_capacity(8);
        for _ in 0..MAX_WEEKS + 2 {
            let next = Self::add_days(sunday, 7);
            let week_start = self.local_midnight(sunday);
            if week_start >= from && left > self.week_secs && self.plain_week(sunday) {
                // Whole plain weeks at once, up to the next DST change or holiday.
                let n = self.plain_run(sunday, week_start, (left - 1) / self.week_secs);
                left -= n * self.week_secs;
                sunday = Self::add_days(sunday, 7 * n);
                continue;
            }
            spans.clear();
            self.week_spans(sunday, &mut spans);
            for &(a, b) in &spans {
                let a = a.max(from);
                if a >= b {
                    continue;
                }
                if b - a >= left {
                    return Some(a + left);
                }
                left -= b - a;
            }
            sunday = next;
        }
        None
    }
}

/// Zendesk's Rails time-zone names (what `time_zone` holds in its API) for the common zones;
/// IANA names are accepted as they are.
const RAILS_ZONES: &[(&str, &str)] = &[
    ("Pacific Time (US & Canada)", "America/Los_Angeles"),
    ("Mountain Time (US & Canada)", "America/Denver"),
    ("Central Time (US & Canada)", "America/Chicago"),
    ("Eastern Time (US & Canada)", "America/New_York"),
    ("Arizona", "America/Phoenix"),
    ("Alaska", "America/Juneau"),
    ("Hawaii", "Pacific/Honolulu"),
    ("Atlantic Time (Canada)", "America/Halifax"),
    ("Mexico City", "America/Mexico_City"),
    ("Bogota", "America/Bogota"),
    ("Brasilia", "America/Sao_Paulo"),
    ("Buenos Aires", "America/Argentina/Buenos_Aires"),
    ("Santiago", "America/Santiago"),
    ("UTC", "Etc/UTC"),
    ("London", "Europe/London"),
    ("Edinburgh", "Europe/London"),
    ("Dublin", "Europe/Dublin"),
    ("Lisbon", "Europe/Lisbon"),
    ("Amsterdam", "Europe/Amsterdam"),
    ("Berlin", "Europe/Berlin"),
    ("Brussels", "Europe/Brussels"),
    ("Copenhagen", "Europe/Copenhagen"),
    ("Madrid", "Europe/Madrid"),
    ("Paris", "Europe/Paris"),
    ("Rome", "Europe/Rome"),
    ("Stockholm", "Europe/Stockholm"),
    ("Vienna", "Europe/Vienna"),
    ("Warsaw", "Europe/Warsaw"),
    ("Prague", "Europe/Prague"),
    ("Zurich", "Europe/Zurich"),
    ("Athens", "Europe/Athens"),
    ("Helsinki", "Europe/Helsinki"),
    ("Kyiv", "Europe/Kiev"),
    ("Istanbul", "Europe/Istanbul"),
    ("Moscow", "Europe/Moscow"),
    ("Jerusalem", "Asia/Jerusalem"),
    ("Cairo", "Africa/Cairo"),
    ("Johannesburg", "Africa/Johannesburg"),
    ("Nairobi", "Africa/Nairobi"),
    ("Abu Dhabi", "Asia/Muscat"),
    ("Dubai", "Asia/Dubai"),
    ("Karachi", "Asia/Karachi"),
    ("New Delhi", "Asia/Kolkata"),
    ("Mumbai", "Asia/Kolkata"),
    ("Kolkata", "Asia/Kolkata"),
    ("Dhaka", "Asia/Dhaka"),
    ("Bangkok", "Asia/Bangkok"),
    ("Jakarta", "Asia/Jakarta"),
    ("Singapore", "Asia/Singapore"),
    ("Kuala Lumpur", "Asia/Kuala_Lumpur"),
    ("Beijing", "Asia/Shanghai"),
    ("Hong Kong", "Asia/Hong_Kong"),
    ("Taipei", "Asia/Taipei"),
    ("Seoul", "Asia/Seoul"),
    ("Tokyo", "Asia/Tokyo"),
    ("Osaka", "Asia/Tokyo"),
    ("Perth", "Australia/Perth"),
    ("Adelaide", "Australia/Adelaide"),
    ("Brisbane", "Australia/Brisbane"),
    ("Sydney", "Australia/Sydney"),
    ("Melbourne", "Australia/Melbourne"),
    ("Auckland", "Pacific/Auckland"),
];

/// The IANA zone for a Zendesk (Rails) or IANA time-zone name.
pub fn iana_zone(name: &str) -> Option<String> {
    if let Some((_, z)) = RAILS_ZONES
        .iter()
        .find(|(r, _)| r.eq_ignore_ascii_case(name))
    {
        return Some(z.to_string());
    }
    TimeZone::get(name).ok().map(|_| name.to_string())
}

/// `{"start_time", "end_time"}`: minutes from Sunday 00:00 local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub start_time: u32,
    pub end_time: u32,
}

/// A holiday: the schedule is closed from `start_date` to `end_date` (local dates, inclusive).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Holiday {
    pub id: i64,
    pub name: String,
    pub start_date: String,
    pub end_date: String,
}

/// A schedule as `/api/v2/business_hours/schedules` shows it (holidays kept with it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleRecord {
    pub id: i64,
    pub name: String,
    pub time_zone: String,
    pub intervals: Vec<Interval>,
    #[serde(default)]
    pub holidays: Vec<Holiday>,
    #[serde(with = "crate::clock::ts")]
    pub created_at: crate::Timestamp,
    #[serde(with = "crate::clock::ts")]
    pub updated_at: crate::Timestamp,
}

impl ScheduleRecord {
    /// The schedule for arithmetic.
    pub fn schedule(&self) -> Result<Schedule, String> {
        let zone = iana_zone(&self.time_zone)
            .ok_or_else(|| format!("'{}' is not a known time zone", self.time_zone))?;
        let iv: Vec<(u32, u32)> = self
            .intervals
            .iter()
            .map(|i| (i.start_time, i.end_time))
            .collect();
        let mut hs = vec![];
        for h in &self.holidays {
            hs.push((parse_date(&h.start_date)?, parse_date(&h.end_date)?));
        }
        Schedule::new(&zone, &iv, &hs)
    }
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Result<Date, String> {
    s.trim()
        .parse::<Date>()
        .map_err(|_| format!("'{s}' is not a date (YYYY-MM-DD)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    const DAY: u32 = 24 * 60;

    fn ts(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    /// Mon–Fri 09:00–17:00 local.
    fn office(tz: &str, holidays: &[(Date, Date)]) -> Schedule {
        let iv: Vec<(u32, u32)> = (1..=5)
            .map(|d| (d * DAY + 9 * 60, d * DAY + 17 * 60))
            .collect();
        Schedule::new(tz, &iv, holidays).unwrap()
    }

    /// GitLab's "Business Hours": Sunday 15:00 to Friday 17:00 Pacific, one interval.
    fn gitlab() -> Schedule {
        Schedule::new("America/Los_Angeles", &[(15 * 60, 5 * DAY + 17 * 60)], &[]).unwrap()
    }

    #[test]
    fn office_hours_in_berlin() {
        let s = office("Europe/Berlin", &[]);
        // Monday 2026-11-23 08:00 UTC = 09:00 Berlin: open for 8 hours.
        assert_eq!(
            s.business_seconds(ts("2026-11-23T08:00:00Z"), ts("2026-11-23T20:00:00Z")),
            8 * 3600
        );
        assert!(s.is_open(ts("2026-11-23T08:00:00Z")));
        assert!(!s.is_open(ts("2026-11-23T07:59:59Z")));
        // Friday 16:00 Berlin + 2 business hours = Monday 10:00 Berlin.
        assert_eq!(
            s.add(ts("2026-11-27T15:00:00Z"), 2 * 3600),
            Some(ts("2026-11-30T09:00:00Z"))
        );
        // A whole week: 40 hours.
        assert_eq!(
            s.business_seconds(ts("2026-11-22T00:00:00Z"), ts("2026-11-29T00:00:00Z")),
            40 * 3600
        );
    }

    #[test]
    fn gitlab_24x5_crosses_midnight() {
        let s = gitlab();
        // Sunday 2026-11-22 15:00 PST = 23:00 UTC: opens.
        assert!(s.is_open(ts("2026-11-22T23:00:00Z")));
        assert!(!s.is_open(ts("2026-11-22T22:59:59Z")));
        // Friday 17:00 PST = Saturday 01:00 UTC: closes.
        assert!(s.is_open(ts("2026-11-28T00:59:59Z")));
        assert!(!s.is_open(ts("2026-11-28T01:00:00Z")));
        assert_eq!(
            s.business_seconds(ts("2026-11-22T00:00:00Z"), ts("2026-11-29T00:00:00Z")),
            (4 * 24 + 9 + 17) * 3600
        );
    }

    #[test]
    fn dst_changes_in_los_angeles_and_berlin() {
        // 2026-03-08 02:00 PST → 03:00 PDT. A 24x7 schedule in LA: that Sunday has 23 hours.
        let la = Schedule::new("America/Los_Angeles", &[(0, WEEK_MINUTES)], &[]).unwrap();
        assert_eq!(
            la.business_seconds(ts("2026-03-08T08:00:00Z"), ts("2026-03-09T07:00:00Z")),
            23 * 3600
        );
        // The local week holding the change has 167 hours; the one holding the fall-back 169.
        assert_eq!(
            la.business_seconds(ts("2026-03-08T08:00:00Z"), ts("2026-03-15T07:00:00Z")),
            167 * 3600
        );
        assert_eq!(
            la.business_seconds(ts("2026-11-01T07:00:00Z"), ts("2026-11-08T08:00:00Z")),
            169 * 3600
        );
        // An interval starting in the gap (02:30 on the change day) starts at 03:00 PDT.
        let gap = Schedule::new("America/Los_Angeles", &[(2 * 60 + 30, 4 * 60)], &[]).unwrap();
        assert_eq!(
            gap.business_seconds(ts("2026-03-08T00:00:00Z"), ts("2026-03-09T00:00:00Z")),
            3600
        );
        // Berlin: 2026-03-29 02:00 CET → 03:00 CEST; office hours are unaffected (09–17 local).
        let b = office("Europe/Berlin", &[]);
        assert_eq!(
            b.business_seconds(ts("2026-03-23T00:00:00Z"), ts("2026-04-04T00:00:00Z")),
            80 * 3600
        );
        // Monday after the change: 09:00 CEST = 07:00 UTC.
        assert!(b.is_open(ts("2026-03-30T07:00:00Z")));
        assert!(!b.is_open(ts("2026-03-30T06:59:59Z")));
    }

    #[test]
    fn holidays_close_whole_local_days() {
        let xmas = office(
            "Europe/Berlin",
            &[
                (date(2026, 12, 24), date(2026, 12, 26)),
                (date(2026, 12, 31), date(2026, 12, 31)),
            ],
        );
        // The week of 2026-12-20: Mon 21, Tue 22, Wed 23 open; Thu 24, Fri 25 closed.
        assert_eq!(
            xmas.business_seconds(ts("2026-12-20T00:00:00Z"), ts("2026-12-27T00:00:00Z")),
            24 * 3600
        );
        // Wednesday 16:00 + 2 h = Monday 28th 10:00 Berlin.
        assert_eq!(
            xmas.add(ts("2026-12-23T15:00:00Z"), 2 * 3600),
            Some(ts("2026-12-28T09:00:00Z"))
        );
        assert!(!xmas.is_open(ts("2026-12-31T10:00:00Z")));
    }

    #[test]
    fn records_take_zendesk_zone_names() {
        let r = ScheduleRecord {
            id: 1,
            name: "North America".into(),
            time_zone: "Pacific Time (US & Canada)".into(),
            intervals: vec![Interval {
                start_time: 1980,
                end_time: 2460,
            }],
            holidays: vec![Holiday {
                id: 1,
                name: "Thanksgiving".into(),
                start_date: "2026-11-26".into(),
                end_date: "2026-11-27".into(),
            }],
            created_at: crate::clock::from_unix(0),
            updated_at: crate::clock::from_unix(0),
        };
        let s = r.schedule().unwrap();
        // Monday 09:00–17:00 Pacific = 17:00–01:00 UTC.
        assert!(s.is_open(ts("2026-11-23T17:00:00Z")));
        assert_eq!(iana_zone("Europe/Berlin").as_deref(), Some("Europe/Berlin"));
        assert_eq!(iana_zone("berlin").as_deref(), Some("Europe/Berlin"));
        assert!(iana_zone("Atlantis").is_none());
        let mut bad = r.clone();
        bad.holidays[0].end_date = "soon".into();
        assert!(bad.schedule().unwrap_err().contains("not a date"));
    }

    #[test]
    fn fall_back_at_local_midnight_is_counted() {
        // Santiago falls back at local midnight (2026-04-05 03:00 UTC): that week has 169 hours.
        let s = Schedule::new("America/Santiago", &[(0, WEEK_MINUTES)], &[]).unwrap();
        let from = ts("2026-03-01T03:00:00Z");
        let to = ts("2026-05-03T04:00:00Z");
        assert_eq!(s.business_seconds(from, to), to - from);
        assert_eq!(s.add(from, to - from), Some(to));
    }

    #[test]
    fn the_end_of_the_calendar_does_not_hang() {
        let s = Schedule::new("UTC", &[(540, 1020)], &[]).unwrap();
        let far = "9999-12-30T00:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second();
        assert!(s.business_seconds(far - 30 * 86_400, far + 86_400) > 0);
        let _ = s.add(far - 86_400, 10 * 3600);
    }

    #[test]
    fn always_and_never() {
        let a = Schedule::always();
        assert_eq!(
            a.business_seconds(1_000, 1_000 + 86_400 * 400),
            86_400 * 400
        );
        assert_eq!(a.add(1_000, 5), Some(1_005));
        assert!(Schedule::new("UTC", &[], &[]).unwrap().add(0, 1).is_none());
        assert_eq!(
            Schedule::new("UTC", &[], &[])
                .unwrap()
                .business_seconds(0, 1_000_000),
            0
        );
        assert!(Schedule::new("Mars/Olympus", &[], &[]).is_err());
        assert!(Schedule::new("UTC", &[(10, 5)], &[]).is_err());
        assert!(Schedule::new("UTC", &[(0, WEEK_MINUTES + 1)], &[]).is_err());
    }

    fn schedules() -> impl Strategy<Value = Schedule> {
        let tz = prop_oneof![
            Just("America/Los_Angeles"),
            Just("Europe/Berlin"),
            Just("UTC"),
            Just("Asia/Kolkata"),
            Just("America/Santiago"),
            Just("Asia/Beirut")
        ];
        let iv = proptest::collection::vec((0u32..WEEK_MINUTES, 1u32..3000), 0..6).prop_map(|v| {
            v.into_iter()
                .map(|(s, l)| (s, (s + l).min(WEEK_MINUTES)))
                .collect::<Vec<_>>()
        });
        let hol = proptest::collection::vec((0i64..800, 0i64..3), 0..4);
        (tz, iv, hol).prop_map(|(tz, iv, hol)| {
            let hs: Vec<(Date, Date)> = hol
                .into_iter()
                .map(|(d, l)| {
                    let a = Schedule::add_days(date(2026, 1, 1), d);
                    (a, Schedule::add_days(a, l))
                })
                .collect();
            Schedule::new(tz, &iv, &hs).unwrap()
        })
    }

    /// The slow, obvious answer: walk minute by minute.
    fn brute(s: &Schedule, from: i64, to: i64) -> i64 {
        let mut n = 0;
        let mut t = from;
        while t < to {
            if s.is_open(t) {
                n += (to - t).min(60);
            }
            t += 60;
        }
        n
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn adding_then_measuring_round_trips(s in schedules(), from in 1_767_225_600i64..1_830_000_000, secs in 1i64..(400 * 86_400)) {
            if let Some(end) = s.add(from, secs) {
                prop_assert!(end >= from);
                prop_assert_eq!(s.business_seconds(from, end), secs);
            } else {
                prop_assert!(s.business_seconds(from, from + 53 * WEEK_SECS) < secs);
            }
        }

        #[test]
        fn the_week_table_agrees_with_walking(s in schedules(), from in 1_767_225_600i64..1_830_000_000, len in 0i64..(800 * 86_400), secs in 1i64..(400 * 86_400)) {
            prop_assert_eq!(s.business_seconds(from, from + len), s.business_seconds_walk(from, from + len));
            prop_assert_eq!(s.add(from, secs), s.add_walk(from, secs));
        }

        #[test]
        fn measuring_never_moves_backwards(s in schedules(), from in 1_767_225_600i64..1_830_000_000, a in 0i64..(60 * 86_400), b in 0i64..(60 * 86_400)) {
            let (x, y) = (a.min(b), a.max(b));
            prop_assert!(s.business_seconds(from, from + x) <= s.business_seconds(from, from + y));
            prop_assert!(s.business_seconds(from, from + y) <= y);
        }

    }

    proptest! {
        // The brute force is slow: fewer, shorter cases.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn matches_minute_by_minute(s in schedules(), from_min in 29_453_760i64..29_800_000, len in 0i64..(9 * 24 * 60)) {
            // Whole minutes, so the brute force is exact.
            let from = from_min * 60;
            prop_assert_eq!(s.business_seconds(from, from + len * 60), brute(&s, from, from + len * 60));
        }
    }
}
