//! One egress decision: the shared type of cordon-schema (the report and the audit log store it as it is).

pub use cordon_schema::egress::Decision;
