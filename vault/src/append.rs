//! Appending to the log: the entry linked into `log/` (the commit point), then the Merkle
//! tree's tiles and signed checkpoint brought up to it. Above both `log` (the entry
//! format) and `tiles` (the tree), so that neither depends on the other.

use std::path::Path;
use std::time::SystemTime;

use crate::atomic;
use crate::error::{VaultError, io_err};
use crate::hash::Hash;
use crate::key::SecretKey;
use crate::log::{ENTRY_VERSION, Entry, Event, Header, Reader, encode, entry_path, newest, parse};

/// Appends without consulting the verifier state: for tests, and for a `recovery` entry,
/// which is what makes a log that does not extend the memory writable again.
///
/// Fails on I/O errors, or with `Contended` after many lost races.
pub fn append_unguarded(
    root: &Path,
    vault_id: &str,
    key: &SecretKey,
    event: &Event,
) -> Result<Entry, VaultError> {
    const ATTEMPTS: u32 = 50;
    let tmp = root.join("tmp");
    for _ in 0..ATTEMPTS {
        let (seq, prev) = match newest(root)? {
            0 => (1, None),
            last => {
                let (bytes, _, path) = Reader::new(root).read(last)?;
                if bytes.is_empty() {
                    return Err(crate::error::corrupt(
                        &path,
                        format!("entry {last}, the newest, cannot be read: run `plcvault verify`"),
                    ));
                }
                (last + 1, Some(Hash::of(&bytes)))
            }
        };
        let header = Header {
            v: ENTRY_VERSION,
            vault: vault_id.to_string(),
            seq,
            prev,
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            signer: key.public(),
        };
        let bytes = encode(&header, event, key);
        let path = entry_path(root, seq);
        if atomic::write_exclusive(&tmp, &path, &bytes).map_err(io_err("append", &path))? {
            // The entry is committed; the tree's tiles and signed checkpoint follow it.
            // They are derived: when this fails, verify says so and the next append
            // catches up.
            let _ = crate::tiles::sync(root, vault_id, key, seq);
            return parse(seq, &path, &bytes).map_err(|why| crate::error::corrupt(&path, why));
        }
    }
    Err(VaultError::Contended(ATTEMPTS))
}
