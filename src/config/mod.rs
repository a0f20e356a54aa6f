//! The TOML config: parsed raw (serde, unknown keys rejected), then validated and resolved
//! (paths against the config's folder, keys loaded, globs compiled). Every error names
//! the file, the line and the key.

pub mod calendar;
pub mod rules;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use toml::Spanned;
use vault::{PublicKey, Role, Trust, TrustedKey};

use crate::config::calendar::{Action, Schedule, Zone, parse_cron, select, selects};
use crate::config::rules::{Class, Rules, Severity, check_volatile};
use std::collections::BTreeMap;

/// Where the config is looked for when neither `--config` nor `PLCVAULT_CONFIG` names one.
pub const DEFAULT_PATH: &str = "plcvault.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(default)]
    site: RawSite,
    /// Only an auditor's config (`[[trust]]` only, for `verify --evidence`) may omit it.
    vault: Option<RawVault>,
    #[serde(default)]
    trust: Vec<RawTrust>,
    #[serde(default)]
    device: Vec<RawDevice>,
    #[serde(default)]
    collect: RawCollect,
    #[serde(default)]
    schedule: Vec<RawSchedule>,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    report: RawReport,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    remote: Vec<RawRemote>,
    #[serde(default)]
    serve: RawServe,
}

/// `[serve]`: the read-only web dashboard.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawServe {
    listen: Option<Spanned<String>>,
    tls_certificate: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
    tokens: Option<Spanned<Vec<String>>>,
    client_ca: Option<Spanned<String>>,
    client_crl: Option<Spanned<String>>,
}

/// The dashboard's settings, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where it listens (default 127.0.0.1:8420).
    pub listen: std::net::SocketAddr,
    /// The TLS certificate chain and key (PEM), both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// SHA-256 of each accepted bearer token.
    pub tokens: Vec<[u8; 32]>,
    /// The CA (PEM) whose client certificates are a login; with it every TLS client must
    /// present one.
    pub client_ca: Option<PathBuf>,
    /// The CA's revocation lists (PEM); read again whenever the file changes.
    pub client_crl: Option<PathBuf>,
}

/// Where `serve` listens unless told.
pub const SERVE_LISTEN: &str = "127.0.0.1:8420";

/// `[[remote]]`: an S3-compatible bucket `push` replicates the vault to.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRemote {
    name: Spanned<String>,
    url: Spanned<String>,
    endpoint: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    credentials: Option<Spanned<String>>,
    read_back: Option<Spanned<String>>,
}

/// A remote, validated. Credentials are read when it is used, never kept in the config.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub name: String,
    pub bucket: String,
    /// The key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// `http(s)://host:port` of an S3-compatible store; `None`: AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// A file holding `access-key-id` and `secret-access-key` (TOML, mode 0600); `None`:
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` from the environment.
    pub credentials: Option<PathBuf>,
    /// How `push` proves an object was stored.
    pub read_back: ReadBack,
}

/// How `push` proves an object was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadBack {
    /// Read back whole and compared (the default).
    Full,
    /// The store's ETag of a single-part upload (the MD5 of the body it received),
    /// compared with ours.
    Etag,
    /// The store's own check of the signed payload: every PUT carries the SHA-256 of its
    /// body in the signature (`x-amz-content-sha256`), which the store verifies before it
    /// answers 200; then a HEAD for the size.
    Signed,
}

impl RemoteConfig {
    /// `s3://bucket/prefix`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// `[retention]`: the vault's policy, prune's settings, and per-device overrides.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRetention {
    keep_last: Option<Spanned<u32>>,
    keep_daily: Option<Spanned<u32>>,
    keep_weekly: Option<Spanned<u32>>,
    keep_monthly: Option<Spanned<u32>>,
    keep_yearly: Option<Spanned<u32>>,
    keep_approved: Option<Spanned<u32>>,
    grace: Option<Spanned<String>>,
    max_unused: Option<Spanned<String>>,
    #[serde(default)]
    device: BTreeMap<String, RawPolicy>,
}

/// `[retention.device.NAME]`: keys that replace the vault's for one device.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    keep_last: Option<Spanned<u32>>,
    keep_daily: Option<Spanned<u32>>,
    keep_weekly: Option<Spanned<u32>>,
    keep_monthly: Option<Spanned<u32>>,
    keep_yearly: Option<Spanned<u32>>,
    keep_approved: Option<Spanned<u32>>,
}

/// A retention policy (restic's semantics: the newest snapshot of each of the last N days,
/// ISO weeks, months, years that have one; the last N snapshots), plus the approved
/// baselines kept besides the current one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Policy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
    pub keep_approved: u32,
}

impl Policy {
    /// Some `keep-*` key is set: without one, forget refuses (it would forget everything
    /// the protections do not keep).
    pub fn is_set(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
    }
}

/// `[retention]` validated.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    pub policy: Policy,
    pub devices: BTreeMap<String, Policy>,
    /// Prune deletes files no entry names only when older than this (default 1 day).
    pub grace: Duration,
    /// Unused share of kept packs tolerated before repacking (default 5%).
    pub max_unused: f64,
}

impl RetentionConfig {
    /// The policy for `device`.
    pub fn policy_for(&self, device: &str) -> &Policy {
        self.devices.get(device).unwrap_or(&self.policy)
    }
}

/// `5%` (or `0.05`) as a share, 0 to 1.
pub fn parse_share(text: &str) -> Result<f64, String> {
    let v = match text.trim().strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a share (write it like \"5%\")"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("`{text}` is not between 0% and 100%"));
    }
    Ok(v)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSite {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReport {
    backup_max_age: Option<Spanned<String>>,
    drill_max_age: Option<Spanned<String>>,
    offline_max_age: Option<Spanned<String>>,
}

/// Alarm thresholds of `plcvault report`.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Alarm when the newest complete backup is older (default 26 h).
    pub backup_max_age: Duration,
    /// Alarm when no drill passed within this (default 90 days).
    pub drill_max_age: Duration,
    /// Alarm (`no-offline-copy`) when the newest offline copy is older (default 7 days);
    /// `offline_asked`: the key was set, so that a site without any copy is told too.
    pub offline_max_age: Duration,
    pub offline_asked: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSchedule {
    name: Spanned<String>,
    cron: Spanned<String>,
    action: Option<Spanned<String>>,
    devices: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDaemon {
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawVault {
    path: Spanned<String>,
    key: Option<Spanned<String>>,
    state: Option<Spanned<String>>,
    stale_after: Option<Spanned<String>>,
    compression_level: Option<Spanned<i32>>,
    witnesses: Option<Spanned<u32>>,
    witness_grace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTrust {
    name: Spanned<String>,
    role: Spanned<String>,
    public_key: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCollect {
    threads: Option<Spanned<usize>>,
    max_devices: Option<Spanned<usize>>,
}

/// The keys every `[[device]]` has; the rest of the table belongs to its adapter, which
/// reads it itself (`adapters::registry`), unknown keys refused there.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawDevice {
    name: Spanned<String>,
    adapter: Spanned<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// `false`: not part of the nightly run (a spare CPU on the test bench): out of
    /// `--all` and schedules, exempt from the backup, baseline and drill alarms.
    nightly: Option<bool>,
    // comparison rules (take effect through an approval)
    volatile: Option<Spanned<Vec<String>>>,
    shrink_limit: Option<Spanned<f64>>,
    severity: Option<Spanned<BTreeMap<String, String>>>,
}

/// The keys of `RawDevice`, which the adapter does not see.
const COMMON_DEVICE_KEYS: [&str; 7] = [
    "name",
    "adapter",
    "tags",
    "nightly",
    "volatile",
    "shrink-limit",
    "severity",
];

/// The validated config.
#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub vault: VaultConfig,
    pub trust: Trust,
    pub devices: Vec<DeviceConfig>,
    pub threads: usize,
    /// Devices collected at the same time.
    pub max_devices: usize,
    pub schedules: Vec<Schedule>,
    /// The timezone cron times are read in.
    pub zone: Zone,
    pub report: ReportConfig,
    pub retention: RetentionConfig,
    pub remotes: Vec<RemoteConfig>,
    pub serve: ServeConfig,
    /// `[site] name`: what pages and reports call the plant (default: the config file's
    /// folder name).
    pub site: String,
}

/// A configured device with no snapshot in the vault (never collected, or every
/// collection failed): in a batch a device not read (exit 3), alone a usage error.
#[derive(Debug)]
pub struct NoSnapshot(pub String);

impl std::fmt::Display for NoSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoSnapshot {}

#[derive(Debug)]
pub struct VaultConfig {
    pub path: PathBuf,
    /// This host's signing key, when the config names one.
    pub key: Option<PathBuf>,
    /// Where the config names it (`file:line`), for messages.
    pub key_at: String,
    pub state: PathBuf,
    /// `None` (`stale-after = "off"`): never report the log as stale (an archived copy).
    pub stale_after: Option<Duration>,
    pub compression_level: i32,
    /// How many `witness` keys must have cosigned a checkpoint covering every entry
    /// older than `witness_grace` (0: none asked for).
    pub witnesses: usize,
    pub witness_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct DeviceConfig {
    pub name: String,
    pub tags: Vec<String>,
    /// Part of the nightly run (`nightly = false` takes it out of `--all` and schedules).
    pub nightly: bool,
    /// The device as its adapter built it: collector, writer, write permit, kinds.
    pub adapter: adapters::Device,
    /// The comparison rules the config proposes; they apply once approved.
    pub rules: Rules,
}

impl DeviceConfig {
    /// The adapter's name as the config writes it.
    pub fn adapter_name(&self) -> &'static str {
        self.adapter.collector.adapter()
    }

    /// Restores and drills may write to this device (`writable = true`).
    pub fn writable(&self) -> bool {
        self.adapter.permit.is_some()
    }
}

/// Turns byte offsets into `file:line:` prefixes.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
}

const MINUTE: Duration = Duration::from_secs(60);
const YEAR: Duration = Duration::from_secs(366 * 86400);

impl Locator<'_> {
    /// A duration from the config, between `min` and `max`; `what` names the key.
    ///
    /// Fails when it does not parse or is out of range, naming file, line and key.
    fn duration(
        &self,
        d: &Spanned<String>,
        what: &str,
        min: Duration,
        max: Duration,
    ) -> Result<Duration> {
        let text = d.get_ref();
        let v = humantime::parse_duration(text).map_err(|e| {
            anyhow!(
                "{}: {what}: `{text}` is not a duration ({e})\nfix: write it like \"26h\" or \"2days\"",
                self.at(d)
            )
        })?;
        if v < min || v > max {
            bail!(
                "{}: {what}: `{text}` is outside {} to {}",
                self.at(d),
                humantime::format_duration(min),
                humantime::format_duration(max)
            );
        }
        Ok(v)
    }

    fn at<T>(&self, s: &Spanned<T>) -> String {
        self.at_span(s.span())
    }

    fn at_span(&self, span: std::ops::Range<usize>) -> String {
        let line = self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|&b| b == b'\n')
            .count()
            + 1;
        format!("{}:{line}", self.file.display())
    }
}

/// The comparison rules of a device, defaults filled in.
fn device_rules(loc: &Locator, name: &str, d: &RawDevice) -> Result<Rules> {
    let mut rules = Rules::default();
    if let Some(v) = &d.volatile {
        for rule in v.get_ref() {
            check_volatile(rule)
                .map_err(|e| anyhow!("{}: [[device]] `{name}` key `volatile`: {e}", loc.at(v)))?;
        }
        rules.volatile = v.get_ref().clone();
    }
    if let Some(s) = &d.shrink_limit {
        let x = *s.get_ref();
        if !(0.0..=1.0).contains(&x) {
            bail!(
                "{}: [[device]] `{name}` key `shrink-limit`: {x} is not a share between 0 and 1",
                loc.at(s)
            );
        }
        rules.shrink_limit = x;
    }
    if let Some(sev) = &d.severity {
        for (class, level) in sev.get_ref() {
            let c = Class::parse(class).ok_or_else(|| {
                anyhow!(
                    "{}: [[device]] `{name}` [device.severity]: `{class}` is not a class\nfix: use logic, config, recipe, values, identity, metadata or suspect",
                    loc.at(sev)
                )
            })?;
            let l = Severity::parse(level).ok_or_else(|| {
                anyhow!(
                    "{}: [[device]] `{name}` [device.severity] `{class}`: `{level}` is not a severity\nfix: use info, warning or critical",
                    loc.at(sev)
                )
            })?;
            rules.severity.insert(c, l);
        }
    }
    Ok(rules)
}

/// Validates a modbus device's keys.
/// The adapter's part of each `[[device]]` table (the common keys taken out), spans kept.
///
/// Fails when the text does not parse (it did once already, so this does not happen).
fn device_tables(text: &str) -> Result<Vec<adapters::settings::DeviceTable<'_>>> {
    let doc = toml::de::DeTable::parse(text).map_err(|e| anyhow!("{}", e.message()))?;
    let Some(devices) = doc.get_ref().get("device") else {
        return Ok(Vec::new());
    };
    let toml::de::DeValue::Array(list) = devices.get_ref() else {
        return Ok(Vec::new());
    };
    Ok(list
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if let toml::de::DeValue::Table(table) = t.get_mut() {
                let mut rest = toml::de::DeTable::new();
                for (k, v) in table.iter() {
                    if !COMMON_DEVICE_KEYS.contains(&k.get_ref().as_ref()) {
                        rest.insert(k.clone(), v.clone());
                    }
                }
                *table = rest;
            }
            t
        })
        .collect())
}

/// An adapter's settings error as the config's: file and line, device, message; an
/// unknown key said as a key that does not apply to this adapter.
fn settings_error(
    loc: &Locator,
    d: &RawDevice,
    table: &adapters::settings::DeviceTable<'_>,
    e: adapters::settings::SettingsError,
) -> anyhow::Error {
    let name = d.name.get_ref();
    let adapter = d.adapter.get_ref();
    // A key that belongs to no part of the table is an error at that key; a missing one,
    // at the device's name.
    let at = match e.span.clone() {
        Some(span) if span != table.span() => loc.at_span(span),
        _ if e.message.contains("`adapter`") => loc.at(&d.adapter),
        _ => loc.at(&d.name),
    };
    let message = match e
        .message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
    {
        // In a table inside the device (`[[device.range]]`): said as that table's key.
        Some((key, rest))
            if let Some(sub) = e
                .span
                .as_ref()
                .and_then(|sp| loc.text.get(..sp.start))
                .and_then(|before| {
                    before
                        .lines()
                        .rev()
                        .map(str::trim)
                        .find(|l| l.starts_with('['))
                })
                .filter(|h| h.starts_with("[[device.") || h.starts_with("[device.")) =>
        {
            let valid = rest
                .split_once("expected one of ")
                .or_else(|| rest.split_once("expected "))
                .map_or("", |(_, l)| l.trim());
            let names: Vec<&str> = valid
                .split(',')
                .map(|k| k.trim().trim_matches('`'))
                .collect();
            match nearest(key, &names) {
                Some(near) => format!(
                    "{sub} key `{key}` is unknown (it takes {valid})\nfix: did you mean `{near}`?"
                ),
                None => format!("{sub} key `{key}` is unknown (it takes {valid})\nfix: remove it"),
            }
        }
        Some((key, rest)) => {
            let valid = rest
                .split_once("expected one of ")
                .map(|(_, l)| l.trim().to_string())
                .unwrap_or_default();
            let takes = if valid.is_empty() {
                String::new()
            } else {
                format!(" (adapter {adapter} takes {valid})")
            };
            let names: Vec<&str> = valid
                .split(',')
                .map(|k| k.trim().trim_matches('`'))
                .chain(COMMON_DEVICE_KEYS)
                .collect();
            match nearest(key, &names) {
                Some(near) => format!(
                    "key `{key}` does not apply to adapter {adapter}{takes}\nfix: did you mean `{near}`?"
                ),
                None => format!(
                    "key `{key}` does not apply to adapter {adapter}{takes}\nfix: remove it, or check the `adapter` of this device"
                ),
            }
        }
        None => e.message,
    };
    anyhow!("{at}: [[device]] `{name}` {message}")
}

/// For serde's "unknown field `x`, expected one of `a`, `b`": the fix line naming the
/// valid key nearest to `x`, if one is near; otherwise nothing.
fn did_you_mean(message: &str) -> String {
    let Some((key, rest)) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split_once('`'))
    else {
        return String::new();
    };
    // "expected one of `a`, `b`", or "expected `a`" for a table of one key.
    let list = rest
        .split_once("expected one of ")
        .or_else(|| rest.split_once("expected "))
        .map_or("", |(_, l)| l);
    let valid: Vec<&str> = list
        .split(',')
        .map(|k| k.trim().trim_matches('`'))
        .collect();
    nearest(key, &valid)
        .map(|near| format!("\nfix: did you mean `{near}`?"))
        .unwrap_or_default()
}

/// The valid name closest to a misspelt one (at most two edits, and fewer than half its
/// letters), if any.
fn nearest<'a>(wrong: &str, valid: &[&'a str]) -> Option<&'a str> {
    /// Edits between `a` and `b`, a swap of neighbours counting as one (`kye` → `key`).
    fn distance(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[i - 1][j - 1] + cost)
                    .min(d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[i - 2][j - 2] + 1);
                }
                d[i][j] = v;
            }
        }
        d[a.len()][b.len()]
    }
    valid
        .iter()
        .map(|v| (distance(wrong, v), *v))
        .filter(|(d, v)| *d <= 2 && *d * 2 < v.len().max(2))
        .min()
        .map(|(_, v)| v)
}

/// `p` made absolute and lexically normalised (`.` and `..` removed), for comparisons.
fn absolute(p: &Path) -> PathBuf {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Where the Debian package installs the site's config: used when neither the flag nor
/// `PLCVAULT_CONFIG` names one and there is no `./plcvault.toml`.
pub const SYSTEM_PATH: &str = "/etc/plcvault/plcvault.toml";

/// Finds the config path: the flag, then `PLCVAULT_CONFIG`, then `./plcvault.toml`, then
/// the packaged `/etc/plcvault/plcvault.toml` when that exists.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_owned)
        .or_else(|| std::env::var_os("PLCVAULT_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| {
            let here = PathBuf::from(DEFAULT_PATH);
            if !here.exists() && Path::new(SYSTEM_PATH).is_file() {
                PathBuf::from(SYSTEM_PATH)
            } else {
                here
            }
        })
}

impl Config {
    /// Reads and validates a config file.
    ///
    /// Fails when the file cannot be read, does not parse, has unknown keys, or names
    /// something invalid; the error names the file, line and key.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read config {}\nfix: pass --config PATH, set PLCVAULT_CONFIG, or create one with `plcvault init DIR`",
                path.display()
            )
        })?;
        Config::parse(path, &text)
    }

    /// Validates config text as if read from `path`.
    ///
    /// Fails as `load` does.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            let message = e.message().trim_end();
            anyhow!(
                "{}{line}: {message}{}",
                path.display(),
                did_you_mean(message)
            )
        })?;
        let loc = Locator { file: path, text };
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let resolve = |s: &str| -> PathBuf {
            let p = Path::new(s);
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };

        let v = match &raw.vault {
            Some(v) => v,
            None if raw.device.is_empty() => &RawVault {
                // The folders a command would look for; an auditor's config needs none.
                path: Spanned::new(0..0, "vault".into()),
                key: None,
                state: None,
                stale_after: None,
                compression_level: None,
                witnesses: None,
                witness_grace: None,
            },
            None => bail!(
                "{}: no [vault] table, and devices need a vault to be collected into\nfix: add\n[vault]\npath = \"vault\"\nkey = \"keys/collector.key\"",
                path.display()
            ),
        };
        if v.path.get_ref().trim().is_empty() {
            bail!(
                "{}: [vault] key `path` is empty\nfix: name the vault folder, e.g. path = \"vault\"",
                loc.at(&v.path)
            );
        }
        let stale_after = match &v.stale_after {
            None => Some(Duration::from_secs(26 * 3600)),
            // An archived or offline copy: its newest entry is old by design.
            Some(d) if d.get_ref() == "off" => None,
            Some(d) => Some(loc.duration(d, "[vault] key `stale-after`", MINUTE, YEAR)?),
        };
        let compression_level = match &v.compression_level {
            None => vault::writer::DEFAULT_LEVEL,
            Some(l) if (1..=19).contains(l.get_ref()) => *l.get_ref(),
            Some(l) => bail!(
                "{}: [vault] key `compression-level`: {} is outside 1..=19",
                loc.at(l),
                l.get_ref()
            ),
        };
        let witnesses = v.witnesses.as_ref().map_or(0, |w| *w.get_ref() as usize);
        let witness_grace = match &v.witness_grace {
            None => Duration::from_secs(48 * 3600),
            Some(d) => loc.duration(d, "[vault] key `witness-grace`", MINUTE, YEAR)?,
        };
        let vault_path = resolve(v.path.get_ref());
        let state_path = v
            .state
            .as_ref()
            .map(|s| resolve(s.get_ref()))
            .unwrap_or_else(|| resolve("state"));
        if absolute(&state_path).starts_with(absolute(&vault_path)) {
            let at = v
                .state
                .as_ref()
                .map(|s| loc.at(s))
                .unwrap_or_else(|| loc.at(&v.path));
            bail!(
                "{at}: [vault] key `state`: {} is inside the vault; the verifier's memory must live outside it, or a rolled-back vault would roll back the memory too\nfix: set state = \"state\" beside the vault folder",
                state_path.display()
            );
        }
        let vault_cfg = VaultConfig {
            path: vault_path,
            key: v.key.as_ref().map(|k| resolve(k.get_ref())),
            key_at: v
                .key
                .as_ref()
                .map_or_else(|| path.display().to_string(), |k| loc.at(k)),
            state: state_path,
            stale_after,
            compression_level,
            witnesses,
            witness_grace,
        };

        let mut keys = Vec::new();
        let mut names = std::collections::HashSet::new();
        for t in &raw.trust {
            let name = t.name.get_ref().clone();
            if !names.insert(name.clone()) {
                bail!("{}: [[trust]] name `{name}` is used twice", loc.at(&t.name));
            }
            let role = match t.role.get_ref().as_str() {
                "collector" => Role::Collector,
                "approver" => Role::Approver,
                "witness" => Role::Witness,
                other => bail!(
                    "{}: [[trust]] `{name}` key `role`: `{other}` is not a role\nfix: use \"collector\", \"approver\" or \"witness\"",
                    loc.at(&t.role)
                ),
            };
            let key = PublicKey::load(&resolve(t.public_key.get_ref())).map_err(|e| {
                anyhow!(
                    "{}: [[trust]] `{name}` key `public-key`: {e}",
                    loc.at(&t.public_key)
                )
            })?;
            if let Some(other) = keys.iter().find(|k: &&TrustedKey| k.key == key) {
                bail!(
                    "{}: [[trust]] `{name}` names the same public key as `{}` (fingerprint {}){}\nfix: give every person and host a key of its own (plcvault keygen); keep approver keys off the collector host",
                    loc.at(&t.public_key),
                    other.name,
                    key.fingerprint(),
                    if other.role != role {
                        "; one key trusted as both collector and approver would let the collector host approve its own snapshots"
                    } else {
                        ""
                    }
                );
            }
            keys.push(TrustedKey { name, role, key });
        }
        let witness_keys = keys.iter().filter(|k| k.role == Role::Witness).count();
        if witnesses > witness_keys {
            bail!(
                "{}: [vault] key `witnesses`: {witnesses} cosignatures asked for, but the config trusts {witness_keys} key(s) of role \"witness\"\nfix: add a [[trust]] entry with role = \"witness\" for each witness host's public key (plcvault keygen --role witness on that host)",
                v.witnesses.as_ref().map(|w| loc.at(w)).unwrap_or_default()
            );
        }

        let mut devices = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let tables = device_tables(text)?;
        for (i, d) in raw.device.iter().enumerate() {
            let name = d.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                bail!(
                    "{}: [[device]] key `name`: `{name}` may hold only letters, digits, `-`, `_` and `.`",
                    loc.at(&d.name)
                );
            }
            if !seen.insert(name.clone()) {
                bail!(
                    "{}: [[device]] name `{name}` is used twice",
                    loc.at(&d.name)
                );
            }
            let table = tables.get(i).cloned().ok_or_else(|| {
                anyhow!("{}: [[device]] `{name}` cannot be read", loc.at(&d.name))
            })?;
            let ctx = adapters::settings::Context {
                device: &name,
                base,
            };
            let adapter = adapters::registry::build(d.adapter.get_ref(), table.clone(), &ctx)
                .map_err(|e| settings_error(&loc, d, &table, e))?;
            let mut rules = device_rules(&loc, &name, d)?;
            // What decides a class is bound to the approval like the other rules.
            rules.kinds = adapter.kinds.clone();
            devices.push(DeviceConfig {
                name,
                tags: d.tags.clone(),
                nightly: d.nightly.unwrap_or(true),
                adapter,
                rules,
            });
        }
        let threads = match &raw.collect.threads {
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
            Some(t) if (1..=64).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => bail!("{}: [collect] key `threads`: must be 1..=64", loc.at(t)),
        };
        let max_devices = match &raw.collect.max_devices {
            None => 8,
            Some(t) if (1..=1024).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => bail!(
                "{}: [collect] key `max-devices`: must be 1..=1024",
                loc.at(t)
            ),
        };
        let zone = match &raw.daemon.timezone {
            None => Zone::Local,
            Some(z) => Zone::parse(z.get_ref())
                .map_err(|e| anyhow!("{}: [daemon] key `timezone`: {e:#}", loc.at(z)))?,
        };
        // Schedules run the nightly devices only.
        let names_tags: Vec<(String, Vec<String>)> = devices
            .iter()
            .filter(|d| d.nightly)
            .map(|d| (d.name.clone(), d.tags.clone()))
            .collect();
        let mut schedules = Vec::new();
        for sc in &raw.schedule {
            let name = sc.name.get_ref().clone();
            if schedules.iter().any(|s: &Schedule| s.name == name) {
                bail!(
                    "{}: [[schedule]] name `{name}` is used twice",
                    loc.at(&sc.name)
                );
            }
            let cron = parse_cron(sc.cron.get_ref()).map_err(|e| {
                anyhow!(
                    "{}: [[schedule]] `{name}` key `cron`: {e}",
                    loc.at(&sc.cron)
                )
            })?;
            let action: Action = match &sc.action {
                None => Action::Collect,
                Some(a) => a.get_ref().parse().map_err(|e| {
                    anyhow!("{}: [[schedule]] `{name}` key `action`: {e}", loc.at(a))
                })?,
            };
            let selectors = sc
                .devices
                .as_ref()
                .map(|d| d.get_ref().clone())
                .unwrap_or_default();
            for sel in &selectors {
                if select(std::slice::from_ref(sel), &names_tags).is_empty() {
                    let at = sc
                        .devices
                        .as_ref()
                        .map(|d| loc.at(d))
                        .unwrap_or_else(|| loc.at(&sc.name));
                    bail!(
                        "{at}: [[schedule]] `{name}` key `devices`: `{sel}` selects no device (devices with nightly = false are never scheduled)\nfix: use device names, globs such as \"line1-*\", or \"tag:NAME\""
                    );
                }
            }
            schedules.push(Schedule {
                name,
                expr: sc.cron.get_ref().clone(),
                cron,
                action,
                devices: selectors,
            });
        }
        let duration =
            |v: &Option<Spanned<String>>, key: &str, default: Duration| -> Result<Duration> {
                match v {
                    None => Ok(default),
                    Some(d) => loc.duration(
                        d,
                        &format!("[report] key `{key}`"),
                        Duration::from_millis(1),
                        10 * YEAR,
                    ),
                }
            };
        let report = ReportConfig {
            backup_max_age: duration(
                &raw.report.backup_max_age,
                "backup-max-age",
                Duration::from_secs(26 * 3600),
            )?,
            drill_max_age: duration(
                &raw.report.drill_max_age,
                "drill-max-age",
                Duration::from_secs(90 * 86400),
            )?,
            offline_max_age: duration(
                &raw.report.offline_max_age,
                "offline-max-age",
                Duration::from_secs(7 * 86400),
            )?,
            offline_asked: raw.report.offline_max_age.is_some(),
        };
        let retention = {
            let r = &raw.retention;
            let keep = |v: &Option<Spanned<u32>>, key: &str| -> Result<Option<u32>> {
                match v {
                    Some(n) if *n.get_ref() > 100_000 => {
                        bail!("{}: [retention] key `{key}`: at most 100000", loc.at(n))
                    }
                    v => Ok(v.as_ref().map(|n| *n.get_ref())),
                }
            };
            let policy = Policy {
                keep_last: keep(&r.keep_last, "keep-last")?,
                keep_daily: keep(&r.keep_daily, "keep-daily")?,
                keep_weekly: keep(&r.keep_weekly, "keep-weekly")?,
                keep_monthly: keep(&r.keep_monthly, "keep-monthly")?,
                keep_yearly: keep(&r.keep_yearly, "keep-yearly")?,
                keep_approved: keep(&r.keep_approved, "keep-approved")?.unwrap_or(2),
            };
            let mut per_device = BTreeMap::new();
            for (name, p) in &r.device {
                if !devices.iter().any(|d| &d.name == name) {
                    bail!(
                        "{}: [retention.device.{name}]: no [[device]] is named `{name}`\nfix: use a configured device's name",
                        path.display()
                    );
                }
                let or = |v: &Option<Spanned<u32>>, base: Option<u32>, key: &str| {
                    Ok::<_, anyhow::Error>(keep(v, key)?.or(base))
                };
                per_device.insert(
                    name.clone(),
                    Policy {
                        keep_last: or(&p.keep_last, policy.keep_last, "keep-last")?,
                        keep_daily: or(&p.keep_daily, policy.keep_daily, "keep-daily")?,
                        keep_weekly: or(&p.keep_weekly, policy.keep_weekly, "keep-weekly")?,
                        keep_monthly: or(&p.keep_monthly, policy.keep_monthly, "keep-monthly")?,
                        keep_yearly: or(&p.keep_yearly, policy.keep_yearly, "keep-yearly")?,
                        keep_approved: or(
                            &p.keep_approved,
                            Some(policy.keep_approved),
                            "keep-approved",
                        )?
                        .unwrap_or(2),
                    },
                );
            }
            let grace = match &r.grace {
                None => Duration::from_secs(86400),
                Some(g) => loc.duration(g, "[retention] key `grace`", Duration::ZERO, 10 * YEAR)?,
            };
            let max_unused = match &r.max_unused {
                None => 0.05,
                Some(m) => parse_share(m.get_ref())
                    .map_err(|e| anyhow!("{}: [retention] key `max-unused`: {e}", loc.at(m)))?,
            };
            RetentionConfig {
                policy,
                devices: per_device,
                grace,
                max_unused,
            }
        };
        let mut remotes: Vec<RemoteConfig> = Vec::new();
        for r in &raw.remote {
            let name = r.name.get_ref().clone();
            if remotes.iter().any(|x| x.name == name) || name.is_empty() {
                bail!(
                    "{}: [[remote]] name `{name}` is empty or used twice",
                    loc.at(&r.name)
                );
            }
            let url = r.url.get_ref();
            let Some(rest) = url.strip_prefix("s3://") else {
                bail!(
                    "{}: [[remote]] `{name}` key `url`: `{url}` is not an s3:// URL\nfix: write it like \"s3://bucket/site-a\"",
                    loc.at(&r.url)
                );
            };
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            if bucket.is_empty()
                || prefix.split('/').any(|c| c == "." || c == "..")
                || url.chars().any(char::is_control)
            {
                bail!(
                    "{}: [[remote]] `{name}` key `url`: `{url}` names no bucket, or a prefix with `.` or `..`",
                    loc.at(&r.url)
                );
            }
            let endpoint = match &r.endpoint {
                Some(e)
                    if !(e.get_ref().starts_with("http://")
                        || e.get_ref().starts_with("https://")) =>
                {
                    bail!(
                        "{}: [[remote]] `{name}` key `endpoint`: `{}` is not an http:// or https:// URL",
                        loc.at(e),
                        e.get_ref()
                    )
                }
                e => e
                    .as_ref()
                    .map(|e| e.get_ref().trim_end_matches('/').to_string()),
            };
            remotes.push(RemoteConfig {
                name,
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                endpoint,
                region: r
                    .region
                    .as_ref()
                    .map_or("us-east-1".to_string(), |r| r.get_ref().clone()),
                credentials: r.credentials.as_ref().map(|c| resolve(c.get_ref())),
                read_back: match r.read_back.as_ref().map(|v| v.get_ref().as_str()) {
                    None | Some("full") => ReadBack::Full,
                    Some("etag") => ReadBack::Etag,
                    Some("signed") => ReadBack::Signed,
                    Some(other) => bail!(
                        "{}: [[remote]] key `read-back`: `{other}` is not \"full\", \"etag\" or \"signed\"",
                        loc.at(r.read_back.as_ref().expect("matched"))
                    ),
                },
            });
        }
        let serve = {
            let r = &raw.serve;
            let listen = match &r.listen {
                None => SERVE_LISTEN.parse().expect("a socket address"),
                Some(l) => l.get_ref().parse().map_err(|_| {
                    anyhow::anyhow!(
                        "{}: [serve] key `listen`: `{}` is not an address and port\nfix: write listen = \"127.0.0.1:8420\"",
                        loc.at(l),
                        l.get_ref()
                    )
                })?,
            };
            let tls = match (&r.tls_certificate, &r.tls_key) {
                (Some(c), Some(k)) => Some((resolve(c.get_ref()), resolve(k.get_ref()))),
                (None, None) => None,
                (Some(c), None) | (None, Some(c)) => bail!(
                    "{}: [serve] needs both `tls-certificate` and `tls-key`\nfix: give the certificate chain and its private key (PEM files)",
                    loc.at(c)
                ),
            };
            let mut tokens = Vec::new();
            for t in r
                .tokens
                .as_ref()
                .map(|t| t.get_ref().as_slice())
                .unwrap_or_default()
            {
                let h = t
                    .strip_prefix("sha256:")
                    .and_then(vault::hash::unhex)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                match h {
                    Some(h) => tokens.push(h),
                    None => bail!(
                        "{}: [serve] key `tokens`: `{}` is not sha256: and 64 hex digits (the hash of a token, never the token)\nfix: make one with `plcvault serve token` and paste the line it prints; if this was a token itself, make a new one (it has been in the config)",
                        loc.at(r.tokens.as_ref().expect("given")),
                        // Never echoed whole: it may be a token pasted by mistake.
                        if t.starts_with("sha256:") {
                            t.clone()
                        } else {
                            format!(
                                "{}… ({} characters)",
                                t.chars().take(4).collect::<String>(),
                                t.chars().count()
                            )
                        }
                    ),
                }
            }
            let client_ca = match &r.client_ca {
                None => None,
                Some(c) if tls.is_none() => bail!(
                    "{}: [serve] key `client-ca` needs TLS\nfix: set tls-certificate and tls-key too",
                    loc.at(c)
                ),
                Some(c) => Some(resolve(c.get_ref())),
            };
            let client_crl = match &r.client_crl {
                None => None,
                Some(c) if client_ca.is_none() => bail!(
                    "{}: [serve] key `client-crl` needs `client-ca`: it revokes that CA's client certificates\nfix: set client-ca too, or remove client-crl",
                    loc.at(c)
                ),
                Some(c) => Some(resolve(c.get_ref())),
            };
            ServeConfig {
                listen,
                tls,
                tokens,
                client_ca,
                client_crl,
            }
        };
        Ok(Config {
            serve,
            file: path.to_owned(),
            vault: vault_cfg,
            trust: Trust::new(keys),
            devices,
            threads,
            max_devices,
            schedules,
            zone,
            report,
            retention,
            remotes,
            site: raw
                .site
                .name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| {
                    path.parent()
                        .and_then(|p| p.file_name())
                        .map_or("site".into(), |n| n.to_string_lossy().into_owned())
                }),
        })
    }

    /// The signing key named by `[vault] key`.
    ///
    /// Fails when the config names none or the key cannot be loaded.
    /// A `[vault] key` that cannot be loaded, said at its line with what to do.
    pub fn key_error(&self, path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow!(
            "{}: [vault] key: {e}\nfix: check the path (relative paths start at the config's folder), or make this host's key with `plcvault keygen --out {}` and trust its .pub file as a collector",
            self.vault.key_at,
            path.display()
        )
    }

    pub fn signing_key(&self) -> Result<vault::SecretKey> {
        let Some(path) = &self.vault.key else {
            bail!(
                "{}: [vault] has no `key`; collecting needs this host's signing key\nfix: run `plcvault keygen --out keys/collector.key`, then set key = \"keys/collector.key\" and trust its .pub file as a collector",
                self.file.display()
            );
        };
        let key = vault::SecretKey::load(path).map_err(|e| self.key_error(path, e))?;
        if self.trust.lookup(&key.public()).is_none() {
            crate::output::to_stderr(&format!(
                "warning: the signing key {} is not in the config's [[trust]] list; verify will report its entries as unknown-signer\n",
                path.display()
            ));
        }
        Ok(key)
    }

    /// An approver's signing key and the name `[[trust]]` gives it.
    ///
    /// Fails when the key cannot be loaded, is not trusted, or is not trusted as approver.
    pub fn approver_key(&self, key_path: &Path) -> Result<(vault::SecretKey, String)> {
        let key = vault::SecretKey::load(key_path)?;
        let (name, roles) = self.trust.lookup(&key.public()).with_context(|| {
            format!(
                "the key {} (fingerprint {}) is not in the config's [[trust]] list\nfix: add its .pub file as a [[trust]] entry with role = \"approver\"",
                key_path.display(),
                key.public().fingerprint()
            )
        })?;
        if !roles.contains(&vault::Role::Approver) {
            bail!(
                "the key {} is trusted as `{name}` with role {}, not approver; a collector key cannot approve\nfix: sign with the approver's own key (plcvault keygen --out approver.key, trusted with role = \"approver\")",
                key_path.display(),
                roles
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let name = name.to_string();
        Ok((key, name))
    }

    /// Opens the vault for reading; a missing vault that the verifier state remembers is
    /// named as such (lost, not "not yet created").
    ///
    /// Fails when there is no vault, or it cannot be opened.
    /// The vault's checked log, from this host's catalog of it (in the state folder) and
    /// the entries since: what commands read instead of every entry.
    ///
    /// Fails when the log cannot be read.
    pub fn history(&self, vault: &vault::Vault) -> Result<vault::History> {
        Ok(vault::catalog::open(
            vault,
            &self.trust,
            Some(&self.vault.state),
        )?)
    }

    /// Verifies the vault, every entry and manifest again (`full`) or as plain `verify`
    /// does (from this host's memory), and refuses to go on when it finds anything:
    /// `refusing` says what is refused ("copy"), `because` why an intact vault is needed.
    ///
    /// Fails when the vault does not verify or cannot be read.
    pub fn require_intact(
        &self,
        vault: &vault::Vault,
        full: bool,
        (refusing, because): (&str, &str),
    ) -> Result<()> {
        let check = vault::verify(
            vault,
            &self.trust,
            &vault::VerifyOptions {
                state_dir: (!full).then(|| self.vault.state.clone()),
                update_state: false,
                threads: self.threads,
                ..Default::default()
            },
        )?;
        if let Some(first) = check.findings.first() {
            anyhow::bail!(
                "refusing to {refusing}: verify finds {} problem(s), first: {first}\nfix: run `plcvault verify` and repair the vault first; {because}",
                check.findings.len()
            );
        }
        Ok(())
    }

    pub fn vault_for_reading(&self) -> Result<vault::Vault> {
        match vault::Vault::open(&self.vault.path) {
            Err(vault::VaultError::NotAVault { path }) => {
                if let Some((id, mem)) = vault::state::remembered(&self.vault.state)?
                    .into_iter()
                    .next()
                {
                    return Err(vault::VaultError::RememberedVaultMissing {
                        path,
                        id,
                        seq: mem.seq,
                        seen: mem.seen,
                    }
                    .into());
                }
                if vault::state::remembers_any(&self.vault.state) {
                    return Err(vault::VaultError::RememberedVaultMissing {
                        path,
                        id: "(its memory is damaged)".into(),
                        seq: 0,
                        seen: "?".into(),
                    }
                    .into());
                }
                Err(vault::VaultError::NotAVault { path }.into())
            }
            // Readers hold the writers' lock shared too, so that a prune never deletes
            // a pack a verify or restore is reading (on a read-only mount of a writable
            // vault too, through a read-only descriptor). A vault read-only here without
            // a lock file is read without it, saying so: it may be media no prune runs
            // on, or a read-only mount of a vault a prune runs on elsewhere. Any other
            // failure to take the lock (a lock file that is not a file) is an error.
            Ok(v) => match v.clone().hold(vault::Hold::Shared) {
                Ok(held) => Ok(held),
                Err(vault::VaultError::Io { error, path, .. })
                    if error.kind() == std::io::ErrorKind::NotFound =>
                {
                    eprintln!(
                        "warning: {} is missing and cannot be made here (read-only): reading without the vault's lock, so a prune on a writable mount of this vault could remove what is read\nfix: run any plcvault command where the vault is writable once (it makes the lock file)",
                        path.display()
                    );
                    Ok(v)
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Why what a reader sees may not be the whole history: the log does not extend the
    /// head the verifier state remembers (rolled back, cut, rewritten, replaced). `None`
    /// when it does. Readers warn with it instead of quietly using older entries.
    pub fn head_doubt(&self, vault: &vault::Vault) -> Option<String> {
        vault::guard::check(&vault.clone().remembering(&self.vault.state))
            .err()
            .map(|e| {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                first
                    .strip_prefix("refusing to write: ")
                    .unwrap_or(first)
                    .to_string()
            })
    }

    /// The vault opened for appending, guarded by the verifier state, and checked before
    /// anything runs: the state folder must be writable (so that no entry is committed
    /// whose head cannot be remembered), and a log that was rolled back, cut, rewritten or
    /// replaced is refused (the same check runs again before every append). With `create`,
    /// a missing vault is created — unless the state remembers one, which then was lost.
    ///
    /// Fails when the vault cannot be opened (or created), the state folder cannot be
    /// written, or the log does not extend the remembered head.
    pub fn vault_for_writing(&self, create: bool) -> Result<vault::Vault> {
        vault::state::check_writable(&self.vault.state)?;
        let v = if create {
            vault::guard::open_for_append(&self.vault.path, &self.vault.state)?
        } else {
            vault::Vault::open(&self.vault.path)?.remembering(&self.vault.state)
        };
        let v = v.hold(vault::Hold::Shared)?;
        vault::guard::check(&v)?;
        Ok(v)
    }

    /// The device name a command about stored snapshots means: a plain name as given (it
    /// may be a device no longer in the config), a glob or `tag:NAME` resolved through the
    /// config to exactly one device.
    ///
    /// Fails when a glob or tag selects no device or several.
    pub fn stored_device(&self, arg: &str) -> Result<String> {
        if arg.starts_with("tag:") || arg.contains(['*', '?', '[']) {
            Ok(self.one(arg)?.name.clone())
        } else {
            Ok(arg.to_string())
        }
    }

    /// Snapshot `id` (an id prefix; `None` or `latest`: the newest) of `device`, with an
    /// error that tells a typo from a device never collected.
    ///
    /// Fails when the log holds no such snapshot.
    pub fn find_snapshot(
        &self,
        history: &vault::History,
        device: &str,
        id: Option<&str>,
    ) -> Result<vault::SnapshotRecord> {
        match history.find_snapshot(Some(device), id) {
            Ok(s) => Ok(s),
            Err(_) if history.device(device).is_none_or(|d| d.snapshots == 0) => {
                if !self.devices.iter().any(|d| d.name == device) {
                    return Err(self.unknown_device(&[device]));
                }
                // Never tried, or tried and failed: say which, with the last failure.
                let failed = history
                    .device(device)
                    .and_then(|d| d.last_failure.clone())
                    .map(|f| (f.time, f.error));
                Err(anyhow::Error::new(NoSnapshot(match failed {
                    Some((time, error)) => format!(
                        "`{device}` has no snapshot: its collections failed, the last at {time}: {error}\nfix: make `plcvault collect {device}` succeed first"
                    ),
                    None => format!(
                        "`{device}` has never been collected: the vault holds no snapshot of it\nfix: run `plcvault collect {device}` first"
                    ),
                })))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every tag of the config's devices, sorted, once each.
    pub fn tags(&self) -> Vec<&str> {
        let mut tags: Vec<&str> = self
            .devices
            .iter()
            .flat_map(|d| d.tags.iter().map(String::as_str))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        tags
    }

    /// The error for device names that are neither in the config nor in the log: a typo,
    /// not a device without backups.
    pub fn unknown_device(&self, names: &[&str]) -> anyhow::Error {
        anyhow!(
            "no device `{}` in {} and none in the log\nfix: use one of: {}",
            names.join("`, `"),
            self.file.display(),
            self.devices
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// The one device a command about a single device names (a selector that selects more
    /// than one is refused, never narrowed to the first).
    ///
    /// Fails when the selector selects no device or several.
    pub fn one(&self, selector: &str) -> Result<&DeviceConfig> {
        let found = self.select(&[selector.to_string()], false)?;
        match found.as_slice() {
            [d] => Ok(d),
            many => bail!(
                "`{selector}` selects {} devices ({}); this command takes one\nfix: name the device",
                many.len(),
                many.iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Devices named on the command line (names, globs or `tag:NAME`, as in schedules),
    /// or all with `--all`.
    ///
    /// Fails when a selector selects no device, or when neither names nor `--all` are given.
    pub fn select(&self, names: &[String], all: bool) -> Result<Vec<&DeviceConfig>> {
        if all {
            return Ok(self.devices.iter().filter(|d| d.nightly).collect());
        }
        if names.is_empty() {
            bail!("name the devices (names, globs or tag:NAME), or pass --all");
        }
        let mut out: Vec<&DeviceConfig> = Vec::new();
        for n in names {
            let found: Vec<&DeviceConfig> = self
                .devices
                .iter()
                .filter(|d| selects(n, &d.name, &d.tags))
                .collect();
            if found.is_empty() && self.devices.is_empty() {
                bail!(
                    "{} has no devices yet\nfix: add a [[device]] table (see config.example.toml)",
                    self.file.display()
                );
            }
            if let Some(tag) = n.strip_prefix("tag:")
                && found.is_empty()
            {
                let tags = self.tags();
                bail!(
                    "no device in {} has the tag `{tag}`\nfix: {}",
                    self.file.display(),
                    if tags.is_empty() {
                        "no device has tags yet; add tags = [\"NAME\"] to a [[device]]".to_string()
                    } else {
                        format!("tags in use: {}", tags.join(", "))
                    }
                );
            }
            if found.is_empty() {
                return Err(anyhow!(
                    "no device `{n}` in {}\nfix: use one of: {} (or a glob such as \"line1-*\", or tag:NAME)",
                    self.file.display(),
                    self.devices
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for d in found {
                if !out.iter().any(|o| o.name == d.name) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(dir: &Path) {
        let k = vault::SecretKey::generate().unwrap();
        k.write_pair(&dir.join("keys/collector.key"), "test")
            .unwrap();
    }

    fn parse(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        write_key(dir.path());
        let path = dir.path().join("plcvault.toml");
        Config::parse(&path, text)
    }

    const GOOD: &str = r#"
[vault]
path = "vault"
key = "keys/collector.key"

[[trust]]
name = "collector"
role = "collector"
public-key = "keys/collector.key.pub"

[[device]]
name = "line1"
adapter = "files"
path = "/srv/eng/line1"
exclude = ["**/*.tmp"]
"#;

    #[test]
    fn good_config_resolves_paths_and_defaults() {
        let c = parse(GOOD).unwrap();
        assert!(c.vault.path.ends_with("vault") && c.vault.path.is_absolute());
        assert!(c.vault.state.ends_with("state"));
        assert_eq!(c.vault.stale_after, Some(Duration::from_secs(26 * 3600)));
        assert_eq!(c.trust.keys.len(), 1);
        let d = &c.devices[0];
        assert_eq!(d.adapter_name(), "files");
        assert_eq!(d.adapter.collector.source(), "/srv/eng/line1");
        assert!(!d.writable());
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = GOOD.replace("exclude =", "exclud =");
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("plcvault.toml:15:") && err.contains("exclud"),
            "{err}"
        );
    }

    #[test]
    fn bad_role_and_duration_and_missing_path_name_their_lines() {
        let err = parse(&GOOD.replace("role = \"collector\"", "role = \"boss\"")).unwrap_err();
        assert!(
            err.to_string().contains(":8:") && err.to_string().contains("role"),
            "{err}"
        );
        let err = parse(&GOOD.replace(
            "key = \"keys/collector.key\"",
            "key = \"k\"\nstale-after = \"soon\"",
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("stale-after") && err.to_string().contains(":5:"),
            "{err}"
        );
        let err = parse(&GOOD.replace("path = \"/srv/eng/line1\"\n", "")).unwrap_err();
        assert!(
            err.to_string().contains("needs key `path`") && err.to_string().contains(":12:"),
            "{err}"
        );
    }

    #[test]
    fn state_inside_the_vault_is_refused() {
        let err = parse(&GOOD.replace(
            "key = \"keys/collector.key\"",
            "key = \"keys/collector.key\"\nstate = \"vault/./state\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("inside the vault") && err.contains(":5:"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_device_and_bad_glob_are_refused() {
        let dup =
            format!("{GOOD}\n[[device]]\nname = \"line1\"\nadapter = \"files\"\npath = \"x\"\n");
        assert!(parse(&dup).unwrap_err().to_string().contains("used twice"));
        let err = parse(&GOOD.replace("**/*.tmp", "["))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":15:") && err.contains("exclude"), "{err}");
    }

    #[test]
    fn missing_public_key_file_is_named() {
        let err = parse(&GOOD.replace("collector.key.pub", "nope.pub"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":9:") && err.contains("nope.pub"), "{err}");
    }

    #[test]
    fn the_shipped_example_config_parses() {
        let text = include_str!("../../config.example.toml");
        let dir = tempfile::tempdir().unwrap();
        write_key(dir.path());
        vault::SecretKey::generate()
            .unwrap()
            .write_pair(&dir.path().join("keys/alice.key"), "")
            .unwrap();
        let c = Config::parse(&dir.path().join("plcvault.toml"), text).unwrap();
        assert!(!c.devices.is_empty());
    }
}
