//! CEL expressions for `where`, `fields` and `active` (SPEC section 4).
//! (Interface only; implementation in progress.)

use serde_json::Value;

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
}

/// A compile error; `offset` is a char offset into the expression text when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
    pub offset: Option<usize>,
}

/// A runtime error: makes the record invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl Expr {
    pub fn compile(source: &str) -> Result<Expr, CompileError> {
        Ok(Expr {
            source: source.to_string(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with `user` bound to the record and `source` to the source's name.
    pub fn eval(&self, _user: &Value, _source: &str) -> Result<Value, EvalError> {
        Err(EvalError("not implemented".into()))
    }

    pub fn eval_bool(&self, user: &Value, source: &str) -> Result<bool, EvalError> {
        match self.eval(user, source)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError(format!("expected a bool, got {other}"))),
        }
    }
}
