//! A device as its adapter built it from the config, and the permission to write to it.

use std::fmt;
use std::sync::Arc;

use crate::{ArtifactKind, Collector, Writer};

/// A device as its adapter built it from the config.
#[derive(Clone)]
pub struct Device {
    pub collector: Arc<dyn Collector>,
    /// Writes a snapshot back (restores and drills onto a device), where the adapter can.
    pub writer: Option<Arc<dyn Writer>>,
    /// Present only when the config says `writable = true` for this device.
    pub permit: Option<WritePermit>,
    /// The artifact kinds the config assigned (glob or artifact name → kind, first match
    /// wins), bound to approvals with the comparison rules.
    pub kinds: Vec<(String, ArtifactKind)>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("adapter", &self.collector.adapter())
            .field("source", &self.collector.source())
            .field("writable", &self.permit.is_some())
            .finish()
    }
}

/// Permission to write to one device. Only an adapter's settings create it, and only from
/// `writable = true` in the device's config: no caller can pass a `true` instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritePermit {
    device: String,
}

impl WritePermit {
    pub(crate) fn granted_by_config(device: &str) -> WritePermit {
        WritePermit {
            device: device.to_string(),
        }
    }

    /// The device it was granted for.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// Fails unless the permit was granted for `device`.
    pub fn check(&self, device: &str) -> Result<(), crate::AdapterError> {
        if self.device == device {
            return Ok(());
        }
        Err(crate::AdapterError::Config {
            device: device.to_string(),
            key: "writable".into(),
            why: format!("the write permit is for `{}`", self.device),
        })
    }
}
