//! The daemon that runs the config's schedules (see `calendar`): no overlapping
//! runs per device, overruns logged, signed heartbeats so that a quiet plant is not taken
//! for a cut log, and a clean stop on SIGTERM or SIGINT that lets the write in progress end.
//!
//! Time comes from tokio's clock (wall time = start + tokio elapsed), so tests drive the
//! daemon with `tokio::time::pause()` instead of sleeping.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use serde::Serialize;

use crate::config::calendar::{Action, Schedule, Zone, next_after, select};

/// One firing of a schedule.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Job {
    pub schedule: String,
    pub action: Action,
    pub devices: Vec<String>,
    /// When it was due, RFC 3339.
    pub due: String,
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the daemon drives: running jobs and writing heartbeats.
pub trait Executor: Send + Sync + 'static {
    /// Runs a job to its end.
    fn run(&self, job: Job) -> BoxFuture;
    /// Writes a signed heartbeat entry with `note`.
    fn heartbeat(&self, note: String) -> BoxFuture;
    /// Reports what the daemon does (a log line and a JSON record).
    fn report(&self, kind: &str, message: String, data: serde_json::Value);
}

/// The daemon's settings.
pub struct DaemonOptions {
    pub schedules: Vec<Schedule>,
    /// Device names, with their tags, to resolve selectors.
    pub devices: Vec<(String, Vec<String>)>,
    pub zone: Zone,
    /// A heartbeat is written when nothing else was for this long (half the stale limit).
    pub heartbeat_every: Duration,
    /// The wall clock, read again every time the next firing is computed (an NTP step or
    /// a suspend moves it against the monotonic clock).
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

/// How often the daemon re-reads the wall clock while it waits.
const RECHECK: Duration = Duration::from_secs(60);
/// A difference between wall and monotonic time beyond this is a clock step.
const STEP: Duration = Duration::from_secs(30);

/// Runs the schedules until `shutdown` resolves, then waits for running jobs to finish.
pub async fn run_daemon(
    opts: DaemonOptions,
    exec: Arc<dyn Executor>,
    shutdown: impl Future<Output = ()>,
) {
    let wall = || (opts.clock)();
    let busy: Arc<Mutex<HashSet<String>>> = Arc::new(Mutex::new(HashSet::new()));
    let mut jobs = tokio::task::JoinSet::new();
    let mut last_beat = tokio::time::Instant::now();
    exec.report(
        "daemon",
        format!(
            "daemon started with {} schedule(s); heartbeat every {}",
            opts.schedules.len(),
            humantime::format_duration(opts.heartbeat_every)
        ),
        serde_json::json!({
            "event": "started",
            "schedules": opts.schedules.iter().map(|s| serde_json::json!({"name": s.name, "cron": s.expr})).collect::<Vec<_>>(),
        }),
    );
    exec.heartbeat(heartbeat_note(&opts)).await;
    tokio::pin!(shutdown);
    let mut last = (wall(), tokio::time::Instant::now());
    loop {
        let now = wall();
        let mono = tokio::time::Instant::now();
        // A wall clock that moved unlike the monotonic one was stepped (NTP correcting a
        // wrong RTC, a suspend): say so, in the log too, and plan from the new time.
        let wall_moved = now.duration_since(last.0).map_err(|e| e.duration());
        let mono_moved = mono - last.1;
        let step = match wall_moved {
            Ok(w) if w > mono_moved + STEP => Some(format!("forward by {}", secs(w - mono_moved))),
            Ok(w) if w + STEP < mono_moved => Some(format!("back by {}", secs(mono_moved - w))),
            Err(back) => Some(format!("back by {}", secs(back + mono_moved))),
            _ => None,
        };
        last = (now, mono);
        if let Some(how) = step {
            let text = format!(
                "the wall clock stepped {how} (now {}); schedules follow the new time",
                humantime::format_rfc3339_seconds(now)
            );
            exec.report("clock-step", text.clone(), serde_json::json!({"step": how}));
            exec.heartbeat(text).await;
            last_beat = tokio::time::Instant::now();
        }
        let to_instant = |t: SystemTime| mono + t.duration_since(now).unwrap_or_default();
        // Every schedule due at the earliest next instant fires then, not only the first.
        let upcoming: Vec<(SystemTime, usize)> = opts
            .schedules
            .iter()
            .enumerate()
            .filter_map(|(i, s)| next_after(&s.cron, now, &opts.zone).map(|t| (t, i)))
            .collect();
        let next = upcoming.iter().map(|u| u.0).min().map(|t| {
            let due: Vec<usize> = upcoming.iter().filter(|u| u.0 == t).map(|u| u.1).collect();
            (t, due)
        });
        let beat_at = last_beat + opts.heartbeat_every;
        // Wake for the next firing or heartbeat, but at least every RECHECK to read the
        // wall clock again.
        let recheck = mono + RECHECK;
        let (wake, fire) = match next {
            Some((t, due)) if to_instant(t) <= beat_at => (to_instant(t), Some((t, due))),
            _ => (beat_at, None),
        };
        let (wake, fire) = if wake > recheck {
            (recheck, None)
        } else {
            (wake, fire)
        };
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(wake) => {}
            Some(_) = jobs.join_next(), if !jobs.is_empty() => continue,
        }
        if wake == recheck && fire.is_none() && wake < beat_at {
            continue;
        }
        let Some((due, indices)) = fire else {
            exec.heartbeat(heartbeat_note(&opts)).await;
            last_beat = tokio::time::Instant::now();
            continue;
        };
        // Planned on the wall clock as it was: if it went back meanwhile, plan again.
        if wall() + Duration::from_secs(1) < due {
            continue;
        }
        let due_text = humantime::format_rfc3339_seconds(due).to_string();
        // Devices still running from an earlier instant are skipped (overrun); schedules
        // due at this same instant run one after another, so a device in two of them (a
        // nightly collect and a weekly drill) gets both, in config order.
        let busy_before: HashSet<String> = busy.lock().expect("busy lock").clone();
        let mut batch = Vec::new();
        let mut claimed: Vec<String> = Vec::new();
        for i in indices {
            let s = &opts.schedules[i];
            let wanted = select(&s.devices, &opts.devices);
            let (run, skipped): (Vec<String>, Vec<String>) =
                wanted.into_iter().partition(|d| !busy_before.contains(d));
            if !skipped.is_empty() {
                exec.report(
                    "overrun",
                    format!(
                        "schedule `{}` due {due_text}: {} still running from an earlier run; skipped this time",
                        s.name,
                        skipped.join(", ")
                    ),
                    serde_json::json!({"schedule": s.name, "due": due_text, "skipped": skipped}),
                );
            }
            if run.is_empty() {
                continue;
            }
            for d in &run {
                if !claimed.contains(d) {
                    claimed.push(d.clone());
                }
            }
            let job = Job {
                schedule: s.name.clone(),
                action: s.action,
                devices: run,
                due: due_text.clone(),
            };
            exec.report(
                "job",
                format!(
                    "schedule `{}`: {:?} {}",
                    job.schedule,
                    job.action,
                    job.devices.join(", ")
                ),
                serde_json::to_value(&job).expect("jobs serialize"),
            );
            batch.push(job);
        }
        if batch.is_empty() {
            continue;
        }
        busy.lock()
            .expect("busy lock")
            .extend(claimed.iter().cloned());
        // Jobs that share a device run one after another, in config order; the others run
        // side by side. A device is free again as soon as no job left in its chain names it.
        for chain in chains(batch) {
            let exec2 = exec.clone();
            let busy2 = busy.clone();
            jobs.spawn(async move {
                for i in 0..chain.len() {
                    exec2.run(chain[i].clone()).await;
                    let later: HashSet<&String> =
                        chain[i + 1..].iter().flat_map(|j| &j.devices).collect();
                    let mut b = busy2.lock().expect("busy lock");
                    for d in chain[i].devices.iter().filter(|d| !later.contains(d)) {
                        b.remove(d);
                    }
                }
            });
        }
        // A job counts as activity in the log: the next heartbeat can wait.
        last_beat = tokio::time::Instant::now();
    }
    exec.report(
        "daemon",
        format!(
            "stopping: waiting for {} running job(s) to finish their writes",
            jobs.len()
        ),
        serde_json::json!({"event": "stopping", "running": jobs.len()}),
    );
    while jobs.join_next().await.is_some() {}
    exec.report(
        "daemon",
        "stopped".into(),
        serde_json::json!({"event": "stopped"}),
    );
}

/// Splits jobs due at one instant into chains: jobs that share a device (directly or
/// through another job) form one chain, in their order.
fn chains(batch: Vec<Job>) -> Vec<Vec<Job>> {
    let mut chains: Vec<Vec<Job>> = Vec::new();
    for job in batch {
        let touching: Vec<usize> = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.iter()
                    .any(|j| j.devices.iter().any(|d| job.devices.contains(d)))
            })
            .map(|(i, _)| i)
            .collect();
        match touching.first() {
            None => chains.push(vec![job]),
            Some(&first) => {
                // Merge every chain the job touches into the first (order kept: a job
                // waits for all earlier jobs it shares devices with).
                for &i in touching[1..].iter().rev() {
                    let merged = chains.remove(i);
                    chains[first].extend(merged);
                }
                chains[first].push(job);
            }
        }
    }
    chains
}

fn heartbeat_note(opts: &DaemonOptions) -> String {
    format!(
        "plcvault daemon alive, {} schedule(s)",
        opts.schedules.len()
    )
}

fn secs(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

/// The daemon as the CLI runs it: jobs call the collection engine, heartbeats append
/// signed entries, reports go to stderr and (with `--json`) stdout.
struct CliExecutor {
    cfg: Arc<crate::config::Config>,
    out: crate::output::Out,
    handle: tokio::runtime::Handle,
}

impl Executor for CliExecutor {
    fn run(&self, job: Job) -> BoxFuture {
        let cfg = self.cfg.clone();
        let out = self.out;
        let handle = self.handle.clone();
        Box::pin(async move {
            let result = tokio::task::spawn_blocking(move || {
                let devices: Vec<&crate::config::DeviceConfig> = cfg
                    .devices
                    .iter()
                    .filter(|d| job.devices.contains(&d.name))
                    .collect();
                match job.action {
                    Action::Collect => {
                        crate::ops::collect::run_on(&handle, &cfg, &devices, &out).map(|_| ())
                    }
                    Action::Drill => {
                        crate::ops::drill::run(&cfg, &devices, None, None, None, &out).map(|_| ())
                    }
                }
            })
            .await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => out.warn(format!("scheduled run failed: {e:#}")),
                Err(e) => out.warn(format!("scheduled run crashed: {e}")),
            }
        })
    }

    fn heartbeat(&self, note: String) -> BoxFuture {
        let cfg = self.cfg.clone();
        let out = self.out;
        Box::pin(async move {
            let r = tokio::task::spawn_blocking(move || -> Result<u64> {
                let key = cfg.signing_key()?;
                let vault = cfg.vault_for_writing(true)?;
                let entry =
                    vault::guard::append(&vault, &key, &vault::log::Event::Heartbeat { note })?;
                Ok(entry.file_seq)
            })
            .await;
            match r {
                Ok(Ok(seq)) => out.debug(format!("heartbeat written as log entry {seq}")),
                Ok(Err(e)) => out.warn(format!("heartbeat failed: {e:#}")),
                Err(e) => out.warn(format!("heartbeat crashed: {e}")),
            }
        })
    }

    fn report(&self, kind: &str, message: String, data: serde_json::Value) {
        self.out.info(format!("daemon: {message}"));
        self.out.record(kind, &data, String::new);
    }
}

/// `plcvault daemon`: runs the config's schedules until SIGTERM or SIGINT.
///
/// Fails when the config has no schedule, no key, or the runtime cannot start.
pub fn daemon(
    cfg: crate::config::Config,
    out: &crate::output::Out,
) -> Result<crate::output::Outcome> {
    if cfg.schedules.is_empty() {
        bail!(
            "{} has no [[schedule]]\nfix: add one, e.g.\n[[schedule]]\nname = \"nightly\"\ncron = \"0 2 * * *\"\naction = \"collect\"",
            cfg.file.display()
        );
    }
    cfg.signing_key()?;
    let runtime = crate::runtime::get()?;
    let opts = DaemonOptions {
        schedules: cfg.schedules.clone(),
        devices: cfg
            .devices
            .iter()
            .filter(|d| d.nightly)
            .map(|d| (d.name.clone(), d.tags.clone()))
            .collect(),
        zone: cfg.zone.clone(),
        heartbeat_every: cfg
            .vault
            .stale_after
            .unwrap_or(Duration::from_secs(26 * 3600))
            / 2,
        clock: Arc::new(SystemTime::now),
    };
    let exec = Arc::new(CliExecutor {
        cfg: Arc::new(cfg),
        out: *out,
        handle: runtime.handle().clone(),
    });
    runtime.block_on(async move {
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending::<()>().await,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        run_daemon(opts, exec, shutdown).await;
    });
    Ok(crate::output::Outcome::Clean)
}

#[cfg(test)]
mod daemon_tests {
    use super::*;
    use crate::config::calendar::parse_cron;

    /// Records what the daemon asks for; jobs take `job_time` of (paused) tokio time.
    struct Fake {
        start: SystemTime,
        t0: tokio::time::Instant,
        job_time: Duration,
        jobs: Mutex<Vec<(SystemTime, Job)>>,
        finished: Mutex<Vec<SystemTime>>,
        beats: Mutex<Vec<SystemTime>>,
        notes: Mutex<Vec<String>>,
        reports: Mutex<Vec<(String, String)>>,
        /// Seconds the wall clock was stepped (negative: back).
        step: Mutex<i64>,
    }

    impl Fake {
        fn now(&self) -> SystemTime {
            let t = self.start + (tokio::time::Instant::now() - self.t0);
            let step = *self.step.lock().unwrap();
            if step >= 0 {
                t + Duration::from_secs(step as u64)
            } else {
                t - Duration::from_secs(step.unsigned_abs())
            }
        }
    }

    impl Executor for Fake {
        fn run(&self, job: Job) -> BoxFuture {
            self.jobs.lock().unwrap().push((self.now(), job));
            let d = self.job_time;
            Box::pin(async move { tokio::time::sleep(d).await })
        }
        fn heartbeat(&self, note: String) -> BoxFuture {
            self.beats.lock().unwrap().push(self.now());
            self.notes.lock().unwrap().push(note);
            Box::pin(async {})
        }
        fn report(&self, kind: &str, message: String, _data: serde_json::Value) {
            self.reports
                .lock()
                .unwrap()
                .push((kind.to_string(), message));
        }
    }

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).unwrap()
    }

    fn schedule(name: &str, expr: &str, devices: &[&str]) -> Schedule {
        Schedule {
            name: name.into(),
            expr: expr.into(),
            cron: parse_cron(expr).unwrap(),
            action: Action::Collect,
            devices: devices.iter().map(|s| s.to_string()).collect(),
        }
    }

    async fn run_fake(
        schedules: Vec<Schedule>,
        job_time: Duration,
        run_for: Duration,
    ) -> Arc<Fake> {
        run_fake_at("2026-11-22T00:00:00Z", schedules, job_time, &[], run_for).await
    }

    /// `run_fake` from `start`, with the wall clock stepped by `steps` (after, seconds).
    async fn run_fake_at(
        start: &str,
        schedules: Vec<Schedule>,
        job_time: Duration,
        steps: &[(Duration, i64)],
        run_for: Duration,
    ) -> Arc<Fake> {
        let start = at(start);
        let fake = Arc::new(Fake {
            start,
            t0: tokio::time::Instant::now(),
            job_time,
            jobs: Mutex::new(vec![]),
            finished: Mutex::new(vec![]),
            beats: Mutex::new(vec![]),
            notes: Mutex::new(vec![]),
            reports: Mutex::new(vec![]),
            step: Mutex::new(0),
        });
        let opts = DaemonOptions {
            schedules,
            devices: vec![
                ("line1-plc".into(), vec![]),
                ("line1-files".into(), vec!["packaging".into()]),
                ("boiler".into(), vec![]),
            ],
            zone: Zone::Utc,
            heartbeat_every: Duration::from_secs(13 * 3600),
            clock: {
                let f = fake.clone();
                Arc::new(move || f.now())
            },
        };
        let exec: Arc<dyn Executor> = fake.clone();
        let script = {
            let fake = fake.clone();
            let steps = steps.to_vec();
            async move {
                let t0 = tokio::time::Instant::now();
                for (after, by) in steps {
                    tokio::time::sleep_until(t0 + after).await;
                    *fake.step.lock().unwrap() += by;
                }
                tokio::time::sleep_until(t0 + run_for).await;
            }
        };
        run_daemon(opts, exec, script).await;
        // The daemon returns only once running jobs have finished.
        fake.finished.lock().unwrap().push(fake.now());
        fake
    }

    impl Fake {
        fn count_reports(&self, ty: &str) -> usize {
            self.reports
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.0 == ty)
                .count()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nightly_schedule_fires_at_2am_and_heartbeats_fill_the_gaps() {
        let fake = run_fake(
            vec![schedule("nightly", "0 2 * * *", &["line1-*"])],
            Duration::from_secs(600),
            Duration::from_secs(3 * 86400 + 3600),
        )
        .await;
        let jobs = fake.jobs.lock().unwrap();
        let times: Vec<SystemTime> = jobs.iter().map(|j| j.0).collect();
        assert_eq!(
            times,
            vec![
                at("2026-11-22T02:00:00Z"),
                at("2026-11-23T02:00:00Z"),
                at("2026-11-24T02:00:00Z")
            ]
        );
        assert_eq!(jobs[0].1.devices, vec!["line1-plc", "line1-files"]);
        // One at start, then whenever 13 h passed without a job.
        let beats = fake.beats.lock().unwrap();
        assert_eq!(beats[0], at("2026-11-22T00:00:00Z"));
        assert!(beats.contains(&at("2026-11-22T15:00:00Z")), "{beats:?}");
        for w in beats.windows(2) {
            assert!(w[1].duration_since(w[0]).unwrap() <= Duration::from_secs(26 * 3600));
        }
    }

    // Regression (issue 18, case 3): of schedules due at the same instant only one fired.
    #[tokio::test(start_paused = true)]
    async fn schedules_due_at_the_same_instant_all_fire() {
        let mut weekly = schedule("weekly-drill", "0 2 * * 0", &["line1-plc"]);
        weekly.action = Action::Drill;
        let fake = run_fake(
            vec![
                schedule("nightly", "0 2 * * *", &["line1-*"]),
                weekly,
                schedule("every-minute", "* * * * *", &["boiler"]),
                schedule("every-2", "*/2 * * * *", &["boiler"]),
            ],
            Duration::from_secs(1),
            // 2026-11-22 is a Sunday: run until 02:05 that day.
            Duration::from_secs(2 * 3600 + 5 * 60),
        )
        .await;
        let jobs = fake.jobs.lock().unwrap();
        let named = |n: &str| jobs.iter().filter(|j| j.1.schedule == n).count();
        assert_eq!(named("nightly"), 1);
        assert_eq!(
            named("weekly-drill"),
            1,
            "the weekly drill fired with the nightly collect"
        );
        let at2: Vec<&str> = jobs
            .iter()
            .filter(|j| j.0 >= at("2026-11-22T02:00:00Z") && j.0 < at("2026-11-22T02:00:30Z"))
            .map(|j| j.1.schedule.as_str())
            .collect();
        assert!(
            at2.contains(&"nightly") && at2.contains(&"weekly-drill"),
            "{at2:?}"
        );
        // Every minute and every two minutes on the same device: both fire on even minutes.
        assert_eq!(named("every-minute"), 124, "00:01 to 02:04");
        assert_eq!(named("every-2"), 62, "00:02 to 02:04");
        let overruns = fake.count_reports("overrun");
        assert_eq!(overruns, 0);
    }

    // Jobs due together that share no device run side by side; those that share one run
    // one after the other and never overlap.
    #[tokio::test(start_paused = true)]
    async fn jobs_due_together_run_side_by_side_unless_they_share_a_device() {
        let fake = run_fake(
            vec![
                schedule("a", "0 2 * * *", &["line1-plc"]),
                schedule("b", "0 2 * * *", &["boiler"]),
                schedule("c", "0 2 * * *", &["line1-plc"]),
            ],
            Duration::from_secs(600),
            Duration::from_secs(3 * 3600),
        )
        .await;
        let jobs = fake.jobs.lock().unwrap();
        let started = |n: &str| jobs.iter().find(|j| j.1.schedule == n).unwrap().0;
        assert_eq!(started("a"), at("2026-11-22T02:00:00Z"));
        assert_eq!(
            started("b"),
            at("2026-11-22T02:00:00Z"),
            "no shared device: no wait"
        );
        assert_eq!(
            started("c"),
            at("2026-11-22T02:10:00Z"),
            "after a, which shares its device"
        );
        assert_eq!(fake.count_reports("overrun"), 0);
    }

    // Regression (issue 18, case 6): the daemon kept its start-time clock, so after the
    // wall clock was stepped back three hours the run "due 02:00Z" happened at 22:59:55Z.
    #[tokio::test(start_paused = true)]
    async fn a_stepped_wall_clock_is_followed_and_logged() {
        let fake = run_fake_at(
            "2026-11-22T01:59:50Z",
            vec![schedule("nightly", "0 2 * * *", &["boiler"])],
            Duration::from_secs(1),
            // Five seconds in, NTP corrects a clock that ran three hours ahead.
            &[(Duration::from_secs(5), -3 * 3600)],
            Duration::from_secs(4 * 3600),
        )
        .await;
        let jobs = fake.jobs.lock().unwrap();
        assert_eq!(
            jobs.len(),
            1,
            "{:?}",
            jobs.iter().map(|j| j.0).collect::<Vec<_>>()
        );
        let ran = jobs[0].0;
        assert!(
            ran >= at("2026-11-22T02:00:00Z") && ran < at("2026-11-22T02:01:05Z"),
            "ran at {}",
            humantime::format_rfc3339_seconds(ran)
        );
        assert_eq!(fake.count_reports("clock-step"), 1);
        assert!(
            fake.notes
                .lock()
                .unwrap()
                .iter()
                .any(|n| n.contains("stepped back by 3h")),
            "{:?}",
            fake.notes.lock().unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_overrunning_job_is_never_overlapped_and_is_reported() {
        // Every 10 minutes, but a run takes 25 minutes.
        let fake = run_fake(
            vec![schedule(
                "often",
                "*/10 * * * *",
                &["tag:packaging", "boiler"],
            )],
            Duration::from_secs(25 * 60),
            // Stop at 00:55, between two firings.
            Duration::from_secs(55 * 60),
        )
        .await;
        let jobs = fake.jobs.lock().unwrap();
        let times: Vec<SystemTime> = jobs.iter().map(|j| j.0).collect();
        assert_eq!(
            times,
            vec![at("2026-11-22T00:10:00Z"), at("2026-11-22T00:40:00Z")],
            "runs must not overlap"
        );
        let overruns = fake.count_reports("overrun");
        assert_eq!(overruns, 3, "00:20, 00:30 and 00:50 were skipped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_scheduled_drill_runs_at_its_time() {
        let mut drill = schedule("monthly-drill", "0 3 1 * *", &["boiler"]);
        drill.action = Action::Drill;
        let fake = run_fake(
            vec![drill],
            Duration::from_secs(60),
            Duration::from_secs(41 * 86400),
        )
        .await;
        let jobs = fake.jobs.lock().unwrap();
        let got: Vec<(SystemTime, Action, Vec<String>)> = jobs
            .iter()
            .map(|(t, j)| (*t, j.action, j.devices.clone()))
            .collect();
        let boiler = vec!["boiler".to_string()];
        assert_eq!(
            got,
            vec![
                (at("2026-12-01T03:00:00Z"), Action::Drill, boiler.clone()),
                (at("2027-01-01T03:00:00Z"), Action::Drill, boiler),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_the_running_job() {
        let fake = run_fake(
            vec![schedule("nightly", "0 2 * * *", &[])],
            Duration::from_secs(1800),
            // Stop ten minutes into the 02:00 run.
            Duration::from_secs(2 * 3600 + 600),
        )
        .await;
        assert_eq!(fake.jobs.lock().unwrap().len(), 1);
        assert_eq!(fake.finished.lock().unwrap()[0], at("2026-11-22T02:30:00Z"));
        let reports = fake.reports.lock().unwrap();
        assert!(
            reports
                .iter()
                .any(|r| r.1.contains("waiting for 1 running job")),
            "{reports:?}"
        );
    }
}
