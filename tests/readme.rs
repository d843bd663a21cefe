//! README.md renders as written: every Markdown table is whole (no rows cut off by a blank line or
//! swallowed by a paragraph, every row with the header's number of cells), no stretch of prose is
//! written twice, and the table of `client` subcommands lists every one the client has.
//!
//! The rules are GitHub's (GFM): a table is a header row, a delimiter row (`|---|`), then rows,
//! and it ends at the first blank line; cells are split at every `|` not escaped as `\|`, inside
//! code spans too. Fenced code blocks are skipped.

const README: &str = include_str!("../README.md");
const CLIENT: &str = include_str!("../examples/client/main.rs");

/// How many words in a row two passages must share to count as written twice.
const REPEATED_WORDS: usize = 8;

/// One line of Markdown outside code blocks, with its 1-based number.
struct Line<'a> {
    number: usize,
    text: &'a str,
}

/// The lines outside fenced code blocks; a fence's lines become blank, so that a table or a
/// paragraph never runs across one.
fn outside_code(markdown: &str) -> Vec<Line<'_>> {
    let mut in_code = false;
    markdown
        .lines()
        .enumerate()
        .map(|(i, text)| {
            let fence =
                text.trim_start().starts_with("```") || text.trim_start().starts_with("~~~");
            if fence {
                in_code = !in_code;
            }
            Line {
                number: i + 1,
                text: if fence || in_code { "" } else { text },
            }
        })
        .collect()
}

fn is_row(text: &str) -> bool {
    text.trim_start().starts_with('|')
}

/// A row's cells, split at unescaped `|`, without the empty pieces outside the outer pipes.
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut chars = row.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let cell = cells.last_mut().expect("at least one cell");
                cell.push(c);
                if let Some(next) = chars.next() {
                    cell.push(next);
                }
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().expect("at least one cell").push(c),
        }
    }
    if cells.first().is_some_and(|c| c.trim().is_empty()) {
        cells.remove(0);
    }
    if cells.last().is_some_and(|c| c.trim().is_empty()) {
        cells.pop();
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

fn is_delimiter(row: &str) -> bool {
    let cells = cells(row);
    !cells.is_empty()
        && cells.iter().all(|c| {
            let dashes = c.trim_start_matches(':').trim_end_matches(':');
            !dashes.is_empty() && dashes.chars().all(|d| d == '-')
        })
}

/// A table: the header's cells and the body rows, each with its line number.
struct Table {
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

/// The tables of `markdown`, and what is wrong with how they are written.
fn tables(markdown: &str) -> (Vec<Table>, Vec<String>) {
    let lines = outside_code(markdown);
    let mut tables = Vec::new();
    let mut problems = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !is_row(lines[i].text) {
            i += 1;
            continue;
        }
        let start = &lines[i];
        let after_text = i > 0 && !lines[i - 1].text.trim().is_empty();
        let has_delimiter = lines.get(i + 1).is_some_and(|l| is_delimiter(l.text));
        if after_text {
            problems.push(format!(
                "line {}: a table row right after a line of text becomes part of that paragraph \
                 (a table must follow a blank line): {}",
                start.number, start.text
            ));
        } else if !has_delimiter {
            problems.push(format!(
                "line {}: a `|` row with no header and delimiter row above it renders as text \
                 (rows cut off from their table by a blank line?): {}",
                start.number, start.text
            ));
        }
        let mut end = i + 1;
        while end < lines.len() && is_row(lines[end].text) {
            end += 1;
        }
        if !after_text && has_delimiter {
            let header = cells(start.text);
            let rows: Vec<(usize, Vec<String>)> = lines[i + 2..end]
                .iter()
                .map(|l| (l.number, cells(l.text)))
                .collect();
            for (number, row) in &rows {
                if row.len() != header.len() {
                    problems.push(format!(
                        "line {number}: {} cells, but the table's header (line {}) has {}",
                        row.len(),
                        start.number,
                        header.len()
                    ));
                }
            }
            tables.push(Table { header, rows });
        }
        i = end;
    }
    (tables, problems)
}

/// Passages of prose (not tables, headings or code) that share [`REPEATED_WORDS`] words in a
/// row with an earlier one.
fn repeated_prose(markdown: &str) -> Vec<String> {
    let mut words: Vec<(usize, String)> = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut flush = |words: &mut Vec<(usize, String)>, problems: &mut Vec<String>| {
        for window in words.windows(REPEATED_WORDS) {
            let key: Vec<&str> = window.iter().map(|(_, w)| w.as_str()).collect();
            let key = key.join(" ");
            let here = window[0].0;
            match seen.get(&key) {
                Some(&first) if first != here => {
                    problems.push(format!(
                        "line {here} repeats line {first}: \"{key}\" (a paragraph written twice?)"
                    ));
                    break;
                }
                Some(_) => {}
                None => {
                    seen.insert(key, here);
                }
            }
        }
        words.clear();
    };
    for line in outside_code(markdown) {
        let text = line.text.trim();
        if text.is_empty() || is_row(text) || text.starts_with('#') {
            // A paragraph ends here: no run of words spans two paragraphs.
            flush(&mut words, &mut problems);
            continue;
        }
        for word in text.split_whitespace() {
            let word: String = word
                .chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect();
            if !word.is_empty() {
                words.push((line.number, word));
            }
        }
    }
    flush(&mut words, &mut problems);
    problems
}

/// Every subcommand `examples/client/main.rs` declares with `sub("name", ...)`.
fn client_subcommands() -> Vec<&'static str> {
    CLIENT
        .lines()
        .filter_map(|line| line.trim().strip_prefix("sub(\"")?.split('"').next())
        .collect()
}

#[test]
fn every_table_is_whole_and_every_row_has_the_headers_cells() {
    let (tables, problems) = tables(README);
    assert!(problems.is_empty(), "README.md:\n{}", problems.join("\n"));
    assert!(tables.len() >= 5, "found only {} tables", tables.len());
}

#[test]
fn no_prose_is_written_twice() {
    let problems = repeated_prose(README);
    assert!(problems.is_empty(), "README.md:\n{}", problems.join("\n"));
}

#[test]
fn the_client_table_lists_every_subcommand() {
    let subcommands = client_subcommands();
    assert!(
        subcommands.len() >= 7,
        "found only {subcommands:?} in examples/client/main.rs's SUBCOMMANDS"
    );
    let (tables, _) = tables(README);
    let table = tables
        .iter()
        .find(|t| t.header.first().is_some_and(|h| h == "subcommand"))
        .expect("README.md has a table whose first column is `subcommand`");
    let listed: Vec<&str> = table
        .rows
        .iter()
        .filter_map(|(_, row)| row.first()?.strip_prefix('`')?.strip_suffix('`'))
        .collect();
    assert_eq!(
        listed, subcommands,
        "README's client table against SUBCOMMANDS"
    );
}

// The checks themselves, on the kinds of breakage they exist for.

const GOOD: &str = "Text.\n\n| a | b |\n|---|:-:|\n| `x\\|y` | 2 |\n| 3 | 4 |\n\nMore text.\n";

#[test]
fn a_whole_table_passes() {
    let (tables, problems) = tables(GOOD);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].header, ["a", "b"]);
    assert_eq!(
        tables[0].rows[0],
        (5, vec!["`x\\|y`".to_string(), "2".into()])
    );
}

#[test]
fn rows_cut_off_by_a_blank_line_are_found() {
    let md = "| a | b |\n|---|---|\n| 1 | 2 |\n\n| 3 | 4 |\n| 5 | 6 |\n";
    let (_, problems) = tables(md);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("line 5: "), "{problems:?}");
}

#[test]
fn rows_swallowed_by_a_paragraph_are_found() {
    let md = "| a | b |\n|---|---|\n| 1 | 2 |\n\nA paragraph\nabout keys.\n| 3 | 4 |\n";
    let (_, problems) = tables(md);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("line 7: "), "{problems:?}");
}

#[test]
fn a_row_with_the_wrong_number_of_cells_is_found() {
    // An unescaped `|` inside a code span splits the cell, as on GitHub.
    let md = "| a | b |\n|---|---|\n| `x|y` | 2 |\n";
    let (_, problems) = tables(md);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("3 cells"), "{problems:?}");
}

#[test]
fn code_blocks_are_not_tables() {
    let md = "Text.\n```\n| not | a table\n```\n";
    assert_eq!(tables(md).1, Vec::<String>::new());
}

#[test]
fn a_paragraph_written_twice_is_found_and_different_ones_are_not() {
    let twice = "`cargo test` runs these clients against the examples when `python3` is\n\
                 installed, and says it skipped them when it is not.\n\
                 \n\
                 `cargo test` runs both clients against the examples in every mode when\n\
                 `python3` is installed, and says it skipped them when it is not.\n";
    let problems = repeated_prose(twice);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("line 4 repeats line 1"),
        "{problems:?}"
    );
    assert_eq!(repeated_prose(GOOD), Vec::<String>::new());
}
