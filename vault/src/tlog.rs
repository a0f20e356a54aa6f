//! The Merkle tree over the log entries, as RFC 9162 (Certificate Transparency v2) defines
//! it and Go's checksum database uses it: leaf hash = SHA-256(`0x00` ‖ entry bytes),
//! interior hash = SHA-256(`0x01` ‖ left ‖ right); tree hashes, inclusion proofs and
//! consistency proofs, computed from the hashes of complete subtrees, which tiles of
//! height 8 store (the C2SP `tlog-tiles` layout, see `tiles`).
//!
//! Leaf `i` (from 0) is log entry `i + 1`: its bytes are the whole entry file.

use sha2::{Digest, Sha256};

use crate::hash::Hash;

/// The hash of a leaf: SHA-256(0x00 ‖ `entry`).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    Hash::from_hasher(h)
}

/// The hash of an interior node: SHA-256(0x01 ‖ `left` ‖ `right`).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash::from_hasher(h)
}

/// The hash of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Hash::of(b"")
}

/// Hashes of complete subtrees: `level` 0 is a leaf, `level` k the subtree of the 2^k
/// leaves from `index * 2^k`.
pub trait Subtrees {
    /// Fails when the hash is not stored or cannot be read.
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, String>;
}

/// The largest power of two below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The hash of the leaves `lo..hi` (hi > lo) as RFC 9162's MTH of that range: a complete
/// aligned range is one stored subtree, else it splits at the largest power of two.
pub fn range_hash(t: &dyn Subtrees, lo: u64, hi: u64) -> Result<Hash, String> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return t.subtree(n.trailing_zeros(), lo / n);
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(t, lo, lo + k)?,
        &range_hash(t, lo + k, hi)?,
    ))
}

/// The root hash of the tree of the first `n` leaves.
pub fn tree_hash(t: &dyn Subtrees, n: u64) -> Result<Hash, String> {
    if n == 0 {
        return Ok(empty_root());
    }
    range_hash(t, 0, n)
}

/// The inclusion proof of leaf `m` in the tree of `n` leaves (RFC 9162 2.1.3.1), from the
/// leaf up.
pub fn inclusion_proof(t: &dyn Subtrees, m: u64, n: u64) -> Result<Vec<Hash>, String> {
    if m >= n {
        return Err(format!("leaf {m} is not in a tree of {n}"));
    }
    let mut out = Vec::new();
    path(t, m, 0, n, &mut out)?;
    Ok(out)
}

fn path(t: &dyn Subtrees, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Result<(), String> {
    if hi - lo == 1 {
        return Ok(());
    }
    let k = split(hi - lo);
    if m < lo + k {
        path(t, m, lo, lo + k, out)?;
        out.push(range_hash(t, lo + k, hi)?);
    } else {
        path(t, m, lo + k, hi, out)?;
        out.push(range_hash(t, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of `m` leaves to the tree of `n` (RFC 9162 2.1.4.1).
pub fn consistency_proof(t: &dyn Subtrees, m: u64, n: u64) -> Result<Vec<Hash>, String> {
    if m == 0 || m > n {
        return Err(format!("no consistency proof from {m} to {n}"));
    }
    let mut out = Vec::new();
    if m < n {
        subproof(t, m, 0, n, true, &mut out)?;
    }
    Ok(out)
}

fn subproof(
    t: &dyn Subtrees,
    m: u64,
    lo: u64,
    hi: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), String> {
    let n = hi - lo;
    if m == n {
        if !whole {
            out.push(range_hash(t, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(t, m, lo, lo + k, whole, out)?;
        out.push(range_hash(t, lo + k, hi)?);
    } else {
        subproof(t, m - k, lo + k, hi, false, out)?;
        out.push(range_hash(t, lo, lo + k)?);
    }
    Ok(())
}

/// Checks an inclusion proof of the leaf with hash `leaf`, number `m`, in the tree of `n`
/// leaves with root `root` (RFC 9162 2.1.3.2).
pub fn check_inclusion(leaf: &Hash, m: u64, n: u64, proof: &[Hash], root: &Hash) -> bool {
    if m >= n {
        return false;
    }
    let (mut fnode, mut snode) = (m, n - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Checks a consistency proof between the tree of `m` leaves with root `old` and the
/// tree of `n` with root `new` (RFC 9162 2.1.4.2).
pub fn check_consistency(m: u64, old: &Hash, n: u64, new: &Hash, proof: &[Hash]) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && old == new;
    }
    // A first tree that is a complete subtree is the proof's implicit first element.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if m.is_power_of_two() {
        path.push(*old);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old && sr == *new
}

/// Subtree hashes of another store, each computed once: many proofs against one tree
/// (an evidence export) read each tile once.
pub struct Memo<'a> {
    inner: &'a dyn Subtrees,
    seen: std::cell::RefCell<std::collections::HashMap<(u32, u64), Hash>>,
}

impl<'a> Memo<'a> {
    pub fn new(inner: &'a dyn Subtrees) -> Memo<'a> {
        Memo {
            inner,
            seen: Default::default(),
        }
    }
}

impl Subtrees for Memo<'_> {
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, String> {
        if let Some(h) = self.seen.borrow().get(&(level, index)) {
            return Ok(*h);
        }
        let h = self.inner.subtree(level, index)?;
        self.seen.borrow_mut().insert((level, index), h);
        Ok(h)
    }
}

/// Complete-subtree hashes held in memory: every level computed from the leaves.
#[derive(Default)]
pub struct MemoryTree {
    /// `levels[k][i]`: the subtree of level k, index i.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> MemoryTree {
        MemoryTree::default()
    }

    /// Adds the next leaf, and every subtree it completes.
    pub fn push(&mut self, leaf: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut k = 0;
        while self.levels[k].len().is_multiple_of(2) {
            let n = self.levels[k].len();
            let h = node_hash(&self.levels[k][n - 2], &self.levels[k][n - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[k + 1].push(h);
            k += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The stored subtrees of `level` (its complete nodes, in order).
    pub fn level(&self, level: u32) -> &[Hash] {
        self.levels
            .get(level as usize)
            .map_or(&[][..], |v| v.as_slice())
    }
}

impl Subtrees for MemoryTree {
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, String> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .ok_or_else(|| format!("no subtree at level {level} index {index}"))
    }
}

/// The path element of tile index `n`: `x001/x234/067`.
pub fn index_path(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut n = n / 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9162's MTH computed directly from the leaves, as the definition reads.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_proofs_and_their_checks_agree_with_the_definition() {
        let mut t = MemoryTree::new();
        let mut leaves = Vec::new();
        let mut roots = vec![empty_root()];
        for i in 0..70u64 {
            let l = leaf_hash(format!("entry {i}").as_bytes());
            leaves.push(l);
            t.push(l);
            roots.push(tree_hash(&t, t.size()).unwrap());
        }
        for n in 1..=70u64 {
            assert_eq!(roots[n as usize], mth(&leaves[..n as usize]), "n={n}");
            for m in 0..n {
                let p = inclusion_proof(&t, m, n).unwrap();
                assert!(check_inclusion(
                    &leaves[m as usize],
                    m,
                    n,
                    &p,
                    &roots[n as usize]
                ));
                // Another leaf, another position or another root fails.
                assert!(!check_inclusion(
                    &leaf_hash(b"x"),
                    m,
                    n,
                    &p,
                    &roots[n as usize]
                ));
                if n > 1 {
                    assert!(
                        !check_inclusion(
                            &leaves[m as usize],
                            (m + 1) % n,
                            n,
                            &p,
                            &roots[n as usize]
                        ) || leaves[((m + 1) % n) as usize] == leaves[m as usize]
                    );
                }
            }
            for m in 1..=n {
                let p = consistency_proof(&t, m, n).unwrap();
                assert!(
                    check_consistency(m, &roots[m as usize], n, &roots[n as usize], &p),
                    "{m} -> {n}"
                );
                if m < n {
                    // A forked old tree is not consistent.
                    assert!(!check_consistency(
                        m,
                        &leaf_hash(b"fork"),
                        n,
                        &roots[n as usize],
                        &p
                    ));
                    assert!(!check_consistency(
                        m,
                        &roots[m as usize],
                        n,
                        &leaf_hash(b"fork"),
                        &p
                    ));
                }
            }
        }
        // The RFC 6962 test vector of the empty tree.
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // And of one empty leaf (RFC 6962's tests: leaf hash of "").
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
