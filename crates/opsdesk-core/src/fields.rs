//! Custom fields: ticket fields, user fields, organisation fields, ticket forms, and the
//! validation of a value against its field's type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{ts, Timestamp};
use crate::error::Invalid;
use crate::model::Id;

/// Custom field types opsdesk accepts (Zendesk's names).
pub const TICKET_FIELD_TYPES: &[&str] = &[
    "text",
    "textarea",
    "checkbox",
    "date",
    "integer",
    "decimal",
    "regexp",
    "tagger",
    "multiselect",
];
/// System ticket fields every instance has (not removable).
pub const SYSTEM_TICKET_FIELD_TYPES: &[&str] = &[
    "subject",
    "description",
    "status",
    "tickettype",
    "priority",
    "group",
    "assignee",
];
pub const USER_ORG_FIELD_TYPES: &[&str] = &[
    "text",
    "textarea",
    "checkbox",
    "date",
    "integer",
    "decimal",
    "regexp",
    "dropdown",
    "multiselect",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldOption {
    #[serde(default)]
    pub id: Id,
    pub name: String,
    #[serde(default)]
    pub raw_name: String,
    pub value: String,
    #[serde(default)]
    pub default: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketField {
    pub id: Id,
    #[serde(rename = "type")]
    pub field_type: String,
    pub title: String,
    pub raw_title: String,
    pub description: String,
    pub raw_description: String,
    pub agent_description: Option<String>,
    pub position: i64,
    pub active: bool,
    pub required: bool,
    pub collapsed_for_agents: bool,
    pub regexp_for_validation: Option<String>,
    pub title_in_portal: String,
    pub raw_title_in_portal: String,
    pub visible_in_portal: bool,
    pub editable_in_portal: bool,
    pub required_in_portal: bool,
    pub tag: Option<String>,
    pub custom_field_options: Vec<FieldOption>,
    pub removable: bool,
    pub key: Option<String>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

impl TicketField {
    pub fn is_system(&self) -> bool {
        SYSTEM_TICKET_FIELD_TYPES.contains(&self.field_type.as_str())
    }
}

/// A user or organisation field: addressed by `key` in `user_fields` / `organization_fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomField {
    pub id: Id,
    pub key: String,
    #[serde(rename = "type")]
    pub field_type: String,
    pub title: String,
    pub raw_title: String,
    pub description: String,
    pub raw_description: String,
    pub position: i64,
    pub active: bool,
    pub system: bool,
    pub regexp_for_validation: Option<String>,
    pub tag: Option<String>,
    pub custom_field_options: Vec<FieldOption>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketForm {
    pub id: Id,
    pub name: String,
    pub raw_name: String,
    pub display_name: String,
    pub raw_display_name: String,
    pub position: i64,
    pub active: bool,
    pub default: bool,
    pub end_user_visible: bool,
    pub in_all_brands: bool,
    pub restricted_brand_ids: Vec<Id>,
    pub ticket_field_ids: Vec<Id>,
    pub agent_conditions: Vec<Value>,
    pub end_user_conditions: Vec<Value>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

/// Check a field definition's options: tagger/dropdown/multiselect need options with unique,
/// tag-shaped values; others must not have any.
pub fn check_options(field_type: &str, options: &mut [FieldOption], inv: &mut Invalid) {
    let needs = matches!(field_type, "tagger" | "dropdown" | "multiselect");
    if needs && options.is_empty() {
        inv.add(
            "custom_field_options",
            "BlankValue",
            "Field options: must have at least one option",
        );
    }
    if !needs && !options.is_empty() {
        inv.invalid(
            "custom_field_options",
            "Field options",
            &format!("not allowed on a {field_type} field"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for o in options.iter_mut() {
        if o.name.trim().is_empty() {
            inv.blank("custom_field_options", "Field option name");
        }
        if o.raw_name.is_empty() {
            o.raw_name = o.name.clone();
        }
        let v = o.value.trim();
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            inv.invalid(
                "custom_field_options",
                "Field option value",
                "must be a tag: not blank, no spaces",
            );
        }
        if !seen.insert(v.to_lowercase()) {
            inv.invalid(
                "custom_field_options",
                "Field option value",
                &format!("'{v}' is used twice"),
            );
        }
        o.value = v.to_lowercase();
    }
}

/// Check a regular expression definition compiles (bounded size).
pub fn check_regexp(pattern: Option<&str>, field_type: &str, inv: &mut Invalid) {
    if field_type == "regexp" {
        match pattern {
            None | Some("") => inv.blank("regexp_for_validation", "Regular expression"),
            Some(p) => {
                if compile(p).is_none() {
                    inv.invalid(
                        "regexp_for_validation",
                        "Regular expression",
                        "is not a valid regular expression",
                    );
                }
            }
        }
    }
}

fn compile(p: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .ok()
}

/// Validate `value` for a custom field of `field_type`. Returns the value to store
/// (`Value::Null` clears the field). `label` names the field in the message.
pub fn check_value(
    field_type: &str,
    options: &[FieldOption],
    regexp: Option<&str>,
    label: &str,
    value: &Value,
) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let as_text = || -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let bad = |why: &str| format!("{label}: {why}");
    match field_type {
        "text" | "textarea" => {
            let s = as_text().ok_or_else(|| bad("must be text"))?;
            let max = if field_type == "text" { 255 } else { 65_535 };
            if s.chars().count() > max {
                return Err(bad(&format!("is too long (maximum is {max} characters)")));
            }
            Ok(if s.is_empty() {
                Value::Null
            } else {
                Value::String(s)
            })
        }
        "checkbox" => match value {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) if s == "true" || s == "1" => Ok(Value::Bool(true)),
            Value::String(s) if s == "false" || s == "0" || s.is_empty() => Ok(Value::Bool(false)),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(Value::Bool(true)),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(Value::Bool(false)),
            _ => Err(bad("must be true or false")),
        },
        "date" => {
            let s = as_text().ok_or_else(|| bad("must be a date (YYYY-MM-DD)"))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            let d: jiff::civil::Date = s
                .get(..10.min(s.len()))
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| bad("must be a date (YYYY-MM-DD)"))?;
            Ok(Value::String(d.to_string()))
        }
        "integer" => {
            let s = as_text().ok_or_else(|| bad("must be a whole number"))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            s.trim()
                .parse::<i64>()
                .map_err(|_| bad("must be a whole number"))?;
            Ok(value.clone())
        }
        "decimal" => {
            let s = as_text().ok_or_else(|| bad("must be a number"))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            let f = s
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("must be a number"))?;
            if !f.is_finite() {
                return Err(bad("must be a number"));
            }
            Ok(value.clone())
        }
        "regexp" => {
            let s = as_text().ok_or_else(|| bad("must be text"))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            let re = regexp
                .and_then(compile)
                .ok_or_else(|| bad("has no valid pattern"))?;
            if !re.is_match(&s) {
                return Err(bad("is invalid"));
            }
            Ok(Value::String(s))
        }
        "tagger" | "dropdown" => {
            let s = as_text().ok_or_else(|| bad("must be one of the field's option values"))?;
            if s.is_empty() {
                return Ok(Value::Null);
            }
            if options.iter().any(|o| o.value == s) {
                Ok(Value::String(s))
            } else {
                Err(bad(&format!(
                    "'{s}' is not one of the field's option values"
                )))
            }
        }
        "multiselect" => {
            let items: Vec<String> = match value {
                Value::Array(a) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("must be a list of option values"))?,
                Value::String(s) if s.is_empty() => vec![],
                Value::String(s) => vec![s.clone()],
                _ => return Err(bad("must be a list of option values")),
            };
            let mut out: Vec<String> = Vec::new();
            for s in items {
                if !options.iter().any(|o| o.value == s) {
                    return Err(bad(&format!(
                        "'{s}' is not one of the field's option values"
                    )));
                }
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Ok(if out.is_empty() {
                Value::Null
            } else {
                Value::Array(out.into_iter().map(Value::String).collect())
            })
        }
        other => Err(bad(&format!("fields of type {other} take no value"))),
    }
}

/// The tags a custom field value puts on a ticket (tagger/multiselect option values, a
/// checked checkbox's tag), as Zendesk does.
pub fn tags_for_value(field_type: &str, tag: Option<&str>, value: &Value) -> Vec<String> {
    match (field_type, value) {
        ("tagger" | "dropdown", Value::String(s)) => vec![s.clone()],
        ("multiselect", Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        ("checkbox", Value::Bool(true)) => tag
            .filter(|t| !t.is_empty())
            .map(|t| vec![t.to_string()])
            .unwrap_or_default(),
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> Vec<FieldOption> {
        vec![
            FieldOption {
                id: 1,
                name: "Gold".into(),
                raw_name: "Gold".into(),
                value: "plan_gold".into(),
                default: false,
            },
            FieldOption {
                id: 2,
                name: "Free".into(),
                raw_name: "Free".into(),
                value: "plan_free".into(),
                default: false,
            },
        ]
    }

    #[test]
    fn values_by_type() {
        let o = opts();
        assert_eq!(
            check_value("text", &[], None, "F", &json!("x")),
            Ok(json!("x"))
        );
        assert!(check_value("text", &[], None, "F", &json!({"a":1})).is_err());
        assert_eq!(
            check_value("checkbox", &[], None, "F", &json!("true")),
            Ok(json!(true))
        );
        assert!(check_value("checkbox", &[], None, "F", &json!("maybe")).is_err());
        assert_eq!(
            check_value("date", &[], None, "F", &json!("2026-02-03")),
            Ok(json!("2026-02-03"))
        );
        assert!(check_value("date", &[], None, "F", &json!("2026-02-30")).is_err());
        assert_eq!(
            check_value("integer", &[], None, "F", &json!(42)),
            Ok(json!(42))
        );
        assert!(check_value("integer", &[], None, "F", &json!("4.2")).is_err());
        assert_eq!(
            check_value("decimal", &[], None, "F", &json!("4.2")),
            Ok(json!("4.2"))
        );
        assert!(check_value("decimal", &[], None, "F", &json!("NaN")).is_err());
        assert_eq!(
            check_value("regexp", &[], Some("^[A-Z]{3}-\\d+$"), "F", &json!("ABC-1")),
            Ok(json!("ABC-1"))
        );
        assert!(check_value("regexp", &[], Some("^[A-Z]{3}-\\d+$"), "F", &json!("abc")).is_err());
        assert_eq!(
            check_value("tagger", &o, None, "F", &json!("plan_gold")),
            Ok(json!("plan_gold"))
        );
        assert_eq!(
            check_value("tagger", &o, None, "Plan", &json!("plan_x")),
            Err("Plan: 'plan_x' is not one of the field's option values".into())
        );
        assert_eq!(
            check_value(
                "multiselect",
                &o,
                None,
                "F",
                &json!(["plan_gold", "plan_gold", "plan_free"])
            ),
            Ok(json!(["plan_gold", "plan_free"]))
        );
        assert_eq!(
            check_value("text", &[], None, "F", &Value::Null),
            Ok(Value::Null)
        );
    }

    #[test]
    fn tagger_tags() {
        assert_eq!(tags_for_value("tagger", None, &json!("a")), vec!["a"]);
        assert_eq!(
            tags_for_value("checkbox", Some("vip"), &json!(true)),
            vec!["vip"]
        );
        assert!(tags_for_value("checkbox", Some("vip"), &json!(false)).is_empty());
    }

    #[test]
    fn options_checked() {
        let mut inv = Invalid::new();
        let mut o = vec![FieldOption {
            id: 0,
            name: "A".into(),
            raw_name: "".into(),
            value: "Has Space".into(),
            default: false,
        }];
        check_options("tagger", &mut o, &mut inv);
        assert!(!inv.is_empty());
        let mut inv = Invalid::new();
        check_options("tagger", &mut [], &mut inv);
        assert!(inv.details.contains_key("custom_field_options"));
    }
}
