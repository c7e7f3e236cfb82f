//! End-to-end test helpers (guards for links, netns and emulated NICs).
