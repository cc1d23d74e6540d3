//! After admission rows: spool.
