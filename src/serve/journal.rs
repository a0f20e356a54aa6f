//! What `serve` tells the journal (standard error) about what it refuses, bounded so that a
//! flood does not become one: journald drops a service's lines past its own rate limit,
//! real ones with them. Each window of 10 s tells `TOLD_PER_WINDOW` refusals of each class
//! one by one and counts the rest by address and reason; a credential that was presented
//! and refused has a budget of its own, so that noise cannot push it out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Refusals of one class told one by one in a window; the rest are counted.
const TOLD_PER_WINDOW: u32 = 20;
/// How long a window lasts.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Addresses and reasons a window's count keeps apart; beyond, they are summed as others.
const KEPT_APART: usize = 1024;
/// How many of them the count line names, most first.
const NAMED: usize = 10;

/// Which budget a refusal draws on.
#[derive(Clone, Copy)]
pub enum Class {
    /// Whatever came without a credential: another name, a method, a bare connection.
    Noise = 0,
    /// A credential presented and refused: a wrong token, a refused certificate.
    Credential = 1,
}

struct Window {
    since: Instant,
    began: SystemTime,
    told: [u32; 2],
    /// Per class, so that noise can neither outrank nor crowd out a refused credential.
    untold: [HashMap<(Option<IpAddr>, String), u64>; 2],
}

impl Window {
    fn new() -> Window {
        Window {
            since: Instant::now(),
            began: SystemTime::now(),
            told: [0; 2],
            untold: [HashMap::new(), HashMap::new()],
        }
    }

    /// Says what went untold.
    fn tell_untold(&mut self) {
        for line in self.untold_lines() {
            eprintln!("{line}");
        }
    }

    /// What went untold, a line per class (refused credentials first), by address and
    /// reason, most first; the counts are emptied.
    fn untold_lines(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let secs = self.since.elapsed().as_secs().clamp(1, WINDOW.as_secs());
        for (class, what) in [
            (Class::Credential, "refused credential(s)"),
            (Class::Noise, "refusal(s)"),
        ] {
            let untold = &mut self.untold[class as usize];
            if untold.is_empty() {
                continue;
            }
            let total: u64 = untold.values().sum();
            let mut counts: Vec<_> = untold.drain().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let mut named: Vec<String> = counts
                .iter()
                .take(NAMED)
                .map(|((ip, why), n)| {
                    let who = ip.map_or("other addresses".into(), |i| i.to_string());
                    format!("{who} ×{n} ({why})")
                })
                .collect();
            if counts.len() > NAMED {
                let rest: u64 = counts[NAMED..].iter().map(|c| c.1).sum();
                named.push(format!(
                    "{rest} more under {} other address and reason pair(s)",
                    counts.len() - NAMED
                ));
            }
            lines.push(format!(
                "serve: {total} more {what} in the {secs} s from {}, not told one by one: {}",
                humantime::format_rfc3339_seconds(self.began),
                named.join(", ")
            ));
        }
        lines
    }

    /// Whether a refusal is told one by one (its class has budget left), else counted.
    fn record(&mut self, class: Class, peer: Option<IpAddr>, why: &str) -> bool {
        let told = &mut self.told[class as usize];
        if *told < TOLD_PER_WINDOW {
            *told += 1;
            return true;
        }
        let untold = &mut self.untold[class as usize];
        let key = if untold.len() < KEPT_APART || untold.contains_key(&(peer, why.to_string())) {
            (peer, why.to_string())
        } else {
            (None, "various reasons".to_string())
        };
        *untold.entry(key).or_insert(0) += 1;
        false
    }
}

static CURRENT: Mutex<Option<Window>> = Mutex::new(None);

/// Tells a refusal from `peer`, or counts it under `why` when its class has told enough in
/// this window.
pub fn refused(class: Class, peer: Option<IpAddr>, why: &str, line: std::fmt::Arguments) {
    let mut w = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let w = w.get_or_insert_with(Window::new);
    if w.since.elapsed() >= WINDOW {
        w.tell_untold();
        *w = Window::new();
    }
    if w.record(class, peer, why) {
        eprintln!("{line}");
    }
}

/// Ends the window if it is over (the accept loop calls it every second), or now when
/// `stopping`, so that no count is lost.
pub fn roll(stopping: bool) {
    let mut w = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = w.as_mut()
        && (stopping || w.since.elapsed() >= WINDOW)
    {
        w.tell_untold();
        *w = Window::new();
    }
}

/// Tells `line` past the budgets, at most once every `every` for each `key`: for what
/// locks everybody out and must never be counted away.
pub fn always(key: &'static str, every: Duration, line: std::fmt::Arguments) {
    static LAST: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    match last.iter_mut().find(|(k, _)| *k == key) {
        Some((_, at)) if at.elapsed() < every => return,
        Some((_, at)) => *at = Instant::now(),
        None => last.push((key, Instant::now())),
    }
    eprintln!("{line}");
}

/// Connections closed at once over a cap, told at most every `WINDOW` as a count.
#[derive(Default)]
pub struct OverCap {
    since: Option<Instant>,
    untold: u64,
    latest: String,
}

impl OverCap {
    pub fn closed(&mut self, peer: SocketAddr, what: &str, cap: usize) {
        self.untold += 1;
        self.latest = format!("the latest from {peer}: over the cap of {cap} {what}");
        self.tick(false);
    }

    /// Says what is untold once a window has passed since the last telling, or now when
    /// `stopping`.
    pub fn tick(&mut self, stopping: bool) {
        if self.untold > 0 && (stopping || self.since.is_none_or(|t| t.elapsed() >= WINDOW)) {
            eprintln!(
                "serve: closed {} connection(s) at once, {}",
                self.untold, self.latest
            );
            self.since = Some(Instant::now());
            self.untold = 0;
        }
    }
}

/// How a failed TLS handshake is told: its class, a short reason to count it by, and
/// whether it failed on a revocation list past its next update.
pub fn handshake_failure(e: &std::io::Error) -> (Class, String, bool) {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            let expired_list = matches!(
                c,
                rustls::CertificateError::ExpiredRevocationList
                    | rustls::CertificateError::ExpiredRevocationListContext { .. }
            );
            let name: String = format!("{c:?}")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            (
                Class::Credential,
                format!("TLS certificate {name}"),
                expired_list,
            )
        }
        Some(rustls::Error::NoCertificatesPresented) => {
            (Class::Noise, "TLS no certificate".into(), false)
        }
        // Sent by the client: whatever it names, nothing here refused a certificate.
        Some(rustls::Error::AlertReceived(a)) => (
            Class::Noise,
            format!("TLS alert sent by the client: {a:?}"),
            false,
        ),
        _ => {
            let text = e.to_string();
            let short: String = text
                .split(['(', ':'])
                .next()
                .unwrap_or("")
                .chars()
                .take(40)
                .collect();
            (Class::Noise, format!("TLS {}", short.trim()), false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn noise_neither_outranks_nor_crowds_out_a_refused_credential() {
        let mut w = Window::new();
        // The budget of each class spent by one address, then a flood of noise from more
        // addresses than are kept apart, then a real guesser's 30 tries.
        for _ in 0..TOLD_PER_WINDOW {
            assert!(w.record(Class::Credential, ip(77), "401 a token that matches none"));
            assert!(w.record(Class::Noise, ip(77), "421"));
        }
        for i in 0..(KEPT_APART + 200) {
            let peer = Some(IpAddr::from([127, 1, (i / 256) as u8, (i % 256) as u8]));
            assert!(!w.record(Class::Noise, peer, "401 no token"));
        }
        for _ in 0..30 {
            assert!(!w.record(Class::Credential, ip(50), "401 a token that matches none"));
        }
        let lines = w.untold_lines();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].starts_with("serve: 30 more refused credential(s) in the ")
                && lines[0].ends_with("127.0.0.50 ×30 (401 a token that matches none)"),
            "{lines:#?}"
        );
        // The noise: every refusal counted, the addresses past those kept apart summed.
        assert!(
            lines[1].starts_with(&format!("serve: {} more refusal(s)", KEPT_APART + 200)),
            "{lines:#?}"
        );
        assert!(
            lines[1].contains("other addresses ×200 (various reasons)"),
            "{lines:#?}"
        );
        assert!(lines[1].len() < 1000, "{}", lines[1].len());
        // Emptied: nothing is told twice.
        assert!(w.untold_lines().is_empty());
    }
}
