//! Built-in sandbox platforms (filled in below).
