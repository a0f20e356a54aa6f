//! Ed25519 key files: generation, loading with a permission check, and trust roles.
//!
//! A secret key file holds `plcvault-ed25519-secret-v1 <64 hex digits of the seed>`; a
//! public key file holds `plcvault-ed25519-public-v1 <64 hex digits> [comment]`. Secret
//! bytes never appear in `Debug` output or error messages.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::hash::{hex, unhex};

const SECRET_TAG: &str = "plcvault-ed25519-secret-v1";
const PUBLIC_TAG: &str = "plcvault-ed25519-public-v1";

/// What can go wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write key file {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "private key {path} is readable by others (mode {mode:o})\n\
         fix: chmod 600 {path}, and consider the key leaked if others could read it"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "{path} is not a plcvault {what} key file: {why}\nfix: point the config at a file written by `plcvault keygen`"
    )]
    Format {
        path: PathBuf,
        what: &'static str,
        why: String,
    },
    #[error(
        "{path} already exists; refusing to overwrite a key\nfix: choose another --out or move the old key away first"
    )]
    Exists { path: PathBuf },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// A public key as 64 hex digits; how the log names a signer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PublicKey(#[serde(with = "pk_hex")] pub [u8; 32]);

mod pk_hex {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::hash::hex(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        Some(&s)
            .filter(|s| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .and_then(|s| crate::hash::unhex(s))
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("public key must be 64 lower-case hex digits"))
    }
}

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
    /// A short fingerprint for messages: the first 16 hex digits.
    pub fn fingerprint(&self) -> String {
        self.to_hex()[..16].to_string()
    }
    /// Verifies `sig` over `msg` with `verify_strict` (rejects weak keys and malleable
    /// signatures). False on any failure, including a key that is not a curve point.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let Ok(vk) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        vk.verify_strict(msg, &Signature::from_bytes(sig)).is_ok()
    }

    /// `verify`, with the key decompressed once per `cache`: for checking many entries
    /// signed by few keys.
    pub fn verify_cached(&self, cache: &mut KeyCache, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.verify_parts_cached(cache, &[msg], sig)
    }

    /// `verify_cached` of the message made of `parts` one after the other (no copy).
    ///
    /// Exactly `verify_strict`, with less work: a weak (small-order) key is refused once,
    /// when it is cached; an R of small order by its encoding (the eight canonical
    /// encodings of the 8-torsion points) instead of by decompressing it; and the rest is
    /// the cofactorless check `verify_strict` makes, which compares the recomputed R's
    /// canonical encoding with R's bytes, so an R that does not decode or is not canonical
    /// never matches.
    pub fn verify_parts_cached(
        &self,
        cache: &mut KeyCache,
        parts: &[&[u8]],
        sig: &[u8; 64],
    ) -> bool {
        use ed25519_dalek::ed25519::signature::MultipartVerifier;
        let vk = cache.0.entry(self.0).or_insert_with(|| {
            VerifyingKey::from_bytes(&self.0)
                .ok()
                .filter(|vk| !vk.is_weak())
        });
        let r: &[u8] = &sig[..32];
        vk.as_ref().is_some_and(|vk| {
            !SMALL_ORDER_R.iter().any(|e| e[..] == *r)
                && vk
                    .multipart_verify(parts, &Signature::from_bytes(sig))
                    .is_ok()
        })
    }

    /// Reads a public key file.
    ///
    /// Fails when the file cannot be read or does not hold a plcvault public key.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = read_key_file(path).map_err(|error| KeyError::Read {
            path: path.to_owned(),
            error,
        })?;
        let bad = |why: &str| KeyError::Format {
            path: path.to_owned(),
            what: "public",
            why: why.to_string(),
        };
        let mut words = text.split_whitespace();
        if words.next() != Some(PUBLIC_TAG) {
            return Err(bad(&format!("it does not start with `{PUBLIC_TAG}`")));
        }
        let bytes: [u8; 32] = words
            .next()
            .and_then(unhex)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("the key is not 64 hex digits"))?;
        check_point(&bytes).map_err(bad)?;
        Ok(PublicKey(bytes))
    }
}

/// A key file's text: a regular file of at most 4 KiB (a FIFO or a device named in the
/// config is an error, never a hang), UTF-8.
fn read_key_file(path: &Path) -> std::io::Result<String> {
    let bytes = crate::fsread::read_regular(path, 4096)?;
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is not text"))
}

/// A public key must be a point on the curve, not of small order (such a key verifies
/// signatures it never made), and canonically encoded (one key, one spelling).
fn check_point(bytes: &[u8; 32]) -> Result<(), &'static str> {
    let vk = VerifyingKey::from_bytes(bytes).map_err(|_| "the key is not a valid Ed25519 point")?;
    if vk.is_weak() {
        return Err("the key is a small-order point (a weak key that verifies forged signatures)");
    }
    if vk.to_edwards().compress().to_bytes() != *bytes {
        return Err("the key is not canonically encoded");
    }
    Ok(())
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// A loaded private signing key.
pub struct SecretKey {
    key: SigningKey,
    path: PathBuf,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey({}, public {})",
            self.path.display(),
            self.public().fingerprint()
        )
    }
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey {
            key: SigningKey::from_bytes(&seed),
            path: PathBuf::new(),
        })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// Writes the secret key to `path` (mode 0600, never overwriting) and the public key
    /// to `path.pub`.
    ///
    /// Fails when either file exists or cannot be written.
    pub fn write_pair(&self, path: &Path, comment: &str) -> Result<PathBuf, KeyError> {
        let pub_path = public_path(path);
        for p in [path, pub_path.as_path()] {
            if p.exists() {
                return Err(KeyError::Exists { path: p.to_owned() });
            }
        }
        let werr = |p: &Path| {
            let p = p.to_owned();
            move |error| KeyError::Write { path: p, error }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(werr(parent))?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(werr(path))?;
        f.write_all(format!("{SECRET_TAG} {}\n", hex(self.key.as_bytes())).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(werr(path))?;
        let comment = comment.replace(['\n', '\r'], " ");
        fs::write(
            &pub_path,
            format!("{PUBLIC_TAG} {} {comment}\n", self.public().to_hex()),
        )
        .map_err(werr(&pub_path))?;
        Ok(pub_path)
    }

    /// Loads a secret key, refusing a file that group or others may read or write.
    ///
    /// Fails when the file is missing, too open, or not a plcvault secret key.
    pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
        let rerr = |error| KeyError::Read {
            path: path.to_owned(),
            error,
        };
        let meta = fs::metadata(path).map_err(rerr)?;
        if !meta.is_file() {
            return Err(KeyError::Format {
                path: path.to_owned(),
                what: "private",
                why: "it is not a file".into(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = read_key_file(path).map_err(rerr)?;
        let bad = |why: &str| KeyError::Format {
            path: path.to_owned(),
            what: "private",
            why: why.to_string(),
        };
        let mut words = text.split_whitespace();
        match words.next() {
            Some(SECRET_TAG) => {}
            Some(PUBLIC_TAG) => {
                return Err(bad(
                    "this is a public key (the .pub file); use the private one",
                ));
            }
            _ => return Err(bad(&format!("it does not start with `{SECRET_TAG}`"))),
        }
        let seed: [u8; 32] = words
            .next()
            .and_then(unhex)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("the key is not 64 hex digits"))?;
        Ok(SecretKey {
            key: SigningKey::from_bytes(&seed),
            path: path.to_owned(),
        })
    }
}

/// `key` -> `key.pub`.
pub fn public_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// What a trusted key may sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Snapshots, failed collections, heartbeats, drills.
    Collector,
    /// Baseline approvals.
    Approver,
    /// Cosigns the log's checkpoints from another host; signs no entry.
    Witness,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Collector => "collector",
            Role::Approver => "approver",
            Role::Witness => "witness",
        })
    }
}

/// A key pinned in the config, with its name and role.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub name: String,
    pub role: Role,
    pub key: PublicKey,
}

/// The canonical encodings of the eight points of small order (the 8-torsion subgroup):
/// the identity, (0, −1), the two points of order 4 and the four of order 8.
const SMALL_ORDER_R: [[u8; 32]; 8] = {
    const fn from_hex(h: &[u8; 64]) -> [u8; 32] {
        const fn nibble(c: u8) -> u8 {
            match c {
                b'0'..=b'9' => c - b'0',
                _ => c - b'a' + 10,
            }
        }
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = nibble(h[2 * i]) << 4 | nibble(h[2 * i + 1]);
            i += 1;
        }
        out
    }
    [
        from_hex(b"0100000000000000000000000000000000000000000000000000000000000000"),
        from_hex(b"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
        from_hex(b"0000000000000000000000000000000000000000000000000000000000000000"),
        from_hex(b"0000000000000000000000000000000000000000000000000000000000000080"),
        from_hex(b"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        from_hex(b"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"),
        from_hex(b"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        from_hex(b"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
    ]
};

/// Public keys decompressed once (`PublicKey::verify_cached`).
#[derive(Default)]
pub struct KeyCache(std::collections::HashMap<[u8; 32], Option<VerifyingKey>>);

#[cfg(test)]
mod tests {
    use super::*;

    fn pub_file(dir: &Path, name: &str, bytes: &[u8; 32]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, format!("{PUBLIC_TAG} {}\n", hex(bytes))).unwrap();
        p
    }

    // The fast strict check agrees with `verify_strict`: the eight encodings are eight
    // distinct points of small order (so all of the 8-torsion), and on valid signatures,
    // altered ones and ones whose R is each small-order point, both say the same.
    #[test]
    fn the_cached_check_is_verify_strict() {
        let mut points = std::collections::HashSet::new();
        for e in SMALL_ORDER_R {
            let p = VerifyingKey::from_bytes(&e).expect("decodes");
            assert!(p.is_weak(), "{}", hex(&e));
            points.insert(p.to_bytes());
        }
        assert_eq!(points.len(), 8);
        let k = SecretKey::generate().unwrap();
        let public = k.public();
        let vk = VerifyingKey::from_bytes(&public.0).unwrap();
        let mut cache = KeyCache::default();
        for i in 0..64u32 {
            let msg = format!("entry {i}");
            let mut sig = k.sign(msg.as_bytes());
            match i % 4 {
                0 => {}
                1 => sig[i as usize % 64] ^= 1 << (i % 8),
                2 => sig[..32].copy_from_slice(&SMALL_ORDER_R[i as usize % 8]),
                _ => sig[63] |= 0xe0, // s not canonical
            }
            let strict = vk
                .verify_strict(msg.as_bytes(), &Signature::from_bytes(&sig))
                .is_ok();
            let (a, b) = msg.as_bytes().split_at(3);
            assert_eq!(
                public.verify_parts_cached(&mut cache, &[a, b], &sig),
                strict,
                "{i}"
            );
            assert_eq!(strict, i % 4 == 0, "{i}");
        }
        // A weak key verifies nothing, even a signature the plain check would accept:
        // with A and R the identity and s = 0, [s]B = R + [k]A holds for every message.
        let mut weak = PublicKey([0u8; 32]);
        weak.0[0] = 1;
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert!(!weak.verify_parts_cached(&mut KeyCache::default(), &[b"any"], &sig));
    }

    // Regression (issue 8, case 13): small-order and non-canonical keys were accepted.
    #[test]
    fn small_order_and_non_canonical_public_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let e = PublicKey::load(&pub_file(dir.path(), "id.pub", &identity)).unwrap_err();
        assert!(e.to_string().contains("small-order"), "{e}");
        // y = p + k for small k spells the same y as k: non-canonical where it decodes.
        let mut refused = 0;
        for k in 0u8..19 {
            for sign in [0u8, 0x80] {
                let mut b = [0xffu8; 32];
                b[0] = 0xed + k;
                b[31] = 0x7f | sign;
                if VerifyingKey::from_bytes(&b).is_ok_and(|vk| !vk.is_weak()) {
                    let e = PublicKey::load(&pub_file(dir.path(), "nc.pub", &b)).unwrap_err();
                    assert!(e.to_string().contains("canonical"), "{e}");
                    refused += 1;
                }
            }
        }
        assert!(
            refused > 0,
            "no non-canonical encoding decoded; the test proves nothing"
        );
    }

    #[test]
    fn generate_write_load_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/collector.key");
        let k = SecretKey::generate().unwrap();
        let pub_path = k.write_pair(&path, "test key").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = SecretKey::load(&path).unwrap();
        let public = PublicKey::load(&pub_path).unwrap();
        assert_eq!(loaded.public(), public);
        let sig = loaded.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        // Never overwrite.
        assert!(matches!(
            k.write_pair(&path, ""),
            Err(KeyError::Exists { .. })
        ));
        // Debug output holds no secret.
        let secret_hex = fs::read_to_string(&path).unwrap();
        let secret_hex = secret_hex.split_whitespace().nth(1).unwrap();
        assert!(!format!("{loaded:?}").contains(secret_hex));
    }

    #[test]
    fn loose_permissions_are_refused_with_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.key");
        SecretKey::generate()
            .unwrap()
            .write_pair(&path, "")
            .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = SecretKey::load(&path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { mode: 0o640, .. }));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn public_file_given_as_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.key");
        let pub_path = SecretKey::generate()
            .unwrap()
            .write_pair(&path, "")
            .unwrap();
        fs::set_permissions(&pub_path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = SecretKey::load(&pub_path).unwrap_err();
        assert!(err.to_string().contains("public key"), "{err}");
    }
}
