//! Syntax errors as people read them: the token found, what was expected
//! (named as the language's words, not the grammar's rules), and a help
//! line for the usual slips.

use super::*;

/// Turns a pest error into a diagnostic: the token found, what was expected.
pub(super) fn syntax_error(
    file: FileId,
    text: &str,
    offset: usize,
    region: &str,
    rule: Rule,
    error: &pest::error::Error<Rule>,
) -> Diagnostic {
    let local = match error.location {
        pest::error::InputLocation::Pos(at) => at,
        pest::error::InputLocation::Span((at, _)) => at,
    };
    let mut expected: Vec<String> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &error.variant {
        for rule in positives {
            if let Some(description) = describe_rule(*rule) {
                push_unique(&mut expected, description.to_string());
            }
        }
    }
    // Re-parse with pest's detailed tracking to learn which literal tokens
    // (`=`, `}`, `]` …) would have been accepted; it is slower, so only now.
    pest::set_error_detail(true);
    if let Err(detailed) = InfraParser::parse(rule, region)
        && let Some(attempts) = detailed.parse_attempts()
        && attempts.max_position == local
    {
        for token in attempts.expected_tokens() {
            if let Some(description) = describe_literal(&token.to_string()) {
                push_unique(&mut expected, description);
            }
        }
    }
    pest::set_error_detail(false);
    expected.sort_by_key(|description| expected_order(description));

    let at = char_boundary_at_or_before(text, offset + local);
    let (found, found_len) = token_at(text, at);
    let span = Span::new(file, at, at + found_len);
    let expected_text = join_alternatives(&expected);
    let message = format!("syntax error: unexpected {found}");
    let label = if expected_text.is_empty() {
        "not expected here".to_string()
    } else {
        format!("expected {expected_text}")
    };
    let help = syntax_help(text, at, &found, &expected);
    Diagnostic::error(Code::Syntax, message)
        .with_label(span, label)
        .with_help(help)
}

pub(super) fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

pub(super) fn expected_order(description: &str) -> (u8, String) {
    let rank = match description {
        "`=`" => 0,
        "a block or attribute" => 1,
        "an expression" => 2,
        "an operator" => 8,
        "end of file" => 9,
        _ => 5,
    };
    (rank, description.to_string())
}

pub(super) fn join_alternatives(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// What the user sees for a rule pest expected; `None` hides internal rules.
pub(super) fn describe_rule(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::attribute | Rule::block => "a block or attribute",
        Rule::identifier => "a name",
        Rule::quoted_label => "a label",
        Rule::block_open => "`{`",
        Rule::block_close => "`}`",
        Rule::close_bracket => "`]`",
        Rule::close_paren => "`)`",
        Rule::expression
        | Rule::number
        | Rule::name_or_call
        | Rule::for_list
        | Rule::for_object
        | Rule::list
        | Rule::object
        | Rule::heredoc
        | Rule::template
        | Rule::parenthesized => "an expression",
        Rule::op_or
        | Rule::op_and
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_mod => "an operator",
        Rule::object_item | Rule::object_key => "an object key",
        Rule::kw_in => "`in`",
        Rule::kw_if => "`if`",
        Rule::EOI => "end of file",
        Rule::interpolation => "`${`",
        _ => return None,
    })
}

pub(super) fn describe_literal(token: &str) -> Option<String> {
    match token {
        "=" | "}" | "]" | ")" | ":" | "?" | "," | "=>" | "{" | "\"" => Some(format!("`{token}`")),
        _ => None,
    }
}

/// The token at a byte offset, for "unexpected …", and its length.
pub(super) fn token_at(text: &str, at: usize) -> (String, usize) {
    let rest = &text[at.min(text.len())..];
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    if first == '\n' || first == '\r' {
        return ("end of line".to_string(), 1);
    }
    if first.is_alphanumeric() || first == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
            .take(40)
            .collect();
        return (format!("`{word}`"), word.len());
    }
    if first == '"' {
        return ("`\"`".to_string(), 1);
    }
    if first.is_control() {
        return (
            format!("character U+{:04X}", first as u32),
            first.len_utf8(),
        );
    }
    (format!("`{first}`"), first.len_utf8())
}

pub(super) fn syntax_help(text: &str, at: usize, found: &str, expected: &[String]) -> String {
    let line_start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_before = &text[line_start..at];
    let in_open_string = line_before.matches('"').count() % 2 == 1;
    if found == "end of line" && in_open_string {
        return "a quoted string must end on the line it starts: close it with `\"`, or use a heredoc (`<<EOT`) for several lines".into();
    }
    if found == "end of file" && expected.iter().any(|e| e == "`}`") {
        return "a block or object is not closed: add the missing `}`".into();
    }
    if found == "end of file" {
        return "the file ends in the middle of an expression: complete it".into();
    }
    if found == "`:`" && expected.iter().any(|e| e == "`=`") {
        return "attributes and object entries are written `name = value`".into();
    }
    if expected.iter().any(|e| e == "`]`") && !expected.iter().any(|e| e == "`=`") {
        return "a list or index is not closed: add `]` (or a `,` before the next element)".into();
    }
    if expected.iter().any(|e| e == "`)`") && !expected.iter().any(|e| e == "`=`") {
        return "a call or parenthesis is not closed: add `)` (or a `,` before the next argument)"
            .into();
    }
    if expected.iter().any(|e| e == "`=`") {
        return "an attribute is written `name = value`; a block is `kind label { … }`".into();
    }
    if expected.iter().any(|e| e == "an expression") {
        return "write a value here: a string, number, list, object, reference or function call"
            .into();
    }
    format!("remove {found} or insert what is expected before it")
}
