//! Placeholders in rule and macro text: `{{ticket.id}}`, `{{ticket.requester.name}}`, … as
//! Zendesk writes them (Liquid output tags). Values come from a flat map the caller fills; an
//! unknown placeholder renders empty, as in Zendesk. Liquid filters and tags (`{% if %}`) are not
//! interpreted yet: a filter is ignored (the bare value is used) and tags are left as written.
//! Output is bounded.

use std::collections::HashMap;

/// The largest rendered text.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Render `template`, replacing every `{{ name }}` (optionally `{{ name | filter }}`).
pub fn render(template: &str, values: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let inner = after[..end].trim();
                let name = inner.split('|').next().unwrap_or("").trim();
                if let Some(v) = values.get(name) {
                    out.push_str(v);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
        if out.len() > MAX_OUTPUT {
            break;
        }
    }
    out.push_str(rest);
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

    #[test]
    fn renders_known_and_blanks_unknown() {
        let v: HashMap<String, String> = [
            ("ticket.id".to_string(), "42".to_string()),
            (
                "ticket.requester.first_name".to_string(),
                "Cora".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            render(
                "Hi {{ticket.requester.first_name}}, ticket #{{ ticket.id }}.",
                &v
            ),
            "Hi Cora, ticket #42."
        );
        assert_eq!(render("x{{ticket.nope}}y", &v), "xy");
        assert_eq!(render("{{ticket.id | upcase}}", &v), "42");
        assert_eq!(render("unclosed {{ticket.id", &v), "unclosed {{ticket.id");
        assert_eq!(
            render("{% if x %}a{% endif %}", &v),
            "{% if x %}a{% endif %}"
        );
    }

    #[test]
    fn output_is_bounded() {
        let v: HashMap<String, String> =
            [("a".to_string(), "x".repeat(1000))].into_iter().collect();
        let t = "{{a}}".repeat(1000);
        assert!(render(&t, &v).len() <= MAX_OUTPUT);
    }
}
