//! After admission rows: pass.
