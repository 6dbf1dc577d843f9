//! Business-hours schedules (`/api/v2/business_hours/schedules`), their workweek and holidays,
//! and the default schedule business-hours conditions count in.

use std::sync::Arc;

use opsdesk_core::business_hours::{
    iana_zone, parse_date, Holiday, Interval, Schedule, ScheduleRecord,
};
use opsdesk_core::model::Id;
use opsdesk_core::Invalid;
use opsdesk_store::{Conn, Page};
use serde::Deserialize;

use crate::{Actor, App, AppError, Result};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScheduleInput {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub intervals: Option<Vec<Interval>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HolidayInput {
    pub name: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

/// Monday to Friday, 09:00–17:00: a new schedule's hours until its workweek is set.
fn default_intervals() -> Vec<Interval> {
    (1..=5)
        .map(|d| Interval {
            start_time: d * 1440 + 9 * 60,
            end_time: d * 1440 + 17 * 60,
        })
        .collect()
}

fn check(r: &ScheduleRecord, inv: &mut Invalid) {
    if r.name.trim().is_empty() {
        inv.blank("name", "Name");
    }
    opsdesk_core::model::check_text(&r.name, "name", "Name", 255, inv);
    if iana_zone(&r.time_zone).is_none() {
        inv.invalid(
            "time_zone",
            "Time zone",
            &format!("'{}' is not a known time zone (a Zendesk name such as \"Pacific Time (US & Canada)\", or an IANA name such as \"America/Los_Angeles\")", r.time_zone),
        );
    }
    for (i, iv) in r.intervals.iter().enumerate() {
        if iv.start_time >= iv.end_time || iv.end_time > opsdesk_core::business_hours::WEEK_MINUTES
        {
            inv.invalid(
                "intervals",
                "Intervals",
                &format!("intervals[{i}]: start_time must be before end_time, both within 0–10080 minutes from Sunday 00:00"),
            );
        }
    }
    if r.intervals.len() > 100 {
        inv.invalid("intervals", "Intervals", "at most 100 intervals");
    }
    for h in &r.holidays {
        match (parse_date(&h.start_date), parse_date(&h.end_date)) {
            (Ok(a), Ok(b)) if a <= b => {}
            (Ok(_), Ok(_)) => {
                inv.invalid("end_date", "End date", "must not be before the start date")
            }
            _ => inv.invalid(
                "start_date",
                "Dates",
                "start_date and end_date must be dates (YYYY-MM-DD)",
            ),
        }
    }
}

impl App {
    pub async fn list_schedules(&self, actor: &Actor) -> Result<Vec<ScheduleRecord>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        Ok(c.list(&[], &Page::All { limit: 1000 }).await?.items)
    }

    pub async fn get_schedule(&self, actor: &Actor, id: Id) -> Result<ScheduleRecord> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.get(id).await?.ok_or(AppError::NotFound)
    }

    /// Create (`id` None) or change a schedule's name, time zone and (when given) intervals.
    pub async fn save_schedule(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: ScheduleInput,
    ) -> Result<ScheduleRecord> {
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut r = match id {
            Some(id) => tx
                .get::<ScheduleRecord>(id)
                .await?
                .ok_or(AppError::NotFound)?,
            None => ScheduleRecord {
                id: 0,
                name: String::new(),
                time_zone: String::new(),
                intervals: default_intervals(),
                holidays: vec![],
                created_at: now,
                updated_at: now,
            },
        };
        let mut inv = Invalid::new();
        if id.is_none() && input.name.is_none() {
            inv.blank("name", "Name");
        }
        if id.is_none() && input.time_zone.is_none() {
            inv.blank("time_zone", "Time zone");
        }
        if let Some(n) = input.name {
            r.name = n.trim().to_string();
        }
        if let Some(z) = input.time_zone {
            r.time_zone = z.trim().to_string();
        }
        if let Some(iv) = input.intervals {
            r.intervals = iv;
        }
        check(&r, &mut inv);
        inv.into_result()?;
        r.updated_at = now;
        let r = crate::records::save_doc(&mut tx, r, id.is_some()).await?;
        tx.bump_rules_version().await?;
        tx.commit().await?;
        self.sla_cache.clear();
        Ok(r)
    }

    /// `PUT …/workweek`: replace the intervals.
    pub async fn set_workweek(
        &self,
        actor: &Actor,
        id: Id,
        intervals: Vec<Interval>,
    ) -> Result<ScheduleRecord> {
        self.save_schedule(
            actor,
            Some(id),
            ScheduleInput {
                intervals: Some(intervals),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn delete_schedule(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        if !tx.delete::<ScheduleRecord>(id).await? {
            return Err(AppError::NotFound);
        }
        tx.bump_rules_version().await?;
        tx.commit().await?;
        Ok(())
    }

    /// Add (`holiday_id` None) or change a holiday; `delete` removes it.
    pub async fn save_holiday(
        &self,
        actor: &Actor,
        schedule_id: Id,
        holiday_id: Option<Id>,
        input: Option<HolidayInput>,
    ) -> Result<Option<Holiday>> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let mut r: ScheduleRecord = tx.get(schedule_id).await?.ok_or(AppError::NotFound)?;
        let idx = match holiday_id {
            Some(h) => Some(
                r.holidays
                    .iter()
                    .position(|x| x.id == h)
                    .ok_or(AppError::NotFound)?,
            ),
            None => None,
        };
        let out = match (idx, input) {
            (Some(i), None) => {
                r.holidays.remove(i);
                None
            }
            (idx, Some(input)) => {
                let mut h = match idx {
                    Some(i) => r.holidays[i].clone(),
                    None => Holiday {
                        id: r.holidays.iter().map(|h| h.id).max().unwrap_or(0) + 1,
                        name: String::new(),
                        start_date: String::new(),
                        end_date: String::new(),
                    },
                };
                let mut inv = Invalid::new();
                if idx.is_none() {
                    if input.name.is_none() {
                        inv.blank("name", "Name");
                    }
                    if input.start_date.is_none() {
                        inv.blank("start_date", "Start date");
                    }
                }
                if let Some(n) = input.name {
                    h.name = n.trim().to_string();
                }
                if let Some(d) = input.start_date {
                    h.start_date = d.trim().to_string();
                    if idx.is_none() && input.end_date.is_none() {
                        h.end_date = h.start_date.clone();
                    }
                }
                if let Some(d) = input.end_date {
                    h.end_date = d.trim().to_string();
                }
                inv.into_result()?;
                match idx {
                    Some(i) => r.holidays[i] = h.clone(),
                    None => r.holidays.push(h.clone()),
                }
                let mut inv = Invalid::new();
                check(&r, &mut inv);
                inv.into_result()?;
                Some(h)
            }
            (None, None) => return Err(AppError::NotFound),
        };
        r.updated_at = self.now();
        tx.update(&r).await?;
        tx.bump_rules_version().await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The schedule business-hours conditions count in: the first schedule (Zendesk's
    /// default), or None when there is none (conditions then count calendar hours). Read
    /// from the database; callers use the cached [`App::schedule`].
    /// Every usable schedule by id.
    pub(crate) async fn all_schedules(
        &self,
        c: &mut Conn,
    ) -> Result<std::collections::HashMap<opsdesk_core::model::Id, Arc<Schedule>>> {
        let all: Vec<ScheduleRecord> = c.list(&[], &Page::All { limit: 1000 }).await?.items;
        Ok(all
            .into_iter()
            .filter_map(|r| r.schedule().ok().map(|s| (r.id, Arc::new(s))))
            .collect())
    }

    pub(crate) async fn default_schedule(&self, c: &mut Conn) -> Result<Option<Arc<Schedule>>> {
        let first: Option<ScheduleRecord> = c
            .list(&[], &Page::All { limit: 1 })
            .await?
            .items
            .into_iter()
            .next();
        Ok(first.and_then(|r| match r.schedule() {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::warn!(schedule.id = r.id, error = %e, "the default schedule cannot be used");
                None
            }
        }))
    }
}
