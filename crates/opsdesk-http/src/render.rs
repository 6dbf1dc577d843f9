//! Rendering records and pages the way Zendesk does: `url` on every record, absolute
//! `next_page`/`previous_page`, cursor `meta`/`links`, sideloads.

use axum::http::{HeaderMap, Uri};
use opsdesk_app::{Page, Paged};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::extract::{base_url, encode_cursor};

/// Where the request came from: used to build absolute URLs.
pub struct Ctx {
    pub base: String,
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl Ctx {
    pub fn new(headers: &HeaderMap, uri: &Uri) -> Ctx {
        let path = uri.path().to_string();
        let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
        Ctx {
            base: base_url(headers),
            path,
            query,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v2/{path}.json", self.base)
    }

    /// A record with its `url`.
    pub fn rec<T: Serialize>(&self, t: &T, plural: &str) -> Value {
        let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            if let Some(id) = m.get("id").cloned() {
                let id = id
                    .as_i64()
                    .map(|i| i.to_string())
                    .or(id.as_str().map(str::to_string))
                    .unwrap_or_default();
                m.insert(
                    "url".into(),
                    Value::String(self.url(&format!("{plural}/{id}"))),
                );
            }
        }
        v
    }

    /// This request's URL with some query parameters replaced (and `drop` removed).
    fn with(&self, set: &[(&str, String)], drop: &[&str]) -> String {
        let mut q: Vec<(String, String)> = self
            .query
            .iter()
            .filter(|(k, _)| !drop.contains(&k.as_str()) && !set.iter().any(|(s, _)| s == k))
            .cloned()
            .collect();
        for (k, v) in set {
            q.push((k.to_string(), v.clone()));
        }
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        let path = if self.path.ends_with(".json") {
            self.path.clone()
        } else {
            format!("{}.json", self.path)
        };
        format!("{}{}?{}", self.base, path, qs)
    }

    /// This request's URL with some query parameters replaced.
    pub fn with_params(&self, set: &[(&str, String)]) -> String {
        self.with(set, &[])
    }

    /// This request's URL with some parameters replaced and others removed.
    pub fn with_params_dropping(&self, set: &[(&str, String)], drop: &[&str]) -> String {
        self.with(set, drop)
    }

    /// `{key: [...], next_page, previous_page, count}` or the cursor form with `meta`/`links`.
    pub fn page<T>(
        &self,
        key: &str,
        page: &Page,
        p: &Paged<T>,
        items: Vec<Value>,
        id_of: impl Fn(&T) -> i64,
    ) -> Value {
        let mut m = Map::new();
        m.insert(key.into(), Value::Array(items));
        match page {
            Page::Cursor { .. } => {
                let first = p.items.first().map(&id_of);
                let last = p.items.last().map(&id_of);
                let after = last.filter(|_| p.has_more).map(encode_cursor);
                let before = first.filter(|_| p.has_prev).map(encode_cursor);
                let after_cursor = last.map(encode_cursor);
                let before_cursor = first.map(encode_cursor);
                m.insert("meta".into(), json!({"has_more": p.has_more, "after_cursor": after_cursor, "before_cursor": before_cursor}));
                m.insert(
                    "links".into(),
                    json!({
                        "next": after.map(|c| self.with(&[("page[after]", c)], &["page[before]"])),
                        "prev": before.map(|c| self.with(&[("page[before]", c)], &["page[after]"])),
                    }),
                );
            }
            Page::Offset { page: n, .. } => {
                let next = p
                    .has_more
                    .then(|| self.with(&[("page", (n + 1).to_string())], &[]));
                let prev = (*n > 1).then(|| self.with(&[("page", (n - 1).to_string())], &[]));
                m.insert("next_page".into(), json!(next));
                m.insert("previous_page".into(), json!(prev));
                m.insert(
                    "count".into(),
                    json!(p.count.unwrap_or(p.items.len() as i64)),
                );
            }
            Page::All { .. } => {
                m.insert("next_page".into(), Value::Null);
                m.insert("previous_page".into(), Value::Null);
                m.insert("count".into(), json!(p.items.len()));
            }
        }
        Value::Object(m)
    }

    /// A whole (unpaged) list in the offset shape.
    pub fn all(&self, key: &str, items: Vec<Value>) -> Value {
        let n = items.len();
        json!({key: items, "next_page": null, "previous_page": null, "count": n})
    }
}
