//! After admission rows: seats.
