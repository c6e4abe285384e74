//! Each prompt's answers from every endpoint side by side, for a person to compare quality:
//! Markdown, and a self-contained HTML page (answers are untrusted text, always escaped).

use std::fmt::Write as _;
use std::path::Path;

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `answers[prompt][endpoint]`; None where every request for it failed.
pub fn write(
    dir: &Path,
    prompts: &[String],
    labels: &[String],
    answers: &[Vec<Option<String>>],
) -> Result<(), String> {
    let missing = "(no answer: the requests failed)";
    let mut md = String::from("# Answers side by side\n");
    for (prompt, row) in prompts.iter().zip(answers) {
        let _ = write!(md, "\n## {}\n", prompt.replace('\n', " "));
        for (label, answer) in labels.iter().zip(row) {
            let text = answer.as_deref().unwrap_or(missing);
            let quoted: Vec<String> = text.lines().map(|l| format!("> {l}")).collect();
            let _ = write!(md, "\n**{label}**\n\n{}\n", quoted.join("\n"));
        }
    }
    let mut html = String::from(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Answers side by side</title>",
        "<style>body{font:15px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;",
        "width:100%}td,th{border:1px solid #ccc;padding:.6em;vertical-align:top;text-align:left}",
        "th{background:#f4f4f4}pre{white-space:pre-wrap;margin:0;font:inherit}</style></head>",
        "<body><h1>Answers side by side</h1><table><tr><th>prompt</th>"
    ));
    for label in labels {
        let _ = write!(html, "<th>{}</th>", html_escape(label));
    }
    html.push_str("</tr>");
    for (prompt, row) in prompts.iter().zip(answers) {
        let _ = write!(html, "<tr><td><pre>{}</pre></td>", html_escape(prompt));
        for answer in row {
            let text = answer.as_deref().unwrap_or(missing);
            let _ = write!(html, "<td><pre>{}</pre></td>", html_escape(text));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></body></html>\n");
    for (name, body) in [("answers.md", md), ("answers.html", html)] {
        std::fs::write(dir.join(name), body).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_output_is_escaped_in_the_page() {
        let dir = std::env::temp_dir().join(format!("lantern-answers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let answers = vec![vec![Some("<script>alert(1)</script>".to_string()), None]];
        super::write(&dir, &["p".into()], &["a".into(), "b".into()], &answers).unwrap();
        let html = std::fs::read_to_string(dir.join("answers.html")).unwrap();
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        let md = std::fs::read_to_string(dir.join("answers.md")).unwrap();
        assert!(md.contains("requests failed"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
