//! The embedded demo plant (filled in below).
use std::path::Path;

use crate::output::{Out, Outcome};

pub fn run(_keep: Option<&Path>, _out: &Out) -> anyhow::Result<Outcome> {
    anyhow::bail!("demo not built yet")
}
