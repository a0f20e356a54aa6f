//! The comparison rules a device's config proposes and an approval records: classes of
//! change, their severities, volatile ranges and globs, the shrink limit, the kinds. Plain
//! data and their grammar, so that the config depends on nothing of the application; the
//! comparison itself is in `review::diff`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use vault::ArtifactKind;

/// What kind of change a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Logic,
    Config,
    Recipe,
    Values,
    Identity,
    Metadata,
    Suspect,
    /// A comment or description in a project export.
    Comment,
    /// What every export or edit changes without changing what runs (timestamps,
    /// export options, editor names): listed, never hidden.
    Cosmetic,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Logic,
        Class::Config,
        Class::Recipe,
        Class::Values,
        Class::Identity,
        Class::Metadata,
        Class::Suspect,
        Class::Comment,
        Class::Cosmetic,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Logic => "logic",
            Class::Config => "config",
            Class::Recipe => "recipe",
            Class::Values => "values",
            Class::Identity => "identity",
            Class::Metadata => "metadata",
            Class::Suspect => "suspect",
            Class::Comment => "comment",
            Class::Cosmetic => "cosmetic",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class of a change to an artifact of `kind`.
    pub fn of(kind: ArtifactKind) -> Class {
        match kind {
            ArtifactKind::Logic | ArtifactKind::Image => Class::Logic,
            ArtifactKind::Config | ArtifactKind::Other => Class::Config,
            ArtifactKind::Recipe => Class::Recipe,
            ArtifactKind::Values => Class::Values,
            ArtifactKind::Identity => Class::Identity,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The comparison rules of a device. Recorded in an approval; diff applies the approved
/// ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rules {
    /// Register ranges `TABLE:START-END` or `TABLE:*`, and file globs, whose changes are
    /// expected in normal operation.
    pub volatile: Vec<String>,
    /// An artifact that shrinks by more than this share is suspect.
    pub shrink_limit: f64,
    pub severity: BTreeMap<Class, Severity>,
    /// The artifact kinds the config assigned (a files device's `[[device.kind]]` globs, a
    /// Modbus device's range kinds), first match wins. Bound to the approval, so that a
    /// config edit cannot lower the class of a change. Absent in approvals before it.
    #[serde(default)]
    pub kinds: Vec<(String, ArtifactKind)>,
    /// The version of the per-format lists of cosmetic differences (export dates,
    /// `ProductVersion`, …) the structured diffs apply: which differences are called
    /// cosmetic is part of what an approval signs. Empty in approvals made before the
    /// lists existed.
    #[serde(default)]
    pub cosmetic_list: String,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            volatile: Vec::new(),
            kinds: Vec::new(),
            cosmetic_list: COSMETIC_LIST.to_string(),
            shrink_limit: 0.5,
            severity: Class::ALL
                .into_iter()
                .map(|c| (c, default_severity(c)))
                .collect(),
        }
    }
}

impl Rules {
    /// What changes from `old` to these rules, one phrase each, and whether any of it
    /// lets a change pass more quietly (a new volatile rule, a lower severity, a higher
    /// shrink limit, a changed kind).
    pub fn changes_from(&self, old: &Rules) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let mut weaker = false;
        for v in &self.volatile {
            if !old.volatile.contains(v) {
                out.push(format!("volatile + {v:?} (its changes no longer reported)"));
                weaker = true;
            }
        }
        for v in &old.volatile {
            if !self.volatile.contains(v) {
                out.push(format!("volatile - {v:?}"));
            }
        }
        if self.shrink_limit != old.shrink_limit {
            weaker |= self.shrink_limit > old.shrink_limit;
            out.push(format!(
                "shrink-limit {} -> {}",
                old.shrink_limit, self.shrink_limit
            ));
        }
        for c in Class::ALL {
            let (o, n) = (
                old.severity.get(&c).copied().unwrap_or(default_severity(c)),
                self.severity
                    .get(&c)
                    .copied()
                    .unwrap_or(default_severity(c)),
            );
            if o != n {
                weaker |= n < o;
                out.push(format!(
                    "severity of {} {} -> {}",
                    c.as_str(),
                    o.as_str(),
                    n.as_str()
                ));
            }
        }
        if self.cosmetic_list != old.cosmetic_list {
            // Another list may call more differences cosmetic (info): re-approve to accept.
            weaker = true;
            out.push(format!(
                "cosmetic list {} -> {} (which export differences are cosmetic; see the README)",
                if old.cosmetic_list.is_empty() {
                    "(none)"
                } else {
                    &old.cosmetic_list
                },
                self.cosmetic_list
            ));
        }
        if self.kinds != old.kinds {
            weaker = true;
            out.push("artifact kinds (the [[device.kind]] globs or range kinds) changed".into());
        }
        (out, weaker)
    }
}

/// The version of the per-format cosmetic lists this build applies (the README lists
/// them); raised whenever a list changes.
pub const COSMETIC_LIST: &str = "1";

/// Logic, identity and suspect changes are critical; values and metadata informational.
pub fn default_severity(c: Class) -> Severity {
    match c {
        Class::Logic | Class::Identity | Class::Suspect => Severity::Critical,
        Class::Config | Class::Recipe => Severity::Warning,
        Class::Values | Class::Metadata | Class::Comment | Class::Cosmetic => Severity::Info,
    }
}

/// A parsed volatile rule.
#[derive(Clone, Debug)]
pub enum Volatile {
    Registers {
        table: String,
        start: u32,
        end: u32,
    },
    Files(glob::Pattern),
    /// `tag:GLOB`: value changes of controller tags whose qualified name
    /// (`Counter`, `Program:MainProgram.StepNo`) matches.
    Tags(glob::Pattern),
    /// `node:GLOB`: value changes of OPC UA nodes whose browse path
    /// (`ns=2;s=Line/2:Counter`) matches.
    Nodes(glob::Pattern),
}

/// Parses a volatile rule; `Err` says why it is not one.
pub fn check_volatile(rule: &str) -> Result<(), String> {
    parse_volatile(rule).map(|_| ())
}

pub fn parse_volatile(rule: &str) -> Result<Volatile, String> {
    if let Some(g) = rule.strip_prefix("node:") {
        return glob::Pattern::new(g)
            .map(Volatile::Nodes)
            .map_err(|e| format!("`{rule}`: `{g}` is not a valid browse-path glob: {e}"));
    }
    if let Some(g) = rule.strip_prefix("tag:") {
        return glob::Pattern::new(g)
            .map(Volatile::Tags)
            .map_err(|e| format!("`{rule}`: `{g}` is not a valid tag glob: {e}"));
    }
    if let Some((table, range)) = rule.split_once(':')
        && ["holding", "input", "coils", "discrete"].contains(&table)
    {
        let (start, end) = if range == "*" {
            (0, 65535)
        } else {
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let a: u32 = a
                .parse()
                .map_err(|_| format!("`{rule}`: `{a}` is not an address"))?;
            let b: u32 = b
                .parse()
                .map_err(|_| format!("`{rule}`: `{b}` is not an address"))?;
            if a > b || b > 65535 {
                return Err(format!(
                    "`{rule}`: the range must run forwards within 0-65535"
                ));
            }
            (a, b)
        };
        return Ok(Volatile::Registers {
            table: table.to_string(),
            start,
            end,
        });
    }
    glob::Pattern::new(rule)
        .map(Volatile::Files)
        .map_err(|e| format!("`{rule}` is neither TABLE:START-END nor a valid glob: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_approval_under_another_cosmetic_list_is_a_weaker_rule_change() {
        let now = Rules::default();
        assert_eq!(now.changes_from(&Rules::default()), (vec![], false));
        // Signed before the lists existed: the field is absent.
        let mut before: serde_json::Value = serde_json::to_value(Rules::default()).unwrap();
        before.as_object_mut().unwrap().remove("cosmetic-list");
        let before: Rules = serde_json::from_value(before).unwrap();
        let (changes, weaker) = now.changes_from(&before);
        assert!(weaker);
        assert_eq!(
            changes,
            [format!(
                "cosmetic list (none) -> {COSMETIC_LIST} (which export differences are cosmetic; see the README)"
            )]
        );
    }
}
