//! The quantization report: a table and a recommendation (report.md), the numbers
//! (report.json), and quality loss against decode speed with file size as the marker (chart).

use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::json;

use super::chart::{both, Chart};
use super::quant::{Level, QuantBenchArgs};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The smallest level whose perplexity is within `budget` percent of the reference's.
fn recommend(levels: &[Level], budget: f64) -> String {
    let Some(reference) = levels.iter().find(|l| l.reference) else {
        return String::new();
    };
    let limit = reference.perplexity * (1.0 + budget / 100.0);
    let within: Vec<&Level> = levels.iter().filter(|l| l.perplexity <= limit).collect();
    let best = within
        .iter()
        .min_by_key(|l| l.size_bytes)
        .copied()
        .unwrap_or(reference);
    let rise = (best.perplexity / reference.perplexity - 1.0) * 100.0;
    let smaller_out: Vec<&str> = levels
        .iter()
        .filter(|l| l.size_bytes < best.size_bytes)
        .map(|l| l.name.as_str())
        .collect();
    let mut text = format!(
        "**Recommendation.** Within a quality budget of {budget}% perplexity over the most precise level \
         ({}, perplexity {:.3}), the smallest level is **{}**: {:.1} MiB ({:.0}% of {}), perplexity {:.3} \
         ({rise:+.1}%), KL divergence {:.4}, the same top token {:.1}% of the time, decoding {:.1} tok/s \
         on one stream ({:.2}x {}) and {:.1} tok/s over 8.",
        reference.name,
        reference.perplexity,
        best.name,
        mib(best.size_bytes),
        100.0 * best.size_bytes as f64 / reference.size_bytes.max(1) as f64,
        reference.name,
        best.perplexity,
        best.kld,
        best.top1 * 100.0,
        best.decode_tok_s_1,
        best.decode_tok_s_1 / reference.decode_tok_s_1.max(1e-9),
        reference.name,
        best.decode_tok_s_8,
    );
    if !smaller_out.is_empty() {
        let _ = write!(
            text,
            " Smaller levels ({}) lose more than the budget allows; set another with --budget.",
            smaller_out.join(", ")
        );
    }
    text
}

fn table(levels: &[Level]) -> String {
    let mut md = String::from(
        "| level | file MiB | load s | peak RSS MiB | prompt tok/s (1) | prompt tok/s (8) | decode tok/s (1) | decode tok/s (8) | perplexity | KLD | top-1 |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for l in levels {
        let _ = writeln!(
            md,
            "| {}{} | {:.1} | {:.2} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.4} | {:.5} | {:.1}% |",
            l.name,
            if l.reference { " (reference)" } else { "" },
            mib(l.size_bytes),
            l.load_s,
            mib(l.peak_rss_bytes),
            l.prompt_tok_s_1,
            l.prompt_tok_s_8,
            l.decode_tok_s_1,
            l.decode_tok_s_8,
            l.perplexity,
            l.kld,
            l.top1 * 100.0
        );
    }
    md
}

struct QualityChart<'a>(&'a [Level]);

impl Chart for QualityChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| format!("chart: {e}");
        let levels = self.0;
        let max_x = levels.iter().map(|l| l.decode_tok_s_1).fold(0.0, f64::max) * 1.2 + 1.0;
        let max_y = levels.iter().map(|l| l.kld).fold(0.0, f64::max) * 1.3 + 1e-3;
        let biggest = levels.iter().map(|l| l.size_bytes).max().unwrap_or(1) as f64;
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Quality loss against decode speed (marker: file size)",
                ("sans-serif", 20),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..max_x, 0.0..max_y)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("decode tokens/s, one stream")
            .y_desc("KL divergence from the reference")
            .draw()
            .map_err(|e| err(&e))?;
        for l in levels {
            let radius = (6.0 + 24.0 * (l.size_bytes as f64 / biggest).sqrt()) as i32;
            let point = (l.decode_tok_s_1, l.kld);
            chart
                .draw_series(std::iter::once(Circle::new(
                    point,
                    radius,
                    RGBColor(31, 119, 180).mix(0.5).filled(),
                )))
                .map_err(|e| err(&e))?;
            let label = format!("{} ({:.0} MiB)", l.name, mib(l.size_bytes));
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    point,
                    ("sans-serif", 14).into_font(),
                )))
                .map_err(|e| err(&e))?;
        }
        Ok(())
    }
}

pub fn write(args: &QuantBenchArgs, levels: &[Level]) -> Result<(), String> {
    let out = &args.out;
    let md = format!(
        "# Quantization levels of {}\n\nMeasured in one run on this machine: perplexity and KL divergence on {} \
         ({}-token chunks, llama-perplexity's method), speeds served by lantern with {} thread(s) and 8 slots \
         (medians of {} round(s), levels in turn).\n\n{}\n{}\n\n![quality against speed](report.svg)\n",
        args.model.display(),
        args.text.display(),
        args.ctx,
        args.threads.unwrap_or_else(lantern_engine::default_threads),
        args.rounds.max(1),
        table(levels),
        recommend(levels, args.budget),
    );
    std::fs::write(out.join("report.md"), md)
        .map_err(|e| format!("cannot write report.md: {e}"))?;
    let body = json!({"model": args.model, "text": args.text, "ctx": args.ctx, "budget_percent": args.budget,
                      "levels": levels});
    std::fs::write(out.join("report.json"), format!("{body:#}\n"))
        .map_err(|e| format!("cannot write report.json: {e}"))?;
    both(out, "report", (960, 640), &QualityChart(levels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(name: &str, size: u64, ppl: f64, reference: bool) -> Level {
        Level {
            name: name.into(),
            path: name.into(),
            size_bytes: size,
            reference,
            load_s: 1.0,
            peak_rss_bytes: 1,
            prompt_tok_s_1: 1.0,
            prompt_tok_s_8: 1.0,
            decode_tok_s_1: 10.0,
            decode_tok_s_8: 20.0,
            perplexity: ppl,
            kld: 0.0,
            top1: 1.0,
        }
    }

    #[test]
    fn the_recommendation_is_the_smallest_level_within_the_budget() {
        let levels = [
            level("q8_0", 800, 10.0, true),
            level("q4_k_m", 500, 10.4, false),
            level("q2_k", 300, 13.0, false),
        ];
        let text = recommend(&levels, 5.0);
        assert!(
            text.contains("**q4_k_m**") && text.contains("q2_k"),
            "{text}"
        );
        assert!(recommend(&levels, 50.0).contains("**q2_k**"));
        assert!(recommend(&levels, 1.0).contains("**q8_0**"));
    }
}
