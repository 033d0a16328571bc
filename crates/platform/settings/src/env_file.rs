//! The `KEY=VALUE` lines of an env file as the Go platform writes them (its
//! `.env.example` files, docker compose's `env_file`), for tests and tools that need
//! the variables such a file sets. The services themselves read only the process
//! environment.

use std::collections::BTreeMap;

/// A line that is not `KEY=VALUE`, a comment or blank.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("env file line {line}: {text:?} is not KEY=VALUE")]
pub struct EnvFileError {
    line: usize,
    text: String,
}

/// The variables `text` sets: `KEY=VALUE` per line (`export ` allowed before the key,
/// a value in matching single or double quotes taken without them), blank lines and
/// lines starting with `#` skipped; a later line for the same key wins, as in compose.
/// `KEY=` sets `KEY` to the empty string.
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, EnvFileError> {
    let mut vars = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let fail = || EnvFileError {
            line: index + 1,
            text: raw.to_owned(),
        };
        let (key, value) = line.split_once('=').ok_or_else(fail)?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(fail());
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|quote| {
                value
                    .strip_prefix(*quote)
                    .and_then(|rest| rest.strip_suffix(*quote))
            })
            .unwrap_or(value);
        vars.insert(key.to_owned(), unquoted.to_owned());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_env_files() {
        let vars = parse_env_file(
            "# comment\nENV=local\n\nREDIS_USER=\nexport A = \"quoted value\"\nB='x=y'\nenv=dev\n",
        )
        .unwrap();
        assert_eq!(vars["ENV"], "local");
        assert_eq!(vars["env"], "dev");
        assert_eq!(vars["REDIS_USER"], "");
        assert_eq!(vars["A"], "quoted value");
        assert_eq!(vars["B"], "x=y");
        assert_eq!(vars.len(), 5);
    }

    #[test]
    fn a_line_without_a_key_is_refused_with_its_number() {
        let err = parse_env_file("A=1\nnot a pair\n").unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("not a pair"),
            "{err}"
        );
        assert!(parse_env_file("=1").is_err());
    }
}
