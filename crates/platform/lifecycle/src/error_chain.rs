//! [`ErrorChain`]: how the platform shows an error, on one line with all its causes.

use std::{error::Error, fmt};

/// Displays an error followed by each of its causes (`source()`), separated by `": "`:
/// `a: b: c`, on one line (a cause written over several lines, as PostgreSQL's
/// `DETAIL:` and `HINT:`, has its lines joined with `"; "`).
///
/// The platform's errors follow one convention that makes this the whole story: an
/// error's own message says what failed at its level, and a cause it keeps as a value
/// is its `source()`, never also written into that message. So each cause shows
/// once, here. Anything that shows an error to a person (a log line, `/readyz`, a
/// binary's last words) shows it through this, not through `Display` alone.
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_one_line(f, &self.0.to_string())?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            f.write_str(": ")?;
            write_one_line(f, &error.to_string())?;
            cause = error.source();
        }
        Ok(())
    }
}

fn write_one_line(f: &mut fmt::Formatter<'_>, message: &str) -> fmt::Result {
    let mut lines = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty());
    if let Some(first) = lines.next() {
        f.write_str(first)?;
    }
    for line in lines {
        f.write_str("; ")?;
        f.write_str(line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Leaf(&'static str);

    #[derive(Debug, thiserror::Error)]
    #[error("transport error")]
    struct Transport(#[source] Leaf);

    #[derive(Debug, thiserror::Error)]
    #[error("gRPC server failed")]
    struct Server(#[source] Transport);

    #[test]
    fn the_chain_shows_each_error_then_its_causes() {
        let error = Server(Transport(Leaf("connection reset by peer")));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "gRPC server failed: transport error: connection reset by peer"
        );
        let leaf = Leaf("alone");
        assert_eq!(ErrorChain(&leaf).to_string(), "alone");
    }

    #[test]
    fn a_message_over_several_lines_is_shown_on_one() {
        let error = Transport(Leaf(
            "ERROR: new row violates check constraint\nDETAIL: Failing row contains (0).\n",
        ));
        assert_eq!(
            ErrorChain(&error).to_string(),
            "transport error: ERROR: new row violates check constraint; DETAIL: Failing row contains (0)."
        );
    }
}
