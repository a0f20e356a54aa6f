//! Operations: everything that reads devices or writes the vault on a schedule or on
//! request — collect, restore drills, the daemon, live reads, recovery, the small commands,
//! the demo and the simulator. Imports `review` and `config`, never the CLI.

pub mod browse;
pub mod collect;
pub mod commands;
pub mod demo;
pub mod device;
pub mod dist;
pub mod drill;
pub mod recover;
pub mod remote;
pub mod retain;
pub mod schedule;
pub mod sim;
