//! What the commands print: lines and JSON on stdout (a closed pipe ends the command quietly),
//! tables cut to the terminal's width, and the one line a failure prints on stderr.

use comfy_table::{presets, ColumnConstraint, ContentArrangement, Row, Table};
use serde::Serialize;
use std::io::Write;

/// Writes `text` and a newline to stdout. A reader that went away (`patd … | head`) is an
/// error of kind `BrokenPipe`, which `main` turns into a quiet, successful exit.
pub fn line(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// One JSON document on stdout, compact: what the administration commands print.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    Ok(line(&serde_json::to_string(value)?)?)
}

/// One JSON document on stdout, indented: what `--json` prints.
pub fn json_pretty(value: &impl Serialize) -> anyhow::Result<()> {
    Ok(line(&serde_json::to_string_pretty(value)?)?)
}

/// Whether the command failed only because stdout's reader closed it.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error as one line: each cause of the chain once. Many errors print their source in their
/// own text as well (`database error: <the sqlx error>`), so a cause already said is left out;
/// a period ending a part is dropped, so the parts read as one sentence.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let text = text.trim_end_matches('.').to_owned();
        if text.is_empty() || parts.iter().any(|said| said.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// A column of a table: its title and whether it may be cut when the table is too wide.
pub struct Column {
    pub title: &'static str,
    pub shrinks: bool,
}

/// The width tables are cut to: `COLUMNS` when it is set (as shells export it, and for tests),
/// else the terminal's when stdout is one. Printed to a pipe or a file, a table is never cut.
fn width() -> Option<u16> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse::<u16>().ok())
        .filter(|columns| *columns > 0)
}

/// Renders a table without borders, columns two spaces apart. When a width applies, the
/// columns that may shrink are cut to fit it, each cell to one line ending in `…`; the others
/// (ids, dates) are always shown whole.
pub fn table(columns: &[Column], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    let mut header = Row::from(columns.iter().map(|column| column.title));
    header.max_height(1);
    table.load_style(presets::NOTHING).set_header(header);
    match width() {
        Some(columns) => {
            table
                .set_width(columns)
                .set_content_arrangement(ContentArrangement::Dynamic);
        }
        None if table.is_tty() => {
            table.set_content_arrangement(ContentArrangement::Dynamic);
        }
        None => {}
    }
    for cells in rows {
        let mut row = Row::from(cells);
        row.max_height(1);
        table.add_row(row);
    }
    let last = columns.len().saturating_sub(1);
    for (index, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if index == last { 0 } else { 2 }));
        if let Some(spec) = columns.get(index) {
            if !spec.shrinks {
                column.set_constraint(ColumnConstraint::ContentWidth);
            }
        }
    }
    table.trim_fmt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_each_cause_once() {
        let io = std::io::Error::other("Connection refused (os error 111)");
        let err = anyhow::Error::new(io)
            .context("tcp connect error: Connection refused (os error 111)")
            .context("cannot reach the server.");
        assert_eq!(
            error_line(&err),
            "cannot reach the server: tcp connect error: Connection refused (os error 111)"
        );
        let err = anyhow::anyhow!("first\nsecond.").context("outer");
        assert_eq!(error_line(&err), "outer: first second");
    }

    #[test]
    fn a_broken_pipe_is_found_under_context() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("printing");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
