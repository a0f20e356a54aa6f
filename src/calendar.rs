//! Schedules as the config states them: cron expressions (standard 5-field crontab lines,
//! or 6/7 fields with seconds), the time zone they are read in, the action, and device
//! selection by name glob or tag; and when a schedule fires next. The daemon that runs
//! them is `schedule`.

use std::str::FromStr;
use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Local, Utc};
use serde::Serialize;

/// What a schedule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Collect,
    Drill,
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "collect" => Ok(Action::Collect),
            "drill" => Ok(Action::Drill),
            other => Err(format!(
                "`{other}` is not an action of this build; use \"collect\" or \"drill\""
            )),
        }
    }
}

/// Which timezone cron times are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Local,
    Utc,
}

/// A validated schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub expr: String,
    pub cron: cron::Schedule,
    pub action: Action,
    /// Name globs and `tag:NAME` selectors; empty means every device.
    pub devices: Vec<String>,
}

/// Translates a cron expression to the `cron` crate's dialect: a standard 5-field crontab
/// line gets a `0` seconds field, and its day-of-week numbers (0 or 7 = Sunday, 1 =
/// Monday) become the crate's (1 = Sunday … 7 = Saturday). Six or seven fields are taken
/// as they are (seconds first, the crate's numbering).
///
/// Fails with a message naming the problem.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let text = match fields.len() {
        5 => {
            let dow = crontab_dow(fields[4])?;
            format!(
                "0 {} {} {} {} {}",
                fields[0], fields[1], fields[2], fields[3], dow
            )
        }
        6 | 7 => fields.join(" "),
        n => bail!(
            "`{expr}` has {n} fields; write a crontab line (5 fields: minute hour day month weekday) or 6/7 fields starting with seconds"
        ),
    };
    cron::Schedule::from_str(&text)
        .map_err(|e| anyhow!("`{expr}` is not a valid cron expression: {e}"))
}

/// A crontab day-of-week field in the `cron` crate's numbering.
fn crontab_dow(field: &str) -> Result<String> {
    if field == "*" || field == "?" || field.chars().any(|c| c.is_ascii_alphabetic()) {
        return Ok(field.to_string());
    }
    let mut days = std::collections::BTreeSet::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| anyhow!("bad step in weekday `{part}`"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            bail!("step 0 in weekday `{part}`");
        }
        let (lo, hi) = if range == "*" {
            (0, 6)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_day(a)?, parse_day(b)?)
        } else {
            let d = parse_day(range)?;
            (d, if part.contains('/') { 7 } else { d })
        };
        if lo > hi {
            bail!("weekday range `{range}` runs backwards");
        }
        let mut d = lo;
        while d <= hi {
            days.insert(d % 7);
            d += step;
        }
    }
    Ok(days
        .iter()
        .map(|d| (d + 1).to_string())
        .collect::<Vec<_>>()
        .join(","))
}

fn parse_day(s: &str) -> Result<u32> {
    match s.parse::<u32>() {
        Ok(d) if d <= 7 => Ok(d),
        _ => bail!("`{s}` is not a weekday number (0-7, 0 and 7 are Sunday)"),
    }
}

/// The next time `cron` fires after `now`.
pub fn next_after(cron: &cron::Schedule, now: SystemTime, zone: Zone) -> Option<SystemTime> {
    match zone {
        Zone::Utc => cron
            .after(&DateTime::<Utc>::from(now))
            .next()
            .map(SystemTime::from),
        Zone::Local => cron
            .after(&DateTime::<Local>::from(now))
            .next()
            .map(SystemTime::from),
    }
}

/// Names of the devices a schedule selects.
pub fn select(selectors: &[String], devices: &[(String, Vec<String>)]) -> Vec<String> {
    devices
        .iter()
        .filter(|(name, tags)| {
            selectors.is_empty()
                || selectors.iter().any(|s| match s.strip_prefix("tag:") {
                    Some(tag) => tags.iter().any(|t| t == tag),
                    None => glob::Pattern::new(s).is_ok_and(|p| p.matches(name)),
                })
        })
        .map(|(n, _)| n.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crontab_lines_are_translated() {
        assert_eq!(crontab_dow("1-5").unwrap(), "2,3,4,5,6");
        assert_eq!(crontab_dow("0").unwrap(), "1");
        assert_eq!(crontab_dow("7").unwrap(), "1");
        assert_eq!(crontab_dow("5-7").unwrap(), "1,6,7");
        assert_eq!(crontab_dow("*/2").unwrap(), "1,3,5,7");
        assert_eq!(crontab_dow("MON-FRI").unwrap(), "MON-FRI");
        assert!(crontab_dow("8").is_err());
        assert!(parse_cron("0 2 * *").is_err());
        assert!(parse_cron("61 2 * * *").is_err());
    }

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn next_fire_times_follow_crontab_meaning() {
        let nightly = parse_cron("0 2 * * *").unwrap();
        assert_eq!(
            next_after(&nightly, at("2026-11-22T02:00:00Z"), Zone::Utc),
            Some(at("2026-11-23T02:00:00Z"))
        );
        // 2026-11-22 is a Sunday; weekdays 1-5 means Monday to Friday.
        let weekdays = parse_cron("30 6 * * 1-5").unwrap();
        assert_eq!(
            next_after(&weekdays, at("2026-11-21T07:00:00Z"), Zone::Utc),
            Some(at("2026-11-23T06:30:00Z"))
        );
        let with_seconds = parse_cron("*/10 * * * * *").unwrap();
        assert_eq!(
            next_after(&with_seconds, at("2026-11-22T00:00:01Z"), Zone::Utc),
            Some(at("2026-11-22T00:00:10Z"))
        );
    }

    #[test]
    fn selectors_match_globs_and_tags() {
        let devices = vec![
            ("line1-plc".to_string(), vec![]),
            ("line1-hmi".to_string(), vec!["packaging".to_string()]),
            ("line2-plc".to_string(), vec!["packaging".to_string()]),
            ("boiler".to_string(), vec![]),
        ];
        assert_eq!(
            select(&["line1-*".into(), "tag:packaging".into()], &devices),
            vec!["line1-plc", "line1-hmi", "line2-plc"]
        );
        assert_eq!(select(&[], &devices).len(), 4);
    }
}
