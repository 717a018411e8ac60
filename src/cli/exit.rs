//! Exit codes, documented in the README. CI runners branch on these.

use std::process::ExitCode;

use crate::deploy::DeployFlowError;
use crate::runtime::DeployError;
use crate::source::SourceError;
use crate::state::{LockError, StateError};

/// How a successful command asks to exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Ok,
    /// A command that ran but reports failure without an error chain (e.g. a one-off
    /// command's own exit status).
    Code(u8),
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        match e {
            Exit::Ok => ExitCode::SUCCESS,
            Exit::Code(c) => ExitCode::from(c),
        }
    }
}

/// A failure that carries its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Bad input: exit 2.
    #[error("{0}")]
    Usage(String),
    /// A destructive command was not confirmed: exit 5.
    #[error("{0}")]
    NotConfirmed(String),
}

/// Exit codes: 1 any other error, 2 bad input, 3 deploy failed (the running release is
/// untouched), 4 app locked and `--no-wait`, 5 confirmation missing.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    err.chain().find_map(code_of).unwrap_or(1)
}

fn code_of(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if let Some(r) = cause.downcast_ref::<Refusal>() {
        return Some(match r {
            Refusal::Usage(_) => 2,
            Refusal::NotConfirmed(_) => 5,
        });
    }
    if cause.is::<DeployError>() {
        return Some(3);
    }
    if cause.is::<crate::ids::IdError>()
        || cause.is::<SourceError>()
        || cause.is::<crate::rollback::RollbackError>()
    {
        return Some(2);
    }
    if let Some(e) = cause.downcast_ref::<LockError>() {
        return lock_code(e);
    }
    if let Some(e) = cause.downcast_ref::<StateError>() {
        return state_code(e);
    }
    // Transparent wrappers hide their inner error from the chain; look through them.
    match cause.downcast_ref::<DeployFlowError>()? {
        DeployFlowError::Failed(_) => Some(3),
        DeployFlowError::Source(_) => Some(2),
        DeployFlowError::State(e) => state_code(e),
        DeployFlowError::Runtime(_) | DeployFlowError::Reconcile(_) => None,
    }
}

fn state_code(e: &StateError) -> Option<u8> {
    match e {
        StateError::NoSuchApp(_) | StateError::AppExists(_) | StateError::NoSuchRelease { .. } => Some(2),
        StateError::Lock(l) => lock_code(l),
        _ => None,
    }
}

fn lock_code(e: &LockError) -> Option<u8> {
    matches!(e, LockError::Busy { .. }).then_some(4)
}
