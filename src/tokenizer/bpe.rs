//! A counting-only byte-pair encoder over tiktoken's rank tables, kept compact.
//!
//! tiktoken-rs's `CoreBPE` holds every token three times (an encoder map of `Vec<u8>`, a decoder
//! map and a sorted list): about 60 MB for `cl100k_base` and `o200k_base`, which was most of
//! Tollgate's idle memory. Billing only needs the number of tokens, so this keeps each table as
//! one byte arena in rank order, the end offset of each rank and a hash table of ranks: about
//! 5 MB for both. The tables are read once from tiktoken-rs's own constructors (so the data and
//! its version stay the crate's), then its `CoreBPE` is dropped.
//!
//! The merge loops are those of tiktoken (`vendor_tiktoken.rs` in tiktoken-rs), and so are the
//! pre-tokenizer's pieces: its patterns run on the `regex` crate instead of `fancy-regex` (see
//! [`CL100K_PATTERN`]); the tests compare every count with tiktoken-rs.

use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use regex::Regex;
use rustc_hash::FxBuildHasher;
use tiktoken_rs::CoreBPE;

type Rank = u32;

/// tiktoken's pre-tokenizer for `cl100k_base`, for the `regex` crate, whose leftmost-first
/// matches are those of tiktoken's backtracking `fancy-regex` without its two extensions:
/// - the possessive quantifiers are greedy here: no later part of their alternative could match
///   what backtracking would give back (a letter after a non-letter, the end after a space), so
///   the matches are the same;
/// - the lookahead alternatives, `\s+(?!\S)|\s` here and `\s+(?!\S)|\s+` in `o200k_base`, are
///   `\s+`, and [`give_back`] hands the run's last character to the next piece as the lookahead
///   would.
///
/// `fancy-regex` ran its backtracking engine over the whole pattern (about 3% of a relayed
/// request's instructions to count "hi", and 2-3.5 times the time of this on long prompts;
/// docs/benchmarks.md, "Prompt token counting"), and gave up on some long inputs.
pub const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+$|\s*[\r\n]|\s+";

/// tiktoken's pre-tokenizer for `o200k_base` (tiktoken-rs's `O200K_BASE_PAT_STR`), for the
/// `regex` crate as [`CL100K_PATTERN`] says. Its other quantifiers are greedy already.
pub fn o200k_pattern() -> String {
    let common = tiktoken_rs::O200K_BASE_PAT_STR
        .strip_suffix(r"|\s+(?!\S)|\s+")
        .expect("o200k_base's pattern ends with its lookahead alternatives");
    format!(r"{common}|\s+")
}

/// One encoding: ranks of ordinary tokens, the pre-tokenizer and the special tokens.
pub struct Encoding {
    /// Every ordinary token's bytes, back to back, in rank order.
    bytes: Vec<u8>,
    /// `ends[r]`: where rank `r` ends in `bytes` (it starts where `r - 1` ends).
    ends: Vec<u32>,
    /// Ranks, found by hashing a token's bytes.
    table: HashTable<Rank>,
    pattern: Regex,
    /// Special tokens count as one token each (tiktoken's `encode_with_special_tokens`).
    specials: &'static [&'static str],
}

impl Encoding {
    /// Copies the ordinary tokens of `bpe` (ranks `0..first_special`, gaps allowed).
    pub fn from_tiktoken(
        bpe: &CoreBPE,
        first_special: Rank,
        pattern: &str,
        specials: &'static [&'static str],
    ) -> Self {
        let n = first_special as usize;
        let mut bytes = Vec::with_capacity(n * 8);
        let mut ends = Vec::with_capacity(n);
        let mut table = HashTable::with_capacity(n);
        for rank in 0..first_special {
            // A rank the table lacks (cl100k has a gap) gets an empty range, never looked up.
            if let Ok(token) = bpe.decode_bytes(&[rank]) {
                bytes.extend_from_slice(&token);
            }
            ends.push(bytes.len() as u32);
        }
        bytes.shrink_to_fit();
        let mut enc = Self {
            bytes,
            ends,
            table: HashTable::new(),
            pattern: Regex::new(pattern).expect("tiktoken's pattern compiles"),
            specials,
        };
        for rank in 0..first_special {
            let token = enc.token(rank);
            if !token.is_empty() {
                table.insert_unique(hash(token), rank, |&r| hash(enc.token(r)));
            }
        }
        enc.table = table;
        enc
    }

    fn token(&self, rank: Rank) -> &[u8] {
        let r = rank as usize;
        let start = if r == 0 { 0 } else { self.ends[r - 1] as usize };
        &self.bytes[start..self.ends[r] as usize]
    }

    fn rank(&self, piece: &[u8]) -> Option<Rank> {
        self.table
            .find(hash(piece), |&r| self.token(r) == piece)
            .copied()
    }

    /// Tokens in `text`, special tokens included (as tiktoken's `encode_with_special_tokens`).
    pub fn count(&self, text: &str) -> usize {
        let mut n = 0;
        let mut rest = text;
        while let Some((at, len)) = self.next_special(rest) {
            n += self.count_ordinary(&rest[..at]) + 1;
            rest = &rest[at + len..];
        }
        n + self.count_ordinary(rest)
    }

    /// The first special token in `text`: its offset and length.
    fn next_special(&self, text: &str) -> Option<(usize, usize)> {
        // Every special token starts with `<|`, and none is a prefix of another.
        text.match_indices("<|").find_map(|(at, _)| {
            self.specials
                .iter()
                .find(|s| text[at..].starts_with(**s))
                .map(|s| (at, s.len()))
        })
    }

    fn count_ordinary(&self, text: &str) -> usize {
        let (mut n, mut at) = (0, 0);
        while let Some(m) = self.pattern.find_at(text, at) {
            let end = match give_back(m.as_str()) {
                Some(kept) if m.end() < text.len() => m.start() + kept,
                _ => m.end(),
            };
            n += self.piece_count(&text.as_bytes()[m.start()..end]);
            at = end;
        }
        n
    }

    fn piece_count(&self, piece: &[u8]) -> usize {
        if self.rank(piece).is_some() {
            1
        } else {
            self.merge_count(piece)
        }
    }

    fn merge_count(&self, piece: &[u8]) -> usize {
        match piece.len() {
            0 => 0,
            1 => 1,
            len if len < 100 => self.merge_small(piece),
            _ => self.merge_large(piece),
        }
    }

    /// tiktoken's `_byte_pair_merge`: O(n * merges), fastest for short pieces.
    fn merge_small(&self, piece: &[u8]) -> usize {
        let mut parts: Vec<(usize, Rank)> = Vec::with_capacity(piece.len() + 1);
        let mut min = (Rank::MAX, usize::MAX);
        for i in 0..piece.len() - 1 {
            let rank = self.rank(&piece[i..i + 2]).unwrap_or(Rank::MAX);
            if rank < min.0 {
                min = (rank, i);
            }
            parts.push((i, rank));
        }
        parts.push((piece.len() - 1, Rank::MAX));
        parts.push((piece.len(), Rank::MAX));

        // The rank of merging parts i and i+1 once i+1 is gone (hence i+3).
        let rank_at = |parts: &[(usize, Rank)], i: usize| {
            if i + 3 < parts.len() {
                self.rank(&piece[parts[i].0..parts[i + 3].0])
                    .unwrap_or(Rank::MAX)
            } else {
                Rank::MAX
            }
        };
        while min.0 != Rank::MAX {
            let i = min.1;
            if i > 0 {
                parts[i - 1].1 = rank_at(&parts, i - 1);
            }
            parts[i].1 = rank_at(&parts, i);
            parts.remove(i + 1);
            min = (Rank::MAX, usize::MAX);
            for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
                if rank < min.0 {
                    min = (rank, i);
                }
            }
        }
        parts.len() - 1
    }

    /// tiktoken's `_byte_pair_merge_large`: a heap of candidate merges, O(m log n).
    fn merge_large(&self, piece: &[u8]) -> usize {
        struct State {
            prev: usize,
            end: usize,
            next_end: usize,
            next_rank: Rank,
        }
        #[derive(PartialEq, Eq)]
        struct Merge {
            start: usize,
            rank: Rank,
        }
        impl Ord for Merge {
            // BinaryHeap is a max-heap: the lowest rank (then the leftmost start) comes first.
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                other
                    .rank
                    .cmp(&self.rank)
                    .then_with(|| other.start.cmp(&self.start))
            }
        }
        impl PartialOrd for Merge {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        let len = piece.len();
        let mut state = Vec::with_capacity(len);
        state.push(State {
            prev: usize::MAX,
            end: 1,
            next_end: 2,
            next_rank: Rank::MAX,
        });
        let mut heap = BinaryHeap::with_capacity(len);
        for i in 0..len - 1 {
            if let Some(rank) = self.rank(&piece[i..i + 2]) {
                heap.push(Merge { start: i, rank });
                state[i].next_rank = rank;
            }
            state.push(State {
                prev: i,
                end: i + 2,
                next_end: i + 3,
                next_rank: Rank::MAX,
            });
        }

        let potential =
            |state: &mut Vec<State>, heap: &mut BinaryHeap<Merge>, start: usize, end: usize| {
                state[start].next_end = end;
                state[start].next_rank = Rank::MAX;
                if end <= len
                    && let Some(rank) = self.rank(&piece[start..end])
                {
                    heap.push(Merge { start, rank });
                    state[start].next_rank = rank;
                }
            };
        while let Some(left) = heap.pop() {
            if left.rank == Rank::MAX {
                break;
            }
            if left.rank != state[left.start].next_rank {
                continue; // invalidated since it was pushed
            }
            let left_start = left.start;
            let right_start = state[left_start].end;
            let right_end = state[left_start].next_end;
            let right_next_end = state[right_start].next_end;
            state[left_start].end = right_end;
            potential(&mut state, &mut heap, left_start, right_next_end);
            if right_end < state.len() {
                state[right_end].prev = left_start;
            }
            if left_start > 0 {
                let prev_start = state[left_start].prev;
                potential(&mut state, &mut heap, prev_start, right_end);
            }
            state[right_start].next_rank = Rank::MAX;
        }

        let (mut n, mut i) = (0, 0);
        while i < state.len() {
            n += 1;
            i = state[i].end;
        }
        n
    }
}

/// tiktoken's `\s+(?!\S)` for a piece matched by the patterns' last alternative, `\s+`: a run
/// of two or more spaces (a line break would have matched an earlier alternative) that more
/// text follows keeps all but its last character, which starts the next piece. Returns the
/// length kept, or `None` for any other piece.
fn give_back(piece: &str) -> Option<usize> {
    let (last, c) = piece.char_indices().next_back()?;
    let spaces = last > 0 && !matches!(c, '\r' | '\n') && piece.chars().all(char::is_whitespace);
    spaces.then_some(last)
}

fn hash(bytes: &[u8]) -> u64 {
    FxBuildHasher.hash_one(bytes)
}

#[cfg(test)]
mod tests {
    use crate::tokenizer::{CL100K, O200K};
    use proptest::prelude::*;

    fn same_as_tiktoken(text: &str) {
        let want = tiktoken_rs::cl100k_base_singleton()
            .encode_with_special_tokens(text)
            .len();
        assert_eq!(CL100K.count(text), want, "cl100k: {text:?}");
        let want = tiktoken_rs::o200k_base_singleton()
            .encode_with_special_tokens(text)
            .len();
        assert_eq!(O200K.count(text), want, "o200k: {text:?}");
    }

    #[test]
    fn counts_as_tiktoken_on_known_text() {
        for text in [
            "",
            "hello world",
            "Hello, world! I'm here; we've 12345 apples.\n\n  indented\tTAB\r\n",
            "<|endoftext|>",
            "a<|endoftext|>b<|fim_prefix|>c<|endofprompt|>d<|nope|><|",
            "日本語のテキストと中文混合，还有emoji 🎉🚀 and ünïcödé",
            "fn main() { println!(\"{}\", 1 + 2); } // code",
            // Pieces of 100 bytes and more take the heap-based merge.
            &"a".repeat(1000),
            &"abcdefghij0123456789".repeat(30),
            &"🎉".repeat(200),
            &"zqxjv".repeat(50),
            "https://example.com/some/long/path?query=value&other=thing#fragment",
        ] {
            same_as_tiktoken(text);
        }
    }

    /// Runs of spaces before more text: where tiktoken's lookahead gives the last space to the
    /// next piece ([`super::give_back`]), and where it does not.
    #[test]
    fn counts_spaces_as_tiktoken_s_lookahead() {
        for text in [
            "a  b",
            "a   1",
            "1  2",
            "  hello",
            "a \t !",
            "end   ",
            "x\u{3000}\u{3000}y",
            "\u{a0}\u{a0}z",
            " \n  x",
            "a\r\n  b",
            "a \u{2003}\t\u{a0}'s",
            "word  \u{301}mark",
            " ",
            "  ",
            "\t\tx",
        ] {
            same_as_tiktoken(text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn counts_as_tiktoken_around_spaces(
            text in "([a-zA-Z]{1,5}|[0-9]{1,4}|[ \t\u{a0}\u{2003}\u{3000}]{1,4}|[\r\n]{1,2}|[.!/'\u{301}]|'s|'LL){0,40}",
        ) {
            same_as_tiktoken(&text);
        }

        #[test]
        fn counts_as_tiktoken_on_any_text(text in any::<String>()) {
            same_as_tiktoken(&text);
        }

        #[test]
        fn counts_as_tiktoken_on_wordy_text(
            text in "([a-zA-Z]{1,12}|[0-9]{1,6}|[ \\n\\t]{1,3}|[.,;:!?'\"()-]|<\\|endoftext\\|>|[é中🎉]){0,60}",
        ) {
            same_as_tiktoken(&text);
        }

        #[test]
        fn counts_as_tiktoken_on_long_pieces(text in "[a-z0-9]{100,400}") {
            same_as_tiktoken(&text);
        }
    }
}
