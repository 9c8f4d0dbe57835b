//! The terminal dashboard: watch a run and steer it.

pub mod view_model;

#[cfg(test)]
pub(crate) mod test_support;
