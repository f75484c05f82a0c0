//! The tabular attacks driven through their C entry points (`tempered_plugin::testing::run`),
//! checked the way the host checks them.

mod common;
mod fraudster;
mod lowprofool;
mod moeva;
mod pgd;
mod plugin;
