//! Kubernetes label queries (`app=web,tier in (a,b),!legacy`) turned into the
//! `LabelSelector` of a Link, the way `linkerd multicluster link-gen` does: `k=v` becomes
//! `matchLabels`, everything else `matchExpressions`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::names::{self, NameError};

/// Why a label query cannot be turned into a selector. Each message names the query or
/// the requirement it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Two commas in a row, or a comma at an end.
    #[error("`{query}` has an empty requirement (two commas in a row?)")]
    EmptyRequirement {
        /// The whole query.
        query: String,
    },
    /// `key in ()`.
    #[error("`{requirement}` needs at least one value inside the parentheses")]
    NoValues {
        /// The requirement.
        requirement: String,
    },
    /// A `)` that closes nothing.
    #[error("`{query}` has a `)` without `(`")]
    UnopenedParenthesis {
        /// The whole query.
        query: String,
    },
    /// A `(` that is never closed.
    #[error("`{query}` has a `(` without `)`")]
    UnclosedParenthesis {
        /// The whole query.
        query: String,
    },
    /// A key that is not a Kubernetes label key.
    #[error("label key `{key}` {problem}")]
    Key {
        /// The key as written.
        key: String,
        /// The rule it breaks.
        #[source]
        problem: NameError,
    },
    /// A value that is not a Kubernetes label value.
    #[error("label value `{value}` {problem}")]
    Value {
        /// The value as written.
        value: String,
        /// The rule it breaks.
        #[source]
        problem: NameError,
    },
}

impl crate::diagnostic::Hint for SelectorError {
    fn hint(&self) -> Option<String> {
        // The `selector` finding that quotes it says how to write a query.
        None
    }
}

/// Parse a label query. An empty query gives an empty selector, which Linkerd treats as
/// matching nothing (callers warn about it).
pub fn parse_label_query(query: &str) -> Result<LabelSelector, SelectorError> {
    let mut match_labels = BTreeMap::new();
    let mut match_expressions = Vec::new();
    for requirement in split_top_level(query)? {
        let req = requirement.trim();
        if req.is_empty() {
            return Err(SelectorError::EmptyRequirement {
                query: query.to_string(),
            });
        }
        if let Some(key) = req.strip_prefix('!') {
            check_key(key.trim())?;
            match_expressions.push(expression(key.trim(), "DoesNotExist", None));
        } else if let Some((key, value)) = req.split_once("!=") {
            check_key(key.trim())?;
            check_value(value.trim())?;
            match_expressions.push(expression(
                key.trim(),
                "NotIn",
                Some(vec![value.trim().to_string()]),
            ));
        } else if let Some((key, value)) = req.split_once("==").or_else(|| req.split_once('=')) {
            check_key(key.trim())?;
            check_value(value.trim())?;
            match_labels.insert(key.trim().to_string(), value.trim().to_string());
        } else if let Some((key, op, values)) = set_requirement(req) {
            check_key(key)?;
            let values = values
                .split(',')
                .map(str::trim)
                .map(|v| check_value(v).map(|()| v.to_string()))
                .collect::<Result<Vec<_>, _>>()?;
            if values.is_empty() || values.iter().any(String::is_empty) {
                return Err(SelectorError::NoValues {
                    requirement: req.to_string(),
                });
            }
            match_expressions.push(expression(key, op, Some(values)));
        } else {
            check_key(req)?;
            match_expressions.push(expression(req, "Exists", None));
        }
    }
    Ok(LabelSelector {
        match_labels: (!match_labels.is_empty()).then_some(match_labels),
        match_expressions: (!match_expressions.is_empty()).then_some(match_expressions),
    })
}

/// The label query that [`parse_label_query`] turns into `selector` (the way back, for
/// `import`): `matchLabels` as `k=v`, then each expression. `None` for an operator
/// Kubernetes does not define.
pub fn to_label_query(selector: &LabelSelector) -> Option<String> {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        parts.push(match (e.operator.as_str(), values.as_slice()) {
            ("Exists", _) => e.key.clone(),
            ("DoesNotExist", _) => format!("!{}", e.key),
            ("NotIn", [one]) => format!("{}!={one}", e.key),
            ("In", _) => format!("{} in ({})", e.key, values.join(",")),
            ("NotIn", _) => format!("{} notin ({})", e.key, values.join(",")),
            _ => return None,
        });
    }
    Some(parts.join(","))
}

/// Whether a selector has no requirement at all (Linkerd: matches nothing).
pub fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && selector.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

fn expression(key: &str, operator: &str, values: Option<Vec<String>>) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values,
    }
}

/// `key in (a,b)` / `key notin (a,b)`.
fn set_requirement(req: &str) -> Option<(&str, &'static str, &str)> {
    let open = req.find('(')?;
    let inner = req[open + 1..].strip_suffix(')')?;
    let head = req[..open].trim();
    let (key, op) = head.rsplit_once(char::is_whitespace)?;
    let op = match op {
        "in" => "In",
        "notin" => "NotIn",
        _ => return None,
    };
    Some((key.trim(), op, inner))
}

/// Split on commas that are not inside parentheses.
fn split_top_level(query: &str) -> Result<Vec<&str>, SelectorError> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in query.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError::UnopenedParenthesis {
                        query: query.to_string(),
                    })?;
            }
            ',' if depth == 0 => {
                parts.push(&query[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError::UnclosedParenthesis {
            query: query.to_string(),
        });
    }
    parts.push(&query[start..]);
    Ok(parts)
}

fn check_key(key: &str) -> Result<(), SelectorError> {
    names::label_key(key).map_err(|problem| SelectorError::Key {
        key: key.to_string(),
        problem,
    })
}

fn check_value(value: &str) -> Result<(), SelectorError> {
    names::label_value(value).map_err(|problem| SelectorError::Value {
        value: value.to_string(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_reads_back_as_the_query_that_makes_it() {
        for query in [
            "mirror.linkerd.io/exported=true",
            "a=b,c=d,!legacy,tier in (x,y),env!=prod,zone notin (a,b),present",
        ] {
            let selector = parse_label_query(query).unwrap();
            let back = to_label_query(&selector).unwrap();
            assert_eq!(parse_label_query(&back).unwrap(), selector, "{query} -> {back}");
        }
    }

    #[test]
    fn equality_goes_to_match_labels() {
        let s = parse_label_query("mirror.linkerd.io/exported=true").unwrap();
        assert_eq!(s.match_labels.unwrap()["mirror.linkerd.io/exported"], "true");
        assert!(s.match_expressions.is_none());
    }

    #[test]
    fn set_and_existence_go_to_expressions() {
        let s = parse_label_query("tier in (a, b),!legacy,app!=x,team").unwrap();
        let ops: Vec<_> = s
            .match_expressions
            .unwrap()
            .into_iter()
            .map(|e| e.operator)
            .collect();
        assert_eq!(ops, ["In", "DoesNotExist", "NotIn", "Exists"]);
    }

    #[test]
    fn rejects_bad_queries() {
        assert!(parse_label_query("a in (").is_err());
        assert!(parse_label_query("a=b,,c=d").is_err());
        assert!(parse_label_query("bad key=x").is_err());
        assert!(is_empty(&parse_label_query("").unwrap()));
    }
}
