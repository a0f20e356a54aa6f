//! Review: comparing snapshots with approved baselines and presenting what changed, in
//! the terminal, as JSON and as HTML; the fleet report and audit evidence. Reads the vault,
//! writes only approvals, evidence and reports; never touches a device. Imports `config`
//! and the shared `output`, never `ops`.

pub mod baseline;
pub mod diff;
pub mod evidence;
pub mod formats;
pub mod html;
pub mod report;
