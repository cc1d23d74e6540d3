//! After admission rows: order.
