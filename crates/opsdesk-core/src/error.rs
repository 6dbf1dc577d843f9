//! Domain errors. Validation errors carry Zendesk's per-field details.

use std::collections::BTreeMap;

use serde::Serialize;

/// One validation failure on one field, as Zendesk reports it:
/// `{"description": "Subject: cannot be blank", "error": "BlankValue"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub description: String,
    pub error: String,
}

/// A set of field errors (`RecordInvalid` with `details`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalid {
    pub details: BTreeMap<String, Vec<FieldError>>,
}

impl Invalid {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn one(field: &str, error: &str, description: impl Into<String>) -> Self {
        let mut i = Invalid::new();
        i.add(field, error, description);
        i
    }
    pub fn add(&mut self, field: &str, error: &str, description: impl Into<String>) {
        self.details
            .entry(field.to_string())
            .or_default()
            .push(FieldError {
                description: description.into(),
                error: error.to_string(),
            });
    }
    pub fn blank(&mut self, field: &str, label: &str) {
        self.add(field, "BlankValue", format!("{label}: cannot be blank"));
    }
    pub fn invalid(&mut self, field: &str, label: &str, why: &str) {
        self.add(field, "InvalidValue", format!("{label}: {why}"));
    }
    pub fn is_empty(&self) -> bool {
        self.details.is_empty()
    }
    pub fn into_result(self) -> Result<(), DomainError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Invalid(self))
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for errs in self.details.values() {
            for e in errs {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                f.write_str(&e.description)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("record invalid: {0}")]
    Invalid(Invalid),
}

impl From<Invalid> for DomainError {
    fn from(i: Invalid) -> Self {
        DomainError::Invalid(i)
    }
}
