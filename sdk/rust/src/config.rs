//! Values from the handler's manifest (`<name>.toml` beside the component, table
//! `[config]`). Read-only, available in every call.

use crate::bindings::choreo::handler::config as wit;

/// The configured value for `key`, if any.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// Every configured key and value.
pub fn all() -> Vec<(String, String)> {
    wit::get_all()
}
