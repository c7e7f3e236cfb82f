//! placeholder (H1)
