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

/// One sequence's drafting state.
#[derive(Debug, Clone)]
pub(crate) struct Drafter {
    prediction: Option<Arc<[i32]>>,
    /// Where in the prediction the next output token is expected (None: out of step, found
    /// again by matching the last tokens).
    pred_pos: Option<usize>,
    /// Where the prediction was last in step: a re-match prefers what follows it.
    pred_floor: usize,
    /// Probability that a draft token is accepted given the one before it was, per source.
    rate_prediction: f32,
    rate_ngram: f32,
    /// The source of the current proposal.
    pub source: Source,
    /// Generated tokens that were the prediction's token where it was expected: the
    /// prediction's tokens that appeared in the answer (OpenAI's accepted prediction tokens).
    pub matched_prediction: u32,
}

impl Drafter {
    pub fn new(prediction: Option<Arc<[i32]>>) -> Self {
        Drafter {
            pred_pos: prediction.as_ref().map(|_| 0),
            prediction,
            pred_floor: 0,
            rate_prediction: PRIOR_PREDICTION,
            rate_ngram: PRIOR_NGRAM,
            source: Source::Ngram,
            matched_prediction: 0,
        }
    }

    /// Tokens in the request's prediction (0 without one).
    pub fn prediction_len(&self) -> usize {
        self.prediction.as_ref().map_or(0, |p| p.len())
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
    pub fn propose(
        &mut self,
        cfg: &SpecConfig,
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
            if let Some(pred) = self.prediction.clone() {
                let pos = match self.pred_pos {
                    Some(p) => Some(p),
                    None => self.resync(&pred, history, last, cfg.max_ngram as usize),
                };
                if let Some(p) = pos.filter(|&p| p < pred.len()) {
                    self.source = Source::Prediction;
                    out.extend_from_slice(&pred[p..pred.len().min(p + limit)]);
                    return;
                }
            }
        }
        if cfg.mode.uses_ngram() {
            self.source = Source::Ngram;
            lookup(history, last, cfg, limit, out);
        }
    }

    /// Finds where the prediction continues the output: the longest run of last tokens
    /// (down to one) found in it, first at or after where it was last in step, else anywhere.
    fn resync(&mut self, pred: &[i32], history: &[i32], last: i32, max_n: usize) -> Option<usize> {
        let len = history.len() + 1;
        let at = |i: usize| if i < history.len() { history[i] } else { last };
        for n in (1..=max_n.min(len)).rev() {
            if n > pred.len() {
                continue;
            }
            let matches = |j: &usize| (0..n).all(|k| pred[j + k] == at(len - n + k));
            let starts = 0..=pred.len() - n;
            let found = starts
                .clone()
                .skip(self.pred_floor)
                .find(matches)
                .or_else(|| starts.take(self.pred_floor).find(matches));
            if let Some(j) = found {
                self.pred_pos = Some(j + n);
                self.pred_floor = j + n;
                return self.pred_pos;
            }
        }
        None
    }

    /// A token was sampled: the prediction stays in step if it says the same.
    pub fn advance(&mut self, token: i32) {
        let Some(pred) = &self.prediction else { return };
        self.pred_pos = match self.pred_pos {
            Some(p) if pred.get(p) == Some(&token) => {
                self.pred_floor = p + 1;
                self.matched_prediction += 1;
                Some(p + 1)
            }
            _ => None,
        };
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

    fn cfg(mode: SpecMode) -> SpecConfig {
        SpecConfig {
            mode,
            ..SpecConfig::default()
        }
    }

    #[test]
    fn prompt_lookup_continues_the_latest_earlier_match() {
        let mut d = Drafter::new(None);
        let mut out = Vec::new();
        // "5 6" occurred twice; the latest occurrence is followed by 9 1.
        let history = [5, 6, 7, 8, 5, 6, 9, 1, 2, 5];
        d.propose(&cfg(SpecMode::Auto), &history, 6, 4, &mut out);
        assert_eq!(out, [9, 1, 2, 5]);
        d.propose(&cfg(SpecMode::Auto), &history, 6, 2, &mut out);
        assert_eq!(out, [9, 1]);
        // Nothing ends in "3 4" before: no draft.
        d.propose(&cfg(SpecMode::Auto), &[1, 2, 3], 4, 4, &mut out);
        assert!(out.is_empty());
        d.propose(&cfg(SpecMode::Prediction), &history, 6, 4, &mut out);
        assert!(out.is_empty(), "prediction mode never looks up the prompt");
    }

    #[test]
    fn the_prediction_is_followed_and_found_again_after_an_edit() {
        let pred: Arc<[i32]> = vec![10, 11, 12, 13, 14, 15, 16].into();
        let mut d = Drafter::new(Some(pred));
        let mut out = Vec::new();
        d.advance(10);
        d.propose(&cfg(SpecMode::Auto), &[1, 2], 10, 3, &mut out);
        assert_eq!(out, [11, 12, 13]);
        assert_eq!(d.source, Source::Prediction);
        // The output diverges (40 instead of 11 12), then goes on with 13.
        d.advance(40);
        d.advance(13);
        d.propose(&cfg(SpecMode::Auto), &[1, 2, 10, 40], 13, 8, &mut out);
        assert_eq!(out, [14, 15, 16]);
        d.advance(14);
        d.propose(&cfg(SpecMode::Auto), &[1, 2, 10, 40, 13], 14, 8, &mut out);
        assert_eq!(out, [15, 16]);
        d.propose(&cfg(SpecMode::Ngram), &[1, 2, 10, 40, 13], 14, 8, &mut out);
        assert!(out.is_empty(), "ngram mode ignores the prediction");
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
