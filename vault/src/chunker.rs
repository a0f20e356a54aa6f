//! Content-defined chunking with FastCDC (2020), parameters pinned by format v1.
//!
//! The chunker reads a stream through one reused buffer of `2 * MAX_SIZE` bytes and hands
//! each chunk to a callback as a borrowed slice, so memory does not grow with the stream.
//! Changing any constant here changes every chunk boundary: the golden tests below pin them.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut, select_masks};

/// Smallest chunk (except the last chunk of a stream).
pub const MIN_SIZE: usize = 256 * 1024;
/// Target average chunk size.
pub const AVG_SIZE: usize = 1024 * 1024;
/// Largest chunk.
pub const MAX_SIZE: usize = 4 * 1024 * 1024;
/// FastCDC normalisation level.
pub const NORMALIZATION: Normalization = Normalization::Level1;

const READ_SIZE: usize = 1024 * 1024;

/// A reusable streaming chunker.
pub struct Chunker {
    buf: Vec<u8>,
    mask_s: u64,
    mask_l: u64,
}

impl Default for Chunker {
    fn default() -> Self {
        Self::new()
    }
}

/// Either the stream failed to read or the callback failed.
#[derive(Debug)]
pub enum ChunkError<E> {
    Read(io::Error),
    Sink(E),
}

impl Chunker {
    pub fn new() -> Chunker {
        let (mask_s, mask_l) = select_masks(AVG_SIZE, NORMALIZATION);
        Chunker {
            buf: vec![0u8; 2 * MAX_SIZE],
            mask_s,
            mask_l,
        }
    }

    /// Length of the first chunk of `data`, given that `data` is the whole remaining stream
    /// or at least `MAX_SIZE` bytes of it.
    pub fn cut(&self, data: &[u8]) -> usize {
        let (_, len) = cut(
            data,
            MIN_SIZE,
            AVG_SIZE,
            MAX_SIZE,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        len
    }

    /// Reads `reader` to its end and calls `sink` with each chunk in order, and whether it
    /// is the last chunk of the stream. Returns the number of bytes read.
    ///
    /// Fails with the first read error or the first error `sink` returns.
    pub fn for_each<R: Read, E>(
        &mut self,
        mut reader: R,
        mut sink: impl FnMut(&[u8], bool) -> Result<(), E>,
    ) -> Result<u64, ChunkError<E>> {
        let mut start = 0usize;
        let mut end = 0usize;
        let mut eof = false;
        let mut total = 0u64;
        loop {
            while !eof && end - start < MAX_SIZE {
                if self.buf.len() - end < READ_SIZE.min(MAX_SIZE) {
                    self.buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                }
                let want = (self.buf.len() - end).min(READ_SIZE);
                match reader.read(&mut self.buf[end..end + want]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        end += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ChunkError::Read(e)),
                }
            }
            if start == end {
                return Ok(total);
            }
            let len = self.cut(&self.buf[start..end]);
            let last = eof && start + len == end;
            sink(&self.buf[start..start + len], last).map_err(ChunkError::Sink)?;
            start += len;
        }
    }
}

/// The chunk lengths of `data` as a whole stream (for tests and tools).
pub fn chunk_lengths(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let result: Result<u64, ChunkError<()>> = Chunker::new().for_each(data, |c, _| {
        out.push(c.len());
        Ok(())
    });
    // Reading from a slice cannot fail and the sink never fails.
    result.expect("chunking a slice cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;

    /// Deterministic test data: xorshift64* bytes, the same on every machine.
    pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.max(1);
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Golden vectors: these lengths are part of vault format v1. If this test fails the
    /// chunker changed and old vaults would no longer deduplicate against new snapshots.
    #[test]
    fn golden_chunk_boundaries_v1() {
        let data = pseudo_random(12 * 1024 * 1024 + 12345, 42);
        let lens = chunk_lengths(&data);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        let digest = Hash::of(format!("{lens:?}").as_bytes());
        assert_eq!(
            (lens.len(), &lens[..4], digest.short().as_str()),
            (GOLDEN_COUNT, &GOLDEN_FIRST[..], GOLDEN_DIGEST),
            "all lengths: {lens:?}"
        );
    }
    const GOLDEN_COUNT: usize = 9;
    const GOLDEN_FIRST: [usize; 4] = [1087539, 1301598, 675636, 1380270];
    const GOLDEN_DIGEST: &str = "7da1e9a4b83c";

    #[test]
    fn only_the_final_chunk_is_flagged_last() {
        let data = pseudo_random(5 * 1024 * 1024, 3);
        let mut flags = Vec::new();
        let _: Result<u64, ChunkError<()>> = Chunker::new().for_each(&data[..], |_, last| {
            flags.push(last);
            Ok(())
        });
        assert!(flags.len() > 2);
        assert_eq!(flags.iter().filter(|l| **l).count(), 1);
        assert_eq!(flags.last(), Some(&true));
    }

    #[test]
    fn zeros_cut_at_max_and_short_stream_is_one_chunk() {
        let lens = chunk_lengths(&vec![0u8; 9 * 1024 * 1024]);
        assert_eq!(lens, vec![MAX_SIZE, MAX_SIZE, 1024 * 1024]);
        assert_eq!(chunk_lengths(b"short"), vec![5]);
        assert!(chunk_lengths(b"").is_empty());
    }

    /// Reads in tiny, uneven pieces: boundaries must not depend on how reads are split.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 7919 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn streaming_matches_one_shot_whatever_the_read_sizes() {
        for seed in 1..4u64 {
            let data = pseudo_random(6 * 1024 * 1024 + seed as usize * 977, seed);
            let whole = chunk_lengths(&data);
            let mut streamed = Vec::new();
            let _: Result<u64, ChunkError<()>> =
                Chunker::new().for_each(Dribble(&data, 0), |c, _| {
                    streamed.push(c.len());
                    Ok(())
                });
            assert_eq!(whole, streamed);
        }
    }

    #[test]
    fn an_insertion_only_disturbs_nearby_chunks() {
        let data = pseudo_random(16 * 1024 * 1024, 7);
        let mut edited = data.clone();
        edited.splice(5_000_000..5_000_000, b"inserted bytes".iter().copied());
        let ids = |d: &[u8]| {
            let mut out = std::collections::HashSet::new();
            let _: Result<u64, ChunkError<()>> = Chunker::new().for_each(d, |c, _| {
                out.insert(Hash::of(c));
                Ok(())
            });
            out
        };
        let (a, b) = (ids(&data), ids(&edited));
        let shared = a.intersection(&b).count();
        assert!(shared + 2 >= a.len(), "shared {shared} of {}", a.len());
    }
}
