//! plcvault's vault: a synchronous, offline store of signed, compressed, content-addressed
//! snapshots with a hash-chained log. No network, no async runtime.

pub mod atomic;
pub mod chunker;
pub mod hash;
pub mod key;

pub use hash::Hash;
