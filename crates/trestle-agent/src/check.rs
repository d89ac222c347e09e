//! Streaming success-string check: finds a needle in output that arrives in
//! chunks, including a needle split across chunk boundaries. Pure; linear
//! time (Knuth–Morris–Pratt), constant memory beyond the needle.

/// Looks for one byte string in a stream of chunks.
#[derive(Debug, Clone)]
pub struct Matcher {
    needle: Vec<u8>,
    /// `fail[i]`: length of the longest proper prefix of `needle[..=i]`
    /// that is also its suffix.
    fail: Vec<usize>,
    /// Bytes of the needle matched at the end of the input so far.
    matched: usize,
    found: bool,
}

impl Matcher {
    /// A matcher for `needle` (an empty needle is found at once).
    pub fn new(needle: &str) -> Matcher {
        let needle = needle.as_bytes().to_vec();
        let mut fail = vec![0; needle.len()];
        let mut k = 0;
        for i in 1..needle.len() {
            while k > 0 && needle[i] != needle[k] {
                k = fail[k - 1];
            }
            if needle[i] == needle[k] {
                k += 1;
            }
            fail[i] = k;
        }
        let found = needle.is_empty();
        Matcher {
            needle,
            fail,
            matched: 0,
            found,
        }
    }

    /// Feeds the next chunk of output; returns whether the needle has been
    /// seen so far.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.found {
            return true;
        }
        let first = self.needle[0];
        let mut i = 0;
        while i < chunk.len() {
            if self.matched == 0 {
                // Skip quickly to the next candidate start.
                match chunk[i..].iter().position(|&b| b == first) {
                    Some(p) => i += p,
                    None => return false,
                }
            }
            let b = chunk[i];
            while self.matched > 0 && b != self.needle[self.matched] {
                self.matched = self.fail[self.matched - 1];
            }
            if b == self.needle[self.matched] {
                self.matched += 1;
                if self.matched == self.needle.len() {
                    self.found = true;
                    return true;
                }
            }
            i += 1;
        }
        false
    }

    /// Whether the needle has been seen.
    pub fn found(&self) -> bool {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn finds_within_and_across_chunks() {
        let mut m = Matcher::new("DONE");
        assert!(!m.feed(b"working... DO"));
        assert!(!m.found());
        assert!(m.feed(b"NE and more"));
        assert!(m.found());
        assert!(m.feed(b"anything"));

        let mut m = Matcher::new("abc");
        for b in b"xxabxabxa" {
            assert!(!m.feed(std::slice::from_ref(b)));
        }
        assert!(m.feed(b"bc"));
    }

    #[test]
    fn handles_self_overlapping_needles() {
        let mut m = Matcher::new("aab");
        assert!(!m.feed(b"a"));
        assert!(!m.feed(b"a"));
        assert!(!m.feed(b"a"));
        assert!(m.feed(b"b"));
        let mut m = Matcher::new("abab");
        assert!(!m.feed(b"aba"));
        assert!(m.feed(b"bab"));
    }

    #[test]
    fn empty_and_missing() {
        assert!(Matcher::new("").found());
        let mut m = Matcher::new("needle");
        assert!(!m.feed(b""));
        assert!(!m.feed(b"haystack without it"));
        let mut m = Matcher::new("ü");
        let bytes = "xü".as_bytes();
        assert!(!m.feed(&bytes[..2]));
        assert!(m.feed(&bytes[2..]));
    }

    proptest! {
        #[test]
        fn streaming_equals_whole(
            hay in proptest::collection::vec(0u8..4, 0..200),
            needle in proptest::collection::vec(0u8..4, 0..6),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let needle_s: String = needle.iter().map(|b| char::from(b'a' + b)).collect();
            let hay: Vec<u8> = hay.iter().map(|b| b'a' + b).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(hay.len())).collect();
            cuts.sort_unstable();
            let mut m = Matcher::new(&needle_s);
            let mut start = 0;
            for c in cuts.into_iter().chain(std::iter::once(hay.len())) {
                m.feed(&hay[start..c]);
                start = c;
            }
            prop_assert_eq!(m.found(), contains(&hay, needle_s.as_bytes()));
        }
    }
}
