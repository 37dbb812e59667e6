//! Client-side filters shared by `pods`, `ps`, `stats` and `tree`: the ones
//! CRI's server-side filters can't express (regexes, prefixes, latest/last).

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use regex::Regex;

/// `--label k=v` (repeatable) into a CRI label selector.
pub fn labels(args: &[String]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            bail!("--label {arg:?}: expected KEY=VALUE");
        };
        if k.is_empty() {
            bail!("--label {arg:?}: empty key");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// An optional `--name`/`--namespace` regular expression.
pub fn regex(flag: &str, pattern: Option<&str>) -> Result<Option<Regex>> {
    pattern
        .filter(|p| !p.is_empty())
        .map(|p| {
            Regex::new(p).with_context(|| format!("--{flag} {p:?}: invalid regular expression"))
        })
        .transpose()
}

pub fn matches(re: &Option<Regex>, value: &str) -> bool {
    re.as_ref().is_none_or(|re| re.is_match(value))
}

/// Sorts newest first (as crictl does) and applies `--latest` / `--last N`.
pub fn newest_first<T>(
    items: &mut Vec<T>,
    created_at: impl Fn(&T) -> i64,
    latest: bool,
    last: usize,
) {
    items.sort_by_key(|b| std::cmp::Reverse(created_at(b)));
    let keep = if latest { 1 } else { last };
    if keep > 0 {
        items.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selector() {
        let l = labels(&["app=web".into(), "tier=".into()]).unwrap();
        assert_eq!(l["app"], "web");
        assert_eq!(l["tier"], "");
        assert!(
            labels(&["novalue".into()])
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
        assert!(labels(&["=x".into()]).is_err());
    }

    #[test]
    fn regexes() {
        assert!(
            regex("name", Some("("))
                .unwrap_err()
                .to_string()
                .contains("--name \"(\"")
        );
        let re = regex("name", Some("^web")).unwrap();
        assert!(matches(&re, "web-1"));
        assert!(!matches(&re, "db"));
        assert!(matches(&None, "anything"));
    }

    #[test]
    fn latest_and_last() {
        let mut v = vec![1, 5, 3, 4];
        newest_first(&mut v, |x| *x, false, 0);
        assert_eq!(v, [5, 4, 3, 1]);
        newest_first(&mut v, |x| *x, false, 2);
        assert_eq!(v, [5, 4]);
        newest_first(&mut v, |x| *x, true, 0);
        assert_eq!(v, [5]);
    }
}
