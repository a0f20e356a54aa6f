//! The `ftp` adapter (issue 10, in progress): HMIs, PLCs and panels that expose project,
//! recipe and log folders over FTP or explicit FTPS. This release has the read-only
//! protocol client (`client`); the collector, its settings and its registry line come
//! next, so `adapter = "ftp"` is not accepted yet.

pub mod client;
