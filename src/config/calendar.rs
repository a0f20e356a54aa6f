//! Schedules as the config states them: cron expressions (standard 5-field crontab lines,
//! or 6/7 fields with seconds), the time zone they are read in, the action, and device
//! selection by name glob or tag; and when a schedule fires next. The daemon that runs
//! them is `schedule`.

use std::str::FromStr;
use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, TimeZone, Utc};
use jiff::tz::AmbiguousOffset;
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
#[derive(Clone, Debug)]
pub enum Zone {
    /// The host's timezone (`/etc/localtime`, or `TZ`).
    Local,
    Utc,
    /// An IANA zone from the system's tz database, e.g. `Europe/Berlin`.
    Named(jiff::tz::TimeZone),
}

impl Zone {
    /// The zone as a jiff time zone (UTC for `utc`).
    pub fn tz(&self) -> jiff::tz::TimeZone {
        match self {
            Zone::Local => jiff::tz::TimeZone::system(),
            Zone::Utc => jiff::tz::TimeZone::UTC,
            Zone::Named(tz) => tz.clone(),
        }
    }

    /// `local`, `utc`, or an IANA zone name.
    ///
    /// Fails when the name is not in the system's tz database.
    pub fn parse(name: &str) -> Result<Zone> {
        match name {
            "local" => Ok(Zone::Local),
            "utc" | "UTC" => Ok(Zone::Utc),
            other => jiff::tz::TimeZone::get(other).map(Zone::Named).map_err(|e| {
                anyhow!(
                    "`{other}` is not a timezone this host knows ({e})\nfix: use \"local\", \"utc\" or an IANA name such as \"Europe/Berlin\" (see /usr/share/zoneinfo; Debian's package tzdata)"
                )
            }),
        }
    }
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

/// The next time `cron` fires after `now`, its fields read as wall-clock time in `zone`.
///
/// Across daylight-saving changes: a firing whose local time does not exist (spring
/// forward) happens at the first valid time after the gap, as Vixie cron and systemd timers
/// do; one whose local time occurs twice (fall back) happens once, at the first.
pub fn next_after(cron: &cron::Schedule, now: SystemTime, zone: &Zone) -> Option<SystemTime> {
    let tz = match zone {
        Zone::Utc => {
            return cron
                .after(&DateTime::<Utc>::from(now))
                .next()
                .map(SystemTime::from);
        }
        Zone::Local => jiff::tz::TimeZone::system(),
        Zone::Named(tz) => tz.clone(),
    };
    let ts = jiff::Timestamp::try_from(now).ok()?;
    let civil = tz.to_datetime(ts);
    // Cron runs on the local wall clock: step through its firings as civil times (a UTC
    // clock stands in for "no zone"), then place each in the zone.
    let naive = to_naive(civil)?;
    for next in cron.after(&Utc.from_utc_datetime(&naive)).take(16) {
        let c = from_naive(next.naive_utc())?;
        let at = match tz.to_ambiguous_timestamp(c).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(c).ok()?,
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(c).ok()?,
            AmbiguousOffset::Gap { before, .. } => {
                // The instant the gap starts: the clock jumps from there.
                let inside = before.to_timestamp(c).ok()?;
                tz.preceding(inside).next()?.timestamp()
            }
        };
        let at = SystemTime::try_from(at).ok()?;
        // The second pass through a fold names a firing that already happened.
        if at > now {
            return Some(at);
        }
    }
    None
}

fn to_naive(c: jiff::civil::DateTime) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDate::from_ymd_opt(c.year().into(), c.month() as u32, c.day() as u32)?
        .and_hms_nano_opt(
            c.hour() as u32,
            c.minute() as u32,
            c.second() as u32,
            c.subsec_nanosecond() as u32,
        )
}

fn from_naive(n: chrono::NaiveDateTime) -> Option<jiff::civil::DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(n.year()).ok()?,
        n.month() as i8,
        n.day() as i8,
        n.hour() as i8,
        n.minute() as i8,
        n.second() as i8,
        0,
    )
    .ok()
}

/// The one device-selector grammar, for schedules and the command line alike: `tag:NAME`
/// selects the devices with that tag, anything else is a glob on the device name (a plain
/// name selects that device).
pub fn selects(selector: &str, name: &str, tags: &[String]) -> bool {
    match selector.strip_prefix("tag:") {
        Some(tag) => tags.iter().any(|t| t == tag),
        None => glob::Pattern::new(selector).is_ok_and(|p| p.matches(name)),
    }
}

/// Names of the devices a schedule selects (all when there are no selectors).
pub fn select(selectors: &[String], devices: &[(String, Vec<String>)]) -> Vec<String> {
    devices
        .iter()
        .filter(|(name, tags)| {
            selectors.is_empty() || selectors.iter().any(|s| selects(s, name, tags))
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
            next_after(&nightly, at("2026-11-22T02:00:00Z"), &Zone::Utc),
            Some(at("2026-11-23T02:00:00Z"))
        );
        // 2026-11-22 is a Sunday; weekdays 1-5 means Monday to Friday.
        let weekdays = parse_cron("30 6 * * 1-5").unwrap();
        assert_eq!(
            next_after(&weekdays, at("2026-11-21T07:00:00Z"), &Zone::Utc),
            Some(at("2026-11-23T06:30:00Z"))
        );
        let with_seconds = parse_cron("*/10 * * * * *").unwrap();
        assert_eq!(
            next_after(&with_seconds, at("2026-11-22T00:00:01Z"), &Zone::Utc),
            Some(at("2026-11-22T00:00:10Z"))
        );
    }

    /// Every firing of `cron` in `zone` from `from` to `to`.
    fn firings(cron: &str, zone: &str, from: &str, to: &str) -> Vec<SystemTime> {
        let cron = parse_cron(cron).unwrap();
        let zone = Zone::parse(zone).unwrap();
        let mut t = at(from);
        let mut out = Vec::new();
        while let Some(n) = next_after(&cron, t, &zone) {
            if n > at(to) {
                break;
            }
            out.push(n);
            t = n;
        }
        out
    }

    // Regression (issue 18, case 7): the nightly run on the spring-forward night was
    // skipped. Vixie cron and systemd run it at the first valid time after the gap, and a
    // time that occurs twice in autumn once.
    #[test]
    fn daylight_saving_changes_neither_skip_nor_double_a_run() {
        // Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
        assert_eq!(
            firings(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-27T12:00:00Z",
                "2026-03-31T00:00:00Z"
            ),
            vec![
                at("2026-03-28T01:30:00Z"), // 02:30 CET
                at("2026-03-29T01:00:00Z"), // 02:30 does not exist: 03:00 CEST
                at("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
        assert_eq!(
            firings(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-24T12:00:00Z",
                "2026-10-26T12:00:00Z"
            ),
            vec![
                at("2026-10-25T00:30:00Z"), // the first 02:30 (CEST), not the second
                at("2026-10-26T01:30:00Z"),
            ]
        );
        // New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
        assert_eq!(
            firings(
                "30 2 * * *",
                "America/New_York",
                "2026-03-07T12:00:00Z",
                "2026-03-09T12:00:00Z"
            ),
            vec![at("2026-03-08T07:00:00Z"), at("2026-03-09T06:30:00Z")]
        );
        assert_eq!(
            firings(
                "30 1 * * *",
                "America/New_York",
                "2026-10-31T12:00:00Z",
                "2026-11-02T12:00:00Z"
            ),
            vec![at("2026-11-01T05:30:00Z"), at("2026-11-02T06:30:00Z")]
        );
        // In the repeated hour a job runs once per wall-clock time (Vixie cron would run a
        // job with a wildcard hour twice there; a skipped extra run is the safer side).
        let hourly = firings(
            "15 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:00:00Z",
            "2026-10-25T03:00:00Z",
        );
        assert_eq!(
            hourly,
            vec![
                at("2026-10-24T23:15:00Z"), // 01:15 CEST
                at("2026-10-25T00:15:00Z"), // 02:15 CEST (02:15 CET is not run again)
                at("2026-10-25T02:15:00Z"), // 03:15 CET
            ]
        );
        assert!(Zone::parse("Mars/Olympus").is_err());
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
