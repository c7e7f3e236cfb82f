//! Network namespace handles (placeholder, H2).

/// An open, verified network namespace.
pub struct NetnsHandle {
    #[allow(dead_code)]
    file: std::fs::File,
}
