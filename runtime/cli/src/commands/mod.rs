//! One module per `choreo` command.

pub(crate) mod bench;
pub(crate) mod build;
pub(crate) mod deploy;
pub(crate) mod dlq;
pub(crate) mod handlers;
pub(crate) mod new;
pub(crate) mod publish;
pub(crate) mod serve;
pub(crate) mod tail;
pub(crate) mod trace;
