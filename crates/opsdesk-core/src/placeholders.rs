//! Placeholders in rule, macro and notification text, in the Liquid syntax Zendesk uses:
//! `{{ticket.id}}`, `{{ticket.requester.name | upcase}}`, `{% if ticket.status == "solved" %}…
//! {% else %}…{% endif %}`. Values come from a flat map the caller fills; an unknown placeholder
//! renders empty, as in Zendesk.
//!
//! Supported: output tags with filters (`upcase`, `downcase`, `capitalize`, `strip`,
//! `default: "x"`, `truncate: n`, `escape`, `append: "x"`, `prepend: "x"`, `replace: "a", "b"`,
//! `size`); `if` / `elsif` / `else` / `endif`, `unless` / `endunless` with `==`, `!=`,
//! `contains`, `>`, `<`, `>=`, `<=`, `and`, `or`, literals and `blank`/`empty`/`nil`;
//! `comment` and `raw` blocks. Other tags (`for`, `case`, `assign`, …) are left as written.
//! Rendering is linear in the template, nesting is bounded, and output is capped.

use std::collections::HashMap;

/// The largest rendered text.
pub const MAX_OUTPUT: usize = 64 * 1024;
/// Deepest nesting of `if`/`unless` blocks.
const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy)]
enum Token<'a> {
    Text(&'a str),
    Output(&'a str),
    /// A `{% … %}` tag: its inside, and its whole text (kept for unknown tags).
    Tag(&'a str, &'a str),
}

fn tokenize(t: &str) -> Vec<Token<'_>> {
    let mut out = vec![];
    let mut rest = t;
    loop {
        let o = rest.find("{{");
        let g = rest.find("{%");
        let (start, tag) = match (o, g) {
            (None, None) => break,
            (Some(a), Some(b)) if b < a => (b, true),
            (Some(a), _) => (a, false),
            (None, Some(b)) => (b, true),
        };
        let close = if tag { "%}" } else { "}}" };
        let Some(end) = rest[start + 2..].find(close) else {
            break;
        };
        if start > 0 {
            out.push(Token::Text(&rest[..start]));
        }
        let inner = &rest[start + 2..start + 2 + end];
        let whole = &rest[start..start + 2 + end + 2];
        out.push(if tag {
            Token::Tag(inner.trim().trim_matches('-').trim(), whole)
        } else {
            Token::Output(inner.trim().trim_matches('-').trim())
        });
        rest = &rest[start + 2 + end + 2..];
    }
    if !rest.is_empty() {
        out.push(Token::Text(rest));
    }
    out
}

/// A literal or a variable's value (None: nil).
fn operand(s: &str, v: &HashMap<String, String>) -> Option<String> {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        return Some(s[1..s.len() - 1].to_string());
    }
    if s.parse::<f64>().is_ok() {
        return Some(s.to_string());
    }
    match s {
        "nil" | "null" => None,
        "true" | "false" => Some(s.to_string()),
        "blank" | "empty" => Some(String::new()),
        _ => v.get(s).cloned(),
    }
}

fn truthy(x: &Option<String>) -> bool {
    matches!(x, Some(s) if !s.is_empty() && s != "false")
}

fn compare(a: &Option<String>, op: &str, b: &Option<String>) -> bool {
    let num = |x: &Option<String>| x.as_deref().and_then(|s| s.trim().parse::<f64>().ok());
    let text = |x: &Option<String>| x.clone().unwrap_or_default();
    match op {
        "==" => text(a) == text(b),
        "!=" | "<>" => text(a) != text(b),
        "contains" => text(a).contains(&text(b)),
        ">" | "<" | ">=" | "<=" => match (num(a), num(b)) {
            (Some(x), Some(y)) => match op {
                ">" => x > y,
                "<" => x < y,
                ">=" => x >= y,
                _ => x <= y,
            },
            _ => false,
        },
        _ => false,
    }
}

/// Split at the characters `is_sep` finds outside quotes; every piece is kept (empty ones too).
fn split_outside_quotes(s: &str, is_sep: impl Fn(char) -> bool) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for ch in s.chars() {
        match quote {
            Some(q) => {
                cur.push(ch);
                if ch == q {
                    quote = None;
                }
            }
            None if ch == '"' || ch == '\'' => {
                quote = Some(ch);
                cur.push(ch);
            }
            None if is_sep(ch) => out.push(std::mem::take(&mut cur)),
            None => cur.push(ch),
        }
    }
    out.push(cur);
    out
}

/// The words of a condition (`a == "x y" and b`), quotes kept together.
fn split_words(s: &str) -> Vec<String> {
    split_outside_quotes(s, char::is_whitespace)
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect()
}

/// `a == "x" and b or c`: Liquid evaluates `and`/`or` from the right.
fn condition(expr: &str, v: &HashMap<String, String>) -> bool {
    let words = split_words(expr);
    fn eval(words: &[String], v: &HashMap<String, String>) -> bool {
        if let Some(i) = words.iter().position(|w| w == "and" || w == "or") {
            let left = eval_simple(&words[..i], v);
            let right = eval(&words[i + 1..], v);
            return if words[i] == "and" {
                left && right
            } else {
                left || right
            };
        }
        eval_simple(words, v)
    }
    fn eval_simple(words: &[String], v: &HashMap<String, String>) -> bool {
        match words {
            [a] => truthy(&operand(a, v)),
            [a, op, b] => compare(&operand(a, v), op, &operand(b, v)),
            _ => false,
        }
    }
    eval(&words, v)
}

fn filter_args(s: &str, v: &HashMap<String, String>) -> Vec<String> {
    let mut args = split_outside_quotes(s, |c| c == ',');
    if args.last().is_some_and(|a| a.trim().is_empty()) {
        args.pop();
    }
    args.iter()
        .map(|a| operand(a, v).unwrap_or_default())
        .collect()
}

fn output(expr: &str, v: &HashMap<String, String>) -> String {
    let parts = split_outside_quotes(expr, |c| c == '|');
    let mut val = operand(parts.first().map_or("", |p| p.as_str()), v).unwrap_or_default();
    for f in &parts[1..] {
        let (name, args) = match f.split_once(':') {
            Some((n, a)) => (n.trim(), filter_args(a, v)),
            None => (f.trim(), vec![]),
        };
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        val = match name {
            "upcase" => val.to_uppercase(),
            "downcase" => val.to_lowercase(),
            "capitalize" => {
                let mut c = val.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().chain(c).collect(),
                    None => val,
                }
            }
            "strip" => val.trim().to_string(),
            "default" if val.is_empty() => arg(0),
            "append" => val + &arg(0),
            "prepend" => arg(0) + &val,
            // An empty search string would insert the replacement between every character.
            "replace" if arg(0).is_empty() => val,
            "replace" => {
                let (from, to) = (arg(0), arg(1));
                let grows = to.len().saturating_sub(from.len());
                if grows > 0
                    && val.matches(&from).count().saturating_mul(grows) + val.len() > MAX_OUTPUT
                {
                    val
                } else {
                    val.replace(&from, &to)
                }
            }
            "size" => val.chars().count().to_string(),
            "escape" => val
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;"),
            "truncate" => {
                let n: usize = arg(0).parse().unwrap_or(50);
                if val.chars().count() > n {
                    let keep = n.saturating_sub(3);
                    val.chars().take(keep).collect::<String>() + "..."
                } else {
                    val
                }
            }
            _ => val,
        };
        // Every filter's result is bounded, so a chain cannot grow without limit.
        if val.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !val.is_char_boundary(cut) {
                cut -= 1;
            }
            val.truncate(cut);
        }
    }
    val
}

/// Render `template`.
pub fn render(template: &str, values: &HashMap<String, String>) -> String {
    render_with(template, values, &|s| s.to_string())
}

/// Render `template`, passing each placeholder's output (after its filters) through
/// `escape` — for bodies in JSON, XML or form encoding, where a value must not break out.
pub fn render_with(
    template: &str,
    values: &HashMap<String, String>,
    escape: &dyn Fn(&str) -> String,
) -> String {
    let tokens = tokenize(template);
    let mut out = String::with_capacity(template.len());
    // One frame per open if/unless: (this branch is shown, a branch was already taken,
    // the enclosing block is shown).
    let mut stack: Vec<(bool, bool, bool)> = vec![];
    let mut raw = false;
    let mut comment = false;
    let shown = |stack: &Vec<(bool, bool, bool)>| stack.last().is_none_or(|f| f.0 && f.2);
    for tok in tokens {
        if out.len() > MAX_OUTPUT {
            break;
        }
        match tok {
            Token::Tag(t, _) if raw && t == "endraw" => raw = false,
            Token::Tag(t, _) if comment && t == "endcomment" => comment = false,
            _ if comment => {}
            Token::Text(s) | Token::Output(s) | Token::Tag(_, s) if raw => {
                if shown(&stack) {
                    match tok {
                        Token::Output(inner) => {
                            out.push_str("{{");
                            out.push_str(inner);
                            out.push_str("}}");
                        }
                        _ => out.push_str(s),
                    }
                }
            }
            Token::Text(s) => {
                if shown(&stack) {
                    out.push_str(s);
                }
            }
            Token::Output(e) => {
                if shown(&stack) {
                    out.push_str(&escape(&output(e, values)));
                }
            }
            Token::Tag(t, whole) => {
                let (name, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
                match name {
                    "raw" => raw = true,
                    "comment" => comment = true,
                    "if" | "unless" => {
                        let outer = shown(&stack);
                        if stack.len() >= MAX_DEPTH {
                            // Too deep: show nothing more of this template's blocks.
                            stack.push((false, true, false));
                            continue;
                        }
                        let c = condition(rest, values);
                        let c = if name == "if" { c } else { !c };
                        stack.push((c, c, outer));
                    }
                    "elsif" => {
                        if let Some(f) = stack.last_mut() {
                            let c = !f.1 && condition(rest, values);
                            f.0 = c;
                            f.1 |= c;
                        }
                    }
                    "else" => {
                        if let Some(f) = stack.last_mut() {
                            f.0 = !f.1;
                            f.1 = true;
                        }
                    }
                    "endif" | "endunless" => {
                        stack.pop();
                    }
                    _ => {
                        if shown(&stack) {
                            out.push_str(whole);
                        }
                    }
                }
            }
        }
    }
    if out.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vals() -> HashMap<String, String> {
        [
            ("ticket.id", "42"),
            ("ticket.requester.first_name", "Cora"),
            ("ticket.status", "solved"),
            ("ticket.priority", ""),
            ("ticket.title", "  Printer on fire  "),
            ("ticket.tags", "vip hardware"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn renders_known_and_blanks_unknown() {
        let v = vals();
        assert_eq!(
            render(
                "Hi {{ticket.requester.first_name}}, ticket #{{ ticket.id }}.",
                &v
            ),
            "Hi Cora, ticket #42."
        );
        assert_eq!(render("x{{ticket.nope}}y", &v), "xy");
        assert_eq!(render("unclosed {{ticket.id", &v), "unclosed {{ticket.id");
    }

    #[test]
    fn filters() {
        let v = vals();
        assert_eq!(
            render("{{ticket.requester.first_name | upcase}}", &v),
            "CORA"
        );
        assert_eq!(
            render("{{ ticket.title | strip | downcase }}", &v),
            "printer on fire"
        );
        assert_eq!(
            render("{{ticket.priority | default: \"normal\"}}", &v),
            "normal"
        );
        assert_eq!(
            render("{{ticket.title | strip | truncate: 10}}", &v),
            "Printer..."
        );
        assert_eq!(
            render("{{ticket.id | prepend: \"#\" | append: '!'}}", &v),
            "#42!"
        );
        assert_eq!(
            render("{{ticket.tags | replace: \"vip\", \"VIP\"}}", &v),
            "VIP hardware"
        );
        assert_eq!(render("{{\"<b>\" | escape}}", &v), "&lt;b&gt;");
        assert_eq!(render("{{ticket.id | nosuchfilter}}", &v), "42");
        // A quoted pipe or comma is an argument, not a separator.
        assert_eq!(
            render("{{ticket.tags | replace: \" \", \"|\"}}", &v),
            "vip|hardware"
        );
        assert_eq!(
            render("{{ticket.tags | replace: \" \", \", \"}}", &v),
            "vip, hardware"
        );
    }

    #[test]
    fn conditionals() {
        let v = vals();
        let t = "{% if ticket.status == \"solved\" %}Solved{% elsif ticket.status == 'open' %}Open{% else %}Other{% endif %}";
        assert_eq!(render(t, &v), "Solved");
        let mut w = v.clone();
        w.insert("ticket.status".into(), "open".into());
        assert_eq!(render(t, &w), "Open");
        w.insert("ticket.status".into(), "new".into());
        assert_eq!(render(t, &w), "Other");
        assert_eq!(
            render("{% if ticket.priority %}P{% else %}none{% endif %}", &v),
            "none"
        );
        assert_eq!(
            render("{% unless ticket.priority %}no priority{% endunless %}", &v),
            "no priority"
        );
        assert_eq!(
            render(
                "{% if ticket.tags contains \"vip\" and ticket.id > 40 %}VIP{% endif %}",
                &v
            ),
            "VIP"
        );
        assert_eq!(
            render(
                "{% if ticket.nope or ticket.id == \"42\" %}y{% endif %}",
                &v
            ),
            "y"
        );
        assert_eq!(
            render("{% if ticket.priority == blank %}blank{% endif %}", &v),
            "blank"
        );
        // Nested: the inner block shows only when the outer does.
        assert_eq!(
            render(
                "{% if ticket.nope %}{% if ticket.id %}inner{% endif %}{% else %}outer{% endif %}",
                &v
            ),
            "outer"
        );
        assert_eq!(
            render("a{% comment %}{{ticket.id}}{% endcomment %}b", &v),
            "ab"
        );
        assert_eq!(
            render("{% raw %}{{ticket.id}}{% endraw %}", &v),
            "{{ticket.id}}"
        );
        // Unknown tags are left as written.
        assert_eq!(
            render("{% for c in ticket.comments %}x{% endfor %}", &v),
            "{% for c in ticket.comments %}x{% endfor %}"
        );
        // Unbalanced blocks never panic.
        assert_eq!(render("{% endif %}{% else %}a{% if x %}", &v), "a");
    }

    #[test]
    fn escaping_comes_after_the_filters() {
        let mut v = vals();
        v.insert("ticket.description".into(), "line one\nline \"two\"".into());
        let json = |s: &str| {
            let j = serde_json::to_string(s).unwrap();
            j[1..j.len() - 1].to_string()
        };
        let body = render_with("{\"d\": \"{{ticket.description | upcase}}\"}", &v, &json);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["d"], "LINE ONE\nLINE \"TWO\"");
    }

    #[test]
    fn output_is_bounded() {
        let v: HashMap<String, String> =
            [("a".to_string(), "x".repeat(1000))].into_iter().collect();
        let t = "{{a}}".repeat(1000);
        assert!(render(&t, &v).len() <= MAX_OUTPUT);
        // A chain of growing filters stays bounded too.
        let v2: HashMap<String, String> =
            [("a".to_string(), "xy".repeat(10))].into_iter().collect();
        let chain = format!(
            "{{{{a{}}}}}",
            " | replace: \"x\", \"xxxxxxxxxx\"".repeat(12)
        );
        assert!(render(&chain, &v2).len() <= MAX_OUTPUT);
        assert_eq!(
            render("{{a | replace: \"\", \"zzz\"}}", &v2),
            "xy".repeat(10)
        );
        let deep = "{% if a %}".repeat(100) + "x" + &"{% endif %}".repeat(100);
        assert_eq!(render(&deep, &v), "");
    }
}
