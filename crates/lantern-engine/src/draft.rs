//! Draft tokens for speculative decoding, per sequence: from the request's predicted output
//! (OpenAI's Predicted Outputs) and from prompt lookup (the last generated tokens matched
//! against the prompt and the output so far, like llama.cpp's n-gram drafts and vLLM's
//! `ngram` proposer). The scheduler verifies drafts in its ordinary batch; this module only
//! proposes them and keeps each sequence's acceptance rate, which decides how much a draft
//! token is worth.

use std::sync::Arc;

use serde::Deserialize;

/// Where drafts come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecMode {
    /// The prediction when a request has one, prompt lookup otherwise.
    #[default]
    Auto,
    Off,
    /// Only a request's `prediction`.
    Prediction,
    /// Only prompt lookup.
    Ngram,
}

impl SpecMode {
    pub const NAMES: &'static str = "auto, off, prediction, ngram";

    fn uses_prediction(self) -> bool {
        matches!(self, SpecMode::Auto | SpecMode::Prediction)
    }

    fn uses_ngram(self) -> bool {
        matches!(self, SpecMode::Auto | SpecMode::Ngram)
    }
}

impl std::str::FromStr for SpecMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SpecMode::Auto),
            "off" => Ok(SpecMode::Off),
            "prediction" => Ok(SpecMode::Prediction),
            "ngram" => Ok(SpecMode::Ngram),
            other => Err(format!(
                "unknown speculative mode '{other}' (expected one of {})",
                SpecMode::NAMES
            )),
        }
    }
}

/// Speculative decoding settings of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecConfig {
    pub mode: SpecMode,
    /// Most draft tokens verified per sequence and step.
    pub max_draft: u32,
    /// Shortest and longest run of last tokens that prompt lookup matches.
    pub min_ngram: u32,
    pub max_ngram: u32,
}

impl Default for SpecConfig {
    fn default() -> Self {
        SpecConfig {
            mode: SpecMode::Auto,
            max_draft: 16,
            min_ngram: 2,
            max_ngram: 4,
        }
    }
}

impl SpecConfig {
    pub fn is_off(&self) -> bool {
        self.mode == SpecMode::Off || self.max_draft == 0
    }
}

/// Text → tokens and back, as the model tokenizes: the prediction is followed as text,
/// since an answer may spell the same text with other tokens ("\n" "\n" for "\n\n").
pub(crate) trait Tokenizer {
    /// Literal text (no special tokens, no BOS) as tokens, appended to `out`.
    fn tokenize(&self, text: &[u8], out: &mut Vec<i32>);
    fn token_piece(&self, token: i32, out: &mut Vec<u8>);
}

/// Which source a proposal came from (they are trusted separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Prediction,
    Ngram,
}

/// What a sequence starts by believing of each source, before any draft was checked.
const PRIOR_PREDICTION: f32 = 0.9;
const PRIOR_NGRAM: f32 = 0.5;
/// Weight of one new observation in the acceptance rate.
const LEARNING_RATE: f32 = 0.15;
/// Bytes of the prediction tokenized at a time, from where the answer is.
const WINDOW_BYTES: usize = 512;
/// The answer's last bytes kept to find the place in the prediction again, and the shortest
/// run of them that counts as the place.
const TAIL_BYTES: usize = 32;
const MIN_RESYNC_BYTES: usize = 4;

/// A request's predicted output, followed as text.
#[derive(Debug, Clone)]
struct Followed {
    text: Arc<[u8]>,
    /// Byte offset where the answer is now, while the answer is the text.
    at: Option<usize>,
    /// Where it last followed the text: finding the place again prefers what comes after.
    floor: usize,
    /// The text from `cached_from` as tokens, and the byte offset each token ends at.
    cache: Vec<i32>,
    ends: Vec<usize>,
    cached_from: usize,
    /// The answer's last bytes.
    tail: Vec<u8>,
}

impl Followed {
    /// Up to `limit` tokens of the text from where the answer is, into `out`.
    fn propose<T: Tokenizer>(&mut self, tok: &T, limit: usize, out: &mut Vec<i32>) {
        let Some(at) = self.at else { return };
        if at >= self.text.len() {
            return;
        }
        let start = if at == self.cached_from {
            Some(0)
        } else {
            self.ends.binary_search(&at).ok().map(|k| k + 1)
        };
        // Retokenized where the answer left the cached tokens' boundaries, or near their end.
        let i = match start {
            Some(i) if i + limit <= self.cache.len() || self.cached_to() == self.text.len() => i,
            _ => {
                self.retokenize(tok, at);
                0
            }
        };
        let to = self.cache.len().min(i + limit);
        out.extend_from_slice(&self.cache[i.min(to)..to]);
    }

    fn cached_to(&self) -> usize {
        self.ends.last().copied().unwrap_or(self.cached_from)
    }

    fn retokenize<T: Tokenizer>(&mut self, tok: &T, at: usize) {
        let end = self.text.len().min(at + WINDOW_BYTES);
        self.cache.clear();
        self.ends.clear();
        self.cached_from = at;
        tok.tokenize(&self.text[at..end], &mut self.cache);
        // A window cut inside the text may have cut its last token short.
        if end < self.text.len() {
            self.cache.pop();
        }
        // Keep the tokens whose pieces spell the text exactly (a tokenizer that adds a
        // leading space to a fragment spells it otherwise).
        let (mut pos, mut piece) = (at, Vec::new());
        let mut kept = 0;
        for &t in &self.cache {
            piece.clear();
            tok.token_piece(t, &mut piece);
            if piece.is_empty() || !self.text[pos..].starts_with(&piece) {
                break;
            }
            pos += piece.len();
            self.ends.push(pos);
            kept += 1;
        }
        self.cache.truncate(kept);
    }

    /// Finds the answer's place in the text again: the longest run of its last bytes found
    /// there, first at or after where it last followed, else anywhere.
    fn resync(&mut self) -> Option<usize> {
        let mut n = self.tail.len().min(TAIL_BYTES);
        while n >= MIN_RESYNC_BYTES {
            let needle = &self.tail[self.tail.len() - n..];
            let find = |from: usize| {
                memchr::memmem::find(self.text.get(from..)?, needle).map(|p| from + p + n)
            };
            if let Some(at) = find(self.floor).or_else(|| find(0)) {
                self.at = Some(at);
                self.floor = at;
                return Some(at);
            }
            n /= 2;
        }
        None
    }

    /// The answer went on with `piece`. True if that was the text's next bytes; if not,
    /// the place is looked for again.
    fn advance(&mut self, piece: &[u8]) -> bool {
        if self.tail.len() + piece.len() > TAIL_BYTES * 2 {
            let cut = (self.tail.len() + piece.len()).saturating_sub(TAIL_BYTES);
            self.tail.drain(..cut.min(self.tail.len()));
        }
        self.tail.extend_from_slice(piece);
        match self.at {
            Some(at) if !piece.is_empty() && self.text[at..].starts_with(piece) => {
                self.at = Some(at + piece.len());
                self.floor = at + piece.len();
                true
            }
            // A piece with no text (a control token) leaves the place as it is.
            Some(_) if piece.is_empty() => false,
            _ => {
                self.at = None;
                self.resync();
                false
            }
        }
    }
}

/// A request's predicted output: its text, and how many tokens it is alone.
#[derive(Debug, Clone)]
pub(crate) struct Predicted {
    pub text: Arc<[u8]>,
    pub tokens: u32,
}

/// One sequence's drafting state.
#[derive(Debug, Clone)]
pub(crate) struct Drafter {
    prediction: Option<Followed>,
    /// Tokens the prediction has, as tokenized alone (for the rejected count).
    prediction_tokens: u32,
    /// Probability that a draft token is accepted given the one before it was, per source.
    rate_prediction: f32,
    rate_ngram: f32,
    /// The source of the current proposal.
    pub source: Source,
    /// Generated tokens whose text was the prediction's text where the answer stood: the
    /// prediction's tokens that appeared in the answer (OpenAI's accepted prediction tokens).
    pub matched_prediction: u32,
}

impl Drafter {
    pub fn new(prediction: Option<Predicted>) -> Self {
        let prediction_tokens = prediction.as_ref().map_or(0, |p| p.tokens);
        Drafter {
            prediction: prediction.map(|p| Followed {
                text: p.text,
                at: Some(0),
                floor: 0,
                cache: Vec::new(),
                ends: Vec::new(),
                cached_from: usize::MAX,
                tail: Vec::with_capacity(TAIL_BYTES * 2),
            }),
            prediction_tokens,
            rate_prediction: PRIOR_PREDICTION,
            rate_ngram: PRIOR_NGRAM,
            source: Source::Ngram,
            matched_prediction: 0,
        }
    }

    /// Tokens in the request's prediction (0 without one).
    pub fn prediction_len(&self) -> usize {
        self.prediction_tokens as usize
    }

    /// The acceptance rate of the current proposal's source.
    pub fn rate(&self) -> f32 {
        match self.source {
            Source::Prediction => self.rate_prediction,
            Source::Ngram => self.rate_ngram,
        }
    }

    fn rate_mut(&mut self) -> &mut f32 {
        match self.source {
            Source::Prediction => &mut self.rate_prediction,
            Source::Ngram => &mut self.rate_ngram,
        }
    }

    /// Fills `out` with up to `limit` tokens likely to follow `history` + `last` (the tokens
    /// in the KV, then the token about to be decoded).
    pub fn propose<T: Tokenizer>(
        &mut self,
        cfg: &SpecConfig,
        tok: &T,
        history: &[i32],
        last: i32,
        limit: usize,
        out: &mut Vec<i32>,
    ) {
        out.clear();
        if limit == 0 || cfg.is_off() {
            return;
        }
        if cfg.mode.uses_prediction() {
            if let Some(p) = self.prediction.as_mut() {
                p.propose(tok, limit, out);
                if !out.is_empty() {
                    self.source = Source::Prediction;
                    return;
                }
            }
        }
        if cfg.mode.uses_ngram() {
            self.source = Source::Ngram;
            lookup(history, last, cfg, limit, out);
        }
    }

    /// A token was sampled, with this text: the prediction stays in step if it says the same.
    pub fn advance(&mut self, piece: &[u8]) {
        if let Some(p) = self.prediction.as_mut() {
            if p.advance(piece) {
                self.matched_prediction += 1;
            }
        }
    }

    /// A verification: `accepted` of `drafted` draft tokens matched (the first mismatch, if
    /// any, is one failed trial; tokens after it were never tried).
    pub fn record(&mut self, drafted: usize, accepted: usize) {
        let rate = self.rate_mut();
        for _ in 0..accepted {
            *rate += LEARNING_RATE * (1.0 - *rate);
        }
        if accepted < drafted {
            *rate -= LEARNING_RATE * *rate;
        }
    }

    /// A proposal that was not verified (not worth its cost) still teaches the rate: its
    /// first token is compared with the token sampled instead, for free.
    pub fn shadow(&mut self, first_matched: bool) {
        let rate = self.rate_mut();
        let target = if first_matched { 1.0 } else { 0.0 };
        *rate += LEARNING_RATE * (target - *rate);
    }
}

/// Prompt lookup: the most recent earlier occurrence of the last `n` tokens (longest `n`
/// first) and the tokens that followed it.
fn lookup(history: &[i32], last: i32, cfg: &SpecConfig, limit: usize, out: &mut Vec<i32>) {
    let len = history.len() + 1;
    let at = |i: usize| if i < history.len() { history[i] } else { last };
    let (lo, hi) = (cfg.min_ngram.max(1) as usize, cfg.max_ngram as usize);
    for n in (lo..=hi.min(len - 1)).rev() {
        let suffix = len - n;
        // Candidates end before the suffix starts overlapping itself at the same place.
        let found = (0..suffix)
            .rev()
            .find(|&j| (0..n).all(|k| at(j + k) == at(suffix + k)));
        if let Some(j) = found {
            let from = j + n;
            let to = len.min(from + limit);
            out.extend((from..to).map(at));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words: "a b " is tokens of each word with its space; "ab" pieces exist as merges.
    struct Words;
    const VOCAB: [&str; 6] = ["a ", "b ", "c ", "d ", "\n", "\n\n"];
    impl Tokenizer for Words {
        fn tokenize(&self, text: &[u8], out: &mut Vec<i32>) {
            let mut rest = text;
            while !rest.is_empty() {
                // Longest piece first, as a BPE merge would.
                let (i, len) = (0..VOCAB.len())
                    .filter(|&i| rest.starts_with(VOCAB[i].as_bytes()))
                    .map(|i| (i, VOCAB[i].len()))
                    .max_by_key(|&(_, l)| l)
                    .expect("test text uses the test vocabulary");
                out.push(i as i32);
                rest = &rest[len..];
            }
        }
        fn token_piece(&self, token: i32, out: &mut Vec<u8>) {
            out.extend_from_slice(VOCAB[token as usize].as_bytes());
        }
    }

    fn cfg(mode: SpecMode) -> SpecConfig {
        SpecConfig {
            mode,
            ..SpecConfig::default()
        }
    }

    fn predicted(text: &str) -> Drafter {
        let mut n = Vec::new();
        Words.tokenize(text.as_bytes(), &mut n);
        Drafter::new(Some(Predicted {
            text: text.as_bytes().into(),
            tokens: n.len() as u32,
        }))
    }

    #[test]
    fn prompt_lookup_continues_the_latest_earlier_match() {
        let mut d = Drafter::new(None);
        let mut out = Vec::new();
        // "5 6" occurred twice; the latest occurrence is followed by 9 1.
        let history = [5, 6, 7, 8, 5, 6, 9, 1, 2, 5];
        d.propose(&cfg(SpecMode::Auto), &Words, &history, 6, 4, &mut out);
        assert_eq!(out, [9, 1, 2, 5]);
        d.propose(&cfg(SpecMode::Auto), &Words, &history, 6, 2, &mut out);
        assert_eq!(out, [9, 1]);
        // Nothing ends in "3 4" before: no draft.
        d.propose(&cfg(SpecMode::Auto), &Words, &[1, 2, 3], 4, 4, &mut out);
        assert!(out.is_empty());
        d.propose(&cfg(SpecMode::Prediction), &Words, &history, 6, 4, &mut out);
        assert!(out.is_empty(), "prediction mode never looks up the prompt");
    }

    #[test]
    fn the_prediction_is_followed_as_text_and_found_again_after_an_edit() {
        let mut d = predicted("a b c d a b c d ");
        let mut out = Vec::new();
        let auto = cfg(SpecMode::Auto);
        d.advance(b"a ");
        d.propose(&auto, &Words, &[], 0, 3, &mut out);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(d.source, Source::Prediction);
        // The answer diverges ("d " where "b " was predicted), then goes on with "c d ".
        d.advance(b"d ");
        d.advance(b"c ");
        d.advance(b"d ");
        d.propose(&auto, &Words, &[], 0, 8, &mut out);
        assert_eq!(out, [0, 1, 2, 3], "found again after the first 'c d '");
        assert_eq!(d.matched_prediction, 1);
        d.propose(&cfg(SpecMode::Ngram), &Words, &[], 0, 8, &mut out);
        assert!(out.is_empty(), "ngram mode ignores the prediction");
    }

    #[test]
    fn an_answer_that_spells_the_text_with_other_tokens_stays_in_step() {
        // The prediction's "\n\n" is one token; the answer writes it as two "\n".
        let mut d = predicted("a \n\nb c ");
        let mut out = Vec::new();
        let auto = cfg(SpecMode::Auto);
        d.advance(b"a ");
        d.propose(&auto, &Words, &[], 0, 8, &mut out);
        assert_eq!(out, [5, 1, 2]);
        d.advance(b"\n");
        // Half of the "\n\n" token: the rest of the text is tokenized again from here.
        d.propose(&auto, &Words, &[], 0, 8, &mut out);
        assert_eq!(out, [4, 1, 2]);
        d.advance(b"\n");
        d.advance(b"b ");
        d.propose(&auto, &Words, &[], 0, 8, &mut out);
        assert_eq!(out, [2]);
        assert_eq!(d.matched_prediction, 4);
    }

    #[test]
    fn acceptance_falls_with_rejections_and_rises_with_acceptances() {
        let mut d = Drafter::new(None);
        let start = d.rate();
        d.record(4, 0);
        d.record(4, 0);
        assert!(d.rate() < start * 0.8);
        let low = d.rate();
        d.record(4, 4);
        assert!(d.rate() > low);
        d.shadow(false);
        assert!(d.rate() < low + 0.5);
    }

    #[test]
    fn modes_parse_by_name() {
        assert_eq!("ngram".parse::<SpecMode>(), Ok(SpecMode::Ngram));
        assert!("fast"
            .parse::<SpecMode>()
            .unwrap_err()
            .contains("auto, off"));
    }
}
