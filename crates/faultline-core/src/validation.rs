//! Validation failures that name the parameter at fault.

/// Why a parameter was refused; the server maps it to 400 with the parameter's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("The '{0}' parameter is required for this request.")]
    Missing(&'static str),
    #[error("The '{param}' parameter is invalid: {reason}.")]
    Invalid { param: &'static str, reason: String },
}

impl ValidationError {
    pub fn invalid(param: &'static str, reason: impl Into<String>) -> Self {
        ValidationError::Invalid { param, reason: reason.into() }
    }

    pub fn param(&self) -> &'static str {
        match self {
            ValidationError::Missing(p) => p,
            ValidationError::Invalid { param, .. } => param,
        }
    }
}
