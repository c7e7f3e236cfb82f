//! placeholder (H3)
