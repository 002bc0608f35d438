//! Expand-only migrations: a blue/green rollout runs the old and the new release against one
//! schema, and a rollback puts the old release back on the schema the new one left. So a
//! migration may add (tables, columns, indexes) but never take away or rename what a previous
//! release reads. [`contracting`] finds the statements that would; a unit test holds every
//! migration in `webapp/migrations` to it, so CI fails on one.
//!
//! Dropping a column is done in two releases: the first stops reading it, the one after (once no
//! running release reads it) may drop it, in a migration marked `-- plinth: contract` on a line
//! of its own, which says the previous release no longer reads what it removes.

/// The marker that allows a migration to contract the schema (see the module's docs).
pub const CONTRACT_MARKER: &str = "-- plinth: contract";

/// One statement of a migration that takes away or renames part of the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contracting {
    /// What it does: `DROP TABLE`, `DROP COLUMN`, `RENAME`, `CHANGE COLUMN`, `TRUNCATE`, …
    pub operation: &'static str,
    /// The statement, comments removed and whitespace collapsed.
    pub statement: String,
}

/// The statements of `sql` that drop or rename a table or a column, or empty one. A migration
/// carrying [`CONTRACT_MARKER`] on a line of its own contracts on purpose: none is reported.
pub fn contracting(sql: &str) -> Vec<Contracting> {
    if sql.lines().any(|line| line.trim() == CONTRACT_MARKER) {
        return Vec::new();
    }
    statements(&without_comments(sql))
        .into_iter()
        .filter_map(|statement| {
            let words: Vec<String> = statement
                .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
                .filter(|w| !w.is_empty())
                .map(str::to_ascii_uppercase)
                .collect();
            operation(&words).map(|operation| Contracting {
                operation,
                statement,
            })
        })
        .collect()
}

/// What a statement's words take away, if anything.
fn operation(words: &[String]) -> Option<&'static str> {
    let word = |i: usize| words.get(i).map(String::as_str);
    match (word(0), word(1)) {
        (Some("DROP"), Some("TABLE" | "DATABASE" | "SCHEMA" | "VIEW")) => {
            return Some("DROP TABLE");
        }
        (Some("TRUNCATE"), _) => return Some("TRUNCATE"),
        (Some("RENAME"), Some("TABLE")) => return Some("RENAME TABLE"),
        (Some("ALTER"), Some("TABLE")) => {}
        _ => return None,
    }
    // ALTER TABLE t <change>[, <change>]…: each DROP, RENAME or CHANGE clause.
    words.iter().enumerate().skip(3).find_map(|(i, w)| {
        let next = word(i + 1);
        match w.as_str() {
            // Indexes and constraints may go: no release reads them by name.
            "DROP" => match next {
                Some("INDEX" | "KEY" | "FOREIGN" | "PRIMARY" | "CONSTRAINT" | "CHECK") => None,
                _ => Some("DROP COLUMN"),
            },
            "RENAME" => match next {
                Some("INDEX" | "KEY") => None,
                _ => Some("RENAME"),
            },
            // CHANGE [COLUMN] old new definition: a rename (or a retype) in MySQL.
            "CHANGE" => Some("CHANGE COLUMN"),
            _ => None,
        }
    })
}

/// `sql` without `--` and `#` line comments and `/* */` block comments, and with string
/// literals emptied (`''`), so neither a word nor a `;` inside them counts; quoted identifiers
/// are kept.
fn without_comments(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == '\\' && q != '`' {
                chars.next();
                continue;
            }
            if q == '`' || c == q {
                out.push(c);
            }
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                out.push(c);
            }
            '-' if chars.peek() == Some(&'-') => skip_line(&mut chars),
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}

/// The statements of comment-free `sql`, whitespace collapsed, empty ones left out.
fn statements(sql: &str) -> Vec<String> {
    sql.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::database::MIGRATOR;

    #[test]
    fn every_migration_only_expands_the_schema() {
        assert!(MIGRATOR.iter().count() > 0, "the migrations are embedded");
        for migration in MIGRATOR.iter() {
            let found = contracting(migration.sql.as_str());
            assert!(
                found.is_empty(),
                "migration {} ({}) contracts the schema, which a rollback cannot read: {found:?}; \
                 drop or rename in a later release, marked {CONTRACT_MARKER:?}",
                migration.version,
                migration.description
            );
        }
    }

    #[test]
    fn drops_renames_and_changes_of_columns_and_tables_are_found() {
        let cases = [
            ("ALTER TABLE jobs DROP COLUMN source_type;", "DROP COLUMN"),
            ("alter table jobs drop source_type", "DROP COLUMN"),
            (
                "ALTER TABLE jobs ADD COLUMN a INT, DROP COLUMN b;",
                "DROP COLUMN",
            ),
            ("ALTER TABLE jobs RENAME COLUMN name TO job_name;", "RENAME"),
            ("ALTER TABLE jobs RENAME TO ingestion_jobs;", "RENAME"),
            ("RENAME TABLE jobs TO ingestion_jobs;", "RENAME TABLE"),
            (
                "ALTER TABLE jobs CHANGE name job_name VARCHAR(255);",
                "CHANGE COLUMN",
            ),
            ("DROP TABLE IF EXISTS records;", "DROP TABLE"),
            ("TRUNCATE TABLE records;", "TRUNCATE"),
        ];
        for (sql, operation) in cases {
            let found = contracting(sql);
            assert_eq!(found.len(), 1, "{sql}: {found:?}");
            assert_eq!(found[0].operation, operation, "{sql}");
        }
    }

    #[test]
    fn additions_index_changes_comments_and_strings_pass() {
        let sql = "
            -- DROP TABLE jobs; (a comment)
            # DROP COLUMN x
            /* ALTER TABLE jobs DROP COLUMN y; */
            CREATE TABLE IF NOT EXISTS notes (id BIGINT PRIMARY KEY, body TEXT);
            ALTER TABLE jobs ADD COLUMN job_name VARCHAR(255) NULL, ADD INDEX jobs_name (job_name);
            ALTER TABLE jobs DROP INDEX jobs_old, RENAME INDEX a TO b;
            INSERT INTO notes (id, body) VALUES (1, 'DROP TABLE jobs; ALTER TABLE x DROP y');
        ";
        assert_eq!(contracting(sql), Vec::new());
    }

    #[test]
    fn a_marked_contract_migration_may_drop() {
        let sql = format!("{CONTRACT_MARKER}\nALTER TABLE jobs DROP COLUMN source_type;\n");
        assert!(contracting(&sql).is_empty());
        let mentioned = "-- not a marker: plinth: contract\nALTER TABLE jobs DROP COLUMN b;";
        assert_eq!(contracting(mentioned).len(), 1);
    }
}
